#include "tools/bench/table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/xmalloc.h"

struct row {
	int	 sec;
	char	*label;
	char	*cell[NCOL];
};

static struct row *rows;
static size_t nrows, caprows;

static const char *const head[NCOL + 1] = {
	"section", "case", "req/s", "p50", "p99", "p99.9", "floor",
	"vs floor", "arbord CPU/req", "arbord allocs/req", "arbord RSS", "client CPU",
};

void
table_add(int sec, const char *label, const struct trow *t)
{
	if (nrows == caprows) {
		caprows = caprows ? caprows * 2 : 64;
		rows = xrealloc(rows, caprows * sizeof *rows);
	}
	struct row *r = &rows[nrows++];
	r->sec = sec;
	r->label = xstrdup(label);
	for (int i = 0; i < NCOL; i++)
		r->cell[i] = xstrdup(t->cell[i] ? t->cell[i] : "-");
}

/* Row indices by section, then in insertion order (a stable sort). */
static size_t *
row_order(void)
{
	size_t *idx = xcalloc(nrows ? nrows : 1, sizeof *idx);
	for (size_t i = 0; i < nrows; i++) {
		size_t j = i;
		for (; j > 0 && rows[idx[j - 1]].sec > rows[i].sec; j--)
			idx[j] = idx[j - 1];
		idx[j] = i;
	}
	return idx;
}

void
table_print(void)
{
	size_t *idx = row_order();
	for (int i = 0; i <= NCOL; i++)
		printf("| %s ", head[i]);
	printf("|\n");
	for (int i = 0; i <= NCOL; i++)
		printf(i < 2 ? "|---" : "|--:");
	printf("|\n");
	for (size_t i = 0; i < nrows; i++) {
		const struct row *r = &rows[idx[i]];
		printf("| %s ", r->label);
		for (int c = 0; c < NCOL; c++)
			printf("| %s ", r->cell[c]);
		printf("|\n");
	}
	free(idx);
}

static char *
ring(void)
{
	static char bufs[16][48];
	static int k;
	return bufs[k++ % 16];
}

const char *
fmt_us(double us)
{
	char *b = ring();
	if (isnan(us))
		return "-";
	if (us < 10)
		snprintf(b, 48, "%.1f µs", us);
	else if (us < 1000)
		snprintf(b, 48, "%.0f µs", us);
	else if (us < 100000)
		snprintf(b, 48, "%.2f ms", us / 1e3);
	else if (us < 1e6)
		snprintf(b, 48, "%.0f ms", us / 1e3);
	else
		snprintf(b, 48, "%.2f s", us / 1e6);
	return b;
}

const char *
fmt_rate(double rps)
{
	char *b = ring(), tmp[32];
	if (isnan(rps))
		return "-";
	int n = snprintf(tmp, sizeof tmp, "%.0f", rps), o = 0;
	for (int i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			b[o++] = ',';
		b[o++] = tmp[i];
	}
	b[o] = '\0';
	return b;
}

const char *
fmt_ratio(double x)
{
	char *b = ring();
	if (isnan(x) || isinf(x))
		return "-";
	snprintf(b, 48, x < 10 ? "%.2f×" : "%.1f×", x);
	return b;
}

const char *
fmt_kib(double kib)
{
	char *b = ring();
	if (isnan(kib) || kib < 0)
		return "-";
	snprintf(b, 48, "%.1f MiB", kib / 1024);
	return b;
}

const char *
fmt_pct(double frac)
{
	char *b = ring();
	if (isnan(frac))
		return "-";
	snprintf(b, 48, "%.0f %%", frac * 100);
	return b;
}
