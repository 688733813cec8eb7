/* child: one worker slot of the tree and the process that runs in it.
 *
 * The slot keeps its name, restart count and backoff across restarts; each
 * spawn makes a new process with pipes on 0/1/2, its own process group, a
 * parent-death signal and a clean signal mask. The child speaks the worker
 * protocol (SPEC 5): the init ping, requests with deadlines, health pings,
 * the stop escalation (shutdown frame, SIGTERM, SIGKILL). It never decides
 * about restarts: it reports to its owner through struct child_events and
 * the owner (a supervisor) applies restart type, intensity and backoff. */
#ifndef ARBOR_CHILD_H
#define ARBOR_CHILD_H
#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "proto/buf.h"
#include "proto/msg.h"
#include "supervisor/config.h"

enum child_state {
	CS_STARTING, CS_READY, CS_BUSY, CS_STOPPING, CS_BACKOFF, CS_STOPPED,
	CS_FAILED
};
enum child_health { CH_INITIALIZING, CH_HEALTHY, CH_UNHEALTHY };

struct child;

/* What the child tells its owner. Callbacks run from the event loop; the
 * owner must not free the child inside them. */
struct child_events {
	/* The init ping was answered: the child takes requests. */
	void	(*ready)(struct child *, void *owner);
	/* The last request in flight finished (the child is idle again). */
	void	(*idle)(struct child *, void *owner);
	/* The process is gone: reaped, pipes closed, requests failed. The
	 * state is still CS_STARTING/READY/STOPPING (CS_BACKOFF when the
	 * spawn made none, child_spawn): the owner sets the next one
	 * (child_spawn, child_backoff, child_set_down). */
	void	(*exited)(struct child *, void *owner);
};

/* A worker's reply (SPEC 5), borrowed for the callback's duration. */
struct child_reply {
	bool		 success;	/* "success": true */
	const char	*result;	/* the JSON text of "result" ("null" if none) */
	size_t		 result_len;
	const char	*error;		/* "error" when it is a string, else NULL */
};

/* A request's outcome: reply is the worker's response, or NULL with err
 * set (ERR_WORKER_CRASHED, ERR_TIMEOUT) and why. */
typedef void child_reply_fn(void *arg, const struct child_reply *reply,
    enum msg_code err, const char *why);

struct child_stats {
	unsigned long	requests_handled, errors, sessions_served, checkouts;
	/* clock_now() of the last reply to a user request (child_request),
	 * or of the spawn: pings and notices are not counted. */
	double		last_activity;
};

/* name is copied; cfg and argv are borrowed until child_reconfigure()
 * replaces them or the child is freed. */
struct child *child_new(const char *name, const struct config *cfg,
	    char *const *argv, const struct child_events *, void *owner);
void	child_free(struct child *);	/* kills a live process; NULL ok */
void	child_reconfigure(struct child *, const struct config *,
	    char *const *argv);

/* Starts a process (state starting). -1 if none came of it (pipe2 or
 * vfork failed; an exec failure is an exit of the process): the child is
 * in backoff, and exited follows from the loop (up to 100 ms later:
 * failed spawns are reported that far apart), as for a process that
 * exited abnormally having never run (child_spawn_failed, a
 * child_last_run of 0). child_set_down before it drops it. */
int	child_spawn(struct child *);
/* Graceful stop of a live process (state stopping); exited follows.
 * reason (borrowed, NULL: none) names why for a request still in flight
 * at the exit: "worker stopped (reason) before it answered". */
void	child_stop(struct child *, const char *reason);
/* child_stop for arbord's shutdown: a request still in flight when the
 * process exits fails with ERR_SHUTTING_DOWN, not ERR_WORKER_CRASHED (the
 * worker did not crash, arbord stopped it). One already stopping or
 * killed keeps the reason it has. */
void	child_shutdown(struct child *);
/* SIGKILL to the whole process group now; exited follows. why (NULL:
 * none) is logged, and a request still in flight at the exit is told
 * "worker killed (why) before it answered". */
void	child_kill(struct child *, const char *why);
/* child_kill, and every request in flight fails with code now rather
 * than at the exit (arbord is going down and waits for none). */
void	child_abandon(struct child *, enum msg_code, const char *why);
/* No process: wait ms, then spawn (state backoff). */
void	child_backoff(struct child *, int ms);
/* No process and none wanted: state stopped or failed (a restart due,
 * child_mark_restart, is not made). */
void	child_set_down(struct child *, enum child_state);

/* The largest payload child_request could frame (the id counted at its
 * longest), to set against worker.max_frame_bytes: command_size and
 * session_size are their sizes as JSON strings, quotes included
 * (jraw_str_size; 0: no session). */
size_t	child_request_size(size_t command_size, size_t args_len,
	    size_t session_size);

/* Sends a request; fn is called exactly once. timeout_ms <= 0: none.
 * args is JSON text (args_len bytes; NULL: {}), copied into the frame as
 * it is; session may be NULL. 0, or -1 when the child cannot take
 * requests (fn is not called). */
int	child_request(struct child *, const char *command, const char *args,
	    size_t args_len, const char *session, int timeout_ms,
	    child_reply_fn *, void *arg);

const char	*child_name(const struct child *);
enum child_state child_state(const struct child *);
bool	child_alive(const struct child *);	/* a process exists */
/* The last spawn made no process (child_spawn returned -1). */
bool	child_spawn_failed(const struct child *);
/* Ready and taking requests: not stopping, failing or gone. */
bool	child_accepts(const struct child *);
/* The process ended, or is ending, on its own though its exit is not
 * reaped yet: killed by arbord (a missed deadline, a protocol failure),
 * a protocol pipe closed on it, or exited. Its exit is a crash, or for a
 * request's missed deadline a planned replacement (child_exit_planned),
 * whatever is asked of it meanwhile. */
bool	child_crashing(const struct child *);
pid_t	child_pid(const struct child *);	/* 0 when none */
int	child_exit_status(const struct child *); /* wait status of the last exit */
bool	child_exit_abnormal(const struct child *);
/* The last exit was arbord's kill for a user request's passed deadline
 * (SPEC: the worker is killed and replaced): a planned replacement, as a
 * recycle is, not a crash. Not one the worker made on its own before. */
bool	child_exit_planned(const struct child *);
double	child_uptime(const struct child *);	/* seconds since spawn, 0 if none */
/* Seconds the last process ran from its ready (its init ping answered) to
 * its exit; 0 when it never got ready, or the last spawn made none. */
double	child_last_run(const struct child *);
void	*child_owner(const struct child *);	/* the owner given to child_new */
unsigned child_inflight(const struct child *);	/* user requests in flight */
/* The restarts made: processes started in the slot after its first,
 * counted at their spawn. */
unsigned child_restarts(const struct child *);
/* The next spawn that makes a process is a restart (counted then, once);
 * child_set_down cancels it. */
void	child_mark_restart(struct child *);
struct child_stats *child_stats(struct child *);
/* True once the process has answered worker.max_requests requests (when
 * set) or sent more than worker.max_errors error replies; logs which. The
 * router then recycles it once nothing is in flight on it. */
bool	child_recycle_due(const struct child *);
/* Where the router keeps this child's bound-session count (for NODE). */
void	child_set_sessions(struct child *, const size_t *count);
void	*child_owner_data(const struct child *);	/* the supervisor's */
void	child_set_owner_data(struct child *, void *);
void	*child_udata(const struct child *);		/* the router's */
void	child_set_udata(struct child *, void *);
/* Sends a request whose answer nobody waits for (cleanup_session); it
 * does not make the child busy. It is due worker.request_timeout_ms after
 * the latest deadline of the requests ahead of it (the worker answers in
 * order); missing that kills the child. command must outlive the request
 * (a string constant: it names the notice in the log). 0, or -1 if the
 * child has no process. */
int	child_notify(struct child *, const char *command, json_t *args);

/* Appends the NODE of SPEC 6 for this child, as JSON text. */
void	child_put_node(const struct child *, struct buf *out);

const char *child_state_name(enum child_state);
const char *child_health_name(enum child_health);

#endif
