/* strays: processes a worker forked and left running outside its process
 * group (they called setsid or setpgid, as Python's start_new_session
 * does), which the group kill at the worker's exit misses. arbord is a
 * subreaper (PR_SET_CHILD_SUBREAPER), so when the worker exits they
 * become arbord's children; at every reap arbord SIGKILLs each child of
 * its own that is not a worker it spawned, and logs it. What such a
 * process forked is handed on the same way when it dies. */
#ifndef ARBOR_STRAYS_H
#define ARBOR_STRAYS_H
#include <sys/types.h>

/* arbord's start, before the first spawn: makes it a subreaper and
 * watches every reap. Until then (and in tests that run parts of arbord
 * in their own process) nothing is tracked or killed. */
void	strays_enable(void);
/* A worker was spawned: pid is not a stray. Its reap forgets it. */
void	strays_track(pid_t);
/* arbord's end, its loop done and its workers reaped: kills the strays
 * their exits left, which no later reap would find, and reaps them (for
 * 2 s at most), so that arbord leaves no zombie behind. */
void	strays_finish(void);

#endif
