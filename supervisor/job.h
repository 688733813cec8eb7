/* job: one execute request on its way through the tree, from the control
 * connection to a worker and back. Whoever finishes a job calls job_ok or
 * job_fail exactly once; that replies and frees it. */
#ifndef ARBOR_JOB_H
#define ARBOR_JOB_H
#include <ev.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "proto/msg.h"

struct job;
typedef void job_done_fn(struct job *, json_t *reply);	/* reply: stolen */

struct job {
	json_t		*id;		/* the client's request id (owned) */
	char		*command;
	json_t		*args;		/* owned; handed to the worker */
	char		*session;	/* NULL: no session */
	int		 timeout_ms;	/* once a worker has it */
	uint64_t	 seq;		/* arrival order */
	ev_tstamp	 deadline;	/* of the wait for a worker */
	bool		 session_reset;	/* its session's worker was lost */
	void		*target;	/* strict affinity: the worker it waits for */
	TAILQ_ENTRY(job) q;		/* the queue it waits in */
	TAILQ_ENTRY(job) all;		/* every waiting job, by arrival */
	job_done_fn	*done;
	void		*arg;		/* the done callback's (a connection) */
};
TAILQ_HEAD(job_queue, job);

/* Counters of the stats op (SPEC 6), kept by the routing layer. */
struct route_stats {
	unsigned long	total, ok, failed, pool_timeouts, worker_errors;
	unsigned long	total_sessions, stale_sessions, restarts;
};

/* The gauges of the stats op, next to the route_stats counters. */
struct route_gauges {
	const char	*mode;
	long		 size, max_overflow, ready, busy, overflow, waiting;
	long		 sessions, restarts;
};

/* The stats op's object (SPEC 6). New reference. */
json_t	*route_stats_json(const struct route_stats *, const struct route_gauges *);

/* Takes ownership of id/args references (steals both). */
struct job *job_new(json_t *id, const char *command, json_t *args,
	    const char *session, int timeout_ms, job_done_fn *, void *arg);
/* Replies with the worker's result (borrowed) and frees the job. */
void	job_ok(struct job *, json_t *result, const char *worker);
/* Replies with an error and frees the job. */
void	job_fail(struct job *, enum msg_code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* Finishes a job from a worker's reply or a child error, counting it. */
void	job_from_reply(struct job *, json_t *reply, enum msg_code err,
	    const char *why, const char *worker, struct route_stats *);

#endif
