#include "workers/libworker/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/jraw.h"
#include "proto/msg.h"
#include "proto/xmalloc.h"

/* serve_one() and handle() result meaning "go on with the next request". */
#define SERVE_MORE	(-1)
/* The longest session_id the raw path takes; longer ones go through jansson. */
#define RAW_SID_MAX	255

struct handler {
	char		*command;
	worker_fn	 fn;		/* one of the two is set */
	worker_raw_fn	 raw;
};

/* A request read as text by the raw path (borrows the frame). */
struct raw_req {
	struct handler	*h;
	const char	*id;		/* the id's JSON text */
	size_t		 id_len;
	const char	*args;		/* the args object's JSON text */
	size_t		 args_len;
	const char	*sid;		/* NUL-terminated copy, or NULL */
	bool		 check;		/* jansson read it: the result is
					 * checked to be JSON, as before */
};

struct worker {
	int		 in_fd;		/* the protocol stream: a copy of fd 0 */
	int		 out_fd;	/* ... and of fd 1 */
	size_t		 max_frame;
	struct buf	 in;
	struct buf	 out;
	struct handler	*handlers;
	size_t		 nhandlers;
	char		*id;		/* from the init ping, or NULL */
	void		*data;
	unsigned long	 requests;
	unsigned long	 errors;
	/* The request being handled. */
	json_t		*req_id;	/* borrowed from the request, or own_id */
	json_t		*own_id;	/* raw path: raw_id parsed on demand */
	const char	*raw_id;	/* raw path: the id's text (borrowed) */
	size_t		 raw_id_len;
	char		 sid[RAW_SID_MAX + 1];	/* raw path: its session_id */
	const char	*command;	/* borrowed from the request */
	char		*err;		/* set by worker_fail() */
	bool		 no_reply;
};

static json_t	*builtin_ping(struct worker *, json_t *, const char *);
static json_t	*builtin_shutdown(struct worker *, json_t *, const char *);

/* Messages on stderr carry the program's name, as any Unix tool's do. */
static void
complain(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Moves fd (0 or 1) to a private close-on-exec copy and puts /dev/null
 * (0) or stderr (1) in its place, so that stray reads and
 * printf()s, ours or a child's, cannot touch the frame stream. Returns the
 * copy, or fd itself if it cannot be copied. */
static int
claim_fd(int fd)
{
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (copy < 0)
		return fd;
	int repl = fd == STDIN_FILENO ? open("/dev/null", O_RDONLY) :
	    STDERR_FILENO;
	if (repl >= 0 && dup2(repl, fd) >= 0 && repl != STDERR_FILENO)
		close(repl);
	return copy;
}

/* ARBOR_MAX_FRAME_BYTES if it is a positive integer, else the default. */
static size_t
max_frame_from_env(void)
{
	const char *s = getenv("ARBOR_MAX_FRAME_BYTES");
	if (s == NULL || *s == '\0')
		return WORKER_MAX_FRAME;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > UINT32_MAX ||
	    *s == '-') {
		complain("ignoring invalid ARBOR_MAX_FRAME_BYTES=%s", s);
		return WORKER_MAX_FRAME;
	}
	return (size_t)v;
}

struct worker *
worker_new(void)
{
	struct worker *w = xcalloc(1, sizeof *w);
	fflush(stdout);
	w->in_fd = claim_fd(STDIN_FILENO);
	w->out_fd = claim_fd(STDOUT_FILENO);
	w->max_frame = max_frame_from_env();
	buf_init(&w->in);
	buf_init(&w->out);
	worker_on(w, "ping", builtin_ping);
	worker_on(w, "shutdown", builtin_shutdown);
	return w;
}

void
worker_free(struct worker *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->nhandlers; i++)
		free(w->handlers[i].command);
	free(w->handlers);
	if (w->in_fd > STDERR_FILENO)
		close(w->in_fd);
	if (w->out_fd > STDERR_FILENO)
		close(w->out_fd);
	buf_release(&w->in);
	buf_release(&w->out);
	free(w->id);
	free(w->err);
	free(w);
}

/* The handler registered for command[0..n), or NULL. */
static struct handler *
find_handler_n(const struct worker *w, const char *command, size_t n)
{
	for (size_t i = 0; i < w->nhandlers; i++) {
		const char *c = w->handlers[i].command;
		if (strncmp(c, command, n) == 0 && c[n] == '\0')
			return &w->handlers[i];
	}
	return NULL;
}

static struct handler *
find_handler(const struct worker *w, const char *command)
{
	return find_handler_n(w, command, strlen(command));
}

/* The handler slot for command, added if new. */
static struct handler *
handler_slot(struct worker *w, const char *command)
{
	struct handler *h = find_handler(w, command);
	if (h == NULL) {
		w->handlers = xrealloc(w->handlers,
		    (w->nhandlers + 1) * sizeof *w->handlers);
		h = &w->handlers[w->nhandlers++];
		h->command = xstrdup(command);
	}
	return h;
}

void
worker_on(struct worker *w, const char *command, worker_fn fn)
{
	struct handler *h = handler_slot(w, command);
	h->fn = fn;
	h->raw = NULL;
}

void
worker_on_raw(struct worker *w, const char *command, worker_raw_fn fn)
{
	struct handler *h = handler_slot(w, command);
	h->raw = fn;
	h->fn = NULL;
}

void
worker_set_data(struct worker *w, void *data)
{
	w->data = data;
}

void *
worker_data(const struct worker *w)
{
	return w->data;
}

json_t *
worker_fail(struct worker *w, const char *fmt, ...)
{
	va_list ap;
	free(w->err);
	va_start(ap, fmt);
	if (vasprintf(&w->err, fmt, ap) < 0)
		w->err = xstrdup("out of memory formatting an error");
	va_end(ap);
	return NULL;
}

json_t *
worker_no_reply(struct worker *w)
{
	w->no_reply = true;
	return NULL;
}

json_t *
worker_request_id(struct worker *w)
{
	if (w->req_id == NULL && w->raw_id != NULL) {
		w->own_id = json_loadb(w->raw_id, w->raw_id_len,
		    JSON_DECODE_ANY, NULL);
		w->req_id = w->own_id;
	}
	return w->req_id ? w->req_id : json_null();
}

const char *
worker_command(const struct worker *w)
{
	return w->command;
}

const char *
worker_id(const struct worker *w)
{
	return w->id;
}

void
worker_counts(const struct worker *w, unsigned long *requests,
    unsigned long *errors)
{
	*requests = w->requests;
	*errors = w->errors;
}

void
worker_reset_counts(struct worker *w)
{
	w->requests = 0;
	w->errors = 0;
}

/* Writes everything queued in w->out; a short write that would block is an
 * error too, since the stream is blocking. */
static int
flush_out(struct worker *w)
{
	if (buf_write_fd(&w->out, w->out_fd) < 0)
		return -1;
	if (buf_used(&w->out) > 0) {
		buf_consume(&w->out, buf_used(&w->out));
		errno = EAGAIN;
		return -1;
	}
	return 0;
}

int
worker_write_raw(struct worker *w, const void *p, size_t n)
{
	buf_append(&w->out, p, n);
	return flush_out(w);
}

int
worker_write_frame(struct worker *w, const void *p, size_t n)
{
	frame_put(&w->out, p, n);
	return flush_out(w);
}

int
worker_write_json(struct worker *w, const json_t *j)
{
	frame_put_json(&w->out, j);
	return flush_out(w);
}

/* ping: {"pong": true, "worker_id": <name or null>, "pid": <pid>}. */
static json_t *
builtin_ping(struct worker *w, json_t *args, const char *session_id)
{
	return json_pack("{s:b,s:o,s:I}", "pong", 1, "worker_id",
	    w->id ? json_string(w->id) : json_null(), "pid",
	    (json_int_t)getpid());
}

/* shutdown: acknowledged; handle() then ends the loop. */
static json_t *
builtin_shutdown(struct worker *w, json_t *args, const char *session_id)
{
	return json_pack("{s:b}", "shutting_down", 1);
}

/* Any ping may carry the name; the init ping always does (SPEC 5). */
static void
note_worker_id(struct worker *w, const json_t *args)
{
	const char *id = msg_str(args, "worker_id");
	if (id != NULL) {
		free(w->id);
		w->id = xstrdup(id);
	}
}

/* The error reply carrying w->err (counted). */
static json_t *
error_reply(struct worker *w)
{
	w->errors++;
	return msg_worker_err(worker_request_id(w), "%s", w->err);
}

/* Checks the request's shape; false after worker_fail(). */
static bool
valid_request(struct worker *w, const json_t *req)
{
	json_t *sid = json_object_get(req, "session_id");
	if (w->command == NULL || *w->command == '\0')
		worker_fail(w, "invalid request: command must be a non-empty"
		    " string");
	else if (!json_is_object(json_object_get(req, "args")))
		worker_fail(w, "invalid request: args must be an object");
	else if (sid != NULL && !json_is_null(sid) && !json_is_string(sid))
		worker_fail(w, "invalid request: session_id must be a string");
	else
		return true;
	return false;
}

/* A raw handler called on the jansson path: args re-encoded, the result
 * parsed. Only a raw handler of ping comes here (the library reads the
 * init ping's args itself); any other takes raw_from_parsed's way. */
static json_t *
call_raw(struct worker *w, const struct handler *h, json_t *args,
    const char *session_id)
{
	char *text = msg_text(args);
	const char *res;
	size_t n;
	json_t *r = NULL;
	if (h->raw(w, text, strlen(text), session_id, &res, &n) == 0 &&
	    w->err == NULL && !w->no_reply) {
		r = json_loadb(res, n, JSON_DECODE_ANY, NULL);
		if (r == NULL)
			worker_fail(w, "%s: handler returned invalid JSON",
			    w->command);
	}
	free(text);
	return r;
}

/* Runs the handler of the current request; result as worker_fn's. */
static json_t *
dispatch(struct worker *w, json_t *req)
{
	if (!valid_request(w, req))
		return NULL;
	json_t *args = json_object_get(req, "args");
	const char *session_id = msg_str(req, "session_id");
	if (strcmp(w->command, "ping") == 0)
		note_worker_id(w, args);
	struct handler *h = find_handler(w, w->command);
	if (h == NULL)
		return worker_fail(w, "unknown command: %s", w->command);
	json_t *result = h->raw ? call_raw(w, h, args, session_id) :
	    h->fn(w, args, session_id);
	if (result == NULL && w->err == NULL && !w->no_reply)
		worker_fail(w, "%s: handler failed", w->command);
	return result;
}

/* Queues the error reply that stands for a reply of n bytes, too large to
 * send (already taken back out of w->out). */
static void
queue_oversized(struct worker *w, size_t n)
{
	worker_fail(w, "%s: reply of %zu bytes exceeds the maximum frame size"
	    " %zu", w->command, n, w->max_frame);
	json_t *e = error_reply(w);
	frame_put_json(&w->out, e);
	json_decref(e);
}

/* Queues reply r (borrowed) in w->out, or an error reply in its place when
 * r is too large to send. */
static void
queue_reply(struct worker *w, const json_t *r)
{
	size_t n = frame_put_json(&w->out, r);
	if (n <= w->max_frame)
		return;
	w->out.len -= FRAME_HDR + n;
	queue_oversized(w, n);
}

/* Writes the reply the handler's outcome calls for (steals result). */
static int
reply(struct worker *w, json_t *result)
{
	if (w->no_reply) {
		json_decref(result);
		return 0;
	}
	json_t *r;
	if (w->err != NULL) {
		json_decref(result);
		r = error_reply(w);
	} else
		r = msg_worker_ok(w->req_id, result);
	queue_reply(w, r);
	json_decref(r);
	return flush_out(w);
}

/* Clears what the last request left and counts a new one. */
static void
reset_request(struct worker *w)
{
	free(w->err);
	w->err = NULL;
	w->no_reply = false;
	w->requests++;
}

/* Sets up the per-request state for req. */
static void
begin_request(struct worker *w, json_t *req)
{
	reset_request(w);
	w->req_id = json_object_get(req, "id");
	if (w->req_id == NULL)
		w->req_id = json_null();
	w->command = msg_str(req, "command");
	if (json_object_get(req, "args") == NULL ||
	    json_is_null(json_object_get(req, "args")))
		json_object_set_new(req, "args", json_object());
}

/* Ends the current request, whose reply was written with outcome rc (0 or
 * -1): SERVE_MORE, or an exit status. */
static int
end_request(struct worker *w, int rc)
{
	bool shutdown = w->command && strcmp(w->command, "shutdown") == 0;
	json_decref(w->own_id);
	w->own_id = NULL;
	w->req_id = NULL;
	w->raw_id = NULL;
	w->command = NULL;
	if (rc < 0) {
		complain("writing a reply: %s", strerror(errno));
		return WORKER_EXIT_IO;
	}
	return shutdown ? WORKER_EXIT_OK : SERVE_MORE;
}

/* Handles one parsed request (borrowed): SERVE_MORE, or an exit status. */
static int
handle(struct worker *w, json_t *req)
{
	begin_request(w, req);
	json_t *result = dispatch(w, req);
	return end_request(w, reply(w, result));
}

/* ---- the raw path: requests to raw handlers, never parsed ---- */

/* Reads the request p[0..n) as text for a raw handler; false when it is not
 * for one, or not in a shape the scanner decides (the jansson path then
 * takes it, and makes any error reply). */
static bool
scan_raw(struct worker *w, const char *p, size_t n, struct raw_req *r)
{
	struct jraw_member m[8];
	int k = jraw_object(p, n, m, 8);
	const char *c, *sid;
	size_t cn, sn;
	if (k < 0 || !jraw_str(jraw_get(m, k, "command"), &c, &cn) ||
	    cn == 0 || (r->h = find_handler_n(w, c, cn)) == NULL || r->h->raw == NULL ||
	    strcmp(r->h->command, "ping") == 0)
		return false;
	const struct jraw_member *a = jraw_get(m, k, "args");
	if (a != NULL && a->type == JRAW_OBJECT) {
		r->args = a->val;
		r->args_len = a->val_len;
	} else if (a == NULL || a->type == JRAW_NULL) {
		r->args = "{}";
		r->args_len = 2;
	} else
		return false;
	const struct jraw_member *s = jraw_get(m, k, "session_id");
	r->sid = NULL;
	if (s != NULL && s->type != JRAW_NULL) {
		if (!jraw_str(s, &sid, &sn) || sn > RAW_SID_MAX)
			return false;
		memcpy(w->sid, sid, sn);
		w->sid[sn] = '\0';
		r->sid = w->sid;
	}
	const struct jraw_member *id = jraw_get(m, k, "id");
	r->id = id ? id->val : "null";
	r->id_len = id ? id->val_len : 4;
	r->check = false;
	return true;
}

/* Queues {"id":ID,"success":true,"result":RESULT}, or an error reply when
 * that exceeds the maximum frame. */
static void
queue_raw_reply(struct worker *w, const char *res, size_t len)
{
	size_t at = frame_open(&w->out);
	jraw_put(&w->out, "{\"id\":");
	buf_append(&w->out, w->raw_id, w->raw_id_len);
	jraw_put(&w->out, ",\"success\":true,\"result\":");
	buf_append(&w->out, res, len);
	jraw_put(&w->out, "}");
	size_t n = buf_used(&w->out) - at - FRAME_HDR;
	if (n <= w->max_frame) {
		frame_close(&w->out, at);
		return;
	}
	w->out.len = w->out.off + at;
	queue_oversized(w, n);
}

/* Whether p[0..n) is one JSON value. */
static bool
is_json(const char *p, size_t n)
{
	json_t *j = json_loadb(p, n, JSON_DECODE_ANY, NULL);
	bool ok = j != NULL;
	json_decref(j);
	return ok;
}

/* Runs the raw handler of r and writes its reply: SERVE_MORE, or an exit
 * status. */
static int
handle_raw(struct worker *w, const struct raw_req *r)
{
	reset_request(w);
	w->command = r->h->command;
	w->raw_id = r->id;
	w->raw_id_len = r->id_len;
	const char *res = NULL;
	size_t len = 0;
	int rc = r->h->raw(w, r->args, r->args_len, r->sid, &res, &len);
	if (w->no_reply)
		return end_request(w, 0);
	if (rc == 0 && w->err == NULL && r->check && !is_json(res, len))
		worker_fail(w, "%s: handler returned invalid JSON", w->command);
	if (rc == 0 && w->err == NULL)
		queue_raw_reply(w, res, len);
	else {
		if (w->err == NULL)
			worker_fail(w, "%s: handler failed", w->command);
		json_t *e = error_reply(w);
		queue_reply(w, e);
		json_decref(e);
	}
	return end_request(w, flush_out(w));
}

/* Reads req, which jansson has read from the frame p[0..n) (the scanner
 * left it to jansson), as a raw handler's request: its args and id as
 * written, not as jansson would write them anew (a real such as 0.7 as
 * 0.69999999999999996). false when it is not for a raw handler or not
 * valid (handle() then answers it, the error reply included). */
static bool
raw_from_parsed(struct worker *w, json_t *req, const char *p, size_t n,
    struct raw_req *r)
{
	const char *c = msg_str(req, "command");
	json_t *args = json_object_get(req, "args");
	json_t *sid = json_object_get(req, "session_id");
	if (c == NULL || *c == '\0' || strcmp(c, "ping") == 0 ||
	    (r->h = find_handler(w, c)) == NULL || r->h->raw == NULL ||
	    (sid != NULL && !json_is_null(sid) && !json_is_string(sid)))
		return false;
	if (args == NULL || json_is_null(args)) {
		r->args = "{}";
		r->args_len = 2;
	} else if (!json_is_object(args) ||
	    !frame_member_text(p, n, "args", &r->args, &r->args_len))
		return false;
	r->sid = json_string_value(sid);	/* NULL for none */
	r->check = true;
	if (!frame_id_text(p, n, &r->id, &r->id_len)) {
		r->id = "null";
		r->id_len = 4;
	}
	return true;
}

/* Explains why no request frame could be read; returns the exit status. */
static int
read_failed(struct worker *w, size_t len)
{
	switch (errno) {
	case EMSGSIZE:
		complain("request frame of %zu bytes exceeds the maximum %zu",
		    len, w->max_frame);
		return WORKER_EXIT_PROTOCOL;
	case EPROTO:
		complain("end of input inside a request frame");
		return WORKER_EXIT_PROTOCOL;
	default:
		complain("reading a request: %s", strerror(errno));
		return WORKER_EXIT_IO;
	}
}

/* Reads and handles one request: SERVE_MORE, or an exit status. */
static int
serve_one(struct worker *w)
{
	const char *p = NULL;
	size_t n = 0;
	int r = frame_read_blocking(w->in_fd, &w->in, w->max_frame, &p, &n);
	if (r == 0)
		return WORKER_EXIT_OK;
	if (r < 0)
		return read_failed(w, n);
	struct raw_req raw;
	if (scan_raw(w, p, n, &raw)) {
		int rc = handle_raw(w, &raw);
		frame_done(&w->in, n);
		return rc;
	}
	json_error_t e;
	json_t *req = frame_parse(p, n, &e);
	if (req == NULL) {
		frame_done(&w->in, n);
		complain("invalid request: %s", e.text);
		return WORKER_EXIT_PROTOCOL;
	}
	int rc = raw_from_parsed(w, req, p, n, &raw) ? handle_raw(w, &raw) :
	    handle(w, req);
	frame_done(&w->in, n);	/* after: the raw request borrows it */
	json_decref(req);
	return rc;
}

int
worker_run(struct worker *w)
{
	int rc;
	while ((rc = serve_one(w)) == SERVE_MORE)
		;
	return rc;
}
