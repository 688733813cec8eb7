/* jraw: JSON kept as raw text on the request path. A request's args and a
 * worker's result are forwarded byte for byte instead of being parsed into
 * jansson values and encoded again, which was most of arbord's user-space
 * time per request.
 *
 * The scanner is conservative: it answers for the common case and leaves
 * everything else to jansson. jraw_object() returns members only when
 * jansson (json_loadb with JSON_REJECT_DUPLICATES, as frame_parse uses it)
 * would accept the same bytes as an object; for anything it does not
 * decide itself (invalid JSON, but also escapes in keys, "\u0000", lone
 * surrogates, integers of more than 18 digits, exponents of more than two
 * digits, nesting deeper than JRAW_MAX_DEPTH, objects with more than
 * JRAW_MAX_KEYS keys at a level below the top) it returns -1 and the caller
 * takes the jansson path, which gives the authoritative answer. */
#ifndef ARBOR_JRAW_H
#define ARBOR_JRAW_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/buf.h"

#define JRAW_MAX_DEPTH	64
#define JRAW_MAX_KEYS	32	/* per nested object (duplicate check) */

enum jraw_type {
	JRAW_OBJECT,
	JRAW_ARRAY,
	JRAW_STRING,
	JRAW_INT,	/* no fraction, no exponent, at most 18 digits */
	JRAW_REAL,
	JRAW_TRUE,
	JRAW_FALSE,
	JRAW_NULL,
};

/* One top-level member. All pointers borrow the scanned text. */
struct jraw_member {
	const char	*key;		/* without quotes; never has escapes */
	size_t		 key_len;
	const char	*val;		/* the value's text (strings with quotes) */
	size_t		 val_len;
	enum jraw_type	 type;
	bool		 escaped;	/* JRAW_STRING holding a backslash escape */
};

/* Scans p[0..n) as one JSON object, whitespace around it allowed. On
 * success, fills m[0..k) with its top-level members in order and returns
 * k (duplicated top-level keys are refused, as by jansson). Returns -1
 * when the text is not such an object, has more than max top-level
 * members, or is outside what the scanner decides (see above). */
int	jraw_object(const char *p, size_t n, struct jraw_member *m, int max);

/* Splits p[0..n), an object that jansson has read (valid JSON), into its
 * top-level members as jraw_object() does, but without its limits (depth,
 * nested keys, digits) or checks: for the text jraw_object() leaves to
 * jansson, once jansson has accepted it. A key is as written (it may hold
 * escapes); a number of at most 18 digits without fraction or exponent is
 * JRAW_INT, any other JRAW_REAL. Returns k, or -1 for more than max
 * members or text that is not an object. */
int	jraw_split(const char *p, size_t n, struct jraw_member *m, int max);

/* The member named key[0..n), or NULL; jraw_get for a NUL-terminated key
 * (inline, so that a literal's length is known at compile time). */
static inline const struct jraw_member *
jraw_getn(const struct jraw_member *m, int k, const char *key, size_t n)
{
	for (int i = 0; i < k; i++)
		if (m[i].key_len == n && memcmp(m[i].key, key, n) == 0)
			return &m[i];
	return NULL;
}
static inline const struct jraw_member *
jraw_get(const struct jraw_member *m, int k, const char *key)
{
	return jraw_getn(m, k, key, strlen(key));
}
/* A JRAW_INT member's value. false for any other type or NULL (so that
 * jraw_get's answer can be passed straight in). */
bool	jraw_int(const struct jraw_member *, int64_t *out);
/* An unescaped JRAW_STRING's contents (without quotes), borrowed. false
 * for other types, a string with escapes, or NULL. */
bool	jraw_str(const struct jraw_member *, const char **s, size_t *n);

/* The length of the valid UTF-8 sequence (RFC 3629) at the start of
 * s[0..n), n > 0: 1 for an ASCII byte, 0 when none starts there. */
size_t	jraw_utf8_len(const char *s, size_t n);
/* Appends s[0..n) to out with each byte that starts no valid UTF-8
 * sequence replaced by U+FFFD: a text that keeps what it says as UTF-8. */
void	jraw_put_valid_utf8(struct buf *out, const char *s, size_t n);

/* Writers: append to out. */
/* s[0..n) (valid UTF-8) as a JSON string, quoted and escaped. */
void	jraw_put_str(struct buf *out, const char *s, size_t n);
/* The bytes jraw_put_str appends for s, quotes included. */
size_t	jraw_str_size(const char *s, size_t n);
/* A literal, e.g. jraw_put(out, "{\"ok\":true") (inline, so that a
 * literal's length is known at compile time). */
static inline void
jraw_put(struct buf *out, const char *lit)
{
	buf_append(out, lit, strlen(lit));
}
/* A signed integer in decimal. */
void	jraw_put_int(struct buf *out, int64_t v);
/* The JSON value p[0..n) (valid JSON, compact or not) laid out as
 * jansson's JSON_INDENT(step) lays it out: one member or element per
 * line, `"key": value`, empty containers as {} and []. Strings are copied
 * as they are, so the text equals jansson's when their escapes are the
 * ones jansson writes. Text that is not valid JSON gives some layout of
 * its bytes, never more than the input and its indentation. */
void	jraw_put_indented(struct buf *out, const char *p, size_t n, int step);

#endif
