/* worker: a small library for writing arbor workers in C (SPEC 5).
 *
 * A worker registers one handler per command name, then calls worker_run(),
 * which reads request frames on stdin one at a time, dispatches them and
 * writes one reply frame per request on stdout:
 *
 *	{"id": <request id>, "success": true,  "result": <handler result>}
 *	{"id": <request id>, "success": false, "error": "<message>"}
 *
 * The library answers `ping` itself ({"pong": true, "worker_id": <name>,
 * "pid": <pid>}, the name being remembered from the init ping's
 * args.worker_id, null before) and `shutdown` ({"shutting_down": true},
 * then worker_run() returns 0); a handler registered for either name
 * replaces the built-in reply, but worker_id is still remembered and
 * worker_run() still returns after a shutdown. An unknown command gets the
 * error "unknown command: <name>". A reply larger than the maximum frame
 * size is replaced by an error reply (a handler that means to send one
 * anyway writes it with worker_write_json() and returns worker_no_reply()).
 *
 * The protocol stream is private: worker_new() moves it to copies of fds 0
 * and 1, points fd 0 at /dev/null and fd 1 at stderr, so stray printf()
 * output (or a child process) ends up in the log that arbord keeps for the
 * worker instead of corrupting the frames.
 *
 *	static json_t *
 *	on_add(struct worker *w, json_t *args, const char *session_id)
 *	{
 *		json_int_t a, b;
 *		if (!msg_int(args, "a", &a) || !msg_int(args, "b", &b))
 *			return worker_fail(w, "a and b must be integers");
 *		return json_pack("{s:I}", "sum", a + b);
 *	}
 *
 *	int main(void)
 *	{
 *		struct worker *w = worker_new();
 *		worker_on(w, "add", on_add);
 *		int rc = worker_run(w);
 *		worker_free(w);
 *		return rc;
 *	}
 */
#ifndef ARBOR_WORKER_H
#define ARBOR_WORKER_H
#include <jansson.h>
#include <stddef.h>

/* Exit statuses worker_run() returns. */
#define WORKER_EXIT_OK		0	/* EOF on stdin, or shutdown */
#define WORKER_EXIT_IO		1	/* reading stdin or writing stdout failed */
#define WORKER_EXIT_PROTOCOL	2	/* a request that is not a JSON object, a
					 * truncated or oversized frame */

/* The largest frame, request or reply: ARBOR_MAX_FRAME_BYTES from the
 * environment when it is a positive integer, else this. A larger request
 * is a protocol error. */
#define WORKER_MAX_FRAME	(16u * 1024 * 1024)

struct worker;

/* A command handler. args is the request's "args" (borrowed; always an
 * object, empty when the request had none); session_id is the request's
 * session_id or NULL (borrowed). Returns the result (a new reference, which
 * the library steals), or NULL after worker_fail() (error reply) or
 * worker_no_reply() (the handler took the reply over). NULL without either
 * is reported as the error "<command>: handler failed". */
typedef json_t *(*worker_fn)(struct worker *, json_t *args,
    const char *session_id);

/* A raw handler, for commands whose result is built as text: the request
 * is not parsed and the reply not encoded, which saves most of a small
 * request's cost. args[0..len) is the request's "args" object as JSON
 * text, as it arrived ("{}" when the request had none); session_id as for
 * worker_fn. On success the handler points *result at the result's JSON
 * text, *result_len bytes that must stay valid until it returns to the
 * library and must be one valid JSON value (the library copies them into
 * the reply unchecked), and returns 0; otherwise it returns -1 after
 * worker_fail() or worker_no_reply(). Requests the library cannot take
 * as text (escapes in keys or in the session_id, among others) reach the
 * same handler once jansson has read them, with the args and the id still
 * as written (not as jansson would write them anew: a real such as 0.7
 * as 0.69999999999999996); its result, checked to be one JSON value
 * (else the error "<command>: handler returned invalid JSON"), is copied
 * into the reply as on the raw path. */
typedef int (*worker_raw_fn)(struct worker *, const char *args, size_t len,
    const char *session_id, const char **result, size_t *result_len);

/* Creates a worker speaking on stdin/stdout (see above about fds 0, 1). */
struct worker	*worker_new(void);
/* Frees the worker and its handlers; NULL is fine. */
void		 worker_free(struct worker *);
/* Registers fn for command (copied), replacing an earlier registration. */
void		 worker_on(struct worker *, const char *command, worker_fn fn);
/* The same for a raw handler. */
void		 worker_on_raw(struct worker *, const char *command,
		    worker_raw_fn fn);
/* Serves requests until EOF, shutdown or a fatal error (reported on
 * stderr); returns the exit status the process should exit with. */
int		 worker_run(struct worker *);

/* Caller data for handlers (borrowed; the library never touches it). */
void		 worker_set_data(struct worker *, void *);
void		*worker_data(const struct worker *);

/* Handler helpers, valid during a handler. worker_fail() sets the error
 * message of the reply (printf format) and returns NULL, so a handler can
 * `return worker_fail(w, ...)`. worker_no_reply() means the library
 * writes nothing for this request; it also returns NULL. */
json_t		*worker_fail(struct worker *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
json_t		*worker_no_reply(struct worker *);
/* The current request's "id" (borrowed; json null if it had none). */
json_t		*worker_request_id(struct worker *);
/* The command being handled (borrowed). */
const char	*worker_command(const struct worker *);

/* The name from the init ping's args.worker_id, or NULL (borrowed). */
const char	*worker_id(const struct worker *);
/* Requests received and error replies sent so far (the current request
 * included in requests). */
void		 worker_counts(const struct worker *, unsigned long *requests,
		    unsigned long *errors);
/* Zeroes both counts (the current request is no longer counted). */
void		 worker_reset_counts(struct worker *);

/* Raw output for handlers that take the reply over: writes bytes, or one
 * frame holding p[0..n), on the protocol stream. 0 or -1 (errno). */
int		 worker_write_raw(struct worker *, const void *p, size_t n);
int		 worker_write_frame(struct worker *, const void *p, size_t n);
/* Writes one frame holding the JSON j (borrowed). 0 or -1 (errno). */
int		 worker_write_json(struct worker *, const json_t *j);

#endif
