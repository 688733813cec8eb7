/* Unit tests for supervisor/waitq.c (with supervisor/job.c): jobs waiting
 * for a worker in arrival order, each with a deadline served by one timer
 * on the default libev loop. Expiry is waited for by running the loop
 * until it has happened, bounded by a generous deadline. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ev.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/msg.h"
#include "proto/xmalloc.h"
#include "supervisor/clock.h"
#include "supervisor/job.h"
#include "supervisor/waitq.h"
#include "tests/unit/evwait.h"

#define LOOP		EV_DEFAULT
#define BOUND_S		10.0	/* the most any wait may take */
#define MAX_JOBS	64

struct fx {
	struct waitq	 q;
	/* Expired jobs, in the order the waitq handed them out. */
	int		 nexpired;
	json_int_t	 expired_ids[MAX_JOBS];
	ev_tstamp	 expired_at[MAX_JOBS];
	ev_tstamp	 expired_deadline[MAX_JOBS];
	size_t		 n_at_expiry[MAX_JOBS];	/* q.n when handed out */
	/* Replies of finished jobs, by request id. */
	int		 ndone;
	int		 bad_replies;		/* a second reply, or a bad id */
	char		*codes[MAX_JOBS];	/* "ok" or the error code */
	json_t		*last;			/* the last reply */
};

/* The done callback: records the reply (borrowed JSON text) by its id. */
static void
on_done(struct job *j, const char *text, size_t len)
{
	struct fx *fx = j->arg;
	json_t *reply = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	if (reply == NULL) {
		fx->bad_replies++;	/* not JSON */
		return;
	}
	json_decref(fx->last);
	fx->last = json_incref(reply);
	json_int_t id = json_integer_value(json_object_get(reply, "id"));
	fx->ndone++;
	if (id < 0 || id >= MAX_JOBS || fx->codes[id] != NULL) {
		fx->bad_replies++;	/* exactly one reply per job */
		json_decref(reply);
		return;
	}
	if (json_is_true(json_object_get(reply, "ok")))
		fx->codes[id] = xstrdup("ok");
	else
		fx->codes[id] = xstrdup(json_string_value(json_object_get(
		    json_object_get(reply, "error"), "code")));
	json_decref(reply);
}

/* The owner's expiry handler: the job is already out of the waitq; fail
 * it as the pool does. */
static void
on_expired(struct job *j, void *arg)
{
	struct fx *fx = arg;
	int k = fx->nexpired++;
	if (k >= MAX_JOBS) {
		job_fail(j, ERR_POOL_TIMEOUT, "too many");
		return;
	}
	fx->expired_ids[k] = atoi(j->id);
	fx->expired_at[k] = clock_now();
	fx->expired_deadline[k] = j->deadline;
	fx->n_at_expiry[k] = fx->q.n;
	job_fail(j, ERR_POOL_TIMEOUT, "no worker within the checkout timeout");
}

static struct job *
mkjob(struct fx *fx, int id)
{
	char idt[16];
	json_t *args = json_pack("{s:i}", "n", id);
	snprintf(idt, sizeof idt, "%d", id);
	struct job *j = job_new_json(idt, strlen(idt), "echo", args, NULL, 0,
	    on_done, fx);
	json_decref(args);
	return j;
}

static struct fx *
fx_new(int timeout_ms, int max)
{
	struct fx *fx = xcalloc(1, sizeof *fx);
	(void)ev_default_loop(0);
	ev_now_update(LOOP);
	waitq_init(&fx->q, timeout_ms, max, on_expired, fx);
	return fx;
}

static int
setup(void **state)
{
	*state = fx_new(60000, 16);
	return 0;
}

static int
setup_short(void **state)
{
	*state = fx_new(100, 16);
	return 0;
}

/* Fails whatever still waits (so no job leaks), then frees the fixture. */
static int
teardown(void **state)
{
	struct fx *fx = *state;
	struct job *j;
	while ((j = waitq_first(&fx->q)) != NULL) {
		waitq_remove(&fx->q, j);
		job_fail(j, ERR_SHUTTING_DOWN, "test over");
	}
	waitq_release(&fx->q);
	json_decref(fx->last);
	int rc = 0;
	if (fx->bad_replies) {
		fprintf(stderr, "%d job(s) replied to more than once\n",
		    fx->bad_replies);
		rc = -1;
	}
	for (int i = 0; i < MAX_JOBS; i++)
		free(fx->codes[i]);
	free(fx);
	return rc;
}

/* ---- running the loop until something happened ------------------------ */

struct want_n {
	struct fx	*fx;
	int		 n;
};

static bool
expired_n(void *arg)
{
	struct want_n *w = arg;
	return w->fx->nexpired >= w->n;
}

static bool
timer_stopped(void *arg)
{
	struct fx *fx = arg;
	return !ev_is_active(&fx->q.timer.t);
}

static bool
wait_expired(struct fx *fx, int n, double bound_s)
{
	struct want_n w = { fx, n };
	return evwait_until(expired_n, &w, bound_s, 0);
}

/* ---- order and bounds ---------------------------------------------------- */

static void
test_fifo(void **state)
{
	struct fx *fx = *state;
	struct job *jobs[5];
	assert_null(waitq_first(&fx->q));
	for (int i = 0; i < 5; i++) {
		jobs[i] = mkjob(fx, i);
		waitq_add(&fx->q, jobs[i]);
		assert_int_equal(fx->q.n, (size_t)i + 1);
		assert_ptr_equal(waitq_first(&fx->q), jobs[0]);
	}
	/* Arrival order is also seq order. */
	for (int i = 1; i < 5; i++)
		assert_true(jobs[i]->seq > jobs[i - 1]->seq);
	/* Taking from the head hands them out in arrival order. */
	for (int i = 0; i < 5; i++) {
		struct job *j = waitq_first(&fx->q);
		assert_ptr_equal(j, jobs[i]);
		waitq_remove(&fx->q, j);
		assert_int_equal(fx->q.n, (size_t)(4 - i));
		job_ok(j, NULL, 0, "pool/worker.1");
	}
	assert_null(waitq_first(&fx->q));
	assert_int_equal(fx->ndone, 5);
	for (int i = 0; i < 5; i++)
		assert_string_equal(fx->codes[i], "ok");
	assert_int_equal(fx->nexpired, 0);
}

/* Removing from the middle and the tail keeps the others in order. */
static void
test_remove_middle_and_tail(void **state)
{
	struct fx *fx = *state;
	struct job *jobs[5];
	for (int i = 0; i < 5; i++)
		waitq_add(&fx->q, jobs[i] = mkjob(fx, i));
	waitq_remove(&fx->q, jobs[2]);
	job_fail(jobs[2], ERR_WORKER_CRASHED, "x");
	waitq_remove(&fx->q, jobs[4]);
	job_fail(jobs[4], ERR_WORKER_CRASHED, "x");
	assert_int_equal(fx->q.n, 3);
	static const int left[] = { 0, 1, 3 };
	struct job *j;
	int k = 0;
	TAILQ_FOREACH(j, &fx->q.all, all)
		assert_ptr_equal(j, jobs[left[k++]]);
	assert_int_equal(k, 3);
	assert_string_equal(fx->codes[2], "worker_crashed");
	assert_string_equal(fx->codes[4], "worker_crashed");
}

static void
test_full(void **state)
{
	struct fx *fx = fx_new(60000, 3);
	struct job *jobs[3];
	*state = fx;
	assert_false(waitq_full(&fx->q));
	for (int i = 0; i < 3; i++) {
		assert_false(waitq_full(&fx->q));
		waitq_add(&fx->q, jobs[i] = mkjob(fx, i));
	}
	assert_true(waitq_full(&fx->q));
	waitq_remove(&fx->q, jobs[1]);
	job_fail(jobs[1], ERR_OVERLOADED, "x");
	assert_false(waitq_full(&fx->q));
	waitq_add(&fx->q, jobs[1] = mkjob(fx, 10));
	assert_true(waitq_full(&fx->q));

	/* A larger max (a reload) makes room; a smaller one is full at once. */
	waitq_configure(&fx->q, 60000, 4);
	assert_false(waitq_full(&fx->q));
	waitq_configure(&fx->q, 60000, 2);
	assert_true(waitq_full(&fx->q));
	assert_int_equal(fx->q.n, 3);
}

/* max 0: no job may wait. */
static void
test_full_at_zero(void **state)
{
	struct fx *fx = fx_new(60000, 0);
	*state = fx;
	assert_true(waitq_full(&fx->q));
}

/* ---- expiry -------------------------------------------------------------- */

/* Jobs added together expire in arrival order, each no earlier than its
 * deadline, and each gets exactly one reply. */
static void
test_expiry_in_order(void **state)
{
	struct fx *fx = *state;
	for (int i = 0; i < 4; i++)
		waitq_add(&fx->q, mkjob(fx, i));
	assert_true(ev_is_active(&fx->q.timer.t));
	assert_true(wait_expired(fx, 4, BOUND_S));
	for (int i = 0; i < 4; i++) {
		assert_int_equal(fx->expired_ids[i], i);
		assert_true(fx->expired_at[i] >= fx->expired_deadline[i]);
		assert_string_equal(fx->codes[i], "pool_timeout");
	}
	assert_int_equal(fx->ndone, 4);
	assert_int_equal(fx->q.n, 0);
	assert_null(waitq_first(&fx->q));
	assert_false(ev_is_active(&fx->q.timer.t));
}

/* Jobs that arrive at different times expire one by one, in order, each
 * at its own deadline: the later ones are still waiting when the first
 * expires (the timer re-arms for the next head). */
static void
test_expiry_staggered(void **state)
{
	struct fx *fx = fx_new(300, 16);
	struct job *jobs[3];
	*state = fx;
	for (int i = 0; i < 3; i++) {
		if (i > 0)
			evwait_for(0.1);
		ev_now_update(LOOP);
		waitq_add(&fx->q, jobs[i] = mkjob(fx, i));
		assert_true(jobs[i]->deadline > clock_now() + 0.299);
	}
	assert_true(wait_expired(fx, 3, BOUND_S));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fx->expired_ids[i], i);
		assert_true(fx->expired_at[i] >= fx->expired_deadline[i]);
		if (i > 0)
			assert_true(fx->expired_deadline[i] >
			    fx->expired_deadline[i - 1]);
	}
	/* On an unloaded machine the first one expired while the others
	 * were still queued; loaded, several may expire in one callback.
	 * Either way the queue only ever shrank from the head. */
	for (int i = 0; i < 3; i++)
		assert_true(fx->n_at_expiry[i] <= (size_t)(2 - i));
	assert_false(ev_is_active(&fx->q.timer.t));
}

/* A job added after others expired re-arms the timer and expires too. */
static void
test_expiry_again(void **state)
{
	struct fx *fx = *state;
	waitq_add(&fx->q, mkjob(fx, 0));
	assert_true(wait_expired(fx, 1, BOUND_S));
	assert_false(ev_is_active(&fx->q.timer.t));
	ev_now_update(LOOP);
	waitq_add(&fx->q, mkjob(fx, 1));
	assert_true(ev_is_active(&fx->q.timer.t));
	assert_true(wait_expired(fx, 2, BOUND_S));
	assert_int_equal(fx->expired_ids[1], 1);
	assert_string_equal(fx->codes[1], "pool_timeout");
}

/* A job that waited before (taken out of one waitq, as a reload moves it
 * to a new subtree) keeps its deadline in the next, clamped to that
 * one's timeout, and its place by arrival ahead of a job that came after
 * it but was added first. */
static void
test_moved_job_keeps_deadline(void **state)
{
	struct fx *fx = fx_new(60000, 16);
	*state = fx;
	struct waitq old;
	waitq_init(&old, 60000, 16, on_expired, fx);
	struct job *a = mkjob(fx, 0), *b;
	waitq_add(&old, a);
	ev_tstamp first = a->deadline;
	evwait_for(0.05);
	ev_now_update(LOOP);
	waitq_add(&fx->q, b = mkjob(fx, 1));
	waitq_remove(&old, a);
	waitq_release(&old);
	waitq_add(&fx->q, a);
	assert_true(a->deadline == first);
	assert_ptr_equal(waitq_first(&fx->q), a);
	assert_ptr_equal(TAILQ_NEXT(a, all), b);

	waitq_remove(&fx->q, a);	/* into a queue of a shorter wait */
	waitq_configure(&fx->q, 100, 16);
	waitq_add(&fx->q, a);
	assert_true(a->deadline <= clock_now() + 0.1);
	assert_ptr_equal(waitq_first(&fx->q), a);
}

/* A job taken off the queue before its deadline never expires. */
static void
test_removed_does_not_expire(void **state)
{
	struct fx *fx = *state;
	struct job *a = mkjob(fx, 0), *b = mkjob(fx, 1);
	waitq_add(&fx->q, a);
	waitq_add(&fx->q, b);
	waitq_remove(&fx->q, b);
	job_ok(b, "null", 4, "pool/worker.1");
	assert_true(wait_expired(fx, 1, BOUND_S));
	evwait_for(0.3);		/* three timeouts more */
	assert_int_equal(fx->nexpired, 1);
	assert_int_equal(fx->expired_ids[0], 0);
	assert_string_equal(fx->codes[0], "pool_timeout");
	assert_string_equal(fx->codes[1], "ok");
}

/* The timer is kept lazily: removing the head leaves it armed for the old
 * head's deadline, earlier than the new head's. When it fires there, the
 * new head does not expire: the timer moves on to its deadline, and only
 * there does it expire. Once the queue is empty, a firing timer expires
 * nothing and stops. */
static void
test_remove_head_keeps_the_next_deadline(void **state)
{
	struct fx *fx = fx_new(1000, 16);
	*state = fx;
	struct job *a = mkjob(fx, 0), *b = mkjob(fx, 1);
	waitq_add(&fx->q, a);
	ev_tstamp a_deadline = a->deadline;
	evwait_for(0.2);
	ev_now_update(LOOP);
	waitq_add(&fx->q, b);
	ev_tstamp b_deadline = b->deadline;
	assert_true(b_deadline - a_deadline > 0.1);
	assert_int_equal(fx->nexpired, 0);

	waitq_remove(&fx->q, a);
	job_ok(a, NULL, 0, "pool/worker.1");
	/* Never later than the head's deadline. */
	assert_true(ev_is_active(&fx->q.timer.t));
	assert_true(clock_now() + ev_timer_remaining(LOOP, &fx->q.timer.t) <=
	    b_deadline + 0.005);

	/* A job that is not the head comes and goes: nothing changes. */
	struct job *c = mkjob(fx, 2);
	waitq_add(&fx->q, c);
	waitq_remove(&fx->q, c);
	job_ok(c, NULL, 0, "pool/worker.1");

	assert_true(wait_expired(fx, 1, BOUND_S));
	assert_int_equal(fx->expired_ids[0], 1);
	assert_true(fx->expired_deadline[0] == b_deadline);
	assert_true(fx->expired_at[0] >= b_deadline);

	/* The only job removed: when the timer fires, nothing expires and the
	 * timer stops. */
	struct job *d = mkjob(fx, 3);
	ev_now_update(LOOP);
	waitq_add(&fx->q, d);
	assert_true(ev_is_active(&fx->q.timer.t));
	waitq_remove(&fx->q, d);
	job_ok(d, NULL, 0, "pool/worker.1");
	assert_true(evwait_until(timer_stopped, fx, BOUND_S, 0));
	assert_int_equal(fx->nexpired, 1);
	assert_int_equal(fx->q.n, 0);
	assert_string_equal(fx->codes[0], "ok");
	assert_string_equal(fx->codes[1], "pool_timeout");
	assert_string_equal(fx->codes[2], "ok");
	assert_string_equal(fx->codes[3], "ok");
}

/* A job with an earlier deadline than the armed timer (the wait bound was
 * shortened) moves the timer to it. */
static void
test_earlier_deadline_moves_the_timer(void **state)
{
	struct fx *fx = fx_new(60000, 16);
	*state = fx;
	struct job *a = mkjob(fx, 0);
	waitq_add(&fx->q, a);
	waitq_remove(&fx->q, a);
	job_ok(a, NULL, 0, "pool/worker.1");
	assert_true(ev_is_active(&fx->q.timer.t));	/* armed for a's 60 s */
	waitq_configure(&fx->q, 100, 16);
	ev_now_update(LOOP);
	struct job *b = mkjob(fx, 1);
	waitq_add(&fx->q, b);
	ev_tstamp b_deadline = b->deadline;
	assert_true(ev_timer_remaining(LOOP, &fx->q.timer.t) < 0.2);
	assert_true(wait_expired(fx, 1, 5.0));	/* not the 60 s */
	assert_int_equal(fx->expired_ids[0], 1);
	assert_true(fx->expired_at[0] >= b_deadline);
}

/* waitq_release stops the timer; the jobs stay for the owner. */
static void
test_release_keeps_jobs(void **state)
{
	struct fx *fx = *state;
	waitq_add(&fx->q, mkjob(fx, 0));
	waitq_release(&fx->q);
	assert_false(ev_is_active(&fx->q.timer.t));
	assert_int_equal(fx->q.n, 1);
	assert_non_null(waitq_first(&fx->q));
	evwait_for(0.3);
	assert_int_equal(fx->nexpired, 0);
	/* teardown fails the job */
}

/* After a reload shortens the wait (pool.checkout_timeout_ms), every job
 * expires within the new timeout: the one that arrives then, and the older
 * one at the head that had the old, longer deadline. */
static void
test_configure_shorter_timeout(void **state)
{
	struct fx *fx = fx_new(30000, 16);
	*state = fx;
	waitq_add(&fx->q, mkjob(fx, 0));
	waitq_configure(&fx->q, 100, 16);
	ev_now_update(LOOP);
	waitq_add(&fx->q, mkjob(fx, 1));
	/* 100 ms is the bound; 5 s is generous even on a loaded machine. */
	/* The shorter bound applies to the job already waiting too, so both
	 * expire, in arrival order. */
	bool ok = evwait_until(expired_n, &(struct want_n){ fx, 2 }, 5.0, 0);
	assert_true(ok);
	assert_int_equal(fx->expired_ids[0], 0);
	assert_int_equal(fx->expired_ids[1], 1);
	assert_string_equal(fx->codes[1], "pool_timeout");
}

/* The reply of a job carries its id, and job_fail's code. */
static void
test_job_reply_codes(void **state)
{
	struct fx *fx = *state;
	struct job *j = mkjob(fx, 7);
	assert_string_equal(j->command, "echo");
	assert_null(j->session);
	job_fail(j, ERR_OVERLOADED, "too many waiting: %d", 3);
	assert_string_equal(fx->codes[7], "overloaded");
	struct job_req r = { .id = "8", .id_len = 1, .command = "x",
	    .command_len = 1, .session = "s1", .session_len = 2,
	    .timeout_ms = 10 };
	j = job_new(&r, on_done, fx);
	assert_string_equal(j->session, "s1");
	assert_string_equal(j->args, "{}");
	job_ok(j, "[1,\"a\"]", 7, "pool/\"w\".2");
	assert_string_equal(fx->codes[8], "ok");
	assert_int_equal(fx->bad_replies, 0);
	json_t *want = json_pack("{s:i,s:b,s:[i,s],s:s}", "id", 8, "ok", 1,
	    "result", 1, "a", "worker", "pool/\"w\".2");
	assert_true(json_equal(fx->last, want));
	json_decref(want);
	/* A job with args a jansson value, with a session reset, failing. */
	json_t *jid = json_pack("{s:s}", "k", "v"), *args = json_pack("[]");
	static const char idt[] = "{\"k\": \"v\"}";
	j = job_new_json(idt, strlen(idt), "y", args, NULL, 0, on_done, fx);
	j->session_reset = true;
	assert_string_equal(j->args, "[]");
	job_fail(j, ERR_TIMEOUT, "late by %d ms", 5);
	want = json_pack("{s:O,s:b,s:{s:s,s:s},s:b}", "id", jid, "ok", 0,
	    "error", "code", "timeout", "message", "late by 5 ms",
	    "session_reset", 1);
	assert_true(json_equal(fx->last, want));
	json_decref(want);
	json_decref(jid);
	json_decref(args);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_middle_and_tail,
		    setup, teardown),
		cmocka_unit_test_teardown(test_full, teardown),
		cmocka_unit_test_teardown(test_full_at_zero, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_in_order,
		    setup_short, teardown),
		cmocka_unit_test_teardown(test_expiry_staggered, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_again, setup_short,
		    teardown),
		cmocka_unit_test_setup_teardown(test_removed_does_not_expire,
		    setup_short, teardown),
		cmocka_unit_test_teardown(test_moved_job_keeps_deadline,
		    teardown),
		cmocka_unit_test_teardown(test_remove_head_keeps_the_next_deadline,
		    teardown),
		cmocka_unit_test_teardown(test_earlier_deadline_moves_the_timer,
		    teardown),
		cmocka_unit_test_setup_teardown(test_release_keeps_jobs,
		    setup_short, teardown),
		cmocka_unit_test_teardown(test_configure_shorter_timeout,
		    teardown),
		cmocka_unit_test_setup_teardown(test_job_reply_codes, setup,
		    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
