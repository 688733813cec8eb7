/* Mode single (SPEC 6): requests on one connection are pipelined to
 * bridge/worker, up to worker.max_inflight at once, and replies are matched
 * by id whatever their order; the worker dying with requests in flight
 * fails each of them exactly once with worker_crashed.
 *
 * mock_worker answers one request at a time, so its replies come back in
 * the order sent. To see replies overtake each other, this binary is also a
 * worker: run as `test_single --ooo-worker` it serves `sleep` requests
 * concurrently and answers each when its time is up (see ooo_main). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define NSLEEPS	10
#define BW	"bridge/worker"

static const int sleep_ms[NSLEEPS] = { 300, 50, 200, 10, 250, 100, 150, 20,
    120, 80 };

/* ---- the out-of-order worker ---- */

#define OOO_MAX	256	/* sleeps held at once */

struct ooo_sleep {
	json_t		*id;
	long long	 due;
	json_int_t	 ms;
};

/* Writes one reply frame (reply stolen); exits if stdout is gone. */
static void
ooo_send(int fd, json_t *reply)
{
	char *s = json_dumps(reply, JSON_COMPACT);
	json_decref(reply);
	if (s == NULL || frame_write_blocking(fd, s, strlen(s)) < 0)
		exit(1);
	free(s);
}

/* Answers one request at once, or holds a sleep in held[]; returns false
 * after shutdown. */
static bool
ooo_request(int out, json_t *req, struct ooo_sleep *held, size_t *nheld)
{
	json_t *id = json_object_get(req, "id");
	const char *cmd = msg_str(req, "command");
	json_t *args = json_object_get(req, "args");
	json_int_t ms;
	if (cmd == NULL)
		ooo_send(out, msg_worker_err(id, "no command"));
	else if (strcmp(cmd, "ping") == 0)
		ooo_send(out, msg_worker_ok(id, json_pack("{s:b}", "pong", 1)));
	else if (strcmp(cmd, "shutdown") == 0) {
		ooo_send(out, msg_worker_ok(id, json_pack("{s:b}",
		    "shutting_down", 1)));
		return false;
	} else if (strcmp(cmd, "echo") == 0)
		ooo_send(out, msg_worker_ok(id, json_incref(args ? args :
		    json_object())));
	else if (strcmp(cmd, "sleep") == 0 && msg_int(args, "ms", &ms) &&
	    *nheld < OOO_MAX)
		held[(*nheld)++] = (struct ooo_sleep){ json_incref(id),
		    arb_now_ms() + ms, ms };
	else
		ooo_send(out, msg_worker_err(id, "unknown command: %s", cmd));
	return true;
}

/* Answers the sleeps whose time is up; returns ms to the next one (-1:
 * none). */
static int
ooo_due(int out, struct ooo_sleep *held, size_t *nheld)
{
	long long now = arb_now_ms(), next = -1;
	for (size_t i = 0; i < *nheld; ) {
		if (held[i].due <= now) {
			ooo_send(out, msg_worker_ok(held[i].id, json_pack("{s:I}",
			    "slept", held[i].ms)));
			json_decref(held[i].id);
			held[i] = held[--(*nheld)];
			continue;
		}
		if (next < 0 || held[i].due - now < next)
			next = held[i].due - now;
		i++;
	}
	return (int)next;
}

/* The worker's main loop: requests on stdin, replies on stdout. */
static int
ooo_main(void)
{
	static struct ooo_sleep held[OOO_MAX];
	size_t nheld = 0;
	struct buf in;
	buf_init(&in);
	for (;;) {
		int wait = ooo_due(1, held, &nheld);
		struct pollfd p = { 0, POLLIN, 0 };
		int r = poll(&p, 1, wait);
		if (r < 0 && errno != EINTR)
			return 1;
		if (r <= 0)
			continue;
		ssize_t n = buf_read_fd(&in, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return 0;	/* EOF: arbord is gone */
		const char *payload;
		size_t len;
		while (frame_peek(&in, 1u << 20, &payload, &len) == FRAME_OK) {
			json_t *req = frame_parse(payload, len, NULL);
			frame_done(&in, len);
			if (req == NULL)
				return 2;
			bool more = ooo_request(1, req, held, &nheld);
			json_decref(req);
			if (!more)
				return 0;
		}
	}
}

/* ---- starting arbord ---- */

/* Mode single with mock_worker, extra worker and pool settings. */
static struct arb *
start_mock_pool(const char *worker, const char *pool)
{
	char body[1024];
	snprintf(body, sizeof body,
	    "bridge = { adapter = \"bridge_mock\"; };\n"
	    "worker = { restart_delay_ms = 0; %s };\n"
	    "pool = { %s };\n"
	    "environments = { dev = { }; };\n", worker ? worker : "",
	    pool ? pool : "");
	struct arb *a = arb_start(body, "dev", NULL);
	arb_wait_ready_pid(a, BW, 0);
	return a;
}

/* Mode single with mock_worker. */
static struct arb *
start_mock(const char *worker)
{
	return start_mock_pool(worker, NULL);
}

/* Mode single with this binary as the out-of-order worker. */
static struct arb *
start_ooo(int max_inflight)
{
	char self[PATH_MAX], body[PATH_MAX + 512];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	assert_true(n > 0);
	self[n] = '\0';
	snprintf(body, sizeof body,
	    "bridge = { adapter = \"python_port\"; };\n"
	    "worker = { command = [ \"%s\", \"--ooo-worker\" ];\n"
	    /* In a sanitizer build the leak check at the worker's exit
	     * would clone a helper task into its process group just as
	     * arbord stops it (see mock_worker's __asan_default_options). */
	    "  env = { ASAN_OPTIONS = \"detect_leaks=0\"; };\n"
	    "  max_inflight = %d; };\n"
	    "environments = { dev = { }; };\n", self, max_inflight);
	struct arb *a = arb_start(body, "dev", NULL);
	arb_wait_ready_pid(a, BW, 0);
	return a;
}

/* ---- the tests ---- */

/* Sends the NSLEEPS sleeps (ids 1..NSLEEPS) in one write; collects the
 * replies in arrival order into order[] and checks each. */
static void
pipeline_sleeps(struct arb *a, json_int_t *order)
{
	struct cl_conn *c = cl_open(a);
	json_t *batch = json_array();
	for (int i = 0; i < NSLEEPS; i++)
		json_array_append_new(batch, cl_exec_req(i + 1, "sleep",
		    json_pack("{s:i}", "ms", sleep_ms[i]), NULL, 0));
	cl_send_batch(c, batch);
	json_decref(batch);
	bool seen[NSLEEPS] = { false };
	for (int k = 0; k < NSLEEPS; k++) {
		json_t *r = cl_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		json_int_t id = cl_reply_id(r);
		assert_true(id >= 1 && id <= NSLEEPS);
		assert_false(seen[id - 1]);
		seen[id - 1] = true;
		order[k] = id;
		assert_true(arb_reply_ok(r));
		assert_string_equal(cl_reply_worker(r), BW);
		assert_int_equal(json_integer_value(json_object_get(
		    json_object_get(r, "result"), "slept")), sleep_ms[id - 1]);
		json_decref(r);
	}
	assert_null(cl_recv(c, 100));	/* nothing more */
	cl_close(c);
}

static void
test_pipelined_to_mock_worker(void **state)
{
	struct arb *a = start_mock(NULL);
	json_int_t order[NSLEEPS];
	pipeline_sleeps(a, order);
	json_t *st = cl_stats(a);
	assert_string_equal(arb_node_str(st, "mode"), "single");
	assert_int_equal(arb_node_int(st, "total_operations"), NSLEEPS);
	assert_int_equal(arb_node_int(st, "successful_operations"), NSLEEPS);
	json_decref(st);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_replies_out_of_order(void **state)
{
	struct arb *a = start_ooo(64);
	json_int_t order[NSLEEPS];
	pipeline_sleeps(a, order);
	int pos_short = -1, pos_long = -1;	/* 10 ms (id 4), 300 ms (id 1) */
	for (int k = 0; k < NSLEEPS; k++) {
		fprintf(stderr, "%lld%s", (long long)order[k],
		    k + 1 < NSLEEPS ? " " : "  (reply order)\n");
		if (order[k] == 4)
			pos_short = k;
		if (order[k] == 1)
			pos_long = k;
	}
	assert_true(pos_short < pos_long);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_max_inflight_holds_the_rest(void **state)
{
	struct arb *a = start_ooo(2);
	struct cl_conn *c = cl_open(a);
	long long t0 = arb_now_ms();
	json_t *batch = json_array();
	for (int i = 1; i <= 3; i++)
		json_array_append_new(batch, cl_exec_req(i, "sleep",
		    json_pack("{s:i}", "ms", 700), NULL, 0));
	cl_send_batch(c, batch);
	json_decref(batch);
	/* Two at the worker, the third waiting in arbord. */
	assert_true(cl_wait_stat(a, "waiting", 1, 1, ARB_EVENT_MS));
	assert_int_equal(cl_stat(a, "busy"), 1);
	json_int_t last = 0;
	for (int k = 0; k < 3; k++) {
		json_t *r = cl_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		assert_true(arb_reply_ok(r));
		last = cl_reply_id(r);
		json_decref(r);
	}
	long long took = arb_now_ms() - t0;
	fprintf(stderr, "3 x 700 ms with max_inflight 2: %lld ms\n", took);
	assert_int_equal(last, 3);
	assert_true(took >= 1300);	/* the third started after one ended */
	assert_int_equal(cl_stat(a, "waiting"), 0);
	cl_close(c);
	assert_int_equal(arb_stop(a), 0);
}

/* A reply makes room in the pipeline: the first request waiting goes to
 * the worker then, not only once every request in flight is answered.
 * With max_inflight 2, a short and a long sleep in flight and a short one
 * waiting, the waiting one is sent when the first short one is answered,
 * so its reply overtakes the long one's. */
static void
test_reply_makes_room_in_pipeline(void **state)
{
	struct arb *a = start_ooo(2);
	struct cl_conn *c = cl_open(a);
	json_t *batch = json_pack("[o,o,o]",
	    cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 100), NULL, 0),
	    cl_exec_req(2, "sleep", json_pack("{s:i}", "ms", 8000), NULL, 0),
	    cl_exec_req(3, "sleep", json_pack("{s:i}", "ms", 100), NULL, 0));
	cl_send_batch(c, batch);
	json_decref(batch);
	json_int_t order[3];
	for (int k = 0; k < 3; k++) {
		json_t *r = cl_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		if (!arb_reply_ok(r)) {
			char *d = cl_describe(r);
			fail_msg("reply %d: %s", k + 1, d);
		}
		order[k] = cl_reply_id(r);
		json_decref(r);
	}
	fprintf(stderr, "reply order %lld %lld %lld\n", (long long)order[0],
	    (long long)order[1], (long long)order[2]);
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 3);	/* before the 8 s sleep */
	assert_int_equal(order[2], 2);
	cl_close(c);
	assert_int_equal(arb_stop(a), 0);
}

/* A request's timeout counts from when the requests ahead of it in the
 * pipeline are done: a short one behind a long sleep (both in flight,
 * mock_worker answering in order) does not get the worker killed, which
 * would fail the long one with worker_crashed. */
static void
test_short_timeout_behind_long_request(void **state)
{
	struct arb *a = start_mock(NULL);
	json_int_t pid = cl_worker_pid(a, BW);
	struct cl_conn *c = cl_open(a);
	json_t *batch = json_pack("[o,o]",
	    cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 1200), NULL, 20000),
	    cl_exec_req(2, "echo", json_pack("{s:i}", "n", 2), NULL, 300));
	cl_send_batch(c, batch);
	json_decref(batch);
	for (int k = 0; k < 2; k++) {
		json_t *r = cl_recv_ok(c, ARB_REPLY_MS, "a pipelined request");
		json_decref(r);
	}
	cl_close(c);
	assert_int_equal(cl_worker_pid(a, BW), pid);	/* never killed */
	assert_int_equal(arb_stop(a), 0);
}

/* ... and from no later than that: a short timeout behind a request
 * answered at once (whose own deadline is a minute away) counts from that
 * answer, so a hung worker is killed after the short timeout, not after
 * the long deadline of a request long done. */
static void
test_short_timeout_behind_quick_request(void **state)
{
	struct arb *a = start_mock(NULL);
	json_int_t pid = cl_worker_pid(a, BW);
	struct cl_conn *c = cl_open(a);
	json_t *batch = json_pack("[o,o]",
	    cl_exec_req(1, "echo", json_pack("{s:i}", "n", 1), NULL, 60000),
	    cl_exec_req(2, "hang", NULL, NULL, 300));
	long long t0 = arb_now_ms();
	cl_send_batch(c, batch);
	json_decref(batch);
	json_t *r = cl_recv_ok(c, ARB_REPLY_MS, "the echo");
	assert_int_equal(cl_reply_id(r), 1);
	json_decref(r);
	r = cl_recv(c, ARB_REPLY_MS);	/* well before the echo's minute */
	assert_non_null(r);
	assert_int_equal(cl_reply_id(r), 2);
	assert_string_equal(arb_reply_code(r), "timeout");
	assert_true(arb_now_ms() - t0 < ARB_REPLY_MS);
	json_decref(r);
	cl_close(c);
	arb_wait_ready_pid(a, BW, pid);
	assert_int_equal(arb_stop(a), 0);
}

/* A request past its deadline fails with timeout and gets the worker
 * killed; one waiting behind it (max_inflight 1) was never at that worker
 * and goes to its successor rather than failing with it. */
static void
test_timeout_spares_waiting_request(void **state)
{
	struct arb *a = start_mock("max_inflight = 1;");
	json_int_t pid = cl_worker_pid(a, BW);
	struct cl_conn *c = cl_open(a);
	json_t *batch = json_pack("[o,o]",
	    cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 10000), NULL, 300),
	    cl_exec_req(2, "echo", json_pack("{s:i}", "n", 2), NULL, 0));
	cl_send_batch(c, batch);
	json_decref(batch);
	for (int k = 0; k < 2; k++) {
		json_t *r = cl_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		char *d = cl_describe(r);
		fprintf(stderr, "reply: %s\n", d);
		free(d);
		if (cl_reply_id(r) == 1) {
			assert_string_equal(arb_reply_code(r), "timeout");
		} else {
			assert_int_equal(cl_reply_id(r), 2);
			assert_true(arb_reply_ok(r));
		}
		json_decref(r);
	}
	cl_close(c);
	arb_wait_ready_pid(a, BW, pid);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_crash_fails_each_inflight_once(void **state)
{
	struct arb *a = start_mock(NULL);
	json_int_t pid = cl_worker_pid(a, BW);
	struct cl_conn *c = cl_open(a);
	json_t *batch = json_array();
	json_array_append_new(batch, cl_exec_req(1, "sleep",
	    json_pack("{s:i}", "ms", 300), NULL, 0));
	json_array_append_new(batch, cl_exec_req(2, "crash",
	    json_pack("{s:i}", "code", 3), NULL, 0));
	json_array_append_new(batch, cl_exec_req(3, "echo", NULL, NULL, 0));
	json_array_append_new(batch, cl_exec_req(4, "echo", NULL, "s1", 0));
	cl_send_batch(c, batch);
	json_decref(batch);
	int count[5] = { 0 };
	for (int k = 0; k < 4; k++) {
		json_t *r = cl_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		json_int_t id = cl_reply_id(r);
		assert_true(id >= 1 && id <= 4);
		count[id]++;
		if (id == 1)
			assert_true(arb_reply_ok(r));
		else
			assert_string_equal(arb_reply_code(r), "worker_crashed");
		json_decref(r);
	}
	assert_null(cl_recv(c, 300));	/* no second reply */
	for (int id = 1; id <= 4; id++)
		assert_int_equal(count[id], 1);
	cl_close(c);
	arb_wait_ready_pid(a, BW, pid);
	json_t *r = cl_exec_ok(a, "echo", json_pack("{s:i}", "x", 1), NULL);
	assert_string_equal(cl_reply_worker(r), BW);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* Sends n echos (ids 1..n, args {"n": id}) in one write and checks that
 * each comes back ok, once, with its own args. */
static void
pipeline_echos(struct arb *a, int n)
{
	struct cl_conn *c = cl_open(a);
	json_t *batch = json_array();
	for (int i = 1; i <= n; i++)
		json_array_append_new(batch, cl_exec_req(i, "echo",
		    json_pack("{s:i}", "n", i), NULL, 0));
	cl_send_batch(c, batch);
	json_decref(batch);
	bool seen[16] = { false };
	for (int k = 0; k < n; k++) {
		json_t *r = cl_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		if (!arb_reply_ok(r)) {
			char *d = cl_describe(r);
			fail_msg("reply %d: %s", k + 1, d);
		}
		json_int_t id = cl_reply_id(r);
		assert_true(id >= 1 && id <= n && !seen[id]);
		seen[id] = true;
		assert_int_equal(json_integer_value(json_object_get(
		    json_object_get(r, "result"), "n")), id);
		json_decref(r);
	}
	cl_close(c);
}

/* The requests_handled of bridge/worker once it is ready with a pid other
 * than old. */
static json_int_t
handled_after_replacement(struct arb *a, json_int_t old)
{
	json_t *node = arb_wait_node(a, BW, "ready", old, ARB_EVENT_MS);
	assert_non_null(node);
	json_int_t n = arb_node_int(json_object_get(node, "stats"),
	    "requests_handled");
	json_decref(node);
	return n;
}

/* worker.max_requests holds in mode single too: a process is sent that
 * many requests and recycled once they are answered; the ones beyond wait
 * for its successor, so none fails. 7 with max 3: 3, 3 and 1. */
static void
test_max_requests_recycles(void **state)
{
	struct arb *a = start_mock("max_requests = 3;");
	json_int_t pid = cl_worker_pid(a, BW);
	pipeline_echos(a, 7);
	assert_int_equal(handled_after_replacement(a, pid), 1);
	assert_int_equal(arb_stop(a), 0);
}

/* worker.max_errors too: past it the worker is replaced, after the
 * requests already sent to it are answered. */
static void
test_max_errors_replaces(void **state)
{
	struct arb *a = start_mock("max_errors = 1;");
	json_int_t pid = cl_worker_pid(a, BW);
	struct cl_conn *c = cl_open(a);
	json_t *batch = json_pack("[o,o,o,o]",
	    cl_exec_req(1, "no_such_command", NULL, NULL, 0),
	    cl_exec_req(2, "no_such_command", NULL, NULL, 0),
	    cl_exec_req(3, "echo", NULL, NULL, 0),
	    cl_exec_req(4, "echo", NULL, NULL, 0));
	cl_send_batch(c, batch);
	json_decref(batch);
	for (int k = 0; k < 4; k++) {
		json_t *r = cl_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		json_int_t id = cl_reply_id(r);
		if (id <= 2)
			assert_string_equal(arb_reply_code(r), "worker_error");
		else
			assert_true(arb_reply_ok(r));
		json_decref(r);
	}
	cl_close(c);
	assert_int_equal(handled_after_replacement(a, pid), 0);
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	assert_int_equal(arb_stop(a), 0);
}

/* A stop holds even when the request the worker finishes meanwhile (it
 * ignores SIGTERM, as the Python SDK's workers finish theirs) is the one
 * that makes it due for recycling. */
static void
test_stop_holds_over_recycle(void **state)
{
	struct arb *a = start_mock("max_requests = 1; shutdown_timeout_ms = "
	    "15000; env = { MOCK_WORKER_IGNORE_TERM = \"1\"; };");
	json_int_t pid = cl_worker_pid(a, BW);
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1500), NULL, "busy", 1);
	json_t *r = arb_call_ok(a, json_pack("{s:s, s:s}", "op", "stop",
	    "name", BW));
	assert_string_equal(arb_node_str(r, "state"), "stopping");
	json_decref(r);
	json_decref(cl_recv_ok(c, ARB_REPLY_MS, "the held request"));
	cl_close(c);
	json_t *node = arb_wait_node(a, BW, "stopped", 0, ARB_EVENT_MS);
	assert_non_null(node);
	json_decref(node);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	for (long long end = arb_now_ms() + 1500; arb_now_ms() < end;
	    arb_sleep_ms(100)) {
		node = arb_status(a, BW);
		assert_non_null(node);
		assert_string_equal(arb_node_str(node, "state"), "stopped");
		json_decref(node);
	}
	assert_int_equal(arb_stop(a), 0);
}

/* A session whose request waits for the worker (beyond max_inflight) is
 * not idle: the wait outlasting session_ttl_ms does not end the session
 * (the worker told cleanup_session ahead of the request), and the request
 * finds the program the session made. */
static void
test_ttl_spares_session_waiting(void **state)
{
	struct arb *a = start_mock_pool("max_inflight = 1;",
	    "session_ttl_ms = 500;");
	json_decref(cl_exec_ok(a, "create_program", json_pack("{s:s,s:s}",
	    "program_id", "p", "signature", "question -> answer"), "x1"));
	struct cl_conn *busy = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 2500), NULL, "busy", 1);
	struct cl_conn *waiter = cl_send_held(a, 2, "execute_program",
	    json_pack("{s:s,s:{s:s}}", "program_id", "p", "inputs",
	    "question", "q"), "x1", "waiting", 1);
	json_t *r = cl_recv_ok(waiter, ARB_REPLY_MS,
	    "the request that waited");
	assert_false(cl_reply_reset(r));
	json_decref(r);
	json_decref(cl_recv_ok(busy, ARB_REPLY_MS, "the held request"));
	cl_close(busy);
	cl_close(waiter);
	assert_int_equal(cl_stat(a, "stale_sessions_cleaned"), 0);
	assert_int_equal(cl_stat(a, "total_sessions"), 1);
	assert_int_equal(arb_stop(a), 0);
}

/* A worker whose stdout closed while it runs (close_stdout) takes no more
 * requests in the grace before it is killed: one sent then waits for its
 * successor, where written to it it would have failed with it. */
static void
test_closed_worker_takes_no_requests(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { adapter = \"bridge_mock\"; };\n"
	    "worker = { restart_delay_ms = 0; };\n"
	    "log = { level = \"debug\"; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_int_t pid = arb_wait_ready_pid(a, BW, 0);
	struct cl_conn *closing = cl_send_held(a, 1, "close_stdout", NULL,
	    NULL, "busy", 1);
	assert_true(arb_wait_log_line(a, ARB_EVENT_MS, BW, "stdout closed",
	    "no more requests", NULL));
	json_t *r = cl_exec_ok(a, "ping", NULL, NULL);
	json_int_t served = json_integer_value(json_object_get(
	    json_object_get(r, "result"), "pid"));
	json_decref(r);
	assert_true(served > 0 && served != pid);
	r = cl_recv(closing, ARB_REPLY_MS);
	assert_non_null(r);
	assert_string_equal(arb_reply_code(r), "worker_crashed");
	json_decref(r);
	cl_close(closing);
	assert_int_equal(arb_stop(a), 0);
}

/* After bridge/worker restarts, the next reply in a session carries
 * "session_reset": true (SPEC 6), whichever of its pipelined requests
 * the worker answers first: here the one sent second overtakes the
 * first, and the notice comes with it, once. */
static void
test_reset_told_by_first_reply(void **state)
{
	struct arb *a = start_ooo(8);
	json_decref(cl_exec_ok(a, "echo", NULL, "s1"));
	json_int_t pid = cl_worker_pid(a, BW);
	json_decref(arb_call_ok(a, json_pack("{s:i,s:s,s:s}", "id", 1, "op",
	    "restart", "name", BW)));
	arb_wait_ready_pid(a, BW, pid);
	struct cl_conn *c = cl_open(a);
	json_t *batch = json_pack("[o,o]",
	    cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 1500), "s1", 0),
	    cl_exec_req(2, "sleep", json_pack("{s:i}", "ms", 10), "s1", 0));
	cl_send_batch(c, batch);
	json_decref(batch);
	for (int k = 0; k < 2; k++) {
		json_t *r = cl_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		assert_true(arb_reply_ok(r));
		assert_int_equal(cl_reply_id(r), k == 0 ? 2 : 1);
		assert_int_equal(cl_reply_reset(r), k == 0);
		json_decref(r);
	}
	cl_close(c);
	assert_int_equal(arb_stop(a), 0);
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--ooo-worker") == 0)
		return ooo_main();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_pipelined_to_mock_worker, arb_teardown),
		cmocka_unit_test_teardown(test_replies_out_of_order, arb_teardown),
		cmocka_unit_test_teardown(test_max_inflight_holds_the_rest, arb_teardown),
		cmocka_unit_test_teardown(test_reply_makes_room_in_pipeline, arb_teardown),
		cmocka_unit_test_teardown(test_short_timeout_behind_quick_request,
		    arb_teardown),
		cmocka_unit_test_teardown(test_short_timeout_behind_long_request,
		    arb_teardown),
		cmocka_unit_test_teardown(test_timeout_spares_waiting_request, arb_teardown),
		cmocka_unit_test_teardown(test_crash_fails_each_inflight_once, arb_teardown),
		cmocka_unit_test_teardown(test_max_requests_recycles, arb_teardown),
		cmocka_unit_test_teardown(test_max_errors_replaces, arb_teardown),
		cmocka_unit_test_teardown(test_stop_holds_over_recycle, arb_teardown),
		cmocka_unit_test_teardown(test_ttl_spares_session_waiting, arb_teardown),
		cmocka_unit_test_teardown(test_closed_worker_takes_no_requests,
		    arb_teardown),
		cmocka_unit_test_teardown(test_reset_told_by_first_reply,
		    arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
