#ifndef TESTS_UNIT_EVWAIT_H
#define TESTS_UNIT_EVWAIT_H

/* Running the default loop in unit tests until something happened, with
 * a bound, never a fixed sleep. The guard timers live at file scope in
 * evwait.c, so a failed assertion that leaves a wait early leaves no
 * watcher pointing into a dead stack frame. */

#include <stdbool.h>

/* Runs the loop until done(arg) or bound_s seconds passed; with tick_s
 * > 0, done is checked at least that often (for conditions no watcher
 * of the test wakes the loop for). Returns done(arg). */
bool	evwait_until(bool (*done)(void *), void *arg, double bound_s,
	    double tick_s);
/* Runs the loop for s seconds (for checks that something does not
 * happen: the loop must have had every chance). */
void	evwait_for(double s);
/* Runs the loop until it has no active watcher but an unref'd guard of
 * bound_s: true if it ran out of work, false if the guard had to stop it
 * (something kept a watcher running). */
bool	evwait_dry(double bound_s);

#endif
