/* The reference floor, measured on this machine: n worker pairs,
 * each a process of the benchmark making blocking round trips with a
 * mock_worker of its own over pipes (one write of a request frame, one
 * read of the reply), all pairs at once. Where the targets were set, 2
 * pairs made about 235,000 round trips a second at a p50 of 7.6 µs; this
 * row tells how this machine compares with that one. Unlike the floor of
 * section 1 there is no epoll and no other peer: the scheduler can keep
 * each pair on one core. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/xmalloc.h"
#include "tools/bench/bench.h"
#include "tools/bench/hist.h"
#include "tools/bench/proc.h"
#include "tools/bench/run.h"
#include "tools/bench/sections.h"

#define MAX_PAIRS	8
#define MAX_REPLY	(1 << 20)

/* One pair: round trips until the window closes, the latencies of those
 * inside it into h (shared with the parent). Runs in a forked copy. */
static void __attribute__((noreturn))
pair_main(const struct wk *w, const char *req, struct hist *h)
{
	struct buf in;
	buf_init(&in);
	fcntl(w->rfd, F_SETFL, 0);
	fcntl(w->wfd, F_SETFL, 0);
	uint64_t open = now_ns() + (uint64_t)(B.warmup * 1e9);
	uint64_t close_at = open + (uint64_t)(B.secs * 1e9);
	for (;;) {
		uint64_t t0 = now_ns();
		const char *payload;
		size_t len;
		if (t0 >= close_at)
			break;
		if (frame_write_blocking(w->wfd, req, strlen(req)) < 0 ||
		    frame_read_blocking(w->rfd, &in, MAX_REPLY, &payload,
		    &len) != 1)
			_exit(1);
		frame_done(&in, len);
		if (t0 >= open)
			hist_add(h, now_ns() - t0);
	}
	_exit(0);
}

/* One run of n pairs on w[0..n); its figures are added to s. */
static void
run_pairs(const struct wk *w, int n, const char *req, struct series *s)
{
	static struct hist all;
	struct hist *h = mmap(NULL, (size_t)n * sizeof *h,
	    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (h == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	pid_t pid[MAX_PAIRS];
	for (int i = 0; i < n; i++)
		if ((pid[i] = proc_fork()) == 0)
			pair_main(&w[i], req, &h[i]);
	hist_reset(&all);
	for (int i = 0; i < n; i++) {
		int st = proc_wait(pid[i], -1);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			die("worker pair %d failed", i + 1);
		all.count += h[i].count;
		for (int b = 0; b < HIST_BUCKETS; b++)
			all.b[b] += h[i].b[b];
	}
	munmap(h, (size_t)n * sizeof *h);
	int k = s->n++;
	s->rps[k] = (double)all.count / B.secs;
	s->p50[k] = (double)hist_quantile(&all, 0.5) / 1e3;
	s->p99[k] = (double)hist_quantile(&all, 0.99) / 1e3;
	s->p999[k] = (double)hist_quantile(&all, 0.999) / 1e3;
	s->cpu_us[k] = s->allocs[k] = s->client[k] = NAN;
}

void
bench_pairs(int n, const char *reference)
{
	struct wk w[MAX_PAIRS];
	struct series s = { 0 };
	char label[256];
	char *req = xasprintf("{\"id\":1,\"command\":\"echo\",\"args\":%s}",
	    BENCH_ARGS);
	if (n > MAX_PAIRS)
		die("%d worker pairs: at most %d", n, MAX_PAIRS);
	wk_spawn(mock_argv(), w, n, 120);
	for (int r = 0; r < B.runs && r < MAX_RUNS; r++) {
		note("%d worker pairs: run %d/%d", n, r + 1, B.runs);
		run_pairs(w, n, req, &s);
	}
	wk_stop(w, n);
	free(req);
	snprintf(label, sizeof label, "direct: %d worker pairs, each a blocking "
	    "client on a mock_worker of its own%s", n, reference);
	series_row(SEC_TPUT, label, &s, NULL);
}
