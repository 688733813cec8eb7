/* table: the one Markdown table the benchmark prints, and the formatting
 * of its cells. Rows are kept per section and printed in section order,
 * whatever order the sections ran in. */
#ifndef ARBOR_BENCH_TABLE_H
#define ARBOR_BENCH_TABLE_H

enum table_col {
	COL_CASE,	/* what was measured */
	COL_RPS,	/* requests per second */
	COL_P50, COL_P99, COL_P999,
	COL_FLOOR,	/* the same thing without arbord, same run */
	COL_RATIO,	/* arbord / floor */
	COL_CPU,	/* arbord CPU per request */
	COL_ALLOCS,	/* arbord heap allocations per request */
	COL_RSS,	/* arbord VmRSS */
	COL_CLIENT,	/* the load generator's own CPU */
	NCOL
};

struct trow {
	const char *cell[NCOL];	/* NULL prints "-"; copied by table_add */
};

/* Adds a row to section sec (its label, shown in the first column). */
void	table_add(int sec, const char *label, const struct trow *);
/* Prints the table, sections in ascending order. */
void	table_print(void);

/* Cell formatters: each returns a static buffer of a ring, good for the
 * next few calls; NaN gives "-". */
const char *fmt_us(double us);		/* "7.6 µs", "1.23 ms", "2.1 s" */
const char *fmt_rate(double rps);	/* "123,456" */
const char *fmt_ratio(double x);	/* "0.52×" */
const char *fmt_kib(double kib);	/* "3.2 MiB" */
const char *fmt_pct(double frac);	/* "45 %" */

#endif
