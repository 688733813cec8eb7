#include "supervisor/session.h"

#include <ev.h>
#include <string.h>

#include "proto/xmalloc.h"
#include "registry/registry.h"
#include "supervisor/child.h"
#include "supervisor/clock.h"

struct binding {
	char			*id;
	struct sess_anchor	*anchor;	/* NULL: unbound */
	double			 last_used;	/* or when its last request ended */
	unsigned		 inflight;	/* requests at a worker or waiting
						 * for one: not idle */
	uint64_t		 gen;		/* tells it from an earlier session
						 * of the same id */
	bool			 reset;		/* its worker was lost */
	void			*teller;	/* its request in flight due to
						 * tell a reset (sess_set_teller) */
	bool			 pending;	/* only held: no request of it
						 * served yet, so it does not
						 * exist but for its waiters */
	LIST_ENTRY(binding)	 by_anchor;
	TAILQ_ENTRY(binding)	 lru;
};

/* The sweep runs when the least recently used session would expire (at
 * least this late, so that float rounding cannot make it spin). */
#define SWEEP_MIN_S	0.001

struct sessions {
	struct registry		*map;		/* id -> binding (a string map) */
	TAILQ_HEAD(, binding)	 lru;		/* least recently used first */
	double			 ttl;		/* seconds; 0: never expire */
	ev_timer		 t_sweep;
	sess_expire_fn		*expired;
	void			*arg;
	unsigned long		*count;
	unsigned long		*made;
	size_t			 npending;
	size_t			 ndue;		/* bindings with reset set */
	uint64_t		 next_gen;
	bool			 retired;	/* handed on: ends none itself */
};

static void on_sweep(struct ev_loop *, ev_timer *, int);

/* Arms the sweep for when the least recently used session would expire;
 * none while there is no session or no ttl, so an idle daemon is not woken.
 * A session used since comes later in the list: then the sweep finds
 * nothing expired yet and arms itself again. */
static void
arm_sweep(struct sessions *s)
{
	struct ev_loop *loop = EV_DEFAULT_UC;
	struct binding *b = TAILQ_FIRST(&s->lru);
	ev_timer_stop(loop, &s->t_sweep);
	if (s->ttl <= 0 || b == NULL)
		return;
	double at = b->last_used + s->ttl - clock_now();
	ev_timer_set(&s->t_sweep, at > SWEEP_MIN_S ? at : SWEEP_MIN_S, 0.);
	ev_timer_start(loop, &s->t_sweep);
}

struct sessions *
sess_new(long ttl_ms, sess_expire_fn *fn, void *arg, unsigned long *count,
    unsigned long *made)
{
	struct sessions *s = xcalloc(1, sizeof *s);
	s->map = reg_new();
	TAILQ_INIT(&s->lru);
	s->expired = fn;
	s->arg = arg;
	s->count = count;
	s->made = made;
	ev_init(&s->t_sweep, on_sweep);
	s->t_sweep.data = s;
	sess_set_ttl(s, ttl_ms);
	return s;
}

void
sess_set_ttl(struct sessions *s, long ttl_ms)
{
	s->ttl = ttl_ms > 0 && !s->retired ? ttl_ms / 1000.0 : 0;
	arm_sweep(s);
}

void
sess_retire(struct sessions *s)
{
	if (s == NULL)
		return;
	s->retired = true;
	sess_set_ttl(s, 0);
}

static void
unbind(struct binding *b)
{
	struct sess_anchor *a = b->anchor;
	if (a == NULL)
		return;
	LIST_REMOVE(b, by_anchor);
	b->anchor = NULL;
	if (--a->n == 0 && a->unbound)
		a->unbound(a);
}

/* Sets or clears b's reset notice, counting the sessions due one. */
static void
set_reset(struct sessions *s, struct binding *b, bool on)
{
	s->ndue += (size_t)on - (size_t)b->reset;
	b->reset = on;
}

static void
drop(struct sessions *s, struct binding *b)
{
	unbind(b);
	set_reset(s, b, false);
	s->npending -= b->pending;
	TAILQ_REMOVE(&s->lru, b, lru);
	reg_remove(s->map, b->id);
	free(b->id);
	free(b);
}

void
sess_free(struct sessions *s)
{
	if (s == NULL)
		return;
	ev_timer_stop(EV_DEFAULT_UC, &s->t_sweep);
	while (!TAILQ_EMPTY(&s->lru))
		drop(s, TAILQ_FIRST(&s->lru));
	reg_free(s->map);
	free(s);
}

/* A new session, unbound, its idle clock started now. */
static struct binding *
make(struct sessions *s, const char *id, double now)
{
	struct binding *b = xcalloc(1, sizeof *b);
	b->id = xstrdup(id);
	b->gen = ++s->next_gen;
	reg_add(s->map, id, REG_WORKER, b);
	TAILQ_INSERT_TAIL(&s->lru, b, lru);
	b->last_used = now;
	if (!ev_is_active(&s->t_sweep))
		arm_sweep(s);
	return b;
}

/* The session's idle clock starts (again) now: the LRU tail. */
static void
touch(struct sessions *s, struct binding *b, double now)
{
	TAILQ_REMOVE(&s->lru, b, lru);
	TAILQ_INSERT_TAIL(&s->lru, b, lru);
	b->last_used = now;
}

struct sess_anchor *
sess_lookup(struct sessions *s, const char *id, double now, bool *created)
{
	struct binding *b = reg_lookup(s->map, id, NULL);
	*created = b == NULL;
	if (b == NULL)
		b = make(s, id, now);
	else
		touch(s, b, now);
	return b->anchor;
}

struct sess_anchor *
sess_find(struct sessions *s, const char *id, double now)
{
	struct binding *b = reg_lookup(s->map, id, NULL);
	if (b == NULL)
		return NULL;
	touch(s, b, now);
	return b->anchor;
}

static bool
bind(struct binding *b, struct sess_anchor *a)
{
	if (b->anchor == a)
		return false;
	unbind(b);
	b->anchor = a;
	LIST_INSERT_HEAD(&a->list, b, by_anchor);
	a->n++;
	return true;
}

bool
sess_bind(struct sessions *s, const char *id, struct sess_anchor *a)
{
	struct binding *b = reg_lookup(s->map, id, NULL);
	return b != NULL && !b->pending && bind(b, a);
}

bool
sess_begin(struct sessions *s, const char *id, struct sess_anchor *a,
    uint64_t *gen, bool *rebound)
{
	struct binding *b = reg_lookup(s->map, id, NULL);
	if (b == NULL || b->pending) {	/* its first request served: the
					 * session exists from now on */
		if (b == NULL)
			b = make(s, id, clock_now());
		else
			s->npending--;
		b->pending = false;
		if (s->made)
			(*s->made)++;
	}
	struct sess_anchor *left = b->anchor;
	*rebound = bind(b, a);
	if (*rebound && left)	/* moved off a live worker (prefer): what
				 * the session built there is orphaned */
		sess_notify_cleanup(NULL, id, left);
	if (*gen != b->gen)	/* not held, or held by an earlier session */
		b->inflight++;
	*gen = b->gen;
	bool r = b->reset;
	set_reset(s, b, false);
	return r;
}

uint64_t
sess_hold(struct sessions *s, const char *id)
{
	struct binding *b = reg_lookup(s->map, id, NULL);
	if (b == NULL) {
		b = make(s, id, clock_now());
		b->pending = true;
		s->npending++;
	}
	b->inflight++;
	return b->gen;
}

void
sess_finish(struct sessions *s, const char *id, uint64_t gen, double now)
{
	struct binding *b = reg_lookup(s->map, id, NULL);
	if (b == NULL || b->gen != gen)
		return;		/* ended meanwhile (and maybe made anew) */
	if (b->inflight > 0)
		b->inflight--;
	if (b->pending && b->inflight == 0)
		drop(s, b);	/* none of its requests was served */
	else
		touch(s, b, now);
}

bool
sess_take_reset(struct sessions *s, const char *id)
{
	struct binding *b = reg_lookup(s->map, id, NULL);
	bool r = b && b->reset;
	if (b)
		set_reset(s, b, false);
	return r;
}

bool
sess_take_due(struct sessions *s, const char *id, uint64_t gen)
{
	struct binding *b = s->ndue ? reg_lookup(s->map, id, NULL) : NULL;
	if (b == NULL || (gen != 0 && b->gen != gen) || !b->reset)
		return false;
	set_reset(s, b, false);
	return true;
}

bool
sess_set_teller(struct sessions *s, const char *id, void *req)
{
	struct binding *b = reg_lookup(s->map, id, NULL);
	if (b == NULL || b->teller)
		return false;
	b->teller = req;
	return true;
}

void *
sess_take_teller(struct sessions *s, const char *id, uint64_t gen)
{
	struct binding *b = reg_lookup(s->map, id, NULL);
	if (b == NULL || (gen != 0 && b->gen != gen))
		return NULL;
	void *t = b->teller;
	b->teller = NULL;
	return t;
}

void
sess_inherit(struct sessions *to, const struct sessions *from, double since)
{
	const struct binding *b;
	if (to == NULL || from == NULL)
		return;
	TAILQ_FOREACH(b, &from->lru, lru) {	/* oldest first: LRU order kept */
		if (b->pending || b->last_used < since)
			continue;	/* pending: its waiters make it anew */
		bool created;
		sess_lookup(to, b->id, b->last_used, &created);
		struct binding *nb = reg_lookup(to->map, b->id, NULL);
		set_reset(to, nb, true);
	}
}

bool
sess_end(struct sessions *s, const char *id, struct sess_anchor **a)
{
	struct binding *b = reg_lookup(s->map, id, NULL);
	if (b && b->pending)
		b = NULL;	/* not one yet: its waiters keep it */
	*a = b ? b->anchor : NULL;
	if (b)
		drop(s, b);
	return b != NULL;
}

void
sess_end_all(struct sessions *s, sess_expire_fn *fn, void *arg)
{
	struct binding *b, *next;
	for (b = TAILQ_FIRST(&s->lru); b != NULL; b = next) {
		next = TAILQ_NEXT(b, lru);
		if (b->pending)
			continue;	/* not one yet: its waiters keep it */
		if (fn)
			fn(arg, b->id, b->anchor);
		drop(s, b);
	}
	arm_sweep(s);
}

void
sess_drop_anchor(struct sessions *s, struct sess_anchor *a)
{
	struct binding *b;
	while ((b = LIST_FIRST(&a->list)) != NULL) {
		unbind(b);
		set_reset(s, b, true);
	}
}

/* Ends the sessions idle longer than the ttl: the LRU head first. */
static void
on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sessions *s = w->data;
	struct binding *b;
	while ((b = TAILQ_FIRST(&s->lru)) != NULL &&
	    clock_now() - b->last_used >= s->ttl) {
		if (b->inflight > 0) {	/* in use: not idle */
			touch(s, b, clock_now());
			continue;
		}
		if (s->expired)
			s->expired(s->arg, b->id, b->anchor);
		if (s->count)
			(*s->count)++;
		drop(s, b);
	}
	arm_sweep(s);
}

size_t
sess_count(const struct sessions *s)
{
	return reg_count(s->map) - s->npending;
}

void
sess_notify_cleanup(void *arg, const char *id, struct sess_anchor *a)
{
	if (a && a->child)
		child_notify(a->child, "cleanup_session",
		    json_pack("{s:s}", "session_id", id));
}

bool
sess_end_notify(struct sessions *s, const char *id)
{
	struct sess_anchor *a;
	if (!sess_end(s, id, &a))
		return false;
	sess_notify_cleanup(NULL, id, a);
	return true;
}
