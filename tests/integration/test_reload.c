/* Reload under load (SPEC 7, README "Reload"): arbor.conf is rewritten and
 * the `reload` op (or SIGHUP) applies it while client threads keep a steady
 * load of `sleep` and `echo` requests going.
 *
 * Every mode pair (single, pool, disabled) is switched both ways. A request
 * may get what the mode it met calls for: ok while the bridge is enabled,
 * bridge_disabled while it is disabled. One sent before the reload was
 * confirmed may meet the old mode; one answered after the reload was sent
 * may meet the new one; anything else (another error, a missing or wrong
 * reply) is a failed request, and there must be none. A request accepted
 * just before the switch (sent on the reload's own connection, ahead of
 * it) must finish ok on the old subtree. The reply names the changed keys.
 *
 * An invalid file is refused with config_error naming file:line and
 * changes nothing (same mode, same pids); a pool resized 2 -> 4 -> 1 under
 * load fails no request and ends with exactly the workers of the new size.
 *
 * Reloads in quick succession (two and three mode changes, each while the
 * subtree it replaces holds a request; pool -> disabled -> pool with a
 * request waiting) fail none of those requests: every old subtree finishes
 * its own, a waiting one moves on to the next subtree that serves, a
 * shutdown waits for all of them, and a root that gives up meanwhile
 * still answers them (shutting_down).
 *
 * Every key of the config, changed alone, is reported as exactly that key
 * (reply and log line); the running values written another way report
 * nothing, and invalid values are refused whole, by the op and SIGHUP.
 * The served / refused / failed counts of each run are printed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/xmalloc.h"

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"
#include "tests/integration/loadgen.h"

#define NCLIENTS	6	/* load client threads */
#define POOL_SIZE	8	/* > NCLIENTS: the anchor finds an idle worker */
#define WARM_REPLIES	60	/* load replies before and after a switch */
#define ANCHOR_MS	300	/* the request in flight across the switch */
#define MAX_SHOWN	10	/* failed requests described per run */

enum mode { M_DISABLED, M_SINGLE, M_POOL };

static const char *const mode_names[] = { "disabled", "single", "pool" };

/* The load of the running test, for the teardown when it fails. */
static struct loadgen *g_lg;

static int
teardown(void **state)
{
	lg_free(g_lg);
	g_lg = NULL;
	return arb_teardown(state);
}

/* ---- configs ---- */

/* A whole arbor.conf for mode with a pool of pool_size (caller frees). */
static char *
conf_for(enum mode m, int pool_size)
{
	return xasprintf(
	    "bridge = { enabled = %s; pooling_enabled = %s;"
	    " adapter = \"bridge_mock\"; };\n"
	    "pool = { size = %d; max_overflow = 0;"
	    " checkout_timeout_ms = 20000; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n",
	    m == M_DISABLED ? "false" : "true", m == M_POOL ? "true" : "false",
	    pool_size);
}

/* Replaces arbor.conf by body[0..n) in one rename. */
static void
write_conf_bytes(struct arb *a, const char *body, size_t n)
{
	char *tmp = xasprintf("%s.new", arb_conf_path(a));
	FILE *f = fopen(tmp, "we");
	if (f == NULL || fwrite(body, 1, n, f) != n || fclose(f) != 0 ||
	    rename(tmp, arb_conf_path(a)) != 0)
		fail_msg("cannot write %s", arb_conf_path(a));
	free(tmp);
}

static void
write_conf(struct arb *a, const char *body)
{
	write_conf_bytes(a, body, strlen(body));
}

/* Rewrites arbor.conf for mode m (a pool of pool_size) and reloads;
 * the reload's reply (caller frees). */
static json_t *
reload_to(struct arb *a, enum mode m, int pool_size)
{
	char *body = conf_for(m, pool_size);
	write_conf(a, body);
	free(body);
	return arb_op_ok(a, "reload");
}

/* The subtree of a mode and its worker count. */
static const char *
parent_of(enum mode m)
{
	return m == M_POOL ? "pool" : m == M_SINGLE ? "bridge" : NULL;
}

static size_t
nworkers(enum mode m, int pool_size)
{
	return m == M_POOL ? (size_t)pool_size : m == M_SINGLE ? 1 : 0;
}

/* Starts arbord in mode m (a pool of pool_size) and waits for its
 * workers; their pids go to pids (room for POOL_SIZE). */
static struct arb *
start_mode(enum mode m, int pool_size, json_int_t *pids)
{
	char *body = conf_for(m, pool_size);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	if (m == M_DISABLED)
		return a;
	size_t n = nworkers(m, pool_size);
	json_t *tree = arb_wait_all_ready(a, parent_of(m), n, ARB_EVENT_MS);
	assert_non_null(tree);
	assert_int_equal(arb_worker_pids(tree, pids, POOL_SIZE), n);
	json_decref(tree);
	return a;
}

/* ---- the switch ---- */

/* When a switch began (just before the reload was sent) and was
 * confirmed (just after its reply came, or the new mode was seen in
 * status), in lg_now_us(). */
struct sw {
	long long begin, end;
};

/* Whether the changed keys of a reload reply include key. */
static bool
changed_has(const json_t *reply, const char *key)
{
	size_t i;
	const json_t *k;
	json_array_foreach(json_object_get(reply, "changed"), i, k)
		if (json_is_string(k) && strcmp(json_string_value(k), key) == 0)
			return true;
	return false;
}

/* Checks the anchor's reply: ok on the old subtree when from was enabled,
 * else bridge_disabled. */
static void
check_anchor(const json_t *r, enum mode from)
{
	char *s = cl_describe(r);
	if (from == M_DISABLED &&
	    strcmp(arb_reply_code(r) ? arb_reply_code(r) : "", "bridge_disabled"))
		fail_msg("a request sent to the disabled bridge: %s", s);
	if (from != M_DISABLED && (!arb_reply_ok(r) ||
	    json_integer_value(json_object_get(json_object_get(r, "result"),
	    "slept")) != ANCHOR_MS))
		fail_msg("the request in flight across the reload failed: %s", s);
	free(s);
}

/* Sends a `sleep` (the anchor) and `reload` on one connection: arbord
 * reads the anchor first, so it is accepted before the switch. Checks
 * both replies; the reload's must list "mode". */
static void
switch_by_op(struct arb *a, enum mode from, struct sw *sw)
{
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	json_t *anchor = cl_exec_req(1, "sleep", json_pack("{s:i}", "ms",
	    ANCHOR_MS), NULL, 0);
	json_t *reload = json_pack("{s:i,s:s}", "id", 2, "op", "reload");
	sw->begin = lg_now_us();
	assert_int_equal(arb_conn_send(c, anchor), 0);
	assert_int_equal(arb_conn_send(c, reload), 0);
	json_decref(anchor);
	json_decref(reload);
	for (int got = 0; got < 2; got++) {
		json_t *r = arb_conn_recv(c, ARB_REPLY_MS);
		if (r == NULL)
			fail_msg("%s reply missing", got ? "second" : "first");
		if (cl_reply_id(r) == 2) {
			sw->end = lg_now_us();
			char *s = cl_describe(r);
			if (!arb_reply_ok(r) || !changed_has(r, "mode"))
				fail_msg("reload: expected ok with \"mode\" among the"
				    " changed keys: %s", s);
			print_message("reload reply: %s\n", s);
			free(s);
		} else
			check_anchor(r, from);
		json_decref(r);
	}
	arb_conn_close(c);
}

/* arb_wait_for predicate: the root reports mode *ctx. */
static bool
root_in_mode(json_t *tree, void *ctx)
{
	const char *m = arb_node_str(tree, "mode");
	return m != NULL && strcmp(m, ctx) == 0;
}

/* SIGHUP, then the new mode seen in status confirms the switch; the log
 * names the changed keys. */
static void
switch_by_sighup(struct arb *a, enum mode to, struct sw *sw)
{
	sw->begin = lg_now_us();
	assert_int_equal(arb_kill(a, SIGHUP), 0);
	json_t *tree = arb_wait_for(a, root_in_mode, (void *)mode_names[to],
	    ARB_EVENT_MS, "the mode of the reloaded config");
	sw->end = lg_now_us();
	assert_non_null(tree);
	json_decref(tree);
	if (!arb_log_has_line(a, "reloaded", "mode", NULL))
		fail_msg("no log line says the reload changed \"mode\"");
}

/* ---- judging the load ---- */

struct tally {
	size_t	sent, served, refused, failed;
	size_t	across;		/* sent before the switch, answered after */
};

/* What a request gets from the bridge in mode m. */
static const char *
outcome_in(enum mode m)
{
	return m == M_DISABLED ? "bridge_disabled" : LG_OK;
}

/* Whether r got what a mode it could have met calls for: the old one if
 * it was sent before the switch was confirmed, the new one if it was
 * answered after the switch began. */
static bool
allowed(const struct lg_req *r, const struct sw *sw, enum mode from,
    enum mode to)
{
	bool met_old = r->sent_us <= sw->end;
	bool met_new = r->replied_us >= sw->begin;
	return (met_old && strcmp(r->code, outcome_in(from)) == 0) ||
	    (met_new && strcmp(r->code, outcome_in(to)) == 0);
}

/* Counts the load's outcomes; describes the failed ones. */
static struct tally
judge_load(const struct loadgen *lg, const struct sw *sw, enum mode from,
    enum mode to)
{
	struct tally t = { 0 };
	for (size_t i = 0; i < lg_nreqs(lg); i++) {
		const struct lg_req *r = lg_req(lg, i);
		t.sent++;
		t.served += strcmp(r->code, LG_OK) == 0;
		t.refused += strcmp(r->code, "bridge_disabled") == 0;
		t.across += r->sent_us < sw->begin && r->replied_us > sw->end;
		if (allowed(r, sw, from, to))
			continue;
		if (t.failed++ < MAX_SHOWN)
			fprintf(stderr, "failed: client %u, sent at %+lld us, "
			    "replied at %+lld us (from the reload sent; its reply"
			    " at %+lld us): %s\n", r->client, r->sent_us -
			    sw->begin, r->replied_us ? r->replied_us - sw->begin :
			    0, sw->end - sw->begin, r->code[0] ? r->code : "ok");
	}
	return t;
}

static void
print_tally(const char *what, const struct tally *t)
{
	print_message("%s: %zu requests, %zu served, %zu refused "
	    "(bridge_disabled), %zu failed; %zu in flight across the switch\n",
	    what, t->sent, t->served, t->refused, t->failed, t->across);
}

/* ---- the runs ---- */

/* One switch under load: from (a pool of from_size) to to (a pool of
 * POOL_SIZE), by the op or by SIGHUP. */
struct pair {
	enum mode	from, to;
	int		from_size;
	bool		by_sighup;
};

/* The new mode's tree: its workers ready (none when disabled) and the
 * old subtree's workers gone. */
static void
check_tree(struct arb *a, const struct pair *p, const json_int_t *old_pids)
{
	enum mode from = p->from, to = p->to;
	json_t *tree = to == M_DISABLED ? arb_status(a, NULL) :
	    arb_wait_all_ready(a, parent_of(to), nworkers(to, POOL_SIZE),
	    ARB_EVENT_MS);
	assert_non_null(tree);
	assert_string_equal(arb_node_str(tree, "mode"), mode_names[to]);
	assert_int_equal(arb_node_nchildren(tree), to == M_DISABLED ? 0 : 1);
	if (from != to && parent_of(from) != NULL)
		assert_null(arb_find(tree, parent_of(from)));
	json_decref(tree);
	for (size_t i = 0; i < nworkers(from, p->from_size); i++)
		if (!proc_wait_gone((pid_t)old_pids[i], ARB_EVENT_MS))
			fail_msg("worker %lld of the old %s subtree still runs",
			    (long long)old_pids[i], mode_names[from]);
}

/* from -> to under load; checks and prints the load's outcomes. */
static void
run_pair(const struct pair *p)
{
	enum mode from = p->from, to = p->to;
	json_int_t old_pids[POOL_SIZE] = { 0 };
	struct arb *a = start_mode(from, p->from_size, old_pids);
	g_lg = lg_start(a, NCLIENTS);
	assert_true(lg_wait(g_lg, 0, WARM_REPLIES, ARB_EVENT_MS));
	char *body = conf_for(to, POOL_SIZE);
	write_conf(a, body);
	free(body);
	struct sw sw = { 0, 0 };
	if (p->by_sighup)
		switch_by_sighup(a, to, &sw);
	else
		switch_by_op(a, from, &sw);
	bool flowing = lg_wait(g_lg, sw.end, WARM_REPLIES, ARB_EVENT_MS);
	lg_stop(g_lg);
	char what[96];
	snprintf(what, sizeof what, "reload %s%s -> %s%s", mode_names[from],
	    from == M_POOL && p->from_size < NCLIENTS ?
	    " (1 worker, requests queued)" : "", mode_names[to],
	    p->by_sighup ? " (SIGHUP)" : "");
	struct tally t = judge_load(g_lg, &sw, from, to);
	print_tally(what, &t);
	assert_true(flowing);
	assert_int_equal(t.failed, 0);
	assert_true(t.served > 0);
	lg_free(g_lg);
	g_lg = NULL;
	check_tree(a, p, old_pids);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_single_to_pool(void **state)
{
	run_pair(&(struct pair){ M_SINGLE, M_POOL, POOL_SIZE, false });
}

static void
test_pool_to_single(void **state)
{
	run_pair(&(struct pair){ M_POOL, M_SINGLE, POOL_SIZE, false });
}

static void
test_pool_to_disabled(void **state)
{
	run_pair(&(struct pair){ M_POOL, M_DISABLED, POOL_SIZE, false });
}

static void
test_disabled_to_pool(void **state)
{
	run_pair(&(struct pair){ M_DISABLED, M_POOL, POOL_SIZE, false });
}

static void
test_single_to_disabled(void **state)
{
	run_pair(&(struct pair){ M_SINGLE, M_DISABLED, POOL_SIZE, false });
}

static void
test_disabled_to_single(void **state)
{
	run_pair(&(struct pair){ M_DISABLED, M_SINGLE, POOL_SIZE, false });
}

static void
test_sighup_single_to_pool(void **state)
{
	run_pair(&(struct pair){ M_SINGLE, M_POOL, POOL_SIZE, true });
}

/* Requests waiting in the old pool move to the new subtree. */
static void
test_queued_pool_to_single(void **state)
{
	run_pair(&(struct pair){ M_POOL, M_SINGLE, 1, false });
}

/* On c: a sleep of ms (id 1) that takes the one worker, and an echo
 * (id 2) behind it; returns once the echo waits. */
static void
send_sleep_and_waiter(struct arb *a, struct cl_conn *c, int ms)
{
	json_t *reqs = json_pack("[o,o]",
	    cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", ms), NULL, 0),
	    cl_exec_req(2, "echo", NULL, NULL, 0));
	cl_send_batch(c, reqs);
	json_decref(reqs);
	assert_true(cl_wait_stat(a, "waiting", 1, 1, ARB_EVENT_MS));
}

/* A reload to mode disabled fails no request already accepted: the one
 * the worker holds and the one waiting for it both finish ok on the old
 * pool; only requests that come after are refused. */
static void
test_disabled_keeps_accepted(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_POOL, 1, pids);
	struct cl_conn *c = cl_open(a);
	send_sleep_and_waiter(a, c, 1000);
	json_t *r = reload_to(a, M_DISABLED, 1);
	json_decref(r);
	cl_expect_ok_in_order(c, 1, 2, ARB_REPLY_MS);	/* both accepted */
	cl_close(c);
	r = cl_exec_err(a, "echo", NULL, NULL, "bridge_disabled");
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* To mode disabled the old pool keeps its waiting requests and must serve
 * them: its worker crashing meanwhile (the request it held fails
 * worker_crashed) is restarted for them, as it would be in a running pool.
 * The retired pool used to leave it down, and the waiting request ended
 * in pool_timeout. */
static void
test_disabled_old_worker_crash_keeps_waiting(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_POOL, 1, pids);
	struct cl_conn *c = cl_open(a);
	send_sleep_and_waiter(a, c, 60000);
	json_decref(reload_to(a, M_DISABLED, 1));
	assert_int_equal(kill((pid_t)pids[0], SIGKILL), 0);
	bool seen[3] = { false };
	for (int i = 0; i < 2; i++) {
		json_t *r = cl_recv(c, ARB_EVENT_MS);
		if (r == NULL)
			fail_msg("reply %d of 2 missing (%s)", i + 1,
			    cl_eof(c) ? "connection closed" : "timed out");
		json_int_t id = cl_reply_id(r);
		assert_true(id >= 1 && id <= 2 && !seen[id]);
		seen[id] = true;
		if (id == 1)
			assert_string_equal(arb_reply_code(r), "worker_crashed");
		else if (!arb_reply_ok(r))
			fail_msg("the waiting request failed: %s",
			    arb_reply_code(r));
		json_decref(r);
	}
	cl_close(c);
	json_decref(cl_exec_err(a, "echo", NULL, NULL, "bridge_disabled"));
	assert_int_equal(arb_stop(a), 0);
}

/* The old pool left to serve its waiting request after a reload to mode
 * disabled restarts its crashed worker as it was built: the reload's
 * worker.command (one that exits at once) is not for it. It used to
 * restart it with the new config, in a crash loop, and the waiting
 * request was never served. */
static void
test_disabled_old_pool_restarts_with_its_config(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_POOL, 1, pids);
	struct cl_conn *c = cl_open(a);
	send_sleep_and_waiter(a, c, 60000);
	write_conf(a,
	    "bridge = { enabled = false; pooling_enabled = true;"
	    " adapter = \"auto\"; };\n"
	    "worker = { command = [ \"/bin/sh\", \"-c\", \"exit 7\" ]; };\n"
	    "pool = { size = 1; max_overflow = 0; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n");
	json_decref(arb_op_ok(a, "reload"));
	assert_int_equal(kill((pid_t)pids[0], SIGKILL), 0);
	json_t *r = cl_recv(c, ARB_EVENT_MS);	/* the one it held */
	assert_non_null(r);
	assert_int_equal(cl_reply_id(r), 1);
	assert_string_equal(arb_reply_code(r), "worker_crashed");
	json_decref(r);
	r = cl_recv_ok(c, ARB_EVENT_MS, "the waiting request");
	assert_int_equal(cl_reply_id(r), 2);
	json_decref(r);
	cl_close(c);
	assert_false(arb_log_contains(a, "exited with status 7"));
	assert_int_equal(arb_stop(a), 0);
}

/* Mode single with bridge.max_restarts = 0 (its first restart fails the
 * bridge supervisor), max_inflight 1; enabled or not. */
static char *
conf_fragile_single(bool enabled)
{
	return xasprintf(
	    "bridge = { enabled = %s; adapter = \"bridge_mock\";"
	    " max_restarts = 0; };\n"
	    "worker = { max_inflight = 1; restart_delay_ms = 0; };\n"
	    "pool = { checkout_timeout_ms = 20000; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n",
	    enabled ? "true" : "false");
}

/* The same when the old subtree's supervisor fails: a reload to mode
 * disabled left it its waiting request, so the root restarts it for that
 * request, as it would restart a running bridge. It used to be dropped,
 * the request answered shutting_down though arbord was not stopping. */
static void
test_disabled_old_bridge_failure_keeps_waiting(void **state)
{
	char *body = conf_fragile_single(true);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	pid_t pid = (pid_t)arb_wait_ready_pid(a, "bridge/worker", 0);
	struct cl_conn *c = cl_open(a);
	send_sleep_and_waiter(a, c, 60000);
	body = conf_fragile_single(false);
	write_conf(a, body);
	free(body);
	json_decref(arb_op_ok(a, "reload"));
	assert_int_equal(kill(pid, SIGKILL), 0);
	for (json_int_t id = 1; id <= 2; id++) {
		json_t *r = cl_recv(c, ARB_EVENT_MS);
		if (r == NULL)
			fail_msg("reply %lld of 2 missing", (long long)id);
		assert_int_equal(cl_reply_id(r), id);	/* max_inflight 1 */
		if (id == 1)
			assert_string_equal(arb_reply_code(r), "worker_crashed");
		else if (!arb_reply_ok(r))
			fail_msg("the waiting request failed: %s",
			    arb_reply_code(r));
		json_decref(r);
	}
	cl_close(c);
	assert_true(arb_log_has_line(a, "bridge", "giving up", NULL));
	json_decref(cl_exec_err(a, "echo", NULL, NULL, "bridge_disabled"));
	assert_int_equal(arb_stop(a), 0);
}

/* Reloads a to mode single and waits for bridge/worker (not old_pid, if
 * given) ready: then session s1's next reply, and only that one, carries
 * session_reset, and s2's (ended, or never served) none. Stops a. */
static void
expect_reset_in_single(struct arb *a, json_int_t old_pid)
{
	json_decref(reload_to(a, M_SINGLE, 1));
	arb_wait_ready_pid(a, "bridge/worker", old_pid);
	assert_true(cl_echo_reset(a, "s1"));
	assert_false(cl_echo_reset(a, "s1"));
	assert_false(cl_echo_reset(a, "s2"));
	assert_int_equal(arb_stop(a), 0);
}

/* A reload that replaces the workers takes their state with them: the
 * next reply in each session they held carries session_reset, once; a new
 * session's does not. */
static void
test_rebuild_tells_session_reset(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_POOL, 1, pids);
	assert_false(cl_echo_reset(a, "s1"));
	expect_reset_in_single(a, 0);
}

/* A mode without workers in between does not lose the notice: after
 * single -> disabled -> single the next reply in a session the first
 * worker served carries session_reset (its state went with that worker),
 * and a session ended meanwhile (end_session in mode disabled answers
 * true for it) does not. */
static void
test_reset_survives_disabled(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_SINGLE, 1, pids);
	json_decref(cl_exec_ok(a, "echo", NULL, "s1"));
	json_decref(cl_exec_ok(a, "echo", NULL, "s2"));
	json_decref(reload_to(a, M_DISABLED, 1));
	assert_true(proc_wait_gone((pid_t)pids[0], ARB_EVENT_MS));
	json_t *r = arb_call_ok(a, json_pack("{s:s, s:s}", "op",
	    "end_session", "session_id", "s2"));
	assert_true(json_is_true(json_object_get(r, "ended")));
	json_decref(r);
	expect_reset_in_single(a, pids[0]);
}

/* Mode single, max_inflight 1 (conf_fragile_single, enabled), its worker
 * ready: its pid. */
static struct arb *
start_single_one_inflight(pid_t *pid)
{
	char *body = conf_fragile_single(true);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	*pid = (pid_t)arb_wait_ready_pid(a, "bridge/worker", 0);
	return a;
}

/* On c: a sleep of ms (id 1) that takes the one worker, then an echo in
 * session s1 (id 2), an echo in s2 (id 3) and a sleep of tail_ms (id 4),
 * all waiting behind it; then a reload to mode disabled, max_inflight
 * still 1, which leaves them to the old worker. */
static void
send_waiters_and_disable(struct arb *a, struct cl_conn *c, int ms,
    int tail_ms)
{
	json_t *reqs = json_pack("[o,o,o,o]",
	    cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", ms), NULL, 0),
	    cl_exec_req(2, "echo", NULL, "s1", 0),
	    cl_exec_req(3, "echo", NULL, "s2", 0),
	    cl_exec_req(4, "sleep", json_pack("{s:i}", "ms", tail_ms), NULL,
	    0));
	cl_send_batch(c, reqs);
	json_decref(reqs);
	assert_true(cl_wait_stat(a, "waiting", 3, 3, ARB_EVENT_MS));
	char *body = conf_fragile_single(false);
	write_conf(a, body);
	free(body);
	json_decref(arb_op_ok(a, "reload"));
}

/* The same for sessions the old worker first serves after the reload to
 * mode disabled (their requests waited for it): they are made in the old
 * subtree then, and were left out of what mode disabled keeps, so that
 * end_session did not find them and back in mode single none was told
 * session_reset. */
static void
test_reset_survives_disabled_for_waiters(void **state)
{
	pid_t pid;
	struct arb *a = start_single_one_inflight(&pid);
	struct cl_conn *c = cl_open(a);
	send_waiters_and_disable(a, c, 500, 1);
	cl_expect_ok_in_order(c, 1, 4, ARB_REPLY_MS);
	cl_close(c);
	assert_true(proc_wait_gone(pid, ARB_EVENT_MS));
	json_t *r = arb_call_ok(a, json_pack("{s:s, s:s}", "op",
	    "end_session", "session_id", "s2"));
	assert_true(json_is_true(json_object_get(r, "ended")));
	json_decref(r);
	expect_reset_in_single(a, pid);
}

/* The same when mode single comes back while the old worker still serves
 * a request after those of the sessions (the old subtree is not gone
 * yet). */
static void
test_reset_for_waiters_old_still_serving(void **state)
{
	pid_t pid;
	struct arb *a = start_single_one_inflight(&pid);
	struct cl_conn *c = cl_open(a);
	send_waiters_and_disable(a, c, 500, 5000);
	cl_expect_ok_in_order(c, 1, 3, ARB_REPLY_MS);
	json_t *r = arb_call_ok(a, json_pack("{s:s, s:s}", "op",
	    "end_session", "session_id", "s2"));
	assert_true(json_is_true(json_object_get(r, "ended")));
	json_decref(r);
	json_decref(reload_to(a, M_SINGLE, 1));
	arb_wait_ready_pid(a, "bridge/worker", pid);
	assert_true(cl_echo_reset(a, "s1"));
	assert_false(cl_echo_reset(a, "s1"));
	assert_false(cl_echo_reset(a, "s2"));
	cl_expect_ok_in_order(c, 4, 4, ARB_REPLY_MS);
	cl_close(c);
	assert_int_equal(arb_stop(a), 0);
}

/* A config for mode single (enabled) or disabled, sessions idle for
 * ttl_ms ending, worker.max_frame_bytes = frame (a change rebuilds). */
static char *
conf_ttl(bool enabled, int ttl_ms, long frame)
{
	return xasprintf(
	    "bridge = { enabled = %s; adapter = \"bridge_mock\"; };\n"
	    "worker = { max_frame_bytes = %ld; };\n"
	    "pool = { session_ttl_ms = %d; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n",
	    enabled ? "true" : "false", frame, ttl_ms);
}

/* Mode single, sessions idle for ttl_ms ending, its worker ready and
 * session s1 made. */
static struct arb *
start_single_ttl(int ttl_ms)
{
	char *body = conf_ttl(true, ttl_ms, 1 << 20);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	arb_await_node(a, "bridge/worker", "ready");
	json_decref(cl_exec_ok(a, "echo", NULL, "s1"));
	return a;
}

/* The sessions mode disabled keeps for the next subtree exist (end_session
 * ends them, answering true): `stats` counts them in `sessions`, and one
 * that stays idle for session_ttl_ms ends then and is counted in
 * stale_sessions_cleaned, as in any mode. */
static void
test_disabled_counts_kept_sessions(void **state)
{
	struct arb *a = start_single_ttl(1500);
	json_decref(cl_exec_ok(a, "echo", NULL, "s2"));
	char *body = conf_ttl(false, 1500, 1 << 20);
	write_conf(a, body);
	free(body);
	json_decref(arb_op_ok(a, "reload"));
	assert_int_equal(cl_stat(a, "sessions"), 2);
	assert_true(cl_wait_stat(a, "stale_sessions_cleaned", 2, 2,
	    ARB_EVENT_MS));
	assert_int_equal(cl_stat(a, "sessions"), 0);
	json_t *r = arb_call_ok(a, json_pack("{s:s, s:s}", "op",
	    "end_session", "session_id", "s1"));
	assert_false(json_is_true(json_object_get(r, "ended")));
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* A session handed on to a new subtree is the new subtree's: it ends
 * once, when it has been idle for session_ttl_ms, and is counted once in
 * stale_sessions_cleaned, though the old subtree (its table kept while it
 * finishes a request in flight) still knows it. */
static void
test_handed_on_session_expires_once(void **state)
{
	struct arb *a = start_single_ttl(500);
	struct cl_conn *held = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 3000), NULL, "busy", 1);
	char *body = conf_ttl(true, 500, 1 << 21);
	write_conf(a, body);
	free(body);
	json_decref(arb_op_ok(a, "reload"));
	assert_true(cl_wait_stat(a, "stale_sessions_cleaned", 1, 100,
	    ARB_EVENT_MS));
	json_decref(cl_recv_ok(held, ARB_REPLY_MS, "the held request"));
	cl_close(held);
	assert_true(cl_wait_stat(a, "sessions", 0, 0, ARB_EVENT_MS));
	assert_int_equal(cl_stat(a, "stale_sessions_cleaned"), 1);
	assert_int_equal(cl_stat(a, "total_sessions"), 1);
	assert_int_equal(arb_stop(a), 0);
}

/* The stats op's counters go on across mode switches, as counters do
 * (a Prometheus rate over `metrics` must not see them fall): a request
 * the old subtree answers after the switch is counted, and so is a
 * refusal in mode disabled. They used to start at 0 with each subtree. */
static void
test_stats_survive_mode_switch(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_SINGLE, 1, pids);
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	struct cl_conn *held = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1000), NULL, "busy", 1);
	json_decref(reload_to(a, M_POOL, 1));
	json_decref(cl_recv_ok(held, ARB_REPLY_MS, "the held request"));
	cl_close(held);
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	json_decref(reload_to(a, M_DISABLED, 1));
	json_decref(cl_exec_err(a, "echo", NULL, NULL, "bridge_disabled"));
	json_t *st = cl_stats(a);
	assert_int_equal(arb_node_int(st, "total_operations"), 4);
	assert_int_equal(arb_node_int(st, "successful_operations"), 3);
	assert_int_equal(arb_node_int(st, "failed_operations"), 1);
	json_decref(st);
	assert_int_equal(arb_stop(a), 0);
}

/* ---- reloads in quick succession ---- */

#define HELD_MS		4000	/* a request held across the reloads after it */
#define SEQ_IDS		8	/* request ids of one sequence: 1 .. 7 */
#define SEQ_POOL	2

/* A client that sends, at each step k, a `sleep` of HELD_MS (id 2k+1) to
 * the running subtree and, behind it on the same connection, a `reload`
 * (id 2k+2) that replaces that subtree: arbord reads the sleep first, so
 * the subtree accepts it before the reload. Replies are kept by id. */
struct seq {
	struct arb	*a;
	struct cl_conn	*c;
	json_t		*got[SEQ_IDS];
};

/* conf_for with room for the drain of a shutdown to outlast the sleeps. */
static char *
conf_held(enum mode m)
{
	char *base = conf_for(m, SEQ_POOL);
	char *body = xasprintf("%sworker = { shutdown_timeout_ms = 30000; };\n",
	    base);
	free(base);
	return body;
}

/* Starts arbord in mode single, its worker ready, and connects. */
static void
seq_start(struct seq *q)
{
	char *body = conf_held(M_SINGLE);
	*q = (struct seq){ .a = arb_start(body, "dev", NULL) };
	free(body);
	arb_await_node(q->a, "bridge/worker", "ready");
	q->c = cl_open(q->a);
}

static void
seq_end(struct seq *q)
{
	for (size_t i = 0; i < SEQ_IDS; i++)
		json_decref(q->got[i]);
	cl_close(q->c);
}

/* Reads replies (keeping each by its id) until the one with id is in. */
static json_t *
seq_await(struct seq *q, json_int_t id)
{
	while (q->got[id] == NULL) {
		json_t *r = cl_recv(q->c, ARB_EVENT_MS);
		if (r == NULL)
			fail_msg("reply %lld missing (%s)", (long long)id,
			    cl_eof(q->c) ? "connection closed" : "timed out");
		json_int_t rid = cl_reply_id(r);
		if (rid < 1 || rid >= SEQ_IDS || q->got[rid] != NULL) {
			char *s = cl_describe(r);
			fail_msg("unexpected reply: %s", s);
		}
		q->got[rid] = r;
	}
	return q->got[id];
}

/* Step k: rewrites the config for mode to, sends the sleep (if hold) and
 * the reload, and waits for the reload's reply, which must list "mode". */
static void
seq_reload(struct seq *q, int k, bool hold, enum mode to)
{
	char *body = conf_held(to);
	write_conf(q->a, body);
	free(body);
	json_t *reqs = json_array();
	if (hold)
		json_array_append_new(reqs, cl_exec_req(2 * k + 1, "sleep",
		    json_pack("{s:i}", "ms", HELD_MS), NULL, 0));
	json_array_append_new(reqs, json_pack("{s:i,s:s}", "id", 2 * k + 2,
	    "op", "reload"));
	cl_send_batch(q->c, reqs);
	json_decref(reqs);
	json_t *r = seq_await(q, 2 * k + 2);
	if (!arb_reply_ok(r) || !changed_has(r, "mode")) {
		char *s = cl_describe(r);
		fail_msg("reload %d: expected ok with \"mode\" changed: %s",
		    k + 1, s);
	}
}

/* The sleep of step k finished ok, on a worker of the subtree named. */
static void
seq_check_held(struct seq *q, int k, const char *subtree)
{
	json_t *r = seq_await(q, 2 * k + 1);
	char *s = cl_describe(r);
	const char *w = cl_reply_worker(r);
	if (!arb_reply_ok(r) || json_integer_value(json_object_get(
	    json_object_get(r, "result"), "slept")) != HELD_MS)
		fail_msg("the request accepted before reload %d failed: %s",
		    k + 1, s);
	if (w == NULL || strncmp(w, subtree, strlen(subtree)) != 0)
		fail_msg("the request of step %d was served by %s, not by %s",
		    k + 1, w ? w : "(none)", subtree);
	free(s);
}

/* The held sleeps were still running when the last reload was answered:
 * else the test proved nothing (the machine is slower than HELD_MS). */
static void
seq_assert_held_across(struct seq *q, int nsteps)
{
	for (int k = 0; k < nsteps; k++) {
		json_t *r = q->got[2 * k + 1];
		if (r != NULL && arb_reply_ok(r))
			fail_msg("the sleep of step %d ended before the last "
			    "reload: it was not held across it", k + 1);
	}
}

/* The pids of the workers under parent, once all n are ready. */
static void
seq_ready_pids(struct seq *q, const char *parent, size_t n, json_int_t *pids)
{
	json_t *tree = arb_wait_all_ready(q->a, parent, n, ARB_EVENT_MS);
	assert_non_null(tree);
	assert_int_equal(arb_worker_pids(arb_find(tree, parent), pids, n), n);
	json_decref(tree);
}

static void
assert_gone(const json_int_t *pids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!proc_wait_gone((pid_t)pids[i], ARB_EVENT_MS))
			fail_msg("worker %lld of an old subtree still runs",
			    (long long)pids[i]);
}

/* single -> pool -> single while the first single worker holds a request:
 * the second reload lets that old subtree finish it too (it used to kill
 * it: worker_crashed, "worker removed"). Status shows only the new
 * subtree meanwhile; the old worker is gone once its request is done. */
static void
test_double_reload_keeps_accepted(void **state)
{
	struct seq q;
	json_int_t first[1];
	seq_start(&q);
	seq_ready_pids(&q, "bridge", 1, first);
	seq_reload(&q, 0, true, M_POOL);
	seq_reload(&q, 1, false, M_SINGLE);
	seq_assert_held_across(&q, 1);
	json_t *tree = arb_status(q.a, NULL);
	assert_non_null(tree);
	assert_string_equal(arb_node_str(tree, "mode"), "single");
	assert_int_equal(arb_node_nchildren(tree), 1);
	assert_null(arb_find(tree, "pool"));
	json_int_t now = arb_node_pid(arb_find(tree, "bridge/worker"));
	assert_true(now != first[0]);
	json_decref(tree);
	seq_check_held(&q, 0, "bridge/worker");
	assert_gone(first, 1);
	arb_await_node(q.a, "bridge/worker", "ready");
	seq_end(&q);
	assert_int_equal(arb_stop(q.a), 0);
}

/* single -> pool -> single -> pool with a request held by each subtree
 * when it is replaced: three old subtrees finish theirs at once, then
 * stop; every one of their workers is gone at the end. */
static void
test_triple_reload_keeps_accepted(void **state)
{
	struct seq q;
	json_int_t old[1 + SEQ_POOL + 1];
	seq_start(&q);
	seq_ready_pids(&q, "bridge", 1, &old[0]);
	seq_reload(&q, 0, true, M_POOL);
	seq_ready_pids(&q, "pool", SEQ_POOL, &old[1]);
	seq_reload(&q, 1, true, M_SINGLE);
	seq_ready_pids(&q, "bridge", 1, &old[1 + SEQ_POOL]);
	seq_reload(&q, 2, true, M_POOL);
	seq_assert_held_across(&q, 3);
	seq_check_held(&q, 0, "bridge/worker");
	seq_check_held(&q, 1, "pool/worker.");
	seq_check_held(&q, 2, "bridge/worker");
	assert_gone(old, sizeof old / sizeof old[0]);
	json_t *tree = arb_wait_all_ready(q.a, "pool", SEQ_POOL, ARB_EVENT_MS);
	assert_non_null(tree);
	assert_int_equal(arb_node_nchildren(tree), 1);
	json_decref(tree);
	seq_end(&q);
	assert_int_equal(arb_stop(q.a), 0);
}

/* SIGTERM while two old subtrees still hold a request each: the drain
 * waits for both, and arbord exits 0 with nothing left behind. */
static void
test_shutdown_waits_for_old_subtrees(void **state)
{
	struct seq q;
	json_int_t pool[SEQ_POOL];
	seq_start(&q);
	seq_reload(&q, 0, true, M_POOL);
	seq_ready_pids(&q, "pool", SEQ_POOL, pool);
	seq_reload(&q, 1, true, M_SINGLE);
	seq_assert_held_across(&q, 2);
	assert_int_equal(arb_kill(q.a, SIGTERM), 0);
	seq_check_held(&q, 0, "bridge/worker");
	seq_check_held(&q, 1, "pool/worker.");
	assert_int_equal(arb_wait_exit(q.a, ARB_EXIT_MS), 0);
	seq_end(&q);
	assert_int_equal(arb_stop(q.a), 0);
}

/* pool -> disabled -> pool while the one worker holds a request and
 * another waits for it: the old pool finishes the one it holds, and the
 * waiting one, kept by the old pool while the bridge was disabled, goes
 * to the new pool. */
static void
test_disabled_and_back_keeps_accepted(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct seq q = { .a = start_mode(M_POOL, 1, pids) };
	q.c = cl_open(q.a);
	json_t *reqs = json_pack("[o,o]",
	    cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", HELD_MS), NULL, 0),
	    cl_exec_req(3, "echo", NULL, NULL, 0));
	cl_send_batch(q.c, reqs);
	json_decref(reqs);
	assert_true(cl_wait_stat(q.a, "waiting", 1, 1, ARB_EVENT_MS));
	enum mode modes[] = { M_DISABLED, M_POOL };
	for (size_t i = 0; i < 2; i++) {
		json_decref(reload_to(q.a, modes[i], 1));
	}
	seq_assert_held_across(&q, 1);
	json_t *r = seq_await(&q, 3);
	if (!arb_reply_ok(r)) {
		char *s = cl_describe(r);
		fail_msg("the request waiting across the reloads failed: %s", s);
	}
	seq_check_held(&q, 0, "pool/worker.1");
	assert_gone(pids, 1);
	seq_end(&q);
	assert_int_equal(arb_stop(q.a), 0);
}

/* After a reload to mode disabled the old pool, finishing what it
 * accepted, is out of the tree: stop and start on one of its workers
 * answer not_found (no name to act on), and its requests still finish
 * ok on it, untouched by either op. */
static void
test_disabled_old_worker_not_found(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_POOL, 1, pids);
	struct cl_conn *c = cl_open(a);
	send_sleep_and_waiter(a, c, 1500);
	json_decref(reload_to(a, M_DISABLED, 1));
	static const char *const ops[] = { "stop", "start", "restart" };
	for (size_t i = 0; i < 3; i++) {
		json_t *r = arb_call_err(a, json_pack("{s:s, s:s}", "op",
		    ops[i], "name", "pool/worker.1"), "not_found");
		json_decref(r);
	}
	cl_expect_ok_in_order(c, 1, 2, ARB_REPLY_MS);
	cl_close(c);
	assert_gone(pids, 1);
	assert_int_equal(arb_stop(a), 0);
}

/* The root gives up at once when its pool fails; the pool fails at its
 * worker's first crash. */
static const char SINGLE_ROOT_FRAGILE_CONF[] =
    "supervisor = { max_restarts = 0; max_seconds = 30; };\n"
    "bridge = { adapter = \"bridge_mock\"; };\n"
    "worker = { restart_delay_ms = 0; };\n"
    "environments = { dev = { }; };\n"
    "control = { socket = \"arbor.sock\"; };\n";
static const char POOL_ROOT_FRAGILE_CONF[] =
    "supervisor = { max_restarts = 0; max_seconds = 30; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { restart_delay_ms = 0; };\n"
    "pool = { size = 1; max_overflow = 0; max_restarts = 0;"
    " max_seconds = 30; };\n"
    "environments = { dev = { }; };\n"
    "control = { socket = \"arbor.sock\"; };\n";

/* The root gives up while an old subtree still holds a request: that
 * request gets its one reply (shutting_down) before arbord closes the
 * connection and exits 1 (it used to see the connection close). */
static void
test_give_up_answers_old_subtree(void **state)
{
	struct arb *a = arb_start(SINGLE_ROOT_FRAGILE_CONF, "dev", NULL);
	arb_await_node(a, "bridge/worker", "ready");
	struct cl_conn *c = cl_open(a);
	write_conf(a, POOL_ROOT_FRAGILE_CONF);
	json_t *reqs = json_pack("[o,{s:i,s:s}]",
	    cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 60000), NULL, 0),
	    "id", 2, "op", "reload");
	cl_send_batch(c, reqs);
	json_decref(reqs);
	json_t *r = cl_recv(c, ARB_REPLY_MS);
	assert_int_equal(cl_reply_id(r), 2);
	assert_true(arb_reply_ok(r));
	json_decref(r);
	json_t *node = arb_wait_node(a, "pool/worker.1", "ready", 0,
	    ARB_EVENT_MS);
	assert_non_null(node);
	assert_int_equal(kill((pid_t)arb_node_pid(node), SIGKILL), 0);
	json_decref(node);
	r = cl_recv(c, ARB_EVENT_MS);
	if (r == NULL)
		fail_msg("the request held by the old subtree got no reply (%s)",
		    cl_eof(c) ? "connection closed" : "timed out");
	assert_int_equal(cl_reply_id(r), 1);
	assert_string_equal(arb_reply_code(r), "shutting_down");
	json_decref(r);
	cl_close(c);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 1);
	assert_int_equal(arb_stop(a), 1);
}

/* ---- an invalid file ---- */

/* The tree's mode and worker pids equal the ones given. */
static void
assert_unchanged(struct arb *a, const json_int_t *pids, size_t n)
{
	json_int_t now[POOL_SIZE];
	json_t *tree = arb_status(a, NULL);
	assert_non_null(tree);
	assert_string_equal(arb_node_str(tree, "mode"), "pool");
	assert_int_equal(arb_worker_pids(tree, now, POOL_SIZE), n);
	json_decref(tree);
	for (size_t i = 0; i < n; i++)
		if (now[i] != pids[i])
			fail_msg("worker %zu: pid %lld, was %lld before the "
			    "invalid reload", i + 1, (long long)now[i],
			    (long long)pids[i]);
}

/* An invalid file: config_error naming file:line, by the op and by
 * SIGHUP; nothing changes. The valid file again reloads with no change. */
static void
test_invalid_reload(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_POOL, POOL_SIZE, pids);
	write_conf(a, "bridge = { enabled = false; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = 2; bogus_key = 1; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n");
	json_t *r = arb_call_err(a, json_pack("{s:s}", "op", "reload"),
	    "config_error");
	char *where = xasprintf("%s:2", arb_conf_path(a));
	const char *msg = cl_reply_message(r);
	if (msg == NULL || strstr(msg, where) == NULL ||
	    strstr(msg, "bogus_key") == NULL)
		fail_msg("config_error should name %s and the key: %s", where,
		    msg ? msg : "(no message)");
	print_message("invalid reload: %s\n", msg);
	json_decref(r);
	assert_true(arb_log_has_line(a, "reload", where, NULL));
	assert_unchanged(a, pids, POOL_SIZE);

	assert_int_equal(arb_kill(a, SIGHUP), 0);	/* logged, no reply */
	long long end = arb_now_ms() + ARB_EVENT_MS;
	while (!arb_log_has_line(a, "SIGHUP", NULL) ||
	    !arb_log_has_line(a, "keeping the running config", NULL)) {
		if (arb_now_ms() >= end)
			fail_msg("no log of the SIGHUP reload's error");
		arb_sleep_ms(25);
	}
	assert_unchanged(a, pids, POOL_SIZE);
	json_decref(cl_exec_ok(a, "echo", json_pack("{s:i}", "x", 1), NULL));

	r = reload_to(a, M_POOL, POOL_SIZE);
	assert_int_equal(json_array_size(json_object_get(r, "changed")), 0);
	json_decref(r);
	assert_unchanged(a, pids, POOL_SIZE);
	free(where);
	assert_int_equal(arb_stop(a), 0);
}

/* The reload op is refused with config_error, its message naming
 * "<config file>:<at>". */
static void
reload_refused(struct arb *a, const char *at)
{
	json_t *r = arb_call_err(a, json_pack("{s:s}", "op", "reload"),
	    "config_error");
	char *where = xasprintf("%s:%s", arb_conf_path(a), at);
	const char *msg = cl_reply_message(r);
	if (msg == NULL || strstr(msg, where) == NULL)
		fail_msg("config_error should say %s: %s", where,
		    msg ? msg : "(no message)");
	json_decref(r);
	free(where);
}

/* A NUL byte in the file: libconfig's scanner would read `@include "\0"`
 * as an include of the config's own directory and exit the process; the
 * reload is refused instead and arbord goes on unchanged. */
static void
test_reload_nul_byte(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_POOL, POOL_SIZE, pids);
	static const char body[] = "@include  \"\0\" ]; };\"\n";
	write_conf_bytes(a, body, sizeof body - 1);
	reload_refused(a, "1: a NUL byte");
	assert_unchanged(a, pids, POOL_SIZE);
	json_decref(cl_exec_ok(a, "echo", json_pack("{s:i}", "x", 1), NULL));
	assert_int_equal(arb_stop(a), 0);
}

/* An @include whose name holds a backslash that escapes nothing: the
 * scanner drops it and opens another file than the one written ("d\r" opens
 * the directory "dr" and exits the process). The reload is refused, by the
 * op and by SIGHUP, and arbord goes on unchanged. */
static void
test_reload_include_stray_backslash(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_POOL, POOL_SIZE, pids);
	char *dir = xasprintf("%s/dr", arb_dir(a));
	char *inc = xasprintf("%s/d\\r", arb_dir(a));
	if (mkdir(dir, 0700) != 0)
		fail_msg("cannot make %s", dir);
	FILE *f = fopen(inc, "we");
	if (f == NULL || fputs("log = { level = \"info\"; };\n", f) < 0 ||
	    fclose(f) != 0)
		fail_msg("cannot write %s", inc);
	char *body = conf_for(M_POOL, POOL_SIZE);
	char *text = xasprintf("%s@include \"d\\r\"\n", body);
	write_conf(a, text);
	reload_refused(a, "5: @include");
	assert_unchanged(a, pids, POOL_SIZE);
	assert_int_equal(arb_kill(a, SIGHUP), 0);	/* logged, no reply */
	long long end = arb_now_ms() + ARB_EVENT_MS;
	while (arb_log_count_lines(a, "keeping the running config",
	    "escapes neither", NULL) < 2) {
		if (arb_now_ms() >= end)
			fail_msg("no log of the SIGHUP reload's error");
		arb_sleep_ms(25);
	}
	assert_unchanged(a, pids, POOL_SIZE);
	json_decref(cl_exec_ok(a, "echo", json_pack("{s:i}", "x", 1), NULL));
	free(text);
	free(body);
	unlink(inc);
	rmdir(dir);
	free(inc);
	free(dir);
	assert_int_equal(arb_stop(a), 0);
}

/* A byte that is not UTF-8 in the file (a Latin-1 value): the reply still
 * names file:line and the key (SPEC 6), the byte replaced. */
static void
test_reload_latin1_value(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_POOL, 2, pids);
	write_conf(a, "bridge = { pooling_enabled = true;"
	    " adapter = \"bridge_mock\"; };\n"
	    "log = { level = \"d\xe9" "bug\"; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n");
	json_t *r = arb_call_err(a, json_pack("{s:s}", "op", "reload"),
	    "config_error");
	char *where = xasprintf("%s:2: log.level: ", arb_conf_path(a));
	const char *msg = cl_reply_message(r);
	if (msg == NULL || strstr(msg, where) == NULL)
		fail_msg("config_error should name %s: %s", where,
		    msg ? msg : "(no message)");
	json_decref(r);
	free(where);
	assert_unchanged(a, pids, 2);
	assert_int_equal(arb_stop(a), 0);
}

/* ---- pool resize ---- */

struct want_pool {
	size_t	n;
};

/* arb_wait_for predicate: the pool has exactly workers worker.1 .. n,
 * each running (ready or busy). */
static bool
pool_is(json_t *tree, void *ctx)
{
	const struct want_pool *w = ctx;
	json_t *pool = arb_find(tree, "pool");
	if (arb_node_nchildren(pool) != w->n)
		return false;
	for (size_t i = 1; i <= w->n; i++) {
		char name[32];
		snprintf(name, sizeof name, "pool/worker.%zu", i);
		json_t *node = arb_find(pool, name);
		const char *st = arb_node_str(node, "state");
		if (st == NULL || arb_node_pid(node) <= 0 ||
		    (strcmp(st, "ready") != 0 && strcmp(st, "busy") != 0))
			return false;
	}
	return true;
}

/* Rewrites the pool size, reloads (changed: pool.size) and waits for the
 * pool of that size; returns worker.1's pid. */
static json_int_t
resize(struct arb *a, int size)
{
	json_t *r = reload_to(a, M_POOL, size);
	if (!changed_has(r, "pool.size")) {
		char *s = cl_describe(r);
		fail_msg("reload to size %d: pool.size not among the changed"
		    " keys: %s", size, s);
	}
	json_decref(r);
	struct want_pool w = { (size_t)size };
	char what[64];
	snprintf(what, sizeof what, "a pool of %d workers", size);
	json_t *tree = arb_wait_for(a, pool_is, &w, ARB_EVENT_MS, what);
	assert_non_null(tree);
	json_int_t pid = arb_node_pid(arb_find(tree, "pool/worker.1"));
	json_decref(tree);
	return pid;
}

/* Prints the load's counts; fails unless every request was served. */
static void
assert_all_served(const struct loadgen *lg, const char *what)
{
	struct tally t = { 0 };
	for (size_t i = 0; i < lg_nreqs(lg); i++) {
		const struct lg_req *r = lg_req(lg, i);
		t.sent++;
		t.served += strcmp(r->code, LG_OK) == 0;
		if (strcmp(r->code, LG_OK) != 0 && t.failed++ < MAX_SHOWN)
			fprintf(stderr, "failed: client %u: %s\n", r->client,
			    r->code);
	}
	print_message("%s: %zu requests, %zu served, %zu failed\n", what,
	    t.sent, t.served, t.failed);
	assert_int_equal(t.failed, 0);
}

/* Size 2 -> 4 -> 1 under load: no failed request; worker.1 is never
 * restarted; at the end the pool is worker.1 alone and the others are
 * gone. */
static void
test_resize_under_load(void **state)
{
	char *body = conf_for(M_POOL, 2);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
	assert_non_null(tree);
	json_int_t first = arb_node_pid(arb_find(tree, "pool/worker.1"));
	json_decref(tree);
	g_lg = lg_start(a, NCLIENTS);
	assert_true(lg_wait(g_lg, 0, WARM_REPLIES, ARB_EVENT_MS));
	assert_int_equal(resize(a, 4), first);
	tree = arb_status(a, "pool");
	json_int_t grown[4];
	assert_int_equal(arb_worker_pids(tree, grown, 4), 4);
	json_decref(tree);
	assert_true(lg_wait(g_lg, lg_now_us(), WARM_REPLIES, ARB_EVENT_MS));
	assert_int_equal(resize(a, 1), first);
	assert_true(lg_wait(g_lg, lg_now_us(), WARM_REPLIES, ARB_EVENT_MS));
	lg_stop(g_lg);
	assert_all_served(g_lg, "resize 2 -> 4 -> 1");
	lg_free(g_lg);
	g_lg = NULL;

	tree = arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS);
	assert_non_null(tree);
	assert_int_equal(arb_node_pid(arb_find(tree, "pool/worker.1")), first);
	json_decref(tree);
	for (size_t i = 0; i < 4; i++)
		if (grown[i] != first && !proc_wait_gone((pid_t)grown[i],
		    ARB_EVENT_MS))
			fail_msg("surplus worker %lld still runs",
			    (long long)grown[i]);
	assert_int_equal(arb_stop(a), 0);
}

/* Names in sess (16 bytes) a new session whose first request, command,
 * pool/worker.2 served: new sessions spread over a pool of two. */
static void
session_on_worker2(struct arb *a, const char *command, char *sess)
{
	for (int i = 0; i < 8; i++) {
		snprintf(sess, 16, "s%d", i);
		json_t *r = cl_exec_ok(a, command, NULL, sess);
		bool there = strcmp(cl_reply_worker(r), "pool/worker.2") == 0;
		json_decref(r);
		if (there)
			return;
	}
	fail_msg("no new session went to pool/worker.2");
}

/* A pool shrunk by a reload retires its last worker once its request is
 * done; a request of that worker's session waiting for it (strict) then
 * goes to the worker that stays, at once, told its session was reset. */
static void
test_shrink_moves_strict_waiter(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_POOL, 2, pids);
	char sess[16];
	session_on_worker2(a, "echo", sess);
	struct cl_conn *busy = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1500), sess, "busy", 1);
	struct cl_conn *waiter = cl_send_held(a, 2, "echo",
	    NULL, sess, "waiting", 1);

	json_decref(reload_to(a, M_POOL, 1));
	json_t *r = cl_recv_ok(waiter, ARB_REPLY_MS,
	    "the waiting request failed");
	assert_string_equal(cl_reply_worker(r), "pool/worker.1");
	assert_true(cl_reply_reset(r));
	json_decref(r);
	r = cl_recv(busy, ARB_REPLY_MS);	/* the retiring worker's own */
	assert_true(r != NULL && arb_reply_ok(r));
	json_decref(r);
	cl_close(busy);
	cl_close(waiter);
	assert_int_equal(arb_stop(a), 0);
}

/* A worker leaving a shrunk pool is not started again: start and restart
 * on it while it stops answer not_found, and no new process takes its
 * name before it leaves the tree. This one is deaf to its shutdown
 * frame and ignores SIGTERM, so it stops only at the SIGKILL after
 * worker.shutdown_timeout_ms; until then it is still in the tree. */
static void
test_leaving_worker_not_started(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_POOL, 2, pids);
	char sess[16];
	session_on_worker2(a, "ignore_term", sess);
	json_t *r = cl_exec_ok(a, "deafen", NULL, sess);
	assert_string_equal(cl_reply_worker(r), "pool/worker.2");
	json_decref(r);

	json_decref(reload_to(a, M_POOL, 1));
	json_t *node = arb_wait_node(a, "pool/worker.2", "stopping", 0,
	    ARB_EVENT_MS);
	assert_non_null(node);
	json_decref(node);
	static const char *const ops[] = { "start", "restart" };
	for (size_t i = 0; i < 2; i++)
		json_decref(arb_call_err(a, json_pack("{s:s, s:s}", "op", ops[i],
		    "name", "pool/worker.2"), "not_found"));
	struct want_pool w = { 1 };
	json_t *tree = arb_wait_for(a, pool_is, &w, ARB_EVENT_MS,
	    "worker.2 gone from the pool");
	assert_non_null(tree);
	json_decref(tree);
	assert_true(proc_wait_gone((pid_t)pids[1], ARB_EVENT_MS));
	/* no process but the first ever took the name */
	assert_int_equal(arb_log_count_lines(a, "pool/worker.2", "ready (pid",
	    NULL), 1);
	assert_int_equal(arb_stop(a), 0);
}

/* A pool shrunk while its surplus workers are busy, then grown back
 * before they have finished: once they are gone, workers of their names
 * come back, and the pool reaches its size (health healthy 2/2). */
static void
test_grow_back_while_leaving(void **state)
{
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_POOL, 2, pids);
	struct cl_conn *c1 = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1500), NULL, "busy", 1);
	struct cl_conn *c2 = cl_send_held(a, 2, "sleep",
	    json_pack("{s:i}", "ms", 1500), NULL, "busy", 2);
	json_decref(reload_to(a, M_POOL, 1));
	json_t *r = reload_to(a, M_POOL, 2);
	assert_true(changed_has(r, "pool.size"));
	json_decref(r);
	json_decref(cl_recv(c1, ARB_EVENT_MS));
	json_decref(cl_recv(c2, ARB_EVENT_MS));
	cl_close(c1);
	cl_close(c2);
	struct want_pool w = { 2 };
	json_t *tree = arb_wait_for(a, pool_is, &w, ARB_EVENT_MS,
	    "pool/worker.2 back");
	assert_non_null(tree);
	json_decref(tree);
	json_t *h = arb_op_ok(a, "health");
	assert_string_equal(arb_node_str(h, "health"), "healthy");
	assert_int_equal(arb_node_int(h, "ready"), 2);
	assert_int_equal(arb_node_int(h, "expected"), 2);
	json_decref(h);
	assert_true(proc_wait_gone((pid_t)pids[1], ARB_EVENT_MS));
	assert_int_equal(arb_stop(a), 0);
}

#define CTL_OUT	4096

/* Between the two reloads' end and worker.2's reply, worker.2 is still
 * leaving (busy, wanted down, replaced once gone) though pool.size names
 * it again: health does not count it, so it reads 1/2, and the status
 * view's pool line must read the same 1/2, not count worker.2 by its
 * name. The held requests (long enough for the checks on a loaded
 * machine) end by killing their workers. */
static void
test_grow_back_status_as_health(void **state)
{
	static char out[CTL_OUT];
	json_int_t pids[POOL_SIZE];
	struct arb *a = start_mode(M_POOL, 2, pids);
	struct cl_conn *c1 = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 60000), NULL, "busy", 1);
	struct cl_conn *c2 = cl_send_held(a, 2, "sleep",
	    json_pack("{s:i}", "ms", 60000), NULL, "busy", 2);
	json_decref(reload_to(a, M_POOL, 1));
	json_decref(reload_to(a, M_POOL, 2));
	assert_int_equal(arb_ctl(a, out, CTL_OUT, "health", NULL), 1);
	assert_string_equal(out, "degraded 1/2\n");
	assert_int_equal(arb_ctl(a, out, CTL_OUT, "status", NULL), 0);
	if (strstr(out, "\n└─ pool  running  one_for_one  1/2 ready  busy 2  ")
	    == NULL)
		fail_msg("the pool line does not read 1/2 ready:\n%s", out);
	kill((pid_t)pids[0], SIGKILL);
	kill((pid_t)pids[1], SIGKILL);
	json_decref(cl_recv(c1, ARB_EVENT_MS));
	json_decref(cl_recv(c2, ARB_EVENT_MS));
	cl_close(c1);
	cl_close(c2);
	struct want_pool w = { 2 };
	json_t *tree = arb_wait_for(a, pool_is, &w, ARB_EVENT_MS,
	    "a pool of 2 again");
	assert_non_null(tree);
	json_decref(tree);
	assert_int_equal(arb_stop(a), 0);
}

/* ---- a waiting request moved to a new subtree ---- */

#define MOVED_CHECKOUT_MS	6000	/* pool.checkout_timeout_ms */
#define MOVED_AFTER_MS		3000	/* how long it waits before the move */

/* A pool of one (mode pool) or mode single, every request waiting up to
 * MOVED_CHECKOUT_MS; stuck: its workers never answer their init ping, so
 * the requests moved to it wait there until their deadline (and another
 * worker.max_frame_bytes: a pool to a pool is a new subtree too). */
static char *
conf_moved(enum mode m, bool stuck)
{
	return xasprintf(
	    "bridge = { pooling_enabled = %s; adapter = \"bridge_mock\"; };\n"
	    "worker = { init_timeout_ms = 60000; shutdown_timeout_ms = 1000;"
	    " max_frame_bytes = %d;"
	    " env = { MOCK_WORKER_NO_INIT = \"%s\"; }; };\n"
	    "pool = { size = 1; max_overflow = 0; checkout_timeout_ms = %d; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n",
	    m == M_POOL ? "true" : "false", stuck ? 1 << 20 : 1 << 24,
	    stuck ? "1" : "0",
	    MOVED_CHECKOUT_MS);
}

/* The next reply on c, which must be the pool_timeout of id; how long
 * after since (arb_now_ms) it came. */
static long long
expect_pool_timeout(struct cl_conn *c, json_int_t id, long long since)
{
	json_t *r = cl_recv(c, 3 * MOVED_CHECKOUT_MS);
	char *s = cl_describe(r);
	if (r == NULL || cl_reply_id(r) != id || arb_reply_ok(r) ||
	    strcmp(arb_reply_code(r), "pool_timeout") != 0)
		fail_msg("expected pool_timeout for request %lld: %s",
		    (long long)id, s);
	free(s);
	json_decref(r);
	return arb_now_ms() - since;
}

/* A request waiting for the one busy worker of a pool is moved to the
 * subtree of mode to by a reload, where no worker becomes ready: it gets
 * pool_timeout at the deadline it got when it began to wait, not
 * checkout_timeout_ms after the move, and before a request that came to
 * the new subtree after the move. */
static void
moved_waiter_keeps_deadline(enum mode to)
{
	char *body = conf_moved(M_POOL, false);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	struct cl_conn *c = cl_open(a);
	json_t *reqs = json_pack("[o,o]",
	    cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 30000), NULL, 0),
	    cl_exec_req(2, "echo", NULL, NULL, 0));
	long long sent = arb_now_ms();
	cl_send_batch(c, reqs);
	json_decref(reqs);
	assert_true(cl_wait_stat(a, "waiting", 1, 1, ARB_EVENT_MS));
	arb_sleep_ms((int)(sent + MOVED_AFTER_MS - arb_now_ms()));
	body = conf_moved(to, true);
	write_conf(a, body);
	free(body);
	json_t *r = arb_op_ok(a, "reload");
	long long moved = arb_now_ms();
	assert_true(moved - sent < MOVED_CHECKOUT_MS);	/* else proves nothing */
	json_decref(r);
	json_t *later = cl_exec_req(3, "echo", NULL, NULL, 0);
	cl_send(c, later);
	json_decref(later);
	long long waited = expect_pool_timeout(c, 2, sent);
	if (waited >= MOVED_CHECKOUT_MS + (moved - sent) - 500)
		fail_msg("the moved request waited %lld ms: its wait started "
		    "over at the move (%lld ms after it came)", waited,
		    moved - sent);
	assert_true(waited >= MOVED_CHECKOUT_MS - 100);
	assert_true(expect_pool_timeout(c, 3, moved) >= MOVED_CHECKOUT_MS - 100);
	cl_close(c);
	assert_int_equal(arb_stop(a), 0);
}

/* A waiting request moved to a new subtree keeps its own timeout_ms
 * there: a sleep longer than it fails with timeout on the new worker,
 * while the one the old worker held still finishes ok. */
static void
test_moved_waiter_keeps_timeout(void **state)
{
	char *body = conf_moved(M_POOL, false);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	struct cl_conn *c = cl_open(a);
	json_t *reqs = json_pack("[o,o]",
	    cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 2000), NULL, 0),
	    cl_exec_req(2, "sleep", json_pack("{s:i}", "ms", 5000), NULL, 1000));
	cl_send_batch(c, reqs);
	json_decref(reqs);
	assert_true(cl_wait_stat(a, "waiting", 1, 1, ARB_EVENT_MS));
	body = conf_moved(M_SINGLE, false);
	write_conf(a, body);
	free(body);
	json_decref(arb_op_ok(a, "reload"));
	for (int k = 0; k < 2; k++) {
		json_t *r = cl_recv(c, ARB_EVENT_MS);
		char *s = cl_describe(r);
		json_int_t id = cl_reply_id(r);
		if (id == 1 ? !arb_reply_ok(r) : id != 2 || arb_reply_ok(r) ||
		    strcmp(arb_reply_code(r), "timeout") != 0)
			fail_msg("expected request 1 ok, request 2 timeout "
			    "(moved with its timeout_ms): %s", s);
		free(s);
		json_decref(r);
	}
	cl_close(c);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_moved_waiter_keeps_deadline_single(void **state)
{
	moved_waiter_keeps_deadline(M_SINGLE);
}

static void
test_moved_waiter_keeps_deadline_pool(void **state)
{
	moved_waiter_keeps_deadline(M_POOL);
}

/* ---- settings read by running workers ---- */

/* A single-mode config with worker.health_interval_ms = interval_ms. */
static char *
conf_health(int interval_ms)
{
	return xasprintf(
	    "bridge = { adapter = \"bridge_mock\"; };\n"
	    "worker = { restart_delay_ms = 0; health_interval_ms = %d;"
	    " health_timeout_ms = 300; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n", interval_ms);
}

/* Health pings turned on by a reload reach the worker already running:
 * one that no longer answers (deafen) is then killed and replaced. */
static void
test_reload_turns_on_health_pings(void **state)
{
	char *body = conf_health(0);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_int_t pid = arb_wait_ready_pid(a, "bridge/worker", 0);
	json_decref(cl_exec_ok(a, "deafen", NULL, NULL));
	body = conf_health(100);
	write_conf(a, body);
	free(body);
	json_t *r = arb_op_ok(a, "reload");
	assert_true(changed_has(r, "worker.health_interval_ms"));
	json_decref(r);
	json_t *node = arb_wait_node(a, "bridge/worker", "ready", pid,
	    ARB_EVENT_MS);
	assert_non_null(node);	/* replaced */
	json_decref(node);
	assert_true(arb_log_has_line(a, "bridge/worker", "killing",
	    "ping not answered", NULL));
	assert_int_equal(arb_stop(a), 0);
}

/* A config with worker.max_requests = n, in mode single or a pool of
 * one; a request waits 3 s for a worker at most. */
static char *
conf_max_requests(bool pool, int n)
{
	return xasprintf(
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = %s; };\n"
	    "worker = { restart_delay_ms = 0; max_requests = %d; };\n"
	    "pool = { size = 1; max_overflow = 0; checkout_timeout_ms = 3000; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n",
	    pool ? "true" : "false", n);
}

/* A reload that lowers worker.max_requests below what the idle single-mode
 * worker has already served: nothing more may be sent to it, and with
 * nothing in flight no reply would ever recycle it, so it is recycled at
 * once and the next request goes to its successor (it waited for a worker
 * that never came, and failed pool_timeout). */
static void
test_reload_lowers_max_requests_single(void **state)
{
	char *body = conf_max_requests(false, 0);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_int_t pid = arb_wait_ready_pid(a, "bridge/worker", 0);
	for (int i = 0; i < 3; i++)
		json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	body = conf_max_requests(false, 2);
	write_conf(a, body);
	free(body);
	json_t *r = arb_op_ok(a, "reload");
	assert_true(changed_has(r, "worker.max_requests"));
	json_decref(r);
	r = cl_exec(a, "echo", NULL, NULL);
	if (r == NULL || !arb_reply_ok(r))
		fail_msg("an echo after the reload: %s", r ? cl_describe(r) :
		    "no reply");
	json_decref(r);
	json_t *node = arb_status(a, "bridge/worker");
	assert_non_null(node);
	assert_true(arb_node_pid(node) != pid);
	assert_int_equal(arb_node_int(json_object_get(node, "stats"),
	    "requests_handled"), 1);
	json_decref(node);
	assert_int_equal(arb_stop(a), 0);
}

/* The same in a pool: its idle worker, already past the lower
 * worker.max_requests, is recycled at the reload, not sent one request
 * more before it is. */
static void
test_reload_lowers_max_requests_pool(void **state)
{
	char *body = conf_max_requests(true, 0);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	json_int_t pid = cl_worker_pid(a, "pool/worker.1");
	for (int i = 0; i < 3; i++)
		json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	body = conf_max_requests(true, 2);
	write_conf(a, body);
	free(body);
	json_t *r = arb_op_ok(a, "reload");
	assert_true(changed_has(r, "worker.max_requests"));
	json_decref(r);
	r = cl_exec_ok(a, "ping", NULL, NULL);
	json_int_t served = json_integer_value(json_object_get(
	    json_object_get(r, "result"), "pid"));
	json_decref(r);
	if (served == pid)
		fail_msg("pid %lld, past max_requests, served a request after "
		    "the reload", (long long)pid);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	assert_int_equal(arb_stop(a), 0);
}

/* A pool of 1 with max_overflow = n, whose overflow workers stop after
 * idle_ms idle. */
static char *
conf_overflow(int n, int idle_ms)
{
	return xasprintf(
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "pool = { size = 1; max_overflow = %d; overflow_idle_ms = %d; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n", n, idle_ms);
}

/* A reload that lowers pool.max_overflow retires the overflow workers
 * beyond it, as a smaller pool.size does the surplus ones: an idle one at
 * once, a busy one after its reply (which is ok), not when (if ever) they
 * have been idle overflow_idle_ms. */
static void
test_reload_lowers_max_overflow(void **state)
{
	char *body = conf_overflow(2, 600000);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	/* worker.1 busy: an echo starts overflow.1, which is then held busy
	 * too, and the next echo starts overflow.2. */
	struct cl_conn *held1 = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 3000), NULL, "busy", 1);
	json_t *r = cl_exec_ok(a, "echo", NULL, NULL);
	assert_string_equal(cl_reply_worker(r), "pool/overflow.1");
	json_decref(r);
	struct cl_conn *held2 = cl_send_held(a, 2, "sleep",
	    json_pack("{s:i}", "ms", 3000), NULL, "busy", 2);
	r = cl_exec_ok(a, "echo", NULL, NULL);
	assert_string_equal(cl_reply_worker(r), "pool/overflow.2");
	json_decref(r);
	json_int_t pid1 = cl_worker_pid(a, "pool/overflow.1");
	json_int_t pid2 = cl_worker_pid(a, "pool/overflow.2");
	assert_true(pid1 > 0 && pid2 > 0);
	body = conf_overflow(0, 600000);
	write_conf(a, body);
	free(body);
	r = arb_op_ok(a, "reload");
	assert_true(changed_has(r, "pool.max_overflow"));
	json_decref(r);
	json_decref(cl_recv_ok(held1, ARB_REPLY_MS, "worker.1's sleep"));
	json_decref(cl_recv_ok(held2, ARB_REPLY_MS, "overflow.1's sleep"));
	struct want_pool w = { 1 };
	json_t *tree = arb_wait_for(a, pool_is, &w, ARB_EVENT_MS,
	    "the pool without its overflow workers");
	assert_non_null(tree);
	json_decref(tree);
	assert_true(proc_wait_gone((pid_t)pid1, ARB_EVENT_MS));
	assert_true(proc_wait_gone((pid_t)pid2, ARB_EVENT_MS));
	assert_int_equal(cl_stat(a, "overflow"), 0);
	cl_close(held1);
	cl_close(held2);
	assert_int_equal(arb_stop(a), 0);
}

/* An overflow worker already idle when a reload lowers
 * pool.overflow_idle_ms takes the new value: lowered from 60 s to 200 ms,
 * it is stopped at once (it has been idle longer), not at the end of the
 * 60 s its countdown began with. */
static void
test_reload_lowers_overflow_idle(void **state)
{
	char *body = conf_overflow(1, 60000);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	struct cl_conn *held = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 3000), NULL, "busy", 1);
	json_t *r = cl_exec_ok(a, "echo", NULL, NULL);
	assert_string_equal(cl_reply_worker(r), "pool/overflow.1");
	json_decref(r);
	json_int_t pid = cl_worker_pid(a, "pool/overflow.1");
	assert_true(pid > 0);
	json_decref(cl_recv_ok(held, ARB_REPLY_MS, "worker.1's sleep"));
	cl_close(held);
	body = conf_overflow(1, 200);
	write_conf(a, body);
	free(body);
	r = arb_op_ok(a, "reload");
	assert_true(changed_has(r, "pool.overflow_idle_ms"));
	json_decref(r);
	struct want_pool w = { 1 };
	json_t *tree = arb_wait_for(a, pool_is, &w, ARB_EVENT_MS,
	    "the pool without its overflow worker");
	assert_non_null(tree);
	json_decref(tree);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	assert_true(arb_log_has_line(a, "overflow.1", "idle for 200 ms",
	    NULL));
	assert_int_equal(cl_stat(a, "overflow"), 0);
	assert_int_equal(arb_stop(a), 0);
}

/* A single-mode config with worker.max_frame_bytes = bytes. */
static char *
conf_frame(long bytes)
{
	return xasprintf(
	    "bridge = { adapter = \"bridge_mock\"; };\n"
	    "worker = { restart_delay_ms = 0; max_frame_bytes = %ld; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n", bytes);
}

/* args {"x": "aaa..."} of about n bytes. New reference. */
static json_t *
padded_args(size_t n)
{
	char *pad = xmalloc(n + 1);
	memset(pad, 'a', n);
	pad[n] = '\0';
	json_t *args = json_pack("{s:s}", "x", pad);
	free(pad);
	return args;
}

/* Reloads to worker.max_frame_bytes = bytes (changed names it). */
static void
reload_frame(struct arb *a, long bytes)
{
	char *body = conf_frame(bytes);
	write_conf(a, body);
	free(body);
	json_t *r = arb_op_ok(a, "reload");
	assert_true(changed_has(r, "worker.max_frame_bytes"));
	json_decref(r);
}

/* A worker is told worker.max_frame_bytes when it starts and holds its
 * frames to it. A reload that raises it: a request between the old and
 * the new bound is served, not sent to a worker that would take it for a
 * protocol failure. One that lowers it: a request accepted before, in
 * flight across the reload, still gets its reply of the old size. */
static void
test_reload_worker_frame_limit(void **state)
{
	char *body = conf_frame(4096);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	arb_await_node(a, "bridge/worker", "ready");
	reload_frame(a, 1 << 20);
	json_t *r = cl_exec(a, "echo", padded_args(10000), NULL);
	if (r == NULL || !arb_reply_ok(r))
		fail_msg("a 10 kB echo after the raise: %s", r ?
		    cl_describe(r) : "no reply");
	json_decref(r);

	struct cl_conn *c = cl_open(a);
	json_t *batch = json_pack("[o,o]",
	    cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 500), NULL, 0),
	    cl_exec_req(2, "echo", padded_args(10000), NULL, 0));
	cl_send_batch(c, batch);
	json_decref(batch);
	assert_true(cl_wait_stat(a, "busy", 1, 1, ARB_EVENT_MS));
	reload_frame(a, 4096);
	for (int k = 0; k < 2; k++) {
		r = cl_recv_ok(c, ARB_REPLY_MS,
		    "in flight across the lowering");
		json_decref(r);
	}
	cl_close(c);
	assert_int_equal(arb_stop(a), 0);
}

/* A pool of one with the given affinity and a session ttl of 300 ms, its
 * workers' frames bounded by frame bytes. */
static char *
conf_affinity(const char *affinity, long frame)
{
	return xasprintf(
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "pool = { size = 1; max_overflow = 0; affinity = \"%s\";"
	    " session_ttl_ms = 300; };\n"
	    "worker = { max_frame_bytes = %ld; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n", affinity, frame);
}

/* Rewrites the config as conf_affinity and reloads; the reply must name
 * pool.affinity among the changed keys. */
static void
reload_affinity(struct arb *a, const char *affinity, long frame)
{
	char *body = conf_affinity(affinity, frame);
	write_conf(a, body);
	free(body);
	json_t *r = arb_op_ok(a, "reload");
	assert_true(changed_has(r, "pool.affinity"));
	json_decref(r);
}

/* A session's request sent under strict affinity and answered after a
 * reload to prefer: the session is idle once it is answered and ends
 * after its ttl, as any other. */
static void
test_affinity_change_keeps_ttl(void **state)
{
	char *body = conf_affinity("strict", 1 << 20);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1000), "s1", "busy", 1);
	reload_affinity(a, "prefer", 1 << 20);
	json_t *r = cl_recv(c, ARB_REPLY_MS);
	assert_true(r != NULL && arb_reply_ok(r));
	json_decref(r);
	cl_close(c);
	assert_true(cl_wait_stat(a, "stale_sessions_cleaned", 1, 1,
	    ARB_EVENT_MS));
	assert_int_equal(cl_stat(a, "sessions"), 0);
	assert_int_equal(arb_stop(a), 0);
}

/* The same reload to none: nothing is bound under none, so the session
 * ends at the reload, as by end_session (not counted as expired), and
 * its request in flight is still answered, without making it anew. */
static void
test_affinity_none_ends_session_in_flight(void **state)
{
	char *body = conf_affinity("strict", 1 << 20);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1000), "s1", "busy", 1);
	reload_affinity(a, "none", 1 << 20);
	assert_int_equal(cl_stat(a, "sessions"), 0);
	json_t *r = cl_recv(c, ARB_REPLY_MS);
	assert_true(r != NULL && arb_reply_ok(r));
	assert_false(cl_reply_reset(r));
	json_decref(r);
	cl_close(c);
	assert_int_equal(cl_stat(a, "sessions"), 0);
	assert_int_equal(cl_stat(a, "stale_sessions_cleaned"), 0);
	assert_int_equal(arb_stop(a), 0);
}

/* A reload to none that also builds a new subtree (a new
 * worker.max_frame_bytes) hands it no session: the new pool keeps none,
 * so none lingers in `sessions` until its ttl, nor counts as expired. */
static void
test_rebuild_to_none_keeps_no_session(void **state)
{
	char *body = conf_affinity("strict", 1 << 20);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	json_decref(cl_exec_ok(a, "echo", NULL, "s1"));
	assert_int_equal(cl_stat(a, "sessions"), 1);
	reload_affinity(a, "none", 1 << 21);
	assert_int_equal(cl_stat(a, "sessions"), 0);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	json_t *r = cl_exec_ok(a, "echo", NULL, "s1");
	assert_false(cl_reply_reset(r));
	json_decref(r);
	assert_int_equal(cl_stat(a, "sessions"), 0);
	assert_int_equal(cl_stat(a, "stale_sessions_cleaned"), 0);
	assert_int_equal(arb_stop(a), 0);
}

/* ---- what a reload reports and applies at once ---- */

/* The reload reply's changed keys are exactly want (in any order). */
static void
assert_changed(const json_t *r, const char *const *want)
{
	size_t n = 0;
	char *s = cl_describe(r);
	for (; want[n] != NULL; n++)
		if (!changed_has(r, want[n]))
			fail_msg("reload: %s not among the changed keys: %s",
			    want[n], s);
	if (json_array_size(json_object_get(r, "changed")) != n)
		fail_msg("reload: expected %zu changed keys: %s", n, s);
	free(s);
}

/* Writes body as arbor.conf, reloads, and checks the changed keys. */
static void
reload_expect(struct arb *a, const char *body, const char *const *want)
{
	write_conf(a, body);
	json_t *r = arb_op_ok(a, "reload");
	assert_changed(r, want);
	json_decref(r);
}

#define SINGLE_MOCK \
	"bridge = { adapter = \"bridge_mock\"; };\n" \
	"control = { socket = \"arbor.sock\"; };\n"

/* Nested keys and lists are named by their dotted key, and only the keys
 * that changed (an environment's overlay included); worker.env applies to
 * later workers, so the running one is kept. */
static void
test_reload_changed_keys(void **state)
{
	struct arb *a = arb_start(SINGLE_MOCK
	    "worker = { env = { A = \"1\"; }; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_int_t pid = arb_wait_ready_pid(a, "bridge/worker", 0);
	reload_expect(a, SINGLE_MOCK "worker = { env = { A = \"2\"; }; };\n"
	    "environments = { dev = { }; };\n",
	    (const char *const[]){ "worker.env", NULL });
	reload_expect(a, SINGLE_MOCK "worker = { env = { A = \"2\"; }; };\n"
	    "environments = { dev = { worker = { env = { B = \"3\"; };"
	    " max_inflight = 3; }; pool = { size = 5; }; }; };\n",
	    (const char *const[]){ "worker.env", "worker.max_inflight",
	    "pool.size", NULL });
	json_t *node = arb_status(a, "bridge/worker");
	assert_non_null(node);
	assert_int_equal(arb_node_pid(node), pid);
	json_decref(node);
	reload_expect(a, SINGLE_MOCK "worker = { env = { A = \"2\"; };"
	    " command = [ \"./w\", \"x\" ]; };\n"
	    "environments = { dev = { worker = { env = { B = \"3\"; };"
	    " max_inflight = 3; }; pool = { size = 5; }; }; };\n",
	    (const char *const[]){ "worker.command", NULL });
	json_decref(cl_exec_ok(a, "echo", json_pack("{s:i}", "x", 1), NULL));
	assert_int_equal(arb_stop(a), 0);
}

/* A reload that changes many keys logs them all, as its reply lists them
 * (the list is longer than a fixed buffer of a few hundred bytes). */
static void
test_reload_logs_every_changed_key(void **state)
{
	struct arb *a = arb_start(SINGLE_MOCK
	    "environments = { dev = { }; };\n", "dev", NULL);
	write_conf(a, "control = { socket = \"arbor.sock\"; };\n"
	    "supervisor = { max_restarts = 4; max_seconds = 6; };\n"
	    "bridge = { adapter = \"bridge_mock\"; max_restarts = 6;"
	    " max_seconds = 61; };\n"
	    "worker = { restart = \"transient\"; init_timeout_ms = 5001;"
	    " request_timeout_ms = 30001; health_interval_ms = 30001;"
	    " health_timeout_ms = 1001; shutdown_timeout_ms = 5001;"
	    " max_requests = 1000; max_errors = 11; restart_delay_ms = 101;"
	    " max_restart_delay_ms = 5001; max_inflight = 65; };\n"
	    "pool = { size = 3; max_overflow = 3; overflow_idle_ms = 10001;"
	    " strategy = \"lifo\"; lazy = true; checkout_timeout_ms = 5001;"
	    " max_waiting = 1025; affinity = \"prefer\";"
	    " session_ttl_ms = 3600001; max_restarts = 6; max_seconds = 61; };\n"
	    "environments = { dev = { }; };\n");
	json_t *r = arb_op_ok(a, "reload");
	json_t *changed = json_object_get(r, "changed");
	assert_true(json_array_size(changed) > 25);
	size_t i;
	json_t *k;
	json_array_foreach(changed, i, k)
		if (!arb_log_has_line(a, "reloaded", json_string_value(k), NULL))
			fail_msg("the reload's log line lacks %s",
			    json_string_value(k));
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* Crashes bridge/worker and waits for its successor to be ready. */
static void
restart_worker(struct arb *a)
{
	json_int_t pid = arb_wait_ready_pid(a, "bridge/worker", 0);
	json_decref(arb_call(a, json_pack("{s:s, s:s, s:{s:i}}", "op",
	    "execute", "command", "crash", "args", "code", 3)));
	arb_wait_ready_pid(a, "bridge/worker", pid);
}

/* The lines of the log after its first skip bytes (caller frees). */
static char *
log_after(struct arb *a, size_t skip)
{
	char *log = arb_log(a);
	char *tail = xstrdup(strlen(log) > skip ? log + skip : "");
	free(log);
	return tail;
}

static size_t
log_size(struct arb *a)
{
	char *log = arb_log(a);
	size_t n = strlen(log);
	free(log);
	return n;
}

/* log.level and log.format apply from the reload on. */
static void
test_reload_log_settings(void **state)
{
	struct arb *a = arb_start(SINGLE_MOCK
	    "worker = { restart_delay_ms = 0; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	reload_expect(a, SINGLE_MOCK "worker = { restart_delay_ms = 0; };\n"
	    "log = { level = \"debug\"; format = \"json\"; };\n"
	    "environments = { dev = { }; };\n",
	    (const char *const[]){ "log.level", "log.format", NULL });
	size_t mark = log_size(a);
	restart_worker(a);
	char *tail = log_after(a, mark);
	bool debug = false;
	for (char *line = strtok(tail, "\n"); line; line = strtok(NULL, "\n")) {
		json_t *j = json_loads(line, 0, NULL);
		if (j == NULL)
			fail_msg("a log line after the reload to json: %s", line);
		debug |= strcmp(arb_node_str(j, "level"), "debug") == 0;
		json_decref(j);
	}
	free(tail);
	assert_true(debug);

	reload_expect(a, SINGLE_MOCK "worker = { restart_delay_ms = 0; };\n"
	    "log = { level = \"warn\"; format = \"text\"; };\n"
	    "environments = { dev = { }; };\n",
	    (const char *const[]){ "log.level", "log.format", NULL });
	mark = log_size(a);
	restart_worker(a);
	tail = log_after(a, mark);
	assert_non_null(strstr(tail, " warn  bridge/worker: "));
	assert_null(strstr(tail, " info "));
	assert_null(strstr(tail, " debug "));
	assert_null(strchr(tail, '{'));
	free(tail);
	assert_int_equal(arb_stop(a), 0);
}

#define OTHER_SOCK_MOCK \
	"bridge = { adapter = \"bridge_mock\"; };\n" \
	"control = { socket = \"other.sock\"; };\n" \
	"environments = { dev = { }; };\n"

/* Lines warning that control.socket applies only at a restart. */
static size_t
socket_warnings(const struct arb *a)
{
	return arb_log_count_lines(a, "warn", "control.socket", NULL);
}

/* control.socket changes only at a restart (README): the running socket
 * keeps answering, none is made at the new path, and the one in use is
 * removed at exit. The warning compares the file with the socket in use,
 * not with the file before: a second reload of the new path warns again
 * (it is still not in use), one back to the path in use does not. */
static void
test_reload_control_socket(void **state)
{
	struct arb *a = arb_start(SINGLE_MOCK
	    "environments = { dev = { }; };\n", "dev", NULL);
	reload_expect(a, OTHER_SOCK_MOCK,
	    (const char *const[]){ "control.socket", NULL });
	assert_int_equal(socket_warnings(a), 1);
	reload_expect(a, OTHER_SOCK_MOCK, (const char *const[]){ NULL });
	assert_int_equal(socket_warnings(a), 2);
	reload_expect(a, SINGLE_MOCK "environments = { dev = { }; };\n",
	    (const char *const[]){ "control.socket", NULL });
	assert_int_equal(socket_warnings(a), 2);
	reload_expect(a, OTHER_SOCK_MOCK,
	    (const char *const[]){ "control.socket", NULL });
	assert_int_equal(socket_warnings(a), 3);
	json_decref(arb_op_ok(a, "ping"));
	json_decref(cl_exec_ok(a, "echo", json_pack("{s:i}", "x", 1), NULL));
	char *other = xasprintf("%s/other.sock", arb_dir(a));
	assert_int_equal(access(other, F_OK), -1);
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 0);
	assert_int_equal(access(arb_socket_path(a), F_OK), -1);
	assert_int_equal(access(other, F_OK), -1);
	free(other);
	assert_int_equal(arb_stop(a), 0);
}

/* ---- every key ---- */

/* The running config of test_reload_each_key: a pool of 2 (bridge_mock);
 * a row's setting goes into the dev environment's overlay, on line 4. */
#define EACH_BASE \
	"bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n" \
	"pool = { size = 2; max_overflow = 1; };\n" \
	"control = { socket = \"arbor.sock\"; };\n"
#define EACH_LINE	"4"

/* One reload: the overlay group and setting, and the keys it changes
 * from EACH_BASE (none: the same value written another way). */
struct key_row {
	const char	*group, *setting;
	const char	*want[3];
};

static const struct key_row key_rows[] = {
	{ "supervisor", "max_restarts = 4;", { "supervisor.max_restarts" } },
	{ "supervisor", "max_seconds = 6;", { "supervisor.max_seconds" } },
	{ "bridge", "enabled = false;", { "mode", "bridge.enabled" } },
	{ "bridge", "pooling_enabled = false;",
	    { "mode", "bridge.pooling_enabled" } },
	{ "bridge", "adapter = \"mock\";", { "adapter", "bridge.adapter" } },
	{ "bridge", "max_restarts = 6;", { "bridge.max_restarts" } },
	{ "bridge", "max_seconds = 61;", { "bridge.max_seconds" } },
	{ "worker", "command = [ \"./w\", \"x\" ];", { "worker.command" } },
	{ "worker", "env = { A = \"1\"; };", { "worker.env" } },
	{ "worker", "restart = \"transient\";", { "worker.restart" } },
	{ "worker", "init_timeout_ms = 5001;", { "worker.init_timeout_ms" } },
	{ "worker", "request_timeout_ms = 30001;",
	    { "worker.request_timeout_ms" } },
	{ "worker", "health_interval_ms = 30001;",
	    { "worker.health_interval_ms" } },
	{ "worker", "health_timeout_ms = 1001;",
	    { "worker.health_timeout_ms" } },
	{ "worker", "shutdown_timeout_ms = 5001;",
	    { "worker.shutdown_timeout_ms" } },
	{ "worker", "max_requests = 7;", { "worker.max_requests" } },
	{ "worker", "max_errors = 11;", { "worker.max_errors" } },
	{ "worker", "max_frame_bytes = 16777217;",
	    { "worker.max_frame_bytes" } },
	{ "worker", "restart_delay_ms = 101;", { "worker.restart_delay_ms" } },
	{ "worker", "max_restart_delay_ms = 5001;",
	    { "worker.max_restart_delay_ms" } },
	{ "worker", "max_inflight = 65;", { "worker.max_inflight" } },
	{ "worker", "sched_policy = \"batch\";", { "worker.sched_policy" } },
	{ "pool", "size = 3;", { "pool.size" } },
	{ "pool", "max_overflow = 2;", { "pool.max_overflow" } },
	{ "pool", "overflow_idle_ms = 10001;", { "pool.overflow_idle_ms" } },
	{ "pool", "strategy = \"lifo\";", { "pool.strategy" } },
	{ "pool", "lazy = true;", { "pool.lazy" } },
	{ "pool", "checkout_timeout_ms = 5001;",
	    { "pool.checkout_timeout_ms" } },
	{ "pool", "max_waiting = 1025;", { "pool.max_waiting" } },
	{ "pool", "affinity = \"prefer\";", { "pool.affinity" } },
	{ "pool", "session_ttl_ms = 3600001;", { "pool.session_ttl_ms" } },
	{ "pool", "max_restarts = 6;", { "pool.max_restarts" } },
	{ "pool", "max_seconds = 61;", { "pool.max_seconds" } },
	{ "control", "socket = \"other.sock\";", { "control.socket" } },
	{ "control", "mode = \"0640\";", { "control.mode" } },
	{ "control", "max_clients = 1025;", { "control.max_clients" } },
	{ "control", "max_frame_bytes = 1048577;",
	    { "control.max_frame_bytes" } },
	{ "log", "level = \"debug\";", { "log.level" } },
	{ "log", "format = \"json\";", { "log.format" } },
	/* the running values, written another way */
	{ "supervisor", "max_restarts = 0x3; /* 3 */", { NULL } },
	{ "worker", "max_frame_bytes = 16777216L;", { NULL } },
	{ "worker", "max_requests = 0x0;", { NULL } },
	{ "worker", "sched_policy = \"inherit\";", { NULL } },
	{ "pool", "size = 0x2;", { NULL } },
	{ "pool", "strategy = \"fi\" \"fo\";", { NULL } },
	{ "bridge", "adapter = \"bridge_mock\"; enabled = true;", { NULL } },
	{ "control", "socket = \"./arbor.sock\"; mode = \"600\";", { NULL } },
	{ "worker", "env = { PYTHONUNBUFFERED = \"1\"; };", { NULL } },
	{ "worker", "command = ( \"python3\","
	    " \"../workers/python/bridge_worker.py\" );", { NULL } },
	{ "log", "level = \"info\"; format = \"text\";", { NULL } },
};

/* Invalid overlays: each names its key at EACH_LINE; pool.size = 3 in
 * some shows that nothing of the file is applied. */
static const struct key_row bad_rows[] = {
	{ "supervisor", "max_restarts = 1000001;",
	    { "supervisor.max_restarts" } },
	{ "bridge", "enabled = 1;", { "bridge.enabled" } },
	{ "worker", "command = [ ];", { "worker.command" } },
	{ "worker", "env = { A = 1; };", { "worker.env.A" } },
	{ "worker", "request_timeout_ms = 4294967296;",
	    { "worker.request_timeout_ms" } },
	{ "worker", "max_frame_bytes = 255;", { "worker.max_frame_bytes" } },
	{ "worker", "sched_policy = \"fifo\";", { "worker.sched_policy" } },
	{ "pool", "size = 3; strategy = \"random\";", { "pool.strategy" } },
	{ "pool", "size = 3; lazy = \"yes\";", { "pool.lazy" } },
	{ "control", "mode = \"0800\";", { "control.mode" } },
	{ "control", "socket = \"\";", { "control.socket" } },
	{ "log", "level = \"trace\";", { "log.level" } },
};

/* EACH_BASE with row's setting in the dev overlay (row NULL: none). */
static char *
each_conf(const struct key_row *row)
{
	return xasprintf(EACH_BASE "environments = { dev = { %s%s%s%s }; };\n",
	    row ? row->group : "", row ? " = { " : "",
	    row ? row->setting : "", row ? " };" : "");
}

/* Every dotted key arbord knows, as `arbord -t` prints them. */
static void
check_rows_cover_keys(struct arb *a)
{
	static char out[16384];
	char *bin = arb_bin_path("arbord");
	const char *argv[] = { bin, "-t", "-c", arb_conf_path(a), "-e", "dev",
	    NULL };
	assert_int_equal(arb_run(argv, NULL, out, sizeof out, NULL, 0), 0);
	free(bin);
	size_t nkeys = 0;
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char *eq = strstr(line, " = ");
		if (eq == NULL || memchr(line, '.', (size_t)(eq - line)) == NULL)
			continue;	/* config, environment, mode, adapter */
		*eq = '\0';
		nkeys++;
		bool found = false;
		for (size_t i = 0; i < sizeof key_rows / sizeof key_rows[0]; i++)
			found |= key_rows[i].want[0] != NULL &&
			    strcmp(key_rows[i].want[1] ? key_rows[i].want[1] :
			    key_rows[i].want[0], line) == 0;
		if (!found)
			fail_msg("key %s: no row of key_rows changes it", line);
	}
	assert_true(nkeys > 30);
}

/* Reloads the file as it is: the reply's changed keys are want, and the
 * reload's log line names the same list. */
static void
reload_each(struct arb *a, const char *const *want)
{
	json_t *r = arb_op_ok(a, "reload");
	assert_changed(r, want);
	char *list = json_dumps(json_object_get(r, "changed"), JSON_COMPACT);
	char *line = xasprintf("reloaded: changed %s", list);
	json_t *msg = json_string(line);	/* as log.format json writes it */
	char *quoted = json_dumps(msg, JSON_ENCODE_ANY);
	if (!arb_log_has_line(a, line, NULL) &&
	    !arb_log_has_line(a, quoted, NULL))
		fail_msg("no log line \"%s\"", line);
	free(quoted);
	json_decref(msg);
	free(line);
	free(list);
	json_decref(r);
}

/* Counts the log's lines holding both words, waiting (bounded) until
 * there are more than before. */
static void
wait_more_lines(struct arb *a, const char *w1, const char *w2, size_t before)
{
	long long end = arb_now_ms() + ARB_EVENT_MS;
	while (arb_log_count_lines(a, w1, w2, NULL) <= before) {
		if (arb_now_ms() >= end)
			fail_msg("no new log line with \"%s\" and \"%s\"", w1, w2);
		arb_sleep_ms(25);
	}
}

/* An invalid overlay: the op answers config_error naming file:line and the
 * key, SIGHUP logs the same, and the file back as it was changes nothing
 * (no part of the invalid one was applied). */
static void
reload_bad(struct arb *a, const struct key_row *row)
{
	char *body = each_conf(row);
	write_conf(a, body);
	free(body);
	char *where = xasprintf("%s:" EACH_LINE ": environments.dev.%s:",
	    arb_conf_path(a), row->want[0]);
	json_t *r = arb_call_err(a, json_pack("{s:s}", "op", "reload"),
	    "config_error");
	const char *msg = cl_reply_message(r);
	if (msg == NULL || strstr(msg, where) == NULL)
		fail_msg("config_error should name %s: %s", where,
		    msg ? msg : "(no message)");
	json_decref(r);
	size_t before = arb_log_count_lines(a, where, "keeping", NULL);
	assert_int_equal(arb_kill(a, SIGHUP), 0);
	wait_more_lines(a, where, "keeping", before);
	free(where);
	body = each_conf(NULL);
	write_conf(a, body);
	free(body);
	reload_each(a, (const char *const[]){ NULL });
}

/* Each key of the config, changed alone (in the running environment's
 * overlay), is the one key a reload reports, in its reply and its log
 * line, and the file back as it was reports it again; the running values
 * written another way (hex, a suffix, a comment, a list for an array,
 * a relative path to the same file) report nothing. Invalid values are
 * refused whole. One arbord for every row. */
static void
test_reload_each_key(void **state)
{
	char *body = each_conf(NULL);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	check_rows_cover_keys(a);
	reload_each(a, (const char *const[]){ NULL });
	for (size_t i = 0; i < sizeof key_rows / sizeof key_rows[0]; i++) {
		body = each_conf(&key_rows[i]);
		write_conf(a, body);
		free(body);
		reload_each(a, key_rows[i].want);
		body = each_conf(NULL);
		write_conf(a, body);
		free(body);
		reload_each(a, key_rows[i].want);
	}
	for (size_t i = 0; i < sizeof bad_rows / sizeof bad_rows[0]; i++)
		reload_bad(a, &bad_rows[i]);
	json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	json_decref(cl_exec_ok(a, "echo", json_pack("{s:i}", "x", 1), NULL));
	assert_int_equal(arb_stop(a), 0);
}

/* A lazy pool of three, worker.3 stopped with stop (configured lazy, or
 * not). */
static char *
conf_lazy(bool lazy)
{
	return xasprintf(
	    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = 3; max_overflow = 0; lazy = %s; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n", lazy ? "true" : "false");
}

/* A reload to lazy = false starts the workers still waiting for demand,
 * as a pool started with it would have them (health healthy); one
 * stopped with stop stays down until start. Back to lazy = true leaves
 * the running workers up. */
static void
test_reload_lazy_to_eager(void **state)
{
	char *body = conf_lazy(true);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	arb_await_node(a, "pool/worker.1", "stopped");
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "stop",
	    "name", "pool/worker.3")));
	body = conf_lazy(false);
	reload_expect(a, body, (const char *const[]){ "pool.lazy", NULL });
	free(body);
	json_int_t p1 = arb_wait_ready_pid(a, "pool/worker.1", 0);
	json_int_t p2 = arb_wait_ready_pid(a, "pool/worker.2", 0);
	json_t *node = arb_status(a, "pool/worker.3");
	assert_non_null(node);
	assert_string_equal(arb_node_str(node, "state"), "stopped");
	json_decref(node);
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "start",
	    "name", "pool/worker.3")));
	json_t *tree = arb_wait_all_ready(a, "pool", 3, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	body = conf_lazy(true);
	reload_expect(a, body, (const char *const[]){ "pool.lazy", NULL });
	free(body);
	tree = arb_wait_all_ready(a, "pool", 3, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	assert_int_equal(arb_wait_ready_pid(a, "pool/worker.1", 0), p1);
	assert_int_equal(arb_wait_ready_pid(a, "pool/worker.2", 0), p2);
	assert_int_equal(arb_stop(a), 0);
}

/* A pool of three (worker.restart = type), or the single worker. */
static char *
conf_restart(bool pool, const char *type)
{
	return xasprintf(
	    "bridge = { pooling_enabled = %s; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = 3; max_overflow = 0; };\n"
	    "worker = { restart = \"%s\"; };\n"
	    "environments = { dev = { }; };\n"
	    "control = { socket = \"arbor.sock\"; };\n",
	    pool ? "true" : "false", type);
}

static void
op_on(struct arb *a, const char *op, const char *name)
{
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", op,
	    "name", name)));
}

/* Makes the next free worker exit with code. */
static void
exit_one(struct arb *a, int code)
{
	json_decref(cl_exec_err(a, "crash", json_pack("{s:i}", "code", code),
	    NULL, "worker_crashed"));
}

static const char *
state_of(struct arb *a, const char *name)
{
	static char st[32];
	json_t *node = arb_status(a, name);
	assert_non_null(node);
	snprintf(st, sizeof st, "%s", arb_node_str(node, "state"));
	json_decref(node);
	return st;
}

static void
reload_restart(struct arb *a, bool pool, const char *type)
{
	char *body = conf_restart(pool, type);
	reload_expect(a, body, (const char *const[]){ "worker.restart", NULL });
	free(body);
}

/* A reload to a restart type that would have restarted a worker the old
 * one left down starts it: temporary -> transient the one that crashed,
 * -> permanent the one that exited 0 too. One stopped with stop stays
 * down until start. */
static void
test_reload_restart_revives(void **state)
{
	char *body = conf_restart(true, "temporary");
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_t *tree = arb_wait_all_ready(a, "pool", 3, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	op_on(a, "stop", "pool/worker.2");
	op_on(a, "stop", "pool/worker.3");
	exit_one(a, 0);		/* worker.1, the one left */
	arb_await_node(a, "pool/worker.1", "stopped");
	op_on(a, "start", "pool/worker.2");
	arb_wait_ready_pid(a, "pool/worker.2", 0);
	exit_one(a, 3);
	arb_await_node(a, "pool/worker.2", "failed");
	const char *clean = "pool/worker.1", *crashed = "pool/worker.2";
	reload_restart(a, true, "transient");
	json_int_t p = arb_wait_ready_pid(a, crashed, 0);
	assert_string_equal(state_of(a, clean), "stopped");
	reload_restart(a, true, "permanent");
	arb_wait_ready_pid(a, clean, 0);
	assert_string_equal(state_of(a, "pool/worker.3"), "stopped");
	assert_int_equal(arb_wait_ready_pid(a, crashed, 0), p);
	assert_true(arb_log_contains(a, "worker.restart = permanent: starting"));
	op_on(a, "start", "pool/worker.3");
	tree = arb_wait_all_ready(a, "pool", 3, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	assert_int_equal(arb_stop(a), 0);
}

/* The same in single mode: a temporary worker that exited 0 is started
 * by a reload to permanent; a later exit restarts it. */
static void
test_reload_restart_revives_single(void **state)
{
	char *body = conf_restart(false, "temporary");
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_int_t p = arb_wait_ready_pid(a, "bridge/worker", 0);
	exit_one(a, 0);
	arb_await_node(a, "bridge/worker", "stopped");
	reload_restart(a, false, "permanent");
	json_int_t q = arb_wait_ready_pid(a, "bridge/worker", p);
	exit_one(a, 0);
	arb_wait_ready_pid(a, "bridge/worker", q);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_single_to_pool, teardown),
		cmocka_unit_test_teardown(test_pool_to_single, teardown),
		cmocka_unit_test_teardown(test_pool_to_disabled, teardown),
		cmocka_unit_test_teardown(test_disabled_to_pool, teardown),
		cmocka_unit_test_teardown(test_single_to_disabled, teardown),
		cmocka_unit_test_teardown(test_disabled_to_single, teardown),
		cmocka_unit_test_teardown(test_sighup_single_to_pool, teardown),
		cmocka_unit_test_teardown(test_queued_pool_to_single, teardown),
		cmocka_unit_test_teardown(test_disabled_keeps_accepted, teardown),
		cmocka_unit_test_teardown(test_disabled_old_worker_not_found,
		    teardown),
		cmocka_unit_test_teardown(test_disabled_old_pool_restarts_with_its_config,
		    teardown),
		cmocka_unit_test_teardown(test_disabled_old_worker_crash_keeps_waiting,
		    teardown),
		cmocka_unit_test_teardown(
		    test_disabled_old_bridge_failure_keeps_waiting, teardown),
		cmocka_unit_test_teardown(test_stats_survive_mode_switch,
		    teardown),
		cmocka_unit_test_teardown(test_disabled_counts_kept_sessions,
		    teardown),
		cmocka_unit_test_teardown(test_handed_on_session_expires_once,
		    teardown),
		cmocka_unit_test_teardown(test_reset_survives_disabled,
		    teardown),
		cmocka_unit_test_teardown(test_reset_survives_disabled_for_waiters,
		    teardown),
		cmocka_unit_test_teardown(test_reset_for_waiters_old_still_serving,
		    teardown),
		cmocka_unit_test_teardown(test_rebuild_tells_session_reset,
		    teardown),
		cmocka_unit_test_teardown(test_double_reload_keeps_accepted,
		    teardown),
		cmocka_unit_test_teardown(test_triple_reload_keeps_accepted,
		    teardown),
		cmocka_unit_test_teardown(test_shutdown_waits_for_old_subtrees,
		    teardown),
		cmocka_unit_test_teardown(test_disabled_and_back_keeps_accepted,
		    teardown),
		cmocka_unit_test_teardown(test_give_up_answers_old_subtree,
		    teardown),
		cmocka_unit_test_teardown(test_invalid_reload, teardown),
		cmocka_unit_test_teardown(test_reload_nul_byte, teardown),
		cmocka_unit_test_teardown(test_reload_include_stray_backslash,
		    teardown),
		cmocka_unit_test_teardown(test_reload_latin1_value, teardown),
		cmocka_unit_test_teardown(test_resize_under_load, teardown),
		cmocka_unit_test_teardown(test_shrink_moves_strict_waiter, teardown),
		cmocka_unit_test_teardown(test_leaving_worker_not_started, teardown),
		cmocka_unit_test_teardown(test_moved_waiter_keeps_deadline_single,
		    teardown),
		cmocka_unit_test_teardown(test_moved_waiter_keeps_deadline_pool,
		    teardown),
		cmocka_unit_test_teardown(test_moved_waiter_keeps_timeout,
		    teardown),
		cmocka_unit_test_teardown(test_grow_back_while_leaving, teardown),
		cmocka_unit_test_teardown(test_grow_back_status_as_health,
		    teardown),
		cmocka_unit_test_teardown(test_reload_turns_on_health_pings,
		    teardown),
		cmocka_unit_test_teardown(test_reload_lowers_max_requests_single,
		    teardown),
		cmocka_unit_test_teardown(test_reload_lowers_max_requests_pool,
		    teardown),
		cmocka_unit_test_teardown(test_reload_lowers_overflow_idle,
		    teardown),
		cmocka_unit_test_teardown(test_reload_lowers_max_overflow,
		    teardown),
		cmocka_unit_test_teardown(test_reload_worker_frame_limit,
		    teardown),
		cmocka_unit_test_teardown(test_reload_changed_keys, teardown),
		cmocka_unit_test_teardown(test_reload_log_settings, teardown),
		cmocka_unit_test_teardown(test_reload_logs_every_changed_key,
		    teardown),
		cmocka_unit_test_teardown(test_reload_control_socket, teardown),
		cmocka_unit_test_teardown(test_reload_each_key, teardown),
		cmocka_unit_test_teardown(test_reload_lazy_to_eager, teardown),
		cmocka_unit_test_teardown(test_reload_restart_revives, teardown),
		cmocka_unit_test_teardown(test_reload_restart_revives_single,
		    teardown),
		cmocka_unit_test_teardown(test_affinity_change_keeps_ttl,
		    teardown),
		cmocka_unit_test_teardown(test_affinity_none_ends_session_in_flight,
		    teardown),
		cmocka_unit_test_teardown(test_rebuild_to_none_keeps_no_session,
		    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
