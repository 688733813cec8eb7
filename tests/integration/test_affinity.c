/* Session affinity in the pool (SPEC 6) with mock_worker, whose programs
 * live per session inside the worker process that created them: under
 * strict every program is found and a session stays on its worker, new
 * sessions are spread over the workers; under none programs get lost;
 * end_session, session_reset after the worker's death, session_ttl_ms
 * expiry, prefer moving a session off a busy worker, and the
 * cleanup_session a worker gets behind a long request (pool and single
 * mode). */
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

#include "proto/xmalloc.h"
#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define NWORKERS	4
#define NSESS		50
#define NCONN		8	/* connections the sessions share */
#define NSTEPS		6	/* create_program, then 5 execute_program */
#define RUN_MS		60000	/* bound on one whole workload */

/* Starts a pool of n mock_workers with the given affinity and extra pool
 * settings, and waits for them to be ready. */
static struct arb *
start_pool(int n, const char *affinity, const char *pool)
{
	char body[2048];
	snprintf(body, sizeof body,
	    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = %d; max_overflow = 0; affinity = \"%s\";\n"
	    "  checkout_timeout_ms = 5000; max_restarts = 100; %s };\n"
	    "worker = { restart_delay_ms = 0; };\n"
	    "environments = { dev = { }; };\n", n, affinity, pool ? pool : "");
	struct arb *a = arb_start(body, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", (size_t)n, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	return a;
}

/* ---- the 50-session workload ---- */

struct sess {
	char	id[32];
	int	step;		/* replies received so far */
	char	worker[64];	/* the worker of its first reply */
};

struct workload {
	struct cl_conn	*conns[NCONN];
	struct sess	 s[NSESS];
	bool		 strict;
	int		 replies;
	int		 not_found;	/* "program not found" replies */
	int		 moved;		/* replies from another worker */
	int		 bad;		/* any other unexpected reply */
};

/* The request for step of session i: create_program first, then
 * execute_program with inputs unique to the step. */
static json_t *
step_req(int i, int step, const char *sid)
{
	json_int_t id = (json_int_t)i * 100 + step;
	if (step == 0)
		return cl_exec_req(id, "create_program", json_pack("{s:s,s:s}",
		    "program_id", "p", "signature", "question -> answer"), sid,
		    0);
	char q[64];
	snprintf(q, sizeof q, "%s-%d", sid, step);
	return cl_exec_req(id, "execute_program", json_pack("{s:s,s:{s:s}}",
	    "program_id", "p", "inputs", "question", q), sid, 0);
}

/* Counts one unexpected reply, printing the first few. */
static void
unexpected(struct workload *w, const json_t *reply, const char *why)
{
	if (w->bad++ < 5) {
		char *s = cl_describe(reply);
		fprintf(stderr, "unexpected reply (%s): %s\n", why, s);
		free(s);
	}
}

/* Checks an execute_program result against the mock model. */
static bool
good_output(const json_t *reply, const char *sid, int step)
{
	char want[96];
	snprintf(want, sizeof want, "answer: %s-%d", sid, step);
	const char *got = json_string_value(json_object_get(json_object_get(
	    json_object_get(reply, "result"), "outputs"), "answer"));
	return got != NULL && strcmp(got, want) == 0;
}

/* Judges an error reply to an execute_program. */
static void
judge_error(struct workload *w, const json_t *reply)
{
	const char *msg = cl_reply_message(reply);
	const char *code = arb_reply_code(reply);
	if (code != NULL && strcmp(code, "worker_error") == 0 && msg != NULL &&
	    strstr(msg, "program not found: p") != NULL)
		w->not_found++;
	else
		unexpected(w, reply, "error");
}

/* cl_pump callback: checks the reply, sends the session's next step. */
static void
on_reply(size_t conn, json_t *reply, void *ctx)
{
	struct workload *w = ctx;
	json_int_t id = cl_reply_id(reply);
	int i = (int)(id / 100), step = (int)(id % 100);
	w->replies++;
	if (id < 0 || i >= NSESS || step != w->s[i].step ||
	    conn != (size_t)i % NCONN) {
		unexpected(w, reply, "id");
		return;
	}
	struct sess *s = &w->s[i];
	const char *worker = cl_reply_worker(reply);
	if (step == 0 && arb_reply_ok(reply) && worker != NULL)
		snprintf(s->worker, sizeof s->worker, "%s", worker);
	else if (step == 0)
		unexpected(w, reply, "create_program");
	else if (!arb_reply_ok(reply))
		judge_error(w, reply);
	else if (!good_output(reply, s->id, step))
		unexpected(w, reply, "outputs");
	if (step > 0 && worker != NULL && strcmp(worker, s->worker) != 0)
		w->moved++;
	if (++s->step < NSTEPS) {
		json_t *req = step_req(i, s->step, s->id);
		cl_send(w->conns[conn], req);
		json_decref(req);
	}
}

/* Opens each session: all creates pipelined at once (they compete for
 * busy workers), or one after another while every worker is ready. */
static void
open_sessions(struct arb *a, struct workload *w, bool one_by_one)
{
	json_t *batch[NCONN];
	for (size_t c = 0; c < NCONN; c++)
		batch[c] = json_array();
	for (int i = 0; i < NSESS; i++) {
		struct sess *s = &w->s[i];
		snprintf(s->id, sizeof s->id, "sess-%02d", i);
		if (!one_by_one) {
			json_array_append_new(batch[i % NCONN], step_req(i, 0,
			    s->id));
			continue;
		}
		json_t *r = arb_call_ok(a, step_req(i, 0, s->id));
		snprintf(s->worker, sizeof s->worker, "%s", cl_reply_worker(r));
		json_decref(r);
		s->step = 1;
		w->replies++;
		json_array_append_new(batch[i % NCONN], step_req(i, 1, s->id));
	}
	for (size_t c = 0; c < NCONN; c++) {
		cl_send_batch(w->conns[c], batch[c]);
		json_decref(batch[c]);
	}
}

/* Runs every session through its steps, interleaved on NCONN pipelined
 * connections, until all replies are in. */
static void
run_workload(struct arb *a, struct workload *w, bool one_by_one)
{
	for (size_t c = 0; c < NCONN; c++)
		w->conns[c] = cl_open(a);
	open_sessions(a, w, one_by_one);
	long long end = arb_now_ms() + RUN_MS;
	while (w->replies < NSESS * NSTEPS && arb_now_ms() < end)
		if (cl_pump(w->conns, NCONN, 200, on_reply, w) < 0)
			break;
	for (size_t c = 0; c < NCONN; c++)
		cl_close(w->conns[c]);
	fprintf(stderr, "workload: %d replies, %d not found, %d moved, "
	    "%d unexpected\n", w->replies, w->not_found, w->moved, w->bad);
	assert_int_equal(w->replies, NSESS * NSTEPS);
	assert_int_equal(w->bad, 0);
}

/* Counts sessions per worker from the first replies. */
static int
sessions_on(const struct workload *w, const char *worker)
{
	int n = 0;
	for (int i = 0; i < NSESS; i++)
		n += strcmp(w->s[i].worker, worker) == 0;
	return n;
}

/* The bound session count of each pool worker, checked against the
 * workers the sessions' first replies named; returns their sum. */
static json_int_t
bound_counts(struct arb *a, const struct workload *w, json_int_t *n)
{
	json_t *tree = arb_status(a, "pool");
	assert_non_null(tree);
	json_int_t total = 0;
	for (int k = 0; k < NWORKERS; k++) {
		char name[32];
		snprintf(name, sizeof name, "pool/worker.%d", k + 1);
		n[k] = arb_node_int(arb_find(tree, name), "session");
		fprintf(stderr, "%s: %lld sessions bound\n", name,
		    (long long)n[k]);
		assert_int_equal(n[k], sessions_on(w, name));
		total += n[k];
	}
	json_decref(tree);
	return total;
}

/* Strict with every request competing: each session stays on its worker
 * and finds its program. */
static void
test_strict_keeps_programs(void **state)
{
	struct arb *a = start_pool(NWORKERS, "strict", NULL);
	struct workload *w = calloc(1, sizeof *w);
	w->strict = true;
	run_workload(a, w, false);
	assert_int_equal(w->not_found, 0);
	assert_int_equal(w->moved, 0);
	json_int_t n[NWORKERS];
	assert_int_equal(bound_counts(a, w, n), NSESS);
	json_t *st = cl_stats(a);
	assert_int_equal(arb_node_int(st, "sessions"), NSESS);
	assert_int_equal(arb_node_int(st, "total_sessions"), NSESS);
	assert_int_equal(arb_node_int(st, "successful_operations"),
	    NSESS * NSTEPS);
	json_decref(st);
	free(w);
	assert_int_equal(arb_stop(a), 0);
}

/* New sessions that find ready workers go to the one with the fewest
 * bound sessions: the 50 spread evenly; then they run concurrently. (When
 * every worker is busy, a new session takes the first worker that frees
 * up, so the spread then follows the scheduler and is not checked.) */
static void
test_strict_balances_new_sessions(void **state)
{
	struct arb *a = start_pool(NWORKERS, "strict", NULL);
	struct workload *w = calloc(1, sizeof *w);
	w->strict = true;
	run_workload(a, w, true);
	assert_int_equal(w->not_found, 0);
	assert_int_equal(w->moved, 0);
	json_int_t n[NWORKERS];
	assert_int_equal(bound_counts(a, w, n), NSESS);
	for (int k = 0; k < NWORKERS; k++) {	/* NSESS / NWORKERS +- 5 */
		assert_true(n[k] * NWORKERS >= NSESS - 5 * NWORKERS);
		assert_true(n[k] * NWORKERS <= NSESS + 5 * NWORKERS);
	}
	free(w);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_none_loses_programs(void **state)
{
	struct arb *a = start_pool(NWORKERS, "none", NULL);
	struct workload *w = calloc(1, sizeof *w);
	run_workload(a, w, false);
	assert_true(w->not_found > 0);
	/* No binding at all. */
	json_t *tree = arb_status(a, "pool");
	for (int k = 1; k <= NWORKERS; k++) {
		char name[32];
		snprintf(name, sizeof name, "pool/worker.%d", k);
		assert_int_equal(arb_node_int(arb_find(tree, name), "session"), 0);
	}
	json_decref(tree);
	free(w);
	assert_int_equal(arb_stop(a), 0);
}

/* ---- one session at a time ---- */

static json_t *
create_p(struct arb *a, const char *sid)
{
	return cl_exec_ok(a, "create_program", json_pack("{s:s,s:s}",
	    "program_id", "p", "signature", "question -> answer"), sid);
}

/* create_p in session sid, and the name of the worker that made it. */
static void
create_on(struct arb *a, const char *sid, char *w, size_t n)
{
	json_t *r = create_p(a, sid);
	snprintf(w, n, "%s", cl_reply_worker(r));
	json_decref(r);
}

static json_t *
execute_p(struct arb *a, const char *sid)
{
	return cl_exec(a, "execute_program", json_pack("{s:s,s:{s:s}}",
	    "program_id", "p", "inputs", "question", "q"), sid);
}

/* Fails unless reply is worker_error "program not found: p". */
static void
assert_not_found(const json_t *reply)
{
	const char *msg = cl_reply_message(reply);
	if (arb_reply_ok(reply) || arb_reply_code(reply) == NULL ||
	    strcmp(arb_reply_code(reply), "worker_error") != 0 || msg == NULL ||
	    strstr(msg, "program not found: p") == NULL) {
		char *s = cl_describe(reply);
		fail_msg("expected worker_error 'program not found: p', got %s", s);
	}
}

/* {"op": "end_session", "session_id": sid}: the value of "ended". */
static bool
end_session(struct arb *a, const char *sid)
{
	json_t *r = arb_call_ok(a, json_pack("{s:s,s:s}", "op", "end_session",
	    "session_id", sid));
	json_t *ended = json_object_get(r, "ended");
	assert_true(json_is_boolean(ended));
	bool v = json_is_true(ended);
	json_decref(r);
	return v;
}

static void
test_end_session(void **state)
{
	struct arb *a = start_pool(NWORKERS, "strict", NULL);
	json_decref(create_p(a, "e1"));
	json_t *r = execute_p(a, "e1");
	assert_true(arb_reply_ok(r));
	json_decref(r);
	assert_int_equal(cl_stat(a, "sessions"), 1);
	assert_true(end_session(a, "e1"));
	assert_int_equal(cl_stat(a, "sessions"), 0);
	r = execute_p(a, "e1");
	assert_not_found(r);
	json_decref(r);
	assert_false(end_session(a, "never-seen"));
	assert_int_equal(arb_stop(a), 0);
}

static void
test_session_reset_after_worker_death(void **state)
{
	struct arb *a = start_pool(2, "strict", NULL);
	char w1[64];
	create_on(a, "r1", w1, sizeof w1);
	json_t *r = cl_exec_ok(a, "echo", NULL, "r2");
	assert_string_not_equal(cl_reply_worker(r), w1);	/* least bound */
	json_decref(r);
	json_int_t pid = cl_worker_pid(a, w1);
	assert_true(pid > 0);
	assert_int_equal(proc_ppid((pid_t)pid), arb_pid(a));
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	arb_wait_ready_pid(a, w1, pid);
	assert_true(cl_echo_reset(a, "r1"));
	r = execute_p(a, "r1");		/* the program died with the worker */
	assert_not_found(r);
	assert_false(cl_reply_reset(r));
	json_decref(r);
	assert_false(cl_echo_reset(a, "r1"));
	assert_false(cl_echo_reset(a, "r2"));	/* its worker lived */
	assert_int_equal(arb_stop(a), 0);
}

static void
test_session_ttl_expiry(void **state)
{
	struct arb *a = start_pool(2, "strict", "session_ttl_ms = 300;");
	char w1[64];
	create_on(a, "t1", w1, sizeof w1);
	json_t *st = cl_stats(a);
	json_int_t before = arb_node_int(st, "stale_sessions_cleaned");
	json_decref(st);
	assert_true(cl_wait_stat(a, "stale_sessions_cleaned", before + 1,
	    before + 1, ARB_EVENT_MS));
	assert_int_equal(cl_stat(a, "sessions"), 0);
	json_t *tree = arb_status(a, w1);
	assert_int_equal(arb_node_int(tree, "session"), 0);
	json_decref(tree);
	json_t *r = execute_p(a, "t1");		/* the worker got cleanup_session */
	assert_not_found(r);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* A session with a request at its worker is not idle: a request longer
 * than session_ttl_ms keeps its session (and the program it made), whose
 * idle clock starts again when the request ends. */
static void
test_ttl_spares_session_in_flight(void **state)
{
	struct arb *a = start_pool(2, "strict", "session_ttl_ms = 1000;");
	char w[64];
	create_on(a, "f1", w, sizeof w);
	json_decref(cl_exec_ok(a, "sleep", json_pack("{s:i}", "ms", 2500),
	    "f1"));
	assert_int_equal(cl_stat(a, "stale_sessions_cleaned"), 0);
	json_t *r = execute_p(a, "f1");	/* its program is still there */
	assert_true(arb_reply_ok(r));
	assert_string_equal(cl_reply_worker(r), w);
	assert_false(cl_reply_reset(r));
	json_decref(r);
	/* idle now: it ends after the ttl as any other */
	assert_true(cl_wait_stat(a, "stale_sessions_cleaned", 1, 1,
	    ARB_EVENT_MS));
	assert_int_equal(arb_stop(a), 0);
}

/* A session whose request waits for its (strict) worker is not idle
 * either: the wait outlasting session_ttl_ms does not end the session
 * under the request, which finds the program it made. */
static void
test_ttl_spares_session_waiting(void **state)
{
	struct arb *a = start_pool(1, "strict", "session_ttl_ms = 500;");
	char w[64];
	create_on(a, "x1", w, sizeof w);
	struct cl_conn *busy = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 2500), NULL, "busy", 1);
	struct cl_conn *waiter = cl_send_held(a, 2, "execute_program",
	    json_pack("{s:s,s:{s:s}}", "program_id", "p", "inputs",
	    "question", "q"), "x1", "waiting", 1);
	json_t *r = cl_recv_ok(waiter, ARB_REPLY_MS,
	    "the request that waited");
	assert_string_equal(cl_reply_worker(r), w);
	assert_false(cl_reply_reset(r));
	json_decref(r);
	json_decref(cl_recv_ok(busy, ARB_REPLY_MS, "the held request"));
	cl_close(busy);
	cl_close(waiter);
	assert_int_equal(cl_stat(a, "stale_sessions_cleaned"), 0);
	assert_int_equal(arb_stop(a), 0);
}

/* Serves an echo in session and copies the name of its worker to w. */
static void
bind_session(struct arb *a, const char *session, char *w, size_t n)
{
	json_t *r = cl_exec_ok(a, "echo", NULL, session);
	snprintf(w, n, "%s", cl_reply_worker(r));
	json_decref(r);
}

static void
test_prefer_moves_off_busy_worker(void **state)
{
	struct arb *a = start_pool(2, "prefer", NULL);
	char w1[64];
	bind_session(a, "pf", w1, sizeof w1);
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1500), "pf", "busy", 1);
	json_t *r = cl_exec_ok(a, "echo", NULL, "pf");
	char w2[64];
	snprintf(w2, sizeof w2, "%s", cl_reply_worker(r));
	json_decref(r);
	assert_string_not_equal(w2, w1);
	r = cl_recv(c, ARB_REPLY_MS);
	assert_true(arb_reply_ok(r));
	assert_string_equal(cl_reply_worker(r), w1);
	json_decref(r);
	cl_close(c);
	/* Rebound: w1 is idle again, but the session now lives on w2. */
	r = cl_exec_ok(a, "echo", NULL, "pf");
	assert_string_equal(cl_reply_worker(r), w2);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* prefer: after a session's worker exits, the next reply in the session
 * carries "session_reset": true (SPEC 6), whichever of its requests is
 * answered first. Here a long request and then a short one of the
 * session run on two workers at once, and the short one, sent second,
 * is answered first: the notice comes with it, once. */
static void
test_prefer_reset_told_by_first_reply(void **state)
{
	struct arb *a = start_pool(2, "prefer", NULL);
	char w1[64];
	bind_session(a, "pr", w1, sizeof w1);
	json_int_t pid = cl_worker_pid(a, w1);
	assert_true(pid > 0);
	assert_int_equal(proc_ppid((pid_t)pid), arb_pid(a));
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	arb_wait_ready_pid(a, w1, pid);
	struct cl_conn *c = cl_open(a);
	json_t *batch = json_pack("[o,o]",
	    cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 1500), "pr", 0),
	    cl_exec_req(2, "sleep", json_pack("{s:i}", "ms", 10), "pr", 0));
	cl_send_batch(c, batch);
	json_decref(batch);
	char first[64] = "";
	for (int k = 0; k < 2; k++) {
		json_t *r = cl_recv(c, ARB_REPLY_MS);
		assert_non_null(r);
		assert_true(arb_reply_ok(r));
		assert_int_equal(cl_reply_id(r), k == 0 ? 2 : 1);
		assert_int_equal(cl_reply_reset(r), k == 0);
		if (k == 0)
			snprintf(first, sizeof first, "%s", cl_reply_worker(r));
		else	/* two workers at once */
			assert_string_not_equal(cl_reply_worker(r), first);
		json_decref(r);
	}
	cl_close(c);
	assert_false(cl_echo_reset(a, "pr"));
	assert_int_equal(arb_stop(a), 0);
}

/* ---- prefer: a session spread over workers, one of them lost ---- */

/* A held request must outlast a kill and the successor's start: it sleeps
 * until the test ends it (release_held). */
#define HOLD_MS		CL_HOLD_MS
#define DOOMED_MS	30000	/* a request at the worker killed */

/* The busy worker of the pool other than the one named not (a pool of
 * n workers), into w; fails the test if there is none. */
static void
other_busy(struct arb *a, int n, const char *not, char *w, size_t wn)
{
	for (int i = 1; i <= n; i++) {
		char name[64];
		snprintf(name, sizeof name, "pool/worker.%d", i);
		json_t *node = arb_status(a, name);
		const char *st = arb_node_str(node, "state");
		bool busy = st && strcmp(st, "busy") == 0;
		json_decref(node);
		if (busy && strcmp(name, not) != 0) {
			snprintf(w, wn, "%s", name);
			return;
		}
	}
	fail_msg("no busy worker other than %s", not);
}

/* SIGKILLs worker w and waits for its successor to be ready. */
static void
kill_worker(struct arb *a, const char *w)
{
	json_int_t pid = cl_worker_pid(a, w);
	assert_true(pid > 0);
	assert_int_equal(proc_ppid((pid_t)pid), arb_pid(a));
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	arb_wait_ready_pid(a, w, pid);
}

/* Fails the test unless worker w is still busy (with a request that was
 * to outlast what the test did meanwhile), then ends that request. */
static void
release_held(struct arb *a, const char *w)
{
	json_t *node = arb_status(a, w);
	const char *st = arb_node_str(node, "state");
	if (st == NULL || strcmp(st, "busy") != 0)
		fail_msg("%s is %s, not busy: the machine was too slow for "
		    "the test's request to still run", w, st ? st : "gone");
	json_decref(node);
	cl_release(a, w);
}

/* The reply on c, an error with code whose "session_reset" is reset. */
static void
expect_err(struct cl_conn *c, const char *code, bool reset)
{
	json_t *r = cl_recv(c, ARB_REPLY_MS);
	assert_non_null(r);
	assert_false(arb_reply_ok(r));
	assert_string_equal(arb_reply_code(r), code);
	assert_int_equal(cl_reply_reset(r), reset);
	json_decref(r);
	cl_close(c);
}

/* The reply on c, a success from worker w (NULL: any) whose
 * "session_reset" is reset. */
static void
expect_ok(struct cl_conn *c, const char *w, bool reset)
{
	json_t *r = cl_recv_ok(c, ARB_REPLY_MS, "a request of the session");
	if (w)
		assert_string_equal(cl_reply_worker(r), w);
	assert_int_equal(cl_reply_reset(r), reset);
	json_decref(r);
	cl_close(c);
}

/* An echo in session sid, answered by worker w, whose "session_reset" is
 * reset. */
static void
expect_echo(struct arb *a, const char *sid, const char *w, bool reset)
{
	json_t *r = cl_exec_ok(a, "echo", NULL, sid);
	assert_string_equal(cl_reply_worker(r), w);
	assert_int_equal(cl_reply_reset(r), reset);
	json_decref(r);
}

/* prefer, a pool of n: session sid bound to w1, then a request of it (id
 * 1, a sleep of ms1) held at w1 and a second one (id 2, a sleep of ms2)
 * that prefer sends to another worker, w2, rebinding the session there.
 * Their connections into *c1 and *c2. */
static struct arb *
spread_session(int n, const char *sid, int ms1, int ms2, char *w1,
    char *w2, size_t wn, struct cl_conn **c1, struct cl_conn **c2)
{
	struct arb *a = start_pool(n, "prefer", NULL);
	bind_session(a, sid, w1, wn);
	*c1 = cl_send_held(a, 1, "sleep", cl_hold_args(ms1), sid, "busy", 1);
	*c2 = cl_send_held(a, 2, "sleep", cl_hold_args(ms2), sid, "busy", 2);
	other_busy(a, n, w1, w2, wn);
	return a;
}

/* The worker a session moved to is lost while a request the session sent
 * before the move still runs at the worker it left: that request's reply
 * is the next one in the session and carries "session_reset": true (SPEC
 * 6), once. The request that was at the lost worker fails first, with
 * worker_crashed: it tells the loss itself. */
static void
test_prefer_reset_told_by_request_sent_before_loss(void **state)
{
	char w1[64], w2[64];
	struct cl_conn *c1, *c2;
	struct arb *a = spread_session(2, "pb", HOLD_MS, DOOMED_MS, w1, w2,
	    sizeof w1, &c1, &c2);
	kill_worker(a, w2);
	expect_err(c2, "worker_crashed", false);
	release_held(a, w1);
	expect_ok(c1, w1, true);
	assert_false(cl_echo_reset(a, "pb"));
	assert_false(cl_echo_reset(a, "pb"));
	assert_int_equal(arb_stop(a), 0);
}

/* The same loss with a third request of the session waiting (every worker
 * busy): the successor of the lost worker serves it, and its reply, the
 * next in the session, carries the notice; the request still running at
 * the worker the session left, answered after it, does not. */
static void
test_prefer_reset_told_by_waiter(void **state)
{
	char w1[64], w2[64];
	struct cl_conn *c1, *c2;
	struct arb *a = spread_session(2, "pw", HOLD_MS, DOOMED_MS, w1, w2,
	    sizeof w1, &c1, &c2);
	struct cl_conn *c3 = cl_send_held(a, 3, "echo", NULL, "pw", "waiting",
	    1);
	json_int_t pid = cl_worker_pid(a, w2);
	assert_true(pid > 0);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	expect_err(c2, "worker_crashed", false);
	expect_ok(c3, w2, true);
	release_held(a, w1);
	expect_ok(c1, w1, false);
	assert_false(cl_echo_reset(a, "pw"));
	assert_int_equal(arb_stop(a), 0);
}

/* The worker a session left (prefer) is lost: the session's state is at
 * the worker it moved to, which lives, so no reply tells a reset; the
 * request that was at the lost worker fails with worker_crashed. */
static void
test_prefer_left_worker_lost_no_reset(void **state)
{
	char w1[64], w2[64];
	struct cl_conn *c1, *c2;
	struct arb *a = spread_session(2, "pl", DOOMED_MS, HOLD_MS, w1, w2,
	    sizeof w1, &c1, &c2);
	kill_worker(a, w1);
	expect_err(c1, "worker_crashed", false);
	release_held(a, w2);
	expect_ok(c2, w2, false);
	expect_echo(a, "pl", w2, false);
	assert_int_equal(arb_stop(a), 0);
}

/* Three workers, a notice due (the session's first worker lost): the
 * request that takes it runs at a second worker while the session moves
 * on to a third. Losing the second, the teller's failure carries the
 * notice; losing the third, the teller's notice goes with the first reply
 * (the one failing there), and the third's loss with the teller's own
 * reply, the next one. Once each, never after. */
static void
reset_over_three_workers(bool lose_teller)
{
	struct arb *a = start_pool(3, "prefer", NULL);
	char w0[64], w1[64], w2[64];
	bind_session(a, "p3", w0, sizeof w0);
	kill_worker(a, w0);
	struct cl_conn *c1 = cl_send_held(a, 1, "sleep",
	    cl_hold_args(lose_teller ? DOOMED_MS : HOLD_MS), "p3", "busy", 1);
	other_busy(a, 3, "", w1, sizeof w1);
	struct cl_conn *c2 = cl_send_held(a, 2, "sleep",
	    cl_hold_args(lose_teller ? HOLD_MS : DOOMED_MS), "p3", "busy", 2);
	other_busy(a, 3, w1, w2, sizeof w2);
	if (lose_teller) {
		kill_worker(a, w1);
		expect_err(c1, "worker_crashed", true);
		release_held(a, w2);
		expect_ok(c2, w2, false);
	} else {
		kill_worker(a, w2);
		expect_err(c2, "worker_crashed", true);
		release_held(a, w1);
		expect_ok(c1, w1, true);
	}
	assert_false(cl_echo_reset(a, "p3"));
	assert_false(cl_echo_reset(a, "p3"));
	assert_int_equal(arb_stop(a), 0);
}

static void
test_prefer_reset_three_workers_teller_lost(void **state)
{
	reset_over_three_workers(true);
}

static void
test_prefer_reset_three_workers_new_worker_lost(void **state)
{
	reset_over_three_workers(false);
}

/* strict: a request of the session waits for its busy worker, which is
 * lost; no worker frees in time (the other busy, the lost one's
 * successor held back by its restart delay), so the waiter is refused
 * with pool_timeout. Its reply is the next in the session: it carries the
 * notice (SPEC 6), and the next reply does not. */
static void
test_strict_refused_waiter_tells_reset(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = 2; max_overflow = 0; affinity = \"strict\";\n"
	    "  checkout_timeout_ms = 3000; max_restarts = 100; };\n"
	    "worker = { restart_delay_ms = 60000;"
	    " max_restart_delay_ms = 60000; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	char w1[64], w2[64];
	bind_session(a, "sr", w1, sizeof w1);
	struct cl_conn *c1 = cl_send_held(a, 1, "sleep",
	    cl_hold_args(CL_HOLD_MS), "sr", "busy", 1);
	struct cl_conn *c2 = cl_send_held(a, 2, "sleep",
	    cl_hold_args(CL_HOLD_MS), NULL, "busy", 2);
	other_busy(a, 2, w1, w2, sizeof w2);
	struct cl_conn *c3 = cl_send_held(a, 3, "echo", NULL, "sr", "waiting",
	    1);
	json_int_t pid = cl_worker_pid(a, w1);
	assert_true(pid > 0);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	expect_err(c1, "worker_crashed", false);
	expect_err(c3, "pool_timeout", true);
	release_held(a, w2);
	expect_ok(c2, w2, false);
	expect_echo(a, "sr", w2, false);
	assert_int_equal(arb_stop(a), 0);
}

/* arbord of body (environment dev) with one worker, name, under sup,
 * ready, and session sid bound to it. */
static struct arb *
start_bound(const char *body, const char *sup, const char *name,
    const char *sid)
{
	struct arb *a = arb_start(body, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, sup, 1, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	char w[64];
	bind_session(a, sid, w, sizeof w);
	assert_string_equal(w, name);
	return a;
}

/* SIGKILLs worker w and waits until its restart delay holds it down. */
static void
kill_to_backoff(struct arb *a, const char *w)
{
	json_int_t pid = cl_worker_pid(a, w);
	assert_true(pid > 0);
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	arb_await_node(a, w, "backoff");
}

/* A request refused before a worker takes it (overloaded: the worker
 * down, none may wait; or pool_timeout: it waited in vain) is answered
 * at once, so its reply is the next in its session: after the session's
 * worker was lost it carries the notice (SPEC 6), and the next reply does
 * not. bridge, sup, name: the mode's settings, supervisor and worker. */
static void
refusal_tells_reset(const char *bridge, const char *sup, const char *name,
    const char *affinity, int max_waiting)
{
	const char *code = max_waiting ? "pool_timeout" : "overloaded";
	char body[1024];
	snprintf(body, sizeof body,
	    "bridge = { adapter = \"bridge_mock\"; %s };\n"
	    "pool = { size = 1; max_overflow = 0; affinity = \"%s\";\n"
	    "  max_waiting = %d; checkout_timeout_ms = 300;"
	    " max_restarts = 100; };\n"
	    "worker = { restart_delay_ms = 60000;"
	    " max_restart_delay_ms = 60000; };\n"
	    "environments = { dev = { }; };\n", bridge, affinity, max_waiting);
	struct arb *a = start_bound(body, sup, name, "so");
	const char *w = name;
	kill_to_backoff(a, w);
	json_t *r = cl_exec_err(a, "echo", NULL, "so", code);
	assert_true(cl_reply_reset(r));
	json_decref(r);
	r = cl_exec_err(a, "echo", NULL, "so", code);
	assert_false(cl_reply_reset(r));
	json_decref(r);
	char out[256];
	assert_int_equal(arb_ctl(a, out, sizeof out, "restart", w, NULL), 0);
	arb_await_node(a, w, "ready");
	expect_echo(a, "so", w, false);
	assert_int_equal(arb_stop(a), 0);
}

/* The notice taken by a request of the session still in flight (its
 * worker lost, back by `restart`, then the request held there) goes with
 * a refusal answered before it (overloaded: max_waiting 0), the next
 * reply in the session; the held request's reply then does not carry
 * it. */
static void
refusal_takes_notice_in_flight(const char *bridge, const char *sup,
    const char *name, const char *affinity)
{
	char body[1024];
	snprintf(body, sizeof body,
	    "bridge = { adapter = \"bridge_mock\"; %s };\n"
	    "pool = { size = 1; max_overflow = 0; affinity = \"%s\";\n"
	    "  max_waiting = 0; max_restarts = 100; };\n"
	    "worker = { restart_delay_ms = 60000; max_inflight = 1;"
	    " max_restart_delay_ms = 60000; };\n"
	    "environments = { dev = { }; };\n", bridge, affinity);
	struct arb *a = start_bound(body, sup, name, "sf");
	kill_to_backoff(a, name);
	char out[256];
	assert_int_equal(arb_ctl(a, out, sizeof out, "restart", name, NULL), 0);
	arb_await_node(a, name, "ready");
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    cl_hold_args(CL_HOLD_MS), "sf", "busy", 1);
	json_t *r = cl_exec_err(a, "echo", NULL, "sf", "overloaded");
	assert_true(cl_reply_reset(r));
	json_decref(r);
	release_held(a, name);
	expect_ok(c, name, false);
	assert_false(cl_echo_reset(a, "sf"));
	assert_int_equal(arb_stop(a), 0);
}

static void
test_prefer_refusal_takes_notice_in_flight(void **state)
{
	refusal_takes_notice_in_flight("pooling_enabled = true;", "pool",
	    "pool/worker.1", "prefer");
}

static void
test_single_refusal_takes_notice_in_flight(void **state)
{
	refusal_takes_notice_in_flight("", "bridge", "bridge/worker", "strict");
}

static void
test_strict_overloaded_tells_reset(void **state)
{
	refusal_tells_reset("pooling_enabled = true;", "pool",
	    "pool/worker.1", "strict", 0);
}

static void
test_prefer_overloaded_tells_reset(void **state)
{
	refusal_tells_reset("pooling_enabled = true;", "pool",
	    "pool/worker.1", "prefer", 0);
}

static void
test_single_overloaded_tells_reset(void **state)
{
	refusal_tells_reset("", "bridge", "bridge/worker", "strict", 0);
}

static void
test_single_refused_waiter_tells_reset(void **state)
{
	refusal_tells_reset("", "bridge", "bridge/worker", "strict", 4);
}

/* get_stats from the worker named w (requests without a session take the
 * idle workers in turn): its reply, or a failed test. */
static json_t *
stats_of(struct arb *a, const char *w)
{
	for (int i = 0; i < 20; i++) {
		json_t *r = cl_exec_ok(a, "get_stats", NULL, NULL);
		if (strcmp(cl_reply_worker(r), w) == 0)
			return r;
		json_decref(r);
	}
	fail_msg("no get_stats reached %s", w);
	return NULL;
}

/* prefer: a session moved off its busy worker leaves no state behind on
 * the worker it left, which gets cleanup_session (after the request it is
 * busy with): the session's programs would otherwise stay there for the
 * worker's life, ended sessions' included. */
static void
test_prefer_move_cleans_up_left_worker(void **state)
{
	struct arb *a = start_pool(2, "prefer", NULL);
	json_t *r = cl_exec_ok(a, "create_program",
	    json_pack("{s:s}", "program_id", "p"), "pm");
	char w1[64];
	snprintf(w1, sizeof w1, "%s", cl_reply_worker(r));
	json_decref(r);
	struct cl_conn *c = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 800), "pm", "busy", 1);
	r = cl_exec_ok(a, "create_program",
	    json_pack("{s:s}", "program_id", "p"), "pm");
	assert_string_not_equal(cl_reply_worker(r), w1);
	json_decref(r);
	r = cl_recv(c, ARB_REPLY_MS);
	assert_true(arb_reply_ok(r));
	json_decref(r);
	cl_close(c);
	r = stats_of(a, w1);
	json_t *res = json_object_get(r, "result");
	assert_int_equal(arb_node_int(res, "sessions_count"), 0);
	assert_int_equal(arb_node_int(res, "programs_count"), 0);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_strict_waits_for_busy_worker(void **state)
{
	struct arb *a = start_pool(2, "strict", NULL);
	char w1[64];
	bind_session(a, "st", w1, sizeof w1);
	struct cl_conn *c = cl_open(a);
	long long t0 = arb_now_ms();
	json_t *req = cl_exec_req(1, "sleep", json_pack("{s:i}", "ms", 800),
	    "st", 0);
	cl_send(c, req);
	json_decref(req);
	assert_true(cl_wait_stat(a, "busy", 1, 1, ARB_EVENT_MS));
	json_t *r = cl_exec_ok(a, "echo", NULL, "st");
	assert_string_equal(cl_reply_worker(r), w1);
	assert_true(arb_now_ms() - t0 >= 700);	/* after the sleep */
	json_decref(r);
	r = cl_recv(c, ARB_REPLY_MS);
	assert_true(arb_reply_ok(r));
	json_decref(r);
	cl_close(c);
	assert_int_equal(arb_stop(a), 0);
}

/* A job waiting for its strict worker moves to an idle one when that
 * worker goes away (here stopped by the operator), at once rather than
 * after checkout_timeout_ms, and is told its session was reset. */
/* Binds session "st" to a worker (its name into w), holds the worker busy
 * with a 3 s sleep of the session and a second request of it waiting,
 * then stops the worker: the waiter's reply, a success told its session
 * was reset. */
static json_t *
waiter_after_stop(struct arb *a, char *w, size_t wn)
{
	bind_session(a, "st", w, wn);
	struct cl_conn *busy = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 3000), "st", "busy", 1);
	struct cl_conn *waiter = cl_send_held(a, 2, "echo", NULL, "st",
	    "waiting", 1);
	json_decref(arb_call_ok(a, json_pack("{s:s, s:s}", "op", "stop",
	    "name", w)));
	json_t *r = cl_recv_ok(waiter, ARB_REPLY_MS, "the waiting request");
	assert_true(cl_reply_reset(r));
	json_t *b = cl_recv(busy, ARB_REPLY_MS);	/* whatever the stop
							 * made of it */
	assert_non_null(b);
	json_decref(b);
	cl_close(busy);
	cl_close(waiter);
	return r;
}

static void
test_strict_waiter_moves_when_worker_stops(void **state)
{
	struct arb *a = start_pool(2, "strict", NULL);
	char w[64];
	json_t *r = waiter_after_stop(a, w, sizeof w);
	assert_true(strcmp(cl_reply_worker(r), w) != 0);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* The same when no worker is idle: the waiter, now free to go to any
 * worker, gets the overflow worker max_overflow allows. */
static void
test_strict_waiter_gets_overflow_when_worker_stops(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = 1; max_overflow = 1; affinity = \"strict\";\n"
	    "  checkout_timeout_ms = 8000; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	char w[64];
	json_t *r = waiter_after_stop(a, w, sizeof w);
	assert_string_equal(cl_reply_worker(r), "pool/overflow.1");
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* Requests waiting for one busy worker (strict) are no reason to start
 * an overflow worker, which could not serve them: a request any worker
 * may take, coming while another worker starts, waits for that one. The
 * workers take 3 s to start (a shell sleeps, then runs mock_worker). */
static void
test_strict_waiters_start_no_overflow(void **state)
{
	char *bin = arb_bin_path("mock_worker");
	char mock[PATH_MAX];
	assert_non_null(realpath(bin, mock));
	free(bin);
	char body[PATH_MAX + 1024];
	snprintf(body, sizeof body,
	    "bridge = { adapter = \"python_pool\"; pooling_enabled = true; };\n"
	    "worker = { command = [ \"/bin/sh\", \"-c\",\n"
	    "    \"sleep 3; exec \\\"$0\\\"\", \"%s\" ];\n"
	    "  init_timeout_ms = 15000; restart_delay_ms = 0; };\n"
	    "pool = { size = 2; max_overflow = 1; affinity = \"strict\";\n"
	    "  checkout_timeout_ms = 15000; };\n"
	    "environments = { dev = { }; };\n", mock);
	struct arb *a = arb_start(body, "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS));
	char w[64];
	bind_session(a, "st", w, sizeof w);
	const char *other = strcmp(w, "pool/worker.1") == 0 ?
	    "pool/worker.2" : "pool/worker.1";
	json_int_t pid = cl_worker_pid(a, other);
	struct cl_conn *busy = cl_send_held(a, 1, "sleep",
	    cl_hold_args(HOLD_MS), 	    "st", "busy", 1);
	struct cl_conn *waiters[2];
	for (int i = 0; i < 2; i++)
		waiters[i] = cl_send_held(a, 2 + i, "echo", NULL, "st",
		    "waiting", 1 + i);
	json_decref(arb_call_ok(a, json_pack("{s:s, s:s}", "op", "restart",
	    "name", other)));
	json_t *node = arb_wait_node(a, other, "starting", pid, ARB_EVENT_MS);
	assert_non_null(node);
	json_decref(node);
	json_t *r = cl_exec_ok(a, "echo", NULL, NULL);
	assert_string_equal(cl_reply_worker(r), other);
	json_decref(r);
	assert_int_equal(cl_stat(a, "overflow"), 0);
	cl_release(a, w);
	for (int i = 0; i < 2; i++) {
		r = cl_recv(waiters[i], ARB_REPLY_MS);
		assert_non_null(r);
		assert_true(arb_reply_ok(r));
		assert_string_equal(cl_reply_worker(r), w);
		json_decref(r);
		cl_close(waiters[i]);
	}
	r = cl_recv(busy, ARB_REPLY_MS);
	assert_non_null(r);
	json_decref(r);
	cl_close(busy);
	assert_int_equal(arb_stop(a), 0);
}

#define OVF_IDLE_MS	200	/* overflow_idle_ms of the tests below */

/* arb_wait_for predicate: pool/overflow.1 has left the tree. */
static bool
no_overflow(json_t *tree, void *ctx)
{
	return arb_find(tree, "pool/overflow.1") == NULL;
}

/* Polls the tree for ms and fails as soon as pool/overflow.1 is not
 * there, up (ready or busy) with pid: an observation over a window that
 * overflow_idle_ms fits in several times, not a wait for an event. */
static void
overflow_stays(struct arb *a, json_int_t pid, int ms)
{
	long long end = arb_now_ms() + ms;
	do {
		json_t *node = arb_status(a, "pool/overflow.1");
		const char *st = arb_node_str(node, "state");
		if (node == NULL || arb_node_pid(node) != pid || st == NULL ||
		    (strcmp(st, "ready") != 0 && strcmp(st, "busy") != 0))
			fail_msg("pool/overflow.1 (pid %lld), holding a session, "
			    "is no longer up: %s", (long long)pid,
			    st ? st : "gone");
		json_decref(node);
		arb_sleep_ms(50);
	} while (arb_now_ms() < end);
}

/* An overflow worker holding a bound session is not stopped for idling
 * overflow_idle_ms (its program would be lost, the session reset long
 * before session_ttl_ms): it stays while the session lasts, and idles
 * out once end_session has ended it. */
static void
overflow_keeps_session(const char *affinity)
{
	char body[1024];
	snprintf(body, sizeof body,
	    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = 1; max_overflow = 1; affinity = \"%s\";\n"
	    "  overflow_idle_ms = %d; checkout_timeout_ms = 15000; };\n"
	    "environments = { dev = { }; };\n", affinity, OVF_IDLE_MS);
	struct arb *a = arb_start(body, "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 1, ARB_EVENT_MS));
	struct cl_conn *busy = cl_send_held(a, 1, "sleep",
	    cl_hold_args(HOLD_MS), 	    NULL, "busy", 1);
	char w[64];
	create_on(a, "ov", w, sizeof w);	/* waits: overflow.1 starts */
	assert_string_equal(w, "pool/overflow.1");
	json_int_t pid = cl_worker_pid(a, w);
	assert_true(pid > 0);
	overflow_stays(a, pid, 5 * OVF_IDLE_MS);
	json_t *r = execute_p(a, "ov");		/* its program is still there */
	assert_true(arb_reply_ok(r));
	assert_false(cl_reply_reset(r));
	assert_string_equal(cl_reply_worker(r), w);
	json_decref(r);
	cl_release(a, "pool/worker.1");
	json_decref(cl_recv_ok(busy, ARB_REPLY_MS, "worker.1's sleep"));
	cl_close(busy);
	assert_true(end_session(a, "ov"));	/* now it may idle out */
	json_t *tree = arb_wait_for(a, no_overflow, NULL, ARB_EVENT_MS,
	    "pool/overflow.1 gone after its session ended");
	assert_non_null(tree);
	json_decref(tree);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	assert_int_equal(arb_stop(a), 0);
}

static void
test_strict_overflow_keeps_session(void **state)
{
	overflow_keeps_session("strict");
}

static void
test_prefer_overflow_keeps_session(void **state)
{
	overflow_keeps_session("prefer");
}

/* ---- a reload to affinity none ---- */

/* A pool of size workers (max_overflow ovf) with the given affinity, a
 * session ttl of an hour (no session ends by it in a test) and an
 * overflow_idle_ms of OVF_IDLE_MS. Caller frees. */
static char *
conf_reload_affinity(int size, int ovf, const char *affinity)
{
	return xasprintf(
	    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = %d; max_overflow = %d; affinity = \"%s\";\n"
	    "  session_ttl_ms = 3600000; overflow_idle_ms = %d;\n"
	    "  checkout_timeout_ms = 15000; };\n"
	    "environments = { dev = { }; };\n", size, ovf, affinity,
	    OVF_IDLE_MS);
}

/* Starts that pool and waits for its size workers to be ready. */
static struct arb *
start_reload_affinity(int size, int ovf, const char *affinity)
{
	char *body = conf_reload_affinity(size, ovf, affinity);
	struct arb *a = arb_start(body, "dev", NULL);
	free(body);
	json_decref(arb_wait_all_ready(a, "pool", (size_t)size, ARB_EVENT_MS));
	return a;
}

/* Rewrites the config with affinity and reloads. */
static void
reload_affinity(struct arb *a, int size, int ovf, const char *affinity)
{
	char *body = conf_reload_affinity(size, ovf, affinity);
	arb_rewrite_config(a, body);
	free(body);
	json_decref(arb_op_ok(a, "reload"));
}

/* The worker node name's bound session count ("session"). */
static json_int_t
node_sessions(struct arb *a, const char *name)
{
	json_t *node = arb_status(a, name);
	assert_non_null(node);
	json_int_t n = arb_node_int(node, "session");
	json_decref(node);
	return n;
}

/* A reload from strict to none ends every binding as end_session does:
 * the worker gets cleanup_session for each (its programs are gone when
 * the next request reaches it), they leave the sessions count at once
 * and are not counted as expired. The session's next request runs
 * unbound, as any under none: no session_reset (nothing is bound that
 * could be lost), no session made, end_session finds none. */
static void
test_reload_to_none_ends_sessions(void **state)
{
	struct arb *a = start_reload_affinity(1, 0, "strict");
	json_decref(create_p(a, "n1"));
	json_decref(create_p(a, "n2"));
	assert_int_equal(cl_stat(a, "sessions"), 2);
	assert_int_equal(node_sessions(a, "pool/worker.1"), 2);
	reload_affinity(a, 1, 0, "none");
	assert_int_equal(cl_stat(a, "sessions"), 0);
	assert_int_equal(node_sessions(a, "pool/worker.1"), 0);
	assert_int_equal(cl_stat(a, "stale_sessions_cleaned"), 0);
	/* the notices went before this request: the worker answers in order */
	json_t *r = cl_exec_ok(a, "get_stats", NULL, NULL);
	json_t *res = json_object_get(r, "result");
	assert_int_equal(json_integer_value(json_object_get(res,
	    "sessions_count")), 0);
	assert_int_equal(json_integer_value(json_object_get(res,
	    "programs_count")), 0);
	json_decref(r);
	r = execute_p(a, "n1");
	assert_not_found(r);
	assert_false(cl_reply_reset(r));
	json_decref(r);
	assert_int_equal(cl_stat(a, "sessions"), 0);
	assert_false(end_session(a, "n1"));
	assert_int_equal(cl_stat(a, "total_sessions"), 2);
	assert_int_equal(arb_stop(a), 0);
}

/* An overflow worker kept up by a bound session (strict) idles out once
 * a reload to none has ended the binding, not session_ttl_ms later. */
static void
test_reload_to_none_frees_overflow(void **state)
{
	struct arb *a = start_reload_affinity(1, 1, "strict");
	struct cl_conn *busy = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 3000), NULL, "busy", 1);
	char w[64];
	create_on(a, "ov", w, sizeof w);	/* waits: overflow.1 starts */
	assert_string_equal(w, "pool/overflow.1");
	json_int_t pid = cl_worker_pid(a, w);
	assert_true(pid > 0);
	reload_affinity(a, 1, 1, "none");
	json_t *tree = arb_wait_for(a, no_overflow, NULL, ARB_EVENT_MS,
	    "pool/overflow.1 gone once a reload to none ended its session");
	assert_non_null(tree);
	json_decref(tree);
	assert_true(proc_wait_gone((pid_t)pid, ARB_EVENT_MS));
	assert_int_equal(cl_stat(a, "stale_sessions_cleaned"), 0);
	json_decref(cl_recv_ok(busy, ARB_REPLY_MS, "worker.1's sleep"));
	cl_close(busy);
	assert_int_equal(arb_stop(a), 0);
}

/* A request that waits for its session's busy worker under strict waits
 * for any worker once a reload to none has ended the binding: an idle
 * one takes it at once, long before the busy one is free. */
static void
test_reload_to_none_frees_strict_waiter(void **state)
{
	struct arb *a = start_reload_affinity(2, 0, "strict");
	char w[64];
	create_on(a, "sw", w, sizeof w);
	struct cl_conn *busy = cl_send_held(a, 1, "sleep",
	    cl_hold_args(HOLD_MS), 	    "sw", "busy", 1);
	struct cl_conn *waiter = cl_send_held(a, 2, "echo", NULL, "sw",
	    "waiting", 1);
	long long t0 = arb_now_ms();
	reload_affinity(a, 2, 0, "none");
	json_t *r = cl_recv_ok(waiter, ARB_REPLY_MS, "the waiter after the reload");
	assert_string_not_equal(cl_reply_worker(r), w);
	assert_false(cl_reply_reset(r));
	json_decref(r);
	assert_true(arb_now_ms() - t0 < 8000);	/* not behind the sleep */
	cl_close(waiter);
	cl_release(a, w);
	json_decref(cl_recv_ok(busy, ARB_REPLY_MS, "the sleep"));
	cl_close(busy);
	assert_int_equal(cl_stat(a, "sessions"), 0);
	assert_int_equal(arb_stop(a), 0);
}

/* One worker under bridge (a bridge group's body), whose notices are
 * allowed request_timeout_ms = 1000 and which gets no health pings. */
static struct arb *
start_notice_tree(const char *bridge, const char *name)
{
	char body[1024];
	snprintf(body, sizeof body,
	    "bridge = { adapter = \"bridge_mock\"; %s };\n"
	    "pool = { size = 1; max_overflow = 0; affinity = \"strict\";\n"
	    "  max_restarts = 100; };\n"
	    "worker = { restart_delay_ms = 0; request_timeout_ms = 1000;\n"
	    "  health_interval_ms = 0; };\n"
	    "environments = { dev = { }; };\n", bridge);
	struct arb *a = arb_start(body, "dev", NULL);
	arb_wait_ready_pid(a, name, 0);
	return a;
}

/* Session B ends while its worker runs session A's sleep, which carries a
 * timeout_ms well beyond request_timeout_ms. The worker answers in order,
 * so B's cleanup_session waits behind the sleep: that must not get the
 * worker killed (the sleep failing with worker_crashed), only a notice
 * that is not answered once the worker is through with the sleep. */
static void
notice_behind_long_request(const char *bridge, const char *name)
{
	struct arb *a = start_notice_tree(bridge, name);
	json_t *r = arb_call_ok(a, cl_exec_req(1, "echo", NULL, "B", 20000));
	assert_string_equal(cl_reply_worker(r), name);
	json_decref(r);
	json_int_t pid = cl_worker_pid(a, name);
	assert_true(pid > 0);

	struct cl_conn *c = cl_open(a);
	json_t *req = cl_exec_req(2, "sleep", json_pack("{s:i}", "ms", 3000),
	    "A", 20000);
	cl_send(c, req);
	json_decref(req);
	json_t *node = arb_wait_node(a, name, "busy", 0, ARB_EVENT_MS);
	assert_non_null(node);
	json_decref(node);
	assert_true(end_session(a, "B"));	/* cleanup_session, queued */

	r = cl_recv(c, ARB_REPLY_MS);
	if (!arb_reply_ok(r)) {
		char *s = cl_describe(r);
		fail_msg("the sleep ahead of cleanup_session: %s", s);
	}
	assert_string_equal(cl_reply_worker(r), name);
	json_decref(r);
	cl_close(c);
	/* The notice was answered after the sleep: the worker lives on. */
	assert_false(cl_echo_reset(a, "A"));
	assert_int_equal(cl_worker_pid(a, name), pid);
	assert_false(arb_log_contains(a, "killing"));
	assert_int_equal(arb_stop(a), 0);
}

static void
test_end_session_behind_long_request_pool(void **state)
{
	notice_behind_long_request("pooling_enabled = true;", "pool/worker.1");
}

static void
test_end_session_behind_long_request_single(void **state)
{
	notice_behind_long_request("", "bridge/worker");
}

/* A session ended while its request A is at a worker, and made anew
 * under the same id by request B: A's end is not B's. B keeps the new
 * session busy to its own end, longer than session_ttl_ms after A's. */
static void
ttl_spares_session_made_anew(const char *bridge, const char *sup,
    size_t n)
{
	char body[1024];
	snprintf(body, sizeof body,
	    "bridge = { adapter = \"bridge_mock\"; %s };\n"
	    "pool = { size = 2; max_overflow = 0; affinity = \"strict\";\n"
	    "  session_ttl_ms = 1000; max_restarts = 100; };\n"
	    "worker = { restart_delay_ms = 0; };\n"
	    "environments = { dev = { }; };\n", bridge);
	struct arb *a = arb_start(body, "dev", NULL);
	json_t *tree = arb_wait_all_ready(a, sup, n, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	struct cl_conn *ca = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1000), "s", "busy", 1);
	assert_true(end_session(a, "s"));
	struct cl_conn *cb = cl_open(a);
	json_t *req = cl_exec_req(2, "sleep", json_pack("{s:i}", "ms", 3000),
	    "s", 0);
	cl_send(cb, req);
	json_decref(req);
	for (int i = 0; i < 2; i++) {
		json_t *r = cl_recv(i == 0 ? ca : cb, ARB_REPLY_MS);
		if (r == NULL || !arb_reply_ok(r))
			fail_msg("request %c: %s", "AB"[i], r ? cl_describe(r) :
			    "no reply");
		json_decref(r);
	}
	cl_close(ca);
	cl_close(cb);
	/* B's session was busy until now: its ttl counts from here. */
	assert_int_equal(cl_stat(a, "stale_sessions_cleaned"), 0);
	assert_int_equal(cl_stat(a, "sessions"), 1);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_ttl_spares_session_made_anew_pool(void **state)
{
	ttl_spares_session_made_anew("pooling_enabled = true;", "pool", 2);
}

static void
test_ttl_spares_session_made_anew_single(void **state)
{
	ttl_spares_session_made_anew("", "bridge", 1);
}

/* A session ended while a request of it waits for its (strict) worker:
 * the request, once served, builds its state in the session made anew
 * (as in single mode), so the session is bound again and a later
 * end_session ends it and cleans that state up. */
static void
test_end_session_while_waiting_pool(void **state)
{
	struct arb *a = start_pool(2, "strict", NULL);
	char w[64];
	bind_session(a, "ew", w, sizeof w);
	struct cl_conn *busy = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1500), "ew", "busy", 1);
	struct cl_conn *waiter = cl_send_held(a, 2, "create_program",
	    json_pack("{s:s,s:s}", "program_id", "p", "signature",
	    "question -> answer"), "ew", "waiting", 1);
	assert_true(end_session(a, "ew"));
	json_t *r = cl_recv_ok(busy, ARB_REPLY_MS, "the sleep");
	json_decref(r);
	r = cl_recv_ok(waiter, ARB_REPLY_MS, "the request that waited");
	assert_string_equal(cl_reply_worker(r), w);
	json_decref(r);
	cl_close(busy);
	cl_close(waiter);
	assert_int_equal(cl_stat(a, "sessions"), 1);
	json_t *tree = arb_status(a, w);
	assert_int_equal(arb_node_int(tree, "session"), 1);
	json_decref(tree);
	r = execute_p(a, "ew");		/* bound again: its program is there */
	assert_true(arb_reply_ok(r));
	assert_string_equal(cl_reply_worker(r), w);
	json_decref(r);
	assert_true(end_session(a, "ew"));
	r = execute_p(a, "ew");		/* and cleaned up with the session */
	assert_not_found(r);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* The same, but the session is made anew on another worker (by a
 * request that found one idle) before the old waiter is served: under
 * strict the waiter follows the new binding and does not move the session
 * off the worker that holds its program. */
static void
test_old_waiter_follows_session_made_anew(void **state)
{
	struct arb *a = start_pool(2, "strict", NULL);
	char w[64], w2[64];
	bind_session(a, "fw", w, sizeof w);
	struct cl_conn *busy = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 1500), "fw", "busy", 1);
	struct cl_conn *waiter = cl_send_held(a, 2, "echo", NULL, "fw",
	    "waiting", 1);
	assert_true(end_session(a, "fw"));
	create_on(a, "fw", w2, sizeof w2);	/* on the idle worker */
	assert_string_not_equal(w2, w);
	json_t *r = cl_recv_ok(waiter, ARB_REPLY_MS, "the request that waited");
	assert_string_equal(cl_reply_worker(r), w2);
	json_decref(r);
	r = cl_recv_ok(busy, ARB_REPLY_MS, "the sleep");
	json_decref(r);
	cl_close(busy);
	cl_close(waiter);
	r = execute_p(a, "fw");
	assert_true(arb_reply_ok(r));
	assert_string_equal(cl_reply_worker(r), w2);
	json_decref(r);
	assert_int_equal(arb_stop(a), 0);
}

/* A request refused before a worker took it (overloaded, pool_timeout)
 * leaves no session behind when it was the one that made it, even with
 * two requests of that new session waiting at once; a session served
 * before is kept. Pending sessions are not counted while they wait, and
 * the session is made (counted in total_sessions) when served. */
static void
refused_leaves_no_session(const char *bridge, const char *sup,
    const char *name)
{
	char body[1024];
	snprintf(body, sizeof body,
	    "bridge = { adapter = \"bridge_mock\"; %s };\n"
	    "pool = { size = 1; max_overflow = 0; affinity = \"strict\";\n"
	    "  checkout_timeout_ms = 2000; max_waiting = 3; max_restarts = 100; };\n"
	    "worker = { restart_delay_ms = 0; max_inflight = 1; };\n"
	    "environments = { dev = { }; };\n", bridge);
	struct arb *a = start_bound(body, sup, name, "old");
	struct cl_conn *busy = cl_send_held(a, 1, "sleep",
	    json_pack("{s:i}", "ms", 4000), NULL, "busy", 1);
	struct cl_conn *w1 = cl_send_held(a, 2, "echo", NULL, "new", "waiting", 1);
	struct cl_conn *w2 = cl_send_held(a, 3, "echo", NULL, "new", "waiting", 2);
	struct cl_conn *w3 = cl_send_held(a, 4, "echo", NULL, "old", "waiting", 3);
	json_decref(cl_exec_err(a, "echo", NULL, "other", "overloaded"));
	assert_int_equal(cl_stat(a, "sessions"), 1);	/* "new" only waits */
	struct cl_conn *waiters[] = { w1, w2, w3 };
	for (int i = 0; i < 3; i++) {
		json_t *r = cl_recv(waiters[i], ARB_REPLY_MS);
		const char *code = r ? arb_reply_code(r) : NULL;
		if (code == NULL || strcmp(code, "pool_timeout") != 0)
			fail_msg("waiter %d: expected pool_timeout, got %s", i + 1,
			    r ? cl_describe(r) : "no reply");
		json_decref(r);
		cl_close(waiters[i]);
	}
	assert_int_equal(cl_stat(a, "sessions"), 1);
	assert_int_equal(cl_stat(a, "total_sessions"), 1);
	json_t *node = arb_status(a, name);
	assert_int_equal(arb_node_int(node, "session"), 1);
	json_decref(node);
	assert_false(end_session(a, "new"));
	assert_false(end_session(a, "other"));
	json_decref(cl_recv_ok(busy, ARB_REPLY_MS, "the held request"));
	cl_close(busy);
	/* Served now, "new" is made; "old" lived on throughout. */
	json_decref(cl_exec_ok(a, "echo", NULL, "new"));
	assert_int_equal(cl_stat(a, "sessions"), 2);
	assert_int_equal(cl_stat(a, "total_sessions"), 2);
	assert_true(end_session(a, "old"));
	assert_true(end_session(a, "new"));
	assert_int_equal(arb_stop(a), 0);
}

static void
test_refused_leaves_no_session_pool(void **state)
{
	refused_leaves_no_session("pooling_enabled = true;", "pool",
	    "pool/worker.1");
}

static void
test_refused_leaves_no_session_single(void **state)
{
	refused_leaves_no_session("", "bridge", "bridge/worker");
}

/* A notice that an otherwise idle worker does not answer within
 * request_timeout_ms still gets it killed and replaced, and the log says
 * it was the notice (not a ping) that went unanswered. */
static void
test_unanswered_notice_kills(void **state)
{
	const char *name = "pool/worker.1";
	struct arb *a = start_notice_tree("pooling_enabled = true;", name);
	json_decref(cl_exec_ok(a, "deafen", NULL, "D"));
	json_int_t pid = cl_worker_pid(a, name);
	assert_true(pid > 0);
	assert_true(end_session(a, "D"));
	arb_wait_ready_pid(a, name, pid);
	assert_true(arb_log_has_line(a, name, "killing", "cleanup_session",
	    "not answered", NULL));
	assert_false(arb_log_contains(a, "ping not answered"));
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_strict_keeps_programs, arb_teardown),
		cmocka_unit_test_teardown(test_strict_balances_new_sessions, arb_teardown),
		cmocka_unit_test_teardown(test_none_loses_programs, arb_teardown),
		cmocka_unit_test_teardown(test_end_session, arb_teardown),
		cmocka_unit_test_teardown(test_session_reset_after_worker_death, arb_teardown),
		cmocka_unit_test_teardown(test_session_ttl_expiry, arb_teardown),
		cmocka_unit_test_teardown(test_ttl_spares_session_in_flight, arb_teardown),
		cmocka_unit_test_teardown(test_ttl_spares_session_waiting, arb_teardown),
		cmocka_unit_test_teardown(test_prefer_moves_off_busy_worker, arb_teardown),
		cmocka_unit_test_teardown(test_prefer_move_cleans_up_left_worker,
		    arb_teardown),
		cmocka_unit_test_teardown(test_prefer_reset_told_by_first_reply,
		    arb_teardown),
		cmocka_unit_test_teardown(
		    test_prefer_reset_told_by_request_sent_before_loss,
		    arb_teardown),
		cmocka_unit_test_teardown(test_prefer_reset_told_by_waiter,
		    arb_teardown),
		cmocka_unit_test_teardown(test_prefer_left_worker_lost_no_reset,
		    arb_teardown),
		cmocka_unit_test_teardown(
		    test_prefer_reset_three_workers_teller_lost, arb_teardown),
		cmocka_unit_test_teardown(test_strict_refused_waiter_tells_reset,
		    arb_teardown),
		cmocka_unit_test_teardown(test_strict_overloaded_tells_reset,
		    arb_teardown),
		cmocka_unit_test_teardown(test_prefer_overloaded_tells_reset,
		    arb_teardown),
		cmocka_unit_test_teardown(test_single_overloaded_tells_reset,
		    arb_teardown),
		cmocka_unit_test_teardown(test_single_refused_waiter_tells_reset,
		    arb_teardown),
		cmocka_unit_test_teardown(
		    test_prefer_refusal_takes_notice_in_flight, arb_teardown),
		cmocka_unit_test_teardown(
		    test_single_refusal_takes_notice_in_flight, arb_teardown),
		cmocka_unit_test_teardown(
		    test_prefer_reset_three_workers_new_worker_lost, arb_teardown),
		cmocka_unit_test_teardown(test_strict_waits_for_busy_worker, arb_teardown),
		cmocka_unit_test_teardown(test_strict_waiter_moves_when_worker_stops, arb_teardown),
		cmocka_unit_test_teardown(test_strict_waiter_gets_overflow_when_worker_stops, arb_teardown),
		cmocka_unit_test_teardown(test_strict_waiters_start_no_overflow, arb_teardown),
		cmocka_unit_test_teardown(test_strict_overflow_keeps_session,
		    arb_teardown),
		cmocka_unit_test_teardown(test_prefer_overflow_keeps_session,
		    arb_teardown),
		cmocka_unit_test_teardown(test_reload_to_none_ends_sessions,
		    arb_teardown),
		cmocka_unit_test_teardown(test_reload_to_none_frees_overflow,
		    arb_teardown),
		cmocka_unit_test_teardown(test_reload_to_none_frees_strict_waiter,
		    arb_teardown),
		cmocka_unit_test_teardown(test_end_session_behind_long_request_pool, arb_teardown),
		cmocka_unit_test_teardown(test_end_session_behind_long_request_single, arb_teardown),
		cmocka_unit_test_teardown(test_ttl_spares_session_made_anew_pool,
		    arb_teardown),
		cmocka_unit_test_teardown(test_ttl_spares_session_made_anew_single,
		    arb_teardown),
		cmocka_unit_test_teardown(test_unanswered_notice_kills, arb_teardown),
		cmocka_unit_test_teardown(test_end_session_while_waiting_pool,
		    arb_teardown),
		cmocka_unit_test_teardown(test_old_waiter_follows_session_made_anew,
		    arb_teardown),
		cmocka_unit_test_teardown(test_refused_leaves_no_session_pool,
		    arb_teardown),
		cmocka_unit_test_teardown(test_refused_leaves_no_session_single,
		    arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
