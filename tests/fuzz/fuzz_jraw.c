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
 * jraw_put_indented lays out any input without a fault, and a value
 * jansson reads from the input it reads equal from the layout.
 *
 * Input: the bytes to scan, as they are. */
#include <jansson.h>
#include <string.h>

#include "proto/buf.h"
#include "proto/jraw.h"
#include "tests/fuzz/fuzz.h"

#define DIFFER_CHECK(cond, p, n)	FUZZ_CHECK(cond)
#include "tests/jraw_differ.h"

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

static void
indent(const char *p, size_t n)
{
	struct buf b;
	json_error_t err;
	buf_init(&b);
	jraw_put_indented(&b, p, n, 2);
	json_t *j = json_loadb(p, n, JSON_DECODE_ANY, &err);
	if (j != NULL) {
		json_t *back = json_loadb(b.data, b.len, JSON_DECODE_ANY, &err);
		FUZZ_CHECK(back != NULL && json_equal(back, j));
		json_decref(back);
	}
	json_decref(j);
	buf_release(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	differ(p, size);
	indent(p, size);
	json_t *s = json_stringn(p, size);	/* NULL unless valid UTF-8 */
	if (s != NULL)
		put_str(p, size, s);
	json_decref(s);
	return 0;
}
