/* Graceful shutdown under load (SPEC 7, README "Shutdown").
 *
 * 100 `sleep` 300 ms requests are accepted over 10 connections (some in
 * flight, the rest waiting for one of 25 workers), then SIGTERM: each of
 * them gets exactly one reply, and it is ok; an execute sent once the
 * drain has begun gets shutting_down; arbord exits 0 and leaves no worker.
 * The drain time (SIGTERM to exit) is printed.
 *
 * A second SIGTERM during the drain of long requests ends arbord at once
 * (well within shutdown_timeout_ms), and still every request gets exactly
 * one reply. Workers that ignore SIGTERM, busy with requests that never
 * end, are SIGKILLed after shutdown_timeout_ms and arbord exits 0. A
 * request cut short by the shutdown (its drain time over, or a second
 * signal) gets shutting_down: its worker did not crash, arbord stopped
 * it; so do requests still waiting for a worker when the drain of the
 * shutdown op runs out. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define NCONNS		10
#define PER_CONN	10
#define NREQS		(NCONNS * PER_CONN)
#define SLEEP_MS	300
#define POOL_SIZE	25
#define LONG_MS		10000	/* requests the second SIGTERM cuts short */
#define QUICK_MS	5000	/* "at once": well under the 20 s timeout */
#define DEAF_BOUND_MS	10000	/* deaf workers: 2 x 500 ms, generously */
#define STOP_AFTER_MS	3000	/* last reply -> exit, when nothing is left */

static const char DRAIN_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { shutdown_timeout_ms = 5000; };\n"
    "pool = { size = 25; max_overflow = 0; checkout_timeout_ms = 20000; };\n"
    "environments = { dev = { }; };\n";

static const char LONG_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { shutdown_timeout_ms = 20000; };\n"
    "pool = { size = 2; max_overflow = 0; };\n"
    "environments = { dev = { }; };\n";

/* No session sweep timer: nothing but the requests themselves wakes the
 * loop during the drain. */
static const char QUIET_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { shutdown_timeout_ms = 10000; };\n"
    "pool = { size = 2; max_overflow = 0; session_ttl_ms = 0; };\n"
    "environments = { dev = { }; };\n";

/* A drain shorter than the request in flight. */
static const char CUT_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { shutdown_timeout_ms = 500; };\n"
    "pool = { size = 1; max_overflow = 0; };\n"
    "environments = { dev = { }; };\n";

static const char DEAF_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = {\n"
    "  shutdown_timeout_ms = 500;\n"
    "  env = { MOCK_WORKER_IGNORE_TERM = \"1\"; };\n"
    "};\n"
    "pool = { size = 2; max_overflow = 0; };\n"
    "environments = { dev = { }; };\n";

/* Replies per request id, over every connection. */
struct replies {
	unsigned	 count[NREQS + 1];	/* by id; [0]: unknown ids */
	size_t		 total, bad;
	long long	 last_ms;		/* when the last reply came */
	int		 want_ms;		/* sleep asked for; 0: any */
	bool		 must_be_ok;
	const char	*want_code;		/* an error's code; NULL: any */
};

static void
on_reply(size_t conn, json_t *reply, void *ctx)
{
	struct replies *rs = ctx;
	json_int_t id = cl_reply_id(reply);
	rs->total++;
	rs->last_ms = arb_now_ms();
	rs->count[id >= 1 && id <= NREQS ? id : 0]++;
	bool good = arb_reply_ok(reply) ? rs->want_ms == 0 ||
	    json_integer_value(json_object_get(json_object_get(reply,
	    "result"), "slept")) == rs->want_ms :
	    !rs->must_be_ok && cl_is_spec_code(arb_reply_code(reply)) &&
	    (rs->want_code == NULL ||
	    strcmp(arb_reply_code(reply), rs->want_code) == 0);
	if (!good && rs->bad++ < 5) {
		char *s = cl_describe(reply);
		fprintf(stderr, "bad reply on connection %zu: %s\n", conn, s);
		free(s);
	}
}

/* Pumps the connections until every one has reached EOF (arbord is
 * gone) or timeout_ms passes. */
static void
pump_to_eof(struct cl_conn **conns, size_t n, struct replies *rs,
    int timeout_ms)
{
	long long end = arb_now_ms() + timeout_ms;
	while (cl_pump(conns, n, 50, on_reply, rs) >= 0)
		if (arb_now_ms() >= end)
			fail_msg("connections still open %d ms after the "
			    "shutdown", timeout_ms);
}

/* Fails unless ids 1..n each got exactly one reply and nothing else came. */
static void
assert_one_reply_each(const struct replies *rs, size_t n)
{
	for (size_t id = 1; id <= n; id++)
		if (rs->count[id] != 1)
			fail_msg("request %zu got %u replies before arbord closed"
			    " its connection (SPEC 7: every execute gets exactly"
			    " one reply)", id, rs->count[id]);
	if (rs->count[0] > 0 || rs->total != n)
		fail_msg("%zu replies for %zu requests (%u with unknown ids)",
		    rs->total, n, rs->count[0]);
	if (rs->bad > 0)
		fail_msg("%zu unexpected replies (see above)", rs->bad);
}

/* Sends per_conn `sleep` ms requests on each connection, in one write
 * each; ids 1.. across all. */
static void
send_sleeps(struct cl_conn **conns, size_t n, size_t per_conn, int ms)
{
	json_int_t id = 1;
	for (size_t c = 0; c < n; c++) {
		json_t *batch = json_array();
		for (size_t k = 0; k < per_conn; k++)
			json_array_append_new(batch, cl_exec_req(id++, "sleep",
			    json_pack("{s:i}", "ms", ms), NULL, 0));
		cl_send_batch(conns[c], batch);
		json_decref(batch);
	}
}

/* Polls stats until arbord holds n requests: in flight (busy workers),
 * waiting, or already answered. */
static void
wait_accepted(struct arb *a, json_int_t n)
{
	long long end = arb_now_ms() + ARB_EVENT_MS;
	for (;;) {
		json_t *st = cl_stats(a);
		json_int_t held = arb_node_int(st, "busy") +
		    arb_node_int(st, "waiting") +
		    arb_node_int(st, "total_operations");
		json_decref(st);
		if (held >= n)
			return;
		if (arb_now_ms() >= end)
			fail_msg("arbord holds %lld of %lld requests after %d ms",
			    (long long)held, (long long)n, ARB_EVENT_MS);
		arb_sleep_ms(10);
	}
}

/* Polls the log until arbord says the drain has begun (the signal is
 * handled). */
static void
wait_draining(struct arb *a)
{
	long long end = arb_now_ms() + ARB_EVENT_MS;
	while (!arb_log_has_line(a, "shutting down", NULL)) {
		if (arb_now_ms() >= end)
			fail_msg("no \"shutting down\" in the log %d ms after "
			    "SIGTERM", ARB_EVENT_MS);
		arb_sleep_ms(5);
	}
}

/* Starts conf and waits for n ready pool workers; pids to out. */
static struct arb *
start_pool(const char *conf, size_t n, json_int_t *out)
{
	struct arb *a = arb_start(conf, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", n, ARB_EVENT_MS);
	assert_non_null(tree);
	assert_int_equal(arb_worker_pids(tree, out, n), n);
	json_decref(tree);
	return a;
}

static void
assert_workers_gone(const json_int_t *pids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (proc_exists((pid_t)pids[i]))
			fail_msg("worker %lld outlived arbord (%s)",
			    (long long)pids[i], proc_is_zombie((pid_t)pids[i]) ?
			    "zombie" : "alive");
}

/* A new execute on an open connection during the drain: shutting_down. */
static void
assert_refused_new(struct cl_conn *c)
{
	json_t *req = cl_exec_req(NREQS + 1000, "echo", json_pack("{s:i}",
	    "late", 1), NULL, 0);
	cl_send(c, req);
	json_decref(req);
	json_t *r = cl_recv(c, ARB_REPLY_MS);
	char *s = cl_describe(r);
	if (r == NULL || cl_reply_id(r) != NREQS + 1000 || arb_reply_ok(r) ||
	    strcmp(arb_reply_code(r), "shutting_down") != 0)
		fail_msg("an execute sent during the drain: expected "
		    "shutting_down, got %s", s);
	free(s);
	json_decref(r);
}

static void
close_all(struct cl_conn **conns, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cl_close(conns[i]);
}

/* 100 accepted requests all finish ok through the drain. */
static void
test_sigterm_drains_inflight(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_pool(DRAIN_CONF, POOL_SIZE, pids);
	struct cl_conn *conns[NCONNS], *late = cl_open(a);
	for (size_t i = 0; i < NCONNS; i++)
		conns[i] = cl_open(a);
	send_sleeps(conns, NCONNS, PER_CONN, SLEEP_MS);
	wait_accepted(a, NREQS);

	long long t0 = arb_now_ms();
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	wait_draining(a);
	assert_refused_new(late);
	struct replies rs = { .want_ms = SLEEP_MS, .must_be_ok = true };
	pump_to_eof(conns, NCONNS, &rs, ARB_EXIT_MS);
	int code = arb_wait_exit(a, ARB_EXIT_MS);
	long long drain = arb_now_ms() - t0;
	print_message("drain of %d accepted requests (%d workers, sleep %d "
	    "ms): %lld ms from SIGTERM to exit, last reply at %lld ms; %zu "
	    "replies, %zu ok\n", NREQS, POOL_SIZE, SLEEP_MS, drain,
	    rs.last_ms - t0, rs.total, rs.total - rs.bad);
	assert_one_reply_each(&rs, NREQS);
	assert_int_equal(code, 0);
	assert_workers_gone(pids, POOL_SIZE);
	close_all(conns, NCONNS);
	cl_close(late);
	assert_int_equal(arb_stop(a), 0);
}

/* The drain ends when the last accepted request is answered, not when
 * shutdown_timeout_ms runs out: 4 requests of 300 ms on 2 workers, the
 * clients keeping their connections open. */
static void
test_drain_ends_with_last_request(void **state)
{
	json_int_t pids[2];
	struct arb *a = start_pool(QUIET_CONF, 2, pids);
	struct cl_conn *conns[2] = { cl_open(a), cl_open(a) };
	send_sleeps(conns, 2, 2, SLEEP_MS);
	wait_accepted(a, 4);

	long long t0 = arb_now_ms();
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	struct replies rs = { .want_ms = SLEEP_MS, .must_be_ok = true };
	pump_to_eof(conns, 2, &rs, ARB_EXIT_MS);
	int code = arb_wait_exit(a, ARB_EXIT_MS);
	long long now = arb_now_ms();
	print_message("drain of 4 requests: last reply %lld ms after SIGTERM, "
	    "exit %lld ms after it (shutdown_timeout_ms 10000)\n",
	    rs.last_ms - t0, now - rs.last_ms);
	assert_one_reply_each(&rs, 4);
	assert_int_equal(code, 0);
	if (now - rs.last_ms >= STOP_AFTER_MS)
		fail_msg("arbord exited %lld ms after the last pending request"
		    " was answered (bound %d ms): the drain waited for its "
		    "timeout instead of ending", now - rs.last_ms,
		    STOP_AFTER_MS);
	assert_workers_gone(pids, 2);
	close_all(conns, 2);
	assert_int_equal(arb_stop(a), 0);
}

/* A second SIGTERM cuts a long drain short; the requests still get one
 * reply each: shutting_down (their workers are killed, by arbord). */
static void
test_second_sigterm_stops_at_once(void **state)
{
	json_int_t pids[2];
	struct arb *a = start_pool(LONG_CONF, 2, pids);
	struct cl_conn *conns[2] = { cl_open(a), cl_open(a) };
	json_t *req = cl_exec_req(1, "sleep", json_pack("{s:i}", "ms",
	    LONG_MS), NULL, 0);
	cl_send(conns[0], req);
	json_decref(req);
	req = cl_exec_req(2, "sleep", json_pack("{s:i}", "ms", LONG_MS), NULL, 0);
	cl_send(conns[1], req);
	json_decref(req);
	assert_true(cl_wait_stat(a, "busy", 2, 2, ARB_EVENT_MS));

	assert_int_equal(arb_kill(a, SIGTERM), 0);
	wait_draining(a);
	long long t1 = arb_now_ms();
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	int code = arb_wait_exit(a, ARB_EXIT_MS);
	long long took = arb_now_ms() - t1;
	print_message("second SIGTERM: arbord exited %d after %lld ms "
	    "(shutdown_timeout_ms 20000)\n", code, took);
	struct replies rs = { .want_code = "shutting_down" };
	pump_to_eof(conns, 2, &rs, ARB_EXIT_MS);
	if (took >= QUICK_MS)
		fail_msg("arbord took %lld ms to exit after the second SIGTERM",
		    took);
	assert_int_equal(code, 0);
	assert_workers_gone(pids, 2);
	close_all(conns, 2);
	assert_int_equal(arb_stop(a), 0);
	assert_one_reply_each(&rs, 2);
}

/* Workers deaf to SIGTERM and stuck in a request: SIGKILLed on time. */
static void
test_deaf_workers_killed_on_time(void **state)
{
	json_int_t pids[2];
	struct arb *a = start_pool(DEAF_CONF, 2, pids);
	struct cl_conn *conns[2] = { cl_open(a), cl_open(a) };
	for (json_int_t i = 0; i < 2; i++) {
		json_t *req = cl_exec_req(i + 1, "hang", NULL, NULL, 0);
		cl_send(conns[i], req);
		json_decref(req);
	}
	assert_true(cl_wait_stat(a, "busy", 2, 2, ARB_EVENT_MS));

	long long t0 = arb_now_ms();
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	int code = arb_wait_exit(a, DEAF_BOUND_MS);
	long long took = arb_now_ms() - t0;
	print_message("deaf busy workers: arbord exited %d after %lld ms "
	    "(shutdown_timeout_ms 500: drain, then TERM -> KILL)\n", code,
	    took);
	struct replies rs = { .want_code = "shutting_down" };
	pump_to_eof(conns, 2, &rs, ARB_EXIT_MS);
	assert_int_equal(code, 0);
	assert_workers_gone(pids, 2);
	assert_true(arb_log_has_line(a, "pool/worker.1", "SIGKILL", NULL));
	assert_true(arb_log_has_line(a, "pool/worker.2", "SIGKILL", NULL));
	close_all(conns, 2);
	assert_int_equal(arb_stop(a), 0);
	assert_one_reply_each(&rs, 2);
}

/* A request still running when the drain's time is up gets shutting_down
 * once the tree stops (shutdown frame, SIGTERM): not worker_crashed, as
 * if the worker had died under it. */
static void
test_drain_timeout_cuts_with_shutting_down(void **state)
{
	json_int_t pids[1];
	struct arb *a = start_pool(CUT_CONF, 1, pids);
	struct cl_conn *conns[1] = { cl_open(a) };
	send_sleeps(conns, 1, 1, LONG_MS);
	assert_true(cl_wait_stat(a, "busy", 1, 1, ARB_EVENT_MS));

	assert_int_equal(arb_kill(a, SIGTERM), 0);
	int code = arb_wait_exit(a, ARB_EXIT_MS);
	struct replies rs = { .want_code = "shutting_down" };
	pump_to_eof(conns, 1, &rs, ARB_EXIT_MS);
	assert_int_equal(code, 0);
	assert_workers_gone(pids, 1);
	close_all(conns, 1);
	assert_int_equal(arb_stop(a), 0);
	assert_one_reply_each(&rs, 1);
}

/* The shutdown op with requests waiting for a worker, the drain shorter
 * than the one in flight: the waiting ones are failed when the drain's
 * time is up, the one in flight when the tree stops, each exactly once
 * and with shutting_down (SPEC 7). */
static void
test_shutdown_op_fails_waiting_once(void **state)
{
	json_int_t pids[1];
	struct arb *a = start_pool(CUT_CONF, 1, pids);
	struct cl_conn *conns[1] = { cl_open(a) };
	send_sleeps(conns, 1, 4, LONG_MS);
	wait_accepted(a, 4);
	assert_true(cl_wait_stat(a, "waiting", 3, 3, ARB_EVENT_MS));

	json_decref(arb_op_ok(a, "shutdown"));
	int code = arb_wait_exit(a, ARB_EXIT_MS);
	struct replies rs = { .want_code = "shutting_down" };
	pump_to_eof(conns, 1, &rs, ARB_EXIT_MS);
	assert_int_equal(code, 0);
	assert_workers_gone(pids, 1);
	close_all(conns, 1);
	assert_int_equal(arb_stop(a), 0);
	assert_one_reply_each(&rs, 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_sigterm_drains_inflight, arb_teardown),
		cmocka_unit_test_teardown(test_drain_ends_with_last_request, arb_teardown),
		cmocka_unit_test_teardown(test_second_sigterm_stops_at_once, arb_teardown),
		cmocka_unit_test_teardown(test_deaf_workers_killed_on_time, arb_teardown),
		cmocka_unit_test_teardown(test_drain_timeout_cuts_with_shutting_down,
		    arb_teardown),
		cmocka_unit_test_teardown(test_shutdown_op_fails_waiting_once,
		    arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
