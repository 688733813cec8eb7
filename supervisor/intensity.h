/* intensity: OTP restart intensity, a sliding window of restart times.
 * More than max_restarts restarts within max_seconds means give up. */
#ifndef ARBOR_INTENSITY_H
#define ARBOR_INTENSITY_H
#include <stdbool.h>

struct intensity {
	double	*times;		/* ring of the last max_restarts+1 restart times */
	int	 cap;		/* max_restarts+1: the ring's full size */
	int	 alloc;		/* slots allocated: grown to cap on demand */
	int	 head, count;
	int	 max_restarts;
	double	 max_seconds;
};

void	intensity_init(struct intensity *, int max_restarts, int max_seconds);
void	intensity_release(struct intensity *);
/* Records a restart at time now (seconds, monotonic). Returns true when
 * that makes more than max_restarts within max_seconds: the caller gives up. */
bool	intensity_add(struct intensity *, double now);
void	intensity_reset(struct intensity *);

#endif
