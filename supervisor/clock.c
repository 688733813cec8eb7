#include "supervisor/clock.h"

#include <time.h>

static ev_tstamp
monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ev_tstamp)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* seen: the ev_now() the last reading was made at; base: the wall time
 * at the first reading less the monotonic one, so the values start where
 * ev_now() was and then only move forward with the monotonic clock. */
ev_tstamp
clock_now(void)
{
	static ev_tstamp seen, base, now;
	static int read;
	ev_tstamp rt = ev_now(EV_DEFAULT_UC);
	if (!read || rt != seen) {
		ev_tstamp m = monotonic();
		if (!read)
			base = rt - m;
		now = base + m;
		seen = rt;
		read = 1;
	}
	return now;
}
