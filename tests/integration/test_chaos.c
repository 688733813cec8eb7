/* Chaos (SPEC 7: every execute gets exactly one reply, whatever workers
 * do): 5,000 requests from 16 pipelining clients through a pool of 4
 * (some in sessions, some sleeping briefly) while the test SIGKILLs a random worker (a pid from `status`) every 5 to
 * 20 ms. Every request gets exactly one reply, on its own connection,
 * either ok or one of SPEC 6's error codes; none is lost or duplicated;
 * the stats agree; and the pool ends with all 4 workers ready.
 *
 * Reload chaos: the same clients keep sending while the test rewrites the
 * config and sends SIGHUP every 20 to 100 ms (RELOADS times), cycling the
 * mode (pool, single, disabled, the mock adapter; set at the top or in
 * the environment's overlay), the pool size (1, 2, 4, 8), max_overflow (0,
 * 2), affinity and the subtrees' intensities, with an invalid file now
 * and then, and at one reload in four SIGKILLs a process arbord started.
 * Every request gets exactly one reply: ok (from a worker of the tree),
 * `worker_crashed` once a worker was killed, or `bridge_disabled` once a
 * reload to mode disabled was sent. arbord never dies; a last reload to a
 * pool of 4 brings 4 ready workers, every other process it started goes
 * away, requests then all succeed, the stats count every reply, and
 * arbord holds no more descriptors than before the clients came. */
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
#define RELOADS		120	/* SIGHUPs of the reload chaos */
#define MAX_IDS		400000	/* requests of a test, at most */
#define FINAL_EACH	8	/* requests per client after the last reload */

/* Intensities high enough that the kills never make a supervisor give
 * up: the point is routing under worker deaths, not escalation. */
static const char CHAOS_CONF[] =
    "supervisor = { max_restarts = 1000000; max_seconds = 1; };\n"
    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
    "pool = { size = 4; max_overflow = 0; checkout_timeout_ms = 5000;\n"
    "  max_waiting = 4096; max_restarts = 1000000; max_seconds = 1; };\n"
    "worker = { restart_delay_ms = 0; max_restart_delay_ms = 0; };\n"
    "environments = { dev = { }; };\n";

/* How the config is rewritten at a reload. */
enum rmode { R_POOL, R_SINGLE, R_DISABLED, R_MOCK };

struct chaos {
	struct arb	*a;
	struct cl_conn	*conns[NCLIENTS];
	int		 budget[NCLIENTS];	/* requests still to send */
	int		 inflight[NCLIENTS];
	unsigned char	 owner[MAX_IDS + 1];	/* client of each id */
	unsigned char	 seen[MAX_IDS + 1];	/* replies per id */
	json_int_t	 next_id;
	int		 replies, ok, bad;
	char		*codes[NCODES];		/* error codes seen ... */
	int		 ncode[NCODES];		/* ... and how often */
	int		 kills;
	bool		 reloading;	/* the reload chaos, not the kill one */
	int		 reloads;	/* SIGHUPs sent */
	int		 disabled;	/* of them to mode disabled */
	bool		 calm;		/* no more kills nor reloads */
	size_t		 fds;		/* arbord's descriptors before the clients */
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
	while (ch->inflight[c] < WINDOW && ch->budget[c] > 0 &&
	    ch->next_id <= MAX_IDS) {
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

/* Whether an error reply with code is explained by what the reload chaos
 * did before it came: a worker killed, a reload to mode disabled. Nothing
 * else may fail a request (deadlines and bounds are far off). */
static bool
legal_code(const struct chaos *ch, const char *code)
{
	return (strcmp(code, "worker_crashed") == 0 && ch->kills > 0) ||
	    (strcmp(code, "bridge_disabled") == 0 && ch->disabled > 0);
}

/* Judges one reply whose id is known to be ours. */
static void
judge(struct chaos *ch, const json_t *reply, json_int_t id)
{
	if (arb_reply_ok(reply)) {
		const json_t *res = json_object_get(reply, "result");
		const char *key = id % 5 == 0 ? "slept" : "n";
		if (json_is_true(json_object_get(res, "mock"))) { /* adapter mock */
			res = json_object_get(res, "args");
			key = id % 5 == 0 ? "ms" : "n";
		}
		const char *w = cl_reply_worker(reply);
		if (json_integer_value(json_object_get(res, key)) !=
		    (id % 5 == 0 ? 2 : id))
			bad_reply(ch, reply, "wrong result");
		else if (w == NULL || (strncmp(w, "pool/", 5) != 0 &&
		    strcmp(w, "bridge/worker") != 0 && strcmp(w, "mock") != 0))
			bad_reply(ch, reply, "no worker of the tree");
		else
			ch->ok++;
		return;
	}
	const char *code = arb_reply_code(reply);
	if (!cl_is_spec_code(code))
		bad_reply(ch, reply, "not a SPEC error code");
	else if (ch->reloading && !legal_code(ch, code))
		bad_reply(ch, reply, "an error code no event explains");
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

/* SIGKILLs one worker chosen at random, if its pid is still arbord's
 * child: in the kill chaos one of the running subtree (a pid from
 * `status`), in the reload chaos any process arbord started, so also the
 * workers of a subtree a reload replaced that are still finishing their
 * requests. */
static void
kill_one(struct chaos *ch)
{
	pid_t pids[64];
	size_t n = 0;
	if (ch->reloading)
		n = arb_children(ch->a, pids, 64);
	else {
		json_t *tree = arb_status(ch->a, NULL);
		json_t *sub = json_array_get(json_object_get(tree, "children"),
		    0);
		json_int_t wpids[16];
		n = sub ? arb_worker_pids(sub, wpids, 16) : 0;
		for (size_t i = 0; i < n; i++)
			pids[i] = (pid_t)wpids[i];
		json_decref(tree);
	}
	if (n == 0)
		return;
	pid_t pid = pids[(size_t)rand() % (n < 64 ? n : 64)];
	if (proc_ppid(pid) != arb_pid(ch->a) || proc_is_zombie(pid))
		return;		/* already gone */
	if (kill(pid, SIGKILL) == 0)
		ch->kills++;
}

/* The config of reload k of the reload chaos: the mode changes every
 * third reload, through pool -> single -> pool -> disabled -> pool ->
 * mock -> single -> disabled -> single -> pool; size, max_overflow and
 * affinity at random; pooling_enabled at the top or in the overlay of
 * the environment dev; overflow workers that only a reload lowering
 * max_overflow stops; the pool's and the bridge's intensity now and
 * then 1 restart a second, so that the kills make them fail and the root
 * restart them (its own never gives up); and one file in ten invalid (an
 * unknown key), which arbord must refuse and run on unchanged. Caller
 * frees; *mode is the mode, *valid whether the file is. */
static char *
reload_conf(int k, enum rmode *mode, bool *valid)
{
	static const enum rmode cycle[] = { R_POOL, R_SINGLE, R_POOL,
	    R_DISABLED, R_POOL, R_MOCK, R_SINGLE, R_DISABLED, R_SINGLE, R_POOL };
	static const int sizes[] = { 1, 2, 4, 8 };
	static const char *const affinity[] = { "strict", "prefer", "none" };
	enum rmode m = cycle[(k / 3) % (sizeof cycle / sizeof cycle[0])];
	*mode = m;
	const char *pooling = m == R_SINGLE ? "false" : "true";
	bool overlay = rand() % 2 == 0;
	int intensity = rand() % 3 == 0 ? 1 : 1000000;
	*valid = rand() % 10 != 0;
	char top[64] = "", env[64] = "";
	snprintf(overlay ? env : top, sizeof top, "%spooling_enabled = %s;%s",
	    overlay ? "bridge = { " : "", pooling, overlay ? " };" : "");
	char *body = NULL;
	if (asprintf(&body,
	    "supervisor = { max_restarts = 1000000; max_seconds = 1; };\n"
	    "bridge = { enabled = %s; %s adapter = \"%s\";\n"
	    "  max_restarts = %d; max_seconds = 1; };\n"
	    "pool = { size = %d; max_overflow = %d; affinity = \"%s\";\n"
	    "  checkout_timeout_ms = 20000; max_waiting = 4096;\n"
	    "  overflow_idle_ms = 600000; max_restarts = %d; max_seconds = 1; };\n"
	    "worker = { restart_delay_ms = 0; max_restart_delay_ms = 0; };\n"
	    "environments = { dev = { %s }; };\n%s",
	    m == R_DISABLED ? "false" : "true", top,
	    m == R_MOCK ? "mock" : "bridge_mock", intensity, sizes[rand() % 4],
	    rand() % 2 ? 2 : 0, affinity[rand() % 3], intensity, env,
	    *valid ? "" : "bogus = 1;\n") < 0)
		fail_msg("asprintf");
	return body;
}

/* One event of the chaos; the ms until the next. The kill chaos kills a
 * worker (up to MAX_KILLS); the reload chaos reloads (RELOADS times, then
 * the clients send no more), killing a worker at one reload in four. */
static int
chaos_event(struct chaos *ch)
{
	if (!ch->reloading) {
		kill_one(ch);
		ch->calm = ch->kills >= MAX_KILLS;
		return 5 + rand() % 16;
	}
	enum rmode m;
	bool valid;
	char *body = reload_conf(ch->reloads, &m, &valid);
	ch->disabled += valid && m == R_DISABLED;
	arb_rewrite_config(ch->a, body);
	free(body);
	if (arb_kill(ch->a, SIGHUP) != 0)
		fail_msg("arbord is gone after %d reloads", ch->reloads);
	ch->reloads++;
	if (rand() % 4 == 0)
		kill_one(ch);
	if (ch->reloads == RELOADS) {
		ch->calm = true;
		memset(ch->budget, 0, sizeof ch->budget);
	}
	return 20 + rand() % 81;
}

/* Whether every request sent has had a reply and none is left to send. */
static bool
all_answered(const struct chaos *ch)
{
	for (size_t c = 0; c < NCLIENTS; c++)
		if (ch->budget[c] > 0)
			return false;
	return ch->replies >= ch->next_id - 1;
}

/* Pumps replies and makes chaos events until every reply is in (and, in
 * the reload chaos, every reload done). */
static void
run(struct chaos *ch)
{
	long long t0 = arb_now_ms(), end = t0 + RUN_MS;
	long long next = t0 + (ch->reloading ? 20 + rand() % 81 :
	    5 + rand() % 16);
	while (arb_now_ms() < end && !(all_answered(ch) &&
	    (ch->calm || !ch->reloading))) {
		if (!ch->calm && arb_now_ms() >= next)
			next = arb_now_ms() + chaos_event(ch);
		int wait = 100;
		if (!ch->calm) {
			long long left = next - arb_now_ms();
			wait = left < 1 ? 1 : (int)left;
		}
		if (cl_pump(ch->conns, NCLIENTS, wait, on_reply, ch) < 0)
			break;
	}
	/* A duplicate would come now. */
	while (cl_pump(ch->conns, NCLIENTS, 200, on_reply, ch) > 0)
		;
	fprintf(stderr, "%d replies to %lld requests in %lld ms: %d ok, %d bad, "
	    "%d workers killed, %d reloads (%d to disabled)\n", ch->replies,
	    (long long)ch->next_id - 1, arb_now_ms() - t0, ch->ok, ch->bad,
	    ch->kills, ch->reloads, ch->disabled);
	for (int i = 0; i < NCODES && ch->codes[i] != NULL; i++)
		fprintf(stderr, "  %s: %d\n", ch->codes[i], ch->ncode[i]);
}

/* Every request sent has exactly one reply, and none was bad. */
static void
check_replies(struct chaos *ch)
{
	int missing = 0;
	for (json_int_t id = 1; id < ch->next_id; id++)
		missing += ch->seen[id] == 0;
	assert_int_equal(missing, 0);
	assert_int_equal(ch->bad, 0);
	assert_int_equal(ch->replies, ch->next_id - 1);
	assert_true(ch->ok > 0);
}

/* Every request answered once, the stats agree, the pool is whole. */
static void
check_outcome(struct chaos *ch)
{
	assert_int_equal(ch->next_id, TOTAL + 1);
	check_replies(ch);
	assert_true(ch->kills >= 10);
	json_t *tree = arb_wait_all_ready(ch->a, "pool", 4, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	json_t *st = cl_stats(ch->a);
	assert_int_equal(arb_node_int(st, "total_operations"), TOTAL);
	assert_int_equal(arb_node_int(st, "successful_operations"), ch->ok);
	assert_int_equal(arb_node_int(st, "failed_operations"), TOTAL - ch->ok);
	json_decref(st);
}

/* The seed ($ARBOR_CHAOS_SEED replays a run), printed so that a failure
 * names it; a chaos with arbord up, a pool of 4 ready, and NCLIENTS
 * connections. */
static struct chaos *
chaos_start(void)
{
	const char *env = getenv("ARBOR_CHAOS_SEED");
	unsigned seed = env != NULL ? (unsigned)strtoul(env, NULL, 10) :
	    (unsigned)time(NULL) ^ (unsigned)getpid();
	fprintf(stderr, "seed %u (ARBOR_CHAOS_SEED=%u replays it)\n", seed,
	    seed);
	srand(seed);
	struct chaos *ch = calloc(1, sizeof *ch);
	assert_non_null(ch);
	ch->a = arb_start(CHAOS_CONF, "dev", NULL);
	json_t *tree = arb_wait_all_ready(ch->a, "pool", 4, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	ch->next_id = 1;
	ch->fds = proc_fd_count(arb_pid(ch->a));
	for (size_t c = 0; c < NCLIENTS; c++)
		ch->conns[c] = cl_open(ch->a);
	return ch;
}

/* Gives the clients total more requests to send, and sends the first. */
static void
chaos_send(struct chaos *ch, int total)
{
	for (size_t c = 0; c < NCLIENTS; c++)
		ch->budget[c] = total / NCLIENTS + ((int)c < total % NCLIENTS);
	for (size_t c = 0; c < NCLIENTS; c++)
		refill(ch, c);
}

static void
chaos_free(struct chaos *ch)
{
	for (size_t c = 0; c < NCLIENTS; c++)
		cl_close(ch->conns[c]);
	for (int i = 0; i < NCODES; i++)
		free(ch->codes[i]);
	free(ch);
}

static void
test_chaos(void **state)
{
	(void)state;
	struct chaos *ch = chaos_start();
	chaos_send(ch, TOTAL);
	run(ch);
	check_outcome(ch);
	assert_int_equal(arb_stop(ch->a), 0);
	chaos_free(ch);
}

/* Whether arbord's children are just the workers of tree (a replaced
 * subtree has wound down). */
static bool
only_tree_workers(json_t *tree, void *ctx)
{
	struct chaos *ch = ctx;
	json_int_t pids[16];
	pid_t kids[64];
	size_t n = arb_worker_pids(arb_find(tree, "pool"), pids, 16);
	size_t nk = arb_children(ch->a, kids, 64);
	if (nk != n || nk > 64)
		return false;
	for (size_t i = 0; i < nk; i++) {
		size_t j = 0;
		while (j < n && pids[j] != kids[i])
			j++;
		if (j == n)
			return false;
	}
	return true;
}

static void
test_reload_chaos(void **state)
{
	(void)state;
	struct chaos *ch = chaos_start();
	ch->reloading = true;
	chaos_send(ch, MAX_IDS - NCLIENTS * FINAL_EACH);
	run(ch);
	check_replies(ch);
	assert_int_equal(ch->reloads, RELOADS);
	assert_true(ch->disabled > 0);
	/* arbord lives and answers. */
	assert_int_equal(proc_ppid(arb_pid(ch->a)), getpid());
	assert_false(proc_is_zombie(arb_pid(ch->a)));
	arb_rewrite_config(ch->a, CHAOS_CONF);
	json_decref(arb_op_ok(ch->a, "reload"));
	json_t *tree = arb_wait_all_ready(ch->a, "pool", 4, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	tree = arb_wait_for(ch->a, only_tree_workers, ch, ARB_EVENT_MS,
	    "arbord's children to be the 4 workers of the pool");
	assert_non_null(tree);
	assert_string_equal(arb_node_str(tree, "mode"), "pool");
	json_decref(tree);
	/* Calm again: every request succeeds. */
	int ok = ch->ok;
	json_int_t first = ch->next_id;
	chaos_send(ch, NCLIENTS * FINAL_EACH);
	run(ch);
	check_replies(ch);
	assert_int_equal(ch->ok - ok, ch->next_id - first);
	assert_int_equal(ch->next_id - first, NCLIENTS * FINAL_EACH);
	/* The counters are arbord's: every subtree's replies are in them. */
	json_t *st = cl_stats(ch->a);
	assert_int_equal(arb_node_int(st, "total_operations"), ch->replies);
	assert_int_equal(arb_node_int(st, "successful_operations"), ch->ok);
	assert_int_equal(arb_node_int(st, "failed_operations"),
	    ch->replies - ch->ok);
	json_decref(st);
	/* Nor a descriptor of what they were: with the clients gone, arbord
	 * holds as many as when it started. */
	for (size_t c = 0; c < NCLIENTS; c++) {
		cl_close(ch->conns[c]);
		ch->conns[c] = NULL;
	}
	long long end = arb_now_ms() + ARB_EVENT_MS;
	while (proc_fd_count(arb_pid(ch->a)) > ch->fds && arb_now_ms() < end)
		arb_sleep_ms(10);
	assert_true(proc_fd_count(arb_pid(ch->a)) <= ch->fds);
	assert_int_equal(arb_stop(ch->a), 0);
	chaos_free(ch);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_chaos, arb_teardown),
		cmocka_unit_test_teardown(test_reload_chaos, arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
