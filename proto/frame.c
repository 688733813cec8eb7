#include "proto/frame.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

enum frame_status
frame_peek(const struct buf *in, size_t max, const char **payload, size_t *len)
{
	size_t avail = buf_used(in);
	if (avail < FRAME_HDR)
		return FRAME_MORE;
	size_t n = get_be32((const unsigned char *)buf_head(in));
	*len = n;
	if (n > max)
		return FRAME_TOO_LARGE;
	if (avail - FRAME_HDR < n)
		return FRAME_MORE;
	*payload = buf_head(in) + FRAME_HDR;
	return FRAME_OK;
}

void
frame_done(struct buf *in, size_t len)
{
	buf_consume(in, FRAME_HDR + len);
}

void
frame_put(struct buf *out, const char *p, size_t n)
{
	buf_reserve(out, FRAME_HDR + n);
	put_be32((unsigned char *)buf_tail(out), (uint32_t)n);
	if (n > 0)	/* p may be NULL for an empty frame */
		memcpy(buf_tail(out) + FRAME_HDR, p, n);
	out->len += FRAME_HDR + n;
}

size_t
frame_open(struct buf *out)
{
	size_t at = buf_used(out);	/* from the head: reserve may slide it */
	buf_reserve(out, FRAME_HDR);
	out->len += FRAME_HDR;
	return at;
}

void
frame_close(struct buf *out, size_t at)
{
	size_t n = buf_used(out) - at - FRAME_HDR;
	put_be32((unsigned char *)buf_head(out) + at, (uint32_t)n);
}

/* Encodes straight into the buffer's tail: no intermediate string, and
 * one encoding pass when the free room is enough (the usual case). */
size_t
frame_put_json(struct buf *out, const json_t *j)
{
	buf_reserve(out, FRAME_HDR + 256);
	size_t room = out->cap - out->len - FRAME_HDR;
	size_t n = json_dumpb(j, buf_tail(out) + FRAME_HDR, room, JSON_COMPACT);
	if (n > room) {
		buf_reserve(out, FRAME_HDR + n);
		n = json_dumpb(j, buf_tail(out) + FRAME_HDR, n, JSON_COMPACT);
	}
	put_be32((unsigned char *)buf_tail(out), (uint32_t)n);
	out->len += FRAME_HDR + n;
	return n;
}

json_t *
frame_parse(const char *payload, size_t len, json_error_t *err)
{
	json_error_t e;
	json_t *j = json_loadb(payload, len, JSON_REJECT_DUPLICATES, err ? err : &e);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		if (err)
			snprintf(err->text, sizeof err->text, "not a JSON object");
		return NULL;
	}
	return j;
}

#define EXACT_MAX	9007199254740992.0	/* 2^53: doubles hold each integer */

/* A whole number read as a real, given back as an integer. Steals id. */
static json_t *
whole_id(json_t *id)
{
	double v = json_real_value(id);
	if (!json_is_real(id) || v <= -EXACT_MAX || v >= EXACT_MAX ||
	    v != (double)(json_int_t)v)
		return id;
	json_decref(id);
	return json_integer((json_int_t)v);
}

/* An id a reply can carry back to a client whose parser is as strict as
 * ours: a number, a literal or a string without a NUL (which jansson
 * refuses unless told otherwise); not a container, which may hold one. */
static bool
scalar_id(const json_t *id)
{
	if (json_is_string(id))
		return strlen(json_string_value(id)) == json_string_length(id);
	return id != NULL && !json_is_object(id) && !json_is_array(id);
}

json_t *
frame_parse_id(const char *payload, size_t len)
{
	json_t *req = json_loadb(payload, len, JSON_ALLOW_NUL, NULL);
	json_t *id;
	if (req) {
		id = json_incref(json_object_get(req, "id"));
	} else {
		req = json_loadb(payload, len,
		    JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
		id = whole_id(json_incref(json_object_get(req, "id")));
	}
	json_decref(req);
	if (!scalar_id(id)) {
		json_decref(id);
		return NULL;
	}
	return id;
}

/* ---- the id's text, in JSON that jansson has read ---- */

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* The closing quote of the string whose opening quote is at p. */
static const char *
string_end(const char *p, const char *end)
{
	for (p++; p < end && *p != '"'; p++)
		if (*p == '\\')
			p++;
	return p < end ? p : end;
}

/* The comma or brace that ends the member value at p: strings skipped,
 * brackets counted. */
static const char *
value_end(const char *p, const char *end)
{
	int depth = 0;
	for (; p < end; p++) {
		if (*p == '"')
			p = string_end(p, end);
		else if (*p == '{' || *p == '[')
			depth++;
		else if ((*p == '}' || *p == ']') && depth-- == 0)
			return p;
		else if (*p == ',' && depth == 0)
			return p;
		if (p == end)
			break;
	}
	return end;
}

/* Whether the key k[0..n) (between its quotes) is name (ASCII), escaped
 * or not (at most 6 bytes a letter: \u0069). */
static bool
key_is(const char *k, size_t n, const char *name)
{
	size_t len = strlen(name);
	if (memchr(k, '\\', n) == NULL)
		return n == len && memcmp(k, name, len) == 0;
	if (n > 6 * len)
		return false;
	json_t *key = json_loadb(k - 1, n + 2, JSON_DECODE_ANY |
	    JSON_ALLOW_NUL, NULL);
	bool is = json_string_length(key) == len &&
	    memcmp(json_string_value(key), name, len) == 0;
	json_decref(key);
	return is;
}

bool
frame_id_text(const char *payload, size_t len, const char **text, size_t *n)
{
	return frame_member_text(payload, len, "id", text, n);
}

bool
frame_member_text(const char *payload, size_t len, const char *name,
    const char **text, size_t *n)
{
	const char *p = skip_ws(payload, payload + len), *end = payload + len;
	bool found = false;
	if (p == end || *p++ != '{')
		return false;
	while ((p = skip_ws(p, end)) < end && *p == '"') {
		const char *key = p + 1, *key_end = string_end(p, end);
		if (key_end == end)
			return false;
		p = skip_ws(key_end + 1, end);
		if (p == end || *p != ':')
			return false;
		const char *v = skip_ws(p + 1, end);
		p = value_end(v, end);
		if (key_is(key, (size_t)(key_end - key), name)) {
			const char *e = p;
			while (e > v && strchr(" \t\n\r", e[-1]))
				e--;
			*text = v;		/* the last one, as jansson keeps */
			*n = (size_t)(e - v);
			found = *n > 0;
		}
		if (p == end || *p++ != ',')
			break;
	}
	return found;
}

int
frame_read_blocking(int fd, struct buf *in, size_t max, const char **payload,
    size_t *len)
{
	for (;;) {
		switch (frame_peek(in, max, payload, len)) {
		case FRAME_OK:
			return 1;
		case FRAME_TOO_LARGE:
			errno = EMSGSIZE;
			return -1;
		case FRAME_MORE:
			break;
		}
		ssize_t n = buf_read_fd(in, fd);
		if (n == 0)
			return buf_used(in) ? (errno = EPROTO, -1) : 0;
		if (n < 0)
			return -1;
	}
}

/* The header and the payload in one writev, so that a reader blocked on
 * the pipe is woken once per frame; continued after a partial write. */
int
frame_write_blocking(int fd, const char *p, size_t n)
{
	unsigned char hdr[FRAME_HDR];
	put_be32(hdr, (uint32_t)n);
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = FRAME_HDR },
		{ .iov_base = (void *)p, .iov_len = n },
	};
	struct iovec *v = iov;
	int cnt = 2;
	while (cnt > 0) {
		ssize_t w = writev(fd, v, cnt);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		while (cnt > 0 && (size_t)w >= v->iov_len) {
			w -= (ssize_t)v->iov_len;
			v++;
			cnt--;
		}
		if (cnt > 0) {
			v->iov_base = (char *)v->iov_base + w;
			v->iov_len -= (size_t)w;
		}
	}
	return 0;
}
