/* clients: execute/stats shorthands and many control connections polled
 * from one thread. */
#include "tests/integration/clients.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/xmalloc.h"

#define REPLY_MAX	(64u << 20)	/* largest reply frame accepted */
#define POLL_MAX	1024		/* connections one cl_pump watches */
#define STAT_POLL_MS	20

struct cl_conn {
	int	fd;
	bool	eof;
	struct buf in;
};

/* ---- execute requests and replies ---- */

json_t *
cl_exec_req(json_int_t id, const char *command, json_t *args,
    const char *session, int timeout_ms)
{
	json_t *req = json_pack("{s:I,s:s,s:s}", "id", id, "op", "execute",
	    "command", command);
	if (args != NULL)
		json_object_set_new(req, "args", args);
	if (session != NULL)
		json_object_set_new(req, "session_id", json_string(session));
	if (timeout_ms > 0)
		json_object_set_new(req, "timeout_ms", json_integer(timeout_ms));
	return req;
}

/* An execute request without an id: arb_call adds one. */
static json_t *
exec_req_noid(const char *command, json_t *args, const char *session)
{
	json_t *req = cl_exec_req(0, command, args, session, 0);
	json_object_del(req, "id");
	return req;
}

json_t *
cl_exec(struct arb *a, const char *command, json_t *args, const char *session)
{
	return arb_call(a, exec_req_noid(command, args, session));
}

json_t *
cl_exec_ok(struct arb *a, const char *command, json_t *args,
    const char *session)
{
	return arb_call_ok(a, exec_req_noid(command, args, session));
}

bool
cl_echo_reset(struct arb *a, const char *session)
{
	json_t *r = cl_exec_ok(a, "echo", NULL, session);
	bool reset = cl_reply_reset(r);
	json_decref(r);
	return reset;
}

json_t *
cl_exec_err(struct arb *a, const char *command, json_t *args,
    const char *session, const char *code)
{
	return arb_call_err(a, exec_req_noid(command, args, session), code);
}

const char *
cl_reply_worker(const json_t *reply)
{
	return json_string_value(json_object_get(reply, "worker"));
}

const char *
cl_reply_message(const json_t *reply)
{
	return json_string_value(json_object_get(json_object_get(reply,
	    "error"), "message"));
}

json_int_t
cl_reply_id(const json_t *reply)
{
	const json_t *id = json_object_get(reply, "id");
	return json_is_integer(id) ? json_integer_value(id) : -1;
}

bool
cl_reply_reset(const json_t *reply)
{
	return json_is_true(json_object_get(reply, "session_reset"));
}

char *
cl_describe(const json_t *reply)
{
	if (reply == NULL)
		return xstrdup("(no reply)");
	char *s = json_dumps(reply, JSON_COMPACT | JSON_SORT_KEYS);
	return s != NULL ? s : xstrdup("(unprintable reply)");
}

bool
cl_is_spec_code(const char *code)
{
	static const char *const codes[] = { "bad_request", "unknown_op",
	    "not_found", "permission_denied", "frame_too_large",
	    "bridge_disabled", "pool_timeout", "overloaded", "worker_error",
	    "worker_crashed", "timeout", "shutting_down", "config_error" };
	for (size_t i = 0; code != NULL && i < sizeof codes / sizeof codes[0];
	    i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

/* ---- stats and tree ---- */

/* The stats object of one `stats` reply, or NULL (quietly). */
static json_t *
stats_once(struct arb *a)
{
	json_t *reply = arb_call(a, json_pack("{s:s}", "op", "stats"));
	json_t *st = json_object_get(reply, "stats");
	if (arb_reply_ok(reply) && json_is_object(st))
		json_incref(st);
	else
		st = NULL;
	json_decref(reply);
	return st;
}

json_t *
cl_stats(struct arb *a)
{
	json_t *st = stats_once(a);
	if (st == NULL)
		fail_msg("the stats op failed");
	return st;
}

json_int_t
cl_stat(struct arb *a, const char *key)
{
	json_t *st = cl_stats(a);
	json_int_t v = arb_node_int(st, key);
	json_decref(st);
	return v;
}

bool
cl_wait_stat(struct arb *a, const char *key, json_int_t lo, json_int_t hi,
    int timeout_ms)
{
	long long end = arb_now_ms() + timeout_ms;
	json_t *st = NULL;
	for (;;) {
		json_decref(st);
		st = stats_once(a);
		json_int_t v = arb_node_int(st, key);
		if (st != NULL && v >= lo && v <= hi) {
			json_decref(st);
			return true;
		}
		if (arb_now_ms() >= end)
			break;
		arb_sleep_ms(STAT_POLL_MS);
	}
	char *s = cl_describe(st);
	fprintf(stderr, "timed out after %d ms waiting for stats.%s in "
	    "%lld..%lld; last stats: %s\n", timeout_ms, key, (long long)lo,
	    (long long)hi, s);
	free(s);
	json_decref(st);
	return false;
}

json_int_t
cl_worker_pid(struct arb *a, const char *name)
{
	json_t *tree = arb_status(a, NULL);
	json_int_t pid = arb_node_pid(arb_find(tree, name));
	json_decref(tree);
	return pid;
}

json_t *
cl_hold_args(int ms)
{
	return json_pack("{s:i,s:b}", "ms", ms, "until_usr1", 1);
}

void
cl_release(struct arb *a, const char *name)
{
	pid_t pid = (pid_t)cl_worker_pid(a, name);
	if (pid <= 0 || !proc_wait_sig_caught(pid, SIGUSR1, ARB_EVENT_MS))
		fail_msg("%s (pid %d) is not in a sleep until SIGUSR1", name,
		    (int)pid);
	if (kill(pid, SIGUSR1) < 0)
		fail_msg("kill %d: %s", (int)pid, strerror(errno));
}

/* ---- connections ---- */

struct cl_conn *
cl_open(struct arb *a)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = arb_socket_path(a);
	if (strlen(path) >= sizeof sa.sun_path)
		fail_msg("socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail_msg("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		fail_msg("connect %s: %s", path, strerror(e));
	}
	struct cl_conn *c = xcalloc(1, sizeof *c);
	c->fd = fd;
	buf_init(&c->in);
	return c;
}

void
cl_close(struct cl_conn *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	buf_release(&c->in);
	free(c);
}

/* Writes all of p[0..n); fails the test on error. */
static void
send_all(struct cl_conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			fail_msg("send on a control connection: %s",
			    strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

struct cl_conn *
cl_send_held(struct arb *a, json_int_t id, const char *command, json_t *args,
    const char *session, const char *key, json_int_t n)
{
	struct cl_conn *c = cl_open(a);
	json_t *req = cl_exec_req(id, command, args, session, 0);
	cl_send(c, req);
	json_decref(req);
	assert_true(cl_wait_stat(a, key, n, n, ARB_EVENT_MS));
	return c;
}

void
cl_send(struct cl_conn *c, const json_t *req)
{
	struct buf out;
	buf_init(&out);
	frame_put_json(&out, req);
	send_all(c, buf_head(&out), buf_used(&out));
	buf_release(&out);
}

void
cl_send_batch(struct cl_conn *c, const json_t *reqs)
{
	struct buf out;
	buf_init(&out);
	size_t i;
	const json_t *req;
	json_array_foreach(reqs, i, req)
		frame_put_json(&out, req);
	send_all(c, buf_head(&out), buf_used(&out));
	buf_release(&out);
}

bool
cl_eof(const struct cl_conn *c)
{
	return c->eof;
}

void
cl_expect_ok_in_order(struct cl_conn *c, json_int_t first, json_int_t last,
    int timeout_ms)
{
	for (json_int_t id = first; id <= last; id++) {
		json_t *r = cl_recv(c, timeout_ms);
		if (!arb_reply_ok(r)) {
			char *d = cl_describe(r);
			fail_msg("request %lld: %s", (long long)id, d);
		}
		assert_int_equal(cl_reply_id(r), id);
		json_decref(r);
	}
}

/* Takes one whole reply frame off c's buffer: 1 and *out (NULL if it was
 * not a JSON object), or 0 when no whole frame is there yet. */
static int
take_frame(struct cl_conn *c, json_t **out)
{
	const char *payload;
	size_t len;
	enum frame_status st = frame_peek(&c->in, REPLY_MAX, &payload, &len);
	if (st == FRAME_TOO_LARGE)
		fail_msg("reply frame of %zu bytes", len);
	if (st != FRAME_OK)
		return 0;
	json_error_t err;
	*out = frame_parse(payload, len, &err);
	if (*out == NULL)
		fprintf(stderr, "reply is not a JSON object: %s: %.*s\n",
		    err.text, (int)(len < 200 ? len : 200), payload);
	frame_done(&c->in, len);
	return 1;
}

/* Reads what c has into its buffer; marks EOF. */
static void
fill(struct cl_conn *c)
{
	ssize_t n = buf_read_fd(&c->in, c->fd);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		c->eof = true;
}

json_t *
cl_recv(struct cl_conn *c, int timeout_ms)
{
	long long end = arb_now_ms() + timeout_ms;
	for (;;) {
		json_t *j = NULL;
		if (take_frame(c, &j))
			return j;
		long long left = end - arb_now_ms();
		if (c->eof || left <= 0)
			return NULL;
		struct pollfd p = { c->fd, POLLIN, 0 };
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno != EINTR)
			return NULL;
		if (r > 0)
			fill(c);
	}
}

json_t *
cl_recv_ok(struct cl_conn *c, int timeout_ms, const char *what)
{
	json_t *r = cl_recv(c, timeout_ms);
	if (r == NULL || !arb_reply_ok(r))
		fail_msg("%s: %s", what, cl_describe(r));
	return r;
}

/* Hands every whole frame buffered on conns[i] to fn; returns how many. */
static int
deliver(struct cl_conn *c, size_t i, cl_reply_fn *fn, void *ctx)
{
	int n = 0;
	json_t *j;
	while (take_frame(c, &j)) {
		if (j == NULL)
			fail_msg("malformed reply frame on connection %zu", i);
		fn(i, j, ctx);
		json_decref(j);
		n++;
	}
	return n;
}

int
cl_pump(struct cl_conn **conns, size_t n, int wait_ms, cl_reply_fn *fn,
    void *ctx)
{
	struct pollfd p[POLL_MAX];
	size_t idx[POLL_MAX], np = 0;
	int got = 0;
	if (n > POLL_MAX)
		fail_msg("cl_pump: %zu connections, at most %d", n, POLL_MAX);
	for (size_t i = 0; i < n; i++)	/* frames left over from cl_recv */
		if (conns[i] != NULL)
			got += deliver(conns[i], i, fn, ctx);
	for (size_t i = 0; i < n; i++) {
		if (conns[i] == NULL || conns[i]->eof)
			continue;
		p[np] = (struct pollfd){ conns[i]->fd, POLLIN, 0 };
		idx[np++] = i;
	}
	if (np == 0)
		return got > 0 ? got : -1;
	int r = poll(p, np, got > 0 ? 0 : wait_ms);
	if (r < 0 && errno != EINTR)
		fail_msg("poll: %s", strerror(errno));
	for (size_t k = 0; r > 0 && k < np; k++) {
		if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		fill(conns[idx[k]]);
		got += deliver(conns[idx[k]], idx[k], fn, ctx);
	}
	return got;
}
