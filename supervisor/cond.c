#include "supervisor/cond.h"

#include <ev.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "proto/jraw.h"
#include "proto/xmalloc.h"
#include "supervisor/batch.h"
#include "supervisor/bridge.h"
#include "supervisor/child.h"
#include "supervisor/clock.h"
#include "supervisor/intensity.h"
#include "supervisor/log.h"
#include "supervisor/pool.h"
#include "supervisor/session.h"
#include "supervisor/version.h"

#define LOOP	EV_DEFAULT_UC

/* The root's one child: a pool or a bridge with its supervisor. */
struct subtree {
	struct sup	*sup;
	struct pool	*pool;		/* mode pool */
	struct bridge	*bridge;	/* mode single */
};

/* A subtree a reload replaced: it finishes the requests it accepted, then
 * stops and is freed (on_old_check). Any number may wind down at once. */
struct old_subtree {
	struct subtree			t;
	const struct config		*cfg;	/* its own (config_hold) */
	TAILQ_ENTRY(old_subtree)	link;
	bool				carried;	/* replaced by mode
						 * disabled, it serves its
						 * waiting requests: the
						 * sessions it makes are
						 * carried as the root's */
	double				carried_since;	/* those already
							 * carried are older */
};
TAILQ_HEAD(old_list, old_subtree);

struct root {
	const struct config	*cfg;
	struct registry		*reg;
	const struct root_events *ev;
	void			*arg;
	char			*mock_argv[2];	/* bridge_mock: mock_worker */

	enum sup_state		 state;
	struct intensity	 window;
	unsigned		 restarts;
	ev_tstamp		 started;
	struct subtree		 cur;		/* none in disabled and mock */
	struct old_list		 old;		/* replaced by reloads, winding
						 * down: oldest first */
	ev_prepare		 w_old;		/* runs while old is not empty */
	struct sessions		*carry;		/* disabled and mock: the sessions
						 * of the workers last replaced,
						 * due a reset when a subtree
						 * serves again */
	struct route_stats	 st;		/* the stats op's counters, of
						 * every mode and subtree: a
						 * reload does not reset them */
};

static void on_sub_failed(struct sup *, void *);
static void on_sub_stopped(struct sup *, void *);
static const struct sup_events sub_events = {
	.failed = on_sub_failed, .stopped = on_sub_stopped,
};
static void on_old_check(struct ev_loop *, ev_prepare *, int);

/* The command every worker runs under the resolved adapter. */
static char *const *
worker_argv(const struct root *r)
{
	return r->cfg->adapter == ADAPTER_BRIDGE_MOCK ? r->mock_argv :
	    r->cfg->worker.argv;
}

/* Builds the subtree the mode calls for (none for disabled and mock). */
static struct subtree
make_subtree(struct root *r)
{
	const struct config *c = r->cfg;
	struct subtree t = { 0 };
	if (c->mode == MODE_DISABLED || c->adapter == ADAPTER_MOCK)
		return t;
	if (c->mode == MODE_SINGLE) {
		t.bridge = bridge_new(c, worker_argv(r), r->reg, &r->st,
		    &sub_events, r);
		t.sup = bridge_sup(t.bridge);
	} else {
		t.pool = pool_new(c, worker_argv(r), r->reg, &r->st, &sub_events,
		    r);
		t.sup = pool_sup(t.pool);
	}
	return t;
}

static struct sessions *
subtree_sessions(const struct subtree *t)
{
	return t->pool ? pool_sessions(t->pool) :
	    t->bridge ? bridge_sessions(t->bridge) : NULL;
}

/* The restarts a subtree counts now: its supervisor's and its workers'. */
static unsigned long
subtree_restarts(const struct subtree *t)
{
	unsigned long n = t->sup ? sup_restarts(t->sup) : 0;
	for (size_t i = 0; t->sup && i < sup_nchildren(t->sup); i++)
		n += child_restarts(sup_child(t->sup, i));
	return n;
}

/* Frees a subtree; its restarts stay counted in the root's stats, so
 * that the restarts counter does not go down when a reload replaces it. */
static void
free_subtree(struct root *r, struct subtree *t)
{
	r->st.restarts += subtree_restarts(t);
	pool_free(t->pool);
	bridge_free(t->bridge);
	memset(t, 0, sizeof *t);
}

static bool
subtree_end_session(struct subtree *t, const char *id)
{
	return t->pool ? pool_end_session(t->pool, id) :
	    t->bridge ? bridge_end_session(t->bridge, id) : false;
}

/* The root's table of sessions, made if need be (its ttl expiries and the
 * sessions adapter mock makes count as any mode's). */
static struct sessions *
carry(struct root *r)
{
	if (r->carry == NULL)
		r->carry = sess_new(r->cfg->pool.session_ttl_ms, NULL, NULL,
		    &r->st.stale_sessions, &r->st.total_sessions);
	return r->carry;
}

/* Copies the sessions of from used since then (0: all) into the root's
 * carry. */
static void
carry_sessions(struct root *r, const struct sessions *from, double since)
{
	sess_inherit(carry(r), from, since);
}

static size_t
subtree_pending(const struct subtree *t)
{
	return t->pool ? pool_pending(t->pool) :
	    t->bridge ? bridge_pending(t->bridge) : 0;
}

/* Fails the jobs in t still waiting for a worker. */
static void
subtree_fail_waiting(struct subtree *t, enum msg_code code, const char *why)
{
	if (t->pool)
		pool_fail_waiting(t->pool, code, why);
	if (t->bridge)
		bridge_fail_waiting(t->bridge, code, why);
}

/* Frees an old subtree and takes it off the list: never inside one of its
 * own callbacks. */
static void
free_old(struct root *r, struct old_subtree *o)
{
	TAILQ_REMOVE(&r->old, o, link);
	free_subtree(r, &o->t);
	config_release(o->cfg);
	free(o);
}

struct root *
root_new(const struct config *cfg, struct registry *reg, const char *mock_dir,
    const struct root_events *ev, void *arg)
{
	struct root *r = xcalloc(1, sizeof *r);
	r->cfg = cfg;
	r->reg = reg;
	r->ev = ev;
	r->arg = arg;
	r->mock_argv[0] = xasprintf("%s/mock_worker", mock_dir);
	r->state = SS_STOPPED;
	intensity_init(&r->window, cfg->supervisor.max_restarts,
	    cfg->supervisor.max_seconds);
	TAILQ_INIT(&r->old);
	ev_prepare_init(&r->w_old, on_old_check);
	r->w_old.data = r;
	reg_add(reg, "root", REG_ROOT, r);
	r->cur = make_subtree(r);
	return r;
}

void
root_free(struct root *r)
{
	if (r == NULL)
		return;
	ev_prepare_stop(LOOP, &r->w_old);
	while (!TAILQ_EMPTY(&r->old))
		free_old(r, TAILQ_FIRST(&r->old));
	free_subtree(r, &r->cur);
	sess_free(r->carry);
	reg_remove(r->reg, "root");
	intensity_release(&r->window);
	free(r->mock_argv[0]);
	free(r);
}

void
root_start(struct root *r)
{
	r->state = SS_RUNNING;
	r->started = clock_now();
	log_info("root", "env=%s mode=%s adapter=%s", r->cfg->env,
	    cfg_mode_name(r->cfg->mode), cfg_adapter_name(r->cfg->adapter));
	if (r->cur.sup)
		sup_start(r->cur.sup);
}

static bool
down(const struct subtree *t)
{
	return t->sup == NULL || sup_state(t->sup) == SS_STOPPED ||
	    sup_state(t->sup) == SS_FAILED;
}

/* The running subtree and every old one are down. */
static bool
all_down(const struct root *r)
{
	const struct old_subtree *o;
	TAILQ_FOREACH(o, &r->old, link)
		if (!down(&o->t))
			return false;
	return down(&r->cur);
}

/* Stopping: done once the subtree and every old one are down. */
static void
maybe_stopped(struct root *r)
{
	if (r->state == SS_STOPPING && all_down(r)) {
		r->state = SS_STOPPED;
		r->ev->stopped(r, r->arg);
	}
}

void
root_stop(struct root *r)
{
	struct old_subtree *o;
	r->state = SS_STOPPING;
	TAILQ_FOREACH(o, &r->old, link)
		if (!down(&o->t))
			sup_stop(o->t.sup);
	if (r->cur.sup)
		sup_stop(r->cur.sup);
	maybe_stopped(r);
}

/* The root gave up, or a second signal: no worker will be waited for any
 * more, so every job still held anywhere gets its reply now, while its
 * client is still connected (an old subtree may hold some in flight). */
void
root_abandon(struct root *r, enum msg_code code, const char *why)
{
	struct old_subtree *o;
	root_fail_waiting(r, code, why);
	TAILQ_FOREACH(o, &r->old, link)
		sup_abandon(o->t.sup, code, why);
	if (r->cur.sup)
		sup_abandon(r->cur.sup, code, why);
}

void
root_restart(struct root *r)
{
	if (r->cur.sup)
		sup_restart(r->cur.sup);
}

/* Whether s is an old subtree that still holds waiting requests: one a
 * reload to mode disabled left to serve them (a failed subtree holds no
 * request in flight). */
static bool
old_waiting(const struct root *r, const struct sup *s)
{
	const struct old_subtree *o;
	TAILQ_FOREACH(o, &r->old, link)
		if (o->t.sup == s)
			return subtree_pending(&o->t) > 0;
	return false;
}

/* The subtree failed: restart it, or give up when that is too often. An
 * old one is restarted only while it holds requests to serve: they were
 * accepted, and would have been served had no reload come. */
static void
on_sub_failed(struct sup *s, void *arg)
{
	struct root *r = arg;
	if (r->state != SS_RUNNING || (s != r->cur.sup && !old_waiting(r, s)))
		return;		/* an old subtree is not restarted */
	if (intensity_add(&r->window, clock_now())) {
		int max = r->cfg->supervisor.max_restarts;
		log_error("root", "more than %d %s of %s within %d s: "
		    "giving up", max, log_plural((unsigned)max, "restart",
		    "restarts"), sup_name(s),
		    r->cfg->supervisor.max_seconds);
		r->state = SS_FAILED;
		r->ev->gave_up(r, r->arg);
		return;
	}
	log_warn("root", "%s failed: restarting it", sup_name(s));
	sup_count_restart(s);
	sup_start(s);
}

static void
on_sub_stopped(struct sup *s, void *arg)
{
	maybe_stopped(arg);
}

/* ---- reload -------------------------------------------------------------- */

/* Each old subtree finishes what it holds, stops, and is freed here (never
 * inside one of its own callbacks): checked before each time the loop
 * blocks, until none is left. */
static void
on_old_check(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct root *r = w->data;
	struct old_subtree *o, *next;
	if (r->state == SS_STOPPING)
		return;		/* root_stop stops them; root_free frees them */
	for (o = TAILQ_FIRST(&r->old); o != NULL; o = next) {
		next = TAILQ_NEXT(o, link);
		if (!down(&o->t)) {
			if (subtree_pending(&o->t) == 0 &&
			    sup_state(o->t.sup) == SS_RUNNING)
				sup_stop(o->t.sup);
			continue;
		}
		log_info("root", "old %s stopped", sup_name(o->t.sup));
		if (o->carried)		/* still no subtree to take them */
			carry_sessions(r, subtree_sessions(&o->t),
			    o->carried_since);
		free_old(r, o);
	}
	batch_flush();
	if (TAILQ_EMPTY(&r->old))
		ev_prepare_stop(loop, w);
}

/* Whether cfg calls for another subtree than the running one: also when
 * worker.max_frame_bytes changes, as each worker is told it at its spawn
 * and holds its frames to it (arbord checks requests against the new). */
static bool
needs_rebuild(const struct config *a, const struct config *b)
{
	if (a->mode != b->mode || a->adapter != b->adapter ||
	    a->worker.max_frame_bytes != b->worker.max_frame_bytes)
		return true;
	char *const *x = a->worker.argv, *const *y = b->worker.argv;
	for (; *x && *y; x++, y++)
		if (strcmp(*x, *y) != 0)
			return true;
	return *x || *y;
}

/* Moves the jobs waiting in an old subtree to the running one. */
static void
take_waiting(struct root *r, struct subtree *t)
{
	struct job *j;
	while (t->pool && (j = pool_take_waiting(t->pool)))
		root_submit(r, j);
	while (t->bridge && (j = bridge_take_waiting(t->bridge)))
		root_submit(r, j);
}

/* Puts the running subtree, built from cfg, on the list of old ones (the
 * newest last). It keeps cfg: a worker it restarts runs the command and
 * settings it was built with, not the reload's. Its workers are wanted
 * down (sup_retire) once its waiting requests have moved on: until then
 * (mode disabled) one that dies is restarted to serve them. */
static struct subtree *
retire_cur(struct root *r, const struct config *cfg)
{
	struct old_subtree *o = xcalloc(1, sizeof *o);
	o->t = r->cur;
	o->cfg = config_hold(cfg);
	if (o->t.pool)
		pool_replaced(o->t.pool);
	memset(&r->cur, 0, sizeof r->cur);
	sup_unregister(o->t.sup);
	o->carried = r->cfg->mode == MODE_DISABLED;
	o->carried_since = clock_now();
	TAILQ_INSERT_TAIL(&r->old, o, link);
	return &o->t;
}

/* Hands the sessions of the old subtrees still serving in mode disabled
 * (carried) on to to: once it serves, their waiting requests move to it
 * and they make none any more. */
static void
hand_on_carried(struct root *r, struct sessions *to)
{
	struct old_subtree *o;
	TAILQ_FOREACH(o, &r->old, link)
		if (o->carried) {
			sess_inherit(to, subtree_sessions(&o->t),
			    o->carried_since);
			o->carried = false;
		}
}

/* Hands the sessions of the replaced workers (from; NULL: none were
 * replaced) on to the new subtree, unbound and due a session_reset. A mode
 * without workers (disabled, mock) keeps them in the root meanwhile, so
 * that the notice is not lost over it: single -> disabled -> single tells
 * it as single -> single does. So are those an old subtree makes in mode
 * disabled, serving its waiting requests (carried). The old
 * table, kept while its subtree winds down, no longer ends them: they
 * would end (and count) twice. */
static void
hand_on_sessions(struct root *r, struct sessions *from)
{
	struct sessions *to = subtree_sessions(&r->cur);
	if (from == NULL) {		/* from a mode without workers */
		if (to == NULL)
			return;		/* still none: the carried stay */
		sess_inherit(to, r->carry, 0);
		sess_free(r->carry);
		r->carry = NULL;
		hand_on_carried(r, to);
		return;
	}
	if (to == NULL)
		carry_sessions(r, from, 0);
	else
		sess_inherit(to, from, 0);
	sess_retire(from);
}

/* Replaces the subtree: the new one takes the names and the waiting
 * requests; the old one finishes the requests it holds, then stops, as do
 * those of earlier reloads still finishing theirs. Mode disabled serves
 * none, so there the old ones keep their waiting requests too and serve
 * them before they stop (or hand them to a later subtree that serves): a
 * reload fails none accepted. */
static void
rebuild(struct root *r, const struct config *from)
{
	struct subtree *prev = r->cur.sup ? retire_cur(r, from) : NULL;
	r->cur = make_subtree(r);
	/* The old workers' state goes with them: each session is told. */
	hand_on_sessions(r, prev ? subtree_sessions(prev) : NULL);
	if (r->cur.pool)	/* affinity none: it keeps none of them */
		pool_fit_affinity(r->cur.pool);
	log_info("root", "mode=%s adapter=%s", cfg_mode_name(r->cfg->mode),
	    cfg_adapter_name(r->cfg->adapter));
	if (r->cur.sup && r->state == SS_RUNNING)	/* not while stopping */
		sup_start(r->cur.sup);
	struct old_subtree *o;
	if (r->cfg->mode != MODE_DISABLED)	/* in arrival order */
		TAILQ_FOREACH(o, &r->old, link) {
			take_waiting(r, &o->t);
			sup_retire(o->t.sup);
		}
	if (!TAILQ_EMPTY(&r->old))
		ev_prepare_start(LOOP, &r->w_old);
}

void
root_reload(struct root *r, const struct config *cfg)
{
	const struct config *prev = r->cfg;
	r->cfg = cfg;
	if (prev->supervisor.max_restarts != cfg->supervisor.max_restarts ||
	    prev->supervisor.max_seconds != cfg->supervisor.max_seconds) {
		intensity_release(&r->window);
		intensity_init(&r->window, cfg->supervisor.max_restarts,
		    cfg->supervisor.max_seconds);
	}
	if (r->carry)
		sess_set_ttl(r->carry, cfg->pool.session_ttl_ms);
	if (needs_rebuild(prev, cfg))
		rebuild(r, prev);
	else if (r->cur.pool)
		pool_reconfigure(r->cur.pool, cfg, worker_argv(r));
	else if (r->cur.bridge)
		bridge_reconfigure(r->cur.bridge, cfg, worker_argv(r));
}

/* ---- requests ------------------------------------------------------------ */

/* Adapter mock: arbord answers itself (SPEC 3). A request's session is
 * kept as a worker's would be, in the root's table (with those carried
 * over from replaced workers): end_session ends it, stats count it, and
 * a reset due to it is told in this reply. */
static void
mock_answer(struct root *r, struct job *job)
{
	static struct buf res;	/* reused */
	if (job->session) {
		bool rebound;
		job->session_reset = sess_begin(carry(r), job->session, NULL,
		    &job->session_gen, &rebound);
		sess_finish(r->carry, job->session, job->session_gen,
		    clock_now());
	}
	jraw_put(&res, "{\"mock\":true,\"command\":");
	jraw_put_str(&res, job->command, strlen(job->command));
	jraw_put(&res, ",\"args\":");
	buf_append(&res, job->args, job->args_len);
	jraw_put(&res, "}");
	r->st.total++;
	r->st.ok++;
	job_ok(job, buf_head(&res), buf_used(&res), "mock");
	buf_consume(&res, buf_used(&res));
}

void
root_submit(struct root *r, struct job *job)
{
	if (r->cur.pool)
		pool_submit(r->cur.pool, job);
	else if (r->cur.bridge)
		bridge_submit(r->cur.bridge, job);
	else if (r->cfg->mode != MODE_DISABLED)
		mock_answer(r, job);
	else {
		r->st.total++;
		r->st.failed++;
		job_fail(job, ERR_BRIDGE_DISABLED, "the bridge is disabled "
		    "(environment %s)", r->cfg->env);
	}
}

void
root_count_refused(struct root *r)
{
	r->st.total++;
	r->st.failed++;
}

/* In a mode without workers, a session carried over it (hand_on_sessions)
 * can still be ended: it then gets no reset notice later. An old subtree
 * that made it, or still holds it, ends it too (its worker is told). */
bool
root_end_session(struct root *r, const char *id)
{
	struct sess_anchor *a;
	struct old_subtree *o;
	if (r->cur.sup)
		return subtree_end_session(&r->cur, id);
	bool ended = r->carry ? sess_end(r->carry, id, &a) : false;
	TAILQ_FOREACH(o, &r->old, link)
		if (o->carried && subtree_end_session(&o->t, id))
			ended = true;
	return ended;
}

size_t
root_pending(const struct root *r)
{
	const struct old_subtree *o;
	size_t n = subtree_pending(&r->cur);
	TAILQ_FOREACH(o, &r->old, link)
		n += subtree_pending(&o->t);
	return n;
}

void
root_fail_waiting(struct root *r, enum msg_code code, const char *why)
{
	struct old_subtree *o;
	subtree_fail_waiting(&r->cur, code, why);
	TAILQ_FOREACH(o, &r->old, link)
		subtree_fail_waiting(&o->t, code, why);
}

/* ---- reporting ----------------------------------------------------------- */

struct sup *root_subtree(const struct root *r) { return r->cur.sup; }
const struct config *root_config(const struct root *r) { return r->cfg; }

void
root_put_sup(const struct root *r, const struct sup *s, struct buf *out)
{
	jraw_put(out, "{");
	sup_put_fields(s, out);
	if (r->cur.pool && s == r->cur.sup)
		pool_put_fields(r->cur.pool, out);
	jraw_put(out, "}");
}

void
root_health(const struct root *r, int *ready, int *expected)
{
	*ready = *expected = 0;
	if (r->cur.pool) {
		*ready = pool_ready(r->cur.pool);
		*expected = r->cfg->pool.size;
	} else if (r->cur.sup) {
		struct sup *s = r->cur.sup;
		for (size_t i = 0; i < sup_nchildren(s); i++) {
			enum child_state st = child_state(sup_child(s, i));
			*ready += st == CS_READY || st == CS_BUSY;
		}
		*expected = 1;
	}
}

json_t *
root_stats(const struct root *r)
{
	json_t *j;
	if (r->cur.pool)
		j = pool_stats(r->cur.pool);
	else if (r->cur.bridge)
		j = bridge_stats(r->cur.bridge);
	else {
		struct route_gauges g = { .mode = cfg_mode_name(r->cfg->mode),
		    .sessions = r->carry ? (long)sess_count(r->carry) : 0 };
		j = route_stats_json(&r->st, &g);
	}
	/* restarts is a counter too: those of the running subtree, of the
	 * replaced ones still winding down and of those already freed */
	unsigned long restarts = r->st.restarts + subtree_restarts(&r->cur);
	const struct old_subtree *o;
	TAILQ_FOREACH(o, &r->old, link)
		restarts += subtree_restarts(&o->t);
	json_object_set_new(j, "restarts", json_integer((json_int_t)restarts));
	return j;
}

void
root_put_node(const struct root *r, struct buf *out)
{
	int64_t up = (int64_t)((clock_now() - r->started) * 1000);
	jraw_put(out, "{");
	sup_put_head(out, "root", r->state, r->restarts, up);
	if (r->cur.sup)
		root_put_sup(r, r->cur.sup, out);
	sup_put_tail(out, r->cfg->supervisor.max_restarts,
	    r->cfg->supervisor.max_seconds);
	jraw_put(out, ",\"pid\":");
	jraw_put_int(out, getpid());
	jraw_put(out, ",\"env\":");
	jraw_put_str(out, r->cfg->env, strlen(r->cfg->env));
	jraw_put(out, ",\"mode\":\"");
	jraw_put(out, cfg_mode_name(r->cfg->mode));
	jraw_put(out, "\",\"adapter\":\"");
	jraw_put(out, cfg_adapter_name(r->cfg->adapter));
	jraw_put(out, "\",\"version\":");
	jraw_put_str(out, ARBOR_VERSION, strlen(ARBOR_VERSION));
	jraw_put(out, "}");
}
