#include "tools/bench/load.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/xmalloc.h"
#include "tools/bench/bench.h"
#include "tools/bench/hist.h"
#include "tools/bench/proc.h"

#define MAX_EVENTS	256
#define MAX_REPLY	(16u << 20)
#define DRAIN_NS	(10ull * 1000000000u)	/* replies still due after the window */

enum phase { PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

/* One endpoint. A slot holds at most one request: its id is
 * seq * depth + slot, so a reply names its slot whatever the order. */
struct lconn {
	int		 rfd, wfd;
	struct buf	 in, out;
	uint64_t	*sent;		/* per slot: send time, ns */
	uint64_t	*seq;		/* per slot: sequence of the request */
	int		 inflight;
	int		 sess;		/* sessions: the next one this endpoint uses */
	bool		 pollout;
	bool		 dead;		/* lost (tolerate_errors only) */
};

struct lrun {
	const struct load_spec *s;
	struct lconn	*c;
	int		 n, ep;
	enum phase	 phase;
	uint64_t	 t_measure, t_drain, t_end;
	uint64_t	 inflight, replies, errors;
	double		 cpu0, cpu1;
	const char	*okkey;
	char		*tail;		/* the request after its id */
	size_t		 tail_len;
	json_t		*args;		/* for checking the first reply */
	bool		 checked;
	bool		 shown_error;
};

static struct hist lat;

/* ---- reply scanning ---- */

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
		p++;
	return p;
}

/* p at an opening quote: returns just past the closing one, or NULL. */
static const char *
skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* p at '{' or '[': returns just past the matching bracket, or NULL. */
static const char *
skip_nested(const char *p, const char *end)
{
	int depth = 0;
	while (p < end) {
		if (*p == '"') {
			if ((p = skip_string(p, end)) == NULL)
				return NULL;
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if ((*p == '}' || *p == ']') && --depth == 0)
			return p + 1;
		p++;
	}
	return NULL;
}

static const char *
skip_value(const char *p, const char *end)
{
	if (p >= end)
		return NULL;
	if (*p == '"')
		return skip_string(p, end);
	if (*p == '{' || *p == '[')
		return skip_nested(p, end);
	while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ')
		p++;
	return p;
}

/* Reads the value of a member we want; others are skipped. */
static const char *
member_value(const char *p, const char *end, const char *key, size_t klen,
    const char *okkey, uint64_t *id, bool *ok)
{
	if (klen == 2 && memcmp(key, "id", 2) == 0) {
		uint64_t v = 0;
		const char *d = p;
		while (p < end && *p >= '0' && *p <= '9')
			v = v * 10 + (uint64_t)(*p++ - '0');
		if (p == d)
			return NULL;
		*id = v;
		return p;
	}
	if (klen == strlen(okkey) && memcmp(key, okkey, klen) == 0) {
		*ok = end - p >= 4 && memcmp(p, "true", 4) == 0;
		return skip_value(p, end);
	}
	return skip_value(p, end);
}

int
load_scan_reply(const char *p, size_t n, const char *okkey, uint64_t *id,
    bool *ok)
{
	const char *end = p + n;
	bool have_id = false;
	*ok = false;
	p = skip_ws(p, end);
	if (p >= end || *p++ != '{')
		return -1;
	for (;;) {
		p = skip_ws(p, end);
		if (p < end && *p == '}')
			return have_id ? 0 : -1;
		if (p >= end || *p != '"')
			return -1;
		const char *key = p + 1, *q = skip_string(p, end);
		if (q == NULL)
			return -1;
		p = skip_ws(q, end);
		if (p >= end || *p++ != ':')
			return -1;
		uint64_t v = UINT64_MAX;
		p = member_value(skip_ws(p, end), end, key, (size_t)(q - 1 - key),
		    okkey, &v, ok);
		if (p == NULL)
			return -1;
		if (v != UINT64_MAX) {
			*id = v;
			have_id = true;
		}
		p = skip_ws(p, end);
		if (p < end && *p == ',')
			p++;
	}
}

/* ---- requests ---- */

static void
build_tail(struct lrun *r)
{
	const struct load_spec *s = r->s;
	if (s->proto == LOAD_CONTROL)
		r->tail = xasprintf(",\"op\":\"execute\",\"command\":\"%s\","
		    "\"args\":%s}", s->command, s->args);
	else
		r->tail = xasprintf(",\"command\":\"%s\",\"args\":%s}",
		    s->command, s->args);
	r->tail_len = strlen(r->tail);
	r->okkey = s->proto == LOAD_CONTROL ? "ok" : "success";
}

int
load_session_id(char *out, size_t n, int k)
{
	return snprintf(out, n, "bench-%d", k);
}

/* The request's head: its id and, with sessions, the next session of c. */
static int
head_of(struct lrun *r, struct lconn *c, uint64_t id, char *head, size_t n)
{
	if (r->s->sessions <= 0)
		return snprintf(head, n, "{\"id\":%llu", (unsigned long long)id);
	char sid[32];
	load_session_id(sid, sizeof sid, c->sess);
	c->sess += r->n;
	if (c->sess >= r->s->sessions)
		c->sess = (int)(c - r->c);
	return snprintf(head, n, "{\"id\":%llu,\"session_id\":\"%s\"",
	    (unsigned long long)id, sid);
}

/* Appends the request of slot k to c->out. */
static void
send_slot(struct lrun *r, struct lconn *c, int k, uint64_t now)
{
	int depth = r->s->depth;
	uint64_t id = ++c->seq[k] * (uint64_t)depth + (uint64_t)k;
	char head[96];
	int hl = head_of(r, c, id, head, sizeof head);
	size_t len = (size_t)hl + r->tail_len;
	buf_reserve(&c->out, FRAME_HDR + len);
	unsigned char *t = (unsigned char *)buf_tail(&c->out);
	t[0] = (unsigned char)(len >> 24);
	t[1] = (unsigned char)(len >> 16);
	t[2] = (unsigned char)(len >> 8);
	t[3] = (unsigned char)len;
	memcpy(t + FRAME_HDR, head, (size_t)hl);
	memcpy(t + FRAME_HDR + hl, r->tail, r->tail_len);
	c->out.len += FRAME_HDR + len;
	c->sent[k] = now;
	c->inflight++;
	r->inflight++;
}

/* ---- epoll plumbing ---- */

static void
set_pollout(struct lrun *r, struct lconn *c, bool on)
{
	if (c->pollout == on)
		return;
	c->pollout = on;
	uint64_t i = (uint64_t)(c - r->c);
	struct epoll_event ev = { .data.u64 = i * 2 + 1 };
	if (c->rfd == c->wfd) {
		ev.events = EPOLLIN | (on ? EPOLLOUT : 0);
		ev.data.u64 = i * 2;
		epoll_ctl(r->ep, EPOLL_CTL_MOD, c->rfd, &ev);
	} else {
		ev.events = EPOLLOUT;
		epoll_ctl(r->ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, c->wfd, &ev);
	}
}

static int
flush(struct lrun *r, struct lconn *c)
{
	if (buf_write_fd(&c->out, c->wfd) < 0)
		return -1;
	set_pollout(r, c, buf_used(&c->out) > 0);
	return 0;
}

/* A lost endpoint: fatal, unless errors are tolerated. */
static int
lose(struct lrun *r, struct lconn *c, const char *why)
{
	if (!r->s->tolerate_errors) {
		note("load: endpoint %d: %s", (int)(c - r->c), why);
		return -1;
	}
	epoll_ctl(r->ep, EPOLL_CTL_DEL, c->rfd, NULL);
	if (c->pollout && c->wfd != c->rfd)
		epoll_ctl(r->ep, EPOLL_CTL_DEL, c->wfd, NULL);
	r->inflight -= (uint64_t)c->inflight;
	c->inflight = 0;
	c->dead = true;
	return 0;
}

/* ---- replies ---- */

/* The first reply of a run is parsed for real: echo must give args back. */
static int
check_reply(struct lrun *r, const char *p, size_t n)
{
	json_t *j = json_loadb(p, n, 0, NULL);
	json_t *res = json_object_get(j, "result");
	bool good = j != NULL && res != NULL;
	if (good && strcmp(r->s->command, "echo") == 0)
		good = json_equal(res, r->args);
	if (good && r->s->proto == LOAD_CONTROL)
		good = json_is_string(json_object_get(j, "worker"));
	json_decref(j);
	if (!good)
		note("load: unexpected reply: %.*s", n > 400 ? 400 : (int)n, p);
	r->checked = true;
	return good ? 0 : -1;
}

static void
count_error(struct lrun *r, const char *p, size_t n)
{
	if (r->phase == PH_MEASURE)
		r->errors++;
	if (!r->shown_error && !r->s->tolerate_errors)
		note("load: error reply: %.*s", n > 400 ? 400 : (int)n, p);
	r->shown_error = true;
}

static int
on_reply(struct lrun *r, struct lconn *c, const char *p, size_t n,
    uint64_t now)
{
	uint64_t id;
	bool ok;
	if (load_scan_reply(p, n, r->okkey, &id, &ok) < 0) {
		note("load: unreadable reply: %.*s", n > 400 ? 400 : (int)n, p);
		return -1;
	}
	uint64_t depth = (uint64_t)r->s->depth;
	int k = (int)(id % depth);
	if (c->sent[k] == 0 || id / depth != c->seq[k]) {
		note("load: reply with an unexpected id %llu", (unsigned long long)id);
		return -1;
	}
	if (!ok)
		count_error(r, p, n);
	else if (!r->checked && check_reply(r, p, n) < 0)
		return -1;
	if (r->phase == PH_MEASURE) {
		hist_add(&lat, now - c->sent[k]);
		r->replies++;
	}
	c->sent[k] = 0;
	c->inflight--;
	r->inflight--;
	if (r->phase < PH_DRAIN)
		send_slot(r, c, k, now);
	return 0;
}

static int
on_readable(struct lrun *r, struct lconn *c)
{
	ssize_t got = buf_read_fd(&c->in, c->rfd);
	if (got == 0)
		return lose(r, c, "end of file");
	if (got < 0)
		return errno == EAGAIN ? 0 : lose(r, c, strerror(errno));
	uint64_t now = now_ns();
	const char *p;
	size_t len;
	enum frame_status fs;
	while ((fs = frame_peek(&c->in, MAX_REPLY, &p, &len)) == FRAME_OK) {
		if (on_reply(r, c, p, len, now) < 0)
			return -1;
		frame_done(&c->in, len);
	}
	if (fs == FRAME_TOO_LARGE)
		return lose(r, c, "oversized reply");
	return flush(r, c) < 0 ? lose(r, c, strerror(errno)) : 0;
}

static int
on_event(struct lrun *r, const struct epoll_event *ev)
{
	struct lconn *c = &r->c[ev->data.u64 / 2];
	if (c->dead)
		return 0;
	if (ev->data.u64 % 2 == 1 || (ev->events & EPOLLOUT)) {
		if (flush(r, c) < 0)
			return lose(r, c, strerror(errno));
		if (ev->data.u64 % 2 == 1)
			return 0;
	}
	if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		return on_readable(r, c);
	return 0;
}

/* ---- the run ---- */

static void
enter_phase(struct lrun *r, enum phase ph, uint64_t now)
{
	if (ph == PH_MEASURE) {
		hist_reset(&lat);
		r->replies = r->errors = 0;
		r->t_measure = now;
		r->cpu0 = proc_self_cpu_s();
		if (r->s->mark)
			r->s->mark(r->s->mark_arg, 0);
	} else if (ph == PH_DRAIN) {
		r->t_drain = now;
		r->cpu1 = proc_self_cpu_s();
		if (r->s->mark)
			r->s->mark(r->s->mark_arg, 1);
	}
	r->phase = ph;
}

/* Moves through the phases as time passes; ms until the next change. */
static int
advance(struct lrun *r, uint64_t now)
{
	if (r->phase == PH_WARMUP && now >= r->t_measure)
		enter_phase(r, PH_MEASURE, now);
	if (r->phase == PH_MEASURE && now >= r->t_drain)
		enter_phase(r, PH_DRAIN, now);
	if (r->phase == PH_DRAIN && (r->inflight == 0 || now >= r->t_end))
		r->phase = PH_DONE;
	uint64_t next = r->phase == PH_WARMUP ? r->t_measure :
	    r->phase == PH_MEASURE ? r->t_drain : r->t_end;
	return next > now ? (int)((next - now) / 1000000u) + 1 : 0;
}

static int
setup(struct lrun *r, const struct load_ep *ep, uint64_t now)
{
	r->ep = epoll_create1(EPOLL_CLOEXEC);
	if (r->ep < 0)
		return -1;
	size_t d = (size_t)r->s->depth;
	for (int i = 0; i < r->n; i++) {
		struct lconn *c = &r->c[i];
		c->rfd = ep[i].rfd;
		c->wfd = ep[i].wfd;
		c->sess = i;
		fcntl(c->rfd, F_SETFL, fcntl(c->rfd, F_GETFL) | O_NONBLOCK);
		fcntl(c->wfd, F_SETFL, fcntl(c->wfd, F_GETFL) | O_NONBLOCK);
		c->sent = xcalloc(d, sizeof *c->sent);
		c->seq = xcalloc(d, sizeof *c->seq);
		for (size_t k = 0; k < d; k++)
			c->seq[k] = 1;	/* ids start above the init ping's 1 */
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)i * 2 };
		if (epoll_ctl(r->ep, EPOLL_CTL_ADD, c->rfd, &ev) < 0)
			return -1;
		for (size_t k = 0; k < d; k++)
			send_slot(r, c, (int)k, now);
		if (flush(r, c) < 0)
			return -1;
	}
	return 0;
}

static void
teardown(struct lrun *r)
{
	for (int i = 0; i < r->n; i++) {
		struct lconn *c = &r->c[i];
		if (!c->dead) {
			epoll_ctl(r->ep, EPOLL_CTL_DEL, c->rfd, NULL);
			if (c->pollout && c->wfd != c->rfd)
				epoll_ctl(r->ep, EPOLL_CTL_DEL, c->wfd, NULL);
		}
		buf_release(&c->in);
		buf_release(&c->out);
		free(c->sent);
		free(c->seq);
	}
	if (r->ep >= 0)
		close(r->ep);
	free(r->c);
	free(r->tail);
	json_decref(r->args);
}

static int
loop(struct lrun *r)
{
	struct epoll_event ev[MAX_EVENTS];
	while (r->phase != PH_DONE) {
		int timeout = advance(r, now_ns());
		if (r->phase == PH_DONE)
			break;
		int k = epoll_wait(r->ep, ev, MAX_EVENTS, timeout);
		if (proc_interrupted())
			return -1;
		if (k < 0 && errno != EINTR)
			return -1;
		for (int i = 0; i < k; i++)
			if (on_event(r, &ev[i]) < 0)
				return -1;
	}
	if (r->inflight > 0)
		note("load: %llu replies still missing after the drain",
		    (unsigned long long)r->inflight);
	return r->inflight > 0 && !r->s->tolerate_errors ? -1 : 0;
}

static void
result(const struct lrun *r, struct load_result *out)
{
	memset(out, 0, sizeof *out);
	out->n = r->replies;
	out->errors = r->errors;
	out->secs = (double)(r->t_drain - r->t_measure) / 1e9;
	out->rps = out->secs > 0 ? (double)r->replies / out->secs : 0;
	out->p50 = (double)hist_quantile(&lat, 0.50) / 1e3;
	out->p99 = (double)hist_quantile(&lat, 0.99) / 1e3;
	out->p999 = (double)hist_quantile(&lat, 0.999) / 1e3;
	out->client_cpu = out->secs > 0 ? (r->cpu1 - r->cpu0) / out->secs : 0;
}

int
load_run(const struct load_ep *ep, int n, const struct load_spec *s,
    struct load_result *out)
{
	struct lrun r;
	memset(&r, 0, sizeof r);
	r.s = s;
	r.n = n;
	r.ep = -1;
	r.c = xcalloc((size_t)n, sizeof *r.c);
	r.args = json_loads(s->args, 0, NULL);
	build_tail(&r);
	uint64_t now = now_ns();
	r.t_measure = now + (uint64_t)(s->warmup * 1e9);
	r.t_drain = r.t_measure + (uint64_t)(s->secs * 1e9);
	r.t_end = r.t_drain + DRAIN_NS;
	int rc = setup(&r, ep, now);
	if (rc < 0)
		note("load: setup: %s", strerror(errno));
	else
		rc = loop(&r);
	if (rc == 0)
		result(&r, out);
	teardown(&r);
	return rc;
}
