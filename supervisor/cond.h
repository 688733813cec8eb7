/* cond: the root, a conditional supervisor. From the resolved config it
 * decides the mode (disabled / single / pool) and the adapter, runs the
 * matching subtree ("pool" or "bridge"), restarts that subtree when it
 * fails (counted in the root's own intensity window) and gives up when the
 * window overflows: then everything is down and the daemon exits 1. */
#ifndef ARBOR_COND_H
#define ARBOR_COND_H
#include <jansson.h>

#include "registry/registry.h"
#include "supervisor/config.h"
#include "supervisor/job.h"
#include "supervisor/tree.h"

struct root;

struct root_events {
	void	(*gave_up)(struct root *, void *arg);	/* all is down: exit 1 */
	void	(*stopped)(struct root *, void *arg);	/* root_stop finished */
};

/* Borrows cfg (see root_reconfigure) and reg. mock_dir is the directory
 * mock_worker is run from (arbord's own, or its installed lib/arbor). */
struct root *root_new(const struct config *cfg, struct registry *reg,
	    const char *mock_dir, const struct root_events *, void *arg);
void	root_free(struct root *);

void	root_start(struct root *);
void	root_stop(struct root *);	/* subtrees in reverse start order */
void	root_restart(struct root *);	/* restarts the subtree */
/* Applies a validated reloaded config (the caller frees the old one after
 * this returns): timeouts and sizes in place; a new mode, adapter or
 * command gets a new subtree while the old one finishes what it holds
 * (as do the old ones of earlier reloads, however many). */
void	root_reload(struct root *, const struct config *);

/* The subtree ("pool" or "bridge"), or NULL in modes disabled and mock. */
struct sup *root_subtree(const struct root *);
const struct config *root_config(const struct root *);

/* Routes an execute job by mode and adapter; it is finished exactly once. */
void	root_submit(struct root *, struct job *);
/* Counts an execute refused before routing (bad params, shutting_down,
 * a request too large for a worker) as answered and failed, as the
 * routing layer counts those it fails. */
void	root_count_refused(struct root *);
/* Ends a session (its worker is told); false if there was none. */
bool	root_end_session(struct root *, const char *id);
size_t	root_pending(const struct root *);	/* jobs accepted, not answered */
/* Fails the jobs still waiting for a worker (shutdown). */
void	root_fail_waiting(struct root *, enum msg_code, const char *why);
/* The root gave up, or a second signal cuts the shutdown short: fails
 * every job still pending with code, those in flight too (their workers
 * are killed), so that each gets its reply before the control
 * connections close. */
void	root_abandon(struct root *, enum msg_code, const char *why);

/* Append, as JSON text, the root's NODE with the whole tree, or a
 * subtree's NODE (with the pool's members). */
void	root_put_node(const struct root *, struct buf *out);
void	root_put_sup(const struct root *, const struct sup *, struct buf *out);
/* The health op's counts (SPEC 6): workers ready or busy, of the size
 * configured (overflow workers are neither); 0 of 0 without a subtree. */
void	root_health(const struct root *, int *ready, int *expected);
/* The stats op's object (SPEC 6). New reference. */
json_t	*root_stats(const struct root *);

#endif
