#include "supervisor/tree.h"

#include <ev.h>
#include <string.h>

#include "proto/jraw.h"
#include "proto/xmalloc.h"
#include "supervisor/backoff.h"
#include "supervisor/clock.h"
#include "supervisor/intensity.h"
#include "supervisor/log.h"

#define LOOP		EV_DEFAULT_UC
#define SPAWN_RETRY_MS	100	/* a spawn that failed waits at least this */

/* What the supervisor does once every child is down. */
enum after_down { AFTER_NOTHING, AFTER_STOPPED, AFTER_FAILED, AFTER_RESTART };

struct slot {
	struct child	*c;
	bool		 want_up;
	bool		 restart_now;	/* up once down: no intensity */
	bool		 now_counted;	/* that is a restart (not a start) */
	bool		 restart_asked;	/* restart NAME came while its crash
					 * (or deadline kill) awaited the reap */
	bool		 leaving;	/* sup_child_leave: never up again */
	bool		 ended;		/* down under its restart type: up
					 * again when the supervisor starts
					 * afresh (not so one stopped) */
	struct backoff	 backoff;
};

struct sup {
	char			*name;
	const struct config	*cfg;
	char *const		*argv;
	struct registry		*reg;
	const struct sup_events	*ev;
	void			*owner;

	enum sup_state		 state;
	enum after_down		 after;
	struct intensity	 window;
	unsigned		 restarts;
	ev_tstamp		 started;

	struct slot		**slots;	/* start order */
	size_t			 n, cap;
};

static void on_ready(struct child *, void *);
static void on_idle(struct child *, void *);
static void on_exited(struct child *, void *);
static const struct child_events child_events = { on_ready, on_idle, on_exited };

/* The contract names four supervisor states: one that is stopping its
 * children is still running until they are down. */
static const char *const state_names[] = {
	[SS_RUNNING] = "running", [SS_RESTARTING] = "restarting",
	[SS_STOPPED] = "stopped", [SS_FAILED] = "failed",
	[SS_STOPPING] = "running",
};

const char *
sup_state_name(enum sup_state s)
{
	return state_names[s];
}

struct sup *
sup_new(const char *name, int max_restarts, int max_seconds,
    const struct config *cfg, char *const *argv, struct registry *reg,
    const struct sup_events *ev, void *owner)
{
	struct sup *s = xcalloc(1, sizeof *s);
	s->name = xstrdup(name);
	s->cfg = cfg;
	s->argv = argv;
	s->reg = reg;
	s->ev = ev;
	s->owner = owner;
	s->state = SS_STOPPED;
	intensity_init(&s->window, max_restarts, max_seconds);
	reg_add(reg, name, REG_SUPERVISOR, s);
	return s;
}

void
sup_free(struct sup *s)
{
	if (s == NULL)
		return;
	sup_unregister(s);
	for (size_t i = 0; i < s->n; i++) {
		child_free(s->slots[i]->c);
		free(s->slots[i]);
	}
	intensity_release(&s->window);
	free(s->slots);
	free(s->name);
	free(s);
}

void
sup_unregister(struct sup *s)
{
	if (s->reg == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		reg_remove(s->reg, child_name(s->slots[i]->c));
	reg_remove(s->reg, s->name);
	s->reg = NULL;
}

void
sup_retire(struct sup *s)
{
	for (size_t i = 0; i < s->n; i++) {
		s->slots[i]->want_up = false;
		s->slots[i]->restart_now = false;
		s->slots[i]->ended = false;
		child_set_down(s->slots[i]->c, CS_STOPPED);	/* ends a backoff */
	}
}

/* A new window only for new bounds: a reload that leaves them alone keeps
 * the restarts already counted (as the root does with its own). */
void
sup_set_intensity(struct sup *s, int max_restarts, int max_seconds)
{
	if (s->window.max_restarts == max_restarts &&
	    s->window.max_seconds == max_seconds)
		return;
	intensity_release(&s->window);
	intensity_init(&s->window, max_restarts, max_seconds);
}

void
sup_reconfigure(struct sup *s, const struct config *cfg, char *const *argv)
{
	s->cfg = cfg;
	s->argv = argv;
	for (size_t i = 0; i < s->n; i++)
		child_reconfigure(s->slots[i]->c, cfg, argv);
}

/* Spawns c now; one that fails comes back through on_exited as a crash
 * (child_spawn). */
static void
spawn(struct sup *s, struct slot *sl)
{
	child_spawn(sl->c);
}

struct child *
sup_add_worker(struct sup *s, const char *leaf, bool want_up)
{
	char *name = xasprintf("%s/%s", s->name, leaf);
	struct slot *sl = xcalloc(1, sizeof *sl);
	sl->c = child_new(name, s->cfg, s->argv, &child_events, s);
	sl->want_up = want_up;
	child_set_owner_data(sl->c, sl);
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 8;
		s->slots = xrealloc(s->slots, s->cap * sizeof *s->slots);
	}
	s->slots[s->n++] = sl;
	if (s->reg)
		reg_add(s->reg, name, REG_WORKER, sl->c);
	free(name);
	if (want_up && s->state == SS_RUNNING)
		spawn(s, sl);
	return sl->c;
}

void
sup_remove_worker(struct sup *s, struct child *c)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->slots[i]->c != c)
			continue;
		if (s->reg)
			reg_remove(s->reg, child_name(c));
		free(s->slots[i]);
		child_free(c);
		memmove(&s->slots[i], &s->slots[i + 1],
		    (s->n - i - 1) * sizeof *s->slots);
		s->n--;
		return;
	}
}

/* A supervisor (re)started runs all its workers, as OTP's starts every
 * child of its spec: those its restart type left down too (temporary,
 * transient after a clean exit). Those stopped on request stay down. */
static void
revive_ended(struct sup *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->slots[i]->ended) {
			s->slots[i]->ended = false;
			s->slots[i]->want_up = true;
		}
}

void
sup_start(struct sup *s)
{
	s->state = SS_RUNNING;
	s->after = AFTER_NOTHING;
	s->started = clock_now();
	intensity_reset(&s->window);
	revive_ended(s);
	if (s->ev->starting)
		s->ev->starting(s, s->owner);
	log_info(s->name, "starting %zu worker%s", s->n, s->n == 1 ? "" : "s");
	for (size_t i = 0; i < s->n; i++) {
		s->slots[i]->backoff.quick_deaths = 0;
		/* an operator restart asked meanwhile is done by this start:
		 * left set, it would take the child's next crash for one */
		s->slots[i]->restart_now = false;
		if (s->slots[i]->want_up && !child_alive(s->slots[i]->c))
			spawn(s, s->slots[i]);
	}
}

static bool
all_down(const struct sup *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (child_alive(s->slots[i]->c))
			return false;
	return true;
}

/* Every child is down: finish what the supervisor was doing. */
static void
settle(struct sup *s)
{
	enum after_down after = s->after;
	s->after = AFTER_NOTHING;
	switch (after) {
	case AFTER_NOTHING:
		break;
	case AFTER_STOPPED:
		s->state = SS_STOPPED;
		log_info(s->name, "stopped");
		if (s->ev->stopped)
			s->ev->stopped(s, s->owner);
		break;
	case AFTER_FAILED:
		s->state = SS_FAILED;
		s->ev->failed(s, s->owner);
		break;
	case AFTER_RESTART:
		s->restarts++;
		sup_start(s);
		break;
	}
}

/* Stops every child (in parallel); settle() runs when the last is down.
 * Stopped for good (the shutdown), what a child still holds fails with
 * shutting_down. */
static void
stop_all(struct sup *s, enum after_down after, enum sup_state st)
{
	s->state = st;
	s->after = after;
	for (size_t i = 0; i < s->n; i++) {
		child_set_down(s->slots[i]->c, CS_STOPPED);
		if (after == AFTER_STOPPED)
			child_shutdown(s->slots[i]->c);
		else
			child_stop(s->slots[i]->c, after == AFTER_RESTART ?
			    "restart" : "its supervisor gave up");
	}
	if (all_down(s))
		settle(s);
}

void
sup_stop(struct sup *s)
{
	if (s->state == SS_STOPPED || s->state == SS_FAILED) {
		s->state = SS_STOPPED;
		if (s->ev->stopped)
			s->ev->stopped(s, s->owner);
		return;
	}
	stop_all(s, AFTER_STOPPED, SS_STOPPING);
}

void
sup_abandon(struct sup *s, enum msg_code code, const char *why)
{
	for (size_t i = 0; i < s->n; i++)
		child_abandon(s->slots[i]->c, code, why);
}

/* A supervisor already failing (its intensity exceeded, children still
 * stopping) keeps its failure: its parent restarts it and counts that. */
void
sup_restart(struct sup *s)
{
	if (s->after == AFTER_FAILED) {
		log_info(s->name, "failing: its parent restarts it");
		return;
	}
	log_info(s->name, "restarting");
	stop_all(s, AFTER_RESTART, SS_RESTARTING);
}

static void
fail(struct sup *s)
{
	int max = s->window.max_restarts;
	log_error(s->name, "more than %d %s within %d s: giving up, "
	    "stopping children", max,
	    log_plural((unsigned)max, "restart", "restarts"),
	    (int)s->window.max_seconds);
	stop_all(s, AFTER_FAILED, SS_RESTARTING);
}

/* ---- one child's lifecycle ---------------------------------------------- */

static void
on_ready(struct child *c, void *arg)
{
	struct sup *s = arg;
	if (s->ev->worker_ready)
		s->ev->worker_ready(s, c, s->owner);
}

static void
on_idle(struct child *c, void *arg)
{
	struct sup *s = arg;
	if (s->ev->worker_idle)
		s->ev->worker_idle(s, c, s->owner);
}

/* Whether the exit of c calls for a restart under its restart type. */
static bool
wants_restart(const struct sup *s, const struct child *c)
{
	switch (s->cfg->worker.restart) {
	case RESTART_PERMANENT:
		return true;
	case RESTART_TRANSIENT:
		return child_exit_abnormal(c);
	case RESTART_TEMPORARY:
		return false;
	}
	return false;
}

/* Restarts a crashed child unless that overflows the intensity window;
 * at_once (a restart asked) without its delay, as for one in backoff. */
static void
restart_crashed(struct sup *s, struct slot *sl, bool at_once)
{
	if (intensity_add(&s->window, clock_now())) {
		fail(s);
		return;
	}
	child_mark_restart(sl->c);
	if (at_once)
		sl->backoff.quick_deaths = 0;
	int ms = at_once ? 0 : backoff_next(&sl->backoff, child_last_run(sl->c),
	    s->cfg->worker.restart_delay_ms, s->cfg->worker.max_restart_delay_ms);
	if (child_spawn_failed(sl->c) && ms < SPAWN_RETRY_MS)
		ms = SPAWN_RETRY_MS;	/* no spin when nothing can be forked */
	if (ms > 0) {
		log_info(child_name(sl->c), "restarting in %d ms", ms);
		child_backoff(sl->c, ms);
	} else {
		spawn(s, sl);
	}
}

static void bring_up(struct sup *, struct slot *, bool);

/* A restart asked while the crash awaited its reap (asked) is done as if
 * it came after: the crash counts as one (intensity, restarts), and the
 * restart only brings the worker up without its delay, or, when its
 * restart type keeps it down, brings it up as a counted restart. A worker
 * killed for a request's passed deadline is replaced as a recycle is:
 * counted once in its restarts, at once, whatever its restart type, and
 * not against the intensity (asked or not: the replacement does it). */
static void
on_exited(struct child *c, void *arg)
{
	struct sup *s = arg;
	struct slot *sl = child_owner_data(c);
	bool asked = sl->restart_asked;
	sl->restart_asked = false;
	if (s->ev->worker_down)
		s->ev->worker_down(s, c, s->owner);
	if (s->state != SS_RUNNING) {
		child_set_down(c, CS_STOPPED);
		if (all_down(s))
			settle(s);
	} else if (!sl->want_up) {
		child_set_down(c, CS_STOPPED);
	} else if (sl->restart_now) {
		sl->restart_now = false;
		if (sl->now_counted)
			child_mark_restart(c);
		spawn(s, sl);
	} else if (child_exit_planned(c)) {
		child_mark_restart(c);
		spawn(s, sl);
	} else if (!wants_restart(s, c)) {
		sl->want_up = false;
		sl->ended = true;
		child_set_down(c, child_exit_abnormal(c) ? CS_FAILED : CS_STOPPED);
		if (asked)
			bring_up(s, sl, true);
	} else {
		restart_crashed(s, sl, asked);
	}
}

void
sup_stop_child(struct sup *s, struct child *c, const char *reason)
{
	struct slot *sl = child_owner_data(c);
	sl->want_up = false;
	sl->restart_now = false;
	sl->ended = false;
	child_set_down(c, CS_STOPPED);
	child_stop(c, reason);
	if (s->ev->worker_stopped)
		s->ev->worker_stopped(s, c, s->owner);
}

void
sup_child_leave(struct sup *s, struct child *c)
{
	struct slot *sl = child_owner_data(c);
	sl->leaving = true;
	sl->want_up = false;
	sl->restart_now = false;
	sl->ended = false;
}

bool
sup_child_leaving(const struct child *c)
{
	const struct slot *sl = child_owner_data(c);
	return sl->leaving;
}

bool
sup_hold_child(struct sup *s, struct child *c)
{
	struct slot *sl = child_owner_data(c);
	bool was_up = sl->want_up;
	sl->want_up = false;
	sl->restart_now = false;
	child_set_down(c, CS_STOPPED);
	return was_up;
}

/* Brings up a child that is wanted down or has no process; a stopping
 * one comes up again once it is down. counted: a restart (the op). */
static void
bring_up(struct sup *s, struct slot *sl, bool counted)
{
	struct child *c = sl->c;
	sl->want_up = true;
	sl->ended = false;
	if (s->state != SS_RUNNING)
		return;
	if (child_state(c) == CS_STOPPING) {
		sl->restart_now = true;	/* up again once it is down */
		sl->now_counted = counted;
	} else if (!child_alive(c)) {
		if (counted)	/* in backoff: the restart due, made now */
			child_mark_restart(c);
		sl->backoff.quick_deaths = 0;
		spawn(s, sl);
	}
}

/* start is for a child stopped on request (or never started): one that is
 * wanted up already (running, stopping after a crash or kill, waiting in
 * backoff) stays on its own restart path, delay and intensity included. */
void
sup_start_child(struct sup *s, struct child *c)
{
	struct slot *sl = child_owner_data(c);
	if (sl->leaving || sl->want_up)
		return;
	bring_up(s, sl, false);
}

/* A reload changed worker.restart: a child its old type left down
 * (ended) that the new one would have restarted (permanent: any; transient:
 * one that ended abnormally) is started, as start would (not counted as a
 * restart). Those stopped on request stay down. */
void
sup_revive_restartable(struct sup *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct slot *sl = s->slots[i];
		if (!sl->ended || sl->leaving || !wants_restart(s, sl->c))
			continue;
		log_info(child_name(sl->c), "worker.restart = %s: starting",
		    cfg_restart_name(s->cfg->worker.restart));
		bring_up(s, sl, false);
	}
}

/* A child that crashed is not stopped: its exit, once reaped, restarts
 * it as the crash it is (on_exited), whichever comes first, the op or the
 * reap; stopped, it would have been restarted outside the intensity. */
void
sup_restart_child(struct sup *s, struct child *c, const char *reason)
{
	struct slot *sl = child_owner_data(c);
	if (sl->leaving)
		return;
	if (child_alive(c) && sl->want_up && !sl->restart_now &&
	    s->state == SS_RUNNING && child_crashing(c)) {
		sl->restart_asked = true;
		return;
	}
	if (child_alive(c)) {
		sl->want_up = true;
		sl->restart_now = true;
		sl->now_counted = true;
		child_stop(c, reason);
	} else {
		bring_up(s, sl, true);
	}
}

const char *sup_name(const struct sup *s) { return s->name; }
enum sup_state sup_state(const struct sup *s) { return s->state; }
unsigned sup_restarts(const struct sup *s) { return s->restarts; }
void sup_count_restart(struct sup *s) { s->restarts++; }
size_t sup_nchildren(const struct sup *s) { return s->n; }
struct child *sup_child(const struct sup *s, size_t i) { return s->slots[i]->c; }
void *sup_owner(const struct sup *s) { return s->owner; }

void
sup_put_head(struct buf *out, const char *name, enum sup_state state,
    unsigned restarts, int64_t uptime_ms)
{
	jraw_put(out, "\"name\":");
	jraw_put_str(out, name, strlen(name));
	jraw_put(out, ",\"kind\":\"supervisor\",\"state\":\"");
	jraw_put(out, sup_state_name(state));
	jraw_put(out, "\",\"restarts\":");
	jraw_put_int(out, restarts);
	jraw_put(out, ",\"uptime_ms\":");
	jraw_put_int(out, uptime_ms);
	jraw_put(out, ",\"children\":[");
}

void
sup_put_tail(struct buf *out, int max_restarts, int max_seconds)
{
	jraw_put(out, "],\"strategy\":\"one_for_one\",\"max_restarts\":");
	jraw_put_int(out, max_restarts);
	jraw_put(out, ",\"max_seconds\":");
	jraw_put_int(out, max_seconds);
}

void
sup_put_fields(const struct sup *s, struct buf *out)
{
	/* stopping its children, it is still running (state_names) */
	int64_t up = s->state == SS_RUNNING || s->state == SS_STOPPING ?
	    (int64_t)((clock_now() - s->started) * 1000) : 0;
	sup_put_head(out, s->name, s->state, s->restarts, up);
	for (size_t i = 0; i < s->n; i++) {
		if (i > 0)
			jraw_put(out, ",");
		child_put_node(s->slots[i]->c, out);
	}
	sup_put_tail(out, s->window.max_restarts, (int)s->window.max_seconds);
}
