/* execute through the pool (SPEC 5, 6, 7) against the real arbord and
 * mock_worker: results and the worker's name, every failure path with
 * exactly one reply (worker_error, worker_crashed, timeout, garbage and
 * oversized frames, max_errors, max_requests), checkout limits
 * (pool_timeout, overloaded, overflow workers and their idle stop), a
 * client leaving mid-request, the stats counters, mode disabled, the
 * shutting_down error during a graceful stop, and a prompt stop when
 * nothing is pending. Then the two request paths (an execute read in place
 * by proto/jraw's scanner, or by jansson): the same args, ids, sessions,
 * timeouts, worker replies and errors give the same answers on both. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/jraw.h"
#include "proto/msg.h"
#include "proto/xmalloc.h"
#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define W1	"pool/worker.1"

/* Starts a pool of mock_workers: pool and worker are the bodies of those
 * groups (settings separated by ';'). Waits for size ready workers. */
static struct arb *
start_pool(int size, const char *pool, const char *worker)
{
	char body[2048];
	snprintf(body, sizeof body,
	    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = %d; max_restarts = 100; max_seconds = 60; %s };\n"
	    "worker = { restart_delay_ms = 0; %s };\n"
	    "environments = { dev = { }; };\n", size, pool ? pool : "",
	    worker ? worker : "");
	struct arb *a = arb_start(body, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", (size_t)size, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	return a;
}

/* Fails the test unless reply is an error with code. */
static void
assert_code(const json_t *reply, const char *code)
{
	const char *got = arb_reply_code(reply);
	if (arb_reply_ok(reply) || got == NULL || strcmp(got, code) != 0) {
		char *s = cl_describe(reply);
		fail_msg("expected error %s, got %s", code, s);
	}
}

/* Fails the test unless reply is ok. */
static void
assert_ok(const json_t *reply)
{
	if (!arb_reply_ok(reply)) {
		char *s = cl_describe(reply);
		fail_msg("expected an ok reply, got %s", s);
	}
}

/* The reply to one request sent on a raw connection. */
static json_t *
recv_reply(struct cl_conn *c, json_int_t id)
{
	json_t *r = cl_recv(c, ARB_REPLY_MS);
	assert_non_null(r);
	assert_int_equal(cl_reply_id(r), id);
	return r;
}

static void
test_echo_returns_args_and_worker(void **state)
{
	struct arb *a = start_pool(2, NULL, NULL);
	json_t *args = json_pack("{s:i,s:s,s:[i,i],s:{s:n}}", "a", 1, "b",
	    "two", "c", 1, 2, "d", "e");
	json_t *r = cl_exec_ok(a, "echo", json_incref(args), NULL);
	assert_true(json_equal(json_object_get(r, "result"), args));
	const char *w = cl_reply_worker(r);
	assert_non_null(w);
	assert_true(strcmp(w, "pool/worker.1") == 0 ||
	    strcmp(w, "pool/worker.2") == 0);
	assert_false(cl_reply_reset(r));
	json_decref(r);
	/* No args: the worker sees an empty object. */
	r = cl_exec_ok(a, "echo", NULL, NULL);
	assert_true(json_is_object(json_object_get(r, "result")));
	assert_int_equal(json_object_size(json_object_get(r, "result")), 0);
	json_decref(r);
	json_decref(args);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_worker_error_passes_message(void **state)
{
	struct arb *a = start_pool(1, NULL, NULL);
	json_int_t pid = cl_worker_pid(a, W1);
	json_t *r = cl_exec_err(a, "no_such_command", NULL, NULL,
	    "worker_error");
	const char *msg = cl_reply_message(r);
	assert_non_null(msg);
	assert_string_equal(msg, "unknown command: no_such_command");
	json_decref(r);
	/* One error reply is no reason to replace the worker. */
	r = cl_exec_ok(a, "echo", NULL, NULL);
	json_decref(r);
	assert_int_equal(cl_worker_pid(a, W1), pid);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_crash_mid_request(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;", NULL);
	json_int_t pid = cl_worker_pid(a, W1);
	json_t *r = cl_exec_err(a, "crash", json_pack("{s:i}", "code", 3),
	    NULL, "worker_crashed");
	json_decref(r);
	arb_wait_ready_pid(a, W1, pid);
	r = cl_exec_ok(a, "echo", NULL, NULL);
	assert_string_equal(cl_reply_worker(r), W1);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_timeout_kills_and_replaces(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;", NULL);
	json_int_t pid = cl_worker_pid(a, W1);
	long long t0 = arb_now_ms();
	json_t *r = arb_call_err(a, cl_exec_req(0, "sleep",
	    json_pack("{s:i}", "ms", 5000), NULL, 200), "timeout");
	long long took = arb_now_ms() - t0;
	json_decref(r);
	assert_true(took >= 150);
	assert_true(took < 4500);	/* not the 5 s of the sleep */
	arb_wait_ready_pid(a, W1, pid);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	r = cl_exec_ok(a, "echo", NULL, NULL);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* Each request is held to its own deadline, whatever the requests before
 * it on the same worker had: a short deadline that passes after its
 * request was answered does not cut the next, longer one short, and a
 * short deadline after a long one still fires on time. */
static void
test_deadline_is_per_request(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;", NULL);
	json_int_t pid = cl_worker_pid(a, W1);
	struct cl_conn *c = cl_open(a);
	json_t *reqs = json_pack("[o,o]",
	    cl_exec_req(1, "echo", NULL, NULL, 300),
	    cl_exec_req(2, "sleep", json_pack("{s:i}", "ms", 1500), NULL,
	    60000));
	cl_send_batch(c, reqs);	/* read together: the sleep is sent next */
	json_decref(reqs);
	cl_expect_ok_in_order(c, 1, 2, ARB_EVENT_MS);
	cl_close(c);
	assert_int_equal(cl_worker_pid(a, W1), pid);
	long long t0 = arb_now_ms();
	json_t *r = arb_call_err(a, cl_exec_req(0, "sleep",
	    json_pack("{s:i}", "ms", 30000), NULL, 200), "timeout");
	json_decref(r);
	assert_true(arb_now_ms() - t0 < 20000);	/* not the 60 s left armed */
	arb_wait_ready_pid(a, W1, pid);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_garbage_replaces_worker(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;", NULL);
	json_int_t pid = cl_worker_pid(a, W1);
	json_t *r = cl_exec_err(a, "garbage", NULL, NULL, "worker_crashed");
	json_decref(r);
	arb_wait_ready_pid(a, W1, pid);
	r = cl_exec_ok(a, "echo", NULL, NULL);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_oversized_reply_replaces_worker(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;",
	    "max_frame_bytes = 65536;");
	json_int_t pid = cl_worker_pid(a, W1);
	/* Under the limit: delivered whole. */
	json_t *r = cl_exec_ok(a, "big", json_pack("{s:i}", "bytes", 60000),
	    NULL);
	const char *data = json_string_value(json_object_get(
	    json_object_get(r, "result"), "data"));
	assert_non_null(data);
	assert_true(strlen(data) > 59000);
	json_decref(r);
	assert_int_equal(cl_worker_pid(a, W1), pid);
	/* Over it: a protocol failure. */
	r = cl_exec_err(a, "big", json_pack("{s:i}", "bytes", 100000), NULL,
	    "worker_crashed");
	json_decref(r);
	arb_wait_ready_pid(a, W1, pid);
	r = cl_exec_ok(a, "echo", NULL, NULL);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_max_errors_replaces_worker(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;", "max_errors = 2;");
	json_int_t pid = cl_worker_pid(a, W1);
	for (int i = 0; i < 2; i++) {
		json_t *r = cl_exec_err(a, "no_such_command", NULL, NULL,
		    "worker_error");
		json_decref(r);
		assert_int_equal(cl_worker_pid(a, W1), pid);
	}
	json_t *r = cl_exec_err(a, "no_such_command", NULL, NULL,
	    "worker_error");
	json_decref(r);
	arb_wait_ready_pid(a, W1, pid);
	r = cl_exec_ok(a, "echo", NULL, NULL);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_max_requests_recycles(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;", "max_requests = 3;");
	json_int_t pid = cl_worker_pid(a, W1);
	for (int i = 0; i < 2; i++) {
		json_t *r = cl_exec_ok(a, "echo", NULL, NULL);
		json_decref(r);
		assert_int_equal(cl_worker_pid(a, W1), pid);
	}
	json_t *r = cl_exec_ok(a, "echo", NULL, NULL);
	json_decref(r);
	pid = arb_wait_ready_pid(a, W1, pid);
	/* Pipelined: recycling between requests fails none of them. */
	struct cl_conn *c = cl_open(a);
	json_t *batch = json_array();
	for (int i = 0; i < 9; i++)
		json_array_append_new(batch, cl_exec_req(100 + i, "echo",
		    json_pack("{s:i}", "n", i), NULL, 0));
	cl_send_batch(c, batch);
	json_decref(batch);
	bool seen[9] = { false };
	for (int i = 0; i < 9; i++) {
		r = cl_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		assert_ok(r);
		json_int_t id = cl_reply_id(r);
		assert_true(id >= 100 && id < 109 && !seen[id - 100]);
		seen[id - 100] = true;
		assert_int_equal(json_integer_value(json_object_get(
		    json_object_get(r, "result"), "n")), id - 100);
		json_decref(r);
	}
	cl_close(c);
	arb_wait_ready_pid(a, W1, pid);	/* 3 x 3 requests: recycled again */
	assert_int_equal(arb_stop(a), 0);
}

static void
test_pool_timeout(void **state)
{
	struct arb *a = start_pool(1,
	    "max_overflow = 0; checkout_timeout_ms = 300;", NULL);
	struct cl_conn *c = cl_open(a);
	json_t *req = cl_exec_req(7, "sleep", json_pack("{s:i}", "ms", 2000),
	    NULL, 0);
	cl_send(c, req);
	json_decref(req);
	assert_true(cl_wait_stat(a, "busy", 1, 1, ARB_EVENT_MS));
	long long t0 = arb_now_ms();
	json_t *r = cl_exec_err(a, "echo", NULL, NULL, "pool_timeout");
	assert_true(arb_now_ms() - t0 >= 200);
	json_decref(r);
	r = recv_reply(c, 7);
	assert_ok(r);
	json_decref(r);
	cl_close(c);
	assert_int_equal(cl_stat(a, "pool_timeouts"), 1);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_overloaded(void **state)
{
	struct arb *a = start_pool(1,
	    "max_overflow = 0; max_waiting = 1; checkout_timeout_ms = 5000;",
	    NULL);
	struct cl_conn *busy = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1500), NULL, "busy", 1);
	struct cl_conn *waiter = cl_send_held(a, 2, "echo",
	    json_pack("{s:s}", "w", "x"), NULL, "waiting", 1);
	json_t *r = cl_exec_err(a, "echo", NULL, NULL, "overloaded");
	json_decref(r);
	r = recv_reply(busy, 1);
	assert_ok(r);
	json_decref(r);
	r = recv_reply(waiter, 2);
	assert_ok(r);
	assert_string_equal(json_string_value(json_object_get(
	    json_object_get(r, "result"), "w")), "x");
	json_decref(r);
	cl_close(busy);
	cl_close(waiter);
	assert_int_equal(arb_stop(a), 0);
}

/* arb_wait_for predicates on the overflow worker. */
static bool
has_overflow(json_t *tree, void *ctx)
{
	return arb_find(tree, "pool/overflow.1") != NULL;
}

static bool
no_overflow(json_t *tree, void *ctx)
{
	return arb_find(tree, "pool/overflow.1") == NULL &&
	    arb_node_nchildren(arb_find(tree, "pool")) == 1;
}

/* One burst: worker.1 sleeps, a second request waits and is served by
 * pool/overflow.1, which stops after idling. */
static void
overflow_burst(struct arb *a)
{
	struct cl_conn *c1 = cl_open(a), *c2 = cl_open(a);
	json_t *req = cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 1500),
	    NULL, 0);
	cl_send(c1, req);
	json_decref(req);
	assert_true(cl_wait_stat(a, "busy", 1, 1, ARB_EVENT_MS));
	req = cl_exec_req(2, "sleep", json_pack("{s:i}", "ms", 100), NULL, 0);
	cl_send(c2, req);
	json_decref(req);
	json_t *tree = arb_wait_for(a, has_overflow, NULL, ARB_EVENT_MS,
	    "pool/overflow.1 in the tree");
	assert_non_null(tree);
	json_t *ov = arb_find(tree, "pool/overflow.1");
	assert_string_equal(arb_node_str(ov, "kind"), "worker");
	json_decref(tree);
	/* Served by the overflow worker while worker.1 still sleeps. */
	json_t *r2 = recv_reply(c2, 2);
	assert_ok(r2);
	assert_string_equal(cl_reply_worker(r2), "pool/overflow.1");
	json_decref(r2);
	json_t *r1 = recv_reply(c1, 1);
	assert_ok(r1);
	assert_string_equal(cl_reply_worker(r1), W1);
	json_decref(r1);
	cl_close(c1);
	cl_close(c2);
	tree = arb_wait_for(a, no_overflow, NULL, ARB_EVENT_MS,
	    "pool/overflow.1 gone after idling");
	assert_non_null(tree);
	json_decref(tree);
	assert_true(cl_wait_stat(a, "overflow", 0, 0, ARB_EVENT_MS));
}

static void
test_overflow_starts_and_idles_out(void **state)
{
	struct arb *a = start_pool(1,
	    "max_overflow = 1; overflow_idle_ms = 500;", NULL);
	overflow_burst(a);
	overflow_burst(a);	/* the name is free again */
	assert_int_equal(arb_stop(a), 0);
}

/* The restarts an overflow worker had stay counted in stats after it
 * idles out and leaves the tree: restarts is a counter. */
static void
test_overflow_restarts_stay_counted(void **state)
{
	struct arb *a = start_pool(1,
	    "max_overflow = 1; overflow_idle_ms = 500;", NULL);
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 2000), NULL, "busy", 1);
	json_t *r = cl_exec_err(a, "crash", NULL, NULL, "worker_crashed");
	json_decref(r);
	assert_true(cl_wait_stat(a, "restarts", 1, 1, ARB_EVENT_MS));
	r = recv_reply(c, 1);
	assert_ok(r);
	json_decref(r);
	cl_close(c);
	json_t *tree = arb_wait_for(a, no_overflow, NULL, ARB_EVENT_MS,
	    "pool/overflow.1 gone after idling");
	assert_non_null(tree);
	json_decref(tree);
	assert_int_equal(cl_stat(a, "restarts"), 1);
	assert_int_equal(arb_stop(a), 0);
}

/* An overflow worker whose process is gone for good (restart type
 * temporary: never restarted) leaves the tree and frees its place: the
 * next request that has to wait gets a new overflow worker. */
static void
test_dead_overflow_frees_its_place(void **state)
{
	struct arb *a = start_pool(1,
	    "max_overflow = 1; overflow_idle_ms = 60000;",
	    "restart = \"temporary\";");
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    cl_hold_args(CL_HOLD_MS), NULL, "busy", 1);
	json_t *r = cl_exec_err(a, "crash", NULL, NULL, "worker_crashed");
	assert_true(strstr(cl_reply_message(r), "pool/overflow.1") != NULL);
	json_decref(r);
	json_t *tree = arb_wait_for(a, no_overflow, NULL, ARB_EVENT_MS,
	    "the dead pool/overflow.1 out of the tree");
	assert_non_null(tree);
	json_decref(tree);
	assert_int_equal(cl_stat(a, "overflow"), 0);
	r = cl_exec_ok(a, "echo", NULL, NULL);	/* worker.1 still sleeps */
	assert_string_equal(cl_reply_worker(r), "pool/overflow.1");
	json_decref(r);
	cl_release(a, W1);
	r = recv_reply(c, 1);
	assert_ok(r);
	json_decref(r);
	cl_close(c);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_client_disconnect_mid_request(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;", NULL);
	json_int_t pid = cl_worker_pid(a, W1);
	struct cl_conn *c = cl_open(a);
	json_t *req = cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 500),
	    NULL, 0);
	cl_send(c, req);
	json_decref(req);
	cl_close(c);
	/* Waits for the same worker (size 1, no overflow). */
	json_t *r = cl_exec_ok(a, "echo", json_pack("{s:i}", "after", 1), NULL);
	assert_string_equal(cl_reply_worker(r), W1);
	json_decref(r);
	json_t *node = arb_wait_node(a, W1, "ready", 0, ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(arb_node_pid(node), pid);
	json_decref(node);
	r = cl_exec_ok(a, "echo", NULL, NULL);
	json_decref(r);
	assert_int_equal(cl_worker_pid(a, W1), pid);
	assert_int_equal(arb_stop(a), 0);
}

/* A client that leaves while its request still waits for a worker. */
static void
test_client_disconnect_while_waiting(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;", NULL);
	json_int_t pid = cl_worker_pid(a, W1);
	struct cl_conn *busy = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 800), NULL, "busy", 1);
	struct cl_conn *gone = cl_send_held(a, 2, "sleep",
	    json_pack("{s:i}", "ms", 200), NULL, "waiting", 1);
	cl_close(gone);
	json_t *r = recv_reply(busy, 1);
	assert_ok(r);
	json_decref(r);
	cl_close(busy);
	r = cl_exec_ok(a, "echo", NULL, NULL);
	json_decref(r);
	assert_true(cl_wait_stat(a, "total_operations", 3, 3, ARB_EVENT_MS));
	assert_int_equal(cl_worker_pid(a, W1), pid);
	assert_int_equal(arb_stop(a), 0);
}

/* Two sleeps occupy both workers, and an echo meanwhile times out. */
static void
busy_pool_timeout(struct arb *a)
{
	struct cl_conn *c1 = cl_open(a), *c2 = cl_open(a);
	json_t *req = cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 1500),
	    NULL, 0);
	cl_send(c1, req);
	json_object_set_new(req, "id", json_integer(2));
	cl_send(c2, req);
	json_decref(req);
	assert_true(cl_wait_stat(a, "busy", 2, 2, ARB_EVENT_MS));
	json_decref(cl_exec_err(a, "echo", NULL, NULL, "pool_timeout"));
	json_t *r = recv_reply(c1, 1);
	assert_ok(r);
	json_decref(r);
	r = recv_reply(c2, 2);
	assert_ok(r);
	json_decref(r);
	cl_close(c1);
	cl_close(c2);
}

static void
test_stats_counts(void **state)
{
	struct arb *a = start_pool(2,
	    "max_overflow = 0; checkout_timeout_ms = 300;", NULL);
	json_t *st = cl_stats(a);
	assert_string_equal(arb_node_str(st, "mode"), "pool");
	assert_int_equal(arb_node_int(st, "size"), 2);
	assert_int_equal(arb_node_int(st, "max_overflow"), 0);
	assert_int_equal(arb_node_int(st, "ready"), 2);
	assert_int_equal(arb_node_int(st, "total_operations"), 0);
	json_decref(st);
	for (int i = 0; i < 3; i++)
		json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	for (int i = 0; i < 2; i++)
		json_decref(cl_exec_err(a, "nope", NULL, NULL, "worker_error"));
	busy_pool_timeout(a);	/* 2 ok, 1 pool_timeout */
	st = cl_stats(a);
	assert_int_equal(arb_node_int(st, "total_operations"), 8);
	assert_int_equal(arb_node_int(st, "successful_operations"), 5);
	assert_int_equal(arb_node_int(st, "failed_operations"), 3);
	assert_int_equal(arb_node_int(st, "pool_timeouts"), 1);
	assert_int_equal(arb_node_int(st, "worker_errors"), 2);
	assert_int_equal(arb_node_int(st, "waiting"), 0);
	assert_int_equal(arb_node_int(st, "overflow"), 0);
	json_decref(st);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_disabled_mode(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { enabled = false; adapter = \"bridge_mock\"; };\n"
	    "worker = { shutdown_timeout_ms = 1000; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_t *r = cl_exec_err(a, "echo", NULL, NULL, "bridge_disabled");
	json_decref(r);
	r = cl_exec_err(a, "echo", NULL, "s1", "bridge_disabled");
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_shutting_down(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;", NULL);
	struct cl_conn *inflight = cl_open(a), *late = cl_open(a);
	json_t *req = cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 1000),
	    NULL, 0);
	cl_send(inflight, req);
	json_decref(req);
	assert_true(cl_wait_stat(a, "busy", 1, 1, ARB_EVENT_MS));
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	/* The stop has begun once arbord logs it. */
	long long end = arb_now_ms() + ARB_EVENT_MS;
	while (!arb_log_contains(a, "shutting down") && arb_now_ms() < end)
		arb_sleep_ms(10);
	assert_true(arb_log_contains(a, "shutting down"));
	req = cl_exec_req(2, "echo", NULL, NULL, 0);
	cl_send(late, req);
	json_decref(req);
	json_t *r = recv_reply(late, 2);
	assert_code(r, "shutting_down");
	json_decref(r);
	r = recv_reply(inflight, 1);
	assert_ok(r);
	assert_int_equal(json_integer_value(json_object_get(
	    json_object_get(r, "result"), "slept")), 1000);
	json_decref(r);
	cl_close(inflight);
	cl_close(late);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 0);
	assert_int_equal(arb_stop(a), 0);
}

/* With nothing in flight or waiting there is nothing to drain: SIGTERM
 * stops the tree at once, not after shutdown_timeout_ms (SPEC 7). */
static void
test_idle_shutdown_is_prompt(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { enabled = false; };\n"
	    "worker = { shutdown_timeout_ms = 10000; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	long long t0 = arb_now_ms();
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	int code = arb_wait_exit(a, ARB_EXIT_MS);
	long long took = arb_now_ms() - t0;
	fprintf(stderr, "idle arbord exited %d after SIGTERM in %lld ms\n",
	    code, took);
	assert_int_equal(code, 0);
	assert_true(took < 5000);	/* half the drain bound */
	assert_int_equal(arb_stop(a), 0);
}

/* ---- the two request paths (proto/jraw.h, supervisor/ops.c) ----
 *
 * An execute request is read in place by a scanner when it can decide it
 * (args copied to the worker as text, the worker's result copied back);
 * anything else goes through jansson. The tests below send the same
 * requests down both paths and pin one correct answer for both. */

/* A member with an escaped key: the scanner leaves the whole request to
 * jansson, and op_execute ignores a member it does not know. */
#define FORCE_JANSSON	",\"\\u0066orce\":true"

/* Appends the NUL-terminated s to out. */
static void
cat(struct buf *out, const char *s)
{
	buf_append(out, s, strlen(s));
}

/* A NUL-terminated copy of out's contents (caller frees). */
static char *
buf_str(const struct buf *out)
{
	char *s = malloc(buf_used(out) + 1);
	assert_non_null(s);
	memcpy(s, buf_head(out), buf_used(out));
	s[buf_used(out)] = '\0';
	return s;
}

/* {"op":"execute" + the pieces (NULL-terminated, each beginning with a
 * comma) + FORCE_JANSSON when jansson is set + }. Caller frees. */
static char * ARB_SENTINEL
exec_text(bool jansson, ...)
{
	struct buf out;
	buf_init(&out);
	cat(&out, "{\"op\":\"execute\"");
	va_list ap;
	va_start(ap, jansson);
	for (const char *s; (s = va_arg(ap, const char *)) != NULL; )
		cat(&out, s);
	va_end(ap);
	cat(&out, jansson ? FORCE_JANSSON "}" : "}");
	char *text = buf_str(&out);
	buf_release(&out);
	return text;
}

/* Whether arbord's scanner takes this execute request (text) itself, as
 * fast_execute decides: a scanned object whose command, session_id and
 * timeout_ms it can use as they are. */
static bool
scanner_takes(const char *text)
{
	struct jraw_member m[16];
	int k = jraw_object(text, strlen(text), m, 16);
	const struct jraw_member *sess = jraw_get(m, k, "session_id");
	const struct jraw_member *tmo = jraw_get(m, k, "timeout_ms");
	const char *s;
	size_t n;
	int64_t t;
	if (k < 0 || !jraw_str(jraw_get(m, k, "command"), &s, &n) || n == 0)
		return false;
	if (sess && sess->type != JRAW_NULL && !jraw_str(sess, &s, &n))
		return false;
	return !tmo || tmo->type == JRAW_NULL ||
	    (jraw_int(tmo, &t) && t > 0 && t <= 86400000);
}

/* Fails unless the scanner takes request text exactly when fast is set:
 * each case must go down the path its table names, or it no longer tests
 * what it says. */
static void
expect_path(const char *text, bool fast)
{
	bool took = scanner_takes(text);
	if (took != fast)
		fail_msg("the scanner %s this request, so it no longer takes the "
		    "%s path: %.300s", took ? "takes" : "refuses",
		    fast ? "scanner's" : "jansson", text);
}

/* A fresh connection with text sent on it as one frame. */
static struct arb_conn *
send_text(struct arb *a, const char *text, size_t n)
{
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	struct buf out;
	buf_init(&out);
	frame_put(&out, text, n);
	assert_int_equal(arb_conn_send_raw(c, buf_head(&out), buf_used(&out)),
	    0);
	buf_release(&out);
	return c;
}

/* Sends text as one frame on a fresh connection; its one reply (new
 * reference), which must be a JSON object. */
static json_t *
call_text(struct arb *a, const char *text, size_t n)
{
	struct arb_conn *c = send_text(a, text, n);
	json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
	arb_conn_close(c);
	if (r == NULL)
		fail_msg("no reply (or not a JSON object) to %.300s", text);
	return r;
}

/* call_text with the reply as it came (caller frees). */
static char *
call_text_raw(struct arb *a, const char *text)
{
	struct arb_conn *c = send_text(a, text, strlen(text));
	char *r = arb_conn_recv_text(c, ARB_REPLY_MS);
	arb_conn_close(c);
	if (r == NULL)
		fail_msg("no reply to %.300s", text);
	return r;
}

/* text parsed as jansson parses a request (any value); fails if it does
 * not parse, as every table entry below must. New reference. */
static json_t *
parse_any(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
	    &e);
	if (j == NULL)
		fail_msg("test table: %s: %.200s", e.text, text);
	return j;
}

/* Fails unless reply is ok with a result equal to want (borrowed). */
static void
assert_result(const json_t *reply, const json_t *want, const char *what)
{
	if (!arb_reply_ok(reply) ||
	    !json_equal(json_object_get(reply, "result"), want)) {
		char *got = cl_describe(reply), *w = cl_describe(want);
		fail_msg("%s: expected result %.300s, got %.300s", what, w, got);
	}
}

/* Fails unless reply is an error with code and exactly message. */
static void
assert_error_msg(const json_t *reply, const char *code, const char *message,
    const char *what)
{
	const char *c = arb_reply_code(reply), *m = cl_reply_message(reply);
	if (arb_reply_ok(reply) || c == NULL || strcmp(c, code) != 0 ||
	    m == NULL || strcmp(m, message) != 0) {
		char *got = cl_describe(reply);
		fail_msg("%s: expected error %s \"%s\", got %.300s", what, code,
		    message, got);
	}
}

/* `echo args` (JSON text) on the path named by fast, then forced down
 * the jansson path: both replies must carry exactly args as jansson
 * reads them. */
static void
echo_both_paths(struct arb *a, const char *what, const char *args, bool fast)
{
	json_t *want = parse_any(args);
	for (int jansson = 0; jansson < 2; jansson++) {
		char *req = exec_text(jansson, ",\"id\":3,\"command\":\"echo\","
		    "\"args\":", args, NULL);
		expect_path(req, fast && !jansson);
		json_t *r = call_text(a, req, strlen(req));
		assert_result(r, want, what);
		assert_int_equal(cl_reply_id(r), 3);
		json_decref(r);
		free(req);
	}
	json_decref(want);
}

/* {"d": ...} holding depth nested arrays, or objects {"k": ...}. Caller
 * frees. */
static char *
nested_args(int depth, bool objects)
{
	struct buf out;
	buf_init(&out);
	cat(&out, "{\"d\":");
	for (int i = 0; i < depth; i++)
		cat(&out, objects ? "{\"k\":" : "[");
	if (objects)
		cat(&out, "1");
	for (int i = 0; i < depth; i++)
		cat(&out, objects ? "}" : "]");
	cat(&out, "}");
	char *s = buf_str(&out);
	buf_release(&out);
	return s;
}

/* levels objects nested in each other, each with 30 keys (the last one
 * "n" holding the next level): the scanner's duplicate check holds the
 * keys of every open object, up to 256. Caller frees. */
static char *
wide_deep_args(int levels)
{
	struct buf out;
	buf_init(&out);
	for (int l = 0; l < levels; l++) {
		for (int i = 0; i < 29; i++) {
			char m[32];
			snprintf(m, sizeof m, "%s\"k%d\":%d", i ? "," : "{", i, l);
			cat(&out, m);
		}
		cat(&out, ",\"n\":");
	}
	cat(&out, "{\"end\":true}");
	for (int l = 0; l < levels; l++)
		cat(&out, "}");
	char *s = buf_str(&out);
	buf_release(&out);
	return s;
}

/* An object of n keys "k0".."k<n-1>" (the scanner checks at most 32 for
 * duplicates in a nested object). Caller frees. */
static char *
many_keys_args(int n)
{
	struct buf out;
	buf_init(&out);
	cat(&out, "{");
	for (int i = 0; i < n; i++) {
		char m[32];
		snprintf(m, sizeof m, "%s\"k%d\":%d", i ? "," : "", i, i);
		cat(&out, m);
	}
	cat(&out, "}");
	char *s = buf_str(&out);
	buf_release(&out);
	return s;
}

/* {"s": "..."} of at least bytes bytes, a string mixing plain ASCII,
 * escapes and raw UTF-8 of each length, in a unit of odd size so that
 * they fall at every offset of the scanner's 8-byte steps (39 bytes). */
static char *
big_args(size_t bytes)
{
	static const char unit[] = "abcdefghi\\\"\\\\\\/\\n\\t\\u00e9"
	    "\xc3\xa9" "\xe6\x97\xa5" "\xf0\x9f\x98\x80" "\x7f xyz";
	struct buf out;
	buf_init(&out);
	cat(&out, "{\"s\":\"");
	while (buf_used(&out) < bytes)
		cat(&out, unit);
	cat(&out, "\"}");
	char *s = buf_str(&out);
	buf_release(&out);
	return s;
}

/* args text whose request the scanner decides (fast) or leaves to
 * jansson. */
static const struct {
	const char	*what;
	const char	*args;
	bool		 fast;
} echo_cases[] = {
	{ "ascii", "{\"a\":1,\"b\":\"two\",\"c\":[true,false,null],\"d\":{},"
	    "\"e\":[]}", true },
	{ "raw UTF-8", "{\"s\":\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"
	    " \xf0\x9f\x98\x80\",\"caf\xc3\xa9\":1}", true },
	{ "DEL, U+FFFF, U+10FFFF", "{\"s\":\"\x7f \xef\xbf\xbf \xf4\x8f\xbf\xbf\"}",
	    true },
	{ "surrogate pair escape", "{\"s\":\"\\ud83d\\ude00\"}", false },
	{ "short escapes", "{\"s\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"}", true },
	{ "\\u escapes", "{\"s\":\"caf\\u00e9 \\u001f \\u007F \\uFFFF\"}", true },
	{ "numbers", "{\"n\":[0,-0,-1,0.75,-1.5e10,1E+2,1e-7,-0.0,2.5E-05,"
	    "123456789012345678,-123456789012345678]}", true },
	{ "19-digit integers", "{\"n\":[9223372036854775807,"
	    "-9223372036854775808,1234567890123456789]}", false },
	{ "3-digit exponent", "{\"n\":[1e100,-2.5E-100]}", false },
	{ "escaped key", "{\"a\\u0062\":1}", false },
	{ "empty key and keys again in nested objects", "{\"\":0,\"a\":{\"a\":"
	    "{\"a\":1}},\"l\":[{\"a\":1},{\"a\":2}],\"b\":{\"a\":3}}", true },
	{ "whitespace", " {\t\"a\" :\r\n[ 1 , { } , [ ] ] ,\"b\":\"x\" }\n", true },
};

static void
test_args_round_trip(void **state)
{
	struct arb *a = start_pool(2, NULL, NULL);
	for (size_t i = 0; i < sizeof echo_cases / sizeof echo_cases[0]; i++)
		echo_both_paths(a, echo_cases[i].what, echo_cases[i].args,
		    echo_cases[i].fast);
	/* Depth: the scanner decides up to 64 levels, the request's own
	 * included; deeper goes to jansson. */
	static const struct { int depth; bool fast; } deep[] = {
		{ 60, true }, { 62, true }, { 63, false }, { 70, false },
	};
	for (size_t i = 0; i < sizeof deep / sizeof deep[0]; i++) {
		for (int objects = 0; objects < 2; objects++) {
			char *args = nested_args(deep[i].depth, objects);
			echo_both_paths(a, objects ? "nested objects" :
			    "nested arrays", args, deep[i].fast);
			free(args);
		}
	}
	char *args = wide_deep_args(8);
	echo_both_paths(a, "240 open keys", args, true);
	free(args);
	args = wide_deep_args(9);
	echo_both_paths(a, "270 open keys", args, false);
	free(args);
	args = many_keys_args(32);
	echo_both_paths(a, "32 keys", args, true);
	free(args);
	args = many_keys_args(40);
	echo_both_paths(a, "40 keys", args, false);
	free(args);
	args = big_args(100 * 1024);
	echo_both_paths(a, "100 KiB string", args, true);
	free(args);
	assert_int_equal(arb_stop(a), 0);
}

/* null or absent args reach the worker as {}; args of another type are
 * a bad_request (SPEC 5: args is an object), on both paths alike, and
 * never reach the worker. */
static void
test_args_null_absent_and_not_objects(void **state)
{
	struct arb *a = start_pool(1, NULL, NULL);
	json_t *empty = json_object();
	static const char *const not_objects[] = { "[1,2]", "\"s\"", "5",
	    "true", "[]" };
	for (int jansson = 0; jansson < 2; jansson++) {
		char *req = exec_text(jansson, ",\"id\":4,\"command\":\"echo\","
		    "\"args\":null", NULL);
		json_t *r = call_text(a, req, strlen(req));
		assert_result(r, empty, "null args");
		json_decref(r);
		free(req);
		req = exec_text(jansson, ",\"id\":4,\"command\":\"echo\"", NULL);
		r = call_text(a, req, strlen(req));
		assert_result(r, empty, "absent args");
		json_decref(r);
		free(req);
		for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0];
		    i++) {
			req = exec_text(jansson, ",\"id\":4,\"command\":\"echo\","
			    "\"args\":", not_objects[i], NULL);
			r = call_text(a, req, strlen(req));
			assert_error_msg(r, "bad_request",
			    "args must be an object", req);
			assert_int_equal(cl_reply_id(r), 4);
			json_decref(r);
			free(req);
		}
	}
	json_decref(empty);
	assert_int_equal(cl_stat(a, "worker_errors"), 0);
	assert_int_equal(cl_stat(a, "restarts"), 0);
	assert_int_equal(arb_stop(a), 0);
}

/* Request ids (JSON text) and whether the scanner decides them. */
static const struct {
	const char	*id;
	bool		 fast;
} id_cases[] = {
	{ "7", true }, { "0", true }, { "-42", true }, { "1.5", true },
	{ "1.50", true }, { "1E+2", true }, { "-0.0", true }, { "1e-7", true },
	{ "\"plain\"", true }, { "\"a\\\"b\\\\c\\/\\u00e9\\n\"", true },
	{ "\"caf\xc3\xa9\"", true }, { "\"\"", true }, { "null", true },
	{ "true", true }, { "[]", true },
	{ "{\"k\":[1,\"x\",{\"y\":null}],\"z\":-1.25}", true },
	{ "1234567890123456789", false }, { "\"\\ud83d\\ude00\"", false },
	{ "1e100", false }, { "{\"a\\u0062\":1}", false },
	{ "1.0", true }, { "-0", true }, { "1e+02", true }, { "2E-1", true },
	{ "[1, \"x\"]", true }, { "{ \"k\" : 1 }", true },
	{ "\"\\u00e9\\/\"", true }, { "\"\\u00E9\"", true },
	{ "1.500000000000000000000001", true }, { "0.1e-99", true },
	{ "0.1e-300", false },
};

/* Fails unless the reply text r carries id (JSON text) exactly, first,
 * followed by "ok" true or false as ok says: the id as the client wrote
 * it, not as jansson would write its reading (SPEC 6). */
static void
assert_reply_id_text(const char *r, const char *id, bool ok,
    const char *what)
{
	char *want = xasprintf("{\"id\":%s,\"ok\":%s", id,
	    ok ? "true" : "false");
	if (strncmp(r, want, strlen(want)) != 0)
		fail_msg("%s: id %s came back as %.300s", what, id, r);
	free(want);
}

/* Requests with this id (JSON text) get it back exactly: in an ok reply
 * and in a worker_error, on both paths. */
static void
assert_id_echoed(struct arb *a, const char *id, bool fast)
{
	static const char *const commands[] = { "\"echo\"", "\"no_such\"" };
	for (int jansson = 0; jansson < 2; jansson++) {
		for (int k = 0; k < 2; k++) {
			char *req = exec_text(jansson, ",\"id\": ", id,
			    " ,\"command\":", commands[k], NULL);
			expect_path(req, fast && !jansson);
			char *r = call_text_raw(a, req);
			assert_reply_id_text(r, id, k == 0, commands[k]);
			free(r);
			free(req);
		}
	}
}

/* The other ops' replies, ok and error, built by jansson or written as
 * text (status), carry the id as written too; so does an execute refused
 * before it reaches a worker. */
static void
assert_id_echoed_by_ops(struct arb *a, const char *id)
{
	static const struct {
		const char	*rest;	/* the request's members after the id */
		bool		 ok;
	} reqs[] = {
		{ "\"op\":\"ping\"", true },
		{ "\"op\":\"status\",\"name\":\"pool\"", true },
		{ "\"op\":\"status\",\"name\":\"nowhere\"", false },
		{ "\"op\":\"health\"", true },
		{ "\"op\":\"end_session\",\"session_id\":\"s\"", true },
		{ "\"op\":\"stop\"", false },
		{ "\"op\":\"no_such_op\"", false },
		{ "\"op\":5", false },
		{ "\"op\":\"execute\",\"command\":\"\"", false },
		{ "\"op\":\"execute\",\"command\":\"echo\",\"args\":[]", false },
	};
	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		char *req = xasprintf("{\"id\":\n%s\t,%s}", id, reqs[i].rest);
		char *r = call_text_raw(a, req);
		assert_reply_id_text(r, id, reqs[i].ok, reqs[i].rest);
		free(r);
		free(req);
	}
}

static void
test_request_id_echoed(void **state)
{
	struct arb *a = start_pool(1, NULL, NULL);
	for (size_t i = 0; i < sizeof id_cases / sizeof id_cases[0]; i++) {
		assert_id_echoed(a, id_cases[i].id, id_cases[i].fast);
		assert_id_echoed_by_ops(a, id_cases[i].id);
	}
	/* No id: null in the reply, on both paths. */
	for (int jansson = 0; jansson < 2; jansson++) {
		char *req = exec_text(jansson, ",\"command\":\"echo\"", NULL);
		json_t *r = call_text(a, req, strlen(req));
		assert_ok(r);
		assert_true(json_is_null(json_object_get(r, "id")));
		json_decref(r);
		free(req);
	}
	assert_int_equal(arb_stop(a), 0);
}

/* Ids of requests refused though well-formed (invalid JSON to jansson):
 * number ids that jansson does not hold as written, an integer beyond 64
 * bits, which gets the request refused (README: JSON that arbord refuses
 * though it is well-formed), and one beyond 2^53 in a request refused for
 * such an integer elsewhere (all its numbers are then read as doubles).
 * The reply carries each as the client wrote it (SPEC 6: the same id); it
 * came back as a double, 1.2345678901234568e+29. */
static const struct {
	const char	*id;
	const char	*args;
} big_id_cases[] = {
	{ "123456789012345678901234567890", "{}" },
	{ "-123456789012345678901234567890", "{}" },
	{ "18446744073709551616", "{\"k\":[1,{\"id\":2}]}" },
	{ "9007199254740993", "{\"a\":123456789012345678901234567890}" },
	{ "12345678901234567890.5e-3", "{\"a\":123456789012345678901234567890}" },
	/* Ids that jansson reads but would write otherwise, in requests
	 * refused for a repeated key or a "\u0000". */
	{ "\"\\u00e9\\/\"", "{\"a\":1,\"a\":2}" },
	{ "1E+2", "{\"a\":\"\\u0000\"}" },
};

static void
test_big_integer_id_echoed(void **state)
{
	struct arb *a = start_pool(1, NULL, NULL);
	for (size_t i = 0; i < sizeof big_id_cases / sizeof big_id_cases[0];
	    i++) {
		char *want = xasprintf("{\"id\":%s,\"ok\":false,\"error\":"
		    "{\"code\":\"bad_request\",\"message\":\"invalid JSON:",
		    big_id_cases[i].id);
		for (int jansson = 0; jansson < 2; jansson++) {
			char *req = exec_text(jansson, ",\"args\":",
			    big_id_cases[i].args, ",\"id\": ",
			    big_id_cases[i].id, " ,\"command\":\"echo\"",
			    NULL);
			expect_path(req, false);
			char *r = call_text_raw(a, req);
			if (strncmp(r, want, strlen(want)) != 0)
				fail_msg("id %s came back as %.300s",
				    big_id_cases[i].id, r);
			free(r);
			free(req);
		}
		free(want);
	}
	assert_int_equal(arb_stop(a), 0);
}

/* Requests that neither path may run: the reply's code, its message (a
 * prefix when it ends with ':'), and the reply's id (-1: null).
 * Well-formed JSON that jansson refuses (a "\u0000", an integer
 * beyond 64 bits, a repeated key) still has its id read for the reply. */
static const struct {
	const char	*req;
	const char	*code;
	const char	*message;
	json_int_t	 id;
} bad_cases[] = {
#define EX	"{\"id\":5,\"op\":\"execute\","
#define INVALID	"bad_request", "invalid JSON:", -1
#define REFUSED	"bad_request", "invalid JSON:", 5
	{ EX "\"command\":\"echo\",\"args\":{\"k\":[1,2,}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{}}x", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{}} \n\x01", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{},}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":tru}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":01}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":1.}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":.5}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":1e}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":+1}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":-}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":12345678901234567890}}", REFUSED },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":1e400}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":\"\\x\"}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":\"\\u12G4\"}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":\"\\ud800\"}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":\"\\udc00\\ud800\"}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":\"\\u0000\"}}", REFUSED },
	{ EX "\"command\":\"ec\\u0000ho\"}", REFUSED },
	{ "{\"id\":\"\\u0000\",\"op\":\"execute\",\"command\":\"echo\"}", INVALID },
	/* An id jansson refuses outright: the request is invalid JSON. */
	{ "{\"id\":1e400,\"op\":\"execute\",\"command\":\"echo\"}", INVALID },
	{ "{\"id\":\"\\ud800\",\"op\":\"execute\",\"command\":\"echo\"}", INVALID },
	{ EX "\"command\":\"echo\",\"session_id\":\"s\\u0000\"}", REFUSED },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":\"\x01\"}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":\"\xc0\x80\"}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":\"\xed\xa0\x80\"}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":\"\xe6\x97\"}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":\"\xf4\x90\x80\x80\"}}", INVALID },
	{ EX "\"command\":\"echo\",\"args\":{\"\xff\":1}}", INVALID },
	{ EX "\"command\":\"\xff\"}", INVALID },
	/* Duplicate keys, which jansson refuses, at any level. */
	{ EX "\"command\":\"echo\",\"args\":{},\"args\":{}}", REFUSED },
	{ EX "\"command\":\"echo\",\"command\":\"echo\"}", REFUSED },
	{ "{\"id\":5,\"id\":5,\"op\":\"execute\",\"command\":\"echo\"}", REFUSED },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":1,\"a\":2}}", REFUSED },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":1,\"b\":{\"c\":2},\"a\":3}}", REFUSED },
	{ EX "\"command\":\"echo\",\"args\":{\"x\":[{\"y\":{\"z\":1,\"z\":2}}]}}", REFUSED },
	{ EX "\"command\":\"echo\",\"args\":{\"a\":1,\"\\u0061\":2}}", REFUSED },
	{ EX "\"command\":\"echo\",\"args\":{\"\":1,\"\":2}}", REFUSED },
	{ EX "\"command\":\"echo\",\"args\":{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,"
	    "\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,\"k9\":9,\"k10\":10,"
	    "\"k11\":11,\"k12\":12,\"k13\":13,\"k14\":14,\"k15\":15,\"k16\":16,"
	    "\"k17\":17,\"k18\":18,\"k19\":19,\"k20\":20,\"k21\":21,\"k22\":22,"
	    "\"k23\":23,\"k24\":24,\"k25\":25,\"k26\":26,\"k27\":27,\"k28\":28,"
	    "\"k29\":29,\"k30\":30,\"k31\":31,\"k32\":32,\"k33\":33,\"k1\":1}}",
	    REFUSED },
#undef INVALID
#undef REFUSED
	/* Well-formed, but not an execute arbord can run. */
#define NOCMD	"bad_request", "missing string param 'command'", 5
#define CMDTYPE	"bad_request", "param 'command' must be a string", 5
	{ EX "\"args\":{}}", NOCMD },
	{ EX "\"command\":\"\"}", "bad_request", "param 'command' is empty",
	    5 },
	{ EX "\"command\":5}", CMDTYPE },
	{ EX "\"command\":null}", NOCMD },
	{ EX "\"command\":true}", CMDTYPE },
	{ EX "\"command\":[\"echo\"]}", CMDTYPE },
	{ EX "\"command\":{\"echo\":1}}", CMDTYPE },
#undef CMDTYPE
#undef NOCMD
#define BADTMO	"bad_request", "timeout_ms must be an integer in 1..86400000", 5
	{ EX "\"command\":\"echo\",\"timeout_ms\":0}", BADTMO },
	{ EX "\"command\":\"echo\",\"timeout_ms\":-0}", BADTMO },
	{ EX "\"command\":\"echo\",\"timeout_ms\":-1}", BADTMO },
	{ EX "\"command\":\"echo\",\"timeout_ms\":1.5}", BADTMO },
	{ EX "\"command\":\"echo\",\"timeout_ms\":1e3}", BADTMO },
	{ EX "\"command\":\"echo\",\"timeout_ms\":\"5\"}", BADTMO },
	{ EX "\"command\":\"echo\",\"timeout_ms\":86400001}", BADTMO },
	{ EX "\"command\":\"echo\",\"timeout_ms\":1234567890123456789}", BADTMO },
	{ EX "\"command\":\"echo\",\"timeout_ms\":true}", BADTMO },
	{ EX "\"command\":\"echo\",\"timeout_ms\":[1]}", BADTMO },
#undef BADTMO
#define BADSID	"bad_request", "param 'session_id' must be a string", 5
	{ EX "\"command\":\"echo\",\"session_id\":5}", BADSID },
	{ EX "\"command\":\"echo\",\"session_id\":\"\"}", "bad_request",
	    "param 'session_id' is empty", 5 },
	{ EX "\"command\":\"echo\",\"session_id\":true}", BADSID },
	{ EX "\"command\":\"echo\",\"session_id\":{}}", BADSID },
	{ EX "\"command\":\"echo\",\"session_id\":[\"s\"]}", BADSID },
#undef BADSID
#undef EX
};

/* Fails unless r answers bad_cases[i]. */
static void
assert_bad_case(const json_t *r, size_t i)
{
	const char *want = bad_cases[i].message, *m = cl_reply_message(r);
	size_t n = strlen(want);
	bool prefix = want[n - 1] == ':';
	json_t *id = json_object_get(r, "id");
	bool id_ok = bad_cases[i].id < 0 ? json_is_null(id) :
	    json_is_integer(id) && json_integer_value(id) == bad_cases[i].id;
	const char *c = arb_reply_code(r);
	if (arb_reply_ok(r) || c == NULL || strcmp(c, bad_cases[i].code) != 0 ||
	    m == NULL || (prefix ? strncmp(m, want, n) : strcmp(m, want)) != 0 ||
	    !id_ok) {
		char *got = cl_describe(r);
		fail_msg("request %zu %.300s: expected %s \"%s\", got %.300s", i,
		    bad_cases[i].req, bad_cases[i].code, want, got);
	}
}

static void
test_invalid_requests_same_errors(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;", NULL);
	json_int_t pid = cl_worker_pid(a, W1);
	json_int_t executes = 0;
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		json_t *r = call_text(a, bad_cases[i].req,
		    strlen(bad_cases[i].req));
		assert_bad_case(r, i);
		json_decref(r);
		executes += strncmp(bad_cases[i].message, "invalid JSON", 12) != 0;
	}
	/* None of them reached the worker, and arbord still serves. Those
	 * read as an execute count as failed operations, the others (not
	 * JSON that jansson takes) in none. */
	assert_int_equal(cl_stat(a, "total_operations"), executes);
	assert_int_equal(cl_stat(a, "failed_operations"), executes);
	assert_int_equal(cl_worker_pid(a, W1), pid);
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	assert_int_equal(arb_stop(a), 0);
}

/* command as JSON text, on both paths when the scanner can decide it
 * (fast), else on jansson's alone: the worker_error message. */
static void
assert_unknown_command(struct arb *a, const char *command, bool fast,
    const char *message)
{
	for (int jansson = 0; jansson < 2; jansson++) {
		char *req = exec_text(jansson, ",\"id\":6,\"command\":", command,
		    NULL);
		expect_path(req, fast && !jansson);
		json_t *r = call_text(a, req, strlen(req));
		assert_error_msg(r, "worker_error", message, req);
		assert_int_equal(cl_reply_id(r), 6);
		json_decref(r);
		free(req);
	}
}

/* A command spelled with escapes is decoded before it reaches the worker;
 * the worker's error message comes back whole. */
static void
test_command_escapes_and_worker_errors(void **state)
{
	struct arb *a = start_pool(1, NULL, NULL);
	json_t *args = parse_any("{\"x\":1}");
	char *req = exec_text(false, ",\"id\":6,\"command\":\"ec\\u0068o\","
	    "\"args\":{\"x\":1}", NULL);
	expect_path(req, false);	/* the command holds an escape */
	json_t *r = call_text(a, req, strlen(req));
	assert_result(r, args, "escaped echo");
	json_decref(r);
	free(req);
	json_decref(args);
	assert_unknown_command(a, "\"no_such_command\"", true,
	    "unknown command: no_such_command");
	assert_unknown_command(a, "\"no_such_comm\\u0061nd\"", false,
	    "unknown command: no_such_command");
	assert_unknown_command(a, "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", true,
	    "unknown command: caf\xc3\xa9 \xf0\x9f\x98\x80");
	assert_unknown_command(a, "\"q\\\"b\\\\s\\/n\\nt\\tu\\u0001\\u00e9\"",
	    false, "unknown command: q\"b\\s/n\nt\tu\x01\xc3\xa9");
	/* A long message comes back whole: 1,000 two-byte characters. */
	char *name = xcalloc(1, 2 * 1000 + 3), *want;
	name[0] = '"';
	for (int i = 0; i < 1000; i++)
		memcpy(name + 1 + 2 * i, "\xc3\xa9", 2);
	name[2 * 1000 + 1] = '"';
	want = xasprintf("unknown command: %.*s", 2 * 1000, name + 1);
	assert_unknown_command(a, name, true, want);
	free(name);
	free(want);
	assert_int_equal(cl_stat(a, "restarts"), 0);
	assert_int_equal(arb_stop(a), 0);
}

/* The programs of session sid (JSON text) as the worker sees them, and
 * which worker answered (caller frees). */
static json_t *
session_call(struct arb *a, const char *command, const char *sid,
    const char *args, char **worker)
{
	char *req = exec_text(false, ",\"command\":\"", command,
	    "\",\"session_id\":", sid, ",\"args\":", args, NULL);
	expect_path(req, strchr(sid, '\\') == NULL);	/* escapes: jansson */
	json_t *r = call_text(a, req, strlen(req));
	if (!arb_reply_ok(r)) {
		char *s = cl_describe(r);
		fail_msg("%s: %.300s", req, s);
	}
	free(req);
	*worker = strdup(cl_reply_worker(r));
	json_t *res = json_incref(json_object_get(r, "result"));
	json_decref(r);
	return res;
}

/* A session named with escapes (jansson's path) and the same name in
 * plain text (the scanner's) are one session: bound to one worker, whose
 * state for it both see. */
static void
same_session(struct arb *a, const char *created_as, const char *listed_as,
    const char *program)
{
	char args[128], *w1, *w2;
	snprintf(args, sizeof args, "{\"program_id\":\"%s\"}", program);
	json_decref(session_call(a, "create_program", created_as, args, &w1));
	json_t *res = session_call(a, "list_programs", listed_as, "{}", &w2);
	json_t *want = json_pack("{s:[s]}", "programs", program);
	if (!json_equal(res, want) || strcmp(w1, w2) != 0) {
		char *s = cl_describe(res);
		fail_msg("session %s then %s: %s on %s, then %.200s on %s",
		    created_as, listed_as, program, w1, s, w2);
	}
	json_decref(want);
	json_decref(res);
	free(w1);
	free(w2);
}

static void
test_session_id_escapes(void **state)
{
	struct arb *a = start_pool(2, "affinity = \"strict\";", NULL);
	same_session(a, "\"s\\u00e9\"", "\"s\xc3\xa9\"", "p1");
	same_session(a, "\"t\xc3\xa9\"", "\"t\\u00e9\"", "p2");
	same_session(a, "\"a\\nb\\\"c\\\\d\"", "\"a\\u000ab\\u0022c\\u005cd\"",
	    "p3");
	same_session(a, "\"plain\"", "\"pl\\u0061in\"", "p4");
	/* A session is not its neighbours: nothing leaks across names. */
	char *w;
	json_t *res = session_call(a, "list_programs", "\"s\"", "{}", &w);
	json_t *none = json_pack("{s:[]}", "programs");
	assert_true(json_equal(res, none));
	json_decref(res);
	free(w);
	res = session_call(a, "list_programs", "\"a\\\\nb\\\"c\\\\d\"", "{}", &w);
	assert_true(json_equal(res, none));
	json_decref(res);
	free(w);
	json_decref(none);
	/* Six sessions are bound, one per name; end_session finds one by
	 * either spelling. */
	assert_int_equal(cl_stat(a, "sessions"), 6);
	static const char end[] = "{\"op\":\"end_session\",\"session_id\":"
	    "\"s\\u00e9\"}";
	json_t *r = call_text(a, end, strlen(end));
	assert_ok(r);
	assert_true(json_is_true(json_object_get(r, "ended")));
	json_decref(r);
	assert_int_equal(cl_stat(a, "sessions"), 5);
	assert_int_equal(arb_stop(a), 0);
}

/* Worker replies the scanner refuses (a 3-digit exponent, a 19-digit
 * integer, deep nesting) still reach the client whole. */
static void
test_worker_reply_on_jansson_path(void **state)
{
	struct arb *a = start_pool(1, NULL, NULL);
	/* 1e-122 written out: the request is scanned, but the worker writes
	 * it back with an exponent of three digits. */
	struct buf b;
	buf_init(&b);
	cat(&b, "{\"tiny\":0.");
	for (int i = 0; i < 121; i++)
		cat(&b, "0");
	cat(&b, "1,\"n\":1}");
	char *tiny = buf_str(&b);
	buf_release(&b);
	char *deep = nested_args(70, false);
	const struct { const char *args; bool fast; } cases[] = {
		{ tiny, true },
		{ "{\"big\":1234567890123456789,\"neg\":-9223372036854775808}",
		    false },
		{ deep, false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *want = parse_any(cases[i].args);
		/* The reply as mock_worker encodes it must be refused. */
		json_t *id = json_integer(2);	/* borrowed by msg_worker_ok */
		json_t *reply = msg_worker_ok(id, json_incref(want));
		char *text = json_dumps(reply, JSON_COMPACT);
		json_decref(reply);
		json_decref(id);
		struct jraw_member m[8];
		if (jraw_object(text, strlen(text), m, 8) >= 0)
			fail_msg("the scanner takes this worker reply: %.300s",
			    text);
		free(text);
		json_decref(want);
		echo_both_paths(a, "reply via jansson", cases[i].args,
		    cases[i].fast);
	}
	free(tiny);
	free(deep);
	assert_int_equal(cl_stat(a, "restarts"), 0);
	assert_int_equal(arb_stop(a), 0);
}

/* timeout_ms is read by both paths: a value above the configured
 * default lets a slow request finish, one below it, or the default, cut
 * it short. */
static void
test_timeout_ms_on_both_paths(void **state)
{
	struct arb *a = start_pool(2, "max_overflow = 0;",
	    "request_timeout_ms = 250;");
	static const struct { const char *tmo; const char *code; } cases[] = {
		{ ",\"timeout_ms\":5000", NULL },
		{ ",\"timeout_ms\":100", "timeout" },
		{ ",\"timeout_ms\":null", "timeout" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		/* Both paths at once, one worker each. */
		struct arb_conn *c[2];
		char *req[2];
		for (int jansson = 0; jansson < 2; jansson++) {
			req[jansson] = exec_text(jansson, ",\"id\":8,\"command\":"
			    "\"sleep\",\"args\":{\"ms\":600}", cases[i].tmo, NULL);
			expect_path(req[jansson], !jansson);
			c[jansson] = arb_conn_open(a);
			assert_non_null(c[jansson]);
			struct buf out;
			buf_init(&out);
			frame_put(&out, req[jansson], strlen(req[jansson]));
			assert_int_equal(arb_conn_send_raw(c[jansson],
			    buf_head(&out), buf_used(&out)), 0);
			buf_release(&out);
		}
		for (int jansson = 0; jansson < 2; jansson++) {
			json_t *r = arb_conn_recv(c[jansson], ARB_REPLY_MS);
			assert_non_null(r);
			if (cases[i].code)
				assert_code(r, cases[i].code);
			else
				assert_ok(r);
			assert_int_equal(cl_reply_id(r), 8);
			json_decref(r);
			arb_conn_close(c[jansson]);
			free(req[jansson]);
		}
		/* Timed-out workers are replaced before the next case. */
		json_decref(arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS));
	}
	assert_int_equal(arb_stop(a), 0);
}

/* Requests of both paths and errors, pipelined on one connection in one
 * write: each gets exactly one reply, with its own id and result. */
static void
test_pipelined_mixed_paths(void **state)
{
	struct arb *a = start_pool(2, NULL, NULL);
	enum { N = 30 };
	struct buf out;
	buf_init(&out);
	for (int i = 0; i < N; i++) {
		char id[64], args[64];
		snprintf(id, sizeof id, ",\"id\":%d", 100 + i);
		snprintf(args, sizeof args, ",\"args\":{\"n\":%d}", i);
		char *req = exec_text(i % 3 == 1, id, i % 3 == 2 ?
		    ",\"command\":\"\"" : ",\"command\":\"echo\"", args, NULL);
		expect_path(req, i % 3 == 0);
		frame_put(&out, req, strlen(req));
		free(req);
	}
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	assert_int_equal(arb_conn_send_raw(c, buf_head(&out), buf_used(&out)), 0);
	buf_release(&out);
	bool seen[N] = { false };
	for (int k = 0; k < N; k++) {
		json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		json_int_t i = cl_reply_id(r) - 100;
		assert_true(i >= 0 && i < N && !seen[i]);
		seen[i] = true;
		if (i % 3 == 2) {
			assert_code(r, "bad_request");
		} else {
			assert_ok(r);
			assert_int_equal(json_integer_value(json_object_get(
			    json_object_get(r, "result"), "n")), i);
		}
		json_decref(r);
	}
	arb_conn_close(c);
	/* the refused ones count too, as failed */
	assert_int_equal(cl_stat(a, "total_operations"), N);
	assert_int_equal(cl_stat(a, "failed_operations"), N / 3);
	assert_int_equal(arb_stop(a), 0);
}

/* Requests read together with a stop of an idle worker go to a worker
 * that takes them, never to the one stopping (which failed them with
 * worker_crashed while it was still idle, until its process exited). */
static void
test_stopping_worker_gets_no_request(void **state)
{
	struct arb *a = start_pool(2, "max_overflow = 0;", NULL);
	struct cl_conn *c = cl_open(a);
	json_t *reqs = json_pack("[{s:i,s:s,s:s},o,o,o]",
	    "id", 1, "op", "stop", "name", W1,
	    cl_exec_req(2, "echo", NULL, NULL, 0),
	    cl_exec_req(3, "echo", NULL, "s", 0),
	    cl_exec_req(4, "echo", NULL, NULL, 0));
	cl_send_batch(c, reqs);
	json_decref(reqs);
	cl_expect_ok_in_order(c, 1, 4, ARB_REPLY_MS);
	cl_close(c);
	assert_int_equal(arb_stop(a), 0);
}

/* One worker; worker and control frames bounded by max (bytes). */
static struct arb *
start_frames(long max)
{
	char body[1024];
	snprintf(body, sizeof body,
	    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = 1; max_overflow = 0; };\n"
	    "worker = { max_frame_bytes = %ld; };\n"
	    "control = { socket = \"arbor.sock\"; max_frame_bytes = %ld; };\n"
	    "environments = { dev = { }; };\n", max, max);
	struct arb *a = arb_start(body, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	return a;
}

/* {"s": "xxx..."} of n bytes of x: an args object of n + 8 bytes. */
static json_t *
args_of(size_t n)
{
	char *x = malloc(n + 1);
	assert_non_null(x);
	memset(x, 'x', n);
	x[n] = '\0';
	json_t *args = json_pack("{s:s}", "s", x);
	free(x);
	return args;
}

/* The worker is told worker.max_frame_bytes: a request above its own
 * 16 MiB default reaches it and comes back whole. */
static void
test_worker_gets_max_frame_bytes(void **state)
{
	struct arb *a = start_frames(64L << 20);
	json_int_t pid = cl_worker_pid(a, W1);
	size_t n = (17u << 20);
	json_t *r = cl_exec_ok(a, "echo", args_of(n), NULL);
	const char *echoed = json_string_value(json_object_get(
	    json_object_get(r, "result"), "s"));
	assert_non_null(echoed);
	assert_int_equal(strlen(echoed), n);
	json_decref(r);
	assert_int_equal(cl_worker_pid(a, W1), pid);
	assert_int_equal(arb_stop(a), 0);
}

/* A request whose frame to the worker could exceed worker.max_frame_bytes
 * is refused with frame_too_large before any worker sees it; one at the
 * bound is served. The bound counts the request id at its longest (20
 * characters): {"id":<20>,"command":"echo","args":<args>} is 52 bytes
 * besides the args; both paths count the same. */
static void
test_request_over_worker_frame_refused(void **state)
{
	const long max = 65536;
	struct arb *a = start_frames(max);
	json_int_t pid = cl_worker_pid(a, W1);
	size_t args_max = (size_t)max - 52;	/* args object bytes */
	json_t *r = cl_exec_err(a, "echo", args_of(args_max - 8 + 1), NULL,
	    "frame_too_large");
	assert_non_null(strstr(cl_reply_message(r), "worker.max_frame_bytes"));
	json_decref(r);
	r = cl_exec_ok(a, "echo", args_of(args_max - 8), NULL);
	json_decref(r);
	/* The jansson path (an escape in session_id): "a\nb" is 6 bytes as a
	 * JSON string, and ,"session_id": 14 more. */
	size_t with_session = args_max - 14 - 6;
	r = cl_exec_err(a, "echo", args_of(with_session - 8 + 1), "a\nb",
	    "frame_too_large");
	json_decref(r);
	r = cl_exec_ok(a, "echo", args_of(with_session - 8), "a\nb");
	json_decref(r);
	assert_int_equal(cl_worker_pid(a, W1), pid);	/* no one crashed */
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_echo_returns_args_and_worker, arb_teardown),
		cmocka_unit_test_teardown(test_worker_error_passes_message, arb_teardown),
		cmocka_unit_test_teardown(test_crash_mid_request, arb_teardown),
		cmocka_unit_test_teardown(test_timeout_kills_and_replaces, arb_teardown),
		cmocka_unit_test_teardown(test_deadline_is_per_request, arb_teardown),
		cmocka_unit_test_teardown(test_garbage_replaces_worker, arb_teardown),
		cmocka_unit_test_teardown(test_oversized_reply_replaces_worker, arb_teardown),
		cmocka_unit_test_teardown(test_max_errors_replaces_worker, arb_teardown),
		cmocka_unit_test_teardown(test_max_requests_recycles, arb_teardown),
		cmocka_unit_test_teardown(test_pool_timeout, arb_teardown),
		cmocka_unit_test_teardown(test_overloaded, arb_teardown),
		cmocka_unit_test_teardown(test_overflow_starts_and_idles_out, arb_teardown),
		cmocka_unit_test_teardown(test_overflow_restarts_stay_counted, arb_teardown),
		cmocka_unit_test_teardown(test_dead_overflow_frees_its_place, arb_teardown),
		cmocka_unit_test_teardown(test_client_disconnect_mid_request, arb_teardown),
		cmocka_unit_test_teardown(test_client_disconnect_while_waiting, arb_teardown),
		cmocka_unit_test_teardown(test_stats_counts, arb_teardown),
		cmocka_unit_test_teardown(test_disabled_mode, arb_teardown),
		cmocka_unit_test_teardown(test_shutting_down, arb_teardown),
		cmocka_unit_test_teardown(test_idle_shutdown_is_prompt, arb_teardown),
		cmocka_unit_test_teardown(test_args_round_trip, arb_teardown),
		cmocka_unit_test_teardown(test_args_null_absent_and_not_objects, arb_teardown),
		cmocka_unit_test_teardown(test_request_id_echoed, arb_teardown),
		cmocka_unit_test_teardown(test_big_integer_id_echoed,
		    arb_teardown),
		cmocka_unit_test_teardown(test_invalid_requests_same_errors, arb_teardown),
		cmocka_unit_test_teardown(test_command_escapes_and_worker_errors, arb_teardown),
		cmocka_unit_test_teardown(test_session_id_escapes, arb_teardown),
		cmocka_unit_test_teardown(test_worker_reply_on_jansson_path, arb_teardown),
		cmocka_unit_test_teardown(test_timeout_ms_on_both_paths, arb_teardown),
		cmocka_unit_test_teardown(test_pipelined_mixed_paths, arb_teardown),
		cmocka_unit_test_teardown(test_worker_gets_max_frame_bytes, arb_teardown),
		cmocka_unit_test_teardown(test_stopping_worker_gets_no_request, arb_teardown),
		cmocka_unit_test_teardown(test_request_over_worker_frame_refused, arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
