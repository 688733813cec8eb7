/* keeper: a process that outlives a SIGKILLed arbord just long enough to
 * kill its workers' process groups. A worker's parent-death signal
 * reaches the worker alone: what it forked, in its group, would run on.
 * arbord forks the keeper at its start (its own session, the stop
 * signals ignored) and tells it over a pipe each worker's group as the
 * worker is spawned and as the group is killed at its reap. When the
 * pipe closes, however arbord ended, the keeper SIGKILLs the groups still
 * listed (at a clean end, none) and exits. A keeper that dies is replaced
 * a second later, forked with the groups of that moment. */
#ifndef ARBOR_KEEPER_H
#define ARBOR_KEEPER_H
#include <sys/types.h>

/* arbord's start, its loop made and strays enabled, before the first
 * spawn. Until then (and in tests that run parts of arbord in their own
 * process) keeper_add and keeper_del do nothing. argv is main's (or
 * NULL): the keeper writes its name over its own copy of the strings, so
 * that ps and pidof tell it from arbord. */
void	keeper_start(char **argv);
/* A worker's process group (its pid): spawned; killed whole at its reap. */
void	keeper_add(pid_t pgid);
void	keeper_del(pid_t pgid);
/* arbord's end, its workers reaped: the keeper is let go and reaped. */
void	keeper_finish(void);

#endif
