/* loadgen: client threads that keep a steady load of execute requests. */
#include "tests/integration/loadgen.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/xmalloc.h"

#define MAX_CLIENTS	64
#define SLICE_MS	100		/* a waiting client checks for abort this often */
#define REPLY_MAX	(1u << 20)	/* largest reply frame accepted */
#define WAIT_POLL_MS	10

struct lg_client {
	struct loadgen	*lg;
	unsigned	 index;
	pthread_t	 thread;
	int		 fd;
	struct buf	 in;
};

struct loadgen {
	char		*sock;
	unsigned	 nclients;
	struct lg_client clients[MAX_CLIENTS];
	atomic_bool	 stop;		/* no new requests */
	atomic_bool	 abort;		/* no more waiting for replies either */
	bool		 joined;
	pthread_mutex_t	 mu;		/* guards reqs */
	struct lg_req	*reqs;
	size_t		 nreqs, cap;
};

/* ---- records ---- */

static void
record(struct lg_client *cl, long long sent, long long replied,
    const char *code)
{
	struct loadgen *lg = cl->lg;
	pthread_mutex_lock(&lg->mu);
	if (lg->nreqs == lg->cap) {
		lg->cap = lg->cap ? 2 * lg->cap : 256;
		lg->reqs = xrealloc(lg->reqs, lg->cap * sizeof *lg->reqs);
	}
	struct lg_req *r = &lg->reqs[lg->nreqs++];
	r->sent_us = sent;
	r->replied_us = replied;
	r->client = cl->index;
	snprintf(r->code, sizeof r->code, "%s", code);
	pthread_mutex_unlock(&lg->mu);
}

/* ---- one connection ---- */

/* A connected control socket, or -1. */
static int
lg_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path)
		return -1;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Sends req (borrowed) as one frame: 0 or -1. */
static int
send_req(int fd, const json_t *req)
{
	struct buf out;
	buf_init(&out);
	frame_put_json(&out, req);
	const char *p = buf_head(&out);
	size_t n = buf_used(&out);
	int rc = 0;
	while (n > 0 && rc == 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno != EINTR)
			rc = -1;
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		}
	}
	buf_release(&out);
	return rc;
}

/* The next reply frame as a JSON object (new reference), or NULL on EOF,
 * a malformed frame, LG_REPLY_MS without one, or an abort. */
static json_t *
recv_reply(struct lg_client *cl)
{
	long long end = arb_now_ms() + LG_REPLY_MS;
	const char *payload;
	size_t len;
	for (;;) {
		enum frame_status st = frame_peek(&cl->in, REPLY_MAX, &payload,
		    &len);
		if (st == FRAME_OK)
			break;
		if (st == FRAME_TOO_LARGE || atomic_load(&cl->lg->abort) ||
		    arb_now_ms() >= end)
			return NULL;
		struct pollfd p = { cl->fd, POLLIN, 0 };
		int r = poll(&p, 1, SLICE_MS);
		if (r < 0 && errno != EINTR)
			return NULL;
		ssize_t got = r > 0 ? buf_read_fd(&cl->in, cl->fd) : 1;
		if (got == 0 || (got < 0 && errno != EAGAIN))
			return NULL;
	}
	json_t *j = frame_parse(payload, len, NULL);
	frame_done(&cl->in, len);
	buf_settle(&cl->in);	/* gives the thread's scratch area back */
	return j;
}

/* ---- what a client sends and expects ---- */

/* The n-th request of client k: sleep on even n, echo on odd. */
static json_t *
make_req(unsigned k, json_int_t n)
{
	json_t *args = n % 2 == 0 ?
	    json_pack("{s:I}", "ms", (json_int_t)(20 + (n * 7 + k) % 31)) :
	    json_pack("{s:i,s:I}", "client", (int)k, "n", n);
	return json_pack("{s:I,s:s,s:s,s:o}", "id", n, "op", "execute",
	    "command", n % 2 == 0 ? "sleep" : "echo", "args", args);
}

/* The outcome of reply to req (both borrowed). */
static const char *
outcome(const json_t *req, const json_t *reply)
{
	if (reply == NULL)
		return LG_NO_REPLY;
	if (!json_equal(json_object_get(req, "id"), json_object_get(reply, "id")))
		return LG_BAD_REPLY;
	if (!json_is_true(json_object_get(reply, "ok"))) {
		const char *code = json_string_value(json_object_get(
		    json_object_get(reply, "error"), "code"));
		return code != NULL ? code : LG_BAD_REPLY;
	}
	const json_t *args = json_object_get(req, "args");
	const json_t *res = json_object_get(reply, "result");
	bool sleep = json_object_get(args, "ms") != NULL;
	bool right = sleep ? json_equal(json_object_get(args, "ms"),
	    json_object_get(res, "slept")) : json_equal(args, res);
	return right ? LG_OK : LG_BAD_REPLY;
}

/* outcome(), and a bad reply shown with its request on stderr (the test
 * that counts it shows only the code). */
static const char *
judge(unsigned client, const json_t *req, const json_t *reply)
{
	const char *code = outcome(req, reply);
	if (strcmp(code, LG_BAD_REPLY) != 0)
		return code;
	char *q = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
	char *r = json_dumps(reply, JSON_COMPACT | JSON_SORT_KEYS);
	fprintf(stderr, "loadgen: client %u: bad reply %s to %s\n", client,
	    r ? r : "?", q ? q : "?");
	free(q);
	free(r);
	return code;
}

/* Waits until LG_PACE_MS after the last send (a pace, not an event wait). */
static void
pace(long long last)
{
	long long left = last + LG_PACE_MS - arb_now_ms();
	if (last > 0 && left > 0)
		arb_sleep_ms((int)left);
}

/* One request and its reply; false when the client should end. */
static bool
one_request(struct lg_client *cl, json_int_t n, long long *last)
{
	json_t *req = make_req(cl->index, n);
	pace(*last);
	long long sent = lg_now_us();
	*last = arb_now_ms();
	json_t *reply = send_req(cl->fd, req) == 0 ? recv_reply(cl) : NULL;
	if (reply == NULL && atomic_load(&cl->lg->abort)) {
		json_decref(req);
		return false;	/* aborted: not the daemon's failure */
	}
	const char *code = judge(cl->index, req, reply);
	record(cl, sent, reply ? lg_now_us() : 0, code);
	json_decref(req);
	json_decref(reply);
	return reply != NULL;
}

static void *
client_main(void *arg)
{
	struct lg_client *cl = arg;
	long long last = 0;
	if (cl->fd < 0) {
		record(cl, lg_now_us(), 0, LG_NO_REPLY);
		return NULL;
	}
	for (json_int_t n = 1; !atomic_load(&cl->lg->stop); n++)
		if (!one_request(cl, n, &last))
			break;
	return NULL;
}

/* ---- the API ---- */

struct loadgen *
lg_start(struct arb *a, unsigned nclients)
{
	struct loadgen *lg = xcalloc(1, sizeof *lg);
	lg->sock = xstrdup(arb_socket_path(a));
	lg->nclients = nclients < MAX_CLIENTS ? nclients : MAX_CLIENTS;
	pthread_mutex_init(&lg->mu, NULL);
	atomic_init(&lg->stop, false);
	atomic_init(&lg->abort, false);
	for (unsigned i = 0; i < lg->nclients; i++) {
		struct lg_client *cl = &lg->clients[i];
		cl->lg = lg;
		cl->index = i;
		cl->fd = lg_connect(lg->sock);
		buf_init(&cl->in);
		if (pthread_create(&cl->thread, NULL, client_main, cl) != 0) {
			fprintf(stderr, "loadgen: pthread_create failed\n");
			abort();
		}
	}
	return lg;
}

long long
lg_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

size_t
lg_replies_since(struct loadgen *lg, long long since_us)
{
	size_t n = 0;
	pthread_mutex_lock(&lg->mu);
	for (size_t i = 0; i < lg->nreqs; i++)
		n += lg->reqs[i].sent_us >= since_us && lg->reqs[i].replied_us > 0;
	pthread_mutex_unlock(&lg->mu);
	return n;
}

bool
lg_wait(struct loadgen *lg, long long since_us, size_t n, int timeout_ms)
{
	long long end = arb_now_ms() + timeout_ms;
	size_t got;
	while ((got = lg_replies_since(lg, since_us)) < n) {
		if (arb_now_ms() >= end) {
			fprintf(stderr, "loadgen: %zu of %zu replies after %d ms\n",
			    got, n, timeout_ms);
			return false;
		}
		arb_sleep_ms(WAIT_POLL_MS);
	}
	return true;
}

void
lg_stop(struct loadgen *lg)
{
	if (lg == NULL || lg->joined)
		return;
	atomic_store(&lg->stop, true);
	for (unsigned i = 0; i < lg->nclients; i++) {
		struct lg_client *cl = &lg->clients[i];
		pthread_join(cl->thread, NULL);
		if (cl->fd >= 0)
			close(cl->fd);
		cl->fd = -1;
		buf_release(&cl->in);
	}
	lg->joined = true;
}

size_t
lg_nreqs(const struct loadgen *lg)
{
	return lg->nreqs;
}

const struct lg_req *
lg_req(const struct loadgen *lg, size_t i)
{
	return i < lg->nreqs ? &lg->reqs[i] : NULL;
}

void
lg_free(struct loadgen *lg)
{
	if (lg == NULL)
		return;
	atomic_store(&lg->abort, true);
	lg_stop(lg);
	pthread_mutex_destroy(&lg->mu);
	free(lg->reqs);
	free(lg->sock);
	free(lg);
}
