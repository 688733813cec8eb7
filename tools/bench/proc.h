/* proc: the processes the benchmark starts, and what /proc says of them.
 *
 * Every process started here is tracked until it has been reaped. On exit,
 * on die() and on SIGINT/SIGTERM/SIGHUP the ones still tracked are stopped:
 * daemons with SIGTERM (and waited for, SIGKILL after a bound), workers with
 * SIGKILL. Children also get a parent-death signal, so even a SIGKILLed
 * benchmark takes them along. */
#ifndef ARBOR_BENCH_PROC_H
#define ARBOR_BENCH_PROC_H
#include <stdbool.h>
#include <sys/types.h>

/* Installs the exit and signal handlers; call once, first. */
void	proc_init(void);
/* Raises RLIMIT_NOFILE to the hard limit; returns the new soft limit. */
long	proc_raise_nofile(void);

/* Forks and execs argv[0] (searched in PATH unless it has a slash) with
 * fds in, out, err as 0, 1, 2 (-1: /dev/null) and a clean signal mask.
 * A daemon gets SIGTERM as its parent-death signal and at cleanup (so it
 * stops its own children), anything else SIGKILL. Returns the pid
 * (tracked), or dies. */
pid_t	proc_spawn(char *const argv[], int in, int out, int err, bool daemon);
/* Forks a copy of the benchmark (tracked, stopped with SIGKILL). The copy
 * has the default stop signals, dies with its parent, and must end with
 * _exit: exit handlers run only in the original process. */
pid_t	proc_fork(void);
/* Waits for pid up to timeout_ms: its wait status, or -1 on timeout. A
 * reaped pid is no longer tracked. */
int	proc_wait(pid_t pid, int timeout_ms);
/* SIGKILLs pid and reaps it. */
void	proc_kill_wait(pid_t pid);
/* SIGTERM, wait up to timeout_ms, then SIGKILL; returns the wait status. */
int	proc_term_wait(pid_t pid, int timeout_ms);
/* True once SIGINT, SIGTERM or SIGHUP arrived. */
bool	proc_interrupted(void);
/* Stops everything still tracked (what the exit path does). */
void	proc_cleanup(void);

/* utime + stime of pid in seconds (/proc/<pid>/stat); -1 on error. */
double	proc_cpu_s(pid_t pid);
/* VmRSS of pid in KiB (/proc/<pid>/status); -1 on error. */
long	proc_rss_kib(pid_t pid);
/* Our own user + system CPU seconds. */
double	proc_self_cpu_s(void);

/* Runs argv with stdout to out (size n) and returns 0 if it exited 0. */
int	proc_capture(char *const argv[], char *out, size_t n);

#endif
