/* loadgen: a steady request load on a real arbord, from background
 * threads, for tests that change the tree underneath it (reload, resize).
 *
 * Each client is one thread with its own control connection that keeps
 * exactly one `execute` outstanding, alternately `sleep` {"ms": 20..50}
 * and `echo` {"client", "n"}, starting at most one request per
 * LG_PACE_MS. Every request is recorded with the times it was sent and
 * answered and its outcome, so that a test can judge each one against the
 * moments it changed the tree.
 *
 * The threads never call cmocka (its failures are not thread-safe) and
 * never touch the struct arb (they keep a copy of the socket path): they
 * only record. A request that gets no reply ends its client.
 *
 * Usage: lg_start(), lg_wait() for enough replies, change the tree,
 * lg_wait() again, lg_stop(), then read the records; lg_free() in the
 * test's teardown too, so that a failed test stops its threads. */
#ifndef ARBOR_TEST_LOADGEN_H
#define ARBOR_TEST_LOADGEN_H
#include <stdbool.h>
#include <stddef.h>

#include "tests/integration/harness.h"

#define LG_PACE_MS	10	/* a client starts at most one request per this */
#define LG_REPLY_MS	30000	/* a request without a reply by then failed */

/* Outcomes that are not a reply's error code. */
#define LG_OK		""		/* ok, with the right result */
#define LG_NO_REPLY	"(no reply)"	/* timeout, EOF or a send error */
#define LG_BAD_REPLY	"(bad reply)"	/* wrong id, or ok with a wrong result */

struct loadgen;		/* opaque */

/* One request and its outcome. Times are lg_now_us(): microseconds, so
 * that a request can be ordered against a reply that came in the same
 * millisecond. */
struct lg_req {
	long long	sent_us;	/* just before it was sent */
	long long	replied_us;	/* just after its reply came; 0: none */
	char		code[32];	/* LG_OK, an error code, LG_NO_REPLY, ... */
	unsigned	client;		/* which client sent it */
};

/* Starts nclients client threads against arbord's socket (a connection
 * that fails is recorded as one LG_NO_REPLY request). Free with
 * lg_free(). */
struct loadgen *lg_start(struct arb *, unsigned nclients);
/* The monotonic clock of the records, in microseconds. */
long long lg_now_us(void);
/* Replies received so far to requests sent at or after since_us. */
size_t	lg_replies_since(struct loadgen *, long long since_us);
/* Polls until lg_replies_since(since_us) >= n: true, or false after
 * timeout_ms (printing the count). */
bool	lg_wait(struct loadgen *, long long since_us, size_t n, int timeout_ms);
/* Sends no new request, lets each client have the reply it waits for (up
 * to LG_REPLY_MS) and joins the threads. Idempotent. */
void	lg_stop(struct loadgen *);
/* The records, once stopped: lg_req(lg, i) for i < lg_nreqs(lg)
 * (borrowed, valid until lg_free). */
size_t	lg_nreqs(const struct loadgen *);
const struct lg_req *lg_req(const struct loadgen *, size_t i);
/* Aborts the clients if still running (no waiting for replies), joins
 * them and frees everything; NULL is fine. */
void	lg_free(struct loadgen *);

#endif
