/* Checkout strategy and lazy start (SPEC 3 pool.strategy, pool.lazy):
 * fifo takes the worker idle the longest, so sequential requests rotate
 * over the pool; lifo takes the one idle the shortest, so they stay on one
 * worker; a lazy pool starts no worker until requests need them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define REQUESTS	9

static char *
conf(const char *strategy, const char *lazy)
{
	static char text[512];
	snprintf(text, sizeof text,
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "pool = { size = 3; max_overflow = 0; strategy = \"%s\"; lazy = %s; };\n"
	    "environments = { dev = { }; };\n", strategy, lazy);
	return text;
}

/* Sends REQUESTS echoes one after the other; returns how many distinct
 * workers answered. */
static int
distinct_workers(struct arb *a)
{
	char seen[REQUESTS][64];
	int n = 0;
	for (int i = 0; i < REQUESTS; i++) {
		json_t *r = arb_call_ok(a, json_pack("{s:s,s:s,s:{s:i}}", "op",
		    "execute", "command", "echo", "args", "i", i));
		const char *w = json_string_value(json_object_get(r, "worker"));
		assert_non_null(w);
		int k = 0;
		while (k < n && strcmp(seen[k], w) != 0)
			k++;
		if (k == n)
			snprintf(seen[n++], sizeof seen[0], "%s", w);
		json_decref(r);
	}
	return n;
}

static void
test_fifo_rotates(void **state)
{
	struct arb *a = arb_start(conf("fifo", "false"), "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 3, ARB_EVENT_MS));
	assert_int_equal(distinct_workers(a), 3);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_lifo_reuses(void **state)
{
	struct arb *a = arb_start(conf("lifo", "false"), "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 3, ARB_EVENT_MS));
	assert_int_equal(distinct_workers(a), 1);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_lazy_starts_on_demand(void **state)
{
	struct arb *a = arb_start(conf("fifo", "true"), "dev", NULL);
	json_t *pool = arb_status(a, "pool");
	assert_int_equal(arb_node_nchildren(pool), 3);
	json_int_t pids[3];
	assert_int_equal(arb_worker_pids(pool, pids, 3), 0);	/* none runs */
	json_decref(pool);
	json_t *r = arb_call_ok(a, json_pack("{s:s,s:s}", "op", "execute",
	    "command", "echo"));
	json_decref(r);
	pool = arb_status(a, "pool");
	assert_true(arb_worker_pids(pool, pids, 3) >= 1);	/* started for it */
	json_decref(pool);
	assert_int_equal(arb_stop(a), 0);
}

/* A lazy worker the operator started is no longer one to start on demand:
 * when it is busy, a request that has to wait gets an overflow worker. */
static void
test_lazy_started_by_operator_overflows(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "pool = { size = 1; lazy = true; max_overflow = 1;\n"
	    "  checkout_timeout_ms = 15000; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_decref(arb_call_ok(a, json_pack("{s:s, s:s}", "op", "start",
	    "name", "pool/worker.1")));
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 3000), NULL, "busy", 1);
	json_t *r = cl_exec_ok(a, "echo", NULL, NULL);
	assert_string_equal(cl_reply_worker(r), "pool/overflow.1");
	json_decref(r);
	json_decref(cl_recv_ok(c, ARB_REPLY_MS, "the held request"));
	cl_close(c);
	assert_int_equal(arb_stop(a), 0);
}

/* A worker waiting out a long restart delay (backoff) is not one on its
 * way: a request that has to wait meanwhile gets an overflow worker
 * rather than pool_timeout. */
static void
test_backoff_does_not_hold_back_overflow(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { restart_delay_ms = 20000; max_restart_delay_ms = 20000; };\n"
	    "pool = { size = 1; max_overflow = 1; checkout_timeout_ms = 3000;\n"
	    "  max_restarts = 100; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	json_decref(cl_exec_err(a, "crash", NULL, NULL, "worker_crashed"));
	json_t *node = arb_wait_node(a, "pool/worker.1", "backoff", 0,
	    ARB_EVENT_MS);
	assert_non_null(node);
	json_decref(node);
	json_t *r = cl_exec(a, "echo", NULL, NULL);
	if (r == NULL || !arb_reply_ok(r))
		fail_msg("the request during the backoff: %s", r ?
		    cl_describe(r) : "no reply");
	assert_string_equal(cl_reply_worker(r), "pool/overflow.1");
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* An operator's stop holds for a lazy worker never started: a request
 * that has to wait starts another lazy worker, not that one. */
static void
test_lazy_stopped_by_operator_stays_down(void **state)
{
	struct arb *a = arb_start(conf("fifo", "true"), "dev", NULL);
	json_decref(arb_call_ok(a, json_pack("{s:s, s:s}", "op", "stop",
	    "name", "pool/worker.2")));
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1500), NULL, "busy", 1);
	json_t *r = cl_exec_ok(a, "echo", NULL, NULL);
	assert_string_equal(cl_reply_worker(r), "pool/worker.3");
	json_decref(r);
	json_decref(cl_recv_ok(c, ARB_REPLY_MS, "the held request"));
	cl_close(c);
	json_t *node = arb_status(a, "pool/worker.2");
	assert_string_equal(arb_node_str(node, "state"), "stopped");
	assert_int_equal(arb_node_pid(node), 0);
	json_decref(node);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_fifo_rotates, arb_teardown),
		cmocka_unit_test_teardown(test_lifo_reuses, arb_teardown),
		cmocka_unit_test_teardown(test_lazy_starts_on_demand, arb_teardown),
		cmocka_unit_test_teardown(test_lazy_started_by_operator_overflows, arb_teardown),
		cmocka_unit_test_teardown(test_backoff_does_not_hold_back_overflow, arb_teardown),
		cmocka_unit_test_teardown(test_lazy_stopped_by_operator_stays_down, arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
