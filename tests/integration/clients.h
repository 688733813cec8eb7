/* clients: helpers for integration tests that route requests through a
 * real arbord (SPEC 6 `execute`, `stats`), and that keep many control
 * connections open at once: pipelining and concurrency are driven from one
 * thread that polls every connection (cl_pump), so a test needs no threads
 * and sees every reply exactly once.
 *
 * Failures to connect or send fail the running cmocka test (fail_msg);
 * a missing reply is the caller's to judge (NULL or a count). */
#ifndef ARBOR_TEST_CLIENTS_H
#define ARBOR_TEST_CLIENTS_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "tests/integration/harness.h"

struct cl_conn;		/* one control connection (opaque) */

/* ---- execute requests and replies ---- */

/* {"id": id, "op": "execute", "command": command, "args": args,
 * "session_id": session}: args is stolen (NULL: no args), session may be
 * NULL (no session_id), timeout_ms <= 0 leaves timeout_ms out. New
 * reference. */
json_t	*cl_exec_req(json_int_t id, const char *command, json_t *args,
	    const char *session, int timeout_ms);
/* One execute on a fresh connection (arb_call): the reply (new
 * reference) or NULL. args is stolen. */
json_t	*cl_exec(struct arb *, const char *command, json_t *args,
	    const char *session);
/* cl_exec that fails the test unless the reply is ok. */
json_t	*cl_exec_ok(struct arb *, const char *command, json_t *args,
	    const char *session);
/* An `echo` in session that must succeed: whether its reply carries
 * "session_reset": true. */
bool	cl_echo_reset(struct arb *, const char *session);
/* cl_exec that fails the test unless the reply is an error with code. */
json_t	*cl_exec_err(struct arb *, const char *command, json_t *args,
	    const char *session, const char *code);

/* Reply fields (borrowed; NULL or -1 when absent). */
const char *cl_reply_worker(const json_t *reply);	/* "worker" */
const char *cl_reply_message(const json_t *reply);	/* error.message */
json_int_t cl_reply_id(const json_t *reply);		/* "id", -1 if not an integer */
bool	cl_reply_reset(const json_t *reply);		/* "session_reset": true */
/* A one-line description of a reply for failure messages (caller frees). */
char	*cl_describe(const json_t *reply);
/* True if code is one of the error codes SPEC 6 lists. */
bool	cl_is_spec_code(const char *code);

/* ---- stats and tree ---- */

/* The `stats` object (new reference); fails the test if the op fails. */
json_t	*cl_stats(struct arb *);
/* One integer field of `stats`; -1 if absent. */
json_int_t cl_stat(struct arb *, const char *key);
/* Polls `stats` until lo <= key <= hi; false on timeout (printing the
 * last stats). */
bool	cl_wait_stat(struct arb *, const char *key, json_int_t lo,
	    json_int_t hi, int timeout_ms);
/* The pid of the worker node name in the current tree; 0 if none. */
json_int_t cl_worker_pid(struct arb *, const char *name);
/* A held request: a mock_worker `sleep` that the test ends when it
 * chooses (cl_release), CL_HOLD_MS only bounding it, below the default
 * request_timeout_ms (30 s) so that it ends as a sleep, not a timeout. */
#define CL_HOLD_MS	25000
/* {"ms": ms, "until_usr1": true}: the args of such a sleep (new
 * reference). */
json_t	*cl_hold_args(int ms);
/* Ends the `sleep` with "until_usr1" that worker name runs (mock_worker):
 * waits until the sleep has begun (SIGUSR1 caught), then sends SIGUSR1;
 * fails the test if the worker is gone or never gets that far. */
void	cl_release(struct arb *, const char *name);

/* ---- connections ---- */

/* Connects to arbord's control socket; fails the test on error. */
struct cl_conn *cl_open(struct arb *);
void	cl_close(struct cl_conn *);		/* NULL is fine */
/* Sends execute command (args stolen; session may be NULL) with id on a
 * new connection, then waits until the stat key reads n (a request held
 * "busy" or "waiting"); fails the test if it never does. The connection,
 * for the reply. */
struct cl_conn *cl_send_held(struct arb *, json_int_t id, const char *command,
	    json_t *args, const char *session, const char *key, json_int_t n);
/* Sends one frame (req borrowed); fails the test on error. */
void	cl_send(struct cl_conn *, const json_t *req);
/* Sends every request of the array reqs (borrowed) in one write, so that
 * arbord reads them together. */
void	cl_send_batch(struct cl_conn *, const json_t *reqs);
/* The next reply on this connection (new reference), or NULL on timeout,
 * EOF or a malformed frame. */
json_t	*cl_recv(struct cl_conn *, int timeout_ms);
/* The same, failing the test ("what: the reply") unless it is a success. */
json_t	*cl_recv_ok(struct cl_conn *, int timeout_ms, const char *what);
/* True once the connection saw EOF. */
bool	cl_eof(const struct cl_conn *);
/* Fails the test unless the next replies are ok ones with ids first..last,
 * in that order, each within timeout_ms. */
void	cl_expect_ok_in_order(struct cl_conn *, json_int_t first,
	    json_int_t last, int timeout_ms);

/* Called by cl_pump for each reply: the index of its connection and the
 * reply (borrowed; valid during the call). It may send more requests. */
typedef void cl_reply_fn(size_t conn, json_t *reply, void *ctx);
/* Waits up to wait_ms for replies on any of conns[0..n) (NULL entries are
 * skipped), then hands every whole reply frame that has arrived to fn.
 * Returns how many it handed over; -1 if every connection has reached EOF.
 * A malformed frame fails the test. */
int	cl_pump(struct cl_conn **conns, size_t n, int wait_ms,
	    cl_reply_fn *fn, void *ctx);

#endif
