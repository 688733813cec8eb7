#include "tools/bench/run.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proto/xmalloc.h"
#include "tools/bench/bench.h"
#include "tools/bench/hist.h"
#include "tools/bench/proc.h"
#include "tools/bench/table.h"

const char *
section_name(enum section sec)
{
	switch (sec) {
	case SEC_TPUT:		return "1 throughput";
	case SEC_AFFINITY:	return "1b affinity";
	case SEC_INSTR:		return "1c instructions";
	case SEC_RESTART:	return "2 restart";
	case SEC_SCALE:		return "3 scale";
	case SEC_PYTHON:	return "4 python";
	}
	return "?";
}

/* The broker's (arbord's or the relay's) CPU time, and arbord's
 * allocation count, as the measured window opens and closes. */
struct mark {
	pid_t	pid;		/* 0: direct, nothing to measure */
	const struct arbord *a;	/* NULL: allocations not counted */
	double	cpu[2];
	uint64_t allocs[2];
};

static void
mark(void *arg, int phase)
{
	struct mark *m = arg;
	m->cpu[phase] = proc_cpu_s(m->pid);
	m->allocs[phase] = m->a ? arbord_allocs(m->a) : UINT64_MAX;
}

/* Per request, from the two marks; NaN when not measured. */
static double
cpu_per_req(const struct mark *m, uint64_t reqs)
{
	if (m->pid == 0 || reqs == 0 || m->cpu[0] < 0 || m->cpu[1] < 0)
		return NAN;
	return (m->cpu[1] - m->cpu[0]) / (double)reqs * 1e6;
}

static double
allocs_per_req(const struct mark *m, uint64_t reqs)
{
	if (m->a == NULL || reqs == 0 || m->allocs[0] == UINT64_MAX)
		return NAN;
	return (double)(m->allocs[1] - m->allocs[0]) / (double)reqs;
}

static void
run_spec(const struct load_ep *ep, int n, enum load_proto proto,
    const char *command, int depth, int sessions, struct mark m,
    struct series *s)
{
	struct load_spec spec = {
		.proto = proto, .command = command, .args = BENCH_ARGS,
		.depth = depth, .warmup = B.warmup, .secs = B.secs,
		.mark = m.pid != 0 ? mark : NULL, .mark_arg = &m,
		.sessions = sessions,
	};
	struct load_result r;
	if (load_run(ep, n, &spec, &r) < 0)
		die("load run failed (%d endpoints, depth %d)", n, depth);
	if (s->n >= MAX_RUNS)
		return;
	int i = s->n++;
	s->rps[i] = r.rps;
	s->p50[i] = r.p50;
	s->p99[i] = r.p99;
	s->p999[i] = r.p999;
	s->client[i] = r.client_cpu;
	s->cpu_us[i] = cpu_per_req(&m, r.n);
	s->allocs[i] = allocs_per_req(&m, r.n);
	s->errors += r.errors;
}

void
run_load(const struct load_ep *ep, int n, enum load_proto proto,
    const char *command, int depth, const struct arbord *a,
    struct series *s)
{
	struct mark m = { .pid = a ? arbord_pid(a) : 0, .a = a };
	run_spec(ep, n, proto, command, depth, 0, m, s);
}

void
run_load_via(const struct load_ep *ep, int n, const char *command, int depth,
    pid_t broker, struct series *s)
{
	struct mark m = { .pid = broker };
	run_spec(ep, n, LOAD_WORKER, command, depth, 0, m, s);
}

void
run_load_sessions(const struct load_ep *ep, int n, const char *command,
    int sessions, const struct arbord *a, struct series *s)
{
	struct mark m = { .pid = arbord_pid(a), .a = a };
	run_spec(ep, n, LOAD_CONTROL, command, 1, sessions, m, s);
}

static double
med(const double *v, int n)
{
	double tmp[MAX_RUNS];
	memcpy(tmp, v, (size_t)n * sizeof *v);
	return median(tmp, (size_t)n);
}

struct figures
series_median(const struct series *s)
{
	struct figures f = {
		.rps = med(s->rps, s->n), .p50 = med(s->p50, s->n),
		.p99 = med(s->p99, s->n), .p999 = med(s->p999, s->n),
		.cpu_us = med(s->cpu_us, s->n), .allocs = med(s->allocs, s->n),
		.client = med(s->client, s->n),
	};
	return f;
}

static const char *
fmt_cpu(double us)
{
	static char b[32];
	if (isnan(us))
		return NULL;
	snprintf(b, sizeof b, "%.1f µs", us);
	return b;
}

/* Allocations per request: "0" when none at all was counted. */
static const char *
fmt_allocs(double per_req)
{
	static char b[32];
	if (isnan(per_req))
		return NULL;
	snprintf(b, sizeof b, per_req == 0 ? "0" : per_req < 0.01 ? "%.4f" :
	    "%.2f", per_req);
	return b;
}

void
series_row_rss(enum section sec, const char *label, const struct series *s,
    const struct series *floor, double rss_kib)
{
	struct figures f = series_median(s);
	char what[256];
	snprintf(what, sizeof what, "%s%s", label, s->errors ? " (errors!)" : "");
	struct trow t = { .cell = {
		[COL_CASE] = what, [COL_RPS] = fmt_rate(f.rps),
		[COL_P50] = fmt_us(f.p50), [COL_P99] = fmt_us(f.p99),
		[COL_P999] = fmt_us(f.p999), [COL_CPU] = fmt_cpu(f.cpu_us),
		[COL_ALLOCS] = fmt_allocs(f.allocs), [COL_RSS] = fmt_kib(rss_kib),
		[COL_CLIENT] = fmt_pct(f.client),
	} };
	if (floor != NULL) {
		double fr = series_median(floor).rps;
		t.cell[COL_FLOOR] = fmt_rate(fr);
		t.cell[COL_RATIO] = fmt_ratio(f.rps / fr);
	}
	if (s->errors)
		note("%s: %llu error replies", label, (unsigned long long)s->errors);
	table_add(sec, section_name(sec), &t);
}

void
series_row(enum section sec, const char *label, const struct series *s,
    const struct series *floor)
{
	series_row_rss(sec, label, s, floor, NAN);
}

struct load_ep *
clients_open(const struct arbord *a, int n)
{
	struct load_ep *ep = xcalloc((size_t)n, sizeof *ep);
	for (int i = 0; i < n; i++) {
		int fd = arbord_connect(a);
		if (fd < 0)
			die("connect #%d to arbord: %s", i + 1, strerror(errno));
		ep[i].rfd = ep[i].wfd = fd;
	}
	return ep;
}

void
clients_close(struct load_ep *ep, int n)
{
	for (int i = 0; i < n; i++)
		close(ep[i].rfd);
	free(ep);
}

struct load_ep *
workers_eps(const struct wk *w, int n)
{
	struct load_ep *ep = xcalloc((size_t)n, sizeof *ep);
	for (int i = 0; i < n; i++) {
		ep[i].rfd = w[i].rfd;
		ep[i].wfd = w[i].wfd;
	}
	return ep;
}

char **
mock_argv(void)
{
	static char *argv[2];
	if (argv[0] == NULL)
		argv[0] = xasprintf("%s/mock_worker", B.build);
	return argv;
}

char **
python_argv(void)
{
	static char *argv[3];
	if (argv[0] == NULL) {
		argv[0] = "python3";
		argv[1] = xasprintf("%s/workers/python/bridge_worker.py", B.root);
	}
	return argv;
}
