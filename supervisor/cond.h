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
#include "supervisor/tree.h"

struct root;

struct root_events {
	void	(*gave_up)(struct root *, void *arg);	/* all is down: exit 1 */
	void	(*stopped)(struct root *, void *arg);	/* root_stop finished */
};

/* Borrows cfg (see root_reconfigure) and reg. self_dir is the directory of
 * the arbord executable (mock_worker is found there). */
struct root *root_new(const struct config *cfg, struct registry *reg,
	    const char *self_dir, const struct root_events *, void *arg);
void	root_free(struct root *);

void	root_start(struct root *);
void	root_stop(struct root *);	/* subtrees in reverse start order */
void	root_restart(struct root *);	/* restarts the subtree */
void	root_kill(struct root *);	/* SIGKILL every worker now */

/* The subtree ("pool" or "bridge"), or NULL in modes disabled and mock. */
struct sup *root_subtree(const struct root *);
const struct config *root_config(const struct root *);

/* The root's NODE with the whole tree. New reference. */
json_t	*root_json(const struct root *);

#endif
