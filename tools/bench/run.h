/* run: measuring one configuration several times and turning the runs into
 * a table row of medians; the sections of the benchmark (bench.c) are
 * built from these. */
#ifndef ARBOR_BENCH_RUN_H
#define ARBOR_BENCH_RUN_H
#include <stdint.h>
#include <sys/types.h>

#include "tools/bench/arbord.h"
#include "tools/bench/load.h"
#include "tools/bench/wk.h"

#define MAX_RUNS	16

enum section {
	SEC_TPUT = 1, SEC_AFFINITY, SEC_INSTR, SEC_RESTART, SEC_SCALE, SEC_PYTHON
};

/* "1 throughput", ...: the first column of the table. */
const char *section_name(enum section);

/* The runs of one configuration. */
struct series {
	int	 n;
	double	 rps[MAX_RUNS], p50[MAX_RUNS], p99[MAX_RUNS], p999[MAX_RUNS];
	double	 cpu_us[MAX_RUNS];	/* arbord CPU per request; NaN if direct */
	double	 allocs[MAX_RUNS];	/* arbord heap allocations per request;
					 * NaN if direct or not counted */
	double	 client[MAX_RUNS];	/* load generator CPU / wall */
	uint64_t errors;
};

/* The medians of a series. */
struct figures {
	double	rps, p50, p99, p999, cpu_us, allocs, client;
};

/* One load run over ep[0..n) (direct workers when a is NULL, else
 * connections to arbord a, whose CPU and allocations are then read around
 * the window); the result is added to s. Dies if the run fails. */
void	run_load(const struct load_ep *ep, int n, enum load_proto proto,
	    const char *command, int depth, const struct arbord *a,
	    struct series *s);
/* The same through the relay broker (pid), in the worker protocol. */
void	run_load_via(const struct load_ep *ep, int n, const char *command,
	    int depth, pid_t broker, struct series *s);
/* The same with every request in one of `sessions` sessions (see
 * load_spec). */
void	run_load_sessions(const struct load_ep *ep, int n, const char *command,
	    int sessions, const struct arbord *a, struct series *s);
struct figures series_median(const struct series *);
/* Adds the row of s to the table; floor (may be NULL) is the direct
 * series it is compared with. */
void	series_row(enum section, const char *label, const struct series *s,
	    const struct series *floor);
/* The same with arbord's RSS (KiB) after the runs. */
void	series_row_rss(enum section, const char *label, const struct series *s,
	    const struct series *floor, double rss_kib);

/* n connections to a; each a load endpoint. Dies on failure. */
struct load_ep *clients_open(const struct arbord *a, int n);
void	clients_close(struct load_ep *, int n);
/* The endpoints of direct workers. Free with free(). */
struct load_ep *workers_eps(const struct wk *w, int n);

/* The argv of one mock_worker, and of one Python bridge worker. */
char	**mock_argv(void);
char	**python_argv(void);

#endif
