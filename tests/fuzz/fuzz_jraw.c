/* Fuzzes proto/jraw against jansson. Whatever jraw_object accepts,
 * json_loadb with JSON_REJECT_DUPLICATES (as frame_parse calls it) must
 * accept as an object of the same members, in order, each value's text
 * decoding to jansson's value for that key, with the type jraw gave it.
 * Refusing is always allowed: the caller then asks jansson.
 *
 * The input, when it is valid UTF-8, is also written with jraw_put_str:
 * it must read back through jansson as itself, and the scanner must accept
 * it as a member's value unless it holds a NUL (which the scanner leaves
 * to jansson).
 *
 * Input: the bytes to scan, as they are. */
#include <jansson.h>
#include <string.h>

#include "proto/buf.h"
#include "proto/jraw.h"
#include "tests/fuzz/fuzz.h"

#define MAXM	64

static enum jraw_type
type_of(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return JRAW_OBJECT;
	case JSON_ARRAY:
		return JRAW_ARRAY;
	case JSON_STRING:
		return JRAW_STRING;
	case JSON_INTEGER:
		return JRAW_INT;
	case JSON_REAL:
		return JRAW_REAL;
	case JSON_TRUE:
		return JRAW_TRUE;
	case JSON_FALSE:
		return JRAW_FALSE;
	default:
		return JRAW_NULL;
	}
}

/* The spans of e lie in p[0..n), the key between its quotes. */
static void
check_spans(const struct jraw_member *e, const char *p, size_t n)
{
	FUZZ_CHECK(e->key > p && e->key + e->key_len < p + n);
	FUZZ_CHECK(e->key[-1] == '"' && e->key[e->key_len] == '"');
	FUZZ_CHECK(memchr(e->key, '\\', e->key_len) == NULL);
	FUZZ_CHECK(e->val > e->key + e->key_len && e->val_len > 0);
	FUZZ_CHECK(e->val + e->val_len <= p + n);
}

/* The member e agrees with want, jansson's value for its key. */
static void
check_member(const struct jraw_member *e, const json_t *want)
{
	json_error_t err;
	const char *s;
	size_t len;
	int64_t v;
	json_t *got = json_loadb(e->val, e->val_len,
	    JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
	FUZZ_CHECK(got != NULL && json_equal(got, want));
	json_decref(got);
	FUZZ_CHECK(e->type == type_of(want));
	bool bs = memchr(e->val, '\\', e->val_len) != NULL;
	FUZZ_CHECK(e->escaped == (e->type == JRAW_STRING && bs));
	if (jraw_str(e, &s, &len))
		FUZZ_CHECK(len == json_string_length(want) &&
		    memcmp(s, json_string_value(want), len) == 0);
	if (jraw_int(e, &v))
		FUZZ_CHECK(v == json_integer_value(want));
}

/* The differential property on p[0..n); returns jraw's answer. */
static int
differ(const char *p, size_t n)
{
	struct jraw_member m[MAXM];
	json_error_t err;
	const char *key;
	json_t *val;
	int i = 0;
	int k = jraw_object(p, n, m, MAXM);
	if (k < 0)
		return k;
	json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &err);
	FUZZ_CHECK(o != NULL && json_is_object(o));
	FUZZ_CHECK(json_object_size(o) == (size_t)k);
	json_object_foreach(o, key, val) {
		FUZZ_CHECK(strlen(key) == m[i].key_len &&
		    memcmp(key, m[i].key, m[i].key_len) == 0);
		check_spans(&m[i], p, n);
		check_member(&m[i], val);
		i++;
	}
	json_decref(o);
	/* max bounds the members, and only that */
	FUZZ_CHECK(jraw_object(p, n, m, k) == k);
	if (k > 0)
		FUZZ_CHECK(jraw_object(p, n, m, k - 1) == -1);
	return k;
}

/* s[0..n) (valid UTF-8) written as a string reads back as itself. */
static void
put_str(const char *s, size_t n, const json_t *want)
{
	struct buf b;
	json_error_t err;
	struct jraw_member m[1];
	buf_init(&b);
	jraw_put(&b, "{\"k\":");
	size_t at = b.len;
	jraw_put_str(&b, s, n);
	size_t len = b.len - at;
	jraw_put(&b, "}");
	json_t *back = json_loadb(b.data + at, len,
	    JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
	FUZZ_CHECK(back != NULL && json_equal(back, want));
	json_decref(back);
	int k = differ(b.data, b.len);
	FUZZ_CHECK(k == (memchr(s, 0, n) ? -1 : 1));
	if (k == 1) {
		FUZZ_CHECK(jraw_object(b.data, b.len, m, 1) == 1);
		FUZZ_CHECK(m[0].val == b.data + at && m[0].val_len == len);
	}
	buf_release(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	differ(p, size);
	json_t *s = json_stringn(p, size);	/* NULL unless valid UTF-8 */
	if (s != NULL)
		put_str(p, size, s);
	json_decref(s);
	return 0;
}
