/* Chaos (SPEC 7: every execute gets exactly one reply, whatever workers
 * do): 5,000 requests from 16 pipelining clients through a pool of 4
 * (some in sessions, some sleeping briefly) while the test SIGKILLs a random worker (a pid from `status`) every 5 to
 * 20 ms. Every request gets exactly one reply, on its own connection,
 * either ok or one of SPEC 6's error codes; none is lost or duplicated;
 * the stats agree; and the pool ends with all 4 workers ready. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define NCLIENTS	16
#define TOTAL		5000
#define WINDOW		8	/* requests in flight per client */
#define MAX_KILLS	400
#define RUN_MS		45000	/* bound on the whole run */
#define NCODES		16

/* Intensities high enough that the kills never make a supervisor give
 * up: the point is routing under worker deaths, not escalation. */
static const char CHAOS_CONF[] =
    "supervisor = { max_restarts = 1000000; max_seconds = 1; };\n"
    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
    "pool = { size = 4; max_overflow = 0; checkout_timeout_ms = 5000;\n"
    "  max_waiting = 4096; max_restarts = 1000000; max_seconds = 1; };\n"
    "worker = { restart_delay_ms = 0; max_restart_delay_ms = 0; };\n"
    "environments = { dev = { }; };\n";

struct chaos {
	struct arb	*a;
	struct cl_conn	*conns[NCLIENTS];
	int		 budget[NCLIENTS];	/* requests still to send */
	int		 inflight[NCLIENTS];
	unsigned char	 owner[TOTAL + 1];	/* client of each id */
	unsigned char	 seen[TOTAL + 1];	/* replies per id */
	json_int_t	 next_id;
	int		 replies, ok, bad;
	char		*codes[NCODES];		/* error codes seen ... */
	int		 ncode[NCODES];		/* ... and how often */
	int		 kills;
};

/* Request id of client c: mostly echo {"n": id}, every third in the
 * client's session (strict affinity: it waits for its worker, and is
 * moved when that worker dies), every fifth a 2 ms sleep so that workers
 * are caught busy. */
static json_t *
chaos_req(json_int_t id, size_t c)
{
	char sid[16];
	snprintf(sid, sizeof sid, "chaos-%zu", c);
	if (id % 5 == 0)
		return cl_exec_req(id, "sleep", json_pack("{s:i}", "ms", 2),
		    id % 3 == 0 ? sid : NULL, 0);
	return cl_exec_req(id, "echo", json_pack("{s:I}", "n", id),
	    id % 3 == 0 ? sid : NULL, 0);
}

/* Tops client c up to WINDOW requests in flight, in one write. */
static void
refill(struct chaos *ch, size_t c)
{
	json_t *batch = json_array();
	while (ch->inflight[c] < WINDOW && ch->budget[c] > 0) {
		json_int_t id = ch->next_id++;
		ch->owner[id] = (unsigned char)c;
		json_array_append_new(batch, chaos_req(id, c));
		ch->inflight[c]++;
		ch->budget[c]--;
	}
	if (json_array_size(batch) > 0)
		cl_send_batch(ch->conns[c], batch);
	json_decref(batch);
}

static void
bad_reply(struct chaos *ch, const json_t *reply, const char *why)
{
	if (ch->bad++ < 5) {
		char *s = cl_describe(reply);
		fprintf(stderr, "bad reply (%s): %s\n", why, s);
		free(s);
	}
}

/* Tallies an error code. */
static void
count_code(struct chaos *ch, const char *code)
{
	int i;
	for (i = 0; i < NCODES && ch->codes[i] != NULL; i++)
		if (strcmp(ch->codes[i], code) == 0)
			break;
	if (i == NCODES)
		return;
	if (ch->codes[i] == NULL)
		ch->codes[i] = strdup(code);
	ch->ncode[i]++;
}

/* Judges one reply whose id is known to be ours. */
static void
judge(struct chaos *ch, const json_t *reply, json_int_t id)
{
	if (arb_reply_ok(reply)) {
		const json_t *res = json_object_get(reply, "result");
		if (id % 5 == 0 ? json_integer_value(json_object_get(res,
		    "slept")) != 2 : json_integer_value(json_object_get(res,
		    "n")) != id)
			bad_reply(ch, reply, "wrong result");
		else
			ch->ok++;
		return;
	}
	const char *code = arb_reply_code(reply);
	if (!cl_is_spec_code(code))
		bad_reply(ch, reply, "not a SPEC error code");
	else
		count_code(ch, code);
}

static void
on_reply(size_t conn, json_t *reply, void *ctx)
{
	struct chaos *ch = ctx;
	json_int_t id = cl_reply_id(reply);
	ch->replies++;
	if (id < 1 || id >= ch->next_id) {
		bad_reply(ch, reply, "unknown id");
		return;
	}
	if (ch->seen[id]++ > 0) {
		bad_reply(ch, reply, "second reply");
		return;
	}
	if (ch->owner[id] != conn)
		bad_reply(ch, reply, "reply on another connection");
	judge(ch, reply, id);
	ch->inflight[conn]--;
	refill(ch, conn);
}

/* SIGKILLs one worker of the pool chosen at random, if its pid is still
 * arbord's child. */
static void
kill_one(struct chaos *ch)
{
	json_t *tree = arb_status(ch->a, "pool");
	json_int_t pids[16];
	size_t n = tree ? arb_worker_pids(tree, pids, 16) : 0;
	json_decref(tree);
	if (n == 0)
		return;
	pid_t pid = (pid_t)pids[(size_t)rand() % n];
	if (proc_ppid(pid) != arb_pid(ch->a) || proc_is_zombie(pid))
		return;		/* already gone */
	if (kill(pid, SIGKILL) == 0)
		ch->kills++;
}

/* Pumps replies and kills workers until every reply is in. */
static void
run(struct chaos *ch)
{
	long long t0 = arb_now_ms(), end = t0 + RUN_MS;
	long long next_kill = t0 + 5 + rand() % 16;
	while (ch->replies < TOTAL && arb_now_ms() < end) {
		long long now = arb_now_ms();
		if (now >= next_kill && ch->kills < MAX_KILLS) {
			kill_one(ch);
			next_kill = arb_now_ms() + 5 + rand() % 16;
		}
		int wait = 100;
		if (ch->kills < MAX_KILLS) {
			long long left = next_kill - arb_now_ms();
			wait = left < 1 ? 1 : (int)left;
		}
		if (cl_pump(ch->conns, NCLIENTS, wait, on_reply, ch) < 0)
			break;
	}
	/* A duplicate would come now. */
	while (cl_pump(ch->conns, NCLIENTS, 200, on_reply, ch) > 0)
		;
	fprintf(stderr, "%d replies to %d requests in %lld ms: %d ok, %d bad, "
	    "%d workers killed\n", ch->replies, TOTAL, arb_now_ms() - t0,
	    ch->ok, ch->bad, ch->kills);
	for (int i = 0; i < NCODES && ch->codes[i] != NULL; i++)
		fprintf(stderr, "  %s: %d\n", ch->codes[i], ch->ncode[i]);
}

/* Every request answered once, the stats agree, the pool is whole. */
static void
check_outcome(struct chaos *ch)
{
	int missing = 0;
	for (int id = 1; id <= TOTAL; id++)
		missing += ch->seen[id] == 0;
	assert_int_equal(ch->next_id, TOTAL + 1);
	assert_int_equal(missing, 0);
	assert_int_equal(ch->bad, 0);
	assert_int_equal(ch->replies, TOTAL);
	assert_true(ch->kills >= 10);
	assert_true(ch->ok > 0);
	json_t *tree = arb_wait_all_ready(ch->a, "pool", 4, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	json_t *st = cl_stats(ch->a);
	assert_int_equal(arb_node_int(st, "total_operations"), TOTAL);
	assert_int_equal(arb_node_int(st, "successful_operations"), ch->ok);
	assert_int_equal(arb_node_int(st, "failed_operations"), TOTAL - ch->ok);
	json_decref(st);
}

static void
test_chaos(void **state)
{
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	fprintf(stderr, "seed %u\n", seed);
	srand(seed);
	struct chaos *ch = calloc(1, sizeof *ch);
	assert_non_null(ch);
	ch->a = arb_start(CHAOS_CONF, "dev", NULL);
	json_t *tree = arb_wait_all_ready(ch->a, "pool", 4, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	ch->next_id = 1;
	for (size_t c = 0; c < NCLIENTS; c++) {
		ch->conns[c] = cl_open(ch->a);
		ch->budget[c] = TOTAL / NCLIENTS + (c < TOTAL % NCLIENTS);
	}
	for (size_t c = 0; c < NCLIENTS; c++)
		refill(ch, c);
	run(ch);
	for (size_t c = 0; c < NCLIENTS; c++)
		cl_close(ch->conns[c]);
	check_outcome(ch);
	assert_int_equal(arb_stop(ch->a), 0);
	for (int i = 0; i < NCODES; i++)
		free(ch->codes[i]);
	free(ch);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_chaos, arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
