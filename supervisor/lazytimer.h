/* lazytimer: a one-shot ev_timer for deadlines that are mostly not
 * reached, kept lazily as libev's manual advises ("be smart about
 * timeouts"). A new deadline moves the timer only if it comes earlier
 * (lazytimer_by); work that finishes in time leaves it as it is. When it
 * fires, its owner handles what is due and re-arms it at the earliest
 * deadline left (lazytimer_at), or stops it. So a deadline costs one
 * comparison, not a stop and a start in libev's timer heap. */
#ifndef ARBOR_LAZYTIMER_H
#define ARBOR_LAZYTIMER_H
#include <ev.h>

#include "supervisor/clock.h"

struct lazytimer {
	ev_timer	 t;	/* initialised by the owner (ev_init) */
	ev_tstamp	 at;	/* when t, if active, fires */
};

/* Arms the timer to fire at the absolute time at. */
static inline void
lazytimer_at(struct lazytimer *lt, ev_tstamp at)
{
	ev_timer_stop(EV_DEFAULT_UC, &lt->t);
	ev_timer_set(&lt->t, at - clock_now(), 0.);
	ev_timer_start(EV_DEFAULT_UC, &lt->t);
	lt->at = at;
}

/* Makes sure the timer fires no later than at. */
static inline void
lazytimer_by(struct lazytimer *lt, ev_tstamp at)
{
	if (!ev_is_active(&lt->t) || at < lt->at)
		lazytimer_at(lt, at);
}

#endif
