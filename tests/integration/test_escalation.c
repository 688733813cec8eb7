/* Escalation end to end (SPEC 4): a supervisor that exceeds its restart
 * intensity stops its children and fails, its parent restarts it, and when
 * the root itself gives up arbord stops everything and exits 1, leaving no
 * process behind and saying why in its log. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

/* Every worker exits 3 at once; the pool fails after 2 restarts, the root
 * restarts it once, then gives up. */
static const char CRASH_POOL_CONF[] =
    "supervisor = { max_restarts = 1; max_seconds = 30; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = {\n"
    "  restart_delay_ms = 0;\n"
    "  env = { MOCK_WORKER_CRASH_AT_START = \"3\"; };\n"
    "};\n"
    "pool = { size = 2; max_restarts = 2; max_seconds = 10; };\n"
    "environments = { dev = { }; };\n";

/* The same in single mode: the bridge supervisor fails instead. */
static const char CRASH_SINGLE_CONF[] =
    "supervisor = { max_restarts = 1; max_seconds = 30; };\n"
    "bridge = { adapter = \"bridge_mock\"; max_restarts = 2; max_seconds = 10; };\n"
    "worker = {\n"
    "  restart_delay_ms = 0;\n"
    "  env = { MOCK_WORKER_CRASH_AT_START = \"3\"; };\n"
    "};\n"
    "environments = { dev = { }; };\n";

/* Healthy workers that the test crashes on demand. */
static const char CRASH_ON_DEMAND_CONF[] =
    "supervisor = { max_restarts = 1; max_seconds = 30; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { restart_delay_ms = 0; };\n"
    "pool = { size = 2; max_restarts = 2; max_seconds = 10; };\n"
    "environments = { dev = { }; };\n";

/* One worker, no room for a restart anywhere: its first crash fails the
 * pool, and that makes the root give up. */
static const char GIVE_UP_AT_ONCE_CONF[] =
    "supervisor = { max_restarts = 0; max_seconds = 30; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { restart_delay_ms = 0; };\n"
    "pool = { size = 1; max_overflow = 0; max_restarts = 0;\n"
    "  max_seconds = 30; checkout_timeout_ms = 60000; };\n"
    "environments = { dev = { }; };\n";

/* The log explains the exit: the root gave up on its restart intensity. */
static void
assert_gave_up_logged(struct arb *a)
{
	static const char *const words[] = { "gave up", "giving up",
	    "intensity", "max_restarts" };
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (arb_log_contains(a, words[i]))
			return;
	fail_msg("the log does not say that the root gave up");
}

/* Runs a config whose workers crash at start until arbord exits. */
static void
run_until_root_gives_up(const char *conf, const char *sup)
{
	struct arb *a = arb_new(conf);
	arb_spawn(a, "dev", NULL);
	int code = arb_wait_exit(a, ARB_EXIT_MS);
	if (code != 1)
		fail_msg("arbord: exit %d, expected 1 (root gave up)", code);
	assert_gave_up_logged(a);
	/* The root restarted the failed supervisor before giving up. */
	if (!arb_log_has_line(a, "root", sup, "restart", NULL))
		fail_msg("no log line says the root restarted %s", sup);
	assert_int_equal(arb_stop(a), 1);	/* also: nothing left behind */
}

static void
test_pool_crashes_root_gives_up(void **state)
{
	run_until_root_gives_up(CRASH_POOL_CONF, "pool");
}

static void
test_bridge_crashes_root_gives_up(void **state)
{
	run_until_root_gives_up(CRASH_SINGLE_CONF, "bridge");
}

/* Crashes one worker through execute: the request fails worker_crashed. */
static void
crash_one(struct arb *a)
{
	json_t *r = arb_call_err(a, json_pack("{s:s, s:s, s:{s:i}}", "op",
	    "execute", "command", "crash", "args", "code", 3),
	    "worker_crashed");
	json_decref(r);
}

struct pool_back {
	json_int_t restarts;
	json_int_t old[2];
};

/* The pool was restarted by the root and runs two new ready workers. */
static bool
pool_back(json_t *tree, void *ctx)
{
	const struct pool_back *w = ctx;
	json_t *pool = arb_find(tree, "pool");
	const char *st = arb_node_str(pool, "state");
	if (st == NULL || strcmp(st, "running") != 0 ||
	    arb_node_int(pool, "restarts") != w->restarts)
		return false;
	json_int_t pids[4];
	if (arb_worker_pids(pool, pids, 4) != 2)
		return false;
	size_t i;
	json_t *kid;
	json_array_foreach(json_object_get(pool, "children"), i, kid) {
		const char *ks = arb_node_str(kid, "state");
		if (ks == NULL || strcmp(ks, "ready") != 0)
			return false;
	}
	for (i = 0; i < 2; i++)
		if (pids[i] == w->old[0] || pids[i] == w->old[1])
			return false;
	return true;
}

/* Three crashes (more than pool.max_restarts = 2) fail the pool once;
 * last gets the worker pids from just before the third. */
static void
exhaust_pool(struct arb *a, json_int_t last[2])
{
	for (int i = 0; i < 3; i++) {
		json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
		assert_non_null(tree);
		assert_int_equal(arb_worker_pids(tree, last, 2), 2);
		json_decref(tree);
		crash_one(a);
	}
}

static void
test_root_restarts_failed_pool(void **state)
{
	struct arb *a = arb_start(CRASH_ON_DEMAND_CONF, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
	assert_non_null(tree);
	json_t *pool = arb_find(tree, "pool");
	struct pool_back w = { arb_node_int(pool, "restarts") + 1, { 0, 0 } };
	assert_int_equal(w.restarts, 1);
	json_decref(tree);

	/* The pool restart replaces both workers of the last generation. */
	exhaust_pool(a, w.old);
	tree = arb_wait_for(a, pool_back, &w, ARB_EVENT_MS,
	    "the pool restarted by the root (restarts 1) with ready workers");
	assert_non_null(tree);
	json_decref(tree);
	json_t *r = arb_op_ok(a, "ping");
	json_decref(r);

	/* Once more: the root's second restart exceeds max_restarts = 1. */
	json_int_t last[2];
	exhaust_pool(a, last);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 1);
	assert_gave_up_logged(a);
	assert_int_equal(arb_stop(a), 1);
}

/* Every request gets its one reply even when the root gives up: the one
 * the worker held fails worker_crashed, those waiting for a worker fail
 * shutting_down, before arbord closes the connection and exits 1. */
static void
test_root_gives_up_answers_waiting(void **state)
{
	struct arb *a = arb_start(GIVE_UP_AT_ONCE_CONF, "dev", NULL);
	json_int_t pid = cl_worker_pid(a, "pool/worker.1");
	assert_true(pid > 0);
	struct cl_conn *c = cl_open(a);
	json_t *reqs = json_pack("[o,o,o,o]",
	    cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 60000), NULL, 0),
	    cl_exec_req(2, "echo", NULL, NULL, 0),
	    cl_exec_req(3, "echo", NULL, NULL, 0),
	    cl_exec_req(4, "echo", NULL, NULL, 0));
	cl_send_batch(c, reqs);
	json_decref(reqs);
	assert_true(cl_wait_stat(a, "waiting", 3, 3, ARB_EVENT_MS));
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	bool seen[5] = { false };
	for (int i = 0; i < 4; i++) {
		json_t *r = cl_recv(c, ARB_EVENT_MS);
		if (r == NULL)
			fail_msg("reply %d of 4 missing (%s)", i + 1,
			    cl_eof(c) ? "connection closed" : "timed out");
		json_int_t id = cl_reply_id(r);
		assert_true(id >= 1 && id <= 4 && !seen[id]);
		seen[id] = true;
		assert_string_equal(arb_reply_code(r), id == 1 ?
		    "worker_crashed" : "shutting_down");
		json_decref(r);
	}
	cl_close(c);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 1);
	assert_gave_up_logged(a);
	assert_int_equal(arb_stop(a), 1);
}

/* `restart pool` while the pool is failing (its intensity exceeded, a
 * worker still finishing its request before it stops) does not undo the
 * failure: the root still counts it, and here gives up. */
static void
test_restart_of_failing_pool_still_counts(void **state)
{
	struct arb *a = arb_start(
	    "supervisor = { max_restarts = 0; max_seconds = 30; };\n"
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { restart_delay_ms = 0; shutdown_timeout_ms = 20000;\n"
	    "  env = { MOCK_WORKER_IGNORE_TERM = \"1\"; }; };\n"
	    "pool = { size = 2; max_overflow = 0; max_restarts = 0;\n"
	    "  max_seconds = 30; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS));
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 3000), NULL, "busy", 1);
	crash_one(a);
	json_t *node = arb_wait_node(a, "pool", "restarting", 0, ARB_EVENT_MS);
	assert_non_null(node);
	json_decref(node);
	json_decref(arb_call_ok(a, json_pack("{s:s, s:s}", "op", "restart",
	    "name", "pool")));
	json_t *r = cl_recv(c, ARB_REPLY_MS);	/* finished under the stop */
	assert_non_null(r);
	json_decref(r);
	cl_close(c);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 1);
	assert_gave_up_logged(a);
	assert_int_equal(arb_stop(a), 1);
}

/* The pool has been restarted by the root at least once. */
static bool
pool_restarted(json_t *tree, void *ctx)
{
	return arb_node_int(arb_find(tree, "pool"), "restarts") >= 1;
}

/* A reload that leaves pool.max_restarts and pool.max_seconds alone (here
 * it changes the log level only) keeps the pool's restart count: the
 * third crash within the window still fails the pool, and the root
 * restarts it. It used to start the window afresh, so a crash loop
 * escaped escalation for as long as reloads kept coming. */
static void
test_reload_keeps_pool_intensity(void **state)
{
	struct arb *a = arb_start(CRASH_ON_DEMAND_CONF, "dev", NULL);
	json_int_t last[2];
	for (int i = 0; i < 2; i++) {
		json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
		assert_non_null(tree);
		assert_int_equal(arb_worker_pids(tree, last, 2), 2);
		json_decref(tree);
		crash_one(a);
	}
	char body[sizeof CRASH_ON_DEMAND_CONF + 64];
	snprintf(body, sizeof body, "%slog = { level = \"debug\"; };\n",
	    CRASH_ON_DEMAND_CONF);
	arb_rewrite_config(a, body);
	json_decref(arb_op_ok(a, "reload"));
	json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
	assert_non_null(tree);
	assert_int_equal(arb_node_int(arb_find(tree, "pool"), "restarts"), 0);
	json_decref(tree);
	crash_one(a);	/* the third within max_seconds: the pool fails */
	tree = arb_wait_for(a, pool_restarted, NULL, ARB_EVENT_MS,
	    "the pool failed on its third crash and the root restarted it");
	assert_non_null(tree);
	json_decref(tree);
	assert_true(arb_log_has_line(a, "root", "pool", "restart", NULL));
	assert_int_equal(arb_stop(a), 0);
}

/* One worker whose pool takes one restart within the minute. */
static const char ONE_RESTART_CONF[] =
    "supervisor = { max_restarts = 5; max_seconds = 60; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { restart_delay_ms = 100; max_restart_delay_ms = 100; };\n"
    "pool = { size = 1; max_overflow = 0; max_restarts = 1;\n"
    "  max_seconds = 60; };\n"
    "environments = { dev = { }; };\n";

/* Polls until is(pid) holds; false after ARB_EVENT_MS. */
static bool
wait_proc(bool (*is)(pid_t), pid_t pid)
{
	long long end = arb_now_ms() + ARB_EVENT_MS;
	while (!is(pid)) {
		if (arb_now_ms() > end)
			return false;
		arb_sleep_ms(5);
	}
	return true;
}

static void
restart_worker1(struct arb *a)
{
	json_t *r = arb_call_ok(a, json_pack("{s:s, s:s}", "op", "restart",
	    "name", "pool/worker.1"));
	assert_string_equal(arb_node_str(r, "restarted"), "pool/worker.1");
	json_decref(r);
}

/* Kills worker.1 (pid) and sends `restart pool/worker.1` after arbord has
 * seen its pipes close but before it can reap it: the test traces the
 * worker, and a traced process's exit is seen by its tracer alone until
 * the tracer waits for it. The ping between makes the restart come in a
 * loop iteration after the one that saw the pipes close. */
static void
crash_then_restart_traced(struct arb *a, json_int_t pid)
{
	if (ptrace(PTRACE_SEIZE, (pid_t)pid, NULL, NULL) < 0)
		fail_msg("ptrace(PTRACE_SEIZE) of worker %lld (the test's own "
		    "grandchild): %s", (long long)pid, strerror(errno));
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	assert_true(wait_proc(proc_is_zombie, (pid_t)pid));
	json_decref(arb_op_ok(a, "ping"));
	restart_worker1(a);
	int st;
	assert_int_equal(waitpid((pid_t)pid, &st, __WALL), (pid_t)pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

/* Kills worker.1 (pid) and sends `restart pool/worker.1` while arbord is
 * stopped: arbord finds the op, the closed pipes and the exit together,
 * whatever order it takes them in. */
static void
crash_then_restart_frozen(struct arb *a, json_int_t pid)
{
	pid_t arbord = arb_pid(a);
	struct cl_conn *c = cl_open(a);
	assert_int_equal(kill(arbord, SIGSTOP), 0);
	bool stopped = wait_proc(proc_is_stopped, arbord);
	json_t *req = json_pack("{s:i, s:s, s:s}", "id", 1, "op", "restart",
	    "name", "pool/worker.1");
	cl_send(c, req);
	json_decref(req);
	kill((pid_t)pid, SIGKILL);
	bool dead = stopped && wait_proc(proc_is_zombie, (pid_t)pid);
	kill(arbord, SIGCONT);
	assert_true(stopped && dead);
	json_t *r = cl_recv_ok(c, ARB_REPLY_MS, "restart");
	json_decref(r);
	cl_close(c);
}

/* The pool restarted by the root (restarts 1), its worker ready. */
static bool
pool_back_once(json_t *tree, void *ctx)
{
	json_t *pool = arb_find(tree, "pool");
	json_t *w = arb_find(tree, "pool/worker.1");
	const char *st = arb_node_str(pool, "state");
	const char *ws = arb_node_str(w, "state");
	return st && strcmp(st, "running") == 0 && ws &&
	    strcmp(ws, "ready") == 0 && arb_node_int(pool, "restarts") == 1;
}

/* A `restart` between a worker's crash and the reaping of its exit does
 * not hide the crash: it counts against the pool's intensity and in the
 * worker's restarts once, as a crash with no restart asked would. With
 * pool.max_restarts = 1, the first such crash restarts the worker, the
 * second fails the pool and the root restarts it. The restart used to
 * stop the dead worker and bring it back as an operator restart, outside
 * the intensity: a crash loop met by restarts never escalated. */
static void
test_restart_in_crash_window_counts_crash(void **state)
{
	struct arb *a = arb_start(ONE_RESTART_CONF, "dev", NULL);
	json_int_t pid = arb_wait_ready_pid(a, "pool/worker.1", 0);
	crash_then_restart_traced(a, pid);
	json_t *node = arb_wait_node(a, "pool/worker.1", "ready", pid,
	    ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_int(node, "restarts"), 1);
	pid = arb_node_pid(node);
	json_decref(node);
	node = arb_status(a, "pool");
	assert_int_equal(arb_node_int(node, "restarts"), 0);
	json_decref(node);

	crash_then_restart_traced(a, pid);	/* the second: the pool fails */
	json_t *tree = arb_wait_for(a, pool_back_once, NULL, ARB_EVENT_MS,
	    "the pool failed on the second crash and the root restarted it");
	assert_non_null(tree);
	assert_int_equal(arb_node_int(arb_find(tree, "pool/worker.1"),
	    "restarts"), 1);
	json_decref(tree);
	assert_true(arb_log_has_line(a, "root", "pool", "restart", NULL));
	assert_true(cl_wait_stat(a, "restarts", 2, 2, ARB_EVENT_MS));
	assert_int_equal(arb_stop(a), 0);
}

/* The same with arbord stopped while the worker dies and the restart
 * arrives, so that it finds both in one loop iteration: a pool with no
 * restart to spare fails and the root restarts it. (libev runs the
 * SIGCHLD watcher before the I/O ones, so arbord takes the exit first
 * here and this holds without the fix too; it checks that the restart
 * coming right after the reap changes nothing. The op before the reap is
 * the traced test's, and test_child's test_crashing_before_reap.) */
static void
test_restart_with_crash_frozen_counts_crash(void **state)
{
	struct arb *a = arb_start(
	    "supervisor = { max_restarts = 5; max_seconds = 60; };\n"
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { restart_delay_ms = 100; max_restart_delay_ms = 100; };\n"
	    "pool = { size = 1; max_overflow = 0; max_restarts = 0;\n"
	    "  max_seconds = 60; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_int_t pid = arb_wait_ready_pid(a, "pool/worker.1", 0);
	crash_then_restart_frozen(a, pid);
	json_t *tree = arb_wait_for(a, pool_back_once, NULL, ARB_EVENT_MS,
	    "the pool failed on the crash and the root restarted it");
	assert_non_null(tree);
	json_decref(tree);
	assert_int_equal(arb_stop(a), 0);
}

/* No restart to spare anywhere, and a long crash-loop delay: a worker
 * killed for a passed deadline must come back at once, outside the
 * intensity, while a crash still makes the root give up. */
static const char DEADLINE_POOL_CONF[] =
    "supervisor = { max_restarts = 0; max_seconds = 60; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { restart_delay_ms = 60000; max_restart_delay_ms = 60000; };\n"
    "pool = { size = 1; max_overflow = 0; max_restarts = 0;\n"
    "  max_seconds = 60; checkout_timeout_ms = 60000; };\n"
    "environments = { dev = { }; };\n";

static const char DEADLINE_SINGLE_CONF[] =
    "supervisor = { max_restarts = 0; max_seconds = 60; };\n"
    "bridge = { adapter = \"bridge_mock\"; max_restarts = 0;\n"
    "  max_seconds = 60; };\n"
    "worker = { restart_delay_ms = 60000; max_restart_delay_ms = 60000; };\n"
    "environments = { dev = { }; };\n";

#define DEADLINE_KILLS	3

/* One `sleep` past its short timeout_ms on worker name (pid), which is
 * killed for it; waits for its replacement and returns its pid. In
 * single mode an `echo` pipelined behind it fails with the worker. */
static json_int_t
time_out_one(struct arb *a, const char *name, json_int_t pid, bool single)
{
	struct cl_conn *c = cl_open(a);
	json_t *reqs = json_pack("[o]", cl_exec_req(1, "sleep",
	    json_pack("{s:i}", "ms", 2000), NULL, 50));
	if (single)
		json_array_append_new(reqs, cl_exec_req(2, "echo", NULL,
		    NULL, 0));
	size_t n = json_array_size(reqs);
	cl_send_batch(c, reqs);
	json_decref(reqs);
	for (size_t i = 0; i < n; i++) {
		json_t *r = cl_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		assert_string_equal(arb_reply_code(r), cl_reply_id(r) == 1 ?
		    "timeout" : "worker_crashed");
		json_decref(r);
	}
	cl_close(c);
	json_int_t next = arb_wait_ready_pid(a, name, pid);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	return next;
}

/* Requests that outlive their timeout_ms get their worker killed and
 * replaced (SPEC: "killed and replaced"): a planned replacement, as a
 * recycle is, counted in the worker's restarts but not against its
 * supervisor's intensity and without the crash-loop delay. With no
 * restart to spare, such kills used to fail the supervisor, and the root
 * gave up: arbord exited 1 on a client's short timeout_ms. A crash after
 * them still exceeds the intensity, and the root gives up. */
static void
run_deadline_kills(const char *conf, const char *sup, const char *name,
    bool single)
{
	struct arb *a = arb_start(conf, "dev", NULL);
	json_int_t pid = arb_wait_ready_pid(a, name, 0);
	for (int i = 0; i < DEADLINE_KILLS; i++)
		pid = time_out_one(a, name, pid, single);
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	json_t *node = arb_status(a, name);
	assert_int_equal(arb_node_int(node, "restarts"), DEADLINE_KILLS);
	json_decref(node);
	node = arb_status(a, sup);
	assert_string_equal(arb_node_str(node, "state"), "running");
	assert_int_equal(arb_node_int(node, "restarts"), 0);
	json_decref(node);
	assert_int_equal(cl_stat(a, "restarts"), DEADLINE_KILLS);

	crash_one(a);	/* a crash: the supervisor fails, the root gives up */
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 1);
	assert_true(arb_log_has_line(a, "root", "more than 0 restarts of",
	    sup, "giving up", NULL));
	assert_int_equal(arb_stop(a), 1);
}

static void
test_pool_deadline_kills_are_planned(void **state)
{
	run_deadline_kills(DEADLINE_POOL_CONF, "pool", "pool/worker.1", false);
}

static void
test_single_deadline_kills_are_planned(void **state)
{
	run_deadline_kills(DEADLINE_SINGLE_CONF, "bridge", "bridge/worker",
	    true);
}

/* A worker its restart type would leave down after a crash is still
 * replaced when it is killed for a passed deadline. */
static void
test_temporary_replaced_after_deadline(void **state)
{
	struct arb *a = arb_start(
	    "supervisor = { max_restarts = 0; max_seconds = 60; };\n"
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { restart = \"temporary\"; };\n"
	    "pool = { size = 1; max_overflow = 0; max_restarts = 0;\n"
	    "  max_seconds = 60; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_int_t pid = arb_wait_ready_pid(a, "pool/worker.1", 0);
	time_out_one(a, "pool/worker.1", pid, false);
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	assert_int_equal(arb_stop(a), 0);
}

/* A `restart` of a worker killed for a passed deadline, before arbord has
 * reaped it (the test traces it, as crash_then_restart_traced does), does
 * not make the kill a crash nor replace the worker twice: it comes back
 * once, counted once, with no restart to spare in the pool or the root. */
static void
test_restart_in_deadline_window(void **state)
{
	struct arb *a = arb_start(DEADLINE_POOL_CONF, "dev", NULL);
	json_int_t pid = arb_wait_ready_pid(a, "pool/worker.1", 0);
	if (ptrace(PTRACE_SEIZE, (pid_t)pid, NULL, NULL) < 0)
		fail_msg("ptrace(PTRACE_SEIZE) of worker %lld (the test's own "
		    "grandchild): %s", (long long)pid, strerror(errno));
	json_decref(arb_call_err(a, cl_exec_req(0, "sleep",
	    json_pack("{s:i}", "ms", 2000), NULL, 50), "timeout"));
	assert_true(wait_proc(proc_is_zombie, (pid_t)pid));
	json_decref(arb_op_ok(a, "ping"));
	restart_worker1(a);
	int st;
	assert_int_equal(waitpid((pid_t)pid, &st, __WALL), (pid_t)pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	pid = arb_wait_ready_pid(a, "pool/worker.1", pid);
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	json_t *node = arb_status(a, "pool/worker.1");
	assert_int_equal(arb_node_int(node, "restarts"), 1);
	assert_int_equal(arb_node_pid(node), pid);	/* not replaced again */
	json_decref(node);
	node = arb_status(a, "pool");
	assert_string_equal(arb_node_str(node, "state"), "running");
	assert_int_equal(arb_node_int(node, "restarts"), 0);
	json_decref(node);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_pool_crashes_root_gives_up, arb_teardown),
		cmocka_unit_test_teardown(test_bridge_crashes_root_gives_up, arb_teardown),
		cmocka_unit_test_teardown(test_root_restarts_failed_pool, arb_teardown),
		cmocka_unit_test_teardown(test_root_gives_up_answers_waiting,
		    arb_teardown),
		cmocka_unit_test_teardown(test_restart_of_failing_pool_still_counts,
		    arb_teardown),
		cmocka_unit_test_teardown(test_reload_keeps_pool_intensity,
		    arb_teardown),
		cmocka_unit_test_teardown(test_restart_in_crash_window_counts_crash,
		    arb_teardown),
		cmocka_unit_test_teardown(test_restart_with_crash_frozen_counts_crash,
		    arb_teardown),
		cmocka_unit_test_teardown(test_pool_deadline_kills_are_planned,
		    arb_teardown),
		cmocka_unit_test_teardown(test_single_deadline_kills_are_planned,
		    arb_teardown),
		cmocka_unit_test_teardown(test_temporary_replaced_after_deadline,
		    arb_teardown),
		cmocka_unit_test_teardown(test_restart_in_deadline_window,
		    arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
