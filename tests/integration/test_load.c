/* Many clients at once (SPEC 6): 64 connections each pipeline 20 echo
 * requests with ids unique across the run; every request gets exactly one
 * reply, on its own connection, with its id, ok, and its own args back.
 * One thread polls all the connections. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define NCLIENTS	64
#define PER_CLIENT	20
#define TOTAL		(NCLIENTS * PER_CLIENT)
#define RUN_MS		60000	/* bound on the whole run */

static const char LOAD_CONF[] =
    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
    "pool = { size = 4; max_overflow = 0; checkout_timeout_ms = 5000;\n"
    "  max_waiting = 4096; };\n"
    "environments = { dev = { }; };\n";

struct load {
	struct cl_conn	*conns[NCLIENTS];
	unsigned char	 seen[TOTAL];	/* replies per request */
	int		 replies, bad;
};

/* Request k of client c: id c * PER_CLIENT + k + 1 (ids start at 1). */
static json_int_t
req_id(int c, int k)
{
	return (json_int_t)c * PER_CLIENT + k + 1;
}

static void
bad_reply(struct load *l, const json_t *reply, const char *why)
{
	if (l->bad++ < 5) {
		char *s = cl_describe(reply);
		fprintf(stderr, "bad reply (%s): %s\n", why, s);
		free(s);
	}
}

static void
on_reply(size_t conn, json_t *reply, void *ctx)
{
	struct load *l = ctx;
	json_int_t id = cl_reply_id(reply);
	l->replies++;
	if (id < 1 || id > TOTAL) {
		bad_reply(l, reply, "unknown id");
		return;
	}
	size_t c = (size_t)(id - 1) / PER_CLIENT;
	int k = (int)((id - 1) % PER_CLIENT);
	if (l->seen[id - 1]++ > 0)
		bad_reply(l, reply, "second reply");
	else if (c != conn)
		bad_reply(l, reply, "reply on another connection");
	else if (!arb_reply_ok(reply))
		bad_reply(l, reply, "not ok");
	else if (json_integer_value(json_object_get(json_object_get(reply,
	    "result"), "c")) != (json_int_t)c ||
	    json_integer_value(json_object_get(json_object_get(reply,
	    "result"), "k")) != k)
		bad_reply(l, reply, "wrong result");
}

static void
test_64_clients_pipelining(void **state)
{
	struct arb *a = arb_start(LOAD_CONF, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", 4, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	struct load *l = calloc(1, sizeof *l);
	assert_non_null(l);
	for (int c = 0; c < NCLIENTS; c++)
		l->conns[c] = cl_open(a);
	long long t0 = arb_now_ms();
	for (int c = 0; c < NCLIENTS; c++) {
		json_t *batch = json_array();
		for (int k = 0; k < PER_CLIENT; k++)
			json_array_append_new(batch, cl_exec_req(req_id(c, k),
			    "echo", json_pack("{s:i,s:i}", "c", c, "k", k),
			    NULL, 0));
		cl_send_batch(l->conns[c], batch);
		json_decref(batch);
	}
	long long end = t0 + RUN_MS;
	while (l->replies < TOTAL && arb_now_ms() < end)
		if (cl_pump(l->conns, NCLIENTS, 200, on_reply, l) < 0)
			break;
	/* Anything extra (a duplicate) would arrive now. */
	while (cl_pump(l->conns, NCLIENTS, 100, on_reply, l) > 0)
		;
	fprintf(stderr, "%d replies to %d requests in %lld ms, %d bad\n",
	    l->replies, TOTAL, arb_now_ms() - t0, l->bad);
	for (int c = 0; c < NCLIENTS; c++)
		cl_close(l->conns[c]);
	int missing = 0;
	for (int i = 0; i < TOTAL; i++)
		missing += l->seen[i] == 0;
	assert_int_equal(missing, 0);
	assert_int_equal(l->bad, 0);
	assert_int_equal(l->replies, TOTAL);
	json_t *st = cl_stats(a);
	assert_int_equal(arb_node_int(st, "total_operations"), TOTAL);
	assert_int_equal(arb_node_int(st, "successful_operations"), TOTAL);
	json_decref(st);
	free(l);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_64_clients_pipelining, arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
