/* clock: the time arbord measures with, on the monotonic clock.
 *
 * libev's ev_now() is the wall clock: a step of the system time (NTP
 * correcting a clock that was off, settimeofday, a VM resumed) moves it,
 * and every duration or deadline taken from it with it. A step back of an
 * hour made uptimes negative, kept a request's deadline (and a checkout's,
 * a session's ttl, the restart intensity's window) an hour away, and one
 * forward made them all pass at once. libev's own timers run on the
 * monotonic clock and are not moved; clock_now() is what arbord sets
 * them against and counts durations with.
 *
 * It reads CLOCK_MONOTONIC once each time ev_now() changes (each loop
 * iteration, each ev_now_update), so that it stays the same within an
 * iteration as ev_now() does, and it starts at ev_now()'s value: until
 * the wall clock steps, the two agree. Seconds, as an ev_tstamp. */
#ifndef ARBOR_CLOCK_H
#define ARBOR_CLOCK_H
#include <ev.h>

ev_tstamp clock_now(void);

#endif
