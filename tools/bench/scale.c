/* Section 3: scale. Bring-up of 16 to 1,024 workers (arbord's start to all
 * ready, by polling `health`) against the bare spawn floor (the benchmark
 * forks and execs as many mock_workers and waits for each to answer its
 * init ping); arbord's RSS once they are ready; `status` at 1,024 workers;
 * execute throughput and arbord's CPU per request at 8 and 1,024 workers,
 * with 64 and with 1,024 clients. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/frame.h"
#include "proto/xmalloc.h"
#include "tools/bench/bench.h"
#include "tools/bench/hist.h"
#include "tools/bench/proc.h"
#include "tools/bench/run.h"
#include "tools/bench/sections.h"
#include "tools/bench/table.h"

#define BIG		1024
#define SMALL		8
#define MANY_CLIENTS	1024
#define FEW_CLIENTS	64
#define UP_TIMEOUT_S	300

static const int sizes[] = { 16, 64, 256, BIG };
#define NSIZES	((int)(sizeof sizes / sizeof sizes[0]))

static struct arbord_conf
mock_conf(int size)
{
	struct arbord_conf c = {
		.size = size, .adapter = "bridge_mock", .log_level = "warn",
	};
	return c;
}

/* The floor: n mock_workers forked, exec'd and answering the init ping. */
static double
spawn_floor(int n)
{
	struct wk *w = xcalloc((size_t)n, sizeof *w);
	uint64_t t0 = now_ns();
	wk_spawn(mock_argv(), w, n, UP_TIMEOUT_S);
	double us = (double)(now_ns() - t0) / 1e3;
	wk_stop(w, n);
	free(w);
	return us;
}

static struct arbord *
bring_up(int n, double *us, double *rss)
{
	struct arbord_conf c = mock_conf(n);
	uint64_t t0 = now_ns();
	struct arbord *a = arbord_start(&c);
	if (arbord_wait_ready(a, UP_TIMEOUT_S) < 0)
		die("arbord did not bring up %d workers", n);
	*us = (double)(now_ns() - t0) / 1e3;
	*rss = (double)proc_rss_kib(arbord_pid(a));
	return a;
}

static void
bring_up_row(int n, double *up, double *fl, double *rss)
{
	double m = median(up, (size_t)B.runs), f = median(fl, (size_t)B.runs);
	char label[120];
	snprintf(label, sizeof label, "bring-up: arbord start to %d workers "
	    "ready", n);
	struct trow t = { .cell = {
		[COL_CASE] = label, [COL_P50] = fmt_us(m), [COL_FLOOR] = fmt_us(f),
		[COL_RATIO] = fmt_ratio(m / f),
		[COL_RSS] = fmt_kib(median(rss, (size_t)B.runs)),
	} };
	table_add(SEC_SCALE, section_name(SEC_SCALE), &t);
}

/* Bring-up of every size; returns the last arbord of BIG workers, alive. */
static struct arbord *
bench_bring_up(void)
{
	struct arbord *keep = NULL;
	for (int i = 0; i < NSIZES; i++) {
		double up[MAX_RUNS], fl[MAX_RUNS], rss[MAX_RUNS];
		for (int r = 0; r < B.runs; r++) {
			note("scale: bring-up of %d, run %d/%d", sizes[i], r + 1,
			    B.runs);
			fl[r] = spawn_floor(sizes[i]);
			struct arbord *a = bring_up(sizes[i], &up[r], &rss[r]);
			if (sizes[i] == BIG && r == B.runs - 1)
				keep = a;
			else
				arbord_stop(a);
		}
		bring_up_row(sizes[i], up, fl, rss);
	}
	return keep;
}

/* One status round trip on fd, the reply read whole but not parsed. */
static double
status_rtt(int fd, size_t *size)
{
	static const char req[] = "{\"id\":7,\"op\":\"status\"}";
	struct buf in;
	buf_init(&in);
	const char *p;
	uint64_t t0 = now_ns();
	if (frame_write_blocking(fd, req, sizeof req - 1) < 0 ||
	    frame_read_blocking(fd, &in, 1u << 30, &p, size) != 1)
		die("status: no reply");
	double us = (double)(now_ns() - t0) / 1e3;
	uint64_t id;
	bool ok;
	if (load_scan_reply(p, *size, "ok", &id, &ok) < 0 || !ok)
		die("status: bad reply: %.200s", p);
	buf_release(&in);
	return us;
}

/* arborctl --json status, fork to exit, stdout to /dev/null. */
static double
arborctl_rtt(const struct arbord *a)
{
	char *bin = xasprintf("%s/arborctl", B.build);
	char *argv[] = { bin, "-s", (char *)arbord_socket(a), "--json",
	    "status", NULL };
	uint64_t t0 = now_ns();
	pid_t pid = proc_spawn(argv, -1, -1, -1, false);
	int st = proc_wait(pid, 60000);
	double us = (double)(now_ns() - t0) / 1e3;
	free(bin);
	if (st != 0)
		die("arborctl status failed (wait status %d)", st);
	return us;
}

static void
sample_row(const char *label, double *v, int n)
{
	struct trow t = { .cell = {
		[COL_CASE] = label,
		[COL_P50] = fmt_us(sample_quantile(v, (size_t)n, 0.5)),
		[COL_P99] = fmt_us(sample_quantile(v, (size_t)n, 0.99)),
	} };
	table_add(SEC_SCALE, section_name(SEC_SCALE), &t);
}

static void
bench_status(const struct arbord *a)
{
	int n = B.quick ? 5 : 30;
	double *v = xcalloc((size_t)n, sizeof *v);
	size_t size = 0;
	int fd = arbord_connect(a);
	if (fd < 0)
		die("connect to arbord");
	for (int i = 0; i < n; i++)
		v[i] = status_rtt(fd, &size);
	close(fd);
	char label[160];
	snprintf(label, sizeof label, "`status` op at %d workers (%zu KiB "
	    "reply), %d calls", BIG, size / 1024, n);
	sample_row(label, v, n);
	for (int i = 0; i < n; i++)
		v[i] = arborctl_rtt(a);
	snprintf(label, sizeof label, "`arborctl --json status` at %d workers "
	    "(fork to exit), %d calls", BIG, n);
	sample_row(label, v, n);
	free(v);
}

/* A pool under load: arbord and its clients, and the same number of
 * workers run directly. */
struct sbed {
	int		 size;
	struct arbord	*a;
	struct wk	*w;
	struct load_ep	*wep, *cep;
	struct series	 direct, few, many;
};

static void
sbed_open(struct sbed *b, int size, struct arbord *a)
{
	memset(b, 0, sizeof *b);
	b->size = size;
	if (a == NULL) {
		double us, rss;
		a = bring_up(size, &us, &rss);
	}
	b->a = a;
	b->w = xcalloc((size_t)size, sizeof *b->w);
	wk_spawn(mock_argv(), b->w, size, UP_TIMEOUT_S);
	b->wep = workers_eps(b->w, size);
	b->cep = clients_open(a, MANY_CLIENTS);
}

static void
sbed_close(struct sbed *b)
{
	clients_close(b->cep, MANY_CLIENTS);
	free(b->wep);
	wk_stop(b->w, b->size);
	free(b->w);
	arbord_stop(b->a);
}

static void
sbed_run(struct sbed *b, int what)
{
	if (what == 0)
		run_load(b->wep, b->size, LOAD_WORKER, "echo", 1, NULL,
		    &b->direct);
	else if (what == 1)
		run_load(b->cep, FEW_CLIENTS, LOAD_CONTROL, "echo", 1, b->a,
		    &b->few);
	else
		run_load(b->cep, MANY_CLIENTS, LOAD_CONTROL, "echo", 1, b->a,
		    &b->many);
}

static void
cpu_ratio_row(int clients, const struct series *small, const struct series *big)
{
	char label[160];
	snprintf(label, sizeof label, "arbord CPU/req at %d vs %d workers, "
	    "%d clients", BIG, SMALL, clients);
	double r = series_median(big).cpu_us / series_median(small).cpu_us;
	struct trow t = { .cell = { [COL_CASE] = label,
	    [COL_RATIO] = fmt_ratio(r) } };
	table_add(SEC_SCALE, section_name(SEC_SCALE), &t);
}

static void
sbed_rows(struct sbed *s, struct sbed *l)
{
	char label[160];
	struct sbed *both[2] = { s, l };
	for (int i = 0; i < 2; i++) {
		snprintf(label, sizeof label, "direct: %d × mock_worker over "
		    "pipes, depth 1", both[i]->size);
		series_row(SEC_SCALE, label, &both[i]->direct, NULL);
	}
	int clients[2] = { FEW_CLIENTS, MANY_CLIENTS };
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 2; i++) {
			snprintf(label, sizeof label, "arbord: %d × mock_worker, "
			    "%d clients, depth 1", both[i]->size, clients[k]);
			series_row(SEC_SCALE, label,
			    k == 0 ? &both[i]->few : &both[i]->many,
			    &both[i]->direct);
		}
	cpu_ratio_row(FEW_CLIENTS, &s->few, &l->few);
	cpu_ratio_row(MANY_CLIENTS, &s->many, &l->many);
}

static void
bench_scale_tput(struct arbord *big)
{
	struct sbed s, l;
	sbed_open(&s, SMALL, NULL);
	sbed_open(&l, BIG, big);
	for (int r = 0; r < B.runs; r++) {
		note("scale: throughput at %d and %d workers, run %d/%d", SMALL,
		    BIG, r + 1, B.runs);
		for (int what = 0; what < 3; what++) {
			sbed_run(&s, what);
			sbed_run(&l, what);
		}
	}
	double rss = (double)proc_rss_kib(arbord_pid(l.a));
	sbed_rows(&s, &l);
	char label[160];
	snprintf(label, sizeof label, "arbord RSS at %d workers after the "
	    "load above", BIG);
	struct trow t = { .cell = { [COL_CASE] = label,
	    [COL_RSS] = fmt_kib(rss) } };
	table_add(SEC_SCALE, section_name(SEC_SCALE), &t);
	sbed_close(&s);
	sbed_close(&l);
}

void
bench_scale(void)
{
	struct arbord *big = bench_bring_up();
	bench_status(big);
	bench_scale_tput(big);
}
