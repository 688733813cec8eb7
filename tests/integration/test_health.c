/* Health (SPEC 6, issue 3 point 4): idle workers are pinged every
 * health_interval_ms; one that does not answer within health_timeout_ms
 * is marked unhealthy, killed and replaced. The health op says healthy,
 * degraded or down by how many of the expected workers are ready or busy. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <string.h>

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

static const char CONF[] =
    "supervisor = { max_restarts = 100; max_seconds = 60; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { health_interval_ms = 100; health_timeout_ms = 300;\n"
    "  restart_delay_ms = 0; };\n"
    "pool = { size = 2; max_overflow = 0; max_restarts = 100; };\n"
    "environments = { dev = { }; };\n";

/* A worker that stops answering (deafen) misses a health ping: it is
 * killed and replaced, and its sibling is left alone. */
static void
test_deaf_worker_replaced(void **state)
{
	struct arb *a = arb_start(CONF, "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS));
	json_t *r = arb_call_ok(a, json_pack("{s:s,s:s}", "op", "execute",
	    "command", "deafen"));
	const char *name = json_string_value(json_object_get(r, "worker"));
	assert_non_null(name);
	char deaf[64], other[64];
	strcpy(deaf, name);
	strcpy(other, strcmp(deaf, "pool/worker.1") == 0 ? "pool/worker.2" :
	    "pool/worker.1");
	json_decref(r);
	json_t *n = arb_status(a, deaf);
	json_int_t pid = arb_node_pid(n);
	json_decref(n);
	n = arb_status(a, other);
	json_int_t other_pid = arb_node_pid(n);
	json_decref(n);

	n = arb_wait_node(a, deaf, "ready", pid, ARB_EVENT_MS);
	assert_non_null(n);
	assert_string_equal(arb_node_str(n, "health"), "healthy");
	assert_true(arb_node_int(n, "restarts") >= 1);
	json_decref(n);
	assert_true(arb_log_has_line(a, deaf, "killing", NULL));
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	n = arb_status(a, other);
	assert_int_equal(arb_node_pid(n), other_pid);	/* answered its pings */
	json_decref(n);
	assert_int_equal(arb_stop(a), 0);
}

static json_t *
health(struct arb *a)
{
	return arb_call_ok(a, json_pack("{s:s}", "op", "health"));
}

/* healthy with all expected workers, degraded with some, down with none. */
static void
test_health_op_levels(void **state)
{
	struct arb *a = arb_start(CONF, "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS));
	json_t *h = health(a);
	assert_string_equal(json_string_value(json_object_get(h, "health")),
	    "healthy");
	assert_int_equal(json_integer_value(json_object_get(h, "ready")), 2);
	assert_int_equal(json_integer_value(json_object_get(h, "expected")), 2);
	json_decref(h);

	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "stop", "name",
	    "pool/worker.1")));
	json_decref(arb_wait_node(a, "pool/worker.1", "stopped", 0,
	    ARB_EVENT_MS));
	h = health(a);
	assert_string_equal(json_string_value(json_object_get(h, "health")),
	    "degraded");
	assert_int_equal(json_integer_value(json_object_get(h, "ready")), 1);
	json_decref(h);

	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "stop", "name",
	    "pool/worker.2")));
	json_decref(arb_wait_node(a, "pool/worker.2", "stopped", 0,
	    ARB_EVENT_MS));
	h = health(a);
	assert_string_equal(json_string_value(json_object_get(h, "health")),
	    "down");
	assert_int_equal(json_integer_value(json_object_get(h, "ready")), 0);
	json_decref(h);
	char out[256];
	assert_int_equal(arb_ctl(a, out, sizeof out, "health", NULL), 1);
	assert_int_equal(arb_stop(a), 0);
}

/* Overflow workers are not of the configured size: with worker.1 stopped
 * and only overflow.1 up, the pool is down, not healthy at 1 of 1. */
static void
test_health_ignores_overflow(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "pool = { size = 1; max_overflow = 1; overflow_idle_ms = 600000; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	struct cl_conn *c1 = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 300), NULL, "busy", 1);
	struct cl_conn *c2 = cl_send_held(a, 2, "sleep",
	    json_pack("{s:i}", "ms", 300), NULL, "busy", 2);
	json_decref(cl_recv(c1, ARB_EVENT_MS));
	json_decref(cl_recv(c2, ARB_EVENT_MS));
	cl_close(c1);
	cl_close(c2);
	json_decref(arb_wait_node(a, "pool/overflow.1", "ready", 0,
	    ARB_EVENT_MS));

	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "stop", "name",
	    "pool/worker.1")));
	json_decref(arb_wait_node(a, "pool/worker.1", "stopped", 0,
	    ARB_EVENT_MS));
	json_t *h = health(a);
	assert_string_equal(json_string_value(json_object_get(h, "health")),
	    "down");
	assert_int_equal(json_integer_value(json_object_get(h, "ready")), 0);
	assert_int_equal(json_integer_value(json_object_get(h, "expected")), 1);
	json_decref(h);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_deaf_worker_replaced, arb_teardown),
		cmocka_unit_test_teardown(test_health_op_levels, arb_teardown),
		cmocka_unit_test_teardown(test_health_ignores_overflow,
		    arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
