#include "tests/unit/evwait.h"

#include <ev.h>

#define LOOP	EV_DEFAULT

static bool timed_out;
static ev_timer bound_timer, tick_timer;

static void
on_bound(struct ev_loop *loop, ev_timer *w, int revents)
{
	timed_out = true;
	ev_break(loop, EVBREAK_ALL);
}

static void
on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void
stop_timers(void)
{
	ev_timer_stop(LOOP, &bound_timer);
	ev_timer_stop(LOOP, &tick_timer);
}

static void
start_bound(double bound_s)
{
	stop_timers();
	ev_now_update(LOOP);
	ev_timer_init(&bound_timer, on_bound, bound_s, 0.);
	timed_out = false;
	ev_timer_start(LOOP, &bound_timer);
}

bool
evwait_until(bool (*done)(void *), void *arg, double bound_s, double tick_s)
{
	start_bound(bound_s);
	if (tick_s > 0) {
		ev_timer_init(&tick_timer, on_tick, tick_s, tick_s);
		ev_timer_start(LOOP, &tick_timer);
	}
	while (!done(arg) && !timed_out)
		ev_run(LOOP, EVRUN_ONCE);
	stop_timers();
	return done(arg);
}

static bool
never(void *arg)
{
	return false;
}

void
evwait_for(double s)
{
	evwait_until(never, NULL, s, 0);
}

bool
evwait_dry(double bound_s)
{
	start_bound(bound_s);
	ev_unref(LOOP);
	ev_run(LOOP, 0);
	ev_ref(LOOP);
	stop_timers();
	return !timed_out;
}
