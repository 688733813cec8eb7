/* pool: the pool supervisor's routing (SPEC 6 "Routing in pool mode").
 * Each request checks out one idle worker exclusively and checks it in
 * after the reply. Requests that find none wait in arrival order until a
 * deadline (pool_timeout); overflow workers are started when all are busy
 * and stopped when idle; sessions stick to their worker (affinity). The
 * workers themselves live in a tree supervisor (tree.h) owned here. */
#ifndef ARBOR_POOL_H
#define ARBOR_POOL_H
#include <jansson.h>
#include <stdbool.h>

#include "registry/registry.h"
#include "supervisor/config.h"
#include "supervisor/job.h"
#include "supervisor/tree.h"

struct pool;

/* The pool's supervisor reports failure and stop to the root via these. */
/* st: the counters of the stats op, the root's (borrowed): they go on
 * across a reload that replaces the subtree. */
struct pool *pool_new(const struct config *, char *const *argv,
	    struct registry *, struct route_stats *st,
	    const struct sup_events *root_events, void *root);
void	pool_free(struct pool *);
struct sup *pool_sup(const struct pool *);
struct sessions *pool_sessions(const struct pool *);

/* Takes the job: it will be finished exactly once. */
void	pool_submit(struct pool *, struct job *);
/* Ends a session (its worker gets cleanup_session); false if unknown. */
bool	pool_end_session(struct pool *, const char *id);
/* Applies a reloaded config (same mode): timeouts, affinity, intensity,
 * and pool.size (grow now, shrink as surplus workers finish). */
void	pool_reconfigure(struct pool *, const struct config *, char *const *argv);
/* Under affinity none the pool keeps no session (SPEC 6: no binding):
 * each one it holds ends as by end_session (its worker gets
 * cleanup_session; not counted as stale), and requests that waited for
 * their session's busy worker (strict) wait for any. For a reload to
 * none, and for the sessions a reload hands on to a new pool. */
void	pool_fit_affinity(struct pool *);
/* A reload replaced the pool: it winds down under its own config and
 * never grows again. */
void	pool_replaced(struct pool *);
/* Takes the oldest waiting job out of the pool (NULL: none). */
struct job *pool_take_waiting(struct pool *);
/* Fails every waiting job with code (shutdown, mode change). */
void	pool_fail_waiting(struct pool *, enum msg_code, const char *why);
size_t	pool_pending(const struct pool *);	/* jobs accepted, not answered */

/* The stats op's object; the members the pool adds to its supervisor's
 * NODE, as JSON text, each after a comma. */
json_t	*pool_stats(const struct pool *);
/* Workers of the configured size (not overflow, not retiring after a
 * shrink) that are ready or busy. */
int	pool_ready(const struct pool *);
void	pool_put_fields(const struct pool *, struct buf *out);

#endif
