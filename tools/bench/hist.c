#include "tools/bench/hist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Bucket of v: exact below HIST_SUB, else the top 7 significant bits. */
static size_t
bucket_of(uint64_t v)
{
	if (v < HIST_SUB)
		return (size_t)v;
	int msb = 63 - __builtin_clzll(v);
	if (msb > HIST_MAXBIT) {
		msb = HIST_MAXBIT;
		v = (2ull << HIST_MAXBIT) - 1;
	}
	int shift = msb - 6;
	return (size_t)(shift + 1) * HIST_SUB + (size_t)((v >> shift) - HIST_SUB);
}

/* The middle of bucket i. */
static uint64_t
value_of(size_t i)
{
	if (i < HIST_SUB)
		return i;
	int shift = (int)(i / HIST_SUB) - 1;
	uint64_t lo = (uint64_t)(HIST_SUB + i % HIST_SUB) << shift;
	return lo + ((1ull << shift) >> 1);
}

void
hist_reset(struct hist *h)
{
	memset(h, 0, sizeof *h);
}

void
hist_add(struct hist *h, uint64_t ns)
{
	h->b[bucket_of(ns)]++;
	h->count++;
}

uint64_t
hist_quantile(const struct hist *h, double q)
{
	if (h->count == 0)
		return 0;
	uint64_t rank = (uint64_t)ceil(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank)
			return value_of(i);
	}
	return value_of(HIST_BUCKETS - 1);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double
sample_quantile(double *v, size_t n, double q)
{
	if (n == 0)
		return NAN;
	qsort(v, n, sizeof *v, cmp_double);
	size_t rank = (size_t)ceil(q * (double)n);
	return v[rank < 1 ? 0 : rank - 1];
}

double
median(double *v, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!isnan(v[i]))
			v[k++] = v[i];
	if (k == 0)
		return NAN;
	qsort(v, k, sizeof *v, cmp_double);
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}
