#include "tools/bench/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/uring.h"
#include "proto/xmalloc.h"
#include "tools/bench/bench.h"
#include "tools/bench/proc.h"
#include "tools/bench/wk.h"

#define MAX_CLIENTS	4096
#define MAX_FRAME	(1u << 20)
#define MAX_EVENTS	256
#define TAG_LISTEN	UINT64_MAX
#define START_S		120

struct relay {
	pid_t	 pid;
	char	*dir, *sock;
};

/* A peer: a client connection, or a worker's pipes (rfd != wfd). */
struct peer {
	int		 rfd, wfd;
	struct buf	 in, out;
	int		 owner;		/* worker: the client it serves, or -1 */
	bool		 queued;	/* on the flush list */
};

struct loop {
	int		 ep, lfd;
	struct peer	*cl, *wk;	/* clients by fd, workers by index */
	int		 nwk;
	int		*idle, nidle;	/* idle workers, a stack */
	struct buf	 waiting;	/* FIFO of (client fd, frame) */
	struct peer	**flush;
	int		 nflush;
	struct uring_write *w;		/* as many as flush */
};

/* ---- the relay process ---- */

static void
want_flush(struct loop *l, struct peer *p)
{
	if (!p->queued) {
		p->queued = true;
		l->flush[l->nflush++] = p;
	}
}

/* Writes the queued peers' output in one system call where there are
 * several (proto/uring.h), as arbord's batch.c does; whatever is left in
 * the loop below. */
static void
write_together(struct loop *l)
{
	struct uring_write *w = l->w;
	if (l->nflush < 2)
		return;
	for (int i = 0; i < l->nflush; i++)
		w[i] = (struct uring_write){ .fd = l->flush[i]->wfd,
		    .buf = buf_head(&l->flush[i]->out),
		    .len = buf_used(&l->flush[i]->out) };
	uring_writes(w, (size_t)l->nflush);
	for (int i = 0; i < l->nflush; i++)
		buf_consume(&l->flush[i]->out, w[i].done);
}

/* Writes every queued peer's output; a full pipe or socket is waited on
 * (the load generator always reads). */
static void
flush_all(struct loop *l)
{
	write_together(l);
	for (int i = 0; i < l->nflush; i++) {
		struct peer *p = l->flush[i];
		p->queued = false;
		while (buf_used(&p->out) > 0) {
			if (buf_write_fd(&p->out, p->wfd) == 0)
				continue;
			if (errno != EAGAIN)
				break;	/* a client gone: its replies are dropped */
			struct pollfd pf = { .fd = p->wfd, .events = POLLOUT };
			poll(&pf, 1, -1);
		}
	}
	l->nflush = 0;
}

static void
hand(struct loop *l, int w, int client, const char *frame, size_t n)
{
	struct peer *wp = &l->wk[w];
	wp->owner = client;
	buf_append(&wp->out, frame, n);
	want_flush(l, wp);
}

/* One whole request frame (header included) from client fd c. */
static void
request(struct loop *l, int c, const char *frame, size_t n)
{
	if (l->nidle > 0) {
		hand(l, l->idle[--l->nidle], c, frame, n);
		return;
	}
	uint32_t hdr[2] = { (uint32_t)c, (uint32_t)n };
	buf_append(&l->waiting, hdr, sizeof hdr);
	buf_append(&l->waiting, frame, n);
}

/* Worker w is free: the oldest waiting request, or the idle stack. */
static void
freed(struct loop *l, int w)
{
	l->wk[w].owner = -1;
	if (buf_used(&l->waiting) == 0) {
		l->idle[l->nidle++] = w;
		return;
	}
	uint32_t hdr[2];
	memcpy(hdr, buf_head(&l->waiting), sizeof hdr);
	hand(l, w, (int)hdr[0], buf_head(&l->waiting) + sizeof hdr, hdr[1]);
	buf_consume(&l->waiting, sizeof hdr + hdr[1]);
}

/* Reads p; calls fn for each whole frame (header included). false at EOF
 * or on an error. */
static bool
read_frames(struct loop *l, struct peer *p, int who,
    void (*fn)(struct loop *, int, const char *, size_t))
{
	ssize_t got = buf_read_fd(&p->in, p->rfd);
	if (got == 0 || (got < 0 && errno != EAGAIN))
		return false;
	const char *payload;
	size_t len;
	while (frame_peek(&p->in, MAX_FRAME, &payload, &len) == FRAME_OK) {
		fn(l, who, payload - FRAME_HDR, len + FRAME_HDR);
		frame_done(&p->in, len);
	}
	buf_settle(&p->in);
	return true;
}

static void
reply(struct loop *l, int w, const char *frame, size_t n)
{
	int c = l->wk[w].owner;
	if (c >= 0 && l->cl[c].rfd >= 0) {
		buf_append(&l->cl[c].out, frame, n);
		want_flush(l, &l->cl[c]);
	}
	freed(l, w);
}

static void
accept_all(struct loop *l)
{
	int fd;
	while ((fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) >= 0) {
		if (fd >= MAX_CLIENTS)
			die("relay: too many clients");
		struct peer *p = &l->cl[fd];
		p->rfd = p->wfd = fd;
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)fd };
		epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev);
	}
}

static void
drop_client(struct loop *l, int fd)
{
	struct peer *p = &l->cl[fd];
	epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	buf_release(&p->in);
	buf_release(&p->out);
	p->rfd = p->wfd = -1;
}

static void __attribute__((noreturn))
serve(struct loop *l)
{
	struct epoll_event ev[MAX_EVENTS];
	for (;;) {
		int n = epoll_wait(l->ep, ev, MAX_EVENTS, -1);
		for (int i = 0; i < n; i++) {
			uint64_t tag = ev[i].data.u64;
			if (tag == TAG_LISTEN)
				accept_all(l);
			else if (tag >= MAX_CLIENTS)
				read_frames(l, &l->wk[tag - MAX_CLIENTS],
				    (int)(tag - MAX_CLIENTS), reply);
			else if (l->cl[tag].rfd >= 0 &&
			    !read_frames(l, &l->cl[tag], (int)tag, request))
				drop_client(l, (int)tag);
		}
		flush_all(l);
	}
}

static int
listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(fd, 4096) < 0)
		die("relay: %s: %s", path, strerror(errno));
	return fd;
}

static void __attribute__((noreturn))
relay_main(char *const argv[], int n, const char *sock)
{
	struct wk *w = xcalloc((size_t)n, sizeof *w);
	wk_spawn(argv, w, n, START_S);
	struct loop l = {
		.ep = epoll_create1(EPOLL_CLOEXEC), .lfd = listen_on(sock),
		.cl = xcalloc(MAX_CLIENTS, sizeof *l.cl),
		.wk = xcalloc((size_t)n, sizeof *l.wk), .nwk = n,
		.idle = xcalloc((size_t)n, sizeof *l.idle),
		.flush = xcalloc(MAX_CLIENTS + (size_t)n, sizeof *l.flush),
		.w = xcalloc(MAX_CLIENTS + (size_t)n, sizeof *l.w),
	};
	for (int i = 0; i < MAX_CLIENTS; i++)
		l.cl[i].rfd = l.cl[i].wfd = -1;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_LISTEN };
	epoll_ctl(l.ep, EPOLL_CTL_ADD, l.lfd, &ev);
	for (int i = n - 1; i >= 0; i--) {
		l.wk[i] = (struct peer){ .rfd = w[i].rfd, .wfd = w[i].wfd,
		    .owner = -1 };
		fcntl(w[i].wfd, F_SETFL, O_NONBLOCK);
		ev.data.u64 = MAX_CLIENTS + (uint64_t)i;
		epoll_ctl(l.ep, EPOLL_CTL_ADD, w[i].rfd, &ev);
		l.idle[l.nidle++] = i;
	}
	serve(&l);
}

/* ---- the benchmark's side ---- */

const char *
relay_path(const struct relay *r)
{
	return r->sock;
}

struct relay *
relay_start(char *const argv[], int n)
{
	static int serial;
	struct relay *r = xcalloc(1, sizeof *r);
	r->dir = tmp_dir("relay", &serial);
	r->sock = xasprintf("%s/relay.sock", r->dir);
	r->pid = proc_fork();
	if (r->pid == 0) {
		prctl(PR_SET_NAME, "relay");	/* for ps, top and perf */
		relay_main(argv, n, r->sock);
	}
	for (double end = now_s() + START_S;;) {
		int fd = unix_connect(r->sock);
		if (fd >= 0) {
			close(fd);
			return r;
		}
		if (proc_wait(r->pid, 0) >= 0)
			die("relay exited before it listened");
		if (now_s() > end || proc_interrupted())
			die("relay did not listen within %d s", START_S);
		usleep(10000);
	}
}

pid_t
relay_pid(const struct relay *r)
{
	return r->pid;
}

void
relay_stop(struct relay *r)
{
	if (r == NULL)
		return;
	proc_kill_wait(r->pid);
	unlink(r->sock);
	rmdir(r->dir);
	free(r->sock);
	free(r->dir);
	free(r);
}
