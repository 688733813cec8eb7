/* arbord: one arbord the benchmark runs, in a temp dir of its own (config,
 * socket, log), and the blocking control calls made to it. */
#ifndef ARBOR_BENCH_ARBORD_H
#define ARBOR_BENCH_ARBORD_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct arbord_conf {
	int		 size;		/* pool.size */
	const char	*adapter;	/* "bridge_mock" or "python_pool" */
	const char	*command;	/* worker.command list (python_pool) */
	const char	*log_level;	/* "warn" unless the log is watched */
	bool		 pipe_log;	/* stderr to a pipe we read, else a file */
	const char	*affinity;	/* pool.affinity; NULL: the default */
	long		 session_ttl_ms;	/* pool.session_ttl_ms; 0: default */
	const char	*sched_policy;	/* worker.sched_policy; NULL: B.policy,
					 * the default if that is NULL too */
	const char	*build;		/* arbord's directory; NULL: B.build */
	bool		 callgrind;	/* under valgrind's callgrind, with
					 * instrumentation off until turned on
					 * (arbord_callgrind) */
};

struct arbord;

/* Writes the config and starts arbord on it (pooling on, no overflow,
 * restart delay 0, no health pings, intensity high enough for any number
 * of kills). Owned by the caller: stop with arbord_stop. */
struct arbord *arbord_start(const struct arbord_conf *);
pid_t	arbord_pid(const struct arbord *);
const char *arbord_socket(const struct arbord *);	/* borrowed */
/* Heap allocations arbord has made so far (counted by alloc_count.so,
 * preloaded when the build has it), or UINT64_MAX when not counted. */
uint64_t arbord_allocs(const struct arbord *);
/* Polls `health` until all pool.size workers are ready: 0, or -1 after
 * timeout_s or if arbord exited (printing the tail of its log). */
int	arbord_wait_ready(struct arbord *, double timeout_s);
/* A blocking connection to the control socket; -1 on failure. */
int	arbord_connect(const struct arbord *);
/* One blocking round trip on fd: the reply (new reference) or NULL. */
json_t	*arbord_call(int fd, const char *request);
/* The next line of arbord's stderr (pipe_log only): 1 with the line in
 * out, 0 after timeout_ms without one, -1 at EOF. */
int	arbord_log_line(struct arbord *, char *out, size_t n, int timeout_ms);
/* Under callgrind: runs `callgrind_control OPT [ARG] PID` ("-i on", "-z",
 * "-d"); 0, or -1 if it failed. */
int	arbord_callgrind(struct arbord *, const char *opt, const char *arg);
/* Under callgrind: the instructions counted in the last dump ("-d"). */
uint64_t arbord_callgrind_dumped(const struct arbord *);
/* SIGTERM, waits for the graceful stop, frees. NULL is fine. */
void	arbord_stop(struct arbord *);

#endif
