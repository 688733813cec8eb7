/* frame: the wire framing of arbor (SPEC 5): a 4-byte big-endian length,
 * then that many bytes of UTF-8 JSON. The decoder works on a struct buf
 * filled by reads of any size: partial frames wait, several frames per read
 * come out one by one. */
#ifndef ARBOR_FRAME_H
#define ARBOR_FRAME_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"

#define FRAME_HDR	4

enum frame_status {
	FRAME_OK = 1,		/* payload and len describe one whole frame */
	FRAME_MORE = 0,		/* not a whole frame yet: read more */
	FRAME_TOO_LARGE = -1,	/* the announced length exceeds max */
};

/* Looks for one whole frame at the head of in. On FRAME_OK the payload
 * points into in (borrowed) until frame_done() consumes it. On
 * FRAME_TOO_LARGE, *len holds the announced length. */
enum frame_status frame_peek(const struct buf *in, size_t max,
    const char **payload, size_t *len);
/* Consumes the frame returned by the last frame_peek(). */
void	frame_done(struct buf *in, size_t len);

/* Appends one frame holding p[0..n) to out. */
void	frame_put(struct buf *out, const char *p, size_t n);
/* Appends one frame holding the compact JSON encoding of j (borrowed).
 * Returns the payload size. */
size_t	frame_put_json(struct buf *out, const json_t *j);

/* Builds a frame in place: frame_open appends a header to fill in and
 * returns where it is; the payload is appended to out after it; then
 * frame_close sets the length. Nothing may consume out in between. */
size_t	frame_open(struct buf *out);
void	frame_close(struct buf *out, size_t at);

/* Parses one frame's payload as a JSON object. NULL on invalid JSON or a
 * non-object, with a reason in err (may be NULL). New reference. */
json_t	*frame_parse(const char *payload, size_t len, json_error_t *err);
/* The "id" of a payload frame_parse refuses, read leniently: well-formed
 * JSON may hold a "\u0000", a repeated key or an integer beyond 64 bits,
 * and its error reply still carries its id. An id read past such an
 * integer, where every number is a real, is an integer again when whole.
 * New reference, or NULL when there is none to read, or it is a container
 * or a string holding a NUL (a strict client could not read it back). */
json_t	*frame_parse_id(const char *payload, size_t len);
/* The text of the top-level "id" member's value (the last one, as jansson
 * keeps it; its key may be escaped) in payload, which must be JSON that
 * jansson reads: borrowed; false when there is none. What a reply
 * carries back: jansson's reading need not keep the id as written (a
 * number's form, a string's escapes, an integer read as a double). */
bool	frame_id_text(const char *payload, size_t len, const char **text,
	    size_t *n);
/* The same for the top-level member name (ASCII): an execute's "args" as
 * the client wrote it, which jansson would write anew (a real such as 0.7
 * as 0.69999999999999996). */
bool	frame_member_text(const char *payload, size_t len, const char *name,
	    const char **text, size_t *n);

/* Blocking helpers for simple peers (workers, tools, tests): read or write
 * exactly one frame on fd. frame_read_blocking returns 1 on a frame (as
 * frame_peek: the caller calls frame_done when finished with it), 0 on a
 * clean EOF, -1 on error, EOF inside a frame (EPROTO) or oversize
 * (EMSGSIZE). */
int	frame_read_blocking(int fd, struct buf *in, size_t max,
    const char **payload, size_t *len);
int	frame_write_blocking(int fd, const char *p, size_t n);

#endif
