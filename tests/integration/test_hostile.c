/* Hostile workers (SPEC 5, SPEC 7, README "Workers"): mock_worker's
 * hostile commands run in a real pool, and arbord must neither stall nor
 * grow nor leave processes behind.
 *
 * While each hostile request runs, and after it, `ping` on a fresh control
 * connection is answered within PING_BOUND_MS and arbord's RSS stays under
 * RSS_BOUND_KB:
 *   flood_stderr  the request is ok, the worker stays, its lines are in
 *                 arbord's log;
 *   partial       half a reply frame, then silence: the request's
 *                 timeout_ms passes, it fails with `timeout`, the worker
 *                 is replaced;
 *   close_stdout  EOF on stdout while the process lives: a protocol
 *                 failure, the request fails with `worker_crashed`, the
 *                 worker is killed and replaced;
 *   stray         its reply, then half a frame no request asked for: the
 *                 reply is delivered, the worker is killed and replaced
 *                 before the request waiting for it is handed to it, and
 *                 the new worker serves that request; the half frame
 *                 written later, to an idle worker's stdout, gets it
 *                 replaced too, before a request meets it;
 *   close_stdin   its stdin closed, then its reply, and it runs on: the
 *                 next request cannot be written (EPIPE), a protocol
 *                 failure as EOF on stdout is: it fails with
 *                 `worker_crashed` at once, not `timeout` once its
 *                 timeout_ms is over, and the worker is replaced;
 *   fork          the worker's children die with it, whether it is killed
 *                 (kill -9) or restarted (`restart`), even children that
 *                 ignore SIGTERM;
 *   ignore_term   a worker deaf to SIGTERM, busy in a request, is SIGKILLed
 *                 shutdown_timeout_ms after `stop NAME` and ends stopped;
 *   stderr        a line longer than a log record, of 3-byte UTF-8
 *                 characters, is logged (log.format = "json") in pieces
 *                 that are each whole UTF-8 and together the line;
 *   crash         a line written on stderr just before the exit is logged
 *                 before the line that reports the exit, crash after
 *                 crash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define WORKER		"pool/worker.1"
#define PING_BOUND_MS	3000		/* the loop answers within this */
#define RSS_BOUND_KB	(64 * 1024)	/* arbord's RSS stays below this */
#define FLOOD_BYTES	(8 * 1024 * 1024)
#define FLOOD_LINE	100		/* mock_worker's flood line length */
#define PARTIAL_MS	1000		/* the partial request's timeout_ms */
#define STRAY_MS	3000		/* stray's sleep: time to queue another */
#define STRAY_LATER_MS	200		/* its half frame, after the reply */
#define NFORK		3
#define TERM_MS		300		/* shutdown_timeout_ms */
#define HOSTILE_MS	60000		/* bound on one hostile request */
#define LOST_MS		30000		/* timeout_ms of one it cannot read */

static const char HOSTILE_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { shutdown_timeout_ms = 300; };\n"
    "pool = { size = 1; max_overflow = 0; };\n"
    "environments = { dev = { }; };\n";

/* Intensities high enough for NCRASH crashes in a row. */
static const char CRASH_CONF[] =
    "supervisor = { max_restarts = 100; max_seconds = 60; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { restart_delay_ms = 0; };\n"
    "pool = { size = 1; max_overflow = 0; max_restarts = 100; "
    "max_seconds = 60; };\n"
    "environments = { dev = { }; };\n";
#define NCRASH		30

/* Restarts at once, without end: with CRASH_AT_START, a crash loop of
 * some thousand restarts a second (two changes each for the keeper). */
#define LOOP_BODY \
    "supervisor = { max_restarts = 1000000; max_seconds = 600; };\n" \
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n" \
    "pool = { size = 1; max_overflow = 0; max_restarts = 1000000; " \
    "max_seconds = 600; };\n" \
    "environments = { dev = { }; };\n"
static const char LOOP_CONF[] = LOOP_BODY
    "worker = { restart_delay_ms = 0; shutdown_timeout_ms = 300; };\n";
static const char CRASH_AT_START_CONF[] = LOOP_BODY
    "worker = { restart_delay_ms = 0; shutdown_timeout_ms = 300; "
    "env = { MOCK_WORKER_CRASH_AT_START = \"1\"; }; };\n";
#define FILL_MS		180000	/* the keeper's pipe full, even under ASan */

/* ---- watching arbord ---- */

/* The worst seen while a hostile request ran. */
struct watch {
	long long	ping_max_ms;
	long		rss_max_kb;
	int		pings;
};

/* One ping on a fresh connection, timed, and one RSS sample. */
static void
watch_step(struct arb *a, struct watch *w)
{
	long long t = arb_now_ms();
	json_t *r = arb_call(a, json_pack("{s:s}", "op", "ping"));
	long long took = arb_now_ms() - t;
	if (!arb_reply_ok(r))
		fail_msg("ping failed while a hostile worker ran");
	json_decref(r);
	if (took > w->ping_max_ms)
		w->ping_max_ms = took;
	long kb = proc_rss_kb(arb_pid(a));
	if (kb > w->rss_max_kb)
		w->rss_max_kb = kb;
	w->pings++;
}

static void
assert_watch(const struct watch *w, const char *what)
{
	print_message("%s: %d pings, slowest %lld ms; arbord RSS max %ld kB\n",
	    what, w->pings, w->ping_max_ms, w->rss_max_kb);
	if (w->ping_max_ms >= PING_BOUND_MS)
		fail_msg("%s: a ping took %lld ms (bound %d ms)", what,
		    w->ping_max_ms, PING_BOUND_MS);
	if (w->rss_max_kb >= RSS_BOUND_KB)
		fail_msg("%s: arbord's RSS reached %ld kB (bound %d kB)", what,
		    w->rss_max_kb, RSS_BOUND_KB);
}

/* Sends an execute of command on a connection of its own and, until its
 * reply comes, keeps pinging arbord; then a few pings more. Returns the
 * reply (new reference); fails the test without one. */
static json_t *
exec_watching(struct arb *a, const char *command, json_t *args,
    int timeout_ms, struct watch *w)
{
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	json_t *req = cl_exec_req(1, command, args, NULL, timeout_ms);
	assert_int_equal(arb_conn_send(c, req), 0);
	json_decref(req);
	long long end = arb_now_ms() + HOSTILE_MS;
	json_t *reply = NULL;
	while (reply == NULL && arb_now_ms() < end) {
		watch_step(a, w);
		reply = arb_conn_recv(c, 20);
	}
	arb_conn_close(c);
	if (reply == NULL)
		fail_msg("%s: no reply within %d ms", command, HOSTILE_MS);
	for (int i = 0; i < 5; i++)
		watch_step(a, w);
	return reply;
}

/* ---- the tree ---- */

/* Starts the pool and returns the pid of its one ready worker. */
static struct arb *
start_pool(json_int_t *pid)
{
	struct arb *a = arb_start(HOSTILE_CONF, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS);
	assert_non_null(tree);
	*pid = arb_node_pid(arb_find(tree, WORKER));
	assert_true(*pid > 0);
	json_decref(tree);
	return a;
}

/* Waits until the worker runs again under another pid than old: the
 * new pid. The old process must be gone. */
static json_int_t
wait_replaced(struct arb *a, json_int_t old)
{
	json_int_t pid = arb_wait_ready_pid(a, WORKER, old);
	if (!proc_wait_gone((pid_t)old, ARB_EVENT_MS))
		fail_msg("the replaced worker %lld still exists", (long long)old);
	return pid;
}

/* Whether WORKER is in state now. */
static bool
node_in_state(struct arb *a, const char *state)
{
	json_t *node = arb_status(a, WORKER);
	const char *st = arb_node_str(node, "state");
	bool in = st != NULL && strcmp(st, state) == 0;
	json_decref(node);
	return in;
}

/* An echo through the pool works. */
static void
assert_serving(struct arb *a)
{
	json_decref(cl_exec_ok(a, "echo", json_pack("{s:i}", "after", 1),
	    NULL));
}

static void
assert_code(const json_t *r, const char *code)
{
	char *s = cl_describe(r);
	if (arb_reply_ok(r) || arb_reply_code(r) == NULL ||
	    strcmp(arb_reply_code(r), code) != 0)
		fail_msg("expected error %s, got %s", code, s);
	free(s);
}

/* Counts the flood's records in the log: lines "flood_stderr line <n>"
 * and the bytes of 'y' (the long line, logged in pieces) of WORKER. One
 * pass, each search bounded by its line: the log is megabytes long. */
static void
count_flood(struct arb *a, long *lines, long *ybytes)
{
	static const char tag[] = WORKER ": ", flood[] = "flood_stderr line ";
	char *log = arb_log(a);
	*lines = *ybytes = 0;
	for (char *p = log; *p != '\0'; ) {
		char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *msg = memmem(p, len, tag, sizeof tag - 1), *end = p + len;
		if (msg != NULL) {
			msg += sizeof tag - 1;
			if ((size_t)(end - msg) >= sizeof flood - 1 &&
			    memcmp(msg, flood, sizeof flood - 1) == 0)
				(*lines)++;
			while (msg < end && *msg == 'y')
				(*ybytes)++, msg++;
		}
		p += len + (nl != NULL);
	}
	free(log);
}

/* The "msg" of each JSON record of WORKER in the log that holds needle,
 * concatenated in log order; 0 when every record is one JSON object, else
 * -1. Every record's msg is UTF-8 (json_loads would refuse it otherwise). */
static int
json_pieces(struct arb *a, const char *needle, char *out, size_t outlen)
{
	char *log = arb_log(a), *save = NULL;
	int rc = 0;
	out[0] = '\0';
	for (char *l = strtok_r(log, "\n", &save); l; l = strtok_r(NULL, "\n",
	    &save)) {
		json_t *j = json_loads(l, 0, NULL);
		const char *name = json_string_value(json_object_get(j, "name"));
		const char *msg = json_string_value(json_object_get(j, "msg"));
		if (j == NULL)
			rc = -1;
		else if (name && strcmp(name, WORKER) == 0 && msg &&
		    strstr(msg, needle) != NULL &&
		    strlen(out) + strlen(msg) < outlen)
			strcat(out, msg);
		json_decref(j);
	}
	free(log);
	return rc;
}

/* ---- processes forked by a worker ---- */

/* The process group of pid; -1 if gone. */
static pid_t
proc_pgrp(pid_t pid)
{
	char path[64], line[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return -1;
	size_t n = fread(line, 1, sizeof line - 1, f);
	fclose(f);
	line[n] = '\0';
	char *p = strrchr(line, ')');
	int pgrp;
	if (p == NULL || sscanf(p + 1, " %*c %*d %d", &pgrp) != 1)
		return -1;
	return pgrp;
}

/* fork n on the worker: the children's pids, each alive in the worker's
 * process group, or with escape in a group (and session) of its own. */
static void
fork_kids(struct arb *a, json_int_t worker, pid_t *kids, bool escape)
{
	json_t *r = cl_exec_ok(a, "fork", json_pack("{s:i,s:b}", "n", NFORK,
	    "setsid", escape), NULL);
	json_t *pids = json_object_get(json_object_get(r, "result"), "forked");
	assert_int_equal(json_array_size(pids), NFORK);
	for (size_t i = 0; i < NFORK; i++) {
		kids[i] = (pid_t)json_integer_value(json_array_get(pids, i));
		assert_true(proc_exists(kids[i]));
		pid_t group = escape ? kids[i] : (pid_t)worker;
		long long until = arb_now_ms() + ARB_EVENT_MS;
		while (proc_pgrp(kids[i]) != group && arb_now_ms() < until)
			arb_sleep_ms(5);	/* setsid comes after the fork */
		assert_int_equal(proc_pgrp(kids[i]), group);
	}
	json_decref(r);
}

static void
fork_children(struct arb *a, json_int_t worker, pid_t *kids)
{
	fork_kids(a, worker, kids, false);
}

static void
assert_children_gone(const pid_t *kids, const char *how)
{
	for (size_t i = 0; i < NFORK; i++)
		if (!proc_wait_dead(kids[i], ARB_EVENT_MS))
			fail_msg("child %d of a worker %s still runs", (int)kids[i],
			    how);
}

/* The keeper arbord a runs (its child named arbord-keeper) other than
 * not (0: any), waited for; fails the test when none comes. */
static pid_t
wait_keeper(struct arb *a, pid_t not)
{
	long long until = arb_now_ms() + ARB_EVENT_MS;
	do {
		pid_t kids[64];
		size_t n = proc_children(arb_pid(a), kids, 64);
		for (size_t i = 0; i < n && i < 64; i++) {
			char comm[32];
			proc_comm(kids[i], comm, sizeof comm);
			if (strcmp(comm, ARB_KEEPER) == 0 && kids[i] != not)
				return kids[i];
		}
		arb_sleep_ms(10);
	} while (arb_now_ms() < until);
	fail_msg("arbord runs no keeper%s", not ? " after the first was killed" :
	    "");
	return -1;
}

/* ps and pidof read the keeper's command line: it names the keeper,
 * not arbord. */
static void
assert_keeper_titled(pid_t keeper)
{
	char path[64], line[64] = "";
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)keeper);
	FILE *f = fopen(path, "re");
	assert_non_null(f);
	size_t n = fread(line, 1, sizeof line - 1, f);
	fclose(f);
	line[n] = '\0';
	assert_string_equal(line, ARB_KEEPER);
}

/* ---- the tests ---- */

static void
test_flood_stderr(void **state)
{
	json_int_t pid;
	struct arb *a = start_pool(&pid);
	long before = proc_rss_kb(arb_pid(a));
	struct watch w = { 0 };
	json_t *r = exec_watching(a, "flood_stderr", json_pack("{s:i}",
	    "bytes", FLOOD_BYTES), HOSTILE_MS, &w);
	char *s = cl_describe(r);
	if (!arb_reply_ok(r) || json_integer_value(json_object_get(
	    json_object_get(r, "result"), "written")) != FLOOD_BYTES)
		fail_msg("flood_stderr: %s", s);
	free(s);
	json_decref(r);
	print_message("flood of %d bytes on stderr: arbord RSS %ld kB before\n",
	    FLOOD_BYTES, before);
	assert_watch(&w, "flood_stderr");
	json_t *node = arb_wait_node(a, WORKER, "ready", 0, ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_pid(node), pid);	/* not replaced */
	json_decref(node);
	char last[64];
	long nlines = FLOOD_BYTES / 2 / FLOOD_LINE, lines, ybytes;
	snprintf(last, sizeof last, "flood_stderr line %ld x", nlines);
	assert_true(arb_log_has_line(a, WORKER, "flood_stderr line 1 x", NULL));
	assert_true(arb_log_has_line(a, WORKER, last, NULL));
	assert_serving(a);
	/* The long line's tail (no newline) is logged at the worker's exit. */
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "restart",
	    "name", WORKER)));
	wait_replaced(a, pid);
	count_flood(a, &lines, &ybytes);
	print_message("log: %ld of %ld flood lines, %ld of %ld bytes of the "
	    "long line\n", lines, nlines, ybytes, FLOOD_BYTES - nlines *
	    FLOOD_LINE);
	assert_int_equal(lines, nlines);
	assert_int_equal(ybytes, FLOOD_BYTES - nlines * FLOOD_LINE);
	assert_serving(a);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_partial_frame_times_out(void **state)
{
	json_int_t pid;
	struct arb *a = start_pool(&pid);
	struct watch w = { 0 };
	long long t = arb_now_ms();
	json_t *r = exec_watching(a, "partial", NULL, PARTIAL_MS, &w);
	long long took = arb_now_ms() - t;
	assert_code(r, "timeout");
	json_decref(r);
	print_message("partial frame: timeout after %lld ms (timeout_ms %d)\n",
	    took, PARTIAL_MS);
	assert_watch(&w, "partial");
	wait_replaced(a, pid);
	assert_serving(a);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_close_stdout(void **state)
{
	json_int_t pid;
	struct arb *a = start_pool(&pid);
	struct watch w = { 0 };
	json_t *r = exec_watching(a, "close_stdout", NULL, HOSTILE_MS, &w);
	assert_code(r, "worker_crashed");
	json_decref(r);
	assert_watch(&w, "close_stdout");
	wait_replaced(a, pid);
	assert_true(arb_log_has_line(a, WORKER, "protocol failure", NULL));
	assert_serving(a);
	assert_int_equal(arb_stop(a), 0);
}

/* A worker that closes its stdin and runs on: the request written to it
 * fails worker_crashed within the EOF grace, not timeout after its
 * (long) timeout_ms. */
static void
test_close_stdin(void **state)
{
	json_int_t pid;
	struct arb *a = start_pool(&pid);
	json_decref(cl_exec_ok(a, "close_stdin", NULL, NULL));
	struct watch w = { 0 };
	json_t *r = exec_watching(a, "echo", json_pack("{s:i}", "lost", 1),
	    LOST_MS, &w);
	assert_code(r, "worker_crashed");
	json_decref(r);
	assert_watch(&w, "close_stdin");
	wait_replaced(a, pid);
	assert_true(arb_log_has_line(a, WORKER, "protocol failure", "stdin",
	    NULL));
	assert_serving(a);
	assert_int_equal(arb_stop(a), 0);
}

/* Output no request asked for, read with the last reply: the worker is
 * killed before the request waiting for it is handed to it (which the
 * stray bytes would have made fail, or wait out its timeout_ms). */
static void
test_stray_output_after_reply(void **state)
{
	json_int_t pid;
	struct arb *a = start_pool(&pid);
	struct cl_conn *stray = cl_send_held(a, 1, "stray", json_pack("{s:i}",
	    "ms", STRAY_MS), NULL, "busy", 1);
	struct cl_conn *next = cl_send_held(a, 2, "echo", json_pack("{s:i}",
	    "next", 1), NULL, "waiting", 1);
	json_t *r = cl_recv_ok(stray, ARB_EVENT_MS, "stray");
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"),
	    "stray")));
	json_decref(r);
	r = cl_recv_ok(next, ARB_EVENT_MS, "the request waiting behind stray");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r,
	    "result"), "next")), 1);
	json_decref(r);
	wait_replaced(a, pid);
	assert_true(arb_log_has_line(a, WORKER, "protocol failure", NULL));
	cl_close(stray);
	cl_close(next);
	assert_serving(a);
	assert_int_equal(arb_stop(a), 0);
}

/* The same half frame, written STRAY_LATER_MS after the reply while
 * nothing is pending: the idle worker is replaced at once, not left to
 * fail the next request sent to it. */
static void
test_stray_output_while_idle(void **state)
{
	json_int_t pid;
	struct arb *a = start_pool(&pid);
	json_decref(cl_exec_ok(a, "stray", json_pack("{s:i,s:i}", "ms", 0,
	    "later_ms", STRAY_LATER_MS), NULL));
	wait_replaced(a, pid);
	assert_true(arb_log_has_line(a, WORKER, "protocol failure", NULL));
	assert_serving(a);
	assert_int_equal(arb_stop(a), 0);
}

/* A worker's own children die with it: killed, restarted, and
 * restarted with children that ignore SIGTERM. They die with the group,
 * so arbord does not report them as strays. */
static void
test_forked_children_die(void **state)
{
	json_int_t pid;
	pid_t kids[NFORK];
	struct watch w = { 0 };
	struct arb *a = start_pool(&pid);
	fork_children(a, pid, kids);
	watch_step(a, &w);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	watch_step(a, &w);
	json_int_t next = wait_replaced(a, pid);
	assert_children_gone(kids, "killed by SIGKILL");

	fork_children(a, next, kids);
	json_t *r = arb_call_ok(a, json_pack("{s:s,s:s}", "op", "restart",
	    "name", WORKER));
	json_decref(r);
	watch_step(a, &w);
	next = wait_replaced(a, next);
	assert_children_gone(kids, "restarted");

	/* Children deaf to SIGTERM die too: the whole group is killed once
	 * the worker has exited. */
	json_decref(cl_exec_ok(a, "ignore_term", NULL, NULL));
	fork_children(a, next, kids);
	r = arb_call_ok(a, json_pack("{s:s,s:s}", "op", "restart", "name",
	    WORKER));
	json_decref(r);
	wait_replaced(a, next);
	assert_children_gone(kids, "deaf to SIGTERM, restarted");
	watch_step(a, &w);
	assert_watch(&w, "fork");
	assert_serving(a);
	pid_t keeper = wait_keeper(a, 0);
	assert_keeper_titled(keeper);
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 0);
	/* killed with their group: not taken for children that left it */
	assert_false(arb_log_contains(a, "left running by a worker"));
	/* arbord reaped its keeper before it exited: not left to us */
	assert_false(proc_exists(keeper));
	assert_int_equal(arb_stop(a), 0);
}

/* Children that left the worker's process group (setsid, as Python's
 * start_new_session=True does) are beyond the group kill: arbord, their
 * subreaper once the worker is gone, kills them when it reaps the
 * worker, killed or stopped, and at a shutdown. */
static void
test_escaped_children_die(void **state)
{
	json_int_t pid;
	pid_t kids[NFORK];
	struct arb *a = start_pool(&pid);
	fork_kids(a, pid, kids, true);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	json_int_t next = wait_replaced(a, pid);
	assert_children_gone(kids, "out of its group, killed by SIGKILL");
	assert_true(arb_log_has_line(a, "left running by a worker", NULL));

	fork_kids(a, next, kids, true);
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "restart",
	    "name", WORKER)));
	next = wait_replaced(a, next);
	assert_children_gone(kids, "out of its group, restarted");

	fork_kids(a, next, kids, true);
	assert_serving(a);
	assert_int_equal(arb_stop(a), 0);
	assert_children_gone(kids, "out of its group, at a shutdown");
}

/* A SIGKILLed arbord takes along what its workers forked in their
 * groups: the parent-death signal kills each worker, the keeper (a
 * process of arbord's that outlives it) their groups. A keeper killed is
 * replaced, knowing the groups of the moment. */
static void
test_sigkilled_arbord_takes_children(void **state)
{
	json_int_t pid;
	pid_t kids[NFORK];
	struct arb *a = start_pool(&pid);
	fork_children(a, pid, kids);
	pid_t first = wait_keeper(a, 0);
	assert_int_equal(kill(first, SIGKILL), 0);
	char gone[64];
	snprintf(gone, sizeof gone, "keeper (pid %d) killed by signal %d",
	    (int)first, SIGKILL);
	assert_true(arb_wait_log_line(a, ARB_EVENT_MS, gone, NULL));
	pid_t keeper = wait_keeper(a, first);
	assert_serving(a);

	assert_int_equal(arb_kill(a, SIGKILL), 0);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 128 + SIGKILL);
	assert_children_gone(kids, "of a SIGKILLed arbord");
	if (!proc_wait_dead((pid_t)pid, ARB_EVENT_MS))
		fail_msg("worker %lld outlived a SIGKILLed arbord", (long long)pid);
	if (!proc_wait_dead(keeper, ARB_EVENT_MS))
		fail_msg("the keeper %d outlived its work", (int)keeper);
	assert_true(arb_log_has_line(a, "keeper: arbord", "is gone: killed "
	    "the process groups of", NULL));
	assert_false(arb_log_contains(a, "left running by a worker"));
	assert_int_equal(arb_stop(a), 128 + SIGKILL);
}

/* A keeper that no longer reads (stopped here) lets its pipe fill:
 * arbord kills it then and forks another, which knows the groups of the
 * moment and takes them along when arbord is killed. */
static void
test_stopped_keeper_replaced(void **state)
{
	pid_t kids[NFORK];
	struct arb *a = arb_start(LOOP_CONF, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS);
	assert_non_null(tree);
	json_int_t pid = arb_node_pid(arb_find(tree, WORKER));
	json_decref(tree);
	pid_t first = wait_keeper(a, 0);
	assert_int_equal(kill(first, SIGSTOP), 0);
	arb_rewrite_config(a, CRASH_AT_START_CONF);
	json_decref(arb_op_ok(a, "reload"));
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);	/* the loop starts */
	char line[64];
	snprintf(line, sizeof line, "keeper (pid %d) reads no more", (int)first);
	assert_true(arb_wait_log_line(a, FILL_MS, line, NULL));
	pid_t keeper = wait_keeper(a, first);
	assert_false(proc_is_stopped(keeper));

	arb_rewrite_config(a, LOOP_CONF);
	json_decref(arb_op_ok(a, "reload"));
	json_int_t next = arb_wait_ready_pid(a, WORKER, pid);
	fork_children(a, next, kids);
	assert_int_equal(arb_kill(a, SIGKILL), 0);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 128 + SIGKILL);
	assert_children_gone(kids, "of a SIGKILLed arbord, its keeper replaced");
	assert_true(proc_wait_dead((pid_t)next, ARB_EVENT_MS));
	assert_true(proc_wait_dead(keeper, ARB_EVENT_MS));
	assert_int_equal(arb_stop(a), 128 + SIGKILL);
}

/* Sends `hang` (timeout_ms; <= 0: the default) on a connection of its
 * own and waits until the worker is busy with it; the connection awaits
 * the reply. */
static struct arb_conn *
hang_worker(struct arb *a, int timeout_ms)
{
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	json_t *req = cl_exec_req(1, "hang", NULL, NULL, timeout_ms);
	assert_int_equal(arb_conn_send(c, req), 0);
	json_decref(req);
	json_t *node = arb_wait_node(a, WORKER, "busy", 0, ARB_EVENT_MS);
	assert_non_null(node);
	json_decref(node);
	return c;
}

/* `stop WORKER`, then pings while waiting for it to be stopped: the time
 * it took. */
static long long
stop_watching(struct arb *a, struct watch *w)
{
	long long t = arb_now_ms(), took;
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "stop",
	    "name", WORKER)));
	while (!node_in_state(a, "stopped")) {
		if ((took = arb_now_ms() - t) >= ARB_EVENT_MS)
			fail_msg("%s not stopped %lld ms after `stop`", WORKER,
			    took);
		watch_step(a, w);
		arb_sleep_ms(10);
	}
	took = arb_now_ms() - t;
	watch_step(a, w);
	return took;
}

/* The error message of a reply r: msg, with no word of a crash. */
static void
assert_message(const json_t *r, const char *msg)
{
	const char *m = cl_reply_message(r);
	if (m == NULL || strcmp(m, msg) != 0)
		fail_msg("expected message \"%s\", got \"%s\"", msg,
		    m ? m : "(none)");
}

/* A worker deaf to SIGTERM and stuck in a request cannot read the
 * shutdown frame either: `stop` ends it by SIGKILL after
 * shutdown_timeout_ms; its request fails with worker_crashed (another
 * worker may take it at once), saying the worker was stopped. */
static void
test_ignore_term_killed_on_stop(void **state)
{
	json_int_t pid;
	struct arb *a = start_pool(&pid);
	json_decref(cl_exec_ok(a, "ignore_term", NULL, NULL));
	struct arb_conn *c = hang_worker(a, 0);
	struct watch w = { 0 };
	long long took = stop_watching(a, &w);
	print_message("worker ignoring SIGTERM: stopped %lld ms after `stop` "
	    "(shutdown_timeout_ms %d)\n", took, TERM_MS);
	assert_watch(&w, "ignore_term");
	if (took < TERM_MS - 100)
		fail_msg("stopped after %lld ms: before shutdown_timeout_ms",
		    took);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	assert_true(arb_log_has_line(a, WORKER, "SIGKILL", NULL));
	json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
	assert_code(r, "worker_crashed");
	assert_message(r, WORKER ": worker stopped (stop) before it answered");
	json_decref(r);
	arb_conn_close(c);

	r = arb_call_ok(a, json_pack("{s:s,s:s}", "op", "start", "name", WORKER));
	json_decref(r);
	wait_replaced(a, pid);
	assert_serving(a);
	assert_int_equal(arb_stop(a), 0);
}

/* `restart` of a busy worker: its request fails with worker_crashed,
 * saying the worker was restarted, not that it exited; it comes back. */
static void
test_restart_busy_worker_says_so(void **state)
{
	json_int_t pid;
	struct arb *a = start_pool(&pid);
	struct arb_conn *c = hang_worker(a, 0);
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "restart",
	    "name", WORKER)));
	json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
	assert_code(r, "worker_crashed");
	assert_message(r, WORKER ": worker stopped (restart) before it "
	    "answered");
	json_decref(r);
	arb_conn_close(c);
	wait_replaced(a, pid);
	assert_serving(a);
	assert_int_equal(arb_stop(a), 0);
}

/* Counts of one in the log read as one: a drain of one request held past
 * shutdown_timeout_ms, and a recycle after one request. */
static void
test_log_count_of_one(void **state)
{
	json_int_t pid;
	struct arb *a = start_pool(&pid);
	struct arb_conn *c = hang_worker(a, 0);
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	assert_true(arb_wait_log_line(a, ARB_EVENT_MS,
	    "draining 1 pending request", NULL));
	assert_true(arb_wait_log_line(a, ARB_EXIT_MS,
	    "1 request still pending", NULL));
	assert_false(arb_log_has_line(a, "1 pending requests", NULL));
	assert_false(arb_log_has_line(a, "1 requests", NULL));
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 0);
	arb_conn_close(c);
	arb_free(a);

	a = arb_start(
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { max_requests = 1; };\n"
	    "pool = { size = 1; max_overflow = 0; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	assert_serving(a);
	assert_true(arb_wait_log_line(a, ARB_EVENT_MS, WORKER,
	    "recycling after 1 request", NULL));
	assert_false(arb_log_has_line(a, "after 1 requests", NULL));
	assert_int_equal(arb_stop(a), 0);
}

/* A request whose deadline passes while its worker is stopping still gets
 * the worker killed (SPEC 6), deaf to SIGTERM as it is: it is stopped
 * long before its shutdown_timeout_ms (longer than the test waits), and
 * the request fails with timeout. */
static void
test_deadline_kills_stopping_worker(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { shutdown_timeout_ms = 60000; };\n"
	    "pool = { size = 1; max_overflow = 0; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	json_int_t pid = cl_worker_pid(a, WORKER);
	json_decref(cl_exec_ok(a, "ignore_term", NULL, NULL));
	struct arb_conn *c = hang_worker(a, 3000);
	struct watch w = { 0 };
	long long took = stop_watching(a, &w);
	print_message("stopping worker killed at its request's deadline, "
	    "%lld ms after `stop`\n", took);
	json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
	assert_code(r, "timeout");
	json_decref(r);
	arb_conn_close(c);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	assert_true(arb_log_has_line(a, WORKER, "killing",
	    "request deadline passed", NULL));
	assert_int_equal(arb_stop(a), 0);
}

static void
test_long_utf8_stderr_line(void **state)
{
	enum { CHARS = 3000 };		/* 9,000 bytes: logged in pieces */
	static const char euro[] = "\xe2\x82\xac";
	char *line = malloc(CHARS * 3 + 4), *got = malloc(CHARS * 3 + 64);
	char conf[sizeof HOSTILE_CONF + 64];
	line[0] = '\0';
	for (int i = 0; i < CHARS; i++)
		strcat(line + i * 3, euro);
	strcat(line, "end");
	snprintf(conf, sizeof conf, "%slog = { format = \"json\"; };\n",
	    HOSTILE_CONF);
	struct arb *a = arb_start(conf, "dev", NULL);
	arb_wait_ready_pid(a, WORKER, 0);
	json_decref(cl_exec_ok(a, "stderr", json_pack("{s:s}", "line", line),
	    NULL));
	long long deadline = arb_now_ms() + ARB_EVENT_MS;
	while (!arb_log_contains(a, "end\"}") && arb_now_ms() < deadline)
		arb_sleep_ms(20);
	assert_int_equal(json_pieces(a, euro, got, CHARS * 3 + 64), 0);
	if (strcmp(got, line) != 0)
		fail_msg("the line's pieces (%zu bytes) are not the line (%zu "
		    "bytes)", strlen(got), strlen(line));
	assert_int_equal(arb_stop(a), 0);
	free(line);
	free(got);
}

/* Where the log line holding both words starts, searching from *at; the
 * line after it becomes *at. -1 if there is none. */
static long
line_with(const char *log, size_t *at, const char *w1, const char *w2)
{
	const char *p = log + *at;
	for (;;) {
		const char *end = strchrnul(p, '\n');
		const char *a1 = strstr(p, w1), *a2 = strstr(p, w2);
		if (a1 != NULL && a1 < end && a2 != NULL && a2 < end) {
			*at = (size_t)(end - log) + (*end != '\0');
			return p - log;
		}
		if (*end == '\0')
			return -1;
		p = end + 1;
	}
}

/* Polls until is(pid) holds; false after ARB_EVENT_MS. */
static bool
wait_proc(bool (*is)(pid_t), pid_t pid)
{
	long long deadline = arb_now_ms() + ARB_EVENT_MS;
	while (!is(pid)) {
		if (arb_now_ms() > deadline)
			return false;
		arb_sleep_ms(1);
	}
	return true;
}

/* The crash request, with arbord stopped (SIGSTOP) from before the worker
 * (stopped until then, the request in its stdin) writes its line until it
 * has exited: arbord then finds the line and the exit status waiting
 * together, the case where the order matters. */
static void
crash_frozen(struct arb *a, pid_t pid, json_t *args)
{
	pid_t arbord = arb_pid(a);
	assert_int_equal(kill(pid, SIGSTOP), 0);
	assert_true(wait_proc(proc_is_stopped, pid));
	struct cl_conn *c = cl_send_held(a, 1, "crash", args, NULL, "busy", 1);
	kill(arbord, SIGSTOP);
	bool stopped = wait_proc(proc_is_stopped, arbord);
	kill(pid, SIGCONT);
	bool exited = stopped && wait_proc(proc_is_zombie, pid);
	kill(arbord, SIGCONT);
	assert_true(stopped && exited);
	json_t *r = cl_recv(c, ARB_EVENT_MS);
	assert_string_equal(arb_reply_code(r), "worker_crashed");
	json_decref(r);
	cl_close(c);
}

/* A crashing worker's last stderr line comes before its exit line: every
 * other crash with arbord stopped while the worker writes and exits (see
 * crash_frozen); without that, the line was logged late about once in
 * a hundred crashes on one core, never on two. */
static void
test_last_words_before_exit(void **state)
{
	struct arb *a = arb_start(CRASH_CONF, "dev", NULL);
	json_int_t pid[NCRASH];
	char words[32], exited[64];
	for (int i = 0; i < NCRASH; i++) {
		pid[i] = arb_wait_ready_pid(a, WORKER, i > 0 ? pid[i - 1] : 0);
		snprintf(words, sizeof words, "last words %d.", i);
		json_t *args = json_pack("{s:i,s:s}", "code", 3, "line", words);
		if (i % 2)
			crash_frozen(a, (pid_t)pid[i], args);
		else
			json_decref(cl_exec_err(a, "crash", args, NULL,
			    "worker_crashed"));
	}
	char *log = arb_log(a);
	size_t at = 0;
	int late = 0;
	for (int i = 0; i < NCRASH; i++) {
		snprintf(words, sizeof words, "last words %d.", i);
		snprintf(exited, sizeof exited, "pid %lld exited with status 3",
		    (long long)pid[i]);
		size_t from = at;
		long said = line_with(log, &from, WORKER ": ", words);
		long gone = line_with(log, &at, WORKER ": ", exited);
		if (said < 0 || gone < 0)
			fail_msg("crash %d: \"%s\" %s, \"%s\" %s", i, words,
			    said < 0 ? "not logged" : "logged", exited,
			    gone < 0 ? "not logged" : "logged");
		late += said > gone;
	}
	free(log);
	if (late > 0)
		fail_msg("%d of %d crashes: the last words logged after the "
		    "exit", late, NCRASH);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_flood_stderr, arb_teardown),
		cmocka_unit_test_teardown(test_partial_frame_times_out, arb_teardown),
		cmocka_unit_test_teardown(test_close_stdout, arb_teardown),
		cmocka_unit_test_teardown(test_close_stdin, arb_teardown),
		cmocka_unit_test_teardown(test_stray_output_after_reply,
		    arb_teardown),
		cmocka_unit_test_teardown(test_stray_output_while_idle,
		    arb_teardown),
		cmocka_unit_test_teardown(test_forked_children_die, arb_teardown),
		cmocka_unit_test_teardown(test_escaped_children_die, arb_teardown),
		cmocka_unit_test_teardown(test_sigkilled_arbord_takes_children,
		    arb_teardown),
		cmocka_unit_test_teardown(test_stopped_keeper_replaced,
		    arb_teardown),
		cmocka_unit_test_teardown(test_ignore_term_killed_on_stop, arb_teardown),
		cmocka_unit_test_teardown(test_restart_busy_worker_says_so,
		    arb_teardown),
		cmocka_unit_test_teardown(test_log_count_of_one, arb_teardown),
		cmocka_unit_test_teardown(test_deadline_kills_stopping_worker,
		    arb_teardown),
		cmocka_unit_test_teardown(test_long_utf8_stderr_line, arb_teardown),
		cmocka_unit_test_teardown(test_last_words_before_exit, arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
