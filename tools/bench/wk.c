#include "tools/bench/wk.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/xmalloc.h"
#include "tools/bench/bench.h"
#include "tools/bench/load.h"
#include "tools/bench/proc.h"

/* A worker that went away before its init reply: how it ended. */
static void __attribute__((noreturn))
gone(const struct wk *w, const char *why)
{
	int st = proc_wait(w->pid, 2000);
	if (st >= 0 && WIFSIGNALED(st))
		die("worker %d: %s; killed by signal %d", (int)w->pid, why,
		    WTERMSIG(st));
	if (st >= 0 && WIFEXITED(st))
		die("worker %d: %s; exited with %d", (int)w->pid, why,
		    WEXITSTATUS(st));
	die("worker %d: %s", (int)w->pid, why);
}

/* Forks one worker and sends its init ping. */
static void
spawn_one(char *const argv[], struct wk *w, int i)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	w->pid = proc_spawn(argv, in[0], out[1], -1, false);
	close(in[0]);
	close(out[1]);
	w->rfd = out[0];
	w->wfd = in[1];
	char ping[160];
	int n = snprintf(ping, sizeof ping, "{\"id\":1,\"command\":\"ping\","
	    "\"args\":{\"initialization\":true,\"worker_id\":\"bench/%d\"}}", i);
	if (frame_write_blocking(w->wfd, ping, (size_t)n) < 0)
		gone(w, strerror(errno));
}

/* Reads what worker w has; 1 once its init reply is whole and good. */
static int
read_init(struct wk *w, struct buf *in)
{
	ssize_t got = buf_read_fd(in, w->rfd);
	if (got == 0)
		gone(w, "end of file before the init reply");
	if (got < 0 && errno != EAGAIN)
		die("worker %d: read: %s", (int)w->pid, strerror(errno));
	if (got < 0)
		return 0;
	const char *p;
	size_t len;
	if (frame_peek(in, 1u << 20, &p, &len) != FRAME_OK)
		return 0;
	uint64_t id;
	bool ok;
	if (load_scan_reply(p, len, "success", &id, &ok) < 0 || id != 1 || !ok)
		die("worker %d: bad init reply: %.*s", (int)w->pid, (int)len, p);
	return 1;
}

static void
wait_inits(struct wk *w, int n, double timeout_s)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct buf *in = xcalloc((size_t)n, sizeof *in);
	for (int i = 0; i < n; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		fcntl(w[i].rfd, F_SETFL, O_NONBLOCK);
		if (epoll_ctl(ep, EPOLL_CTL_ADD, w[i].rfd, &ev) < 0)
			die("epoll_ctl: %s", strerror(errno));
	}
	double end = now_s() + timeout_s;
	for (int left = n; left > 0;) {
		struct epoll_event ev[256];
		int k = epoll_wait(ep, ev, 256, 100);
		if (proc_interrupted() || now_s() > end)
			die("%d of %d workers did not answer the init ping", left, n);
		for (int j = 0; j < k; j++) {
			int i = (int)ev[j].data.u32;
			if (read_init(&w[i], &in[i]) == 1) {
				epoll_ctl(ep, EPOLL_CTL_DEL, w[i].rfd, NULL);
				left--;
			}
		}
	}
	for (int i = 0; i < n; i++)
		buf_release(&in[i]);
	free(in);
	close(ep);
}

void
wk_spawn(char *const argv[], struct wk *w, int n, double timeout_s)
{
	for (int i = 0; i < n; i++)
		spawn_one(argv, &w[i], i + 1);
	wait_inits(w, n, timeout_s);
}

void
wk_stop(struct wk *w, int n)
{
	for (int i = 0; i < n; i++)
		kill(w[i].pid, SIGKILL);
	for (int i = 0; i < n; i++) {
		proc_wait(w[i].pid, -1);
		close(w[i].rfd);
		close(w[i].wfd);
	}
}
