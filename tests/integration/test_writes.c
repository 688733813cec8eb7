/* How arbord writes its replies and requests (supervisor/batch.c,
 * proto/uring.c), against the real arbord and mock_worker: with many
 * clients and workers busy at once, every reply comes back whole, on its
 * own connection, in order, while a loop iteration's writes go out in one
 * io_uring system call (the debug line says so); and where a seccomp
 * filter refuses io_uring, as a container's default profile may, the same
 * traffic is served by one write per peer, and the debug line says why.
 * The filter stays on this test program once set: that test runs last. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"
#include "tests/io_uring_probe.h"

#define NCONN		12	/* more clients than workers: some wait */
#define ROUNDS		40	/* requests per client, one at a time */
#define TOGETHER	"writes go out in one system call (io_uring)"
#define ONE_BY_ONE	"one write per peer"

static struct arb *
start_pool(void)
{
	struct arb *a = arb_start(
	    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = 4; max_overflow = 0; };\n"
	    "log = { level = \"debug\"; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", 4, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	return a;
}

/* The args of client c's k-th request: its own, so a reply delivered to
 * the wrong client or cut short shows. */
static json_t *
args_of(size_t c, int k)
{
	char pad[200];
	memset(pad, 'a' + (int)(c % 26), sizeof pad - 1);
	pad[sizeof pad - 1] = '\0';
	return json_pack("{s:i, s:i, s:s}", "client", (json_int_t)c, "k", k,
	    "pad", pad);
}

struct traffic {
	struct cl_conn	*conn[NCONN];
	int		 next[NCONN];	/* the k each client waits for */
	int		 done;		/* replies checked */
};

static void
send_next(struct traffic *t, size_t c)
{
	json_t *req = cl_exec_req((json_int_t)(c * 1000 + (size_t)t->next[c]),
	    "echo", args_of(c, t->next[c]), NULL, 0);
	cl_send(t->conn[c], req);
	json_decref(req);
}

static void
on_reply(size_t c, json_t *reply, void *ctx)
{
	struct traffic *t = ctx;
	int k = t->next[c];
	if (!arb_reply_ok(reply) ||
	    cl_reply_id(reply) != (json_int_t)(c * 1000 + (size_t)k))
		fail_msg("client %zu, request %d: %s", c, k,
		    cl_describe(reply));
	json_t *want = args_of(c, k);
	assert_true(json_equal(json_object_get(reply, "result"), want));
	json_decref(want);
	t->done++;
	if (++t->next[c] < ROUNDS)
		send_next(t, c);
}

/* NCONN clients, each sending ROUNDS echoes one after the other, all at
 * once: the pool of 4 is busy and requests wait. */
static void
run_traffic(struct arb *a)
{
	struct traffic t = { .done = 0 };
	for (size_t c = 0; c < NCONN; c++) {
		t.conn[c] = cl_open(a);
		send_next(&t, c);
	}
	long long end = arb_now_ms() + ARB_REPLY_MS;
	while (t.done < NCONN * ROUNDS && arb_now_ms() < end)
		if (cl_pump(t.conn, NCONN, 100, on_reply, &t) < 0)
			break;
	assert_int_equal(t.done, NCONN * ROUNDS);
	for (size_t c = 0; c < NCONN; c++)
		cl_close(t.conn[c]);
}

static void
test_busy_pool_writes_together(void **state)
{
	struct arb *a = start_pool();
	*state = a;
	run_traffic(a);
	if (io_uring_allowed()) {
		assert_true(arb_log_has_line(a, "debug", TOGETHER, NULL));
		assert_false(arb_log_contains(a, ONE_BY_ONE));
	} else {
		fprintf(stderr, "writes: this kernel refuses io_uring\n");
		assert_true(arb_log_has_line(a, "debug", ONE_BY_ONE, NULL));
	}
	assert_int_equal(arb_stop(a), 0);
	*state = NULL;
}

static void
test_io_uring_refused_one_write_each(void **state)
{
	assert_int_equal(io_uring_refuse(), 0);
	struct arb *a = start_pool();
	*state = a;
	run_traffic(a);
	assert_true(arb_log_has_line(a, "debug", ONE_BY_ONE, "no io_uring",
	    strerror(EPERM), NULL));
	assert_false(arb_log_contains(a, TOGETHER));
	assert_int_equal(arb_stop(a), 0);
	*state = NULL;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_busy_pool_writes_together,
		    arb_teardown),
		/* last: its filter stays on this program */
		cmocka_unit_test_teardown(test_io_uring_refused_one_write_each,
		    arb_teardown),
	};
	return cmocka_run_group_tests_name("writes", tests, NULL, NULL);
}
