/* bench: what the modules of the benchmark share: the run settings, the
 * clock, and the way out on a fatal error (which stops every process the
 * benchmark started, see proc.h). */
#ifndef ARBOR_BENCH_H
#define ARBOR_BENCH_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* The run settings, from the environment (see bench.c). */
struct bench_opts {
	bool	 quick;		/* BENCH_QUICK=1: one short run of each */
	int	 runs;		/* runs per figure; the table shows the median */
	double	 secs;		/* measured seconds per throughput run */
	double	 warmup;	/* unmeasured seconds before each */
	int	 kills;		/* restart samples */
	const char *only;	/* BENCH_ONLY: comma-separated section names */
	char	*build;		/* directory of arbord, mock_worker, arborctl */
	char	*root;		/* the source tree (workers/python, git) */
	char	*tmp;		/* our temp dir (mkdtemp) */
	char	*vs;		/* BENCH_VS: another build's directory, or NULL */
	const char *policy;	/* BENCH_POLICY: worker.sched_policy, or NULL */
	const char *vs_policy;	/* BENCH_VS_POLICY: the other arbord's */
	char	*vs_name;	/* the other arbord's name in the rows */
	bool	 relay;		/* BENCH_RELAY (default 1): section 1's relay rows */
	bool	 beam;		/* BENCH_BEAM (default 1): section 1's BEAM rows */
};

extern struct bench_opts B;

/* The ~106-byte JSON object every echo request carries as its args. */
extern const char BENCH_ARGS[];

static inline uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline double
now_s(void)
{
	return (double)now_ns() / 1e9;
}

/* A new directory of our temp dir, "<name>.<n>" (n counting per name's
 * caller: pass a static counter). Dies on failure. */
char	*tmp_dir(const char *name, int *serial);
/* A blocking connection to the Unix socket at path; -1 on failure. */
int	unix_connect(const char *path);

/* Progress lines go to stderr; the table alone goes to stdout. */
void	note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the message, stops everything we started, exits 1. */
void	die(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
