/* Section 2: from kill -9 of a ready pool worker to its replacement being
 * ready, timed by the benchmark from the kill to arbord's log line
 * "pool/worker.1: ready (pid N, ...)" on the pipe that is arbord's stderr.
 * The floor: the benchmark itself SIGKILLs and reaps a mock_worker, forks
 * and execs a new one and waits for its answer to the init ping. Samples
 * of the two alternate; then the same again while 16 clients keep sending
 * requests through arbord (from a forked copy of the benchmark). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/xmalloc.h"
#include "tools/bench/bench.h"
#include "tools/bench/hist.h"
#include "tools/bench/proc.h"
#include "tools/bench/run.h"
#include "tools/bench/sections.h"
#include "tools/bench/table.h"

#define WORKER		"pool/worker.1"
#define LINE_WAIT_MS	20000
#define LOAD_CLIENTS	16

/* Reads arbord's log up to the ready line of WORKER with a pid other than
 * old: that pid. */
static pid_t
next_ready(struct arbord *a, pid_t old)
{
	static const char key[] = WORKER ": ready (pid ";
	char line[1024];
	for (;;) {
		int rc = arbord_log_line(a, line, sizeof line, LINE_WAIT_MS);
		if (rc <= 0)
			die("no \"%s ready\" line from arbord within %d ms",
			    WORKER, LINE_WAIT_MS);
		char *p = strstr(line, key);
		int pid;
		if (p && sscanf(p + strlen(key), "%d", &pid) == 1 && pid != old)
			return (pid_t)pid;
	}
}

static double
arbord_sample(struct arbord *a, pid_t *pid)
{
	uint64_t t0 = now_ns();
	if (kill(*pid, SIGKILL) < 0)
		die("kill %d: worker gone", (int)*pid);
	*pid = next_ready(a, *pid);
	return (double)(now_ns() - t0) / 1e3;
}

static double
floor_sample(struct wk *w)
{
	uint64_t t0 = now_ns();
	proc_kill_wait(w->pid);
	close(w->rfd);
	close(w->wfd);
	wk_spawn(mock_argv(), w, 1, 20);
	return (double)(now_ns() - t0) / 1e3;
}

/* A forked copy of the benchmark that keeps LOAD_CLIENTS clients sending
 * until it is killed; error replies (worker_crashed) are expected. */
static pid_t
start_load(const struct arbord *a)
{
	pid_t pid = proc_fork();
	if (pid > 0)
		return pid;
	struct load_ep *ep = clients_open(a, LOAD_CLIENTS);
	struct load_spec spec = {
		.proto = LOAD_CONTROL, .command = "echo", .args = BENCH_ARGS,
		.depth = 1, .warmup = 0, .secs = 1e6, .tolerate_errors = true,
	};
	struct load_result r;
	load_run(ep, LOAD_CLIENTS, &spec, &r);
	_exit(0);
}

static void
add_row(const char *label, double *v, int n, double floor_p50)
{
	double p50 = sample_quantile(v, (size_t)n, 0.5);
	struct trow t = { .cell = {
		[COL_CASE] = label, [COL_P50] = fmt_us(p50),
		[COL_P99] = fmt_us(sample_quantile(v, (size_t)n, 0.99)),
		[COL_P999] = fmt_us(sample_quantile(v, (size_t)n, 0.999)),
	} };
	if (!isnan(floor_p50)) {
		t.cell[COL_FLOOR] = fmt_us(floor_p50);
		t.cell[COL_RATIO] = fmt_ratio(p50 / floor_p50);
	}
	table_add(SEC_RESTART, section_name(SEC_RESTART), &t);
}

/* n alternating samples; adds the rows. */
static void
measure(struct arbord *a, pid_t *pid, struct wk *w, const char *when)
{
	int n = B.kills;
	double *av = xcalloc((size_t)n, sizeof *av);
	double *fv = xcalloc((size_t)n, sizeof *fv);
	for (int i = 0; i < n; i++) {
		av[i] = arbord_sample(a, pid);
		fv[i] = floor_sample(w);
	}
	char label[200];
	snprintf(label, sizeof label, "floor%s: kill -9, reap, fork+exec "
	    "mock_worker, init ping answered (%d)", when, n);
	double fp50 = sample_quantile(fv, (size_t)n, 0.5);
	add_row(label, fv, n, NAN);
	snprintf(label, sizeof label, "arbord%s: kill -9 of a ready worker to "
	    "its replacement ready (%d kills)", when, n);
	add_row(label, av, n, fp50);
	free(av);
	free(fv);
}

void
bench_restart(void)
{
	struct arbord_conf c = {
		.size = 2, .adapter = "bridge_mock", .log_level = "info",
		.pipe_log = true,
	};
	struct arbord *a = arbord_start(&c);
	pid_t pid = next_ready(a, 0);
	if (arbord_wait_ready(a, 60) < 0)
		die("arbord did not start");
	struct wk w;
	wk_spawn(mock_argv(), &w, 1, 20);
	note("restart: %d kills, idle", B.kills);
	measure(a, &pid, &w, "");
	if (arbord_wait_ready(a, 60) < 0)
		die("arbord's pool did not recover");
	pid_t load = start_load(a);
	usleep(200000);
	note("restart: %d kills, %d clients sending", B.kills, LOAD_CLIENTS);
	measure(a, &pid, &w, ", 16 clients sending");
	proc_kill_wait(load);
	wk_stop(&w, 1);
	arbord_stop(a);
}
