#include "supervisor/pool.h"

#include <ev.h>
#include <string.h>

#include "proto/jraw.h"
#include "proto/xmalloc.h"
#include "supervisor/child.h"
#include "supervisor/clock.h"
#include "supervisor/log.h"
#include "supervisor/session.h"
#include "supervisor/waitq.h"

#define LOOP		EV_DEFAULT_UC

/* The pool's view of one worker. */
struct pworker {
	struct pool		*pool;
	struct child		*c;
	bool			 overflow, idle, retiring;
	bool			 lazy_pending;	/* lazy: not started yet */
	int			 overflow_index;
	struct job		*job;		/* the job it holds */
	struct job_queue	 waiting;	/* strict sessions waiting for it */
	struct sess_anchor	 anchor;
	ev_timer		 t_idle;	/* overflow: stop when idle */
	double			 idle_from;	/* when its countdown began */
	TAILQ_ENTRY(pworker)	 idle_link;
};

struct pool {
	const struct config	*cfg;
	struct sup		*sup;
	const struct sup_events	*root_ev;
	void			*root;
	TAILQ_HEAD(, pworker)	 idle;		/* take from the head */
	struct job_queue	 waiting;	/* jobs any worker may take */
	size_t			 nany;		/* how many */
	struct waitq		 wq;		/* every waiting job, by arrival */
	size_t			 inflight;
	size_t			 resets;	/* of them, those due to tell a
						 * session_reset */
	uint64_t		 overflow_used;	/* bit i: overflow.(i+1) exists */
	int			 noverflow;
	int			 size;		/* pool workers (not overflow) */
	bool			 replaced;	/* by a reload: never grows */
	int			 nlazy;		/* lazy workers never started */
	struct sessions		*sessions;
	ev_timer		 t_grow;	/* grow for requeued waiters */
	struct route_stats	*st;		/* the root's: kept over reloads */
};

static void on_failed(struct sup *, void *);
static void on_stopped(struct sup *, void *);
static void on_ready(struct sup *, struct child *, void *);
static void on_down(struct sup *, struct child *, void *);
static void on_stopped_child(struct sup *, struct child *, void *);
static void on_starting(struct sup *, void *);
static const struct sup_events events = {
	.failed = on_failed, .stopped = on_stopped, .worker_ready = on_ready,
	.worker_idle = on_ready, .worker_down = on_down,
	.worker_stopped = on_stopped_child, .starting = on_starting,
};

static void on_wait_expired(struct job *, void *);
static void on_idle_timer(struct ev_loop *, ev_timer *, int);
static void on_grow_timer(struct ev_loop *, ev_timer *, int);
static void on_unbound(struct sess_anchor *);

static void
set_lazy(struct pworker *pw, bool lazy)
{
	pw->pool->nlazy += (int)lazy - (int)pw->lazy_pending;
	pw->lazy_pending = lazy;
}

static struct pworker *
pw_add(struct pool *p, const char *leaf, bool start, bool overflow)
{
	struct pworker *pw = xcalloc(1, sizeof *pw);
	pw->pool = p;
	pw->overflow = overflow;
	TAILQ_INIT(&pw->waiting);
	LIST_INIT(&pw->anchor.list);
	pw->anchor.worker = pw;
	pw->anchor.unbound = on_unbound;
	ev_init(&pw->t_idle, on_idle_timer);
	pw->t_idle.data = pw;
	pw->c = sup_add_worker(p->sup, leaf, start);
	child_set_udata(pw->c, pw);
	child_set_sessions(pw->c, &pw->anchor.n);
	pw->anchor.child = pw->c;
	return pw;
}

struct pool *
pool_new(const struct config *cfg, char *const *argv, struct registry *reg,
    struct route_stats *st, const struct sup_events *root_ev, void *root)
{
	struct pool *p = xcalloc(1, sizeof *p);
	p->cfg = cfg;
	p->st = st;
	p->root_ev = root_ev;
	p->root = root;
	TAILQ_INIT(&p->idle);
	TAILQ_INIT(&p->waiting);
	ev_init(&p->t_grow, on_grow_timer);
	p->t_grow.data = p;
	waitq_init(&p->wq, cfg->pool.checkout_timeout_ms, cfg->pool.max_waiting,
	    on_wait_expired, p);
	p->sessions = sess_new(cfg->pool.session_ttl_ms, sess_notify_cleanup,
	    NULL, &p->st->stale_sessions, &p->st->total_sessions);
	p->sup = sup_new("pool", cfg->pool.max_restarts, cfg->pool.max_seconds,
	    cfg, argv, reg, &events, p);
	p->size = cfg->pool.size;
	for (int i = 1; i <= cfg->pool.size; i++) {
		char leaf[32];
		snprintf(leaf, sizeof leaf, "worker.%d", i);
		struct pworker *pw = pw_add(p, leaf, !cfg->pool.lazy, false);
		set_lazy(pw, cfg->pool.lazy);
	}
	return p;
}

void
pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	pool_fail_waiting(p, ERR_SHUTTING_DOWN, "pool removed");
	ev_timer_stop(LOOP, &p->t_grow);
	size_t n = sup_nchildren(p->sup);
	struct pworker **pws = xcalloc(n, sizeof *pws);
	for (size_t i = 0; i < n; i++) {
		pws[i] = child_udata(sup_child(p->sup, i));
		pws[i]->anchor.unbound = NULL;	/* sess_free arms no timer */
	}
	sup_free(p->sup);	/* may fail jobs in flight: pws and sessions
				 * still live */
	sess_free(p->sessions);	/* unbinds from the pws' anchors */
	for (size_t i = 0; i < n; i++) {
		ev_timer_stop(LOOP, &pws[i]->t_idle);
		free(pws[i]);
	}
	free(pws);
	waitq_release(&p->wq);
	free(p);
}

struct sup *
pool_sup(const struct pool *p)
{
	return p->sup;
}

struct sessions *
pool_sessions(const struct pool *p)
{
	return p->sessions;
}

size_t
pool_pending(const struct pool *p)
{
	return p->inflight + p->wq.n;
}

/* ---- idle workers -------------------------------------------------------- */

static void
idle_remove(struct pworker *pw)
{
	if (!pw->idle)
		return;
	TAILQ_REMOVE(&pw->pool->idle, pw, idle_link);
	pw->idle = false;
	ev_timer_stop(LOOP, &pw->t_idle);
}

/* Sets an idle overflow worker's countdown to end overflow_idle_ms after
 * it began (at idle_from), at once if that is past. */
static void
idle_timer_set(struct pworker *pw)
{
	double at = pw->idle_from + pw->pool->cfg->pool.overflow_idle_ms /
	    1000.0 - clock_now();
	ev_timer_stop(LOOP, &pw->t_idle);	/* and on_down's check */
	ev_timer_set(&pw->t_idle, at > 0. ? at : 0., 0.);
	ev_timer_start(LOOP, &pw->t_idle);
}

/* An idle overflow worker starts counting down to its stop, unless it
 * holds bound sessions: their state lives in it, so it stays until the
 * last of them ends (on_unbound starts the countdown then). */
static void
idle_countdown(struct pworker *pw)
{
	if (!pw->overflow || !pw->idle || pw->anchor.n > 0)
		return;
	pw->idle_from = clock_now();
	idle_timer_set(pw);
}

/* fifo takes the worker idle the longest, lifo the one idle the shortest. */
static void
idle_insert(struct pworker *pw)
{
	struct pool *p = pw->pool;
	if (p->cfg->pool.strategy == STRATEGY_LIFO)
		TAILQ_INSERT_HEAD(&p->idle, pw, idle_link);
	else
		TAILQ_INSERT_TAIL(&p->idle, pw, idle_link);
	pw->idle = true;
	idle_countdown(pw);
}

/* The last session bound to a worker has ended (end_session, its ttl),
 * moved or been dropped: an idle overflow worker may stop from now on. */
static void
on_unbound(struct sess_anchor *a)
{
	idle_countdown(a->worker);
}

#define BALANCE_CANDIDATES	8	/* idle workers compared per new session */

/* The idle worker with the fewest bound sessions, for a new session:
 * among the first BALANCE_CANDIDATES idle ones, so that the choice costs
 * the same at 8 workers and at 1,024. */
static struct pworker *
idle_least_bound(struct pool *p)
{
	struct pworker *best = NULL, *pw;
	int seen = 0;
	TAILQ_FOREACH(pw, &p->idle, idle_link) {
		if (best == NULL || pw->anchor.n < best->anchor.n)
			best = pw;
		if (++seen == BALANCE_CANDIDATES)
			break;
	}
	return best;
}

static struct pool *p_of(struct pworker *pw) { return pw->pool; }

/* ---- checkout and checkin ------------------------------------------------ */

static void
fail_job(struct pool *p, struct job *j, enum msg_code code, const char *why)
{
	p->st->total++;
	p->st->failed++;
	p->st->pool_timeouts += code == ERR_POOL_TIMEOUT;
	job_fail(j, code, "%s", why);
}

/* Whether job's session is kept in the table (affinity not none). */
static bool
tracked(const struct pool *p, const struct job *job)
{
	return job->session && p->cfg->pool.affinity != AFFINITY_NONE;
}

/* Fails a job that never reached a worker (it waited, or none may).
 * Its reply is the next in its session, so it carries the reset notice
 * due there (SPEC 6), or the one a request still in flight took. */
static void
refuse(struct pool *p, struct job *j, enum msg_code code, const char *why)
{
	if (j->session_held || tracked(p, j))
		job_tell_reset(j, p->sessions, &p->resets);
	job_unhold(j, p->sessions);
	fail_job(p, j, code, why);
}

static void on_reply(void *, const struct child_reply *, enum msg_code,
    const char *);

/* Recycles a worker past max_requests or max_errors after its reply;
 * not one already stopping (an operator's stop keeps it down). True if
 * it does. */
static bool
maybe_recycle(struct pworker *pw)
{
	if (!child_accepts(pw->c) || !child_recycle_due(pw->c))
		return false;
	sup_restart_child(pw->pool->sup, pw->c, "recycle");
	return true;
}

/* Gives job to the idle worker pw; one that no longer takes requests
 * (an operator's stop or restart, a recycle: it is idle until it exits)
 * leaves the idle list and the job goes to another, or waits. The job's
 * session is begun (made, if new: ended while the job waited, or never
 * served) only once pw has the request. */
static void
assign(struct pworker *pw, struct job *job)
{
	struct pool *p = pw->pool;
	idle_remove(pw);
	if (!child_accepts(pw->c)) {
		pool_submit(p, job);
		return;
	}
	bool track = tracked(p, job);	/* affinity may change */
	if (track && job->session_held &&
	    p->cfg->pool.affinity == AFFINITY_STRICT) {
		struct sess_anchor *a = sess_find(p->sessions, job->session,
		    clock_now());
		if (a && a->worker != pw) {
			/* made anew on another worker while it waited */
			job_unhold(job, p->sessions);
			pool_submit(p, job);
			on_ready(p->sup, pw->c, p);
			return;
		}
	}
	if (child_request(pw->c, job->command, job->args,
	    job->args_len, job->session, job->timeout_ms, on_reply, pw) < 0) {
		refuse(p, job, ERR_WORKER_CRASHED, "worker not accepting requests");
		return;
	}
	struct child_stats *s = child_stats(pw->c);
	s->checkouts++;		/* a hand-off, once the worker has it */
	pw->job = job;
	p->inflight++;
	job->session_begun = track;
	if (!track)
		job_unhold(job, p->sessions);
	else {
		bool rebound;	/* a wait's hold becomes the time at pw */
		if (sess_begin(p->sessions, job->session, &pw->anchor,
		    &job->session_gen, &rebound) &&
		    sess_set_teller(p->sessions, job->session, job)) {
			job->session_reset = true;
			p->resets++;
		}
		job->session_held = false;
		s->sessions_served += rebound;
	}
}

static void
on_reply(void *arg, const struct child_reply *reply, enum msg_code err,
    const char *why)
{
	struct pworker *pw = arg;
	struct job *job = pw->job;
	pw->job = NULL;
	pw->pool->inflight--;
	if (job->session_begun) {
		/* the next reply in the session: the notice job or another
		 * request in flight took, or one due since a worker the
		 * session moved to (prefer) was lost while job ran here */
		job_tell_reset(job, pw->pool->sessions, &pw->pool->resets);
		sess_finish(pw->pool->sessions, job->session, job->session_gen,
		    clock_now());
	}
	job_from_reply(job, reply, err, why, child_name(pw->c), pw->pool->st);
	if (reply)
		maybe_recycle(pw);
}

/* Takes job off its queue; its session stays held (session_held) until
 * assign or release_session. */
static void
unqueue(struct pool *p, struct job *job)
{
	struct pworker *target = job->target;
	TAILQ_REMOVE(target ? &target->waiting : &p->waiting, job, q);
	p->nany -= target == NULL;
	waitq_remove(&p->wq, job);
}

/* The next job for pw: the earlier of its own waiters and everyone's. */
static struct job *
next_job(struct pworker *pw)
{
	struct job *mine = TAILQ_FIRST(&pw->waiting);
	struct job *any = TAILQ_FIRST(&pw->pool->waiting);
	struct job *j = mine && (!any || mine->seq < any->seq) ? mine : any;
	if (j)
		unqueue(pw->pool, j);
	return j;
}

/* A worker is ready or idle again: serve a waiter or wait in the idle list. */
static void
on_ready(struct sup *s, struct child *c, void *arg)
{
	struct pworker *pw = child_udata(c);
	if (pw->idle || pw->job || child_state(c) != CS_READY)
		return;
	if (pw->retiring) {
		sup_stop_child(p_of(pw)->sup, c, "retired");
		return;
	}
	struct job *job = next_job(pw);
	if (job)
		assign(pw, job);
	else
		idle_insert(pw);
}

/* ---- waiting ------------------------------------------------------------- */

static void
on_wait_expired(struct job *j, void *arg)
{
	struct pool *p = arg;
	struct pworker *target = j->target;
	TAILQ_REMOVE(target ? &target->waiting : &p->waiting, j, q);
	p->nany -= target == NULL;
	refuse(p, j, ERR_POOL_TIMEOUT, "no worker became free in time");
}

/* Queues job for target (strict affinity) or any worker. Its session is
 * not idle while it waits: expired, it would leave the job to run unbound
 * after the worker's cleanup_session, with state no one cleans up. */
static void
enqueue(struct pool *p, struct job *job, struct pworker *target)
{
	if (waitq_full(&p->wq)) {
		refuse(p, job, ERR_OVERLOADED, "too many requests waiting");
		return;
	}
	job->target = target;
	JOB_INSERT_BY_SEQ(target ? &target->waiting : &p->waiting, job, q);
	p->nany += target == NULL;
	waitq_add(&p->wq, job);
	if (!job->session_held && tracked(p, job)) {	/* (held: sent back) */
		job->session_gen = sess_hold(p->sessions, job->session);
		job->session_held = true;
	}
}

void
pool_fail_waiting(struct pool *p, enum msg_code code, const char *why)
{
	struct job *j;
	while ((j = waitq_first(&p->wq)) != NULL) {
		unqueue(p, j);
		refuse(p, j, code, why);
	}
}

/* ---- growing: lazy workers and overflow ----------------------------------- */

/* Workers that will soon take a job: starting, or lazy and not started.
 * One in backoff is not counted: its restart delay may outlast the wait
 * (up to max_restart_delay_ms). A lazy one the operator started (start or
 * restart NAME) is lazy no more. */
static struct pworker *
grow_candidate(struct pool *p, int *starting)
{
	struct pworker *lazy = NULL;
	*starting = 0;
	for (size_t i = 0; i < sup_nchildren(p->sup); i++) {
		struct child *c = sup_child(p->sup, i);
		enum child_state st = child_state(c);
		*starting += st == CS_STARTING;
		struct pworker *pw = child_udata(c);
		if (pw->lazy_pending && st != CS_STOPPED)
			set_lazy(pw, false);
		if (!lazy && pw->lazy_pending)
			lazy = pw;
	}
	return lazy;
}

/* Called with fewer than max_overflow (<= CONFIG_MAX_OVERFLOW, 64)
 * overflow workers, so a free bit below 64 exists. */
static void
start_overflow(struct pool *p)
{
	int k = 0;
	while (p->overflow_used & (UINT64_C(1) << k))
		k++;
	char leaf[32];
	snprintf(leaf, sizeof leaf, "overflow.%d", k + 1);
	p->overflow_used |= UINT64_C(1) << k;
	p->noverflow++;
	/* before the spawn, so that its failure is logged after */
	log_info("pool", "all workers busy: starting %s/%s", sup_name(p->sup),
	    leaf);
	struct pworker *pw = pw_add(p, leaf, true, true);
	pw->overflow_index = k;
}

/* A job had to wait: start a lazy worker, or an overflow one, unless
 * enough workers are already on their way for the jobs any worker may
 * take (those waiting for one busy worker, strict, have theirs). A job
 * refused because none may wait (max_waiting reached, none waiting for
 * any worker) counts as one: with max_waiting = 0 a lazy pool would
 * otherwise never start. True if one was started. */
static bool
grow(struct pool *p)
{
	if (p->nlazy == 0 && p->noverflow >= p->cfg->pool.max_overflow)
		return false;	/* nothing to grow: no scan on the hot path */
	int starting;
	struct pworker *lazy = grow_candidate(p, &starting);
	if ((size_t)starting >= (p->nany ? p->nany : 1))
		return false;
	if (lazy) {
		set_lazy(lazy, false);
		sup_start_child(p->sup, lazy->c);
	}
	else if (p->noverflow < p->cfg->pool.max_overflow)
		start_overflow(p);
	else
		return false;
	return true;
}

/* Jobs that waited for a worker gone (strict) now wait for any: grow for
 * them as for a job that has to wait. Run from a timer, outside the
 * supervisor's callback, once it has restarted (or not) the worker gone. */
static void
on_grow_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pool *p = w->data;
	if (sup_state(p->sup) != SS_RUNNING)
		return;
	while (!TAILQ_EMPTY(&p->waiting) && grow(p))
		;
}

/* ---- submitting ---------------------------------------------------------- */

/* Routes a session's job by affinity; false when it is not a session job
 * (or affinity is none) and plain checkout applies. */
static bool
route_session(struct pool *p, struct job *job)
{
	if (job->session == NULL || p->cfg->pool.affinity == AFFINITY_NONE)
		return false;
	struct sess_anchor *a = sess_find(p->sessions, job->session,
	    clock_now());
	struct pworker *bound = a ? a->worker : NULL;
	if (bound && bound->idle) {
		assign(bound, job);
		return true;
	}
	if (bound && p->cfg->pool.affinity == AFFINITY_STRICT) {
		enqueue(p, job, bound);
		return true;
	}
	struct pworker *pw = bound ? TAILQ_FIRST(&p->idle) : idle_least_bound(p);
	if (pw == NULL)
		return false;
	assign(pw, job);
	return true;
}

void
pool_submit(struct pool *p, struct job *job)
{
	if (route_session(p, job))
		return;
	struct pworker *pw = TAILQ_FIRST(&p->idle);
	if (pw) {
		assign(pw, job);
		return;
	}
	enqueue(p, job, NULL);
	grow(p);
}

/* ---- workers leaving ----------------------------------------------------- */

/* Moves the jobs that waited for pw (strict) to the common queue, keeping
 * arrival order; they will find another worker and be told reset. True
 * if there were any. */
static bool
requeue_waiters(struct pool *p, struct pworker *pw)
{
	struct job *j;
	bool any = !TAILQ_EMPTY(&pw->waiting);
	while ((j = TAILQ_FIRST(&pw->waiting)) != NULL) {
		TAILQ_REMOVE(&pw->waiting, j, q);
		j->target = NULL;
		p->nany++;
		JOB_INSERT_BY_SEQ(&p->waiting, j, q);
	}
	return any;
}

/* Gives waiting jobs to idle workers: for jobs moved to the common queue,
 * as an idle worker looks at the queue only when it becomes idle. A
 * worker that no longer takes requests leaves the list first, so that a
 * job is taken from the queue only for one that does (keeping its place
 * in the arrival order otherwise). */
static void
serve_idle(struct pool *p)
{
	struct pworker *pw;
	struct job *j;
	while ((pw = TAILQ_FIRST(&p->idle)) && (j = TAILQ_FIRST(&p->waiting))) {
		if (!child_accepts(pw->c)) {
			idle_remove(pw);
			continue;
		}
		unqueue(p, j);
		assign(pw, j);
	}
}

/* Jobs were moved (moved) to the common queue: idle workers take them,
 * and workers are grown for the rest (outside the caller's callback). */
static void
serve_requeued(struct pool *p, bool moved)
{
	serve_idle(p);
	if (moved && !TAILQ_EMPTY(&p->waiting)) {
		ev_timer_stop(LOOP, &p->t_grow);
		ev_timer_set(&p->t_grow, 0., 0.);
		ev_timer_start(LOOP, &p->t_grow);
	}
}

static void
on_down(struct sup *s, struct child *c, void *arg)
{
	struct pool *p = arg;
	struct pworker *pw = child_udata(c);
	idle_remove(pw);
	sess_drop_anchor(p->sessions, &pw->anchor);
	serve_requeued(p, requeue_waiters(p, pw));
	if (pw->retiring || pw->overflow) {	/* removed outside the callback
						 * (overflow: if not restarted) */
		ev_timer_set(&pw->t_idle, 0., 0.);
		ev_timer_start(LOOP, &pw->t_idle);
	}
}

/* A worker stopped with stop NAME (or retired) stays down until started:
 * a lazy one never started is no longer one to start on demand. An
 * overflow worker with no process (in backoff) is gone for good now:
 * removed outside the callback, as on_down does for one that exits. */
static void
on_stopped_child(struct sup *s, struct child *c, void *arg)
{
	struct pworker *pw = child_udata(c);
	set_lazy(pw, false);
	if (pw->overflow && !child_alive(c)) {
		ev_timer_stop(LOOP, &pw->t_idle);
		ev_timer_set(&pw->t_idle, 0., 0.);
		ev_timer_start(LOOP, &pw->t_idle);
	}
}

static void
remove_worker(struct pool *p, struct pworker *pw)
{
	if (pw->overflow) {
		p->overflow_used &= ~(UINT64_C(1) << pw->overflow_index);
		p->noverflow--;
	}
	ev_timer_stop(LOOP, &pw->t_idle);
	p->st->restarts += child_restarts(pw->c);	/* still counted in stats */
	sup_remove_worker(p->sup, pw->c);
	free(pw);
}

/* Adds pool worker worker.<i> (started now unless the pool is lazy). */
static void
add_worker(struct pool *p, int i)
{
	char leaf[32];
	snprintf(leaf, sizeof leaf, "worker.%d", i);
	struct pworker *pw = pw_add(p, leaf, !p->cfg->pool.lazy, false);
	set_lazy(pw, p->cfg->pool.lazy);
}

/* Stops a worker that is leaving the pool (an idle overflow worker, or
 * one beyond a smaller pool.size); it is removed once its process is gone. */
static void
retire(struct pool *p, struct pworker *pw)
{
	idle_remove(pw);
	pw->retiring = true;
	set_lazy(pw, false);
	sup_child_leave(p->sup, pw->c);
	if (pw->job)
		return;		/* stops after its reply (on_ready) */
	sup_stop_child(p->sup, pw->c, "retired");	/* also cancels a backoff */
	if (!child_alive(pw->c)) {
		ev_timer_set(&pw->t_idle, 0., 0.);
		ev_timer_start(LOOP, &pw->t_idle);
	}
}

/* An overflow worker idle for overflow_idle_ms retires; a retired worker
 * whose process is gone is removed, and so is an overflow worker whose
 * process is gone for good (its restart type, or a stop), which would
 * hold its place among max_overflow for ever. */
static void
on_idle_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pworker *pw = w->data;
	struct pool *p = pw->pool;
	enum child_state st = child_state(pw->c);
	if (!pw->idle) {	/* armed by retire or on_down */
		int i = 0;
		if (pw->retiring && !pw->overflow && sscanf(child_name(pw->c),
		    "pool/worker.%d", &i) != 1)
			i = 0;
		if (pw->retiring ? !child_alive(pw->c) :
		    st == CS_STOPPED || st == CS_FAILED) {
			remove_worker(p, pw);
			/* a reload grew the pool back while it was leaving */
			if (i > 0 && i <= p->size && !p->replaced)
				add_worker(p, i);
		}
		return;
	}
	log_info(child_name(pw->c), "idle for %d ms: stopping",
	    p->cfg->pool.overflow_idle_ms);
	retire(p, pw);
}

/* The pool (re)starts, every worker down: it starts as a fresh pool
 * would, its overflow workers gone and, when lazy, its workers waiting
 * for demand again (those stopped on request stay down until started).
 * Requests still waiting make that demand at once. */
static void
on_starting(struct sup *s, void *arg)
{
	struct pool *p = arg;
	for (size_t i = sup_nchildren(s); i-- > 0;) {
		struct pworker *pw = child_udata(sup_child(s, i));
		if (child_alive(pw->c) || pw->retiring)
			continue;	/* a retiring one is removed by its timer */
		if (pw->overflow)
			remove_worker(p, pw);
		else if (p->cfg->pool.lazy && sup_hold_child(s, pw->c))
			set_lazy(pw, true);
	}
	if (!TAILQ_EMPTY(&p->waiting)) {
		ev_timer_stop(LOOP, &p->t_grow);
		ev_timer_set(&p->t_grow, 0., 0.);
		ev_timer_start(LOOP, &p->t_grow);
	}
}

static void
on_failed(struct sup *s, void *arg)
{
	struct pool *p = arg;
	p->root_ev->failed(s, p->root);
}

static void
on_stopped(struct sup *s, void *arg)
{
	struct pool *p = arg;
	p->root_ev->stopped(s, p->root);
}

/* ---- sessions ------------------------------------------------------------ */

bool
pool_end_session(struct pool *p, const char *id)
{
	return sess_end_notify(p->sessions, id);
}

/* ---- reload ------------------------------------------------------------- */

/* The pool worker named worker.<i>, or NULL. */
static struct pworker *
find_worker(struct pool *p, int i)
{
	char name[64];
	snprintf(name, sizeof name, "pool/worker.%d", i);
	for (size_t k = 0; k < sup_nchildren(p->sup); k++)
		if (strcmp(child_name(sup_child(p->sup, k)), name) == 0)
			return child_udata(sup_child(p->sup, k));
	return NULL;
}

/* Idle workers that a lower max_requests or max_errors leaves past their
 * bound are recycled now: no reply of theirs would come to do it, and the
 * next request would go to a worker already due. */
static void
recycle_idle(struct pool *p)
{
	struct pworker *pw, *next;
	for (pw = TAILQ_FIRST(&p->idle); pw != NULL; pw = next) {
		next = TAILQ_NEXT(pw, idle_link);
		if (maybe_recycle(pw))
			idle_remove(pw);
	}
}

/* Grows or shrinks the pool to size: new workers start now (unless lazy),
 * surplus ones finish their request and then stop. */
static void
resize(struct pool *p, int from, int to)
{
	for (int i = from + 1; i <= to; i++) {
		struct pworker *pw = find_worker(p, i);
		if (pw && pw->retiring)
			continue;	/* still leaving: comes back once gone */
		add_worker(p, i);
	}
	for (int i = to + 1; i <= from; i++) {
		struct pworker *pw = find_worker(p, i);
		if (pw && !pw->retiring)
			retire(p, pw);
	}
	log_info("pool", "resized from %d to %d %s", from, to,
	    log_plural((unsigned)to, "worker", "workers"));
}

/* Overflow workers beyond a lower max_overflow leave the pool, as those
 * beyond a smaller pool.size do: the idle ones now, the busy ones after
 * their reply (the newest first). Otherwise they would stay for as long
 * as requests keep them from idling overflow_idle_ms. */
static void
trim_overflow(struct pool *p)
{
	int n = 0, max = p->cfg->pool.max_overflow;
	for (size_t i = 0; i < sup_nchildren(p->sup); i++) {
		const struct pworker *pw = child_udata(sup_child(p->sup, i));
		n += pw->overflow && !pw->retiring;
	}
	for (int busy = 0; busy < 2; busy++)
		for (size_t i = sup_nchildren(p->sup); n > max && i-- > 0;) {
			struct pworker *pw = child_udata(sup_child(p->sup, i));
			if (!pw->overflow || pw->retiring ||
			    (pw->job != NULL) != busy)
				continue;
			log_info(child_name(pw->c), "beyond max_overflow %d: "
			    "stopping", max);
			retire(p, pw);
			n--;
		}
}

/* Idle overflow workers counting down to their stop take a reloaded
 * overflow_idle_ms, still counted from when they went idle: one idle
 * longer than that stops at once. */
static void
rearm_idle(struct pool *p)
{
	struct pworker *pw;
	TAILQ_FOREACH(pw, &p->idle, idle_link)
		if (pw->overflow && ev_is_active(&pw->t_idle))
			idle_timer_set(pw);
}

void
pool_fit_affinity(struct pool *p)
{
	if (p->cfg->pool.affinity != AFFINITY_NONE)
		return;
	sess_end_all(p->sessions, sess_notify_cleanup, NULL);
	bool moved = false;
	for (size_t i = 0; i < sup_nchildren(p->sup); i++)
		moved |= requeue_waiters(p, child_udata(sup_child(p->sup, i)));
	serve_requeued(p, moved);
}

/* A reload to lazy = false starts the workers still waiting for demand
 * (not those stopped with stop): the pool becomes what it would be had it
 * started eagerly. One to lazy = true leaves running workers up. */
static void
start_lazy(struct pool *p)
{
	if (p->cfg->pool.lazy || p->nlazy == 0)
		return;
	for (size_t i = 0; i < sup_nchildren(p->sup); i++) {
		struct pworker *pw = child_udata(sup_child(p->sup, i));
		if (!pw->lazy_pending)
			continue;
		set_lazy(pw, false);
		sup_start_child(p->sup, pw->c);
	}
}

void
pool_reconfigure(struct pool *p, const struct config *cfg, char *const *argv)
{
	int from = p->size;
	p->cfg = cfg;
	sup_reconfigure(p->sup, cfg, argv);
	sup_set_intensity(p->sup, cfg->pool.max_restarts, cfg->pool.max_seconds);
	waitq_configure(&p->wq, cfg->pool.checkout_timeout_ms,
	    cfg->pool.max_waiting);
	sess_set_ttl(p->sessions, cfg->pool.session_ttl_ms);
	pool_fit_affinity(p);
	if (from != cfg->pool.size) {
		p->size = cfg->pool.size;
		resize(p, from, cfg->pool.size);
	}
	if (!p->replaced) {
		trim_overflow(p);
		recycle_idle(p);
		start_lazy(p);
		sup_revive_restartable(p->sup);
	}
	rearm_idle(p);
}

void
pool_replaced(struct pool *p)
{
	p->replaced = true;
}

struct job *
pool_take_waiting(struct pool *p)
{
	struct job *j = waitq_first(&p->wq);
	if (j) {
		unqueue(p, j);
		job_unhold(j, p->sessions);
	}
	return j;
}

/* ---- reporting ----------------------------------------------------------- */

json_t *
pool_stats(const struct pool *p)
{
	int ready = 0, busy = 0;
	for (size_t i = 0; i < sup_nchildren(p->sup); i++) {
		struct child *c = sup_child(p->sup, i);
		ready += child_state(c) == CS_READY;
		busy += child_state(c) == CS_BUSY;
	}
	/* restarts: root_stats counts them, the replaced subtrees' too */
	struct route_gauges g = { "pool", p->size, p->cfg->pool.max_overflow,
	    ready, busy, p->noverflow, (long)p->wq.n,
	    (long)sess_count(p->sessions), 0 };
	return route_stats_json(p->st, &g);
}

int
pool_ready(const struct pool *p)
{
	int n = 0;
	for (size_t i = 0; i < sup_nchildren(p->sup); i++) {
		struct child *c = sup_child(p->sup, i);
		const struct pworker *pw = child_udata(c);
		enum child_state st = child_state(c);
		n += !pw->overflow && !pw->retiring &&
		    (st == CS_READY || st == CS_BUSY);
	}
	return n;
}

void
pool_put_fields(const struct pool *p, struct buf *out)
{
	jraw_put(out, ",\"size\":");
	jraw_put_int(out, p->size);
	jraw_put(out, ",\"ready\":");	/* health's count, of size */
	jraw_put_int(out, pool_ready(p));
	jraw_put(out, ",\"max_overflow\":");
	jraw_put_int(out, p->cfg->pool.max_overflow);
	jraw_put(out, ",\"waiting\":");
	jraw_put_int(out, (int64_t)p->wq.n);
}
