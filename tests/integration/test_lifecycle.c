/* A pool worker's lifecycle (SPEC 3 worker, SPEC 4), the parts the other
 * tests leave out: restart types after a signal and the state a worker
 * left down ends in; the restart delay doubling per quick death up to its
 * maximum; recycling (max_requests, max_errors) not taken for crashes and
 * not counting health pings; health pings sent to idle workers only; and
 * what overflow workers count in stats, health and the tree; a restarted
 * pool starting as a fresh one (no overflow workers, lazy ones on demand). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define W1	"pool/worker.1"

/* A pool of size mock_workers; pool and worker are more of those groups.
 * Waits for them all to be ready. */
static struct arb *
start_pool(int size, const char *pool, const char *worker)
{
	char body[2048];
	snprintf(body, sizeof body,
	    "supervisor = { max_restarts = 100; max_seconds = 60; };\n"
	    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = %d; %s };\n"
	    "worker = { %s };\n"
	    "environments = { dev = { }; };\n", size, pool ? pool : "",
	    worker ? worker : "");
	struct arb *a = arb_start(body, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", (size_t)size, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	return a;
}

/* Makes W1 die through `crash` with args (stolen); returns its old pid
 * once it is gone. */
static json_int_t
crash_w1(struct arb *a, json_t *args)
{
	json_int_t pid = cl_worker_pid(a, W1);
	assert_true(pid > 0);
	json_decref(cl_exec_err(a, "crash", args, NULL, "worker_crashed"));
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	return pid;
}

/* W1 is ready again under a new pid, with restarts. */
static void
expect_restarted(struct arb *a, json_int_t old, json_int_t restarts)
{
	json_t *node = arb_wait_node(a, W1, "ready", old, ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_int(node, "restarts"), restarts);
	json_decref(node);
}

/* W1 is down in state for good: no pid, and still so a while later. */
static void
expect_down(struct arb *a, const char *state)
{
	json_t *node = arb_wait_node(a, W1, state, 0, ARB_EVENT_MS);
	assert_non_null(node);
	json_decref(node);
	arb_sleep_ms(500);
	node = arb_status(a, W1);
	assert_non_null(node);
	assert_string_equal(arb_node_str(node, "state"), state);
	assert_int_equal(arb_node_pid(node), 0);
	assert_int_equal(arb_node_int(node, "restarts"), 0);
	json_decref(node);
}

static char *
typed(const char *restart)
{
	static char w[128];
	snprintf(w, sizeof w, "restart = \"%s\"; restart_delay_ms = 0;",
	    restart);
	return w;
}

/* A signal is an abnormal exit: permanent and transient workers are
 * restarted after one. */
static void
test_signal_restarts_permanent_and_transient(void **state)
{
	static const char *const types[] = { "permanent", "transient" };
	for (size_t i = 0; i < 2; i++) {
		struct arb *a = start_pool(1, "max_overflow = 0;",
		    typed(types[i]));
		json_int_t pid = crash_w1(a, json_pack("{s:i}", "signal", 9));
		expect_restarted(a, pid, 1);
		assert_int_equal(arb_stop(a), 0);
	}
}

/* A temporary worker is never restarted: stopped after a clean exit,
 * failed after a non-zero one or a signal; a transient one after a clean
 * exit is stopped. */
static void
test_left_down_states(void **state)
{
	static const struct {
		const char *type, *state;
		int code, sig;
	} cases[] = {
		{ "temporary", "stopped", 0, 0 },
		{ "temporary", "failed", 3, 0 },
		{ "temporary", "failed", 0, 9 },
		{ "transient", "stopped", 0, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct arb *a = start_pool(1, "max_overflow = 0;",
		    typed(cases[i].type));
		crash_w1(a, cases[i].sig ? json_pack("{s:i}", "signal",
		    cases[i].sig) : json_pack("{s:i}", "code", cases[i].code));
		expect_down(a, cases[i].state);
		assert_int_equal(cl_stat(a, "restarts"), 0);
		assert_int_equal(arb_stop(a), 0);
	}
}

/* Quick deaths wait restart_delay_ms, doubling each time up to
 * max_restart_delay_ms, in state backoff meanwhile. */
static void
test_backoff_doubles_to_max(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;",
	    "restart_delay_ms = 200; max_restart_delay_ms = 800;");
	static const int want[] = { 200, 400, 800, 800 };
	for (size_t i = 0; i < 4; i++) {
		json_int_t pid = crash_w1(a, json_pack("{s:i}", "code", 3));
		json_t *node = arb_status(a, W1);
		assert_non_null(node);
		const char *st = arb_node_str(node, "state");
		assert_true(strcmp(st, "backoff") == 0 ||
		    strcmp(st, "starting") == 0 || strcmp(st, "ready") == 0);
		json_decref(node);
		expect_restarted(a, pid, (json_int_t)i + 1);
		char line[64];
		snprintf(line, sizeof line, "restarting in %d ms", want[i]);
		size_t n = 0;
		for (size_t k = 0; k <= i; k++)
			n += want[k] == want[i];
		if (arb_log_count_lines(a, W1, line, NULL) != n) {
			arb_dump_log(a);
			fail_msg("death %zu: want %zu lines '%s'", i + 1, n, line);
		}
	}
	assert_int_equal(arb_stop(a), 0);
}

/* A worker that ran at least 10 s restarts at once and starts the
 * doubling over: its next quick death waits restart_delay_ms again. */
static void
test_backoff_reset_after_long_run(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;",
	    "restart_delay_ms = 300; max_restart_delay_ms = 5000;");
	json_int_t pid = crash_w1(a, json_pack("{s:i}", "code", 3));
	expect_restarted(a, pid, 1);
	pid = crash_w1(a, json_pack("{s:i}", "code", 3));
	expect_restarted(a, pid, 2);
	assert_int_equal(arb_log_count_lines(a, W1, "restarting in 600 ms",
	    NULL), 1);
	arb_sleep_ms(10500);	/* the run to be long, not a wait for events */
	pid = crash_w1(a, json_pack("{s:i}", "code", 3));
	expect_restarted(a, pid, 3);
	assert_int_equal(arb_log_count_lines(a, W1, "restarting in", NULL), 2);
	pid = crash_w1(a, json_pack("{s:i}", "code", 3));
	expect_restarted(a, pid, 4);
	assert_int_equal(arb_log_count_lines(a, W1, "restarting in 300 ms",
	    NULL), 2);
	assert_int_equal(arb_stop(a), 0);
}

/* max_restart_delay_ms = 0: never wait, whatever restart_delay_ms says. */
static void
test_backoff_max_zero_never_waits(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;",
	    "restart_delay_ms = 5000; max_restart_delay_ms = 0;");
	for (int i = 0; i < 3; i++) {
		json_int_t pid = crash_w1(a, json_pack("{s:i}", "code", 3));
		expect_restarted(a, pid, i + 1);
	}
	assert_false(arb_log_contains(a, "restarting in"));
	assert_int_equal(arb_stop(a), 0);
}

/* A long restart delay shows as state backoff, without a pid, and its
 * restart not counted yet in restarts (it is, once made). */
static void
test_backoff_state_shown(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;",
	    "restart_delay_ms = 30000; max_restart_delay_ms = 30000;");
	crash_w1(a, json_pack("{s:i}", "code", 3));
	json_t *node = arb_wait_node(a, W1, "backoff", 0, ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_pid(node), 0);
	assert_int_equal(arb_node_int(node, "restarts"), 0);
	json_decref(node);
	assert_int_equal(arb_stop(a), 0);
}

/* Recycling is not a crash: a pool allowed 1 restart in its window
 * recycles its worker after every request many times over and keeps
 * running. */
static void
test_recycling_not_counted_as_crash(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0; max_restarts = 1; "
	    "max_seconds = 60;", "max_requests = 1; max_errors = 0;");
	json_int_t pid = cl_worker_pid(a, W1);
	for (int i = 0; i < 4; i++) {
		json_t *r = (i % 2) ? cl_exec_err(a, "no_such_command", NULL,
		    NULL, "worker_error") : cl_exec_ok(a, "echo", NULL, NULL);
		json_decref(r);
		json_t *node = arb_wait_node(a, W1, "ready", pid, ARB_EVENT_MS);
		assert_non_null(node);
		pid = arb_node_pid(node);
		assert_int_equal(arb_node_int(node, "restarts"), i + 1);
		json_decref(node);
	}
	json_t *pool = arb_status(a, "pool");
	assert_string_equal(arb_node_str(pool, "state"), "running");
	assert_int_equal(arb_node_int(pool, "restarts"), 0);
	json_decref(pool);
	assert_int_equal(arb_stop(a), 0);
}

/* Health pings are not requests: a worker pinged many times is recycled
 * after exactly max_requests requests all the same, and max_errors = 0
 * replaces a worker at its first error reply. */
static void
test_recycling_counts_requests_only(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;",
	    "max_requests = 3; health_interval_ms = 20; "
	    "restart_delay_ms = 0;");
	json_int_t pid = cl_worker_pid(a, W1);
	arb_sleep_ms(300);	/* a dozen pings answered meanwhile */
	for (int i = 0; i < 2; i++) {
		json_decref(cl_exec_ok(a, "echo", NULL, NULL));
		arb_sleep_ms(100);
		assert_int_equal(cl_worker_pid(a, W1), pid);
	}
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	expect_restarted(a, pid, 1);
	assert_int_equal(arb_stop(a), 0);

	a = start_pool(1, "max_overflow = 0;", "max_errors = 0; "
	    "restart_delay_ms = 0;");
	pid = cl_worker_pid(a, W1);
	json_decref(cl_exec_err(a, "no_such_command", NULL, NULL,
	    "worker_error"));
	expect_restarted(a, pid, 1);
	assert_int_equal(arb_stop(a), 0);
}

/* A busy worker gets no health ping: one whose request outlasts many
 * intervals and the ping timeout is not killed under it. */
static void
test_busy_worker_not_pinged(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;",
	    "health_interval_ms = 50; health_timeout_ms = 100;");
	json_int_t pid = cl_worker_pid(a, W1);
	json_t *r = cl_exec_ok(a, "sleep", json_pack("{s:i}", "ms", 1500),
	    NULL);
	json_decref(r);
	assert_int_equal(cl_worker_pid(a, W1), pid);
	assert_false(arb_log_contains(a, "unhealthy"));
	assert_int_equal(arb_stop(a), 0);
}

/* Overflow workers while they serve: named overflow.1 and .2, one per
 * request that has to wait, up to max_overflow; stats count them in
 * overflow, never in size; health expects the configured size only. */
static void
test_overflow_counts(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 2; "
	    "checkout_timeout_ms = 15000;", "restart_delay_ms = 0;");
	struct cl_conn *c[3];
	for (int i = 0; i < 3; i++)
		c[i] = cl_send_held(a, 1 + i, "sleep", cl_hold_args(CL_HOLD_MS),
		    NULL, "busy", 1 + i);
	json_t *st = cl_stats(a);
	assert_int_equal(json_integer_value(json_object_get(st, "size")), 1);
	assert_int_equal(json_integer_value(json_object_get(st, "overflow")), 2);
	assert_int_equal(json_integer_value(json_object_get(st, "busy")), 3);
	json_decref(st);
	json_t *h = arb_op_ok(a, "health");
	assert_int_equal(json_integer_value(json_object_get(h, "expected")), 1);
	assert_int_equal(json_integer_value(json_object_get(h, "ready")), 1);
	assert_string_equal(json_string_value(json_object_get(h, "health")),
	    "healthy");
	json_decref(h);
	json_t *pool = arb_status(a, "pool");
	assert_int_equal(arb_node_nchildren(pool), 3);
	json_decref(pool);
	json_t *tree = arb_status(a, NULL);
	assert_non_null(arb_find(tree, "pool/overflow.1"));
	assert_non_null(arb_find(tree, "pool/overflow.2"));
	json_decref(tree);
	/* a fourth waits: no third overflow worker */
	struct cl_conn *w = cl_send_held(a, 4, "echo", NULL, NULL, "waiting",
	    1);
	assert_int_equal(cl_stat(a, "overflow"), 2);
	static const char *const held[] = { W1, "pool/overflow.1",
	    "pool/overflow.2" };
	for (int i = 0; i < 3; i++)
		cl_release(a, held[i]);
	json_t *r = cl_recv_ok(w, ARB_REPLY_MS, "the waiting request");
	json_decref(r);
	cl_close(w);
	for (int i = 0; i < 3; i++) {
		json_decref(cl_recv_ok(c[i], ARB_REPLY_MS, "a held request"));
		cl_close(c[i]);
	}
	assert_int_equal(arb_stop(a), 0);
}

/* An overflow worker that crashes is restarted under its name (restart
 * permanent), counted in the pool's restarts, and still an overflow
 * worker: it idles out as one. */
static void
test_overflow_crash_restarted(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 1; "
	    "overflow_idle_ms = 1500;", "restart_delay_ms = 0;");
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 3000), NULL, "busy", 1);
	json_t *r = cl_exec_err(a, "crash", json_pack("{s:i}", "code", 3),
	    NULL, "worker_crashed");
	assert_non_null(strstr(cl_reply_message(r), "pool/overflow.1"));
	json_decref(r);
	json_t *node = arb_wait_node(a, "pool/overflow.1", "ready", 0,
	    ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_int(node, "restarts"), 1);
	json_decref(node);
	assert_int_equal(cl_stat(a, "overflow"), 1);
	assert_int_equal(cl_stat(a, "restarts"), 1);
	json_decref(cl_recv_ok(c, ARB_REPLY_MS, "the held request"));
	cl_close(c);
	assert_true(cl_wait_stat(a, "overflow", 0, 0, ARB_EVENT_MS));
	json_t *pool = arb_status(a, "pool");
	assert_int_equal(arb_node_nchildren(pool), 1);
	json_decref(pool);
	assert_int_equal(cl_stat(a, "restarts"), 1);
	assert_int_equal(arb_stop(a), 0);
}

/* An overflow worker stopped with `stop` while it waits out its restart
 * delay (backoff, no process) is gone for good like one stopped while it
 * runs: it leaves the tree at once and frees its place among
 * max_overflow, so the next request that has to wait gets a new one. */
static void
test_overflow_stopped_in_backoff_removed(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 1; "
	    "overflow_idle_ms = 60000; checkout_timeout_ms = 15000;",
	    "restart_delay_ms = 30000; max_restart_delay_ms = 30000;");
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    cl_hold_args(CL_HOLD_MS), NULL, "busy", 1);
	json_decref(cl_exec_err(a, "crash", json_pack("{s:i}", "code", 3),
	    NULL, "worker_crashed"));
	json_t *node = arb_wait_node(a, "pool/overflow.1", "backoff", 0,
	    ARB_EVENT_MS);
	assert_non_null(node);
	json_decref(node);
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "stop",
	    "name", "pool/overflow.1")));
	assert_true(cl_wait_stat(a, "overflow", 0, 0, ARB_EVENT_MS));
	json_t *pool = arb_status(a, "pool");
	assert_int_equal(arb_node_nchildren(pool), 1);
	json_decref(pool);
	json_t *r = cl_exec_ok(a, "echo", NULL, NULL);	/* worker.1 sleeps */
	assert_string_equal(cl_reply_worker(r), "pool/overflow.1");
	json_decref(r);
	cl_release(a, W1);
	json_decref(cl_recv_ok(c, ARB_REPLY_MS, "the held request"));
	cl_close(c);
	assert_int_equal(arb_stop(a), 0);
}

/* max_waiting = 0: no request waits, so one that finds no idle worker is
 * refused (overloaded) at once; but it is demand all the same, as for one
 * that waits: a lazy worker or an overflow worker is started for it, and
 * the requests after it are served (a lazy pool does not stay down). */
static void
test_no_waiting_still_grows(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = 1; lazy = true; max_waiting = 0; max_overflow = 1; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_decref(cl_exec_err(a, "echo", NULL, NULL, "overloaded"));
	arb_wait_ready_pid(a, W1, 0);
	json_t *r = cl_exec_ok(a, "echo", NULL, NULL);
	assert_string_equal(cl_reply_worker(r), W1);
	json_decref(r);
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    cl_hold_args(CL_HOLD_MS), NULL, "busy", 1);
	json_decref(cl_exec_err(a, "echo", NULL, NULL, "overloaded"));
	arb_wait_ready_pid(a, "pool/overflow.1", 0);
	r = cl_exec_ok(a, "echo", NULL, NULL);	/* worker.1 still sleeps */
	assert_string_equal(cl_reply_worker(r), "pool/overflow.1");
	json_decref(r);
	cl_release(a, W1);
	json_decref(cl_recv_ok(c, ARB_REPLY_MS, "the held request"));
	cl_close(c);
	assert_int_equal(arb_stop(a), 0);
}

/* The pool has been restarted by its parent `restarts` times; the tree
 * then (ctx: the count). */
static bool
pool_restarted(json_t *tree, void *ctx)
{
	json_t *pool = arb_find(tree, "pool");
	const char *st = arb_node_str(pool, "state");
	return arb_node_int(pool, "restarts") == *(json_int_t *)ctx &&
	    st && strcmp(st, "running") == 0;
}

static json_t *
wait_pool_restarted(struct arb *a, json_int_t restarts)
{
	json_t *tree = arb_wait_for(a, pool_restarted, &restarts, ARB_EVENT_MS,
	    "the pool restarted and running");
	assert_non_null(tree);
	return tree;
}

/* A restarted pool starts as a fresh one: its size workers, and an
 * overflow worker only when a request has to wait for one. */
static void
test_restarted_pool_without_overflow(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 1; "
	    "overflow_idle_ms = 60000; checkout_timeout_ms = 15000;",
	    "restart_delay_ms = 0;");
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 2000), NULL, "busy", 1);
	json_t *r = cl_exec_ok(a, "echo", NULL, NULL);
	assert_string_equal(cl_reply_worker(r), "pool/overflow.1");
	json_decref(r);
	json_decref(cl_recv_ok(c, ARB_REPLY_MS, "the held request"));
	cl_close(c);
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "restart",
	    "name", "pool")));
	json_t *tree = wait_pool_restarted(a, 1);
	assert_null(arb_find(tree, "pool/overflow.1"));
	assert_non_null(arb_find(tree, W1));
	json_decref(tree);
	assert_int_equal(cl_stat(a, "overflow"), 0);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	r = cl_exec_ok(a, "echo", NULL, NULL);
	assert_string_equal(cl_reply_worker(r), W1);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* A lazy pool that its parent restarts (its intensity exceeded) starts
 * none of its workers until requests come, as at its first start. */
static void
test_restarted_lazy_pool_waits_for_demand(void **state)
{
	struct arb *a = arb_start(
	    "supervisor = { max_restarts = 100; max_seconds = 60; };\n"
	    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = 1; lazy = true; max_overflow = 0;\n"
	    "  max_restarts = 0; max_seconds = 60; };\n"
	    "worker = { restart_delay_ms = 0; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_t *r = cl_exec_ok(a, "echo", NULL, NULL);	/* starts worker.1 */
	assert_string_equal(cl_reply_worker(r), W1);
	json_decref(r);
	crash_w1(a, json_pack("{s:i}", "code", 3));	/* the pool fails */
	json_t *tree = wait_pool_restarted(a, 1);
	json_t *node = arb_find(tree, W1);
	assert_string_equal(arb_node_str(node, "state"), "stopped");
	assert_true(arb_node_pid(node) <= 0);
	json_decref(tree);
	r = cl_exec_ok(a, "echo", NULL, NULL);		/* demand starts it */
	assert_string_equal(cl_reply_worker(r), W1);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_signal_restarts_permanent_and_transient, arb_teardown),
		cmocka_unit_test_teardown(test_left_down_states, arb_teardown),
		cmocka_unit_test_teardown(test_backoff_doubles_to_max, arb_teardown),
		cmocka_unit_test_teardown(test_backoff_reset_after_long_run, arb_teardown),
		cmocka_unit_test_teardown(test_backoff_max_zero_never_waits, arb_teardown),
		cmocka_unit_test_teardown(test_backoff_state_shown, arb_teardown),
		cmocka_unit_test_teardown(test_recycling_not_counted_as_crash, arb_teardown),
		cmocka_unit_test_teardown(test_recycling_counts_requests_only, arb_teardown),
		cmocka_unit_test_teardown(test_busy_worker_not_pinged, arb_teardown),
		cmocka_unit_test_teardown(test_overflow_counts, arb_teardown),
		cmocka_unit_test_teardown(test_overflow_crash_restarted, arb_teardown),
		cmocka_unit_test_teardown(test_overflow_stopped_in_backoff_removed, arb_teardown),
		cmocka_unit_test_teardown(test_no_waiting_still_grows, arb_teardown),
		cmocka_unit_test_teardown(test_restarted_pool_without_overflow, arb_teardown),
		cmocka_unit_test_teardown(test_restarted_lazy_pool_waits_for_demand, arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
