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

static int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
read_all(int fd, void *p, size_t n)
{
	char *c = p;
	while (n > 0) {
		ssize_t r = read(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

/* One pair: round trips until the window closes, the latencies of those
 * inside it into a histogram written to out. Runs in a forked copy. */
static void __attribute__((noreturn))
pair_main(const struct wk *w, const struct buf *req, int out)
{
	static struct hist h;
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
		if (write_all(w->wfd, buf_head(req), buf_used(req)) < 0 ||
		    frame_read_blocking(w->rfd, &in, MAX_REPLY, &payload,
		    &len) != 1)
			_exit(1);
		frame_done(&in, len);
		if (t0 >= open)
			hist_add(&h, now_ns() - t0);
	}
	_exit(write_all(out, &h, sizeof h) < 0);
}

/* One run of n pairs on w[0..n); its figures are added to s. */
static void
run_pairs(const struct wk *w, int n, const struct buf *req, struct series *s)
{
	static struct hist all, one;
	pid_t pid[MAX_PAIRS];
	int fd[MAX_PAIRS];
	for (int i = 0; i < n; i++) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0)
			die("pipe: %s", strerror(errno));
		if ((pid[i] = proc_fork()) == 0)
			pair_main(&w[i], req, p[1]);
		close(p[1]);
		fd[i] = p[0];
	}
	hist_reset(&all);
	for (int i = 0; i < n; i++) {
		if (read_all(fd[i], &one, sizeof one) < 0)
			die("worker pair %d failed", i + 1);
		close(fd[i]);
		proc_wait(pid[i], -1);
		all.count += one.count;
		for (int b = 0; b < HIST_BUCKETS; b++)
			all.b[b] += one.b[b];
	}
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
	struct buf req;
	char label[256];
	char *json = xasprintf("{\"id\":1,\"command\":\"echo\",\"args\":%s}",
	    BENCH_ARGS);
	buf_init(&req);
	frame_put(&req, json, strlen(json));
	free(json);
	wk_spawn(mock_argv(), w, n, 120);
	for (int r = 0; r < B.runs && r < MAX_RUNS; r++) {
		note("%d worker pairs: run %d/%d", n, r + 1, B.runs);
		run_pairs(w, n, &req, &s);
	}
	wk_stop(w, n);
	buf_release(&req);
	snprintf(label, sizeof label, "direct: %d worker pairs, each a blocking "
	    "client on a mock_worker of its own%s", n, reference);
	series_row(SEC_TPUT, label, &s, NULL);
}
