/* tree: a supervisor of worker children (one_for_one), as in OTP.
 *
 * It keeps its children in start order, knows what each should be (want
 * up or down, runit style) and reconciles that with what it is: a child
 * that exits is restarted per its restart type, after its backoff delay,
 * counted in the supervisor's sliding intensity window. When the window
 * overflows the supervisor stops all its children and fails upward. */
#ifndef ARBOR_TREE_H
#define ARBOR_TREE_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "registry/registry.h"
#include "supervisor/child.h"
#include "supervisor/config.h"

enum sup_state { SS_RUNNING, SS_RESTARTING, SS_STOPPED, SS_FAILED, SS_STOPPING };

struct sup;

/* What a supervisor tells its owner (the root, and the routing layer on
 * top of it). Callbacks run from the loop; none may free the sup. */
struct sup_events {
	void	(*failed)(struct sup *, void *owner);	/* intensity exceeded; all down */
	void	(*stopped)(struct sup *, void *owner);	/* sup_stop finished */
	void	(*worker_ready)(struct sup *, struct child *, void *owner);
	void	(*worker_idle)(struct sup *, struct child *, void *owner);
	void	(*worker_down)(struct sup *, struct child *, void *owner);
	/* sup_stop_child: c is to stay down until started (optional) */
	void	(*worker_stopped)(struct sup *, struct child *, void *owner);
	/* sup_start, before it starts the children wanted up, all down
	 * (optional): the owner may remove children (sup_remove_worker) or
	 * hold them (sup_hold_child), so that a restarted supervisor starts
	 * as a fresh one would. */
	void	(*starting)(struct sup *, void *owner);
};

/* cfg and argv are borrowed (see sup_reconfigure). The supervisor
 * registers itself and its children in reg under their full names. */
struct sup *sup_new(const char *name, int max_restarts, int max_seconds,
	    const struct config *cfg, char *const *argv, struct registry *reg,
	    const struct sup_events *, void *owner);
void	sup_free(struct sup *);		/* kills what still runs; NULL ok */
void	sup_reconfigure(struct sup *, const struct config *, char *const *argv);
/* New intensity bounds: the restart history starts over (unchanged
 * bounds: kept). */
void	sup_set_intensity(struct sup *, int max_restarts, int max_seconds);
/* Takes the supervisor and its children out of the registry, so that a
 * replacement may take their names while this one winds down. */
void	sup_unregister(struct sup *);
/* No child is restarted or started any more (a replaced subtree). */
void	sup_retire(struct sup *);

/* Adds a worker child named "<sup name>/<leaf>". It starts with the
 * supervisor (or now, if that runs) when want_up; else on sup_start_child. */
struct child *sup_add_worker(struct sup *, const char *leaf, bool want_up);
/* Removes a child with no process (e.g. an idle overflow worker). */
void	sup_remove_worker(struct sup *, struct child *);

void	sup_start(struct sup *);	/* starts all children wanted up */
/* Stops all in parallel (child_shutdown: what they hold fails with
 * shutting_down); then stopped. */
void	sup_stop(struct sup *);
void	sup_restart(struct sup *);	/* stop all, start all; restarts + 1 */
/* SIGKILL every child now and fail the requests they hold with code at
 * once, without waiting for the exits (arbord is going down). */
void	sup_abandon(struct sup *, enum msg_code, const char *why);

/* Operator requests on one child (SPEC 6 stop/start/restart); start and
 * restart do nothing to a child that is leaving. start brings up only a
 * child wanted down (stopped on request, or never started): one wanted up
 * stays on its restart path (backoff, intensity). restart counts in the
 * child's restarts whether it ran or was stopped. reason: the stop's, for
 * a request still in flight (child_stop). */
void	sup_stop_child(struct sup *, struct child *, const char *reason);
void	sup_start_child(struct sup *, struct child *);
/* After a reload: starts the children their old restart type left down
 * that the new one would have restarted (never one stopped on request). */
void	sup_revive_restartable(struct sup *);
void	sup_restart_child(struct sup *, struct child *, const char *reason);
/* c is leaving the supervisor (its owner removes it once its process is
 * gone): it is wanted down, and nothing starts it again. */
void	sup_child_leave(struct sup *, struct child *);
bool	sup_child_leaving(const struct child *);
/* c, which has no process, is wanted down without being stopped on request
 * (a lazy worker, to start on demand); false if it already was. */
bool	sup_hold_child(struct sup *, struct child *);

const char	*sup_name(const struct sup *);
enum sup_state	 sup_state(const struct sup *);
unsigned	 sup_restarts(const struct sup *);
void		 sup_count_restart(struct sup *);
size_t		 sup_nchildren(const struct sup *);
struct child	*sup_child(const struct sup *, size_t i);
void		*sup_owner(const struct sup *);

/* The NODE of SPEC 6 with its children. New reference. */
/* Appends the members of the supervisor's NODE (SPEC 6), its children's
 * NODEs included, as JSON text without the braces: an owner adds its own. */
void	sup_put_fields(const struct sup *, struct buf *out);
/* The members of any supervisor NODE before its children's NODEs (up to
 * and with the children array's '['), and after them (from its ']'). */
void	sup_put_head(struct buf *out, const char *name, enum sup_state,
	    unsigned restarts, int64_t uptime_ms);
void	sup_put_tail(struct buf *out, int max_restarts, int max_seconds);
const char *sup_state_name(enum sup_state);

#endif
