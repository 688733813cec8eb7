/* The control socket's limits (SPEC 6, SPEC 7, README "Control socket").
 *
 *   - A peer of another uid (65534, on a socket of mode 0666) gets one
 *     permission_denied error frame, then EOF; root is still served.
 *     Needs root to switch uid; skipped otherwise.
 *   - max_clients = 2: a third connection gets one `overloaded` error frame
 *     and is closed; once a client leaves, a new one is served, also
 *     one that leaves with a request in flight, half-closed first or not.
 *   - A client that sends 20,000 `status` requests and never reads a reply
 *     does not stall arbord (ping on another connection answers within
 *     PING_BOUND_MS) nor grow it (RSS under RSS_BOUND_KB); closing it
 *     frees its slot.
 *   - A second arbord on the same socket exits 1 naming the first one's
 *     pid; the socket file of a SIGKILLed arbord is replaced by the next. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/xmalloc.h"

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define NOBODY		65534
#define PING_BOUND_MS	3000		/* the loop answers within this */
#define RSS_BOUND_KB	(64 * 1024)	/* arbord's RSS stays below this */
#define HOG_REQUESTS	20000
#define HOG_STALL_MS	1500		/* no byte taken this long: stalled */
#define HOG_WATCH_MS	1000		/* watching on after the hog stalled */
#define HOG_SLOTS	4		/* max_clients of the hog test */

static const char PERM_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; };\n"
    "control = { socket = \"arbor.sock\"; mode = \"0666\"; };\n"
    "environments = { dev = { }; };\n";

static const char MAX2_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; };\n"
    "control = { socket = \"arbor.sock\"; max_clients = 2; };\n"
    "environments = { dev = { }; };\n";

/* max_clients 2, and a short drain at the end: requests are left hanging */
static const char MAX2_HANG_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; };\n"
    "worker = { shutdown_timeout_ms = 500; };\n"
    "control = { socket = \"arbor.sock\"; max_clients = 2; };\n"
    "environments = { dev = { }; };\n";

static const char HOG_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "pool = { size = 2; };\n"
    "control = { socket = \"arbor.sock\"; max_clients = 4; };\n"
    "environments = { dev = { }; };\n";

static const char POOL_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "pool = { size = 2; };\n"
    "environments = { dev = { }; };\n";

/* ---- helpers ---- */

/* Sends ping on c and returns the reply (new reference) or NULL. */
static json_t *
conn_ping(struct arb_conn *c, int id)
{
	json_t *req = json_pack("{s:i,s:s}", "id", id, "op", "ping");
	int rc = arb_conn_send(c, req);
	json_decref(req);
	return rc == 0 ? arb_conn_recv(c, ARB_REPLY_MS) : NULL;
}

/* True if c gets no further frame and reaches EOF. */
static bool
conn_ends(struct arb_conn *c)
{
	json_t *extra = arb_conn_recv(c, ARB_REPLY_MS);
	if (extra != NULL) {
		json_decref(extra);
		return false;
	}
	return arb_conn_closed(c, 0);
}

/* Whether reply is an error with code (a NULL reply is not). */
static bool
is_error(const json_t *reply, const char *code)
{
	const char *got = arb_reply_code(reply);
	return reply != NULL && !arb_reply_ok(reply) && got != NULL &&
	    strcmp(got, code) == 0;
}

/* Opens n connections at once and pings on each: true if all answer. */
static bool
n_clients_served(struct arb *a, size_t n)
{
	struct arb_conn *c[HOG_SLOTS];
	bool all = n <= HOG_SLOTS;
	for (size_t i = 0; i < n && i < HOG_SLOTS; i++)
		c[i] = arb_conn_open(a);
	for (size_t i = 0; i < n && i < HOG_SLOTS; i++) {
		json_t *r = c[i] ? conn_ping(c[i], (int)i + 1) : NULL;
		all = all && arb_reply_ok(r);
		json_decref(r);
	}
	for (size_t i = 0; i < n && i < HOG_SLOTS; i++)
		arb_conn_close(c[i]);
	return all;
}

/* Polls until n connections at once are all served (clients that left
 * are noticed by arbord asynchronously). */
static bool
wait_n_served(struct arb *a, size_t n)
{
	long long end = arb_now_ms() + ARB_EVENT_MS;
	while (!n_clients_served(a, n)) {
		if (arb_now_ms() >= end)
			return false;
		arb_sleep_ms(25);
	}
	return true;
}

/* ---- a second uid ---- */

/* Exit codes of the probe run as uid 65534. */
enum probe {
	PROBE_OK, PROBE_SETID, PROBE_CONNECT, PROBE_NO_FRAME, PROBE_WRONG_REPLY,
	PROBE_NOT_CLOSED
};

static const char *const probe_msgs[] = {
	[PROBE_OK] = "ok",
	[PROBE_SETID] = "could not switch to uid/gid 65534",
	[PROBE_CONNECT] = "could not connect (socket mode or directory?)",
	[PROBE_NO_FRAME] = "no reply frame before EOF or timeout",
	[PROBE_WRONG_REPLY] = "the reply was not a permission_denied error",
	[PROBE_NOT_CLOSED] = "the connection was not closed after the error",
};

/* In a forked child: become uid/gid 65534, connect, ping; the verdict. */
static enum probe
probe_as_nobody(struct arb *a)
{
	if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 ||
	    setuid(NOBODY) < 0 || getuid() != NOBODY || geteuid() != NOBODY)
		return PROBE_SETID;
	struct arb_conn *c = arb_conn_open(a);
	if (c == NULL)
		return PROBE_CONNECT;
	/* arbord may refuse before the ping is written: its send may fail,
	 * the error frame is still there to read. */
	json_t *req = json_pack("{s:i,s:s}", "id", 1, "op", "ping");
	arb_conn_send(c, req);
	json_decref(req);
	json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
	if (r == NULL)
		return PROBE_NO_FRAME;
	bool denied = is_error(r, "permission_denied");
	json_decref(r);
	if (!denied)
		return PROBE_WRONG_REPLY;
	return conn_ends(c) ? PROBE_OK : PROBE_NOT_CLOSED;
}

/* Runs probe_as_nobody in a child and returns its verdict. */
static int
run_probe(struct arb *a)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(getppid() == parent ? (int)probe_as_nobody(a) : 127);
	}
	long long end = arb_now_ms() + 2 * ARB_REPLY_MS;
	int st;
	while (waitpid(pid, &st, WNOHANG) != pid) {
		if (arb_now_ms() >= end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fail_msg("the uid %d probe did not finish", NOBODY);
		}
		arb_sleep_ms(10);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
test_second_uid_refused(void **state)
{
	if (getuid() != 0) {
		print_message("not root: cannot connect as another uid, skipped\n");
		skip();
	}
	struct arb *a = arb_start(PERM_CONF, "dev", NULL);
	struct stat st;
	assert_int_equal(stat(arb_socket_path(a), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0666);
	/* The temp dir is private (0700): let the other uid reach the socket. */
	assert_int_equal(chmod(arb_dir(a), 0711), 0);

	int verdict = run_probe(a);
	if (verdict != PROBE_OK)
		fail_msg("uid %d: %s (probe exit %d)", NOBODY, verdict >= 0 &&
		    verdict <= PROBE_NOT_CLOSED ? probe_msgs[verdict] : "crashed",
		    verdict);
	json_decref(arb_op_ok(a, "ping"));	/* root is still served */
	json_t *tree = arb_wait_all_ready(a, "bridge", 1, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	assert_int_equal(arb_stop(a), 0);
}

/* ---- max_clients ---- */

static void
test_max_clients(void **state)
{
	struct arb *a = arb_start(MAX2_CONF, "dev", NULL);
	struct arb_conn *c1 = arb_conn_open(a), *c2 = arb_conn_open(a);
	assert_non_null(c1);
	assert_non_null(c2);
	json_t *r1 = conn_ping(c1, 1), *r2 = conn_ping(c2, 2);
	assert_true(arb_reply_ok(r1) && arb_reply_ok(r2));	/* both in */
	json_decref(r1);
	json_decref(r2);

	struct arb_conn *c3 = arb_conn_open(a);
	assert_non_null(c3);
	json_t *r3 = arb_conn_recv(c3, ARB_REPLY_MS);
	char *s = cl_describe(r3);
	if (!is_error(r3, "overloaded"))
		fail_msg("a third client: expected one overloaded frame, got %s",
		    s);
	free(s);
	json_decref(r3);
	if (!conn_ends(c3))
		fail_msg("the refused client was not closed after its one frame");
	arb_conn_close(c3);

	arb_conn_close(c1);
	if (!wait_n_served(a, 1))	/* the close is noticed asynchronously */
		fail_msg("no new client served after one of two left");
	json_t *again = conn_ping(c2, 5);	/* the other one still works */
	assert_true(arb_reply_ok(again));
	json_decref(again);
	arb_conn_close(c2);
	assert_int_equal(arb_stop(a), 0);
}

/* A connection of our own (not the harness's: its sends block). */
static int
raw_connect(struct arb *a)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", arb_socket_path(a));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		fail_msg("connect %s: %s", sa.sun_path, strerror(errno));
	return fd;
}

/* A client that hangs up with a request in flight is gone: it no longer
 * holds one of the max_clients slots while its request runs on (here a
 * hang, answered only by its 60 s timeout). One that only half-closes
 * still gets its reply (test_control). */
static void
test_gone_client_frees_its_slot(void **state)
{
	struct arb *a = arb_start(MAX2_HANG_CONF, "dev", NULL);
	for (int i = 0; i < 2; i++) {
		struct arb_conn *c = arb_conn_open(a);
		assert_non_null(c);
		json_t *req = json_pack("{s:i, s:s, s:s, s:i}", "id", i + 1,
		    "op", "execute", "command", "hang", "timeout_ms", 60000);
		assert_int_equal(arb_conn_send(c, req), 0);
		json_decref(req);
		arb_conn_close(c);
	}
	if (!wait_n_served(a, 2))
		fail_msg("clients that left with a request in flight still "
		    "hold their slots");
	assert_int_equal(arb_stop(a), 0);
}

/* The same for one that half-closes first (it would still get its reply)
 * and then closes its end: arbord no longer reads it, and used to keep
 * its slot until the reply came. */
static void
test_half_closed_then_gone_frees_its_slot(void **state)
{
	struct arb *a = arb_start(MAX2_HANG_CONF, "dev", NULL);
	int fd = raw_connect(a);
	struct buf out;
	buf_init(&out);
	json_t *req = json_pack("{s:i, s:s, s:s, s:i}", "id", 1, "op",
	    "execute", "command", "hang", "timeout_ms", 60000);
	frame_put_json(&out, req);
	json_decref(req);
	assert_int_equal(write(fd, buf_head(&out), buf_used(&out)),
	    (ssize_t)buf_used(&out));
	buf_release(&out);
	/* What fd sent is there before the next connection is: arbord has
	 * read it (the request, then the EOF) once that one is served. */
	if (!wait_n_served(a, 1))
		fail_msg("no second client served");
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	if (!wait_n_served(a, 1))
		fail_msg("no second client served after the half-close");
	close(fd);
	if (!wait_n_served(a, 2))
		fail_msg("a client that half-closed, then closed, with a "
		    "request in flight still holds its slot");
	assert_int_equal(arb_stop(a), 0);
}

/* ---- a client that never reads ---- */

/* The worst seen while the hog ran. */
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
		fail_msg("ping on another connection failed while a client "
		    "did not read");
	json_decref(r);
	w->ping_max_ms = took > w->ping_max_ms ? took : w->ping_max_ms;
	long kb = proc_rss_kb(arb_pid(a));
	w->rss_max_kb = kb > w->rss_max_kb ? kb : w->rss_max_kb;
	w->pings++;
}

/* HOG_REQUESTS status requests, framed back to back. */
static void
hog_requests(struct buf *out)
{
	for (int i = 1; i <= HOG_REQUESTS; i++) {
		json_t *req = json_pack("{s:i,s:s}", "id", i, "op", "status");
		frame_put_json(out, req);
		json_decref(req);
	}
}

/* Writes what the socket takes without blocking: -1 once arbord has
 * dropped the connection, else 0. */
static int
hog_push(int fd, struct buf *out)
{
	while (buf_used(out) > 0) {
		ssize_t n = send(fd, buf_head(out), buf_used(out),
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		buf_consume(out, (size_t)n);
	}
	return 0;
}

/* Feeds the hog's requests (never reading) while pinging arbord on other
 * connections, until all are sent or arbord stops taking them for
 * HOG_STALL_MS, then watches for HOG_WATCH_MS more. Returns how many
 * requests arbord (and the socket) took whole. */
static size_t
run_hog(struct arb *a, int fd, struct watch *w, bool *dropped)
{
	struct buf out;
	buf_init(&out);
	hog_requests(&out);
	size_t total = buf_used(&out);
	long long last_progress = arb_now_ms(), end = 0;
	*dropped = false;
	while (end == 0 || arb_now_ms() < end) {
		size_t before = buf_used(&out);
		if (!*dropped && hog_push(fd, &out) < 0)
			*dropped = true;
		if (buf_used(&out) < before)
			last_progress = arb_now_ms();
		if (end == 0 && (buf_used(&out) == 0 || *dropped ||
		    arb_now_ms() - last_progress >= HOG_STALL_MS))
			end = arb_now_ms() + HOG_WATCH_MS;
		watch_step(a, w);
		struct pollfd p = { fd, POLLOUT, 0 };
		poll(&p, 1, 50);
	}
	size_t sent = (total - buf_used(&out)) / (total / HOG_REQUESTS);
	buf_release(&out);
	return sent;
}

/* Waits (bounded) until arbord has closed its end of fd, without reading
 * the replies queued in it. */
static bool
wait_dropped(int fd, int timeout_ms)
{
	long long end = arb_now_ms() + timeout_ms;
	while (arb_now_ms() < end) {
		struct pollfd p = { fd, POLLRDHUP, 0 };
		if (poll(&p, 1, 100) > 0 && (p.revents & (POLLHUP | POLLRDHUP |
		    POLLERR)))
			return true;
	}
	return false;
}

static void
test_client_that_never_reads(void **state)
{
	struct arb *a = arb_start(HOG_CONF, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	long rss0 = proc_rss_kb(arb_pid(a));
	size_t fds0 = proc_fd_count(arb_pid(a));
	int hog = raw_connect(a);
	struct watch w = { 0 };
	bool dropped;
	size_t sent = run_hog(a, hog, &w, &dropped);
	size_t fds_hog = proc_fd_count(arb_pid(a));
	print_message("client not reading: %zu of %d status requests sent, "
	    "%s; %d pings, slowest %lld ms; arbord RSS %ld kB before, max %ld "
	    "kB; fds %zu before, %zu with it\n", sent, HOG_REQUESTS,
	    dropped ? "dropped by arbord" :
	    "still connected", w.pings, w.ping_max_ms, rss0, w.rss_max_kb,
	    fds0, fds_hog);
	if (w.ping_max_ms >= PING_BOUND_MS)
		fail_msg("a ping took %lld ms (bound %d ms)", w.ping_max_ms,
		    PING_BOUND_MS);
	if (w.rss_max_kb >= RSS_BOUND_KB)
		fail_msg("arbord's RSS reached %ld kB (bound %d kB)",
		    w.rss_max_kb, RSS_BOUND_KB);
	/* arbord stopped reading it; a client that still does not read is
	 * then disconnected (after 5 s without progress). */
	long long t0 = arb_now_ms();
	if (!dropped && !wait_dropped(hog, ARB_EVENT_MS))
		fail_msg("a client that never reads was not disconnected");
	print_message("the client that never reads was disconnected %lld ms "
	    "after the hog stalled\n", arb_now_ms() - t0);
	assert_true(arb_log_contains(a, "has not read its replies"));

	close(hog);
	if (!wait_n_served(a, HOG_SLOTS))
		fail_msg("%d clients at once not served after the hog left: "
		    "its slot was not freed", HOG_SLOTS);
	print_message("after the hog left: fds %zu, RSS %ld kB\n",
	    proc_fd_count(arb_pid(a)), proc_rss_kb(arb_pid(a)));
	assert_int_equal(arb_stop(a), 0);
}

/* ---- who owns the socket ---- */

static void
test_second_arbord_exits_1(void **state)
{
	struct arb *a = arb_start(POOL_CONF, "dev", NULL);
	char *bin = arb_bin_path("arbord");
	const char *argv[] = { bin, "-c", arb_conf_path(a), "-e", "dev", NULL };
	char err[8192] = "";
	int code = arb_run(argv, NULL, NULL, 0, err, sizeof err);
	free(bin);
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)arb_pid(a));
	print_message("second arbord: exit %d: %.*s\n", code,
	    (int)strcspn(err, "\n"), err);
	assert_int_equal(code, 1);
	if (strstr(err, pid) == NULL)
		fail_msg("the second arbord's stderr does not name pid %s: %s",
		    pid, err);
	assert_int_equal(access(arb_socket_path(a), F_OK), 0);
	json_decref(arb_op_ok(a, "ping"));	/* the first one still serves */
	assert_int_equal(arb_stop(a), 0);
}

static void
test_stale_socket_replaced(void **state)
{
	struct arb *a = arb_start(POOL_CONF, "dev", NULL);
	json_int_t pids[2];
	json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
	assert_non_null(tree);
	assert_int_equal(arb_worker_pids(tree, pids, 2), 2);
	json_decref(tree);
	assert_int_equal(arb_kill(a, SIGKILL), 0);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 128 + SIGKILL);
	for (size_t i = 0; i < 2; i++)
		if (!proc_wait_dead((pid_t)pids[i], ARB_EVENT_MS))
			fail_msg("worker %lld outlived its SIGKILLed arbord",
			    (long long)pids[i]);
	assert_int_equal(access(arb_socket_path(a), F_OK), 0);	/* left over */
	struct arb_conn *dead = arb_conn_open(a);
	assert_null(dead);
	assert_int_equal(errno, ECONNREFUSED);

	arb_spawn(a, "dev", NULL);
	assert_int_equal(arb_wait_ready(a, ARB_START_MS), 0);
	tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	json_decref(cl_exec_ok(a, "echo", json_pack("{s:i}", "x", 1), NULL));
	assert_int_equal(arb_stop(a), 0);
}

/* A reload applies control.mode to the socket it listens on. */
static void
test_reload_applies_mode(void **state)
{
	struct arb *a = arb_start(PERM_CONF, "dev", NULL);
	struct stat st;
	assert_int_equal(stat(arb_socket_path(a), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0666);
	FILE *f = fopen(arb_conf_path(a), "w");
	assert_non_null(f);
	fputs("bridge = { adapter = \"bridge_mock\"; };\n"
	    "control = { socket = \"arbor.sock\"; mode = \"0600\"; };\n"
	    "environments = { dev = { }; };\n", f);
	assert_int_equal(fclose(f), 0);
	json_decref(arb_op_ok(a, "reload"));
	assert_int_equal(stat(arb_socket_path(a), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The mode is the file's, not the last reload's: a socket changed
	 * behind arbord's back is set right by the next reload. */
	assert_int_equal(chmod(arb_socket_path(a), 0666), 0);
	json_decref(arb_op_ok(a, "reload"));
	assert_int_equal(stat(arb_socket_path(a), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_second_uid_refused, arb_teardown),
		cmocka_unit_test_teardown(test_reload_applies_mode, arb_teardown),
		cmocka_unit_test_teardown(test_max_clients, arb_teardown),
		cmocka_unit_test_teardown(test_gone_client_frees_its_slot, arb_teardown),
		cmocka_unit_test_teardown(test_half_closed_then_gone_frees_its_slot,
		    arb_teardown),
		cmocka_unit_test_teardown(test_client_that_never_reads, arb_teardown),
		cmocka_unit_test_teardown(test_second_arbord_exits_1, arb_teardown),
		cmocka_unit_test_teardown(test_stale_socket_replaced, arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
