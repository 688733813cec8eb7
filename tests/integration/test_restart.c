/* Restarts end to end: a killed worker comes back under its name with a
 * new pid; stop/start hold and release a worker; `restart pool` replaces
 * the whole subtree; a worker that never answers its init ping is killed
 * after init_timeout_ms, and waits its restart delay even after an
 * init_timeout_ms of 10 s (it never ran); permanent, transient and
 * temporary workers are restarted as OTP would (SPEC 4), and those left
 * down come back when their supervisor is restarted; `start` leaves a
 * crashed worker on its restart path (backoff), also between its kill and
 * its reaping, while a stop then a start of one in backoff brings it up at
 * once, its crash not counted in its restarts (the restart was not made);
 * `restart` of a stopped worker counts in its restarts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

static const char POOL_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { restart_delay_ms = 50; max_restart_delay_ms = 200; };\n"
    "pool = { size = 2; };\n"
    "environments = { dev = { }; };\n";

/* Workers that never answer the init ping; intensities high enough that
 * neither the pool nor the root gives up while the test watches. */
static const char NO_INIT_CONF[] =
    "supervisor = { max_restarts = 100; max_seconds = 60; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = {\n"
    "  init_timeout_ms = 300;\n"
    "  restart_delay_ms = 50; max_restart_delay_ms = 100;\n"
    "  env = { MOCK_WORKER_NO_INIT = \"1\"; };\n"
    "};\n"
    "pool = { size = 1; max_restarts = 100; max_seconds = 60; };\n"
    "environments = { dev = { }; };\n";

/* Starts POOL_CONF and waits for both workers. */
static struct arb *
start_pool(void)
{
	struct arb *a = arb_start(POOL_CONF, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	return a;
}

/* A node of the current tree (new reference); fails if absent. */
static json_t *
node_now(struct arb *a, const char *name)
{
	json_t *node = arb_status(a, name);
	if (node == NULL)
		fail_msg("no status for %s", name);
	return node;
}

static void
test_kill9_worker_comes_back(void **state)
{
	struct arb *a = start_pool();
	json_t *before = node_now(a, "pool/worker.1");
	json_t *other = node_now(a, "pool/worker.2");
	json_t *pool = node_now(a, "pool");
	json_int_t pid = arb_node_pid(before);
	assert_true(pid > 0);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);

	json_t *after = arb_wait_node(a, "pool/worker.1", "ready", pid,
	    ARB_EVENT_MS);
	assert_non_null(after);
	assert_true(arb_node_pid(after) != pid);
	assert_int_equal(arb_node_int(after, "restarts"),
	    arb_node_int(before, "restarts") + 1);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));	/* reaped */

	/* one_for_one: the sibling and the pool itself are untouched. */
	json_t *other2 = node_now(a, "pool/worker.2");
	assert_int_equal(arb_node_pid(other2), arb_node_pid(other));
	assert_int_equal(arb_node_int(other2, "restarts"),
	    arb_node_int(other, "restarts"));
	json_t *pool2 = node_now(a, "pool");
	assert_int_equal(arb_node_int(pool2, "restarts"),
	    arb_node_int(pool, "restarts"));
	json_decref(before), json_decref(after), json_decref(other);
	json_decref(other2), json_decref(pool), json_decref(pool2);
	assert_int_equal(arb_stop(a), 0);
}

/* A stopped worker has no process: no pid, or a null or zero one. */
static void
assert_stopped_node(const json_t *node)
{
	assert_string_equal(arb_node_str(node, "state"), "stopped");
	json_t *pid = json_object_get(node, "pid");
	assert_true(pid == NULL || json_is_null(pid) ||
	    (json_is_integer(pid) && json_integer_value(pid) <= 0));
}

static void
test_stop_holds_until_start(void **state)
{
	struct arb *a = start_pool();
	json_t *before = node_now(a, "pool/worker.2");
	json_int_t pid = arb_node_pid(before);

	json_t *r = arb_call_ok(a, json_pack("{s:s, s:s}", "op", "stop",
	    "name", "pool/worker.2"));
	assert_non_null(arb_node_str(r, "state"));
	json_decref(r);
	json_t *node = arb_wait_node(a, "pool/worker.2", "stopped", 0,
	    ARB_EVENT_MS);
	assert_non_null(node);
	assert_stopped_node(node);
	json_decref(node);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));

	/* It stays down: nothing restarts a worker stopped on request. */
	for (long long end = arb_now_ms() + 1500; arb_now_ms() < end;
	    arb_sleep_ms(100)) {
		node = node_now(a, "pool/worker.2");
		assert_stopped_node(node);
		json_decref(node);
	}
	r = arb_call_ok(a, json_pack("{s:s, s:s}", "op", "start",
	    "name", "pool/worker.2"));
	assert_non_null(arb_node_str(r, "state"));
	json_decref(r);
	node = arb_wait_node(a, "pool/worker.2", "ready", pid, ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_int(node, "restarts"), 0);
	json_decref(node);
	json_decref(before);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_stop_unknown_name(void **state)
{
	struct arb *a = start_pool();
	json_t *r = arb_call_err(a, json_pack("{s:s, s:s}", "op", "stop",
	    "name", "pool/worker.9"), "not_found");
	json_decref(r);
	r = arb_call_err(a, json_pack("{s:s, s:s}", "op", "start",
	    "name", "worker.1"), "not_found");	/* names are full paths */
	json_decref(r);
	r = arb_call_err(a, json_pack("{s:s, s:s}", "op", "restart",
	    "name", "nosuch"), "not_found");
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

struct pool_restarted {
	json_int_t restarts;	/* the pool's count it must reach */
	json_int_t old[2];	/* worker pids it must no longer have */
};

/* The pool was restarted once more and both workers are new and ready. */
static bool
pool_restarted(json_t *tree, void *ctx)
{
	const struct pool_restarted *w = ctx;
	json_t *pool = arb_find(tree, "pool");
	if (arb_node_int(pool, "restarts") != w->restarts)
		return false;
	json_int_t pids[4];
	if (arb_worker_pids(pool, pids, 4) != 2)
		return false;
	for (size_t i = 0; i < 2; i++) {
		char name[32];
		snprintf(name, sizeof name, "pool/worker.%zu", i + 1);
		const char *st = arb_node_str(arb_find(tree, name), "state");
		if (st == NULL || strcmp(st, "ready") != 0)
			return false;
		if (pids[i] == w->old[0] || pids[i] == w->old[1])
			return false;
	}
	return true;
}

/* The restart op on name (the pool or the root): the reply names it, and
 * the pool comes back restarted by its parent (restarts + 1) with two new
 * ready workers, the old ones gone. Returns the tree then. */
static json_t *
restart_expect_new_pool(struct arb *a, const char *name)
{
	json_t *pool = node_now(a, "pool");
	struct pool_restarted w = { arb_node_int(pool, "restarts") + 1,
	    { 0, 0 } };
	assert_int_equal(arb_worker_pids(pool, w.old, 2), 2);
	json_decref(pool);
	json_t *r = arb_call_ok(a, json_pack("{s:s, s:s}", "op", "restart",
	    "name", name));
	assert_string_equal(arb_node_str(r, "restarted"), name);
	json_decref(r);
	json_t *tree = arb_wait_for(a, pool_restarted, &w, ARB_EVENT_MS,
	    "pool restarted with two new ready workers");
	assert_non_null(tree);
	assert_true(proc_wait_gone((pid_t)w.old[0], ARB_EVENT_MS));
	assert_true(proc_wait_gone((pid_t)w.old[1], ARB_EVENT_MS));
	return tree;
}

static void
test_restart_pool_subtree(void **state)
{
	struct arb *a = start_pool();
	json_decref(restart_expect_new_pool(a, "pool"));
	assert_int_equal(arb_stop(a), 0);
}

/* restart root restarts the root's subtree (the root itself runs on):
 * the pool is restarted by its parent (restarts + 1) with new workers. */
static void
test_restart_root_restarts_subtree(void **state)
{
	struct arb *a = start_pool();
	json_t *tree = restart_expect_new_pool(a, "root");
	assert_string_equal(arb_node_str(tree, "state"), "running");
	assert_int_equal(arb_node_int(tree, "restarts"), 0);
	json_decref(tree);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_restart_one_worker(void **state)
{
	struct arb *a = start_pool();
	json_t *w1 = node_now(a, "pool/worker.1");
	json_t *w2 = node_now(a, "pool/worker.2");
	json_t *r = arb_call_ok(a, json_pack("{s:s, s:s}", "op", "restart",
	    "name", "pool/worker.1"));
	assert_string_equal(arb_node_str(r, "restarted"), "pool/worker.1");
	json_decref(r);
	arb_wait_ready_pid(a, "pool/worker.1", arb_node_pid(w1));
	json_t *node = node_now(a, "pool/worker.2");
	assert_int_equal(arb_node_pid(node), arb_node_pid(w2));
	json_decref(node), json_decref(w1), json_decref(w2);
	assert_int_equal(arb_stop(a), 0);
}

/* The op's reply and, pipelined behind it on the same connection, the
 * status of the worker it names: from the op on the worker is stopping
 * until its process is gone (SPEC 4), never ready. */
static void
expect_stopping_behind(struct arb *a, const char *op, const char *name)
{
	struct cl_conn *c = cl_open(a);
	json_t *reqs = json_pack("[{s:i,s:s,s:s},{s:i,s:s,s:s}]",
	    "id", 1, "op", op, "name", name,
	    "id", 2, "op", "status", "name", name);
	cl_send_batch(c, reqs);
	json_decref(reqs);
	for (int k = 0; k < 2; k++) {
		json_t *r = cl_recv_ok(c, ARB_REPLY_MS, op);
		const char *st = arb_node_str(json_object_get(r, "tree"),
		    "state");
		if (cl_reply_id(r) == 2 && (st == NULL ||
		    strcmp(st, "stopping") != 0))
			fail_msg("%s %s, then status: %s", op, name,
			    st ? st : "(no state)");
		json_decref(r);
	}
	cl_close(c);
}

/* restart and stop of a worker: the status asked right behind the op
 * shows it stopping. */
static void
test_stopping_right_after_op(void **state)
{
	struct arb *a = start_pool();
	expect_stopping_behind(a, "restart", "pool/worker.1");
	expect_stopping_behind(a, "stop", "pool/worker.2");
	arb_await_node(a, "pool/worker.2", "stopped");
	arb_await_node(a, "pool/worker.1", "ready");
	assert_int_equal(arb_stop(a), 0);
}

/* One pool worker whose crashes wait a minute in backoff: a restart that
 * comes sooner did not take the crash path. */
static struct arb *
start_slow_backoff(void)
{
	struct arb *a = arb_start(
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { restart_delay_ms = 60000; max_restart_delay_ms = 60000; };\n"
	    "pool = { size = 1; max_overflow = 0; max_restarts = 100;\n"
	    "  max_seconds = 60; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	return a;
}

/* A worker's restart asked while its pool is restarting is done by the
 * pool's own restart: a later crash of that worker is still a crash,
 * restarted after its delay (backoff) and counted against the pool's
 * intensity, not taken for the operator's restart. */
static void
test_worker_restart_within_pool_restart(void **state)
{
	struct arb *a = start_slow_backoff();
	json_int_t pid = arb_wait_ready_pid(a, "pool/worker.1", 0);
	/* Read together: the worker is still stopping for the pool's
	 * restart when its own restart comes. */
	struct cl_conn *c = cl_open(a);
	json_t *reqs = json_pack("[{s:i,s:s,s:s},{s:i,s:s,s:s}]", "id", 1, "op",
	    "restart", "name", "pool", "id", 2, "op", "restart", "name",
	    "pool/worker.1");
	cl_send_batch(c, reqs);
	json_decref(reqs);
	for (int i = 0; i < 2; i++) {
		json_t *r = cl_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		assert_true(arb_reply_ok(r));
		json_decref(r);
	}
	cl_close(c);
	arb_wait_ready_pid(a, "pool/worker.1", pid);
	json_decref(cl_exec_err(a, "crash", json_pack("{s:i}", "code", 3), NULL,
	    "worker_crashed"));
	json_t *node = arb_wait_node(a, "pool/worker.1", "backoff", 0,
	    ARB_EVENT_MS);
	assert_non_null(node);
	json_decref(node);
	assert_int_equal(arb_stop(a), 0);
}

/* What the init-timeout watch has seen of pool/worker.1. */
struct no_init_watch {
	json_int_t pids[64];
	size_t	npids;
	json_int_t restarts;
	bool	ever_ready;
};

/* Records each incarnation; done after three pids and two restarts. */
static bool
no_init_progress(json_t *tree, void *ctx)
{
	struct no_init_watch *w = ctx;
	json_t *node = arb_find(tree, "pool/worker.1");
	const char *st = arb_node_str(node, "state");
	const char *health = arb_node_str(node, "health");
	if ((st && strcmp(st, "ready") == 0) ||
	    (health && strcmp(health, "healthy") == 0))
		w->ever_ready = true;
	json_int_t pid = arb_node_pid(node);
	if (pid > 0 && w->npids < 64 &&
	    (w->npids == 0 || w->pids[w->npids - 1] != pid))
		w->pids[w->npids++] = pid;
	if (arb_node_int(node, "restarts") > w->restarts)
		w->restarts = arb_node_int(node, "restarts");
	return w->ever_ready || (w->npids >= 3 && w->restarts >= 2);
}

static void
test_init_timeout_kills_worker(void **state)
{
	struct arb *a = arb_start(NO_INIT_CONF, "dev", NULL);
	struct no_init_watch w = { .npids = 0 };
	json_t *tree = arb_wait_for(a, no_init_progress, &w, ARB_EVENT_MS,
	    "pool/worker.1 killed and respawned twice");
	assert_non_null(tree);
	json_decref(tree);
	assert_false(w.ever_ready);
	assert_true(w.restarts >= 2);
	assert_true(proc_wait_gone((pid_t)w.pids[0], ARB_EVENT_MS));
	assert_true(proc_wait_gone((pid_t)w.pids[1], ARB_EVENT_MS));

	json_t *r = arb_op_ok(a, "health");
	assert_string_equal(arb_node_str(r, "health"), "down");
	assert_int_equal(arb_node_int(r, "ready"), 0);
	assert_int_equal(arb_node_int(r, "expected"), 1);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* One pool worker with the given restart type. */
static struct arb *
start_typed(const char *restart)
{
	char conf[512];
	snprintf(conf, sizeof conf,
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { restart = \"%s\"; restart_delay_ms = 0; };\n"
	    "pool = { size = 1; };\n"
	    "environments = { dev = { }; };\n", restart);
	struct arb *a = arb_start(conf, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	return a;
}

/* Makes pool/worker.1 exit with code through execute; returns its pid. */
static json_int_t
crash_worker(struct arb *a, int code)
{
	json_t *node = node_now(a, "pool/worker.1");
	json_int_t pid = arb_node_pid(node);
	json_decref(node);
	json_t *r = arb_call_err(a, json_pack("{s:s, s:s, s:{s:i}}", "op",
	    "execute", "command", "crash", "args", "code", code),
	    "worker_crashed");
	json_decref(r);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	return pid;
}

/* Watches pool/worker.1 for ms: it must not come back. */
static void
assert_stays_down(struct arb *a, json_int_t old_pid, int ms)
{
	for (long long end = arb_now_ms() + ms; arb_now_ms() < end;
	    arb_sleep_ms(100)) {
		json_t *tree = arb_status(a, NULL);
		assert_non_null(tree);
		json_t *node = arb_find(tree, "pool/worker.1");
		json_int_t pid = arb_node_pid(node);
		const char *st = arb_node_str(node, "state");
		if ((pid > 0 && pid != old_pid) ||
		    (st != NULL && strcmp(st, "ready") == 0))
			fail_msg("pool/worker.1 was restarted (state %s, pid "
			    "%lld)", st, (long long)pid);
		json_decref(tree);
	}
}

static void
test_temporary_never_restarted(void **state)
{
	struct arb *a = start_typed("temporary");
	json_int_t pid = crash_worker(a, 3);
	assert_stays_down(a, pid, 1500);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_transient_restarted_after_abnormal_exit_only(void **state)
{
	struct arb *a = start_typed("transient");
	json_int_t pid = crash_worker(a, 3);	/* abnormal: restarted */
	json_t *node = arb_wait_node(a, "pool/worker.1", "ready", pid,
	    ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_int(node, "restarts"), 1);
	json_decref(node);
	pid = crash_worker(a, 0);		/* normal: left down */
	assert_stays_down(a, pid, 1500);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_permanent_restarted_after_normal_exit(void **state)
{
	struct arb *a = start_typed("permanent");
	json_int_t pid = crash_worker(a, 0);
	json_t *node = arb_wait_node(a, "pool/worker.1", "ready", pid,
	    ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_int(node, "restarts"), 1);
	json_decref(node);
	assert_int_equal(arb_stop(a), 0);
}

/* {"op": op, "name": name} that must succeed. */
static void
op_on(struct arb *a, const char *op, const char *name)
{
	json_decref(arb_call_ok(a, json_pack("{s:s, s:s}", "op", op, "name",
	    name)));
}

/* A worker its restart type left down (transient after exit 0) comes
 * back when its pool is restarted by the root, as every child of a
 * restarted OTP supervisor starts afresh; one stopped on request stays
 * down. Before, the restarted pool left it down for good. */
static void
test_escalated_pool_revives_ended_worker(void **state)
{
	struct arb *a = arb_start(
	    "supervisor = { max_restarts = 5; max_seconds = 60; };\n"
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { restart = \"transient\"; restart_delay_ms = 0; };\n"
	    "pool = { size = 3; max_overflow = 0; max_restarts = 0;\n"
	    "  max_seconds = 60; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 3, ARB_EVENT_MS));
	op_on(a, "stop", "pool/worker.2");
	op_on(a, "stop", "pool/worker.3");
	arb_await_node(a, "pool/worker.2", "stopped");
	arb_await_node(a, "pool/worker.3", "stopped");
	json_int_t pid = crash_worker(a, 0);	/* worker.1: left down */
	arb_await_node(a, "pool/worker.1", "stopped");
	op_on(a, "start", "pool/worker.2");
	arb_wait_ready_pid(a, "pool/worker.2", 0);
	/* worker.2 crashes: no room for a restart, the pool fails */
	json_decref(cl_exec_err(a, "crash", json_pack("{s:i}", "code", 3),
	    NULL, "worker_crashed"));
	json_t *node = arb_wait_node(a, "pool/worker.1", "ready", pid,
	    ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_int(node, "restarts"), 0);
	json_decref(node);
	arb_wait_ready_pid(a, "pool/worker.2", 0);
	node = node_now(a, "pool");
	assert_int_equal(arb_node_int(node, "restarts"), 1);
	json_decref(node);
	node = node_now(a, "pool/worker.3");
	assert_string_equal(arb_node_str(node, "state"), "stopped");
	json_decref(node);
	assert_int_equal(arb_stop(a), 0);
}

/* The same for `restart bridge` in single mode: a temporary worker that
 * failed is started again by its supervisor's restart. */
static void
test_restarted_bridge_revives_temporary(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { adapter = \"bridge_mock\"; };\n"
	    "worker = { restart = \"temporary\"; restart_delay_ms = 0; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_int_t pid = arb_wait_ready_pid(a, "bridge/worker", 0);
	json_decref(cl_exec_err(a, "crash", json_pack("{s:i}", "code", 3),
	    NULL, "worker_crashed"));
	arb_await_node(a, "bridge/worker", "failed");
	op_on(a, "restart", "bridge");
	arb_wait_ready_pid(a, "bridge/worker", pid);
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	assert_int_equal(arb_stop(a), 0);
}

/* One pool worker that finishes the request in flight under SIGTERM (as
 * the Python SDK's workers do) and then exits at the shutdown frame: a
 * stop lasts as long as that request. worker is more of the worker group. */
static struct arb *
start_term_finisher(const char *worker)
{
	char conf[1024];
	snprintf(conf, sizeof conf,
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { restart_delay_ms = 0; shutdown_timeout_ms = 15000;\n"
	    "  env = { MOCK_WORKER_IGNORE_TERM = \"1\"; }; %s };\n"
	    "pool = { size = 1; max_overflow = 0; };\n"
	    "environments = { dev = { }; };\n", worker);
	struct arb *a = arb_start(conf, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	return a;
}

/* {"op": op, "name": "pool/worker.1"}: the state it replies (NULL: not
 * checked). */
static void
op_on_worker1(struct arb *a, const char *op, const char *state)
{
	json_t *r = arb_call_ok(a, json_pack("{s:s, s:s}", "op", op, "name",
	    "pool/worker.1"));
	if (state)
		assert_string_equal(arb_node_str(r, "state"), state);
	json_decref(r);
}

/* The operator's last word wins: a start that comes while the worker is
 * still stopping brings it back once it is gone, whatever its restart type
 * would make of its clean exit. A stop and a start, not a restart: its
 * restarts stay 0, as after a start that comes once it is stopped. */
static void
test_start_while_stopping(void **state)
{
	struct arb *a = start_term_finisher("restart = \"transient\";");
	json_int_t pid = cl_worker_pid(a, "pool/worker.1");
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1500), NULL, "busy", 1);
	op_on_worker1(a, "stop", "stopping");
	op_on_worker1(a, "start", "stopping");
	json_t *r = cl_recv(c, ARB_REPLY_MS);	/* finished under SIGTERM */
	assert_non_null(r);
	assert_true(arb_reply_ok(r));
	json_decref(r);
	cl_close(c);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	json_t *node = arb_wait_node(a, "pool/worker.1", "ready", pid,
	    ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_int(node, "restarts"), 0);
	json_decref(node);
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	assert_int_equal(arb_stop(a), 0);
}

/* A stop holds even when the request the worker finishes meanwhile is the
 * one that makes it due for recycling (max_requests). */
static void
test_stop_holds_over_recycle(void **state)
{
	struct arb *a = start_term_finisher("max_requests = 1;");
	json_int_t pid = cl_worker_pid(a, "pool/worker.1");
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1500), NULL, "busy", 1);
	op_on_worker1(a, "stop", "stopping");
	json_t *r = cl_recv(c, ARB_REPLY_MS);
	assert_non_null(r);
	assert_true(arb_reply_ok(r));
	json_decref(r);
	cl_close(c);
	json_t *node = arb_wait_node(a, "pool/worker.1", "stopped", 0,
	    ARB_EVENT_MS);
	assert_non_null(node);
	assert_stopped_node(node);
	json_decref(node);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	assert_stays_down(a, pid, 1500);
	assert_int_equal(arb_stop(a), 0);
}

/* Pool workers that take a while to start: worker.1 answers its init ping
 * about 2 s after its spawn, the others about 5 s after theirs. They
 * ignore SIGTERM (only the shutdown frame, read after the init ping, ends
 * them), so a stop sent while worker.1 starts reaches it before it answers
 * the ping. */
static struct arb *
start_slow_starters(void)
{
	char *bin = arb_bin_path("mock_worker");
	char mock[PATH_MAX];
	assert_non_null(realpath(bin, mock));
	free(bin);
	char conf[PATH_MAX + 1024];
	snprintf(conf, sizeof conf,
	    "bridge = { adapter = \"python_pool\"; pooling_enabled = true; };\n"
	    "worker = { command = [ \"/bin/sh\", \"-c\",\n"
	    "    \"trap '' TERM; case $ARBOR_WORKER in *worker.1) sleep 2;;"
	    " *) sleep 5;; esac; exec \\\"$0\\\"\", \"%s\" ];\n"
	    "  env = { MOCK_WORKER_IGNORE_TERM = \"1\"; };\n"
	    "  init_timeout_ms = 15000; shutdown_timeout_ms = 15000; };\n"
	    "pool = { size = 2; max_overflow = 0; checkout_timeout_ms = 15000; };\n"
	    "environments = { dev = { }; };\n", mock);
	return arb_start(conf, "dev", NULL);
}

/* A worker stopped while it starts never becomes ready when it answers
 * its init ping after all: it takes no request (here one that waits for a
 * worker goes to worker.2 when that one is ready) and stays stopped. */
static void
test_stop_while_starting(void **state)
{
	struct arb *a = start_slow_starters();
	json_t *node = node_now(a, "pool/worker.1");
	if (strcmp(arb_node_str(node, "state"), "starting") != 0)
		fail_msg("pool/worker.1 is %s, not starting: the machine is too "
		    "slow for this test", arb_node_str(node, "state"));
	json_int_t pid = arb_node_pid(node);
	json_decref(node);
	op_on_worker1(a, "stop", "stopping");
	struct cl_conn *c = cl_open(a);
	json_t *req = cl_exec_req(1, "echo", NULL, NULL, 0);
	cl_send(c, req);
	json_decref(req);
	json_t *r = cl_recv_ok(c, ARB_REPLY_MS,
	    "the request failed");
	assert_string_equal(cl_reply_worker(r), "pool/worker.2");
	json_decref(r);
	cl_close(c);
	node = arb_wait_node(a, "pool/worker.1", "stopped", 0, ARB_EVENT_MS);
	assert_non_null(node);
	json_decref(node);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	assert_false(arb_log_contains(a, "reply with an unknown id"));
	assert_int_equal(arb_stop(a), 0);
}

/* pool/worker.1 has left pid behind: a new process, or backoff. */
static bool
worker1_moved_on(json_t *tree, void *ctx)
{
	json_t *node = arb_find(tree, "pool/worker.1");
	json_int_t pid = arb_node_pid(node);
	const char *st = arb_node_str(node, "state");
	return (pid > 0 && pid != *(json_int_t *)ctx) ||
	    (st && strcmp(st, "backoff") == 0);
}

/* Waits for pool/worker.1 to leave pid behind and fails unless it waits
 * in backoff, its restarts as before: the restart its crash is due is
 * counted when it is made. */
static void
expect_backoff_after(struct arb *a, json_int_t pid, json_int_t restarts)
{
	json_t *tree = arb_wait_for(a, worker1_moved_on, &pid, ARB_EVENT_MS,
	    "pool/worker.1 restarted or in backoff");
	assert_non_null(tree);
	json_t *node = arb_find(tree, "pool/worker.1");
	assert_string_equal(arb_node_str(node, "state"), "backoff");
	assert_int_equal(arb_node_int(node, "restarts"), restarts);
	json_decref(tree);
}

/* A stop and then a start of a worker waiting out its restart delay bring
 * it up at once, as a restart in backoff does; but the stop cancels the
 * restart its crash was due, and the start is a start: its restarts do
 * not count either (a restart in backoff counts the one it makes). */
static void
test_stop_start_in_backoff(void **state)
{
	struct arb *a = start_slow_backoff();
	json_int_t pid = crash_worker(a, 3);
	expect_backoff_after(a, pid, 0);
	op_on_worker1(a, "stop", "stopped");
	json_t *node = node_now(a, "pool/worker.1");
	assert_string_equal(arb_node_str(node, "state"), "stopped");
	assert_int_equal(arb_node_int(node, "restarts"), 0);
	json_decref(node);
	op_on_worker1(a, "start", NULL);
	node = arb_wait_node(a, "pool/worker.1", "ready", pid, ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_int(node, "restarts"), 0);
	json_decref(node);
	assert_int_equal(arb_log_count_lines(a, "pool/worker.1", "restarting in",
	    NULL), 1);
	assert_int_equal(arb_stop(a), 0);
}

/* A worker that never answers its init ping has not run, however long
 * its init_timeout_ms: killed after 10 s of it, it still waits its
 * restart delay (a run of 10 s counts from the ready). Pool and single
 * mode side by side, so that the test takes the 10 s once. */
static void
test_long_init_timeout_waits_delay(void **state)
{
	static const char worker[] =
	    "supervisor = { max_restarts = 100; max_seconds = 60; };\n"
	    "worker = {\n"
	    "  init_timeout_ms = 10000;\n"
	    "  restart_delay_ms = 200; max_restart_delay_ms = 5000;\n"
	    "  env = { MOCK_WORKER_NO_INIT = \"1\"; };\n"
	    "};\n"
	    "environments = { dev = { }; };\n";
	char pool[1024], single[1024];
	snprintf(pool, sizeof pool, "%s"
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "pool = { size = 1; max_overflow = 0; max_restarts = 100;\n"
	    "  max_seconds = 60; };\n", worker);
	snprintf(single, sizeof single, "%s"
	    "bridge = { adapter = \"bridge_mock\"; max_restarts = 100;\n"
	    "  max_seconds = 60; };\n", worker);
	struct arb *ap = arb_start(pool, "dev", NULL);
	struct arb *as = arb_start(single, "dev", NULL);
	/* the init timeout, then the restart at once or not */
	int bound = 10000 + ARB_EVENT_MS;
	if (!arb_wait_log_line(ap, bound, "pool/worker.1", "restarting in 200 ms",
	    NULL)) {
		arb_dump_log(ap);
		fail_msg("pool/worker.1 restarted without its delay");
	}
	if (!arb_wait_log_line(as, bound, "bridge/worker",
	    "restarting in 200 ms", NULL)) {
		arb_dump_log(as);
		fail_msg("bridge/worker restarted without its delay");
	}
	assert_int_equal(arb_stop(ap), 0);
	assert_int_equal(arb_stop(as), 0);
}

/* start is for a worker stopped on request: one waiting out its restart
 * delay after a crash stays in backoff. */
static void
test_start_keeps_backoff(void **state)
{
	struct arb *a = start_slow_backoff();
	json_int_t pid = crash_worker(a, 3);
	expect_backoff_after(a, pid, 0);
	op_on_worker1(a, "start", "backoff");
	assert_stays_down(a, pid, 1000);
	json_t *node = node_now(a, "pool/worker.1");
	assert_string_equal(arb_node_str(node, "state"), "backoff");
	json_decref(node);
	assert_int_equal(arb_stop(a), 0);
}

/* Kills pool/worker.1 through command (the reply: code; timeout_ms as
 * cl_exec_req's) and sends `start` between the kill and the reaping of
 * its exit: the window is held open by tracing the worker, as a traced
 * process's exit is seen by its tracer (this test) alone until the tracer
 * waits for it, and only then by arbord. Returns the worker's restarts
 * before; *pid is the killed worker's. */
static json_int_t
start_in_kill_window(struct arb *a, const char *command, const char *code,
    int timeout_ms, json_int_t *pid)
{
	*pid = cl_worker_pid(a, "pool/worker.1");
	if (ptrace(PTRACE_SEIZE, (pid_t)*pid, NULL, NULL) < 0)
		fail_msg("ptrace(PTRACE_SEIZE) of worker %lld (the test's own "
		    "grandchild): %s", (long long)*pid, strerror(errno));
	json_decref(arb_call_err(a, cl_exec_req(1, command, NULL, NULL,
	    timeout_ms), code));	/* the worker is killed */
	long long end = arb_now_ms() + ARB_EVENT_MS;
	while (!proc_is_zombie((pid_t)*pid) && arb_now_ms() < end)
		arb_sleep_ms(20);
	assert_true(proc_is_zombie((pid_t)*pid));
	json_t *node = node_now(a, "pool/worker.1");
	assert_string_equal(arb_node_str(node, "state"), "stopping");
	assert_int_equal(arb_node_pid(node), *pid);
	json_int_t restarts = arb_node_int(node, "restarts");
	json_decref(node);
	op_on_worker1(a, "start", "stopping");
	int st;
	assert_int_equal(waitpid((pid_t)*pid, &st, __WALL), (pid_t)*pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	return restarts;
}

/* A start between a worker's kill (a protocol failure) and the reaping of
 * its exit does not turn the crash into an immediate restart: the worker
 * still waits its restart delay. */
static void
test_start_in_kill_window_is_a_crash(void **state)
{
	struct arb *a = start_slow_backoff();
	json_int_t pid;
	json_int_t restarts = start_in_kill_window(a, "garbage",
	    "worker_crashed", 0, &pid);
	expect_backoff_after(a, pid, restarts);
	assert_int_equal(arb_stop(a), 0);
}

/* A worker killed for a missed deadline is replaced at once, not after
 * its restart delay (a planned replacement, not a crash), and a start
 * in the window changes nothing: it is replaced once, counted once. */
static void
test_start_in_deadline_window_replaces_once(void **state)
{
	struct arb *a = start_slow_backoff();
	json_int_t pid;
	json_int_t restarts = start_in_kill_window(a, "hang", "timeout", 300,
	    &pid);
	json_t *node = arb_wait_node(a, "pool/worker.1", "ready", pid,
	    ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_int(node, "restarts"), restarts + 1);
	json_decref(node);
	assert_int_equal(arb_stop(a), 0);
}

/* restart of a worker stopped on request counts in its restarts, as the
 * restart of a running one does: its parent restarted it (SPEC 4). */
static void
test_restart_stopped_worker_counts(void **state)
{
	struct arb *a = start_pool();
	json_int_t pid = cl_worker_pid(a, "pool/worker.1");
	op_on_worker1(a, "restart", NULL);
	json_t *node = arb_wait_node(a, "pool/worker.1", "ready", pid,
	    ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_int(node, "restarts"), 1);
	pid = arb_node_pid(node);
	json_decref(node);
	op_on_worker1(a, "stop", "stopping");
	arb_await_node(a, "pool/worker.1", "stopped");
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	op_on_worker1(a, "restart", NULL);
	node = arb_wait_node(a, "pool/worker.1", "ready", pid, ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_int(node, "restarts"), 2);
	json_decref(node);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_kill9_worker_comes_back, arb_teardown),
		cmocka_unit_test_teardown(test_stop_holds_until_start, arb_teardown),
		cmocka_unit_test_teardown(test_stop_unknown_name, arb_teardown),
		cmocka_unit_test_teardown(test_restart_pool_subtree, arb_teardown),
		cmocka_unit_test_teardown(test_restart_root_restarts_subtree,
		    arb_teardown),
		cmocka_unit_test_teardown(test_restart_one_worker, arb_teardown),
		cmocka_unit_test_teardown(test_stopping_right_after_op,
		    arb_teardown),
		cmocka_unit_test_teardown(test_worker_restart_within_pool_restart,
		    arb_teardown),
		cmocka_unit_test_teardown(test_init_timeout_kills_worker, arb_teardown),
		cmocka_unit_test_teardown(test_temporary_never_restarted, arb_teardown),
		cmocka_unit_test_teardown(test_transient_restarted_after_abnormal_exit_only, arb_teardown),
		cmocka_unit_test_teardown(test_permanent_restarted_after_normal_exit, arb_teardown),
		cmocka_unit_test_teardown(test_escalated_pool_revives_ended_worker,
		    arb_teardown),
		cmocka_unit_test_teardown(test_restarted_bridge_revives_temporary,
		    arb_teardown),
		cmocka_unit_test_teardown(test_start_while_stopping, arb_teardown),
		cmocka_unit_test_teardown(test_stop_holds_over_recycle, arb_teardown),
		cmocka_unit_test_teardown(test_stop_while_starting, arb_teardown),
		cmocka_unit_test_teardown(test_start_keeps_backoff, arb_teardown),
		cmocka_unit_test_teardown(test_stop_start_in_backoff, arb_teardown),
		cmocka_unit_test_teardown(test_long_init_timeout_waits_delay,
		    arb_teardown),
		cmocka_unit_test_teardown(test_start_in_kill_window_is_a_crash,
		    arb_teardown),
		cmocka_unit_test_teardown(test_start_in_deadline_window_replaces_once,
		    arb_teardown),
		cmocka_unit_test_teardown(test_restart_stopped_worker_counts,
		    arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
