/* The control socket end to end (SPEC 6, 7, 8): malformed input gets an
 * error reply and never stops arbord from serving; unknown ops and names
 * get their codes; pipelined requests each get one reply with their id;
 * arborctl's exit codes and how long a call waits for its reply. One
 * arbord (control.max_frame_bytes = 1024) serves every test of the group. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/xmalloc.h"
#include "supervisor/config.h"
#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define MAX_FRAME	1024
#define CLOSE_MS	5000	/* bound for arbord closing a connection */
#define OUT_MAX		65536

static const char CONTROL_CONF[] =
    "bridge = { adapter = \"bridge_mock\"; };\n"
    "control = { socket = \"arbor.sock\"; max_frame_bytes = 1024; };\n"
    "environments = { dev = { }; };\n";

static int
group_setup(void **state)
{
	struct arb *a = arb_start(CONTROL_CONF, "dev", NULL);
	arb_wait_ready_pid(a, "bridge/worker", 0);
	*state = a;
	return 0;
}

static int
group_teardown(void **state)
{
	return arb_stop(*state) == 0 ? 0 : -1;
}

/* A new connection still gets pong: arbord survived whatever came before. */
static void
assert_serving(struct arb *a)
{
	json_t *r = arb_op_ok(a, "ping");
	assert_true(json_is_true(json_object_get(r, "pong")));
	json_decref(r);
}

/* An error reply with code, and id when id >= 0. */
static void
assert_error(const json_t *r, const char *code, json_int_t id)
{
	if (r == NULL)
		fail_msg("no reply, expected error %s", code);
	const char *got = arb_reply_code(r);
	if (arb_reply_ok(r) || got == NULL || strcmp(got, code) != 0) {
		char *s = json_dumps(r, JSON_COMPACT);
		fprintf(stderr, "reply: %s\n", s);
		free(s);
		fail_msg("expected error %s", code);
	}
	assert_true(json_is_string(json_object_get(json_object_get(r,
	    "error"), "message")));
	if (id >= 0)
		assert_int_equal(arb_node_int(r, "id"), id);
}

/* Sends bytes on a fresh connection and returns the one reply. */
static json_t *
exchange(struct arb *a, const void *bytes, size_t n, bool expect_close)
{
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	assert_int_equal(arb_conn_send_raw(c, bytes, n), 0);
	json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
	if (expect_close && !arb_conn_closed(c, CLOSE_MS))
		fail_msg("arbord kept the connection open after a framing "
		    "error");
	arb_conn_close(c);
	return r;
}

/* One frame holding payload, sent on a fresh connection. */
static json_t *
exchange_frame(struct arb *a, const char *payload, size_t n)
{
	struct buf out;
	buf_init(&out);
	frame_put(&out, payload, n);
	json_t *r = exchange(a, buf_head(&out), buf_used(&out), false);
	buf_release(&out);
	return r;
}

static void
test_garbage_bytes(void **state)
{
	struct arb *a = *state;
	static const char junk[] = "this is not a frame, only text\r\n\r\n";
	json_t *r = exchange(a, junk, sizeof junk - 1, true);
	assert_non_null(r);
	const char *code = arb_reply_code(r);
	assert_false(arb_reply_ok(r));
	assert_non_null(code);
	assert_true(strcmp(code, "bad_request") == 0 ||
	    strcmp(code, "frame_too_large") == 0);
	json_decref(r);
	assert_serving(a);
}

static void
test_invalid_json(void **state)
{
	struct arb *a = *state;
	static const char bad[] = "{\"id\": 1, \"op\": ";
	json_t *r = exchange_frame(a, bad, sizeof bad - 1);
	assert_error(r, "bad_request", -1);
	json_decref(r);
	assert_serving(a);
}

/* JSON that arbord refuses though it is well-formed (a "\u0000", an
 * integer beyond 64 bits, a repeated key) gets bad_request with the
 * request's id: a client pipelining requests can tell which one failed. */
static void
test_refused_json_keeps_id(void **state)
{
	struct arb *a = *state;
	static const char *const bad[] = {
		"{\"id\": 60, \"op\": \"execute\", \"command\": \"echo\", "
		    "\"session_id\": \"s\\u0000x\"}",
		"{\"id\": 61, \"op\": \"execute\", \"command\": \"echo\", "
		    "\"timeout_ms\": 99999999999999999999999}",
		"{\"id\": 62, \"op\": \"execute\", \"command\": \"echo\", "
		    "\"timeout_ms\": 100, \"timeout_ms\": 200}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *r = exchange_frame(a, bad[i], strlen(bad[i]));
		assert_error(r, "bad_request", (json_int_t)(60 + i));
		assert_true(json_is_integer(json_object_get(r, "id")));
		json_decref(r);
	}
	assert_serving(a);
}

static void
test_json_non_object(void **state)
{
	struct arb *a = *state;
	static const char *const bad[] = { "[1, 2, 3]", "42", "\"ping\"",
	    "null", "", "{\"op\": \"ping\"} trailing" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *r = exchange_frame(a, bad[i], strlen(bad[i]));
		assert_error(r, "bad_request", -1);
		json_decref(r);
		assert_serving(a);
	}
}

static void
test_missing_or_mistyped_fields(void **state)
{
	struct arb *a = *state;
	json_t *r = arb_call(a, json_pack("{s:i}", "id", 8));
	assert_error(r, "bad_request", 8);
	json_decref(r);
	r = arb_call(a, json_pack("{s:i, s:i}", "id", 9, "op", 5));
	assert_error(r, "bad_request", 9);
	json_decref(r);
	r = arb_call(a, json_pack("{s:i, s:s, s:i}", "id", 10, "op", "status",
	    "name", 7));
	assert_error(r, "bad_request", 10);
	json_decref(r);
	r = arb_call(a, json_pack("{s:i, s:s, s:i}", "id", 11, "op",
	    "execute", "command", 7));
	assert_error(r, "bad_request", 11);
	json_decref(r);
	assert_serving(a);
}

/* The worker's errors count from bridge/worker's stats. */
static json_int_t
worker_errors(struct arb *a)
{
	json_t *node = arb_status(a, "bridge/worker");
	assert_non_null(node);
	json_int_t n = arb_node_int(json_object_get(node, "stats"), "errors");
	json_decref(node);
	return n;
}

/* SPEC 5: a request's args is an object. Any other JSON is a bad_request
 * of the client's; never sent to a worker, where it would count as the
 * worker's error (and get it replaced after worker.max_errors). */
static void
test_execute_args_not_object(void **state)
{
	struct arb *a = *state;
	static const char *const bad[] = { "5", "\"s\"", "[1]", "true",
	    "1.5" };
	const size_t nbad = sizeof bad / sizeof bad[0];
	json_int_t errors = worker_errors(a);
	for (size_t i = 0; i < 2 * nbad; i++) {
		/* the second round escapes the command: the jansson path */
		char *req = xasprintf("{\"id\": %zu, \"op\": \"execute\", "
		    "\"command\": \"%s\", \"args\": %s}", 30 + i,
		    i < nbad ? "echo" : "ech\\u006f", bad[i % nbad]);
		json_t *r = exchange_frame(a, req, strlen(req));
		assert_error(r, "bad_request", (json_int_t)(30 + i));
		json_decref(r);
		free(req);
	}
	json_t *r = arb_call_ok(a, json_pack("{s:s, s:s, s:n}", "op",
	    "execute", "command", "echo", "args"));
	json_decref(r);
	r = arb_call_ok(a, json_pack("{s:s, s:s, s:{s:i}}", "op", "execute",
	    "command", "echo", "args", "k", 1));
	assert_int_equal(arb_node_int(json_object_get(r, "result"), "k"), 1);
	json_decref(r);
	assert_int_equal(worker_errors(a), errors);
}

/* The stats counter total_sessions. */
static json_int_t
total_sessions(struct arb *a)
{
	json_t *r = arb_op_ok(a, "stats");
	json_int_t n = arb_node_int(json_object_get(r, "stats"),
	    "total_sessions");
	json_decref(r);
	return n;
}

/* An empty session_id names no session a worker can keep: the SDK's
 * cleanup_session refuses it, so end_session would answer "ended" while
 * the worker kept the session's state. Refused as bad_request, on the
 * fast path and the jansson path alike, and by end_session. */
static void
test_empty_session_id(void **state)
{
	struct arb *a = *state;
	json_int_t before = total_sessions(a);
	for (int i = 0; i < 2; i++) {
		char *req = xasprintf("{\"id\": %d, \"op\": \"execute\", "
		    "\"command\": \"%s\", \"session_id\": \"\"}", 50 + i,
		    i == 0 ? "echo" : "ech\\u006f");
		json_t *r = exchange_frame(a, req, strlen(req));
		assert_error(r, "bad_request", 50 + i);
		json_decref(r);
		free(req);
	}
	json_t *r = arb_call(a, json_pack("{s:i, s:s, s:s}", "id", 52, "op",
	    "end_session", "session_id", ""));
	assert_error(r, "bad_request", 52);
	json_decref(r);
	assert_int_equal(total_sessions(a), before);
	assert_serving(a);
}

static void
test_frame_too_large(void **state)
{
	struct arb *a = *state;
	struct arb_conn *other = arb_conn_open(a);	/* a bystander */
	assert_non_null(other);
	static const size_t sizes[] = { MAX_FRAME + 1, 2 * MAX_FRAME,
	    0x7fffffff };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		unsigned char msg[4 + 100];
		uint32_t n = (uint32_t)sizes[i];
		msg[0] = n >> 24, msg[1] = n >> 16, msg[2] = n >> 8, msg[3] = n;
		memset(msg + 4, 'x', 100);
		json_t *r = exchange(a, msg, sizeof msg, true);
		assert_error(r, "frame_too_large", -1);
		json_decref(r);
	}
	json_t *ping = json_pack("{s:i, s:s}", "id", 77, "op", "ping");
	assert_int_equal(arb_conn_send(other, ping), 0);
	json_decref(ping);
	json_t *r = arb_conn_recv(other, ARB_REPLY_MS);
	assert_non_null(r);
	assert_true(arb_reply_ok(r));
	assert_int_equal(arb_node_int(r, "id"), 77);
	json_decref(r);
	arb_conn_close(other);
	assert_serving(a);
}

/* A frame too large ends the connection, but not before the replies owed
 * for the requests read ahead of it (SPEC 7: every execute gets exactly
 * one reply): a sleep in flight still gets its own, then the connection
 * is closed. */
static void
test_frame_too_large_after_request(void **state)
{
	struct arb *a = *state;
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	struct buf out;
	buf_init(&out);
	json_t *req = json_pack("{s:i, s:s, s:s, s:{s:i}}", "id", 41, "op",
	    "execute", "command", "sleep", "args", "ms", 300);
	frame_put_json(&out, req);
	json_decref(req);
	static const unsigned char big[] = { 0, 0, 0x40, 0, 'x', 'x' };
	buf_append(&out, big, sizeof big);
	assert_int_equal(arb_conn_send_raw(c, buf_head(&out), buf_used(&out)), 0);
	buf_release(&out);
	bool refused = false, answered = false;
	for (int i = 0; i < 2; i++) {
		json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
		if (r == NULL)
			fail_msg("connection closed after %s", refused ?
			    "frame_too_large, the sleep unanswered" :
			    "the sleep's reply, no frame_too_large");
		if (json_is_null(json_object_get(r, "id"))) {
			assert_error(r, "frame_too_large", -1);
			refused = true;
		} else {
			assert_true(arb_reply_ok(r));
			assert_int_equal(arb_node_int(r, "id"), 41);
			answered = true;
		}
		json_decref(r);
	}
	assert_true(refused && answered);
	if (!arb_conn_closed(c, CLOSE_MS))
		fail_msg("arbord kept the connection open after a framing "
		    "error");
	arb_conn_close(c);
	assert_serving(a);
}

/* A ping padded with blanks to exactly n bytes of JSON. */
static char *
padded_ping(int id, size_t n)
{
	char *s = xmalloc(n + 1);
	int len = snprintf(s, n + 1, "{\"id\": %d, \"op\": \"ping\"", id);
	memset(s + len, ' ', n - (size_t)len - 1);
	s[n - 1] = '}';
	s[n] = '\0';
	return s;
}

/* max_frame_bytes is inclusive; the stream stays in step after it. */
static void
test_frame_at_limit(void **state)
{
	struct arb *a = *state;
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	char *p = padded_ping(21, MAX_FRAME);
	struct buf out;
	buf_init(&out);
	frame_put(&out, p, MAX_FRAME);
	free(p);
	json_t *ping = json_pack("{s:i, s:s}", "id", 22, "op", "ping");
	frame_put_json(&out, ping);
	json_decref(ping);
	assert_int_equal(arb_conn_send_raw(c, buf_head(&out), buf_used(&out)), 0);
	buf_release(&out);
	for (int i = 0; i < 2; i++) {
		json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		assert_true(arb_reply_ok(r));
		assert_int_equal(arb_node_int(r, "id"), 21 + i);
		json_decref(r);
	}
	arb_conn_close(c);

	p = padded_ping(23, MAX_FRAME + 1);
	json_t *r = exchange_frame(a, p, MAX_FRAME + 1);
	free(p);
	assert_error(r, "frame_too_large", -1);
	json_decref(r);
	assert_serving(a);
}

/* A client that hangs up mid-frame costs arbord nothing. */
static void
test_partial_frame_then_close(void **state)
{
	struct arb *a = *state;
	static const char half_header[] = { 0, 0 };
	static const char half_frame[] = { 0, 0, 0, 40, '{', '"', 'o', 'p' };
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	assert_int_equal(arb_conn_send_raw(c, half_header, 2), 0);
	arb_conn_close(c);
	c = arb_conn_open(a);
	assert_non_null(c);
	assert_int_equal(arb_conn_send_raw(c, half_frame, sizeof half_frame), 0);
	arb_conn_close(c);
	c = arb_conn_open(a);	/* and one that says nothing at all */
	assert_non_null(c);
	arb_conn_close(c);
	assert_serving(a);
}

static void
test_unknown_op(void **state)
{
	struct arb *a = *state;
	json_t *r = arb_call(a, json_pack("{s:i, s:s}", "id", 7, "op",
	    "frobnicate"));
	assert_error(r, "unknown_op", 7);
	json_decref(r);
	assert_serving(a);
}

static void
test_status_unknown_name(void **state)
{
	struct arb *a = *state;
	json_t *r = arb_call(a, json_pack("{s:i, s:s, s:s}", "id", 12, "op",
	    "status", "name", "pool/worker.9"));
	assert_error(r, "not_found", 12);
	json_decref(r);
	r = arb_call(a, json_pack("{s:i, s:s, s:s}", "id", 13, "op", "status",
	    "name", "worker"));	/* names are full paths */
	assert_error(r, "not_found", 13);
	json_decref(r);
	json_t *node = arb_status(a, "bridge/worker");
	assert_non_null(node);
	assert_string_equal(arb_node_str(node, "name"), "bridge/worker");
	json_decref(node);
}

/* status writes its reply as text: whatever id was sent comes back equal,
 * an absent one as null. */
static void
test_status_ids(void **state)
{
	struct arb *a = *state;
	json_t *ids[] = { json_string("s\"t\\\u00e9\n"), json_real(2.5),
	    json_pack("{s:[i,s]}", "k", -1, "v"), json_null(),
	    json_integer(-9007199254740993LL) };
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		json_t *r = arb_call_ok(a, json_pack("{s:O, s:s}", "id", ids[i],
		    "op", "status"));
		assert_true(json_equal(json_object_get(r, "id"), ids[i]));
		assert_string_equal(arb_node_str(json_object_get(r, "tree"),
		    "name"), "root");
		json_decref(r);
		json_decref(ids[i]);
	}
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	json_t *req = json_pack("{s:s, s:s}", "op", "status", "name",
	    "bridge/worker");
	assert_int_equal(arb_conn_send(c, req), 0);
	json_decref(req);
	json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
	assert_true(arb_reply_ok(r));
	assert_true(json_is_null(json_object_get(r, "id")));
	assert_string_equal(arb_node_str(json_object_get(r, "tree"), "kind"),
	    "worker");
	json_decref(r);
	arb_conn_close(c);
}

/* One request of each op that does not change the tree, each also in a
 * form that fails (bad_request, not_found, unknown_op, a worker's error):
 * whatever JSON type its id has, the reply carries it back equal. execute
 * is sent as the fast path reads it and with an escape in its command
 * (the jansson path). */
static void
test_ids_every_op(void **state)
{
	struct arb *a = *state;
	static const char *const reqs[] = {
		"\"op\": \"ping\"",
		"\"op\": \"status\"",
		"\"op\": \"status\", \"name\": \"bridge/worker\"",
		"\"op\": \"health\"",
		"\"op\": \"stats\"",
		"\"op\": \"metrics\"",
		"\"op\": \"end_session\", \"session_id\": \"no-such\"",
		"\"op\": \"execute\", \"command\": \"echo\", \"args\": {}",
		"\"op\": \"execute\", \"command\": \"ech\\u006f\"",
		"\"op\": \"execute\", \"command\": \"no-such-command\"",
		"\"op\": \"execute\"",
		"\"op\": \"status\", \"name\": \"no/such\"",
		"\"op\": \"stop\", \"name\": \"no/such\"",
		"\"op\": \"start\", \"name\": \"no/such\"",
		"\"op\": \"restart\", \"name\": 5",
		"\"op\": \"frobnicate\"",
		"\"op\": 3",
	};
	static const char *const ids[] = { "7", "-12", "2.5", "\"s\\\"t\\u00e9\"",
	    "true", "false", "null", "[1, \"a\"]", "{\"k\": {\"v\": [null]}}" };
	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
			char *req = xasprintf("{\"id\": %s, %s}", ids[k], reqs[i]);
			json_t *want = json_loads(ids[k], JSON_DECODE_ANY, NULL);
			json_t *r = exchange_frame(a, req, strlen(req));
			if (r == NULL || !json_equal(json_object_get(r, "id"),
			    want)) {
				char *d = r ? json_dumps(r, JSON_COMPACT) : NULL;
				fprintf(stderr, "request %s\nreply %s\n", req,
				    d ? d : "(none)");
				free(d);
				fail_msg("the reply does not carry the id back");
			}
			json_decref(r);
			json_decref(want);
			free(req);
		}
	}
	/* no id: null */
	static const char noid[] = "{\"op\": \"execute\", \"command\": \"echo\"}";
	json_t *r = exchange_frame(a, noid, sizeof noid - 1);
	assert_true(arb_reply_ok(r));
	assert_true(json_is_null(json_object_get(r, "id")));
	json_decref(r);
	assert_serving(a);
}

/* A string param that is missing, not a string or empty is a bad_request
 * that says which of the three it is. */
static void
test_string_param_wording(void **state)
{
	struct arb *a = *state;
	static const char *const ops[] = { "status", "restart", "stop",
	    "start", "end_session" };
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		const char *key = strcmp(ops[i], "end_session") == 0 ?
		    "session_id" : "name";
		char want[64];
		json_t *r;
		if (strcmp(ops[i], "status") != 0) {	/* optional there */
			r = arb_call(a, json_pack("{s:i,s:s}", "id", 70, "op",
			    ops[i]));
			assert_error(r, "bad_request", 70);
			snprintf(want, sizeof want, "missing string param '%s'",
			    key);
			assert_string_equal(cl_reply_message(r), want);
			json_decref(r);
		}
		r = arb_call(a, json_pack("{s:i,s:s,s:i}", "id", 71, "op",
		    ops[i], key, 5));
		assert_error(r, "bad_request", 71);
		snprintf(want, sizeof want, "param '%s' must be a string", key);
		assert_string_equal(cl_reply_message(r), want);
		json_decref(r);
		r = arb_call(a, json_pack("{s:i,s:s,s:s}", "id", 72, "op",
		    ops[i], key, ""));
		assert_error(r, "bad_request", 72);
		snprintf(want, sizeof want, "param '%s' is empty", key);
		assert_string_equal(cl_reply_message(r), want);
		json_decref(r);
	}
	assert_serving(a);
}

/* stop and start take a worker (SPEC 6): a supervisor's name is a
 * bad_request that changes nothing. */
static void
test_stop_start_supervisor(void **state)
{
	struct arb *a = *state;
	static const char *const names[] = { "root", "bridge" };
	static const char *const ops[] = { "stop", "start" };
	json_int_t pid = cl_worker_pid(a, "bridge/worker");
	for (size_t i = 0; i < 2; i++)
		for (size_t k = 0; k < 2; k++) {
			json_t *r = arb_call(a, json_pack("{s:i, s:s, s:s}",
			    "id", 90, "op", ops[k], "name", names[i]));
			assert_error(r, "bad_request", 90);
			json_decref(r);
		}
	json_t *tree = arb_status(a, NULL);
	assert_non_null(tree);
	assert_string_equal(arb_node_str(arb_find(tree, "bridge"), "state"),
	    "running");
	assert_string_equal(arb_node_str(arb_find(tree, "bridge/worker"),
	    "state"), "ready");
	assert_int_equal(arb_node_pid(arb_find(tree, "bridge/worker")), pid);
	json_decref(tree);
}

/* restart of each kind of node: the worker, its supervisor, the root.
 * Each answers with the name and brings up a new worker process. */
static void
test_restart_each_kind(void **state)
{
	struct arb *a = *state;
	static const char *const names[] = { "bridge/worker", "bridge",
	    "root" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		json_int_t pid = cl_worker_pid(a, "bridge/worker");
		json_t *r = arb_call_ok(a, json_pack("{s:s, s:s}", "op",
		    "restart", "name", names[i]));
		assert_string_equal(arb_node_str(r, "restarted"), names[i]);
		json_decref(r);
		json_t *node = arb_wait_node(a, "bridge/worker", "ready", pid,
		    ARB_EVENT_MS);
		if (node == NULL)
			fail_msg("restart %s: no new ready bridge/worker",
			    names[i]);
		json_decref(node);
		assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	}
	json_t *h = arb_op_ok(a, "health");
	assert_string_equal(arb_node_str(h, "health"), "healthy");
	json_decref(h);
	assert_serving(a);
}

#define NPIPE	50

/* 50 pings in one write: 50 replies, each id exactly once. */
static void
test_pipelined_pings(void **state)
{
	struct arb *a = *state;
	struct buf out;
	buf_init(&out);
	for (int i = 0; i < NPIPE; i++) {
		json_t *ping = json_pack("{s:i, s:s}", "id", 1000 + i, "op",
		    "ping");
		frame_put_json(&out, ping);
		json_decref(ping);
	}
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	assert_int_equal(arb_conn_send_raw(c, buf_head(&out), buf_used(&out)), 0);
	buf_release(&out);
	bool seen[NPIPE] = { false };
	for (int i = 0; i < NPIPE; i++) {
		json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
		if (r == NULL)
			fail_msg("reply %d of %d missing", i + 1, NPIPE);
		assert_true(arb_reply_ok(r));
		assert_true(json_is_true(json_object_get(r, "pong")));
		json_int_t id = arb_node_int(r, "id") - 1000;
		assert_in_range(id, 0, NPIPE - 1);
		assert_false(seen[id]);
		seen[id] = true;
		json_decref(r);
	}
	arb_conn_close(c);
}

/* Different ops pipelined on one connection, each answered once. */
static void
test_pipelined_mixed_ops(void **state)
{
	struct arb *a = *state;
	static const char *const ops[] = { "status", "ping", "health",
	    "frobnicate", "stats" };
	enum { NOPS = sizeof ops / sizeof ops[0] };
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	for (int i = 0; i < NOPS; i++) {
		json_t *req = json_pack("{s:i, s:s}", "id", 500 + i, "op", ops[i]);
		assert_int_equal(arb_conn_send(c, req), 0);
		json_decref(req);
	}
	bool seen[NOPS] = { false };
	for (int i = 0; i < NOPS; i++) {
		json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		json_int_t k = arb_node_int(r, "id") - 500;
		assert_in_range(k, 0, NOPS - 1);
		assert_false(seen[k]);
		seen[k] = true;
		if (arb_reply_ok(r) != (strcmp(ops[k], "frobnicate") != 0)) {
			char *d = json_dumps(r, JSON_COMPACT);
			fprintf(stderr, "%s: %s\n", ops[k], d);
			free(d);
			fail_msg("unexpected reply to %s", ops[k]);
		}
		json_decref(r);
	}
	arb_conn_close(c);
}

static void
test_socket_mode(void **state)
{
	struct arb *a = *state;
	struct stat st;
	assert_int_equal(stat(arb_socket_path(a), &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
}

/* Runs arborctl argv[1..] (no -s) with one extra variable; stderr in err. */
static int
ctl_raw(const char *var, char *out, char *err, ...)
{
	const char *argv[16];
	size_t n = 0;
	char *bin = arb_bin_path("arborctl");
	argv[n++] = bin;
	va_list ap;
	va_start(ap, err);
	const char *s;
	while ((s = va_arg(ap, const char *)) != NULL && n < 15)
		argv[n++] = s;
	va_end(ap);
	argv[n] = NULL;
	const char *extra[] = { var, NULL };
	int code = arb_run(argv, extra, out, OUT_MAX, err, OUT_MAX);
	free(bin);
	return code;
}

/* True if s is exactly one non-empty line. */
static bool
one_line(const char *s)
{
	size_t n = strlen(s);
	return n > 1 && strchr(s, '\n') == s + n - 1;
}

static void
test_arborctl_exit_codes(void **state)
{
	struct arb *a = *state;
	static char out[OUT_MAX], err[OUT_MAX];
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "status", NULL), 0);
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "status", "pool/worker.9",
	    NULL), 1);
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "restart", "nosuch", NULL), 1);
	assert_int_equal(arb_ctl(a, out, OUT_MAX, NULL), 2);
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "frobnicate", NULL), 2);
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "restart", NULL), 2);
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "call", "echo", "{not json",
	    NULL), 2);

	char *absent = xasprintf("%s/absent.sock", arb_dir(a));
	int code = ctl_raw(NULL, out, err, "-s", absent, "status", NULL);
	if (code != 3 || !one_line(err) || strstr(err, absent) == NULL) {
		fprintf(stderr, "exit %d, stderr:\n%s\n", code, err);
		fail_msg("expected exit 3 and one line naming %s", absent);
	}
	free(absent);

	/* output that cannot be written is no success (exit 1, one line) */
	char *bin = arb_bin_path("arborctl");
	const char *full[] = { "/bin/sh", "-c", "exec \"$0\" -s \"$1\" status"
	    " >/dev/full", bin, arb_socket_path(a), NULL };
	code = arb_run(full, NULL, out, OUT_MAX, err, OUT_MAX);
	if (code != 1 || !one_line(err) || strstr(err, "write") == NULL) {
		fprintf(stderr, "exit %d, stderr:\n%s\n", code, err);
		fail_msg("expected exit 1 and one line on the failed write");
	}
	/* --help too: its text lost is no success either */
	const char *help[] = { "/bin/sh", "-c", "exec \"$0\" --help"
	    " >/dev/full", bin, NULL };
	code = arb_run(help, NULL, out, OUT_MAX, err, OUT_MAX);
	if (code != 1 || !one_line(err) || strstr(err, "write") == NULL) {
		fprintf(stderr, "exit %d, stderr:\n%s\n", code, err);
		fail_msg("--help: expected exit 1 and one line on the failed "
		    "write");
	}
	free(bin);
	assert_serving(a);
}

/* An argument that is not UTF-8 cannot go into a JSON request: a usage
 * error, not a request sent without it (status would show the root, a
 * call would run outside its session). */
static void
test_arborctl_refuses_non_utf8(void **state)
{
	struct arb *a = *state;
	static char out[OUT_MAX], err[OUT_MAX];
	const char *sock = arb_socket_path(a);
	static const char *const cases[][4] = {
		{ "status", "bridge/\xff", NULL },
		{ "stop", "bridge/\xff", NULL },
		{ "restart", "\xc3", NULL },
		{ "end-session", "s\xed\xa0\x80", NULL },
		{ "call", "ec\xffho", NULL },
		{ "call", "echo", "--session", "s\xff" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int code = ctl_raw(NULL, out, err, "-s", sock, cases[i][0],
		    cases[i][1], cases[i][2], cases[i][3], NULL);
		if (code != 2 || strstr(err, "not valid UTF-8") == NULL) {
			fprintf(stderr, "exit %d, stdout:\n%s\nstderr:\n%s\n",
			    code, out, err);
			fail_msg("arborctl %s: expected a usage error", cases[i][0]);
		}
	}
	assert_serving(a);
}

/* Runs arborctl (-s sock first when sock is set, then args, NULL-
 * terminated) with its stdout and stderr in out and err (OUT_MAX each);
 * returns its exit code. */
static int
ctl_run(const char *sock, const char *const *args, char *out, char *err)
{
	const char *argv[16];
	size_t n = 0;
	char *bin = arb_bin_path("arborctl");
	argv[n++] = bin;
	if (sock != NULL) {
		argv[n++] = "-s";
		argv[n++] = sock;
	}
	for (size_t i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	int code = arb_run(argv, NULL, out, OUT_MAX, err, OUT_MAX);
	free(bin);
	return code;
}

/* Runs arborctl (argv NULL-terminated, from argv[1]; -s added first when
 * sock is set) and fails unless it is a usage error whose message holds
 * want. */
static void
expect_usage_error(const char *want, const char *sock, const char *const *args)
{
	static char out[OUT_MAX], err[OUT_MAX];
	int code = ctl_run(sock, args, out, err);
	if (code != 2 || strstr(err, want) == NULL) {
		fprintf(stderr, "exit %d, stdout:\n%s\nstderr:\n%s\n", code,
		    out, err);
		fail_msg("arborctl %s: expected a usage error saying \"%s\"",
		    args[0], want);
	}
}

/* An option given an empty value names nothing: no socket, no config, no
 * session; nor does an empty argument. A usage error, not a connection to
 * "" (exit 3) or a request arbord refuses (exit 1). */
static void
test_arborctl_empty_option_values(void **state)
{
	struct arb *a = *state;
	static const char *const cases[][6] = {
		{ "-s", "", "status", NULL },
		{ "--socket=", "status", NULL },
		{ "-c", "", "status", NULL },
		{ "--config=", "status", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_usage_error("needs a non-empty value", NULL, cases[i]);
	static const char *const session[][6] = {
		{ "call", "echo", "--session", "", NULL },
		{ "call", "echo", "--session=", NULL },
	};
	for (size_t i = 0; i < sizeof session / sizeof session[0]; i++)
		expect_usage_error("needs a non-empty value",
		    arb_socket_path(a), session[i]);
	/* nor does an empty NAME, ID or COMMAND: not an error reply */
	static const char *const positional[][4] = {
		{ "status", "", NULL }, { "restart", "", NULL },
		{ "stop", "", NULL }, { "start", "", NULL },
		{ "end-session", "", NULL }, { "call", "", NULL },
		{ "call", "", "{}", NULL },
	};
	for (size_t i = 0; i < sizeof positional / sizeof positional[0]; i++)
		expect_usage_error("must not be empty", arb_socket_path(a),
		    positional[i]);
	assert_serving(a);
}

/* --timeout takes what arbord's timeout_ms does, 1..86400000 ms; the
 * error says so, for a value too large as for one that is no number. */
static void
test_arborctl_timeout_range(void **state)
{
	struct arb *a = *state;
	static const char *const cases[][6] = {
		{ "call", "echo", "--timeout", "86400001", NULL },
		{ "call", "echo", "--timeout", "0", NULL },
		{ "call", "echo", "--timeout", "ten", NULL },
		{ "call", "echo", "--timeout=99999999999999999999", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_usage_error("milliseconds in 1..86400000",
		    arb_socket_path(a), cases[i]);
	static char out[OUT_MAX];
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "call", "echo",
	    "--timeout", "86400000", NULL), 0);
}

/* SPEC 5: args is an object. Other valid JSON is refused by arborctl,
 * as invalid JSON is (exit 2), before it reaches arbord. */
static void
test_arborctl_call_args_object(void **state)
{
	struct arb *a = *state;
	static char out[OUT_MAX];
	static const char *const bad[] = { "[1]", "5", "\"s\"", "true",
	    "null" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *args[] = { "call", "echo", bad[i], NULL };
		expect_usage_error("must be a JSON object", arb_socket_path(a),
		    args);
	}
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "call", "echo", "{\"k\": 1}",
	    NULL), 0);
}

/* ARGS_JSON with a repeated key, which arbord refuses in a request, is
 * refused by arborctl too (exit 2), at any depth: jansson would keep one
 * of the values and send the call without a word. */
static void
test_arborctl_call_args_repeated_key(void **state)
{
	struct arb *a = *state;
	static const char *const bad[] = { "{\"k\": 1, \"k\": 2}",
	    "{\"o\": {\"k\": 1, \"k\": 1}}" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *args[] = { "call", "echo", bad[i], NULL };
		expect_usage_error("duplicate", arb_socket_path(a), args);
	}
	assert_serving(a);
}

/* call prints the result; with --json, the whole reply as other commands
 * do (result and worker here), without its envelope. */
static void
test_arborctl_call_json(void **state)
{
	struct arb *a = *state;
	static char out[OUT_MAX];
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "call", "echo",
	    "{\"k\": 1}", NULL), 0);
	json_t *j = json_loads(out, 0, NULL);
	assert_non_null(j);
	assert_int_equal(arb_node_int(j, "k"), 1);
	assert_int_equal(json_object_size(j), 1);
	json_decref(j);

	assert_int_equal(arb_ctl(a, out, OUT_MAX, "--json", "call", "echo",
	    "{\"k\": 2}", NULL), 0);
	j = json_loads(out, 0, NULL);
	if (j == NULL)
		fail_msg("call --json printed no JSON object: %s", out);
	assert_int_equal(arb_node_int(json_object_get(j, "result"), "k"), 2);
	assert_string_equal(arb_node_str(j, "worker"), "bridge/worker");
	assert_null(json_object_get(j, "id"));
	assert_null(json_object_get(j, "ok"));
	json_decref(j);
}

/* call passes ARGS_JSON to the worker and prints its result as written:
 * a real such as 0.1 read into a double and written anew by jansson comes
 * out as 0.10000000000000001, both on its way to the worker (echo sends
 * back what it got) and in what arborctl prints, with --json too. */
static void
test_arborctl_call_keeps_numbers(void **state)
{
	struct arb *a = *state;
	static char out[OUT_MAX];
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "call", "echo",
	    "{\"t\": 0.7, \"r\": [3.14, 1e2]}", NULL), 0);
	assert_string_equal(out, "{\n  \"t\": 0.7,\n  \"r\": [\n    3.14,\n"
	    "    1e2\n  ]\n}\n");
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "--json", "call", "echo",
	    "{\"t\": 0.1}", NULL), 0);
	assert_string_equal(out, "{\n  \"result\": {\n    \"t\": 0.1\n  },\n"
	    "  \"worker\": \"bridge/worker\"\n}\n");
}

/* An execute that arbord reads with jansson (its command holds an
 * escape) hands args on to the worker as the client wrote them, as the
 * usual path does: written anew by jansson, 0.7 would reach the worker,
 * and come back from echo, as 0.69999999999999996. */
static void
test_execute_args_as_written(void **state)
{
	struct arb *a = *state;
	static const char req[] = "{\"id\": 1, \"op\": \"execute\", "
	    "\"command\": \"ech\\u006f\", \"args\": {\"t\": 0.7, "
	    "\"u\": [1e2]}}";
	struct buf out;
	buf_init(&out);
	frame_put(&out, req, strlen(req));
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	assert_int_equal(arb_conn_send_raw(c, buf_head(&out), buf_used(&out)),
	    0);
	char *r = arb_conn_recv_text(c, ARB_REPLY_MS);
	assert_non_null(r);
	assert_string_equal(r, "{\"id\":1,\"ok\":true,\"result\":{\"t\": 0.7, "
	    "\"u\": [1e2]},\"worker\":\"bridge/worker\"}");
	free(r);
	arb_conn_close(c);
	buf_release(&out);
}

/* The socket comes from -s, else $ARBOR_SOCKET, else the config's. */
static void
test_arborctl_finds_socket(void **state)
{
	struct arb *a = *state;
	static char out[OUT_MAX], err[OUT_MAX];
	char *var = xasprintf("ARBOR_SOCKET=%s", arb_socket_path(a));
	assert_int_equal(ctl_raw(var, out, err, "status", NULL), 0);
	free(var);
	assert_int_equal(ctl_raw(NULL, out, err, "-c", arb_conf_path(a),
	    "status", NULL), 0);
	var = xasprintf("ARBOR_CONF=%s", arb_conf_path(a));
	assert_int_equal(ctl_raw(var, out, err, "status", NULL), 0);
	free(var);
}

/* Runs arborctl args (NULL-terminated) from the directory "/" with the
 * environment additions env (NULL-terminated, may be NULL): the socket of
 * a config is found against the config's directory, not ours. */
static int
ctl_from_root(const char *const *env, char *out, char *err,
    const char *const *args)
{
	const char *argv[16];
	size_t n = 0;
	char *bin = arb_bin_path("arborctl");
	argv[n++] = "/bin/sh";
	argv[n++] = "-c";
	argv[n++] = "cd / && exec \"$@\"";
	argv[n++] = "sh";
	argv[n++] = bin;
	for (size_t i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	int code = arb_run(argv, env, out, OUT_MAX, err, OUT_MAX);
	free(bin);
	return code;
}

/* Writes a config whose (relative) socket is one nobody listens on;
 * returns its path. */
static char *
write_other_conf(struct arb *a)
{
	char *path = xasprintf("%s/other.conf", arb_dir(a));
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("control = { socket = \"nobody.sock\"; };\n"
	    "environments = { dev = { }; };\n", f);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* Runs ping with env and args; fails unless the exit status is want
 * (3 must name the socket nobody.sock). */
static void
expect_ping(const char *const *env, const char *const *args, int want)
{
	static char out[OUT_MAX], err[OUT_MAX];
	int code = ctl_from_root(env, out, err, args);
	if (code != want || (want == 3 && strstr(err, "nobody.sock") == NULL)) {
		fprintf(stderr, "env %s; exit %d, stderr:\n%s\n",
		    env && env[0] ? env[0] : "-", code, err);
		fail_msg("expected exit %d", want);
	}
}

/* SPEC 8: -s, else $ARBOR_SOCKET, else control.socket of the config
 * (-c, else $ARBOR_CONF), a relative one taken against the directory of
 * the config file. Each source is shown to win over the next by pointing
 * the next at a socket nobody listens on. */
static void
test_arborctl_socket_order(void **state)
{
	struct arb *a = *state;
	char *other = write_other_conf(a);
	char *nobody = xasprintf("%s/nobody.sock", arb_dir(a));
	char *sock_good = xasprintf("ARBOR_SOCKET=%s", arb_socket_path(a));
	char *sock_bad = xasprintf("ARBOR_SOCKET=%s", nobody);
	char *conf_good = xasprintf("ARBOR_CONF=%s", arb_conf_path(a));
	char *conf_bad = xasprintf("ARBOR_CONF=%s", other);

	/* -s over $ARBOR_SOCKET and over -c */
	const char *e1[] = { sock_bad, conf_bad, NULL };
	const char *a1[] = { "-s", arb_socket_path(a), "-c", other, "ping",
	    NULL };
	expect_ping(e1, a1, 0);
	/* $ARBOR_SOCKET over -c and $ARBOR_CONF */
	const char *e2[] = { sock_good, conf_bad, NULL };
	const char *a2[] = { "-c", other, "ping", NULL };
	expect_ping(e2, a2, 0);
	const char *e3[] = { sock_bad, conf_good, NULL };
	const char *a3[] = { "-c", arb_conf_path(a), "ping", NULL };
	expect_ping(e3, a3, 3);
	/* -c over $ARBOR_CONF, both relative to the config's directory */
	const char *e4[] = { conf_bad, NULL };
	expect_ping(e4, a3, 0);
	const char *a5[] = { "-c", other, "ping", NULL };
	const char *e5[] = { conf_good, NULL };
	expect_ping(e5, a5, 3);
	/* $ARBOR_CONF alone */
	const char *a6[] = { "ping", NULL };
	expect_ping(e5, a6, 0);
	expect_ping(e4, a6, 3);

	free(conf_bad), free(conf_good), free(sock_bad), free(sock_good);
	free(nobody);
	unlink(other);
	free(other);
}

/* Writes body to <dir>/name; returns its path. */
static char *
write_conf(struct arb *a, const char *name, const char *body)
{
	char *path = xasprintf("%s/%s", arb_dir(a), name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(body, f);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* A config file named by -c (or $ARBOR_CONF) that cannot be loaded is an
 * error (exit 2, one line naming it), even when -s names the socket: not
 * passed over, so a call does not wait without the config's bound. Only
 * $ARBOR_CONF, when nothing needs it, goes unread. */
static void
test_arborctl_bad_config(void **state)
{
	struct arb *a = *state;
	static char out[OUT_MAX], err[OUT_MAX];
	const char *sock = arb_socket_path(a);
	char *missing = xasprintf("%s/absent.conf", arb_dir(a));
	char *bad = write_conf(a, "bad.conf", "bogus = ;\n");
	char *bad_env = xasprintf("ARBOR_CONF=%s", bad);
	const char *const no_env[] = { NULL }, *const conf_env[] = { bad_env,
	    NULL };
	const struct {
		const char *const *env;
		const char *args[7];
		const char *named;	/* in the one line on stderr */
	} cases[] = {
		{ no_env, { "-s", sock, "-c", missing, "ping", NULL }, missing },
		{ no_env, { "-s", sock, "-c", missing, "status", NULL },
		  missing },
		{ no_env, { "-s", sock, "-c", bad, "call", "echo", NULL },
		  "bad.conf:1" },
		{ no_env, { "-c", bad, "status", NULL }, "bad.conf:1" },
		{ conf_env, { "-s", sock, "call", "echo", NULL },
		  "bad.conf:1" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int code = ctl_from_root(cases[i].env, out, err,
		    cases[i].args);
		if (code != 2 || !one_line(err) ||
		    strstr(err, cases[i].named) == NULL) {
			fprintf(stderr, "exit %d, stdout:\n%s\nstderr:\n%s\n",
			    code, out, err);
			fail_msg("case %zu: expected exit 2 naming %s", i,
			    cases[i].named);
		}
	}
	/* nothing reads $ARBOR_CONF when -s gives the socket to a ping */
	assert_int_equal(ctl_raw(bad_env, out, err, "-s", sock, "ping", NULL),
	    0);
	unlink(bad);
	free(bad_env), free(bad), free(missing);
	assert_serving(a);
}

/* Runs arborctl -s SOCKET args, expecting exit want and a JSON document on
 * stdout; returns it (new reference). */
static json_t *
ctl_json(struct arb *a, int want, const char *const *args)
{
	static char out[OUT_MAX], err[OUT_MAX];
	int code = ctl_run(arb_socket_path(a), args, out, err);
	json_t *j = json_loads(out, JSON_DECODE_ANY, NULL);
	if (code != want || j == NULL) {
		fprintf(stderr, "exit %d, stdout:\n%s\nstderr:\n%s\n", code,
		    out, err);
		fail_msg("arborctl %s: expected exit %d and JSON", args[0],
		    want);
	}
	return j;
}

/* --json is an option like the others: before the command as SPEC 8
 * writes it, or after it, or after its arguments, with the same output. */
static void
test_arborctl_json_anywhere(void **state)
{
	struct arb *a = *state;
	static const char *const cases[][2][6] = {
		{ { "--json", "status", "bridge/worker", NULL },
		  { "status", "bridge/worker", "--json", NULL } },
		{ { "--json", "health", NULL }, { "health", "--json", NULL } },
		{ { "--json", "end-session", "none", NULL },
		  { "end-session", "--json", "none", NULL } },
		{ { "--json", "call", "echo", "{\"k\": 3}", NULL },
		  { "call", "echo", "{\"k\": 3}", "--json", NULL } },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *before = ctl_json(a, 0, cases[i][0]);
		json_t *after = ctl_json(a, 0, cases[i][1]);
		assert_true(json_is_object(before));
		if (strcmp(cases[i][0][1], "status") == 0) {
			/* uptimes move on between the two */
			json_object_del(before, "uptime_ms");
			json_object_del(after, "uptime_ms");
			json_object_del(before, "stats");
			json_object_del(after, "stats");
		}
		if (!json_equal(before, after))
			fail_msg("arborctl %s: --json after the command "
			    "differs", cases[i][0][1]);
		json_decref(before);
		json_decref(after);
	}
}

/* An error reply: nothing on stdout, one line "arborctl: CODE: MESSAGE"
 * on stderr, exit 1; with --json too. */
static void
test_arborctl_error_reply(void **state)
{
	struct arb *a = *state;
	static char out[OUT_MAX], err[OUT_MAX];
	static const char *const cases[][5] = {
		{ "stop", "bridge", NULL,
		  "arborctl: bad_request: stop takes a worker name\n" },
		{ "--json", "status", "no/such",
		  "arborctl: not_found: no node named 'no/such'\n" },
		{ "restart", "no/such", NULL,
		  "arborctl: not_found: no node named 'no/such'\n" },
		{ "call", "no-such-command", NULL,
		  "arborctl: worker_error: unknown command: no-such-command\n" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int code = ctl_raw(NULL, out, err, "-s", arb_socket_path(a),
		    cases[i][0], cases[i][1], cases[i][2], NULL);
		if (code != 1 || out[0] != '\0' ||
		    strcmp(err, cases[i][3]) != 0) {
			fprintf(stderr, "exit %d, stdout:\n%s\nstderr:\n%s\n",
			    code, out, err);
			fail_msg("arborctl %s %s: expected exit 1 and %s",
			    cases[i][0], cases[i][1], cases[i][3]);
		}
	}
}

/* Runs arborctl -s SOCKET args; fails unless it exits 0 and prints want
 * (exactly, or as a prefix when prefix is set). */
static void
expect_output(struct arb *a, const char *want, bool prefix,
    const char *const *args)
{
	static char out[OUT_MAX], err[OUT_MAX];
	int code = ctl_run(arb_socket_path(a), args, out, err);
	if (code != 0 || (prefix ? strncmp(out, want, strlen(want)) :
	    strcmp(out, want)) != 0) {
		fprintf(stderr, "exit %d, stdout:\n%s\nstderr:\n%s\n", code,
		    out, err);
		fail_msg("arborctl %s: expected exit 0 and \"%s\"", args[0],
		    want);
	}
}

/* Every command of SPEC 8 with its arguments, in the human view. */
static void
test_arborctl_every_command(void **state)
{
	struct arb *a = *state;
	const char *call[] = { "call", "create_program", "{\"signature\": "
	    "\"q -> a\", \"program_id\": \"p1\"}", "--session", "ctl-s1",
	    "--timeout", "5000", NULL };
	expect_output(a, "{\n  \"program_id\": \"p1\"\n}\n", false, call);
	const char *list[] = { "call", "list_programs", "--session", "ctl-s1",
	    NULL };
	expect_output(a, "{\n  \"programs\": [\n    \"p1\"\n  ]\n}\n", false,
	    list);
	const char *end[] = { "end-session", "ctl-s1", NULL };
	expect_output(a, "session ctl-s1 ended\n", false, end);
	expect_output(a, "session ctl-s1: no such session\n", false, end);
	const char *health[] = { "health", NULL };
	expect_output(a, "healthy 1/1\n", false, health);
	const char *stats[] = { "stats", NULL };
	expect_output(a, "mode                    single\n", true, stats);
	const char *metrics[] = { "metrics", NULL };
	expect_output(a, "# HELP arbor_size ", true, metrics);
	const char *reload[] = { "reload", NULL };
	expect_output(a, "reloaded: no change\n", false, reload);
	const char *ping[] = { "ping", NULL };
	expect_output(a, "pong\n", false, ping);

	json_int_t pid = cl_worker_pid(a, "bridge/worker");
	const char *stop[] = { "stop", "bridge/worker", NULL };
	expect_output(a, "bridge/worker: ", true, stop);
	arb_await_node(a, "bridge/worker", "stopped");
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	const char *start[] = { "start", "bridge/worker", NULL };
	expect_output(a, "bridge/worker: ", true, start);
	arb_wait_ready_pid(a, "bridge/worker", pid);
	pid = cl_worker_pid(a, "bridge/worker");
	const char *restart[] = { "restart", "bridge/worker", NULL };
	expect_output(a, "restarted bridge/worker\n", false, restart);
	arb_wait_ready_pid(a, "bridge/worker", pid);
}

/* Timeouts far below arborctl's fixed 60 s bound for other ops. */
#define SILENT_REQUEST_MS	300	/* worker.request_timeout_ms */
#define SILENT_CHECKOUT_MS	200	/* pool.checkout_timeout_ms */
#define SILENT_CALL_MS		700	/* call --timeout */
#define CALL_MARGIN_MS		5000	/* arborctl's, beyond the timeouts */

/* A socket that takes connections and never answers: a hung arbord. */
static int
silent_listener(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof sa.sun_path);
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* In a child: answers one request on the listening socket fd with reply
 * (its id replaced by the request's), then exits. The child's pid. */
static pid_t
canned_server(int fd, json_t *reply)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid > 0)
		return pid;
	int c = accept(fd, NULL, NULL);
	struct buf in, out;
	const char *p;
	size_t n;
	buf_init(&in);
	buf_init(&out);
	if (c < 0 || frame_read_blocking(c, &in, 1 << 20, &p, &n) != 1)
		_exit(1);
	json_t *req = frame_parse(p, n, NULL);
	json_object_set(reply, "id", json_object_get(req, "id"));
	frame_put_json(&out, reply);
	_exit(buf_write_fd(&out, c) < 0 ? 1 : 0);
}

/* A worker node as arbord writes it. New reference. */
static json_t *
canned_worker(const char *name, const char *state, int pid, long long up,
    int sessions, int req)
{
	return json_pack("{s:s, s:s, s:s, s:i, s:I, s:[], s:i, s:s, s:i, "
	    "s:{s:i, s:i, s:i, s:i, s:I, s:i}}", "name", name, "kind", "worker",
	    "state", state, "restarts", 0, "uptime_ms", (json_int_t)up,
	    "children", "pid", pid, "health", "healthy", "session", sessions,
	    "stats", "requests_handled", req, "errors", 0, "sessions_served",
	    sessions, "checkouts", req, "uptime_ms", (json_int_t)up,
	    "last_activity_ms", 5);
}

/* A status reply as arbord writes it (mode pool, env prod): root over a
 * pool of pool.size size, max_overflow 2, whose children are the worker
 * nodes workers (an array, stolen). New reference. */
static json_t *
canned_pool_reply(json_t *workers, int size)
{
	const long long up = (3 * 3600 + 2 * 60 + 7) * 1000LL;
	json_t *pool = json_pack("{s:s, s:s, s:s, s:i, s:I, s:o, s:s, s:i, "
	    "s:i, s:i, s:i, s:i}", "name", "pool", "kind", "supervisor",
	    "state", "running", "restarts", 1, "uptime_ms", (json_int_t)up,
	    "children", workers, "strategy", "one_for_one", "max_restarts", 5,
	    "max_seconds", 60, "size", size, "max_overflow", 2, "waiting", 0);
	return json_pack("{s:b, s:{s:s, s:s, s:s, s:i, s:I, s:[o], "
	    "s:s, s:i, s:i, s:i, s:s, s:s, s:s, s:s}}", "ok", 1, "tree",
	    "name", "root", "kind", "supervisor", "state", "running",
	    "restarts", 0, "uptime_ms", (json_int_t)up, "children", pool,
	    "strategy", "one_for_one", "max_restarts", 3, "max_seconds", 5,
	    "pid", 4242, "env", "prod", "mode", "pool", "adapter",
	    "python_pool", "version", "0.1.0");
}

/* Serves reply (stolen) on a socket of its own to one `arborctl status`
 * (with --json when json is set): its exit code, its output in out and
 * err (OUT_MAX each), the socket's path in sock (PATH_MAX). */
static int
status_from_canned(json_t *reply, bool json, char *out, char *err,
    char *sock)
{
	struct arb *a = arb_new("environments = { dev = { }; };\n");
	int fd = silent_listener(arb_socket_path(a));
	pid_t server = canned_server(fd, reply);
	char *bin = arb_bin_path("arborctl");
	const char *argv[] = { bin, "-s", arb_socket_path(a), "status",
	    json ? "--json" : NULL, NULL };
	int code = arb_run(argv, NULL, out, OUT_MAX, err, OUT_MAX);
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	close(fd);
	free(bin);
	json_decref(reply);
	snprintf(sock, PATH_MAX, "%s", arb_socket_path(a));
	arb_free(a);
	return code;
}

/* Serves reply (stolen) on a socket of its own to one `arborctl status`
 * and fails unless its output is want, byte for byte. */
static void
expect_status_view(json_t *reply, const char *want)
{
	static char out[OUT_MAX], err[OUT_MAX], sock[PATH_MAX];
	int code = status_from_canned(reply, false, out, err, sock);
	if (code != 0 || strcmp(out, want) != 0) {
		fprintf(stderr, "exit %d, stdout:\n%s\nstderr:\n%s\nwanted:\n%s",
		    code, out, err, want);
		fail_msg("the status view is not the one wanted");
	}
}

/* An ok status reply without its tree, read from its text (--json) or as
 * values (the view): not reachable (exit 3), and the message names the
 * socket that gave it, as arborctl's other messages of that exit do. */
static void
test_arborctl_malformed_status_names_socket(void **state)
{
	(void)state;
	static char out[OUT_MAX], err[OUT_MAX], sock[PATH_MAX];
	for (int json = 0; json <= 1; json++) {
		int code = status_from_canned(json_pack("{s:b}", "ok", 1), json,
		    out, err, sock);
		if (code != 3 || strstr(err, "malformed status reply") == NULL ||
		    strstr(err, sock) == NULL)
			fail_msg("%s: exit %d, stderr: %s (socket %s)",
			    json ? "--json" : "the view", code, err, sock);
		assert_string_equal(out, "");
	}
}

/* In a child: reads one request on the listening socket fd and answers
 * with a frame header announcing len payload bytes and no payload, then
 * exits, closing the connection. The child's pid. */
static pid_t
header_server(int fd, uint32_t len)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid > 0)
		return pid;
	int c = accept(fd, NULL, NULL);
	struct buf in;
	const char *p;
	size_t n;
	unsigned char hdr[FRAME_HDR] = { len >> 24, len >> 16, len >> 8, len };
	buf_init(&in);
	if (c < 0 || frame_read_blocking(c, &in, 1 << 20, &p, &n) != 1)
		_exit(1);
	_exit(write(c, hdr, sizeof hdr) == sizeof hdr ? 0 : 1);
}

/* `arborctl stats` against a server that announces a reply of len bytes
 * and closes: its exit code, its stderr in err (OUT_MAX). */
static int
ctl_vs_announced(uint32_t len, char *err)
{
	static char out[OUT_MAX];
	struct arb *a = arb_new("environments = { dev = { }; };\n");
	int fd = silent_listener(arb_socket_path(a));
	pid_t server = header_server(fd, len);
	const char *args[] = { "stats", NULL };
	int code = ctl_run(arb_socket_path(a), args, out, err);
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	close(fd);
	arb_free(a);
	return code;
}

/* arborctl reads a reply as large as arbord can send (a result of a
 * worker's largest frame, worker.max_frame_bytes = 1 GiB, in the reply's
 * envelope), and no larger: a header announcing that much is waited on
 * (here the server closes: "closed the connection"), one byte more is
 * refused at once as malformed, without reading or allocating the
 * payload. It used to stop at 256 MiB, below a legal reply. */
static void
test_arborctl_reply_size_limit(void **state)
{
	(void)state;
	static char err[OUT_MAX];
	static const struct {
		uint32_t	 len;
		const char	*want;
	} cases[] = {
		{ (256u << 20) + 1, "closed the connection" },	/* the old cap */
		{ CONFIG_MAX_FRAME_BYTES + 100, "closed the connection" },
		{ CONFIG_MAX_REPLY_BYTES, "closed the connection" },
		{ CONFIG_MAX_REPLY_BYTES + 1, "malformed reply" },
		{ UINT32_MAX, "malformed reply" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int code = ctl_vs_announced(cases[i].len, err);
		if (code != 3 || strstr(err, cases[i].want) == NULL)
			fail_msg("a reply announced at %lu bytes: exit %d, "
			    "stderr: %s (wanted \"%s\")",
			    (unsigned long)cases[i].len, code, err,
			    cases[i].want);
	}
}

/* SPEC 8's example of the human status view, from a canned reply: the
 * same lines, glyphs, columns and uptimes (3h02m, 12s). */
static void
test_arborctl_status_view_layout(void **state)
{
	(void)state;
	static const char want[] =
	    "root  running  env=prod mode=pool adapter=python_pool  pid 4242  up 3h02m\n"
	    "└─ pool  running  one_for_one  2/2 ready  busy 1  overflow 0/2  restarts 1\n"
	    "   ├─ worker.1  ready  pid 4250  up 3h02m  healthy  sessions 2  req 1520  err 0\n"
	    "   └─ worker.2  busy   pid 4311  up 12s    healthy  sessions 1  req 3     err 0\n";
	const long long up = (3 * 3600 + 2 * 60 + 7) * 1000LL;
	expect_status_view(canned_pool_reply(json_pack("[o, o]",
	    canned_worker("pool/worker.1", "ready", 4250, up, 2, 1520),
	    canned_worker("pool/worker.2", "busy", 4311, 12999, 1, 3)), 2),
	    want);
}

/* The pool line's "N/M ready" is `health`'s n and m (SPEC 6): M is the
 * configured size, N the workers of that size ready or busy. Overflow
 * workers, up or not, count only in "overflow K/max", and a worker a
 * shrinking reload retires (worker.3 of a pool now of 2) in neither;
 * "busy" counts every busy worker, as `stats` does. */
static void
test_arborctl_status_view_overflow(void **state)
{
	(void)state;
	static const char want[] =
	    "root  running  env=prod mode=pool adapter=python_pool  pid 4242  up 3h02m\n"
	    "└─ pool  running  one_for_one  1/2 ready  busy 2  overflow 2/2  restarts 1\n"
	    "   ├─ worker.1    ready     pid 4250  up 3h02m  healthy  sessions 2  req 1520  err 0\n"
	    "   ├─ worker.2    starting  pid 4311  up 12s    healthy  sessions 0  req 0     err 0\n"
	    "   ├─ worker.3    busy      pid 4312  up 3h02m  healthy  sessions 0  req 7     err 0\n"
	    "   ├─ overflow.1  busy      pid 4400  up 12s    healthy  sessions 1  req 3     err 0\n"
	    "   └─ overflow.2  ready     pid 4401  up 12s    healthy  sessions 0  req 1     err 0\n";
	const long long up = (3 * 3600 + 2 * 60 + 7) * 1000LL;
	expect_status_view(canned_pool_reply(json_pack("[o, o, o, o, o]",
	    canned_worker("pool/worker.1", "ready", 4250, up, 2, 1520),
	    canned_worker("pool/worker.2", "starting", 4311, 12999, 0, 0),
	    canned_worker("pool/worker.3", "busy", 4312, up, 0, 7),
	    canned_worker("pool/overflow.1", "busy", 4400, 12999, 1, 3),
	    canned_worker("pool/overflow.2", "ready", 4401, 12999, 0, 1)), 2),
	    want);
}

/* The same from a live pool of 1 with its overflow worker up: the pool
 * line reads 1/1, as `health` does, not 2/2. */
static void
test_arborctl_status_view_live(void **state)
{
	(void)state;
	static char out[OUT_MAX];
	struct arb *a = arb_start("bridge = { adapter = \"bridge_mock\"; "
	    "pooling_enabled = true; };\n"
	    "pool = { size = 1; max_overflow = 1; overflow_idle_ms = 600000; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	struct cl_conn *held = cl_send_held(a, 1, "sleep", json_pack("{s:i}",
	    "ms", 1000), NULL, "busy", 1);
	json_t *r = cl_exec_ok(a, "echo", NULL, NULL);
	assert_string_equal(cl_reply_worker(r), "pool/overflow.1");
	json_decref(r);
	json_decref(cl_recv_ok(held, ARB_REPLY_MS, "the held sleep"));
	cl_close(held);
	json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
	assert_non_null(tree);
	assert_int_equal(arb_node_int(arb_find(tree, "pool"), "size"), 1);
	json_decref(tree);

	assert_int_equal(arb_ctl(a, out, OUT_MAX, "health", NULL), 0);
	assert_string_equal(out, "healthy 1/1\n");
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "status", NULL), 0);
	if (strstr(out, "\n└─ pool  running  one_for_one  1/1 ready  busy 0  "
	    "overflow 1/1  restarts 0\n") == NULL)
		fail_msg("the pool line does not read 1/1 ready, overflow "
		    "1/1:\n%s", out);
	assert_int_equal(arb_stop(a), 0);
}

/* Runs argv against the silent socket: exit 3 naming wait_ms, and not
 * before wait_ms (arb_run kills it after 30 s: a fixed 60 s bound fails). */
static void
expect_no_reply_after(const char *const argv[], long long wait_ms)
{
	static char out[OUT_MAX], err[OUT_MAX];
	char *want = xasprintf("within %lld ms", wait_ms);
	long long t0 = arb_now_ms();
	int code = arb_run(argv, NULL, out, OUT_MAX, err, OUT_MAX);
	long long took = arb_now_ms() - t0;

	if (code != 3 || !one_line(err) || strstr(err, want) == NULL ||
	    took < wait_ms) {
		fprintf(stderr, "exit %d after %lld ms, stderr:\n%s\n", code,
		    took, err);
		fail_msg("expected exit 3 after %lld ms, \"%s\"", wait_ms,
		    want);
	}
	free(want);
}

/* SPEC 8: exit 3 means arbord is not reachable, so a call waits as long as
 * arbord may take to answer it: its timeout (--timeout, else the config's
 * request_timeout_ms) plus checkout_timeout_ms plus a margin, not a fixed
 * 60 s that a longer request_timeout_ms outlasts. Shown with small timeouts
 * against a silent socket: arborctl gives up at that bound (and the ping
 * then unanswered), not at 60 s; with -s too when -c names the config. */
static void
test_arborctl_call_wait(void **state)
{
	(void)state;
	char *conf = xasprintf("worker = { request_timeout_ms = %d; };\n"
	    "pool = { checkout_timeout_ms = %d; };\n"
	    "environments = { dev = { }; };\n", SILENT_REQUEST_MS,
	    SILENT_CHECKOUT_MS);
	struct arb *a = arb_new(conf);
	int fd = silent_listener(arb_socket_path(a));
	char *bin = arb_bin_path("arborctl");
	char *tmo = xasprintf("%d", SILENT_CALL_MS);
	const char *by_conf[] = { bin, "-c", arb_conf_path(a), "call", "sleep",
	    NULL };
	const char *by_timeout[] = { bin, "-s", arb_socket_path(a), "-c",
	    arb_conf_path(a), "call", "sleep", "--timeout", tmo, NULL };

	expect_no_reply_after(by_conf,
	    SILENT_REQUEST_MS + SILENT_CHECKOUT_MS + CALL_MARGIN_MS);
	expect_no_reply_after(by_timeout,
	    SILENT_CALL_MS + SILENT_CHECKOUT_MS + CALL_MARGIN_MS);
	close(fd);
	free(tmo);
	free(bin);
	free(conf);
	arb_free(a);
}

/* A call pipelined in single mode behind long requests answers later than
 * its own bounds (its timeout counts once those ahead are done): past the
 * bound, arborctl asks arbord with a ping whether it still runs and, as it
 * does, waits on for the reply instead of giving up with exit 3. */
static void
test_arborctl_call_waits_behind_pipeline(void **state)
{
	(void)state;
	enum { SLEEPS = 3, SLEEP_MS = 3000, TIMEOUT_MS = 1000, CHECKOUT_MS = 200 };
	char *conf = xasprintf("bridge = { adapter = \"bridge_mock\"; };\n"
	    "worker = { request_timeout_ms = %d; };\n"
	    "pool = { checkout_timeout_ms = %d; };\n"
	    "environments = { dev = { }; };\n", TIMEOUT_MS, CHECKOUT_MS);
	struct arb *a = arb_start(conf, "dev", NULL);
	arb_await_node(a, "bridge/worker", "ready");
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	for (int i = 1; i <= SLEEPS; i++) {
		json_t *req = cl_exec_req(i, "sleep", json_pack("{s:i}", "ms",
		    SLEEP_MS), NULL, SLEEP_MS + 2000);
		assert_int_equal(arb_conn_send(c, req), 0);
		json_decref(req);
	}
	static char out[OUT_MAX], err[OUT_MAX];
	char *bin = arb_bin_path("arborctl");
	const char *argv[] = { bin, "-c", arb_conf_path(a), "call", "echo",
	    "{\"behind\": 1}", NULL };
	long long t0 = arb_now_ms();
	int code = arb_run(argv, NULL, out, OUT_MAX, err, OUT_MAX);
	long long took = arb_now_ms() - t0, bound = TIMEOUT_MS + CHECKOUT_MS +
	    CALL_MARGIN_MS;
	print_message("call behind %d sleeps of %d ms: exit %d after %lld ms "
	    "(bound %lld ms)\n", SLEEPS, SLEEP_MS, code, took, bound);
	if (code != 0 || strstr(out, "behind") == NULL)
		fail_msg("exit %d, stdout: %s, stderr: %s", code, out, err);
	assert_true(took > bound);	/* else the case was not made */
	for (int i = 1; i <= SLEEPS; i++) {
		json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
		assert_true(arb_reply_ok(r));
		json_decref(r);
	}
	arb_conn_close(c);
	free(bin);
	free(conf);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_garbage_bytes),
		cmocka_unit_test(test_invalid_json),
		cmocka_unit_test(test_json_non_object),
		cmocka_unit_test(test_refused_json_keeps_id),
		cmocka_unit_test(test_missing_or_mistyped_fields),
		cmocka_unit_test(test_string_param_wording),
		cmocka_unit_test(test_execute_args_not_object),
		cmocka_unit_test(test_empty_session_id),
		cmocka_unit_test(test_frame_too_large),
		cmocka_unit_test(test_frame_too_large_after_request),
		cmocka_unit_test(test_frame_at_limit),
		cmocka_unit_test(test_partial_frame_then_close),
		cmocka_unit_test(test_unknown_op),
		cmocka_unit_test(test_status_unknown_name),
		cmocka_unit_test(test_status_ids),
		cmocka_unit_test(test_ids_every_op),
		cmocka_unit_test(test_stop_start_supervisor),
		cmocka_unit_test(test_restart_each_kind),
		cmocka_unit_test(test_pipelined_pings),
		cmocka_unit_test(test_pipelined_mixed_ops),
		cmocka_unit_test(test_socket_mode),
		cmocka_unit_test(test_arborctl_exit_codes),
		cmocka_unit_test(test_arborctl_refuses_non_utf8),
		cmocka_unit_test(test_arborctl_finds_socket),
		cmocka_unit_test(test_arborctl_empty_option_values),
		cmocka_unit_test(test_arborctl_timeout_range),
		cmocka_unit_test(test_arborctl_call_args_object),
		cmocka_unit_test(test_arborctl_call_args_repeated_key),
		cmocka_unit_test(test_arborctl_call_json),
		cmocka_unit_test(test_arborctl_call_keeps_numbers),
		cmocka_unit_test(test_execute_args_as_written),
		cmocka_unit_test(test_arborctl_call_wait),
		cmocka_unit_test(test_arborctl_call_waits_behind_pipeline),
		cmocka_unit_test(test_arborctl_socket_order),
		cmocka_unit_test(test_arborctl_bad_config),
		cmocka_unit_test(test_arborctl_json_anywhere),
		cmocka_unit_test(test_arborctl_error_reply),
		cmocka_unit_test(test_arborctl_every_command),
		cmocka_unit_test(test_arborctl_status_view_layout),
		cmocka_unit_test(test_arborctl_malformed_status_names_socket),
		cmocka_unit_test(test_arborctl_reply_size_limit),
		cmocka_unit_test(test_arborctl_status_view_overflow),
		cmocka_unit_test(test_arborctl_status_view_live),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
