#include "supervisor/ctl.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/xmalloc.h"
#include "supervisor/batch.h"
#include "supervisor/log.h"

#define LOOP		EV_DEFAULT_UC
#define ACCEPT_PAUSE_S	1.0	/* out of descriptors: retry accept after this */
#define OUT_PAUSE	(256 * 1024)	/* unsent replies: stop reading requests */
#define OUT_MAX		(16 * 1024 * 1024) /* unsent replies: drop the client */
#define STALL_S		5.0	/* paused, and not a byte read by the client */

struct ctl_conn {
	struct ctl	*ctl;
	struct ctl_conn	*next, *prev;
	int		 fd;
	ev_io		 w_read, w_write;
	ev_timer	 t_stall;	/* paused: the client must read by then */
	struct batch_item batch;	/* replies, written once per iteration */
	struct buf	 in, out;
	unsigned	 refs;		/* 1 while open + 1 per hold */
	unsigned	 owed;		/* replies still to come (ctl_hold) */
	bool		 eof;		/* no more requests: the client sent all
					 * it will, or a framing error */
	bool		 closing;	/* close once out is flushed */
	bool		 closed;
	bool		 paused;	/* not reading: replies are backed up */
	bool		 in_frames;	/* conn_frames is running */
	bool		 hup_watched;	/* in ctl's hang-up set */
};

struct ctl {
	const struct config	*cfg;
	ctl_handler		*handler;
	void			*arg;
	char			*path;
	int			 fd;
	ev_io			 w_accept;
	ev_timer		 t_pause;
	int			 hup_fd;	/* epoll set: the hang-ups of
						 * connections no longer read */
	ev_io			 w_hup;
	struct ctl_conn		*conns;
	size_t			 nconns;
};

static void conn_close(struct ctl_conn *);
static void conn_frames(struct ctl_conn *);

/* ---- the listening socket ------------------------------------------------ */

static int
fill_addr(struct sockaddr_un *sa, const char *path, char *err, size_t errlen)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa->sun_path) {
		snprintf(err, errlen, "%s: socket path too long", path);
		return -1;
	}
	strcpy(sa->sun_path, path);
	return 0;
}

/* Refuses a socket a live arbord answers on; removes a stale one. */
static int
claim_path(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}
	struct sockaddr_un sa;
	fill_addr(&sa, path, err, errlen);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		struct ucred cr;
		socklen_t len = sizeof cr;
		int pid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 ?
		    cr.pid : 0;
		close(fd);
		snprintf(err, errlen, "%s is in use by a running arbord (pid %d)",
		    path, pid);
		return -1;
	}
	if (fd >= 0)
		close(fd);
	log_info("ctl", "removing stale socket %s", path);
	unlink(path);
	return 0;
}

/* Creates the socket's directory when only the last level is missing. */
static void
make_dir(const char *path)
{
	char *copy = xstrdup(path);
	mkdir(dirname(copy), 0755);
	free(copy);
}

static int
listen_on(const char *path, mode_t mode, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	if (fill_addr(&sa, path, err, errlen) < 0 ||
	    claim_path(path, err, errlen) < 0)
		return -1;
	make_dir(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	mode_t old = umask(0777 & ~mode);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || chmod(path, mode) < 0 || listen(fd, 512) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static void on_accept(struct ev_loop *, ev_io *, int);
static void on_pause(struct ev_loop *, ev_timer *, int);
static void on_hangup(struct ev_loop *, ev_io *, int);

struct ctl *
ctl_open(const struct config *cfg, ctl_handler *handler, void *arg, char *err,
    size_t errlen)
{
	int fd = listen_on(cfg->control.socket, cfg->control.mode, err, errlen);
	if (fd < 0)
		return NULL;
	int hup_fd = epoll_create1(EPOLL_CLOEXEC);
	if (hup_fd < 0) {
		snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
		close(fd);
		unlink(cfg->control.socket);
		return NULL;
	}
	struct ctl *c = xcalloc(1, sizeof *c);
	c->cfg = cfg;
	c->handler = handler;
	c->arg = arg;
	c->path = xstrdup(cfg->control.socket);
	c->fd = fd;
	ev_io_init(&c->w_accept, on_accept, fd, EV_READ);
	ev_init(&c->t_pause, on_pause);
	c->hup_fd = hup_fd;
	ev_io_init(&c->w_hup, on_hangup, hup_fd, EV_READ);
	c->w_accept.data = c->t_pause.data = c->w_hup.data = c;
	ev_io_start(LOOP, &c->w_accept);
	ev_io_start(LOOP, &c->w_hup);
	log_info("ctl", "listening on %s", c->path);
	return c;
}

void
ctl_close(struct ctl *c)
{
	if (c == NULL)
		return;
	while (c->conns) {
		buf_write_fd(&c->conns->out, c->conns->fd);	/* best effort */
		conn_close(c->conns);
	}
	ev_io_stop(LOOP, &c->w_accept);
	ev_timer_stop(LOOP, &c->t_pause);
	ev_io_stop(LOOP, &c->w_hup);
	close(c->hup_fd);
	close(c->fd);
	unlink(c->path);
	free(c->path);
	free(c);
}

/* control.mode applies to the socket at once, set at every reload (a
 * chmod that failed before, or a mode changed behind arbord's back, is set
 * right); control.socket only at a restart, so a file naming another path
 * than the one in use (whatever the file before said) is warned about at
 * each reload. */
void
ctl_reconfigure(struct ctl *c, const struct config *cfg)
{
	if (strcmp(cfg->control.socket, c->path) != 0)
		log_warn("ctl", "reload: control.socket %s applies at restart "
		    "(still listening on %s)", cfg->control.socket, c->path);
	if (chmod(c->path, cfg->control.mode) < 0)
		log_warn("ctl", "reload: chmod %s: %s (control.mode unchanged)",
		    c->path, strerror(errno));
	c->cfg = cfg;
}

size_t
ctl_nconns(const struct ctl *c)
{
	return c->nconns;
}

size_t
ctl_unsent(const struct ctl *c)
{
	size_t n = 0;
	for (const struct ctl_conn *cn = c->conns; cn; cn = cn->next)
		n += buf_used(&cn->out);
	return n;
}

/* ---- connections --------------------------------------------------------- */

static void
conn_unref(struct ctl_conn *cn)
{
	if (--cn->refs == 0) {
		buf_release(&cn->in);
		buf_release(&cn->out);
		free(cn);
	}
}

static void
conn_close(struct ctl_conn *cn)
{
	if (cn->closed)
		return;
	struct ctl *c = cn->ctl;
	cn->closed = true;
	batch_cancel(&cn->batch);
	ev_timer_stop(LOOP, &cn->t_stall);
	ev_io_stop(LOOP, &cn->w_read);
	ev_io_stop(LOOP, &cn->w_write);
	if (cn->hup_watched)	/* a forked child's copy would keep it */
		epoll_ctl(c->hup_fd, EPOLL_CTL_DEL, cn->fd, NULL);
	close(cn->fd);
	if (cn->prev)
		cn->prev->next = cn->next;
	else
		c->conns = cn->next;
	if (cn->next)
		cn->next->prev = cn->prev;
	c->nconns--;
	conn_unref(cn);
}

/* Writes what is queued; closes the connection when asked and done.
 * sent: what batch wrote of it just before (it counts as progress). */
static void
conn_flush(struct ctl_conn *cn, size_t sent)
{
	size_t before = buf_used(&cn->out) + sent;
	if (buf_write_fd(&cn->out, cn->fd) < 0) {
		conn_close(cn);
		return;
	}
	if (cn->paused && buf_used(&cn->out) < before)
		ev_timer_again(LOOP, &cn->t_stall);	/* it reads: not stalled */
	if (buf_used(&cn->out) > 0) {
		ev_io_start(LOOP, &cn->w_write);
		return;
	}
	ev_io_stop(LOOP, &cn->w_write);
	if (cn->closing)
		conn_close(cn);
	else if (cn->paused && !cn->in_frames)
		conn_frames(cn);	/* resumes reading when it catches up */
}

/* A client that stopped reading is cut off rather than buffered forever:
 * checked before a reply is queued, so that one reply, however large (up
 * to worker.max_frame_bytes), still goes out whole. false: cut off. */
static bool
check_backlog(struct ctl_conn *cn)
{
	if (buf_used(&cn->out) > OUT_MAX) {
		log_warn("ctl", "client does not read its replies (%zu bytes "
		    "queued): disconnecting", buf_used(&cn->out));
		conn_close(cn);
		return false;
	}
	return true;
}

void
ctl_reply(struct ctl_conn *cn, json_t *reply)
{
	if (!cn->closed && check_backlog(cn)) {
		frame_put_json(&cn->out, reply);
		batch_queue(&cn->batch);
	}
	json_decref(reply);
}

void
ctl_reply_raw(struct ctl_conn *cn, const char *reply, size_t len)
{
	if (!cn->closed && check_backlog(cn)) {
		frame_put(&cn->out, reply, len);
		batch_queue(&cn->batch);
	}
}

/* A client that half-closed gets every reply it is owed, then EOF. */
static void
close_when_answered(struct ctl_conn *cn)
{
	if (cn->closed || !cn->eof || cn->owed > 0)
		return;
	cn->closing = true;
	batch_queue(&cn->batch);	/* conn_flush closes once written */
}

void
ctl_hold(struct ctl_conn *cn)
{
	cn->refs++;
	cn->owed++;
}

void
ctl_release(struct ctl_conn *cn)
{
	cn->owed--;
	close_when_answered(cn);
	conn_unref(cn);
}

/* A connection that sends nothing more is no longer read (its EOF would
 * wake the loop for ever), but its peer may still close its end: the
 * hang-up alone (no event asked for) is watched in ctl's epoll set, so
 * that a client gone with replies owed is dropped at once, as one that
 * closes without a half-close first is (peer_gone). */
static void
watch_hangup(struct ctl_conn *cn)
{
	struct epoll_event e = { .events = 0, .data.ptr = cn };
	if (cn->closed || cn->hup_watched)
		return;
	if (epoll_ctl(cn->ctl->hup_fd, EPOLL_CTL_ADD, cn->fd, &e) == 0)
		cn->hup_watched = true;
	else
		log_warn("ctl", "epoll_ctl: %s (a client that leaves keeps "
		    "its slot until its replies are written)", strerror(errno));
}

/* Connections of the hang-up set whose peer closed: nobody to answer. */
static void
on_hangup(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl *c = w->data;
	struct epoll_event e[16];
	int n = epoll_wait(c->hup_fd, e, 16, 0);
	for (int i = 0; i < n; i++)
		conn_close(e[i].data.ptr);
}

/* A framing error: one error reply, and nothing more is read (the stream
 * is out of step); the connection is closed once the replies owed for the
 * requests read before it are written, as after a half-close. */
static void
conn_abort(struct ctl_conn *cn, json_t *reply)
{
	cn->eof = true;
	ev_io_stop(LOOP, &cn->w_read);
	watch_hangup(cn);
	buf_consume(&cn->in, buf_used(&cn->in));
	ctl_reply(cn, reply);
	close_when_answered(cn);
}

static void
conn_frames(struct ctl_conn *cn)
{
	const char *payload;
	size_t len;
	size_t max = (size_t)cn->ctl->cfg->control.max_frame_bytes;
	cn->refs++;	/* the handler may close it */
	cn->in_frames = true;
	while (!cn->closed && !cn->closing) {
		if (buf_used(&cn->out) > OUT_PAUSE) {
			cn->paused = true;	/* conn_flush resumes us */
			ev_io_stop(LOOP, &cn->w_read);
			ev_timer_again(LOOP, &cn->t_stall);
			break;
		}
		if (cn->paused) {
			cn->paused = false;
			ev_timer_stop(LOOP, &cn->t_stall);
			if (!cn->eof)
				ev_io_start(LOOP, &cn->w_read);
		}
		enum frame_status st = frame_peek(&cn->in, max, &payload, &len);
		if (st == FRAME_MORE)
			break;
		if (st == FRAME_TOO_LARGE) {
			conn_abort(cn, msg_error(NULL, ERR_FRAME_TOO_LARGE,
			    "frame of %zu bytes exceeds %zu", len, max));
			break;
		}
		cn->ctl->handler(cn, payload, len, cn->ctl->arg);
		frame_done(&cn->in, len);
	}
	cn->in_frames = false;
	conn_unref(cn);
}

/* At EOF: whether the client closed its end, not only its writing half
 * (a Unix socket then polls POLLHUP). Its requests still in flight run
 * on, their replies dropped; it must not hold a client slot meanwhile. */
static bool
peer_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = 0 };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) != 0;
}

static void
on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_conn *cn = w->data;
	ssize_t n = buf_read_fd(&cn->in, cn->fd);
	cn->refs++;
	if (n > 0) {
		conn_frames(cn);
	} else if (n == 0 && peer_gone(cn->fd)) {
		conn_close(cn);		/* no one to answer: free its slot */
	} else if (n == 0) {
		cn->eof = true;		/* replies still go out (half-close) */
		ev_io_stop(loop, w);
		watch_hangup(cn);
		close_when_answered(cn);
	} else if (errno != EAGAIN) {
		conn_close(cn);
	}
	buf_settle(&cn->in);
	conn_unref(cn);
}

static void
on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	conn_flush(w->data, 0);
}

/* Refuses a peer with one error frame, written without waiting. */
static void
refuse(int fd, enum msg_code code, const char *why)
{
	struct buf b;
	buf_init(&b);
	json_t *j = msg_error(NULL, code, "%s", why);
	frame_put_json(&b, j);
	json_decref(j);
	buf_write_fd(&b, fd);
	buf_release(&b);
	close(fd);
}

static bool
peer_allowed(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	return cr.uid == 0 || cr.uid == getuid();
}

static void
on_batch(struct batch_item *it)
{
	conn_flush(batch_owner(it, struct ctl_conn, batch), it->sent);
}

/* A client that stopped reading its replies is dropped: it cannot pin
 * arbord's memory or a client slot forever. */
static void
on_stall(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ctl_conn *cn = w->data;
	size_t n = buf_used(&cn->out);
	log_warn("ctl", "client has not read its replies for %.0f s "
	    "(%zu %s queued): disconnecting", STALL_S, n,
	    log_plural(n, "byte", "bytes"));
	conn_close(cn);
}

static void
conn_new(struct ctl *c, int fd)
{
	struct ctl_conn *cn = xcalloc(1, sizeof *cn);
	cn->ctl = c;
	cn->fd = fd;
	cn->refs = 1;
	batch_init(&cn->batch, on_batch, &cn->fd, &cn->out);
	ev_init(&cn->t_stall, on_stall);
	cn->t_stall.repeat = STALL_S;
	cn->t_stall.data = cn;
	ev_io_init(&cn->w_read, on_read, fd, EV_READ);
	ev_io_init(&cn->w_write, on_write, fd, EV_WRITE);
	cn->w_read.data = cn->w_write.data = cn;
	ev_io_start(LOOP, &cn->w_read);
	cn->next = c->conns;
	if (c->conns)
		c->conns->prev = cn;
	c->conns = cn;
	c->nconns++;
}

static void
on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl *c = w->data;
	int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE) {
			log_warn("ctl", "accept: %s: pausing", strerror(errno));
			ev_io_stop(loop, w);
			ev_timer_set(&c->t_pause, ACCEPT_PAUSE_S, 0.);
			ev_timer_start(loop, &c->t_pause);
		}
		return;
	}
	if (!peer_allowed(fd))
		refuse(fd, ERR_PERMISSION_DENIED, "peer uid not allowed");
	else if (c->nconns >= (size_t)c->cfg->control.max_clients)
		refuse(fd, ERR_OVERLOADED, "too many clients");
	else
		conn_new(c, fd);
}

static void
on_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ctl *c = w->data;
	ev_io_start(loop, &c->w_accept);
}
