/* Health (SPEC 6, issue 3 point 4): idle workers are pinged every
 * health_interval_ms; one that does not answer within health_timeout_ms,
 * or answers with an error, is marked unhealthy, killed and replaced as a
 * crash (so one that keeps failing escalates). The health op says healthy,
 * degraded or down by how many of the expected workers are ready or busy.
 * Health pings are not activity: a worker's last_activity_ms keeps
 * growing while it answers them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

/* One worker pinged every 50 ms, each answer logged at debug level. */
static const char ACTIVITY_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { health_interval_ms = 50; health_timeout_ms = 1000; };\n"
    "pool = { size = 1; max_overflow = 0; };\n"
    "log = { level = \"debug\"; };\n"
    "environments = { dev = { }; };\n";

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

/* One worker pinged every 100 ms; room for many restarts. */
static const char ONE_CONF[] =
    "supervisor = { max_restarts = 100; max_seconds = 60; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { health_interval_ms = 100; health_timeout_ms = 1000;\n"
    "  restart_delay_ms = 0; };\n"
    "pool = { size = 1; max_overflow = 0; max_restarts = 100; };\n"
    "environments = { dev = { }; };\n";

/* Every worker fails its health pings (not its init ping); the pool gives
 * up after 2 restarts and the root, allowed none, gives up too. */
static const char SICK_CONF[] =
    "supervisor = { max_restarts = 0; max_seconds = 60; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { health_interval_ms = 50; health_timeout_ms = 1000;\n"
    "  restart_delay_ms = 0; env = { MOCK_WORKER_SICK = \"1\"; }; };\n"
    "pool = { size = 1; max_overflow = 0; max_restarts = 2;\n"
    "  max_seconds = 60; };\n"
    "environments = { dev = { }; };\n";

/* pool/worker.1 is no longer the healthy process *ctx: marked unhealthy,
 * or gone. */
static bool
left_healthy(json_t *tree, void *ctx)
{
	json_t *n = arb_find(tree, "pool/worker.1");
	const char *h = arb_node_str(n, "health");
	return n != NULL && (arb_node_pid(n) != *(json_int_t *)ctx ||
	    h == NULL || strcmp(h, "healthy") != 0);
}

/* A worker that answers its health ping with an error (sicken) is killed
 * and replaced, logged at the default level; once it has failed a ping no
 * request reaches it: the next one waits for the new process. */
static void
test_sick_worker_replaced(void **state)
{
	struct arb *a = arb_start(ONE_CONF, "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	json_int_t pid = cl_worker_pid(a, "pool/worker.1");
	assert_true(pid > 0);
	json_decref(cl_exec_ok(a, "sicken", NULL, NULL));
	json_t *t = arb_wait_for(a, left_healthy, &pid, ARB_EVENT_MS,
	    "pool/worker.1 unhealthy or replaced");
	assert_non_null(t);
	json_decref(t);

	/* The mock's ping fails once it is sick: a reply proves which. */
	json_t *r = cl_exec(a, "ping", NULL, NULL);
	if (!arb_reply_ok(r)) {
		char *d = cl_describe(r), msg[512];
		snprintf(msg, sizeof msg, "%s", d);
		free(d);
		json_decref(r);
		fail_msg("a request reached the unhealthy worker: %s", msg);
	}
	json_int_t served = json_integer_value(json_object_get(
	    json_object_get(r, "result"), "pid"));
	json_decref(r);
	assert_true(served > 0 && served != pid);

	json_t *n = arb_wait_node(a, "pool/worker.1", "ready", pid,
	    ARB_EVENT_MS);
	assert_non_null(n);
	assert_string_equal(arb_node_str(n, "health"), "healthy");
	assert_int_equal(arb_node_pid(n), served);
	assert_true(arb_node_int(n, "restarts") >= 1);
	json_decref(n);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	assert_true(arb_log_has_line(a, "pool/worker.1", "killing",
	    "ping answered with an error", "sick", NULL));
	assert_true(cl_stat(a, "restarts") >= 1);
	assert_int_equal(arb_stop(a), 0);
}

/* Workers that keep failing their health pings are restarted as crashes
 * and escalate: the pool exceeds max_restarts, the root gives up, arbord
 * exits 1. */
static void
test_sick_workers_escalate(void **state)
{
	struct arb *a = arb_new(SICK_CONF);
	arb_spawn(a, "dev", NULL);
	int code = arb_wait_exit(a, ARB_EXIT_MS);
	if (code != 1)
		fail_msg("arbord: exit %d, expected 1 (root gave up)", code);
	assert_true(arb_log_count_lines(a, "pool/worker.1",
	    "ping answered with an error", NULL) >= 3);
	assert_true(arb_log_has_line(a, "pool", "more than 2 restarts",
	    "giving up", NULL));
	assert_int_equal(arb_stop(a), 1);	/* also: nothing left behind */
}

/* A worker killed for failing its health ping stays unhealthy while it
 * waits to restart (backoff: it died young), until a new process answers
 * its init ping. */
static void
test_unhealthy_until_replaced(void **state)
{
	struct arb *a = arb_start(
	    "supervisor = { max_restarts = 100; max_seconds = 60; };\n"
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { health_interval_ms = 50; restart_delay_ms = 2000; };\n"
	    "pool = { size = 1; max_overflow = 0; max_restarts = 100; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	json_int_t pid = cl_worker_pid(a, "pool/worker.1");
	json_decref(cl_exec_ok(a, "sicken", NULL, NULL));
	json_t *n = arb_wait_node(a, "pool/worker.1", "backoff", 0,
	    ARB_EVENT_MS);
	assert_non_null(n);
	assert_string_equal(arb_node_str(n, "health"), "unhealthy");
	json_decref(n);
	n = arb_wait_node(a, "pool/worker.1", "ready", pid, ARB_EVENT_MS);
	assert_non_null(n);
	assert_string_equal(arb_node_str(n, "health"), "healthy");
	json_decref(n);
	assert_int_equal(arb_stop(a), 0);
}

/* Whether a health ping is unanswered: more sent than answered. */
static bool
ping_unanswered(struct arb *a)
{
	return arb_log_count_lines(a, "pool/worker.1", "health ping sent",
	    NULL) > arb_log_count_lines(a, "pool/worker.1",
	    "health ping answered", NULL);
}

/* `stop` of a worker with a health ping unanswered (deaf, and deaf to
 * SIGTERM too) waits out shutdown_timeout_ms: the ping's deadline, earlier,
 * does not kill the stopping worker at once. */
static void
test_stop_outlasts_health_deadline(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { health_interval_ms = 50; health_timeout_ms = 2000;\n"
	    "  shutdown_timeout_ms = 4000; };\n"
	    "pool = { size = 1; max_overflow = 0; };\n"
	    "log = { level = \"debug\"; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	json_decref(cl_exec_ok(a, "ignore_term", NULL, NULL));
	json_decref(cl_exec_ok(a, "deafen", NULL, NULL));
	long long end = arb_now_ms() + ARB_EVENT_MS;
	while (!ping_unanswered(a) && arb_now_ms() < end)
		arb_sleep_ms(10);
	assert_true(ping_unanswered(a));
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "stop",
	    "name", "pool/worker.1")));
	json_t *n = arb_wait_node(a, "pool/worker.1", "stopped", 0,
	    ARB_EVENT_MS);
	assert_non_null(n);
	json_decref(n);
	assert_true(arb_log_has_line(a, "pool/worker.1", "did not stop",
	    "SIGKILL", NULL));
	assert_false(arb_log_has_line(a, "pool/worker.1", "killing", NULL));
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
	arb_await_node(a, "pool/worker.1", "stopped");
	h = health(a);
	assert_string_equal(json_string_value(json_object_get(h, "health")),
	    "degraded");
	assert_int_equal(json_integer_value(json_object_get(h, "ready")), 1);
	json_decref(h);
	char out[256];
	assert_int_equal(arb_ctl(a, out, sizeof out, "health", NULL), 1);
	assert_string_equal(out, "degraded 1/2\n");

	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "stop", "name",
	    "pool/worker.2")));
	arb_await_node(a, "pool/worker.2", "stopped");
	h = health(a);
	assert_string_equal(json_string_value(json_object_get(h, "health")),
	    "down");
	assert_int_equal(json_integer_value(json_object_get(h, "ready")), 0);
	json_decref(h);
	assert_int_equal(arb_ctl(a, out, sizeof out, "health", NULL), 1);
	assert_string_equal(out, "down 0/2\n");
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
	arb_await_node(a, "pool/overflow.1", "ready");

	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "stop", "name",
	    "pool/worker.1")));
	arb_await_node(a, "pool/worker.1", "stopped");
	json_t *h = health(a);
	assert_string_equal(json_string_value(json_object_get(h, "health")),
	    "down");
	assert_int_equal(json_integer_value(json_object_get(h, "ready")), 0);
	assert_int_equal(json_integer_value(json_object_get(h, "expected")), 1);
	json_decref(h);
	assert_int_equal(arb_stop(a), 0);
}

/* Health pings answered by pool/worker.1 so far (debug log lines). */
static size_t
pings_answered(struct arb *a)
{
	return arb_log_count_lines(a, "pool/worker.1", "health ping answered",
	    NULL);
}

/* Polls the log until pool/worker.1 has answered n health pings. */
static void
wait_pings(struct arb *a, size_t n)
{
	long long deadline = arb_now_ms() + ARB_EVENT_MS;
	while (pings_answered(a) < n) {
		if (arb_now_ms() > deadline)
			fail_msg("%zu health pings answered, waited for %zu",
			    pings_answered(a), n);
		arb_sleep_ms(10);
	}
}

static json_int_t
stat_of(const json_t *node, const char *key)
{
	return arb_node_int(json_object_get(node, "stats"), key);
}

/* last_activity_ms is the time since the worker last answered a client:
 * the init ping and health pings do not count. Before any request it is
 * the uptime; after one it keeps growing while pings are answered. */
static void
test_pings_are_not_activity(void **state)
{
	struct arb *a = arb_start(ACTIVITY_CONF, "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	wait_pings(a, 2);
	json_t *n = arb_status(a, "pool/worker.1");
	assert_non_null(n);
	assert_int_equal(stat_of(n, "last_activity_ms"),
	    stat_of(n, "uptime_ms"));
	json_decref(n);

	json_decref(cl_exec_ok(a, "echo", json_pack("{s:i}", "x", 1), NULL));
	long long t0 = arb_now_ms();	/* the reply reached arbord before */
	wait_pings(a, pings_answered(a) + 3);
	long long waited = arb_now_ms() - t0;
	n = arb_status(a, "pool/worker.1");
	assert_non_null(n);
	json_int_t idle = stat_of(n, "last_activity_ms");
	assert_int_equal(stat_of(n, "requests_handled"), 1);
	json_decref(n);
	if (idle < waited - 2)	/* 2: ms rounding, two clocks */
		fail_msg("last_activity_ms %lld, but the request was answered "
		    "%lld ms before", (long long)idle, waited);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_deaf_worker_replaced, arb_teardown),
		cmocka_unit_test_teardown(test_sick_worker_replaced,
		    arb_teardown),
		cmocka_unit_test_teardown(test_sick_workers_escalate,
		    arb_teardown),
		cmocka_unit_test_teardown(test_health_op_levels, arb_teardown),
		cmocka_unit_test_teardown(test_health_ignores_overflow,
		    arb_teardown),
		cmocka_unit_test_teardown(test_pings_are_not_activity,
		    arb_teardown),
		cmocka_unit_test_teardown(test_unhealthy_until_replaced,
		    arb_teardown),
		cmocka_unit_test_teardown(test_stop_outlasts_health_deadline,
		    arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
