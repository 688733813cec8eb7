#include "supervisor/intensity.h"

#include "proto/xmalloc.h"

#define FIRST_ALLOC	8	/* slots at first: a large max_restarts costs
				 * memory only as restarts come */

void
intensity_init(struct intensity *in, int max_restarts, int max_seconds)
{
	in->max_restarts = max_restarts;
	in->max_seconds = max_seconds;
	in->cap = max_restarts + 1;
	in->alloc = in->cap < FIRST_ALLOC ? in->cap : FIRST_ALLOC;
	in->times = xcalloc((size_t)in->alloc, sizeof *in->times);
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

/* Below cap the ring has not wrapped yet (head is count, or 0 when
 * count is alloc): its times are in order from 0, and a larger block
 * keeps them so. */
static void
grow(struct intensity *in)
{
	in->alloc = in->alloc > in->cap / 2 ? in->cap : in->alloc * 2;
	in->times = xrealloc(in->times, (size_t)in->alloc * sizeof *in->times);
	in->head = in->count;
}

/* The ring keeps the newest cap times; the window is exceeded when the
 * oldest of max_restarts+1 restarts is still within max_seconds: at most
 * max_seconds before now, the edge included, as OTP's supervisor counts
 * (Now =< Then + Period). */
bool
intensity_add(struct intensity *in, double now)
{
	if (in->count == in->alloc && in->alloc < in->cap)
		grow(in);
	in->times[in->head] = now;
	in->head = (in->head + 1) % in->alloc;
	if (in->count < in->cap)
		in->count++;
	if (in->count < in->cap)
		return false;
	double oldest = in->times[in->head];	/* head now points at the oldest */
	return now - oldest <= in->max_seconds;
}
