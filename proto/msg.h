/* msg: the JSON messages of the worker protocol (SPEC 5) and the control
 * protocol (SPEC 6): request ids, replies, error codes. Every function that
 * returns json_t * returns a new reference. */
#ifndef ARBOR_MSG_H
#define ARBOR_MSG_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "proto/buf.h"

/* Control protocol error codes (SPEC 6). */
enum msg_code {
	ERR_BAD_REQUEST,
	ERR_UNKNOWN_OP,
	ERR_NOT_FOUND,
	ERR_PERMISSION_DENIED,
	ERR_FRAME_TOO_LARGE,
	ERR_BRIDGE_DISABLED,
	ERR_POOL_TIMEOUT,
	ERR_OVERLOADED,
	ERR_WORKER_ERROR,
	ERR_WORKER_CRASHED,
	ERR_TIMEOUT,
	ERR_SHUTTING_DOWN,
	ERR_CONFIG_ERROR,
	ERR__COUNT
};

const char *msg_code_name(enum msg_code);

/* Worker protocol. */
json_t	*msg_worker_request(json_int_t id, const char *command, json_t *args,
	    const char *session_id);	/* steals args (may be NULL) */
json_t	*msg_worker_ok(json_t *id, json_t *result);	/* steals result, borrows id */
json_t	*msg_worker_err(json_t *id, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));	/* borrows id */

/* Control protocol. id is borrowed (may be NULL: the reply carries null). */
json_t	*msg_ok(json_t *id);
json_t	*msg_error(json_t *id, enum msg_code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* The compact JSON text of any value, in memory from malloc (free()).
 * Unlike json_dumps, whose memory comes from jansson's allocator. */
char	*msg_text(const json_t *);
/* Appends the compact text of reply (borrowed), made by msg_ok or
 * msg_error with a NULL id, to out with that null id replaced by the JSON
 * text id[0..n): a client's id goes back exactly as the client wrote it
 * (SPEC 6), which jansson's reading and writing need not keep. */
void	msg_put_with_id(struct buf *out, const json_t *reply, const char *id,
	    size_t n);

/* Typed field access on a request object; all borrow. */
const char *msg_str(const json_t *obj, const char *key);	/* NULL if absent or not a string */
bool	msg_int(const json_t *obj, const char *key, json_int_t *out);	/* false if absent or wrong type */

#endif
