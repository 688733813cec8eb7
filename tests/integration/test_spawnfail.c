/* A worker spawn that fails (its vfork or one of its pipes), made to fail
 * on demand by tests/shim/spawn_fail.so preloaded into arbord: wherever it
 * happens (a restart after a crash, the retry from backoff, the pool's
 * start, a `start`), it is a crash of a process that never ran. It counts
 * against the supervisor's intensity (a pool that cannot spawn fails and
 * its parent restarts it), waits the restart delay, never less than
 * 100 ms, before the retry (no spin), as a quick death (its previous
 * process's run does not spare it the delay), whatever the restart type
 * a transient worker's included, and leaks no descriptor. A worker's
 * `restarts` counts the restarts made (a process started): one waiting in
 * backoff does not count its restart yet, and a `stop` there cancels it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/xmalloc.h"
#include "tests/integration/harness.h"

#define SHIM	"tests/spawn_fail.so"

/* A pool of one whose own intensity holds, the root's too, unless the
 * test says otherwise (pool_restarts). */
static const char CONF_FMT[] =
    "supervisor = { max_restarts = 100; max_seconds = 60; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { restart = \"%s\"; restart_delay_ms = %d;\n"
    "  max_restart_delay_ms = %d; };\n"
    "pool = { size = 1; max_overflow = 0; max_restarts = %d;\n"
    "  max_seconds = 60; };\n"
    "environments = { dev = { }; };\n";

struct failer {
	char	*file;		/* the shim's control file */
	char	*env[3];	/* ARBOR_SPAWN_FAIL=, LD_PRELOAD=, NULL */
};

/* Writes what the shim reads: "N" (vforks) or "N pipe". */
static void
fail_next(const struct failer *fl, const char *what)
{
	FILE *f = fopen(fl->file, "w");
	if (f == NULL || fputs(what, f) < 0 || fclose(f) != 0)
		fail_msg("cannot write %s", fl->file);
}

/* How many failures the shim has still to make. */
static long
fails_left(const struct failer *fl)
{
	char buf[64] = "";
	FILE *f = fopen(fl->file, "r");
	if (f == NULL || fgets(buf, sizeof buf, f) == NULL)
		fail_msg("cannot read %s", fl->file);
	fclose(f);
	return strtol(buf, NULL, 10);
}

/* Spawns arbord (not yet up) with the shim preloaded, first told to
 * fail what. */
static struct arb *
spawn_failing(struct failer *fl, const char *conf, const char *what)
{
	struct arb *a = arb_new(conf);
	fl->file = xasprintf("%s/spawn_fail", arb_dir(a));
	fail_next(fl, what);
	fl->env[0] = xasprintf("ARBOR_SPAWN_FAIL=%s", fl->file);
	fl->env[1] = arb_preload(SHIM);
	fl->env[2] = NULL;
	arb_spawn(a, "dev", (const char *const *)fl->env);
	return a;
}

/* spawn_failing, and arbord up. */
static struct arb *
start_failing(struct failer *fl, const char *conf, const char *what)
{
	struct arb *a = spawn_failing(fl, conf, what);
	if (arb_wait_ready(a, ARB_START_MS) < 0) {
		arb_dump_log(a);
		fail_msg("arbord did not come up");
	}
	return a;
}

/* arb_stop (expecting exit code), then frees what spawn_failing made
 * (the file's name lives in the arb's dir until then). */
static void
stop_failing(struct arb *a, struct failer *fl, int code)
{
	assert_int_equal(arb_stop(a), code);
	free(fl->file);
	free(fl->env[0]);
	free(fl->env[1]);
}

static char *
conf(const char *restart, int delay_ms, int max_delay_ms, int pool_restarts)
{
	return xasprintf(CONF_FMT, restart, delay_ms, max_delay_ms,
	    pool_restarts);
}

/* pool/worker.1 ready, with a pid other than not_pid; fails otherwise. */
static json_t *
ready_worker(struct arb *a, json_int_t not_pid)
{
	json_t *node = arb_wait_node(a, "pool/worker.1", "ready", not_pid,
	    ARB_EVENT_MS);
	if (node == NULL) {
		arb_dump_log(a);
		fail_msg("pool/worker.1 not ready");
	}
	return node;
}

/* Kills the worker and returns its pid. */
static json_int_t
kill_worker(struct arb *a)
{
	json_t *node = ready_worker(a, 0);
	json_int_t pid = arb_node_pid(node);
	json_decref(node);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	return pid;
}

/* A respawn after a crash that fails twice is retried after the restart
 * delay each time, never at once, and the worker comes back; its
 * restarts count the one restart made. The failed spawns count against
 * the intensity: with the crash, three restarts. */
static void
test_failed_respawn_retried(void **state)
{
	struct failer fl;
	char *c = conf("permanent", 50, 50, 100);
	struct arb *a = start_failing(&fl, c, "0");
	fail_next(&fl, "2");
	json_int_t pid = kill_worker(a);
	json_t *node = ready_worker(a, pid);
	assert_int_equal(arb_node_int(node, "restarts"), 1);
	json_decref(node);
	assert_int_equal(fails_left(&fl), 0);
	assert_int_equal(arb_log_count_lines(a, "pool/worker.1",
	    "cannot spawn: vfork", NULL), 2);
	/* 50 ms after the crash, the 100 ms floor after each failure */
	assert_int_equal(arb_log_count_lines(a, "pool/worker.1",
	    "restarting in 50 ms", NULL), 1);
	assert_int_equal(arb_log_count_lines(a, "pool/worker.1",
	    "restarting in 100 ms", NULL), 2);
	stop_failing(a, &fl, 0);
	free(c);
}

/* Failed spawns count against the pool's intensity: with max_restarts 2,
 * the crash and two failed respawns make the pool give up, and the root
 * restart it (which spawns, the shim done failing). */
static void
test_failed_respawns_exceed_intensity(void **state)
{
	struct failer fl;
	char *c = conf("permanent", 50, 50, 2);
	struct arb *a = start_failing(&fl, c, "0");
	fail_next(&fl, "2");
	json_int_t pid = kill_worker(a);
	json_decref(ready_worker(a, pid));
	assert_true(arb_log_has_line(a, "pool", "giving up", NULL));
	json_t *pool = arb_status(a, "pool");
	assert_non_null(pool);
	assert_int_equal(arb_node_int(pool, "restarts"), 1);
	json_decref(pool);
	stop_failing(a, &fl, 0);
	free(c);
}

/* At the pool's start too: two failed spawns with max_restarts 1 make
 * the pool give up before its worker ever ran. */
static void
test_failed_spawns_at_start_count(void **state)
{
	struct failer fl;
	char *c = conf("permanent", 50, 50, 1);
	struct arb *a = start_failing(&fl, c, "2");
	json_t *node = ready_worker(a, 0);
	json_decref(node);
	assert_int_equal(fails_left(&fl), 0);
	assert_true(arb_log_has_line(a, "pool", "giving up", NULL));
	json_t *pool = arb_status(a, "pool");
	assert_non_null(pool);
	assert_int_equal(arb_node_int(pool, "restarts"), 1);
	json_decref(pool);
	stop_failing(a, &fl, 0);
	free(c);
}

/* Spawns that never succeed make the root give up in the end (arbord
 * exits 1) rather than retry for ever. */
static void
test_spawn_never_possible_gives_up(void **state)
{
	struct failer fl;
	static const char never[] =
	    "supervisor = { max_restarts = 1; max_seconds = 60; };\n"
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { restart_delay_ms = 10; max_restart_delay_ms = 10; };\n"
	    "pool = { size = 2; max_overflow = 0; max_restarts = 2;\n"
	    "  max_seconds = 60; };\n"
	    "environments = { dev = { }; };\n";
	struct arb *a = spawn_failing(&fl, never, "1000000");
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 1);
	assert_true(arb_log_has_line(a, "root", "giving up", NULL));
	/* 2 workers, pool bound 2, three pool starts: a handful, no spin */
	assert_true(arb_log_count_lines(a, "cannot spawn", NULL) <= 12);
	stop_failing(a, &fl, 1);
}

/* A pool that fails at its first failed spawn (max_restarts 0), under a
 * root that keeps restarting it, tries again no more than every 100 ms:
 * not at each loop iteration, a spin of thousands of spawns and log lines
 * a second. Once spawns work again the pool comes back. */
static void
test_failed_spawns_no_spin_through_parent(void **state)
{
	struct failer fl;
	static const char tolerant[] =
	    "supervisor = { max_restarts = 1000000; max_seconds = 1; };\n"
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "pool = { size = 1; max_overflow = 0; max_restarts = 0;\n"
	    "  max_seconds = 60; };\n"
	    "environments = { dev = { }; };\n";
	struct arb *a = start_failing(&fl, tolerant, "0");
	fail_next(&fl, "1000000");
	json_int_t pid = kill_worker(a);
	assert_true(arb_wait_log_line(a, ARB_EVENT_MS, "root", "pool failed",
	    NULL));
	size_t before = arb_log_count_lines(a, "cannot spawn", NULL);
	arb_sleep_ms(1000);	/* a window to count the attempts in */
	size_t made = arb_log_count_lines(a, "cannot spawn", NULL) - before;
	fail_next(&fl, "0");
	/* 10 a second at most (a loaded machine makes fewer) */
	assert_true(made <= 15);
	json_decref(ready_worker(a, pid));
	stop_failing(a, &fl, 0);
}

/* A spawn whose second pipe fails closes the first: arbord holds as many
 * descriptors once the worker is back as before. */
static void
test_failed_pipe_leaks_nothing(void **state)
{
	struct failer fl;
	char *c = conf("permanent", 50, 50, 100);
	struct arb *a = start_failing(&fl, c, "0");
	json_decref(ready_worker(a, 0));
	size_t fds = proc_fd_count(arb_pid(a));
	fail_next(&fl, "3 pipe");
	json_int_t pid = kill_worker(a);
	json_decref(ready_worker(a, pid));
	assert_int_equal(fails_left(&fl), 0);
	assert_int_equal(arb_log_count_lines(a, "pool/worker.1",
	    "cannot spawn: pipe", NULL), 3);
	/* fds may have counted a control connection closing: at most as
	 * many (three leaked pipe ends would be three more); wait, bounded */
	long long end = arb_now_ms() + ARB_EVENT_MS;
	while (proc_fd_count(arb_pid(a)) > fds && arb_now_ms() < end)
		arb_sleep_ms(50);
	assert_true(proc_fd_count(arb_pid(a)) <= fds);
	stop_failing(a, &fl, 0);
	free(c);
}

/* A transient worker stopped (a clean exit) and started again, whose
 * spawn fails, is restarted: a failed spawn is an abnormal end, whatever
 * the previous process's exit was. */
static void
test_transient_failed_start_retried(void **state)
{
	struct failer fl;
	char *c = conf("transient", 50, 50, 100);
	struct arb *a = start_failing(&fl, c, "0");
	json_t *node = ready_worker(a, 0);
	json_int_t pid = arb_node_pid(node);
	json_decref(node);
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "stop",
	    "name", "pool/worker.1")));
	json_decref(arb_wait_node(a, "pool/worker.1", "stopped", 0,
	    ARB_EVENT_MS));
	fail_next(&fl, "2");	/* the start, and its first retry */
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "start",
	    "name", "pool/worker.1")));
	json_decref(ready_worker(a, pid));
	assert_int_equal(fails_left(&fl), 0);
	stop_failing(a, &fl, 0);
	free(c);
}

/* A respawn that fails after a worker ran its healthy 10 s (restarted at
 * once) waits its restart delay: the failed attempt never ran, and the
 * previous process's run does not count for it. */
static void
test_failed_spawn_after_long_run_waits(void **state)
{
	struct failer fl;
	char *c = conf("permanent", 300, 300, 100);
	struct arb *a = start_failing(&fl, c, "0");
	json_decref(ready_worker(a, 0));
	arb_sleep_ms(10500);	/* setup: a run past the healthy 10 s */
	fail_next(&fl, "1");
	json_int_t pid = kill_worker(a);
	json_decref(ready_worker(a, pid));
	assert_int_equal(fails_left(&fl), 0);
	assert_true(arb_log_has_line(a, "pool/worker.1", "cannot spawn", NULL));
	assert_int_equal(arb_log_count_lines(a, "pool/worker.1",
	    "restarting in 300 ms", NULL), 1);
	stop_failing(a, &fl, 0);
	free(c);
}

/* An overflow worker whose spawn fails is logged as started before its
 * failure, and comes up on its retry. */
static void
test_overflow_spawn_fail_logged_in_order(void **state)
{
	struct failer fl;
	struct arb *a = start_failing(&fl,
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "pool = { size = 1; max_overflow = 1; };\n"
	    "environments = { dev = { }; };\n", "0");
	json_decref(ready_worker(a, 0));
	struct arb_conn *busy = arb_conn_open(a);
	assert_non_null(busy);
	json_t *req = json_pack("{s:i,s:s,s:s,s:{s:i}}", "id", 1, "op",
	    "execute", "command", "sleep", "args", "ms", 3000);
	assert_int_equal(arb_conn_send(busy, req), 0);
	json_decref(req);
	arb_await_node(a, "pool/worker.1", "busy");
	fail_next(&fl, "1");
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "execute",
	    "command", "echo")));
	assert_int_equal(fails_left(&fl), 0);
	json_t *reply = arb_conn_recv(busy, ARB_EVENT_MS);
	assert_true(arb_reply_ok(reply));
	json_decref(reply);
	arb_conn_close(busy);
	char *log = arb_log(a);
	const char *started = strstr(log,
	    "pool: all workers busy: starting pool/overflow.1");
	const char *failed = strstr(log, "pool/overflow.1: cannot spawn");
	bool in_order = started && failed && started < failed;
	free(log);
	assert_true(in_order);
	stop_failing(a, &fl, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_failed_respawn_retried,
		    arb_teardown),
		cmocka_unit_test_teardown(test_failed_respawns_exceed_intensity,
		    arb_teardown),
		cmocka_unit_test_teardown(test_failed_spawns_at_start_count,
		    arb_teardown),
		cmocka_unit_test_teardown(test_spawn_never_possible_gives_up,
		    arb_teardown),
		cmocka_unit_test_teardown(
		    test_failed_spawns_no_spin_through_parent, arb_teardown),
		cmocka_unit_test_teardown(test_failed_pipe_leaks_nothing,
		    arb_teardown),
		cmocka_unit_test_teardown(test_transient_failed_start_retried,
		    arb_teardown),
		cmocka_unit_test_teardown(test_failed_spawn_after_long_run_waits,
		    arb_teardown),
		cmocka_unit_test_teardown(
		    test_overflow_spawn_fail_logged_in_order, arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
