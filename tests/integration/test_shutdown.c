/* Graceful shutdown end to end (SPEC 7): SIGTERM, SIGINT, the shutdown op
 * and `arborctl shutdown` each stop the tree, remove the socket and exit 0
 * with no zombie and no orphan; a worker deaf to SIGTERM is killed after
 * shutdown_timeout_ms; a request in flight finishes, a new one is refused
 * with shutting_down, and so are restart, start and reload; a repeated
 * shutdown op, or one SIGTERM after the op, does not cut the drain short
 * (only a second signal does: test_drain, and it does not wait for
 * replies a client leaves unread either). Workers die with a SIGKILLed
 * arbord, whose stale socket the next one replaces; a second arbord on a
 * live socket exits 1. Two signals that come before the event loop first
 * runs still count as two. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/xmalloc.h"

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

static const char POOL_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "pool = { size = 3; };\n"
    "environments = { dev = { }; };\n";

static const char SINGLE_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; };\n"
    "environments = { dev = { }; };\n";

static const char DEAF_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = {\n"
    "  shutdown_timeout_ms = 500;\n"
    "  env = { MOCK_WORKER_IGNORE_TERM = \"1\"; };\n"
    "};\n"
    "pool = { size = 2; };\n"
    "environments = { dev = { }; };\n";

/* Replies unread at the stop are waited for up to a minute. */
static const char UNREAD_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { shutdown_timeout_ms = 60000; };\n"
    "pool = { size = 1; };\n"
    "environments = { dev = { }; };\n";

static const char SLOW_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { shutdown_timeout_ms = 10000; };\n"
    "pool = { size = 1; };\n"
    "environments = { dev = { }; };\n";

/* Starts conf and waits until the n workers under parent are ready;
 * their pids go to pids. */
static struct arb *
start_ready(const char *conf, const char *parent, size_t n, json_int_t *pids)
{
	struct arb *a = arb_start(conf, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, parent, n, ARB_EVENT_MS);
	assert_non_null(tree);
	assert_int_equal(arb_worker_pids(tree, pids, n), n);
	json_decref(tree);
	return a;
}

/* After arbord's exit: exit 0, socket gone, every worker gone from /proc
 * (neither running nor a zombie). arb_stop() then checks for orphans. */
static void
assert_clean_exit(struct arb *a, const json_int_t *pids, size_t n)
{
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 0);
	assert_int_equal(access(arb_socket_path(a), F_OK), -1);
	for (size_t i = 0; i < n; i++)
		if (proc_exists((pid_t)pids[i]))
			fail_msg("worker pid %lld still exists (%s) after "
			    "arbord's exit", (long long)pids[i],
			    proc_is_zombie((pid_t)pids[i]) ? "zombie" : "alive");
	assert_int_equal(arb_stop(a), 0);
}

static void
test_sigterm(void **state)
{
	json_int_t pids[3];
	struct arb *a = start_ready(POOL_CONF, "pool", 3, pids);
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	assert_clean_exit(a, pids, 3);
}

static void
test_sigint(void **state)
{
	json_int_t pids[1];
	struct arb *a = start_ready(SINGLE_CONF, "bridge", 1, pids);
	assert_int_equal(arb_kill(a, SIGINT), 0);
	assert_clean_exit(a, pids, 1);
}

static void
test_shutdown_op(void **state)
{
	json_int_t pids[3];
	struct arb *a = start_ready(POOL_CONF, "pool", 3, pids);
	json_t *r = arb_op_ok(a, "shutdown");
	assert_true(json_is_true(json_object_get(r, "stopping")));
	json_decref(r);
	assert_clean_exit(a, pids, 3);
}

static void
test_arborctl_shutdown(void **state)
{
	json_int_t pids[1];
	struct arb *a = start_ready(SINGLE_CONF, "bridge", 1, pids);
	assert_int_equal(arb_ctl(a, NULL, 0, "shutdown", NULL), 0);
	assert_clean_exit(a, pids, 1);
}

/* Workers ignoring SIGTERM are killed after shutdown_timeout_ms. */
static void
test_deaf_workers_killed(void **state)
{
	json_int_t pids[2];
	struct arb *a = start_ready(DEAF_CONF, "pool", 2, pids);
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	assert_clean_exit(a, pids, 2);
}

/* A connection with a sleep of ms (id 1) in flight on pool/worker.1. */
static struct arb_conn *
sleep_in_flight(struct arb *a, int ms)
{
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	json_t *req = json_pack("{s:i, s:s, s:s, s:{s:i}}", "id", 1, "op",
	    "execute", "command", "sleep", "args", "ms", ms);
	assert_int_equal(arb_conn_send(c, req), 0);
	json_decref(req);
	json_t *node = arb_wait_node(a, "pool/worker.1", "busy", 0,
	    ARB_EVENT_MS);
	assert_non_null(node);
	json_decref(node);
	return c;
}

/* A worker still stopping when the tree stops: the one pool worker,
 * deaf to SIGTERM and busy with a long sleep, outlives the drain. */
static bool
pool_worker_stopping(json_t *tree, void *ctx)
{
	json_t *w = arb_find(tree, "pool/worker.1");
	return w != NULL && arb_node_str(w, "state") != NULL &&
	    strcmp(arb_node_str(w, "state"), "stopping") == 0;
}

/* A supervisor stopping its children is shown as running (SPEC 4's four
 * states), and a running supervisor has been up since its start: its
 * uptime_ms does not drop to 0 while the children stop. */
static void
test_stopping_pool_keeps_uptime(void **state)
{
	json_int_t pids[1];
	struct arb *a = start_ready(
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { shutdown_timeout_ms = 3000;\n"
	    "  env = { MOCK_WORKER_IGNORE_TERM = \"1\"; }; };\n"
	    "pool = { size = 1; };\n"
	    "environments = { dev = { }; };\n", "pool", 1, pids);
	struct arb_conn *slow = sleep_in_flight(a, 60000);
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	json_t *tree = arb_wait_for(a, pool_worker_stopping, NULL,
	    ARB_EVENT_MS, "pool/worker.1 stopping");
	assert_non_null(tree);
	json_t *pool = arb_find(tree, "pool");
	assert_string_equal(arb_node_str(pool, "state"), "running");
	assert_true(arb_node_int(pool, "uptime_ms") >= 3000);
	assert_true(arb_node_int(tree, "uptime_ms") >=
	    arb_node_int(pool, "uptime_ms"));
	json_decref(tree);
	arb_conn_close(slow);
	assert_clean_exit(a, pids, 1);
}

/* A request in flight when shutdown begins still gets its reply; a new
 * request on an open connection gets shutting_down. */
static void
test_inflight_finishes(void **state)
{
	json_int_t pids[1];
	struct arb *a = start_ready(SLOW_CONF, "pool", 1, pids);
	struct arb_conn *slow = sleep_in_flight(a, 2000);
	struct arb_conn *late = arb_conn_open(a);
	assert_non_null(late);

	json_t *r = arb_op_ok(a, "shutdown");
	json_decref(r);
	json_t *req = json_pack("{s:i, s:s, s:s}", "id", 2, "op", "execute",
	    "command", "ping");
	if (arb_conn_send(late, req) < 0 ||
	    (r = arb_conn_recv(late, ARB_REPLY_MS)) == NULL)
		fail_msg("a request sent while shutting down got no reply");
	json_decref(req);
	assert_int_equal(arb_node_int(r, "id"), 2);
	assert_false(arb_reply_ok(r));
	assert_string_equal(arb_reply_code(r), "shutting_down");
	json_decref(r);

	if ((r = arb_conn_recv(slow, ARB_REPLY_MS)) == NULL)
		fail_msg("the request in flight at shutdown got no reply");
	assert_int_equal(arb_node_int(r, "id"), 1);
	if (!arb_reply_ok(r))
		fail_msg("the request in flight at shutdown failed: %s",
		    arb_reply_code(r));
	json_decref(r);
	arb_conn_close(slow);
	arb_conn_close(late);
	assert_clean_exit(a, pids, 1);
}

/* Waits for the reply to the sleep in flight on slow (id 1): it must be
 * a success, the drain not cut short. */
static void
expect_sleep_done(struct arb_conn *slow, const char *after)
{
	json_t *r = arb_conn_recv(slow, ARB_REPLY_MS);
	if (r == NULL)
		fail_msg("the request in flight got no reply after %s", after);
	assert_int_equal(arb_node_int(r, "id"), 1);
	if (!arb_reply_ok(r))
		fail_msg("the request in flight failed after %s: %s", after,
		    arb_reply_code(r));
	json_decref(r);
}

/* The shutdown op only ever starts the drain: a second one (a retrying
 * script, a second operator) gets stopping: true again and the request
 * in flight still finishes. */
static void
test_second_shutdown_op_drains(void **state)
{
	json_int_t pids[1];
	struct arb *a = start_ready(SLOW_CONF, "pool", 1, pids);
	struct arb_conn *slow = sleep_in_flight(a, 2000);
	for (int i = 0; i < 2; i++) {
		json_t *r = arb_op_ok(a, "shutdown");
		assert_true(json_is_true(json_object_get(r, "stopping")));
		json_decref(r);
	}
	expect_sleep_done(slow, "two shutdown ops");
	arb_conn_close(slow);
	assert_clean_exit(a, pids, 1);
}

/* A SIGTERM after the shutdown op (a service manager's stop command, then
 * its SIGTERM) is the first signal: it does not force either. */
static void
test_sigterm_after_shutdown_op_drains(void **state)
{
	json_int_t pids[1];
	struct arb *a = start_ready(SLOW_CONF, "pool", 1, pids);
	struct arb_conn *slow = sleep_in_flight(a, 3000);
	json_decref(arb_op_ok(a, "shutdown"));
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	expect_sleep_done(slow, "the shutdown op and one SIGTERM");
	arb_conn_close(slow);
	assert_clean_exit(a, pids, 1);
}

/* Sends req (stolen) and checks the reply is a shutting_down error. */
static void
expect_shutting_down(struct arb *a, json_t *req)
{
	json_t *r = arb_call(a, req);
	if (r == NULL)
		fail_msg("no reply while shutting down");
	if (arb_reply_ok(r) || strcmp(arb_reply_code(r), "shutting_down") != 0)
		fail_msg("expected shutting_down, got %s", arb_reply_ok(r) ?
		    "ok" : arb_reply_code(r));
	json_decref(r);
}

/* A reply still queued for a client when the tree is down (a large one,
 * not read yet) is written whole before arbord closes the connection and
 * exits: arbord used to close at once, cutting the reply short. */
static void
test_reply_unread_at_stop_delivered(void **state)
{
	enum { BIG = 4 << 20 };
	json_int_t pids[1];
	struct arb *a = start_ready(SLOW_CONF, "pool", 1, pids);
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	json_t *req = json_pack("{s:i, s:s, s:s, s:{s:i}}", "id", 1, "op",
	    "execute", "command", "big", "args", "bytes", BIG);
	assert_int_equal(arb_conn_send(c, req), 0);
	json_decref(req);
	/* Made, queued for us, not read: then SIGTERM. */
	assert_true(cl_wait_stat(a, "successful_operations", 1, 1,
	    ARB_EVENT_MS));
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	/* The worker stops once the drain is over, the reply made. */
	if (!proc_wait_gone((pid_t)pids[0], ARB_EXIT_MS))
		fail_msg("the worker did not stop after SIGTERM");
	json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
	if (r == NULL)
		fail_msg("the reply was cut short (%s)", arb_conn_closed(c, 0) ?
		    "connection closed" : "timed out");
	assert_int_equal(arb_node_int(r, "id"), 1);
	assert_true(arb_reply_ok(r));
	json_decref(r);
	arb_conn_close(c);
	assert_clean_exit(a, pids, 1);
}

/* Starts arbord (UNREAD_CONF), has a client ask for a 4 MiB reply it
 * does not read, and stops arbord with SIGTERM: returns once the tree is
 * down, arbord waiting for the reply to be read; *c is that client. */
static struct arb *
stopped_with_reply_unread(struct arb_conn **c)
{
	enum { BIG = 4 << 20 };
	json_int_t pids[1];
	struct arb *a = start_ready(UNREAD_CONF, "pool", 1, pids);
	*c = arb_conn_open(a);
	assert_non_null(*c);
	json_t *req = json_pack("{s:i, s:s, s:s, s:{s:i}}", "id", 1, "op",
	    "execute", "command", "big", "args", "bytes", BIG);
	assert_int_equal(arb_conn_send(*c, req), 0);
	json_decref(req);
	assert_true(cl_wait_stat(a, "successful_operations", 1, 1,
	    ARB_EVENT_MS));
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	if (!proc_wait_gone((pid_t)pids[0], ARB_EXIT_MS) ||
	    !arb_wait_log_line(a, ARB_EVENT_MS, "pool: stopped", NULL))
		fail_msg("the tree did not stop after SIGTERM");
	return a;
}

/* A second signal forces the stop also once the tree is down: arbord no
 * longer waits for a client that does not read its reply (it waited out
 * shutdown_timeout_ms, here a minute, while its log said "killing workers
 * now"). */
static void
test_second_signal_cuts_unread_wait(void **state)
{
	struct arb_conn *c;
	struct arb *a = stopped_with_reply_unread(&c);
	/* The tree is down, the reply still unread: the second signal. */
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	long long t = arb_now_ms();
	int rc = arb_wait_exit(a, ARB_EXIT_MS);
	if (rc != 0)
		fail_msg("arbord did not exit 0 after the second signal "
		    "(rc %d after %lld ms)", rc, arb_now_ms() - t);
	assert_true(arb_log_has_line(a, "second signal", "still unread",
	    NULL));
	assert_int_equal(access(arb_socket_path(a), F_OK), -1);
	assert_true(arb_conn_closed(c, ARB_REPLY_MS));
	arb_conn_close(c);
	assert_int_equal(arb_stop(a), 0);
}

/* Signals beyond the second, or coming once arbord has stopped, do
 * nothing: the second and a third come together (held back while arbord
 * is stopped with SIGSTOP) while it waits for an unread reply; the
 * second ends it, and the third logged "killing workers now" after
 * "arbord: stopped". */
static void
test_third_signal_logs_nothing(void **state)
{
	struct arb_conn *c;
	struct arb *a = stopped_with_reply_unread(&c);
	assert_int_equal(arb_kill(a, SIGSTOP), 0);
	long long t0 = arb_now_ms();
	while (!proc_is_stopped(arb_pid(a)) && arb_now_ms() - t0 < ARB_EVENT_MS)
		arb_sleep_ms(5);
	bool held = proc_is_stopped(arb_pid(a));
	int sent = arb_kill(a, SIGTERM) | arb_kill(a, SIGINT);
	assert_int_equal(arb_kill(a, SIGCONT), 0);
	assert_true(held);
	assert_int_equal(sent, 0);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 0);
	assert_true(arb_log_has_line(a, "second signal", "still unread",
	    NULL));
	assert_false(arb_log_contains(a, "killing workers now"));
	arb_conn_close(c);
	assert_int_equal(arb_stop(a), 0);
}

/* Nothing is started again once shutdown has begun: restart, start and
 * reload are refused with shutting_down and SIGHUP is ignored, so the
 * shutdown ends as it would have (a pool restarted then would never let
 * it finish). */
static void
test_nothing_restarts_while_draining(void **state)
{
	json_int_t pids[1];
	struct arb *a = start_ready(SLOW_CONF, "pool", 1, pids);
	struct arb_conn *slow = sleep_in_flight(a, 1500);

	json_decref(arb_op_ok(a, "shutdown"));
	expect_shutting_down(a, json_pack("{s:s, s:s}", "op", "restart",
	    "name", "pool"));
	expect_shutting_down(a, json_pack("{s:s, s:s}", "op", "restart",
	    "name", "root"));
	expect_shutting_down(a, json_pack("{s:s, s:s}", "op", "restart",
	    "name", "pool/worker.1"));
	expect_shutting_down(a, json_pack("{s:s, s:s}", "op", "start",
	    "name", "pool/worker.1"));
	expect_shutting_down(a, json_pack("{s:s}", "op", "reload"));
	assert_int_equal(arb_kill(a, SIGHUP), 0);
	json_t *r = arb_conn_recv(slow, ARB_REPLY_MS);
	if (r == NULL || !arb_reply_ok(r))
		fail_msg("the request in flight at shutdown did not succeed");
	json_decref(r);
	arb_conn_close(slow);
	assert_clean_exit(a, pids, 1);
}

/* Reaps pid, a worker handed to us when arbord died: true once it has
 * exited (it must die of arbord's death, not linger). */
static bool
reap_orphan(pid_t pid, int timeout_ms)
{
	long long end = arb_now_ms() + timeout_ms;
	while (proc_exists(pid)) {
		if (proc_ppid(pid) == getpid() && waitpid(pid, NULL,
		    WNOHANG) == pid)
			return true;
		if (arb_now_ms() >= end)
			return false;
		arb_sleep_ms(20);
	}
	return true;
}

/* Workers never outlive arbord, even a SIGKILLed one; the socket file it
 * leaves is replaced by the next arbord. */
static void
test_sigkill_takes_workers_along(void **state)
{
	json_int_t pids[3];
	struct arb *a = start_ready(POOL_CONF, "pool", 3, pids);
	assert_int_equal(arb_kill(a, SIGKILL), 0);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 128 + SIGKILL);
	for (size_t i = 0; i < 3; i++)
		if (!reap_orphan((pid_t)pids[i], ARB_EVENT_MS))
			fail_msg("worker %lld outlived a SIGKILLed arbord",
			    (long long)pids[i]);
	assert_int_equal(access(arb_socket_path(a), F_OK), 0);	/* stale */

	arb_spawn(a, "dev", NULL);
	assert_int_equal(arb_wait_ready(a, ARB_START_MS), 0);
	json_t *tree = arb_wait_all_ready(a, "pool", 3, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	assert_int_equal(arb_stop(a), 0);
}

/* A second arbord on the socket of a live one exits 1 naming its pid,
 * and leaves the first one's socket alone. */
static void
test_second_arbord_refused(void **state)
{
	json_int_t pids[1];
	struct arb *a = start_ready(SINGLE_CONF, "bridge", 1, pids);
	char *conf = xasprintf("bridge = { adapter = \"bridge_mock\"; };\n"
	    "control = { socket = \"%s\"; };\n"
	    "environments = { dev = { }; };\n", arb_socket_path(a));
	struct arb *b = arb_new(conf);
	free(conf);
	arb_spawn(b, "dev", NULL);
	assert_int_equal(arb_wait_exit(b, ARB_EXIT_MS), 1);
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)arb_pid(a));
	if (!arb_log_contains(b, pid)) {
		arb_dump_log(b);
		fail_msg("the second arbord does not name pid %s", pid);
	}
	assert_int_equal(arb_stop(b), 1);
	json_t *r = arb_op_ok(a, "ping");
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* ---- two signals before the loop runs ---- */

/* The system call pid is blocked in (/proc/PID/syscall), -1 if none. */
static long
proc_syscall(pid_t pid)
{
	char path[64];
	long nr = -1;
	snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return -1;
	if (fscanf(f, "%ld", &nr) != 1)
		nr = -1;
	fclose(f);
	return nr;
}

/* Whether sig is pending for pid, to the thread or the process. */
static bool
proc_sig_pending(pid_t pid, int sig)
{
	char path[64], line[256];
	bool pending = false;
	unsigned long long mask;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return false;
	while (fgets(line, sizeof line, f))
		if ((sscanf(line, "SigPnd: %llx", &mask) == 1 ||
		    sscanf(line, "ShdPnd: %llx", &mask) == 1) &&
		    (mask & 1ULL << (sig - 1)))
			pending = true;
	fclose(f);
	return pending;
}

/* Waits until pid is blocked in connect(2) (and so not in its loop). */
static bool
wait_in_connect(pid_t pid)
{
	for (long long end = arb_now_ms() + ARB_EVENT_MS; arb_now_ms() < end;
	    arb_sleep_ms(5))
		if (proc_syscall(pid) == SYS_connect)
			return true;
	return false;
}

/* A listener on path whose backlog is full: a blocking connect to it
 * waits until the listener closes. */
static int
full_listener(const char *path, int *queued)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 0), 0);
	*queued = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	assert_int_equal(connect(*queued, (struct sockaddr *)&sa, sizeof sa),
	    0);
	int more = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	assert_int_equal(connect(more, (struct sockaddr *)&sa, sizeof sa), -1);
	assert_int_equal(errno, EAGAIN);
	close(more);
	return fd;
}

/* Two SIGTERMs that arrive before the event loop first runs are two: the
 * second kills the workers, as it does later on (test_drain). arbord is
 * held at start-up, its signals already watched, in the connect by which
 * it checks the socket path for a live arbord (a listener whose backlog
 * is full); each signal is seen delivered before the next. */
static void
test_two_signals_before_loop(void **state)
{
	struct arb *a = arb_new(SINGLE_CONF);
	int queued, lfd = full_listener(arb_socket_path(a), &queued);
	arb_spawn(a, "dev", NULL);
	for (int i = 0; i < 2; i++) {
		assert_true(wait_in_connect(arb_pid(a)));
		assert_int_equal(arb_kill(a, SIGTERM), 0);
		for (long long end = arb_now_ms() + ARB_EVENT_MS;
		    proc_sig_pending(arb_pid(a), SIGTERM); arb_sleep_ms(5))
			if (arb_now_ms() > end)
				fail_msg("SIGTERM %d not delivered", i + 1);
	}
	assert_true(wait_in_connect(arb_pid(a)));
	close(lfd);	/* the path is stale now: arbord goes on */
	close(queued);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 0);
	if (!arb_log_has_line(a, "second signal", NULL)) {
		arb_dump_log(a);
		fail_msg("the second SIGTERM before the loop ran was lost");
	}
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_sigterm, arb_teardown),
		cmocka_unit_test_teardown(test_sigint, arb_teardown),
		cmocka_unit_test_teardown(test_shutdown_op, arb_teardown),
		cmocka_unit_test_teardown(test_arborctl_shutdown, arb_teardown),
		cmocka_unit_test_teardown(test_deaf_workers_killed, arb_teardown),
		cmocka_unit_test_teardown(test_inflight_finishes, arb_teardown),
		cmocka_unit_test_teardown(test_second_shutdown_op_drains,
		    arb_teardown),
		cmocka_unit_test_teardown(test_sigterm_after_shutdown_op_drains,
		    arb_teardown),
		cmocka_unit_test_teardown(test_stopping_pool_keeps_uptime, arb_teardown),
		cmocka_unit_test_teardown(test_reply_unread_at_stop_delivered,
		    arb_teardown),
		cmocka_unit_test_teardown(test_second_signal_cuts_unread_wait,
		    arb_teardown),
		cmocka_unit_test_teardown(test_third_signal_logs_nothing,
		    arb_teardown),
		cmocka_unit_test_teardown(test_nothing_restarts_while_draining, arb_teardown),
		cmocka_unit_test_teardown(test_sigkill_takes_workers_along, arb_teardown),
		cmocka_unit_test_teardown(test_second_arbord_refused, arb_teardown),
		cmocka_unit_test_teardown(test_two_signals_before_loop,
		    arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
