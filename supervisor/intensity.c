#include "supervisor/intensity.h"

#include "proto/xmalloc.h"

void
intensity_init(struct intensity *in, int max_restarts, int max_seconds)
{
	in->max_restarts = max_restarts;
	in->max_seconds = max_seconds;
	in->cap = max_restarts + 1;
	in->times = xcalloc((size_t)in->cap, sizeof *in->times);
	in->head = in->count = 0;
}

void
intensity_release(struct intensity *in)
{
	free(in->times);
	in->times = NULL;
}

void
intensity_reset(struct intensity *in)
{
	in->head = in->count = 0;
}

/* The ring keeps the newest cap times; the window is exceeded when the
 * oldest of max_restarts+1 restarts is still within max_seconds: at most
 * max_seconds before now, the edge included, as OTP's supervisor counts
 * (Now =< Then + Period). */
bool
intensity_add(struct intensity *in, double now)
{
	in->times[in->head] = now;
	in->head = (in->head + 1) % in->cap;
	if (in->count < in->cap)
		in->count++;
	if (in->count < in->cap)
		return false;
	double oldest = in->times[in->head];	/* head now points at the oldest */
	return now - oldest <= in->max_seconds;
}
