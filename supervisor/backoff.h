/* backoff: the restart delay of one worker (SPEC 3 worker.restart_delay_ms).
 * A worker that dies before it got ready, or within BACKOFF_HEALTHY_S of
 * its ready, waits base ms before its restart, doubling per consecutive
 * such death up to max; one that ran at least that long from its ready
 * restarts at once and resets the sequence. */
#ifndef ARBOR_BACKOFF_H
#define ARBOR_BACKOFF_H

#define BACKOFF_HEALTHY_S	10.0

struct backoff {
	int	quick_deaths;	/* consecutive such quick deaths */
};

/* The delay in ms before restarting a worker that ran for uptime_s from
 * its ready (0 when it never got ready: child_last_run). */
int	backoff_next(struct backoff *, double uptime_s, int base_ms, int max_ms);

#endif
