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

struct child_reply;

struct job;
struct sessions;
/* The reply: one JSON object of len bytes, borrowed for the call. */
typedef void job_done_fn(struct job *, const char *reply, size_t len);

struct job {
	char		*id;		/* the client's request id, JSON text */
	size_t		 id_len;
	char		*command;
	char		*args;		/* JSON text, handed to the worker as is */
	size_t		 args_len;
	char		*session;	/* NULL: no session */
	int		 timeout_ms;	/* once a worker has it */
	uint64_t	 seq;		/* arrival order */
	ev_tstamp	 deadline;	/* of the wait for a worker: set when
					 * it first waits (0 before), kept
					 * when it moves on to wait again */
	bool		 session_reset;	/* its session's worker was lost */
	bool		 session_begun;	/* its session counts it as at a
					 * worker (pool: sess_begin) */
	bool		 session_held;	/* its session counts it as waiting
					 * for a worker (sess_hold) */
	uint64_t	 session_gen;	/* the session that counts it */
	void		*target;	/* strict affinity: the worker it waits for */
	TAILQ_ENTRY(job) q;		/* the queue it waits in */
	TAILQ_ENTRY(job) all;		/* every waiting job, by arrival */
	job_done_fn	*done;
	void		*arg;		/* the done callback's (a connection) */
};
TAILQ_HEAD(job_queue, job);

/* Inserts j into head, a job_queue linked by field, behind the jobs that
 * arrived before it: a job that comes back to wait (moved by a reload,
 * sent back by a worker it could not have) keeps its place by arrival.
 * Jobs mostly come in order, so the walk from the tail is short. */
#define JOB_INSERT_BY_SEQ(head, j, field) do {				\
	struct job *at_ = TAILQ_LAST((head), job_queue);		\
	while (at_ && at_->seq > (j)->seq)				\
		at_ = TAILQ_PREV(at_, job_queue, field);		\
	if (at_)							\
		TAILQ_INSERT_AFTER((head), at_, (j), field);		\
	else								\
		TAILQ_INSERT_HEAD((head), (j), field);			\
} while (0)

/* Counters of the stats op (SPEC 6), kept by the routing layer. */
struct route_stats {
	unsigned long	total, ok, failed, pool_timeouts, worker_errors;
	unsigned long	total_sessions, stale_sessions;
	unsigned long	restarts;	/* of workers and subtrees no longer
					 * in the tree */
};

/* The gauges of the stats op, next to the route_stats counters. */
struct route_gauges {
	const char	*mode;
	long		 size, max_overflow, ready, busy, overflow, waiting;
	long		 sessions, restarts;
};

/* The stats op's object (SPEC 6). New reference. */
json_t	*route_stats_json(const struct route_stats *, const struct route_gauges *);

/* What a new job is made of: spans of the request, all copied. id and
 * args are JSON text (NULL: null and {}); session may be NULL. */
struct job_req {
	const char	*id, *command, *args, *session;
	size_t		 id_len, command_len, args_len, session_len;
	int		 timeout_ms;
};

struct job *job_new(const struct job_req *, job_done_fn *, void *arg);
/* The same with args a jansson value (borrowed; NULL: {}); id as in
 * job_req, the client's text, which jansson would not keep as written. */
struct job *job_new_json(const char *id, size_t id_len, const char *command,
	    json_t *args,
	    const char *session, int timeout_ms, job_done_fn *, void *arg);
/* Replies with the worker's result (JSON text, NULL: null), frees the job. */
void	job_ok(struct job *, const char *result, size_t len, const char *worker);
/* Replies with an error and frees the job. */
void	job_fail(struct job *, enum msg_code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* Finishes a job from a worker's reply or a child error, counting it. */
void	job_from_reply(struct job *, const struct child_reply *reply,
	    enum msg_code err, const char *why, const char *worker,
	    struct route_stats *);
/* The job waits no more: its session in sessions (which held it, if it
 * did) may run its idle clock again. */
void	job_unhold(struct job *, struct sessions *);
/* The reset notice of a session goes with the first reply in it (SPEC
 * 6), which need not be that of the request that took it from the
 * table (sess_set_teller): a worker may answer pipelined requests in any
 * order, and under prefer a later request may run at another worker.
 * job, being replied to, takes it from the request that holds it, if
 * that one is still in flight. Returns whether job tells a reset. */
bool	job_take_reset(struct job *, struct sessions *);
/* The notice job's reply carries, that reply being the next in its
 * session: job_take_reset's (*resets counts the notices requests in
 * flight took and have not told; the one moved to job leaves the count),
 * or one due that no request has taken (sess_take_due). */
void	job_tell_reset(struct job *, struct sessions *, size_t *resets);

#endif
