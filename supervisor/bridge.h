/* bridge: single mode (SPEC 6). One worker, bridge/worker, under the
 * bridge supervisor; requests are pipelined to it up to max_inflight and
 * matched by id; more wait in arrival order (bounded like a pool checkout). */
#ifndef ARBOR_BRIDGE_H
#define ARBOR_BRIDGE_H
#include <jansson.h>
#include <stdbool.h>

#include "registry/registry.h"
#include "supervisor/config.h"
#include "supervisor/job.h"
#include "supervisor/tree.h"

struct bridge;

/* st: the counters of the stats op, the root's (borrowed): they go on
 * across a reload that replaces the subtree. */
struct bridge *bridge_new(const struct config *, char *const *argv,
	    struct registry *, struct route_stats *st,
	    const struct sup_events *root_events, void *root);
void	bridge_free(struct bridge *);
struct sup *bridge_sup(const struct bridge *);
struct sessions *bridge_sessions(const struct bridge *);

void	bridge_submit(struct bridge *, struct job *);
bool	bridge_end_session(struct bridge *, const char *id);
void	bridge_reconfigure(struct bridge *, const struct config *,
	    char *const *argv);
struct job *bridge_take_waiting(struct bridge *);
void	bridge_fail_waiting(struct bridge *, enum msg_code, const char *why);
size_t	bridge_pending(const struct bridge *);
json_t	*bridge_stats(const struct bridge *);

#endif
