/* hist: latency figures. A log-linear histogram (values within 1.6 %) for
 * the millions of samples of a throughput run, exact percentiles for the
 * few hundred of a restart run, and the median of a handful of runs. */
#ifndef ARBOR_BENCH_HIST_H
#define ARBOR_BENCH_HIST_H
#include <stddef.h>
#include <stdint.h>

#define HIST_SUB	64			/* buckets per power of two */
#define HIST_MAXBIT	40			/* values up to 2^41 ns (~36 min) */
#define HIST_BUCKETS	(HIST_SUB * (HIST_MAXBIT - 4))

struct hist {
	uint64_t	count;
	uint64_t	b[HIST_BUCKETS];
};

void	 hist_reset(struct hist *);
void	 hist_add(struct hist *, uint64_t ns);
/* The value at quantile q (0..1, nearest rank); 0 when empty. */
uint64_t hist_quantile(const struct hist *, double q);

/* Exact quantile of v[0..n) (nearest rank); sorts v. NaN when n == 0. */
double	 sample_quantile(double *v, size_t n, double q);
/* The median of v[0..n), ignoring NaNs; sorts v. NaN when none. */
double	 median(double *v, size_t n);

#endif
