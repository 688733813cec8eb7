/* execute through the pool (SPEC 5, 6, 7) against the real arbord and
 * mock_worker: results and the worker's name, every failure path with
 * exactly one reply (worker_error, worker_crashed, timeout, garbage and
 * oversized frames, max_errors, max_requests), checkout limits
 * (pool_timeout, overloaded, overflow workers and their idle stop), a
 * client leaving mid-request, the stats counters, mode disabled, the
 * shutting_down error during a graceful stop, and a prompt stop when
 * nothing is pending. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Waits until W1 is ready again with a pid other than old; returns it. */
static json_int_t
wait_replaced(struct arb *a, const char *name, json_int_t old)
{
	json_t *node = arb_wait_node(a, name, "ready", old, ARB_EVENT_MS);
	assert_non_null(node);
	json_int_t pid = arb_node_pid(node);
	json_decref(node);
	assert_true(pid > 0 && pid != old);
	return pid;
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
	wait_replaced(a, W1, pid);
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
	wait_replaced(a, W1, pid);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	r = cl_exec_ok(a, "echo", NULL, NULL);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_garbage_replaces_worker(void **state)
{
	struct arb *a = start_pool(1, "max_overflow = 0;", NULL);
	json_int_t pid = cl_worker_pid(a, W1);
	json_t *r = cl_exec_err(a, "garbage", NULL, NULL, "worker_crashed");
	json_decref(r);
	wait_replaced(a, W1, pid);
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
	wait_replaced(a, W1, pid);
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
	wait_replaced(a, W1, pid);
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
	pid = wait_replaced(a, W1, pid);
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
	wait_replaced(a, W1, pid);	/* 3 x 3 requests: recycled again */
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
	struct cl_conn *busy = cl_open(a), *waiter = cl_open(a);
	json_t *req = cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 1500),
	    NULL, 0);
	cl_send(busy, req);
	json_decref(req);
	assert_true(cl_wait_stat(a, "busy", 1, 1, ARB_EVENT_MS));
	req = cl_exec_req(2, "echo", json_pack("{s:s}", "w", "x"), NULL, 0);
	cl_send(waiter, req);
	json_decref(req);
	assert_true(cl_wait_stat(a, "waiting", 1, 1, ARB_EVENT_MS));
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
	struct cl_conn *busy = cl_open(a), *gone = cl_open(a);
	json_t *req = cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 800),
	    NULL, 0);
	cl_send(busy, req);
	json_decref(req);
	assert_true(cl_wait_stat(a, "busy", 1, 1, ARB_EVENT_MS));
	req = cl_exec_req(2, "sleep", json_pack("{s:i}", "ms", 200), NULL, 0);
	cl_send(gone, req);
	json_decref(req);
	assert_true(cl_wait_stat(a, "waiting", 1, 1, ARB_EVENT_MS));
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_echo_returns_args_and_worker, arb_teardown),
		cmocka_unit_test_teardown(test_worker_error_passes_message, arb_teardown),
		cmocka_unit_test_teardown(test_crash_mid_request, arb_teardown),
		cmocka_unit_test_teardown(test_timeout_kills_and_replaces, arb_teardown),
		cmocka_unit_test_teardown(test_garbage_replaces_worker, arb_teardown),
		cmocka_unit_test_teardown(test_oversized_reply_replaces_worker, arb_teardown),
		cmocka_unit_test_teardown(test_max_errors_replaces_worker, arb_teardown),
		cmocka_unit_test_teardown(test_max_requests_recycles, arb_teardown),
		cmocka_unit_test_teardown(test_pool_timeout, arb_teardown),
		cmocka_unit_test_teardown(test_overloaded, arb_teardown),
		cmocka_unit_test_teardown(test_overflow_starts_and_idles_out, arb_teardown),
		cmocka_unit_test_teardown(test_client_disconnect_mid_request, arb_teardown),
		cmocka_unit_test_teardown(test_client_disconnect_while_waiting, arb_teardown),
		cmocka_unit_test_teardown(test_stats_counts, arb_teardown),
		cmocka_unit_test_teardown(test_disabled_mode, arb_teardown),
		cmocka_unit_test_teardown(test_shutting_down, arb_teardown),
		cmocka_unit_test_teardown(test_idle_shutdown_is_prompt, arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
