#include "supervisor/bridge.h"

#include <ev.h>

#include "proto/xmalloc.h"
#include "supervisor/child.h"
#include "supervisor/clock.h"
#include "supervisor/log.h"
#include "supervisor/session.h"
#include "supervisor/slab.h"
#include "supervisor/waitq.h"

#define LOOP	EV_DEFAULT_UC

struct bridge {
	const struct config	*cfg;
	struct sup		*sup;
	struct child		*worker;
	const struct sup_events	*root_ev;
	void			*root;
	struct waitq		 wq;
	size_t			 inflight;
	bool			 recycling;	/* past max_requests or max_errors:
						 * nothing more is sent, and it is
						 * restarted once none is in flight */
	struct sessions		*sessions;	/* to tell resets */
	struct sess_anchor	 anchor;	/* every session binds here */
	struct route_stats	*st;		/* the root's: kept over reloads */
	size_t			 resets;	/* requests in flight due to
						 * tell a session_reset */
};

/* One request in flight: the job and the bridge it belongs to. */
struct flight {
	struct bridge	*b;
	struct job	*job;
};

static void on_failed(struct sup *, void *);
static void on_stopped(struct sup *, void *);
static void on_ready(struct sup *, struct child *, void *);
static void on_down(struct sup *, struct child *, void *);
static const struct sup_events events = {
	.failed = on_failed, .stopped = on_stopped, .worker_ready = on_ready,
	.worker_idle = on_ready, .worker_down = on_down,
};
static void on_expired(struct job *, void *);
static void pump(struct bridge *);
static void recycle_if_due(struct bridge *);

struct bridge *
bridge_new(const struct config *cfg, char *const *argv, struct registry *reg,
    struct route_stats *st, const struct sup_events *root_ev, void *root)
{
	struct bridge *b = xcalloc(1, sizeof *b);
	b->cfg = cfg;
	b->st = st;
	b->root_ev = root_ev;
	b->root = root;
	b->sessions = sess_new(cfg->pool.session_ttl_ms, sess_notify_cleanup,
	    NULL, &b->st->stale_sessions, &b->st->total_sessions);
	LIST_INIT(&b->anchor.list);
	waitq_init(&b->wq, cfg->pool.checkout_timeout_ms, cfg->pool.max_waiting,
	    on_expired, b);
	b->sup = sup_new("bridge", cfg->bridge.max_restarts,
	    cfg->bridge.max_seconds, cfg, argv, reg, &events, b);
	b->worker = sup_add_worker(b->sup, "worker", true);
	child_set_sessions(b->worker, &b->anchor.n);
	b->anchor.child = b->worker;
	return b;
}

void
bridge_free(struct bridge *b)
{
	if (b == NULL)
		return;
	bridge_fail_waiting(b, ERR_SHUTTING_DOWN, "bridge removed");
	sup_free(b->sup);
	waitq_release(&b->wq);
	sess_free(b->sessions);
	free(b);
}

struct sup *bridge_sup(const struct bridge *b) { return b->sup; }
struct sessions *bridge_sessions(const struct bridge *b) { return b->sessions; }
size_t bridge_pending(const struct bridge *b) { return b->inflight + b->wq.n; }

static void
fail_job(struct bridge *b, struct job *j, enum msg_code code, const char *why)
{
	b->st->total++;
	b->st->failed++;
	b->st->pool_timeouts += code == ERR_POOL_TIMEOUT;
	job_fail(j, code, "%s", why);
}

/* Fails a job the worker never took (it waited, or none may). Its reply
 * is the next in its session, so it carries the reset notice due there
 * (SPEC 6), or the one a request still in flight took. */
static void
refuse(struct bridge *b, struct job *j, enum msg_code code, const char *why)
{
	if (j->session)
		job_tell_reset(j, b->sessions, &b->resets);
	job_unhold(j, b->sessions);
	fail_job(b, j, code, why);
}

static void
on_expired(struct job *j, void *arg)
{
	refuse(arg, j, ERR_POOL_TIMEOUT, "the worker did not take it in time");
}

void
bridge_reconfigure(struct bridge *b, const struct config *cfg,
    char *const *argv)
{
	b->cfg = cfg;
	sup_reconfigure(b->sup, cfg, argv);
	sup_set_intensity(b->sup, cfg->bridge.max_restarts,
	    cfg->bridge.max_seconds);
	waitq_configure(&b->wq, cfg->pool.checkout_timeout_ms,
	    cfg->pool.max_waiting);
	sess_set_ttl(b->sessions, cfg->pool.session_ttl_ms);
	recycle_if_due(b);	/* a bound may have come down */
	sup_revive_restartable(b->sup);	/* worker.restart may have changed */
	pump(b);	/* max_inflight may have grown */
}

struct job *
bridge_take_waiting(struct bridge *b)
{
	struct job *j = waitq_first(&b->wq);
	if (j) {
		waitq_remove(&b->wq, j);
		job_unhold(j, b->sessions);
	}
	return j;
}

void
bridge_fail_waiting(struct bridge *b, enum msg_code code, const char *why)
{
	struct job *j;
	while ((j = waitq_first(&b->wq)) != NULL) {
		waitq_remove(&b->wq, j);
		refuse(b, j, code, why);
	}
}

/* Once the worker is past max_requests or max_errors nothing more is
 * sent to it, and it is restarted when none of its requests is in flight
 * (at once if none is: after a reload that lowered a bound, no reply
 * would come to do it). A worker that takes no requests (killed, or
 * stopping on request) is not restarted here. */
static void
recycle_if_due(struct bridge *b)
{
	if (!b->recycling && child_accepts(b->worker) &&
	    child_recycle_due(b->worker))
		b->recycling = true;
	if (!b->recycling || b->inflight > 0)
		return;
	b->recycling = false;
	if (child_accepts(b->worker))
		sup_restart_child(b->sup, b->worker, "recycle");
}

static void
on_reply(void *arg, const struct child_reply *reply, enum msg_code err,
    const char *why)
{
	struct flight *f = arg;
	struct bridge *b = f->b;
	b->inflight--;
	if (b->resets > 0 && f->job->session)
		b->resets -= job_take_reset(f->job, b->sessions);
	if (f->job->session)
		sess_finish(b->sessions, f->job->session, f->job->session_gen,
		    clock_now());
	job_from_reply(f->job, reply, err, why, child_name(b->worker), b->st);
	slab_free(f);
	recycle_if_due(b);
	pump(b);	/* the reply made room in the pipeline */
}

/* Sends job to the worker now; once the worker has it, a wait's hold on
 * its session becomes its time at the worker, and a session not made yet
 * (new, or ended while the job waited: the job may build state in it) is
 * made. */
static void
send_job(struct bridge *b, struct job *job)
{
	struct flight *f = slab_alloc(sizeof *f);
	*f = (struct flight){ b, job };
	if (child_request(b->worker, job->command, job->args,
	    job->args_len, job->session, job->timeout_ms, on_reply, f) < 0) {
		slab_free(f);
		refuse(b, job, ERR_WORKER_CRASHED, "worker not accepting requests");
		return;
	}
	child_stats(b->worker)->checkouts++;	/* once the worker has it */
	b->inflight++;
	if (job->session) {
		bool rebound;
		if (sess_begin(b->sessions, job->session, &b->anchor,
		    &job->session_gen, &rebound) &&
		    sess_set_teller(b->sessions, job->session, job)) {
			job->session_reset = true;
			b->resets++;
		}
		job->session_held = false;
		child_stats(b->worker)->sessions_served += rebound;
	}
}

/* A process is sent no more than worker.max_requests requests: those
 * beyond wait for its successor, as do those that come while it is
 * killed and not yet reaped (a request past its deadline). */
static bool
can_send(const struct bridge *b)
{
	long max = b->cfg->worker.max_requests;
	return child_accepts(b->worker) && !b->recycling &&
	    b->inflight < (size_t)b->cfg->worker.max_inflight &&
	    (max == 0 || child_stats(b->worker)->checkouts < (unsigned long)max);
}

/* Sends waiting jobs while the pipeline has room. */
static void
pump(struct bridge *b)
{
	struct job *j;
	while (can_send(b) && (j = waitq_first(&b->wq)) != NULL) {
		waitq_remove(&b->wq, j);
		send_job(b, j);
	}
}

/* Queues job. Its session is not idle while it waits: expired, the
 * worker would get cleanup_session ahead of the job, which would then run
 * in a session whose state is gone. */
static void
enqueue(struct bridge *b, struct job *job)
{
	if (waitq_full(&b->wq)) {
		refuse(b, job, ERR_OVERLOADED, "too many requests waiting");
		return;
	}
	waitq_add(&b->wq, job);
	if (job->session && !job->session_held) {
		job->session_gen = sess_hold(b->sessions, job->session);
		job->session_held = true;
	}
}

void
bridge_submit(struct bridge *b, struct job *job)
{
	if (b->wq.n == 0 && can_send(b))
		send_job(b, job);
	else
		enqueue(b, job);
}

bool
bridge_end_session(struct bridge *b, const char *id)
{
	return sess_end_notify(b->sessions, id);
}

static void
on_ready(struct sup *s, struct child *c, void *arg)
{
	pump(arg);
}

static void
on_down(struct sup *s, struct child *c, void *arg)
{
	struct bridge *b = arg;
	b->recycling = false;	/* its restart is under way */
	sess_drop_anchor(b->sessions, &b->anchor);
}

static void
on_failed(struct sup *s, void *arg)
{
	struct bridge *b = arg;
	b->root_ev->failed(s, b->root);
}

static void
on_stopped(struct sup *s, void *arg)
{
	struct bridge *b = arg;
	b->root_ev->stopped(s, b->root);
}

json_t *
bridge_stats(const struct bridge *b)
{
	enum child_state st = child_state(b->worker);
	/* restarts: root_stats counts them, the replaced subtrees' too */
	struct route_gauges g = { "single", 1, 0, st == CS_READY, st == CS_BUSY,
	    0, (long)b->wq.n, (long)sess_count(b->sessions), 0 };
	json_t *j = route_stats_json(b->st, &g);
	json_object_set_new(j, "inflight", json_integer((json_int_t)b->inflight));
	return j;
}
