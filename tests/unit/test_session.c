/* Unit tests for supervisor/session.c: session -> worker bindings (SPEC 6
 * affinity), worker loss, and idle expiry driven by the default libev
 * loop. Expiry is waited for by running the loop until it has happened,
 * bounded by a generous deadline, never by sleeping. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/xmalloc.h"
#include "supervisor/clock.h"
#include "supervisor/session.h"
#include "tests/unit/evwait.h"

#define LOOP		EV_DEFAULT
#define BOUND_S		10.0	/* the most any wait may take */
#define MAX_EXPIRED	64

struct fx {
	struct sessions		*s;
	unsigned long		 count;		/* the module's counter */
	unsigned long		 made;		/* sessions sess_begin made */
	int			 nexp;		/* callbacks seen */
	char			*ids[MAX_EXPIRED];
	struct sess_anchor	*anchors[MAX_EXPIRED];
	struct sess_anchor	 a, b;
};

static void
on_expired(void *arg, const char *id, struct sess_anchor *a)
{
	struct fx *fx = arg;
	if (fx->nexp < MAX_EXPIRED) {	/* more fails the counts checked */
		fx->ids[fx->nexp] = xstrdup(id);
		fx->anchors[fx->nexp] = a;
	}
	fx->nexp++;
}

static struct fx *
fx_new(long ttl_ms)
{
	struct fx *fx = xcalloc(1, sizeof *fx);
	LIST_INIT(&fx->a.list);
	LIST_INIT(&fx->b.list);
	fx->a.worker = &fx->a;
	fx->b.worker = &fx->b;
	(void)ev_default_loop(0);
	ev_now_update(LOOP);
	fx->s = sess_new(ttl_ms, on_expired, fx, &fx->count, &fx->made);
	return fx;
}

static int
setup(void **state)
{
	*state = fx_new(3600000);
	return 0;
}

static int
setup_short_ttl(void **state)
{
	*state = fx_new(50);
	return 0;
}

/* Keeps one session busy: looks it up on every tick. File-scope so that
 * teardown can stop it whatever happened. */
static struct toucher {
	ev_timer	 t;
	struct fx	*fx;
	const char	*id;
	int		 ticks;
} toucher;

static int
teardown(void **state)
{
	struct fx *fx = *state;
	sess_free(fx->s);
	ev_timer_stop(LOOP, &toucher.t);
	for (int i = 0; i < fx->nexp && i < MAX_EXPIRED; i++)
		free(fx->ids[i]);
	free(fx);
	return 0;
}

static double
now(void)
{
	return clock_now();
}

/* Looks id up and returns its anchor; *created says whether it was new. */
static struct sess_anchor *
lookup(struct fx *fx, const char *id, bool *created)
{
	bool dummy;
	return sess_lookup(fx->s, id, now(), created ? created : &dummy);
}

static void
on_touch(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct toucher *tc = (struct toucher *)w;
	lookup(tc->fx, tc->id, NULL);
	tc->ticks++;
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
	return w->fx->nexp >= w->n;
}

static bool
wait_expired(struct fx *fx, int n)
{
	struct want_n w = { fx, n };
	return evwait_until(expired_n, &w, BOUND_S, 0);
}

/* ---- bindings ---------------------------------------------------------- */

static void
test_lookup_creates(void **state)
{
	struct fx *fx = *state;
	bool created = false;
	assert_int_equal(sess_count(fx->s), 0);
	assert_null(lookup(fx, "s1", &created));
	assert_true(created);
	assert_int_equal(sess_count(fx->s), 1);
	assert_null(lookup(fx, "s1", &created));
	assert_false(created);
	assert_int_equal(sess_count(fx->s), 1);
	assert_null(lookup(fx, "s2", &created));
	assert_true(created);
	assert_int_equal(sess_count(fx->s), 2);
}

/* Bind, rebind, and the bound counts on the anchors. */
static void
test_bind_rebind(void **state)
{
	struct fx *fx = *state;
	lookup(fx, "s1", NULL);
	lookup(fx, "s2", NULL);
	assert_true(sess_bind(fx->s, "s1", &fx->a));
	assert_int_equal(fx->a.n, 1);
	assert_ptr_equal(lookup(fx, "s1", NULL), &fx->a);
	/* The same binding again is no change. */
	assert_false(sess_bind(fx->s, "s1", &fx->a));
	assert_int_equal(fx->a.n, 1);
	assert_true(sess_bind(fx->s, "s2", &fx->a));
	assert_int_equal(fx->a.n, 2);
	/* Rebinding moves the session from one anchor to the other. */
	assert_true(sess_bind(fx->s, "s1", &fx->b));
	assert_int_equal(fx->a.n, 1);
	assert_int_equal(fx->b.n, 1);
	assert_ptr_equal(lookup(fx, "s1", NULL), &fx->b);
	assert_ptr_equal(lookup(fx, "s2", NULL), &fx->a);
	assert_int_equal(sess_count(fx->s), 2);
}

/* Only known sessions can be bound. */
static void
test_bind_unknown(void **state)
{
	struct fx *fx = *state;
	assert_false(sess_bind(fx->s, "nobody", &fx->a));
	assert_int_equal(fx->a.n, 0);
	assert_true(LIST_EMPTY(&fx->a.list));
	assert_int_equal(sess_count(fx->s), 0);
}

/* The anchors of test_unbound_at_last, and how often each was told. */
static struct fx *unbound_fx;
static int unbound_calls[2];

static void
on_anchor_unbound(struct sess_anchor *a)
{
	assert_int_equal(a->n, 0);
	assert_true(LIST_EMPTY(&a->list));
	unbound_calls[a == &unbound_fx->b]++;
}

/* An anchor is told when its last bound session leaves it, whether that
 * one moves, ends or is dropped with its worker, and only then. */
static void
test_unbound_at_last(void **state)
{
	struct fx *fx = *state;
	unbound_fx = fx;
	memset(unbound_calls, 0, sizeof unbound_calls);
	fx->a.unbound = fx->b.unbound = on_anchor_unbound;
	lookup(fx, "s1", NULL);
	lookup(fx, "s2", NULL);
	lookup(fx, "s3", NULL);
	assert_true(sess_bind(fx->s, "s1", &fx->a));
	assert_true(sess_bind(fx->s, "s2", &fx->a));
	assert_true(sess_bind(fx->s, "s3", &fx->b));
	assert_true(sess_bind(fx->s, "s1", &fx->b));	/* a keeps s2 */
	assert_int_equal(unbound_calls[0], 0);
	struct sess_anchor *left;
	assert_true(sess_end(fx->s, "s2", &left));	/* a's last */
	assert_ptr_equal(left, &fx->a);
	assert_int_equal(unbound_calls[0], 1);
	sess_drop_anchor(fx->s, &fx->b);		/* s1 and s3: once */
	assert_int_equal(unbound_calls[1], 1);
	assert_true(sess_bind(fx->s, "s1", &fx->a));
	assert_true(sess_bind(fx->s, "s1", &fx->b));	/* moves: a is empty */
	assert_int_equal(unbound_calls[0], 2);
	assert_int_equal(unbound_calls[1], 1);
	fx->a.unbound = fx->b.unbound = NULL;
}

/* A lost worker: its sessions become unbound and each is told reset
 * exactly once; sessions of other workers are untouched. */
static void
test_drop_anchor_reset_once(void **state)
{
	struct fx *fx = *state;
	lookup(fx, "s1", NULL);
	lookup(fx, "s2", NULL);
	lookup(fx, "s3", NULL);
	lookup(fx, "s4", NULL);
	sess_bind(fx->s, "s1", &fx->a);
	sess_bind(fx->s, "s2", &fx->a);
	sess_bind(fx->s, "s3", &fx->b);
	assert_false(sess_take_reset(fx->s, "s1"));

	sess_drop_anchor(fx->s, &fx->a);
	assert_int_equal(fx->a.n, 0);
	assert_true(LIST_EMPTY(&fx->a.list));
	assert_int_equal(fx->b.n, 1);
	assert_int_equal(sess_count(fx->s), 4);
	assert_null(lookup(fx, "s1", NULL));
	assert_null(lookup(fx, "s2", NULL));
	assert_ptr_equal(lookup(fx, "s3", NULL), &fx->b);

	assert_true(sess_take_reset(fx->s, "s1"));
	assert_false(sess_take_reset(fx->s, "s1"));
	assert_true(sess_take_reset(fx->s, "s2"));
	assert_false(sess_take_reset(fx->s, "s2"));
	assert_false(sess_take_reset(fx->s, "s3"));
	assert_false(sess_take_reset(fx->s, "s4"));	/* never bound */
	assert_false(sess_take_reset(fx->s, "unknown"));
	assert_int_equal(sess_count(fx->s), 4);	/* take_reset creates none */

	/* The session goes on with another worker. */
	assert_true(sess_bind(fx->s, "s1", &fx->b));
	assert_int_equal(fx->b.n, 2);
	assert_false(sess_take_reset(fx->s, "s1"));

	/* Dropping an anchor with nothing bound is harmless. */
	sess_drop_anchor(fx->s, &fx->a);
	assert_int_equal(fx->a.n, 0);
}

/* A reset not yet taken survives a rebind: the next reply still says so. */
static void
test_reset_survives_rebind(void **state)
{
	struct fx *fx = *state;
	lookup(fx, "s1", NULL);
	sess_bind(fx->s, "s1", &fx->a);
	sess_drop_anchor(fx->s, &fx->a);
	assert_true(sess_bind(fx->s, "s1", &fx->b));
	assert_true(sess_take_reset(fx->s, "s1"));
	assert_false(sess_take_reset(fx->s, "s1"));
}

/* One request of a session holds its reset notice at a time: a later
 * reset is told with it; a reply of an earlier session of the same id
 * takes nothing. */
static void
test_teller(void **state)
{
	struct fx *fx = *state;
	int r1, r2;
	uint64_t g = 0;
	bool rebound;
	assert_false(sess_set_teller(fx->s, "s1", &r1));	/* unknown */
	sess_begin(fx->s, "s1", &fx->a, &g, &rebound);
	assert_null(sess_take_teller(fx->s, "s1", g));
	assert_true(sess_set_teller(fx->s, "s1", &r1));
	assert_false(sess_set_teller(fx->s, "s1", &r2));
	assert_null(sess_take_teller(fx->s, "s1", g + 1));
	assert_ptr_equal(sess_take_teller(fx->s, "s1", g), &r1);
	assert_null(sess_take_teller(fx->s, "s1", g));
	assert_true(sess_set_teller(fx->s, "s1", &r2));
	assert_ptr_equal(sess_take_teller(fx->s, "s1", g), &r2);
	/* gen 0: a request refused before it held the session */
	assert_true(sess_set_teller(fx->s, "s1", &r1));
	assert_null(sess_take_teller(fx->s, "unknown", 0));
	assert_ptr_equal(sess_take_teller(fx->s, "s1", 0), &r1);
	assert_null(sess_take_teller(fx->s, "s1", 0));
}

/* A notice due that no request took goes with a reply of the session's
 * request sent before the loss (sess_take_due), once, and not with one of
 * an earlier session of the same id; one taken by a request sent since
 * (sess_begin) is not due any more; an ended session has none due. A
 * request refused before it held the session (gen 0) takes it too. */
static void
test_take_due(void **state)
{
	struct fx *fx = *state;
	uint64_t g = 0, g2 = 0;
	bool rebound;
	sess_begin(fx->s, "s1", &fx->a, &g, &rebound);
	assert_false(sess_take_due(fx->s, "s1", g));
	sess_drop_anchor(fx->s, &fx->a);
	assert_false(sess_take_due(fx->s, "s1", g + 1));
	assert_false(sess_take_due(fx->s, "unknown", g));
	assert_true(sess_take_due(fx->s, "s1", g));
	assert_false(sess_take_due(fx->s, "s1", g));
	assert_false(sess_take_reset(fx->s, "s1"));

	sess_bind(fx->s, "s1", &fx->b);
	sess_drop_anchor(fx->s, &fx->b);
	assert_true(sess_begin(fx->s, "s1", &fx->a, &g2, &rebound));
	assert_false(sess_take_due(fx->s, "s1", g));

	sess_drop_anchor(fx->s, &fx->a);
	struct sess_anchor *left;
	assert_true(sess_end(fx->s, "s1", &left));
	g2 = 0;
	sess_begin(fx->s, "s1", &fx->a, &g2, &rebound);
	assert_false(sess_take_due(fx->s, "s1", g2));

	/* gen 0, a request holding no session yet: the session as it is */
	assert_false(sess_take_due(fx->s, "s1", 0));
	sess_drop_anchor(fx->s, &fx->a);
	assert_false(sess_take_due(fx->s, "unknown", 0));
	assert_true(sess_take_due(fx->s, "s1", 0));
	assert_false(sess_take_due(fx->s, "s1", 0));
	assert_false(sess_take_due(fx->s, "s1", g2));
}

static void
test_end(void **state)
{
	struct fx *fx = *state;
	struct sess_anchor *a = &fx->b;
	bool created;
	lookup(fx, "s1", NULL);
	lookup(fx, "s2", NULL);
	sess_bind(fx->s, "s1", &fx->a);

	assert_true(sess_end(fx->s, "s1", &a));
	assert_ptr_equal(a, &fx->a);
	assert_int_equal(fx->a.n, 0);
	assert_true(LIST_EMPTY(&fx->a.list));
	assert_int_equal(sess_count(fx->s), 1);

	/* An unbound session ends with a NULL anchor. */
	a = &fx->b;
	assert_true(sess_end(fx->s, "s2", &a));
	assert_null(a);
	assert_int_equal(sess_count(fx->s), 0);

	/* Unknown (and already ended) sessions. */
	a = &fx->b;
	assert_false(sess_end(fx->s, "s1", &a));
	assert_null(a);
	assert_false(sess_end(fx->s, "never", &a));
	assert_null(a);

	/* An ended session's id starts afresh: created, unbound. */
	assert_null(lookup(fx, "s1", &created));
	assert_true(created);
}

/* Many sessions over two anchors: counts stay exact through binds,
 * ends and a worker loss. */
static void
test_many(void **state)
{
	struct fx *fx = *state;
	char id[32];
	const int n = 5000;
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof id, "sess-%d", i);
		lookup(fx, id, NULL);
		assert_true(sess_bind(fx->s, id, i % 2 ? &fx->b : &fx->a));
	}
	assert_int_equal(sess_count(fx->s), n);
	assert_int_equal(fx->a.n, n / 2);
	assert_int_equal(fx->b.n, n / 2);
	for (int i = 0; i < n; i += 4) {
		struct sess_anchor *a = NULL;
		snprintf(id, sizeof id, "sess-%d", i);
		assert_true(sess_end(fx->s, id, &a));
		assert_ptr_equal(a, &fx->a);
	}
	assert_int_equal(fx->a.n, n / 4);
	sess_drop_anchor(fx->s, &fx->b);
	assert_int_equal(fx->b.n, 0);
	assert_int_equal(sess_count(fx->s), n - n / 4);
	for (int i = 0; i < n; i++) {
		bool created;
		snprintf(id, sizeof id, "sess-%d", i);
		struct sess_anchor *a = lookup(fx, id, &created);
		if (i % 4 == 0) {
			assert_true(created);
			assert_null(a);
		} else {
			assert_false(created);
			assert_ptr_equal(a, i % 2 ? NULL : &fx->a);
			assert_int_equal(sess_take_reset(fx->s, id), i % 2 == 1);
		}
	}
}

/* Freeing the table leaves no anchor pointing into it. */
static void
test_free_unbinds(void **state)
{
	struct fx *fx = *state;
	lookup(fx, "s1", NULL);
	lookup(fx, "s2", NULL);
	sess_bind(fx->s, "s1", &fx->a);
	sess_bind(fx->s, "s2", &fx->a);
	sess_free(fx->s);
	fx->s = NULL;
	assert_int_equal(fx->a.n, 0);
	assert_true(LIST_EMPTY(&fx->a.list));
	sess_free(NULL);
}

/* ---- pending sessions ---------------------------------------------------- */

/* A session whose only request waits is pending: not counted, not ended,
 * not bindable; the request's refusal (its wait ended unserved) drops it. */
static void
test_hold_refused_leaves_nothing(void **state)
{
	struct fx *fx = *state;
	struct sess_anchor *a;
	uint64_t gen = sess_hold(fx->s, "p1");
	assert_true(gen != 0);
	assert_int_equal(sess_count(fx->s), 0);
	assert_null(sess_find(fx->s, "p1", now()));
	assert_false(sess_bind(fx->s, "p1", &fx->a));
	assert_false(sess_end(fx->s, "p1", &a));
	sess_finish(fx->s, "p1", gen, now());
	assert_int_equal(sess_count(fx->s), 0);
	assert_int_equal(fx->made, 0);
	/* Gone: a later hold makes another one. */
	uint64_t gen2 = sess_hold(fx->s, "p1");
	assert_true(gen2 != gen);
	sess_finish(fx->s, "p1", gen2, now());
	assert_int_equal(fx->made, 0);
}

/* Two requests of a new session wait: the first served makes it (bound,
 * counted once); the second, refused, leaves it be. Both refused: gone. */
static void
test_hold_two_waiters(void **state)
{
	struct fx *fx = *state;
	bool rebound;
	uint64_t g1 = sess_hold(fx->s, "p1");
	uint64_t g2 = sess_hold(fx->s, "p1");
	assert_true(g1 == g2);
	sess_begin(fx->s, "p1", &fx->a, &g1, &rebound);
	assert_true(rebound);
	assert_int_equal(fx->made, 1);
	assert_int_equal(sess_count(fx->s), 1);
	assert_int_equal(fx->a.n, 1);
	sess_finish(fx->s, "p1", g2, now());	/* the second refused */
	sess_finish(fx->s, "p1", g1, now());	/* the first's reply */
	assert_int_equal(sess_count(fx->s), 1);
	assert_ptr_equal(sess_find(fx->s, "p1", now()), &fx->a);

	uint64_t g3 = sess_hold(fx->s, "p2");
	uint64_t g4 = sess_hold(fx->s, "p2");
	sess_finish(fx->s, "p2", g3, now());
	assert_int_equal(sess_count(fx->s), 1);
	sess_finish(fx->s, "p2", g4, now());
	assert_int_equal(sess_count(fx->s), 1);
	assert_int_equal(fx->made, 1);
	uint64_t g5 = sess_hold(fx->s, "p2");	/* gone: made anew */
	assert_true(g5 != g3);
	sess_finish(fx->s, "p2", g5, now());
}

/* A session that exists is kept when a request of it is refused; one
 * begun without a wait is made there and then. */
static void
test_hold_known_kept(void **state)
{
	struct fx *fx = *state;
	bool rebound;
	uint64_t g = 0;
	sess_begin(fx->s, "s1", &fx->a, &g, &rebound);
	assert_int_equal(fx->made, 1);
	sess_finish(fx->s, "s1", g, now());
	uint64_t h = sess_hold(fx->s, "s1");
	assert_true(h == g);
	sess_finish(fx->s, "s1", h, now());
	assert_int_equal(sess_count(fx->s), 1);
	assert_ptr_equal(sess_find(fx->s, "s1", now()), &fx->a);
	assert_int_equal(fx->made, 1);
	assert_null(sess_find(fx->s, "unknown", now()));
	assert_int_equal(sess_count(fx->s), 1);	/* find creates none */
}

/* A reload's table takes the sessions, not the pending ones (their
 * waiters make them anew in it). */
static void
test_inherit_skips_pending(void **state)
{
	struct fx *fx = *state;
	bool rebound;
	uint64_t g = 0;
	sess_begin(fx->s, "s1", &fx->a, &g, &rebound);
	uint64_t h = sess_hold(fx->s, "p1");
	struct sessions *to = sess_new(3600000, NULL, NULL, NULL, NULL);
	sess_inherit(to, fx->s, 0);
	assert_int_equal(sess_count(to), 1);
	assert_true(sess_take_reset(to, "s1"));
	struct sess_anchor *a;
	assert_false(sess_end(to, "p1", &a));
	sess_free(to);
	sess_finish(fx->s, "p1", h, now());
	sess_finish(fx->s, "s1", g, now());
}

/* sess_end_all ends every session, bound or not, as sess_end does: fn
 * is told each with its anchor, the anchors are unbound (their unbound
 * callback run), none is counted as expired; a pending session (only
 * held) is kept for its waiter, and an in-flight request's end does not
 * make its session anew. */
static void
test_end_all(void **state)
{
	struct fx *fx = *state;
	bool rebound;
	uint64_t g = 0;
	sess_begin(fx->s, "s1", &fx->a, &g, &rebound);
	lookup(fx, "s2", NULL);
	sess_bind(fx->s, "s2", &fx->b);
	lookup(fx, "s3", NULL);			/* unbound */
	uint64_t h = sess_hold(fx->s, "p1");
	assert_int_equal(sess_count(fx->s), 3);

	sess_end_all(fx->s, on_expired, fx);
	assert_int_equal(fx->nexp, 3);
	assert_int_equal(fx->count, 0);
	assert_int_equal(sess_count(fx->s), 0);
	assert_int_equal(fx->a.n, 0);
	assert_int_equal(fx->b.n, 0);
	for (int i = 0; i < 3; i++) {
		struct sess_anchor *want = strcmp(fx->ids[i], "s1") == 0 ?
		    &fx->a : strcmp(fx->ids[i], "s2") == 0 ? &fx->b : NULL;
		assert_true(strcmp(fx->ids[i], "p1") != 0);
		assert_ptr_equal(fx->anchors[i], want);
	}
	sess_finish(fx->s, "s1", g, now());	/* its request ends */
	assert_int_equal(sess_count(fx->s), 0);
	struct sess_anchor *a;
	assert_false(sess_end(fx->s, "s1", &a));
	/* the waiter's session is still held: served, it is made */
	sess_begin(fx->s, "p1", &fx->a, &h, &rebound);
	assert_int_equal(sess_count(fx->s), 1);
	sess_finish(fx->s, "p1", h, now());
}

/* ---- expiry ------------------------------------------------------------- */

/* Idle sessions expire: the callback gets each id with its anchor, the
 * counter counts them, and they are gone (and unbound) afterwards. */
static void
test_expiry(void **state)
{
	struct fx *fx = *state;
	lookup(fx, "s1", NULL);
	lookup(fx, "s2", NULL);
	sess_bind(fx->s, "s1", &fx->a);
	assert_true(wait_expired(fx, 2));
	assert_int_equal(fx->nexp, 2);
	assert_int_equal(fx->count, 2);
	/* Least recently used first. */
	assert_string_equal(fx->ids[0], "s1");
	assert_ptr_equal(fx->anchors[0], &fx->a);
	assert_string_equal(fx->ids[1], "s2");
	assert_null(fx->anchors[1]);
	assert_int_equal(sess_count(fx->s), 0);
	assert_int_equal(fx->a.n, 0);
	assert_true(LIST_EMPTY(&fx->a.list));

	/* A later session expires too, and the counter keeps counting. */
	ev_now_update(LOOP);
	lookup(fx, "s3", NULL);
	sess_bind(fx->s, "s3", &fx->b);
	assert_true(wait_expired(fx, 3));
	assert_string_equal(fx->ids[2], "s3");
	assert_ptr_equal(fx->anchors[2], &fx->b);
	assert_int_equal(fx->count, 3);
	assert_int_equal(fx->b.n, 0);
}

/* A session whose worker was lost expires with no anchor. */
static void
test_expiry_after_drop(void **state)
{
	struct fx *fx = *state;
	lookup(fx, "s1", NULL);
	sess_bind(fx->s, "s1", &fx->a);
	sess_drop_anchor(fx->s, &fx->a);
	assert_true(wait_expired(fx, 1));
	assert_string_equal(fx->ids[0], "s1");
	assert_null(fx->anchors[0]);
	assert_int_equal(fx->count, 1);
}

/* An ended session never expires later. */
static void
test_ended_does_not_expire(void **state)
{
	struct fx *fx = *state;
	struct sess_anchor *a;
	lookup(fx, "gone", NULL);
	lookup(fx, "stays", NULL);
	assert_true(sess_end(fx->s, "gone", &a));
	assert_true(wait_expired(fx, 1));
	evwait_for(0.3);	/* several sweeps of a 50 ms ttl */
	assert_int_equal(fx->nexp, 1);
	assert_string_equal(fx->ids[0], "stays");
	assert_int_equal(fx->count, 1);
}

/* A session that keeps being looked up does not expire, while an idle
 * one beside it does. The ttl is long next to the touch interval so a
 * loaded machine cannot make the busy session look idle. */
static void
test_busy_session_does_not_expire(void **state)
{
	struct fx *fx = fx_new(1000);
	struct toucher *tc = &toucher;
	*state = fx;
	memset(tc, 0, sizeof *tc);
	tc->fx = fx;
	tc->id = "busy";
	lookup(fx, "busy", NULL);
	lookup(fx, "idle", NULL);
	sess_bind(fx->s, "busy", &fx->a);
	ev_timer_init(&tc->t, on_touch, 0.05, 0.05);
	ev_timer_start(LOOP, &tc->t);

	assert_true(wait_expired(fx, 1));
	assert_string_equal(fx->ids[0], "idle");
	/* More than another ttl: the busy one would have expired by now. */
	evwait_for(1.5);
	ev_timer_stop(LOOP, &tc->t);
	assert_true(tc->ticks > 20);
	assert_int_equal(fx->nexp, 1);
	assert_int_equal(fx->count, 1);
	assert_int_equal(sess_count(fx->s), 1);
	assert_ptr_equal(lookup(fx, "busy", NULL), &fx->a);
	assert_int_equal(fx->a.n, 1);

	/* Left alone, it expires too. */
	assert_true(wait_expired(fx, 2));
	assert_string_equal(fx->ids[1], "busy");
	assert_ptr_equal(fx->anchors[1], &fx->a);
	assert_int_equal(fx->a.n, 0);
}

/* No session, no timer: an idle daemon is not woken for the sweep. With
 * one session, the sweep comes once, when it expires, and then stops. */
static void
test_sweep_only_while_sessions(void **state)
{
	struct fx *fx = *state;
	assert_true(evwait_dry(BOUND_S));
	assert_int_equal(fx->nexp, 0);
	double t0 = now();
	lookup(fx, "s1", NULL);
	assert_true(evwait_dry(BOUND_S));
	assert_int_equal(fx->nexp, 1);
	assert_true(now() - t0 >= 0.05);
	assert_int_equal(sess_count(fx->s), 0);
}

/* ttl 0: sessions never expire; setting a ttl later makes them. */
static void
test_ttl_zero_never(void **state)
{
	struct fx *fx = fx_new(0);
	*state = fx;
	lookup(fx, "s1", NULL);
	evwait_for(0.3);
	assert_int_equal(fx->nexp, 0);
	assert_int_equal(sess_count(fx->s), 1);

	sess_set_ttl(fx->s, 50);
	assert_true(wait_expired(fx, 1));
	assert_string_equal(fx->ids[0], "s1");
	assert_int_equal(fx->count, 1);

	/* And back to never. */
	sess_set_ttl(fx->s, 0);
	ev_now_update(LOOP);
	lookup(fx, "s2", NULL);
	evwait_for(0.3);
	assert_int_equal(fx->nexp, 1);
	assert_int_equal(sess_count(fx->s), 1);
}

static bool
none_left(void *arg)
{
	return sess_count(arg) == 0;
}

/* Expiry without a callback or a counter still ends the sessions. */
static void
test_expiry_no_callback(void **state)
{
	struct fx *fx = fx_new(3600000);
	*state = fx;
	sess_free(fx->s);
	fx->s = sess_new(50, NULL, NULL, NULL, NULL);
	lookup(fx, "s1", NULL);
	sess_bind(fx->s, "s1", &fx->a);
	assert_true(evwait_until(none_left, fx->s, BOUND_S, 0));
	assert_int_equal(fx->a.n, 0);
}

/* A retired table (its sessions handed on) ends none by ttl, not even
 * after a later sess_set_ttl (a reload reconfigures old subtrees too). */
static void
test_retired_never_expires(void **state)
{
	struct fx *fx = fx_new(50);
	*state = fx;
	lookup(fx, "s1", NULL);
	sess_retire(fx->s);
	sess_set_ttl(fx->s, 50);
	evwait_for(0.3);
	assert_int_equal(fx->nexp, 0);
	assert_int_equal(sess_count(fx->s), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lookup_creates, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bind_rebind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_unknown, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unbound_at_last, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_drop_anchor_reset_once,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_survives_rebind,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_teller, setup, teardown),
		cmocka_unit_test_setup_teardown(test_take_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_unbinds, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_hold_refused_leaves_nothing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_two_waiters, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_hold_known_kept, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_end_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inherit_skips_pending,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry, setup_short_ttl,
		    teardown),
		cmocka_unit_test_setup_teardown(test_expiry_after_drop,
		    setup_short_ttl, teardown),
		cmocka_unit_test_setup_teardown(test_ended_does_not_expire,
		    setup_short_ttl, teardown),
		cmocka_unit_test_teardown(test_busy_session_does_not_expire,
		    teardown),
		cmocka_unit_test_teardown(test_ttl_zero_never, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_only_while_sessions,
		    setup_short_ttl, teardown),
		cmocka_unit_test_teardown(test_expiry_no_callback, teardown),
		cmocka_unit_test_teardown(test_retired_never_expires, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
