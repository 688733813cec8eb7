/* Unit tests for proto/jraw: the raw JSON scanner must accept the common
 * request, and whatever it accepts jansson must accept as the same object
 * (json_loadb with JSON_REJECT_DUPLICATES, as frame_parse calls it). */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "proto/buf.h"
#include "proto/jraw.h"


static const char request[] =
    "{\"id\":7,\"op\":\"execute\",\"command\":\"echo\",\"args\":{\"question\":"
    "\"What?\",\"top_p\":0.75,\"n\":[1,2,{\"a\":null}]},\"session_id\":\"s-1\","
    "\"timeout_ms\":500}";

/* Prints p[0..n) with the bytes outside printable ASCII escaped. */
static void
show(const char *why, const char *p, size_t n)
{
	fprintf(stderr, "%s, input (%zu bytes): \"", why, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			fputc(c, stderr);
		else
			fprintf(stderr, "\\x%02x", c);
	}
	fprintf(stderr, "\"\n");
}

/* A failed check on the input p[0..n): names both before failing. */
#define CHECK(cond, p, n) do {						\
	if (!(cond)) {							\
		show("check failed: " #cond, (p), (n));			\
		fail();							\
	}								\
} while (0)

#define DIFFER_CHECK(cond, p, n)	CHECK(cond, p, n)
#include "tests/jraw_differ.h"

#define MAXM	DIFFER_MAXM

/* Whether jansson (as frame_parse) takes p[0..n) as an object. */
static bool
jansson_ok(const char *p, size_t n)
{
	json_error_t err;
	json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &err);
	bool ok = o != NULL && json_is_object(o);
	json_decref(o);
	return ok;
}

/* For inputs inside the scanner's domain: the same answer as jansson. */
static void
same(const char *p, size_t n)
{
	int k = differ(p, n);
	CHECK((k >= 0) == jansson_ok(p, n), p, n);
}

/* Asserts that m[i] is key: val of type t. */
static void
expect(const struct jraw_member *m, int i, const char *key, const char *val,
    enum jraw_type t)
{
	assert_int_equal(m[i].key_len, strlen(key));
	assert_memory_equal(m[i].key, key, m[i].key_len);
	assert_int_equal(m[i].val_len, strlen(val));
	assert_memory_equal(m[i].val, val, m[i].val_len);
	assert_int_equal(m[i].type, t);
}

static void
expect_request(const char *p, size_t n)
{
	struct jraw_member m[8];
	assert_int_equal(differ(p, n), 6);
	assert_int_equal(jraw_object(p, n, m, 8), 6);
	expect(m, 0, "id", "7", JRAW_INT);
	expect(m, 1, "op", "\"execute\"", JRAW_STRING);
	expect(m, 2, "command", "\"echo\"", JRAW_STRING);
	expect(m, 3, "args", "{\"question\":\"What?\",\"top_p\":0.75,"
	    "\"n\":[1,2,{\"a\":null}]}", JRAW_OBJECT);
	expect(m, 4, "session_id", "\"s-1\"", JRAW_STRING);
	expect(m, 5, "timeout_ms", "500", JRAW_INT);
	for (int i = 0; i < 6; i++)
		assert_false(m[i].escaped);
}

static void
test_typical_request(void **state)
{
	expect_request(request, strlen(request));
}

/* The same request with every kind of whitespace wherever it may go. */
static void
test_whitespace(void **state)
{
	static const char ws[] =
	    " \t\r\n{ \"id\" :\t7 ,\n\"op\"\r:\"execute\",\"command\":\"echo\" ,"
	    "\"args\" : { \"question\" : \"What?\" , \"top_p\" :\n0.75 , \"n\" :"
	    " [ 1 , 2 , { \"a\" : null } ] } , \"session_id\":\"s-1\",\r\n"
	    "\"timeout_ms\":500\n}\n\t ";
	struct jraw_member m[8];
	assert_int_equal(differ(ws, strlen(ws)), 6);
	assert_int_equal(jraw_object(ws, strlen(ws), m, 8), 6);
	expect(m, 0, "id", "7", JRAW_INT);
	expect(m, 1, "op", "\"execute\"", JRAW_STRING);
	expect(m, 3, "args", "{ \"question\" : \"What?\" , \"top_p\" :\n0.75 ,"
	    " \"n\" : [ 1 , 2 , { \"a\" : null } ] }", JRAW_OBJECT);
	expect(m, 5, "timeout_ms", "500", JRAW_INT);
	assert_int_equal(differ("{ }", 3), 0);
	assert_int_equal(differ("\n{\"a\":[ ]}", 10), 1);
}

/* One table entry: want is the member count, or -1. */
struct tc {
	const char	*s;
	size_t		 n;
	int		 want;
};
#define OK(k, lit)	{ lit, sizeof lit - 1, k }
#define NO(lit)		{ lit, sizeof lit - 1, -1 }

/* Inputs jansson takes that the scanner must take too (the common case). */
static const struct tc common[] = {
	OK(0, "{}"), OK(1, "{\"a\":1}"), OK(1, "{\"a\":-1}"), OK(1, "{\"a\":0}"),
	OK(1, "{\"a\":-0}"), OK(1, "{\"a\":0.75}"), OK(1, "{\"a\":-1.5e10}"),
	OK(1, "{\"a\":1E+2}"), OK(1, "{\"a\":1e-2}"), OK(1, "{\"a\":2.5E-07}"),
	OK(1, "{\"a\":-0.0}"), OK(1, "{\"a\":1e99}"), OK(1, "{\"a\":-1E-99}"),
	OK(1, "{\"a\":123456789012345678}"),
	OK(1, "{\"a\":-999999999999999999}"),
	OK(3, "{\"a\":true,\"b\":false,\"c\":null}"),
	OK(1, "{\"a\":\"plain ascii text, with: punctuation! {[]}\"}"),
	OK(1, "{\"a\":\"café 日本\"}"), OK(1, "{\"a\":\"😀 ok\"}"),
	OK(1, "{\"a\":\"\\n\\\"\\\\\\/\\t\\b\\f\\r\"}"),
	OK(1, "{\"a\":\"\\u00e9\\u00E9\\u20AC\\uffff\\u0001\\u001f\"}"),
	OK(1, "{\"a\":\"line\\nbreak\"}"), OK(1, "{\"a\":\"\"}"),
	OK(1, "{\"\":1}"), OK(2, "{\"a\":\"\",\"\":\"\"}"),
	OK(1, "{\"a\":\"\x7f\"}"), OK(1, "{\"a\":[]}"), OK(1, "{\"a\":{}}"),
	OK(1, "{\"a\":[1,[2,[3,[]]]]}"), OK(1, "{\"a\":{\"b\":{\"c\":{}}}}"),
	OK(2, "{\"a\":{\"x\":1},\"b\":{\"x\":1}}"),
	OK(1, "{\"a\":{\"x\":{\"x\":1}}}"),
	OK(1, "{\"a\":[{\"x\":1,\"y\":2},{\"x\":2,\"y\":3},{\"y\":1,\"x\":0}]}"),
	OK(2, "{\"x\":{\"a\":1},\"a\":2}"),
	OK(1, "{\"a\":[\"\",\"x\",1,-2.5,true,false,null,{},[]]}"),
	OK(1, "{\"é\":\"clé non-ASCII\"}"),
	OK(2, "{\"ab\":1,\"a\":2}"), OK(2, "{\"a\":1,\"ab\":2}"),
	OK(1, "{\"a\":\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\"}"),
	OK(1, "{\"a\":\"\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"}"),
	OK(1, "{\"a\":\"0123456789abcdef0123456789\\\"abcdef\"}"),
};

/* Inputs the scanner must refuse: invalid JSON, not an object, or
 * outside what it decides. */
static const struct tc refused[] = {
	NO(""), NO(" "), NO("[]"), NO("[1]"), NO("1"), NO("\"a\""), NO("null"),
	NO("{"), NO("}"), NO("{\"a\"}"), NO("{\"a\":}"), NO("{\"a\":1,}"),
	NO("{,}"), NO("{\"a\":1 \"b\":2}"), NO("{\"a\" 1}"), NO("{a:1}"),
	NO("{'a':1}"), NO("{\"a\":1}x"), NO("{\"a\":1}{}"), NO("{\"a\":1}}"),
	NO("{\"a\":[1,]}"), NO("{\"a\":[,1]}"), NO("{\"a\":[1 2]}"),
	NO("{\"a\":{\"b\"}}"), NO("{\"a\":{\"b\":1,}}"), NO("{\"a\":[}"),
	NO("{\"a\":{]}"), NO("{\"a\":[1}"), NO("{\"a\":{\"b\":1]}"),
	NO("{\"a\":[[]}"), NO("{\"a\":{}"), NO("{\"a\":1,,\"b\":2}"),
	NO("{\"a\"::1}"), NO("{\"a\":1:2}"), NO("{\"a\":{1:2}}"),
	/* numbers */
	NO("{\"a\":01}"), NO("{\"a\":-}"), NO("{\"a\":-01}"), NO("{\"a\":1.}"),
	NO("{\"a\":.5}"), NO("{\"a\":1.e5}"), NO("{\"a\":1e}"),
	NO("{\"a\":1e+}"), NO("{\"a\":+1}"), NO("{\"a\":0x10}"),
	NO("{\"a\":1.5.3}"), NO("{\"a\":Infinity}"), NO("{\"a\":NaN}"),
	NO("{\"a\":-Infinity}"), NO("{\"a\":1e5.5}"), NO("{\"a\":--1}"),
	NO("{\"a\":1_000}"), NO("{\"a\":- 1}"), NO("{\"a\":00}"),
	NO("{\"a\":1234567890123456789}"), NO("{\"a\":-1234567890123456789}"),
	NO("{\"a\":9223372036854775808}"), NO("{\"a\":1e100}"),
	NO("{\"a\":1e-100}"), NO("{\"a\":1E+001}"), NO("{\"a\":1.5e999}"),
	/* literals */
	NO("{\"a\":tru}"), NO("{\"a\":True}"), NO("{\"a\":nul}"),
	NO("{\"a\":falsee}"), NO("{\"a\":nulll}"), NO("{\"a\":true1}"),
	NO("{\"a\":undefined}"), NO("{\"a\":t}"),
	/* strings */
	NO("{\"a\":\"\\x\"}"), NO("{\"a\":\"\\U0041\"}"), NO("{\"a\":\"\\u12\"}"),
	NO("{\"a\":\"\\u12G4\"}"), NO("{\"a\":\"\\u0000\"}"),
	NO("{\"a\":\"\\ud800\"}"), NO("{\"a\":\"\\uDFFF\"}"),
	NO("{\"a\":\"\\ud83d\\ude00\"}"), NO("{\"a\":\"abc}"),
	NO("{\"a\":\"abc\\\"}"), NO("{\"a\":\"\\"), NO("{\"a\":\"\\u"),
	NO("{\"a\":\"\\u00"), NO("{\"a\":\"a\x00\"}"), NO("{\"a\":\"\t\"}"),
	NO("{\"a\":\"\n\"}"), NO("{\"a\":\"\x1f\"}"), NO("{\"a\":'x'}"),
	NO("{\"a\":\"\\'\"}"), NO("{\"a\":\"\\a\"}"), NO("{\"a\":\"\\0\"}"),
	/* UTF-8 */
	NO("{\"a\":\"\xc0\x80\"}"), NO("{\"a\":\"\xc1\xbf\"}"),
	NO("{\"a\":\"\xe0\x80\x80\"}"), NO("{\"a\":\"\xe0\x9f\xbf\"}"),
	NO("{\"a\":\"\xed\xa0\x80\"}"), NO("{\"a\":\"\xed\xbf\xbf\"}"),
	NO("{\"a\":\"\xf0\x80\x80\x80\"}"), NO("{\"a\":\"\xf0\x8f\xbf\xbf\"}"),
	NO("{\"a\":\"\xf4\x90\x80\x80\"}"), NO("{\"a\":\"\xf5\x80\x80\x80\"}"),
	NO("{\"a\":\"\xff\"}"), NO("{\"a\":\"\xfe\"}"), NO("{\"a\":\"\x80\"}"),
	NO("{\"a\":\"\xbf\"}"), NO("{\"a\":\"\xc3\"}"),
	NO("{\"a\":\"\xe6\x97\"}"), NO("{\"a\":\"\xf0\x9f\x98\"}"),
	NO("{\"a\":\"\xc3" "A\"}"), NO("{\"a\":\"\xe6" "A\xa5\"}"),
	NO("{\"a\":\"x\xc3"), NO("{\"\xff\":1}"),
	/* keys */
	NO("{\"a\\\"b\":1}"), NO("{\"\\u0061\":1}"), NO("{\"a\\\\\":1}"),
	NO("{\"a\":{\"\\n\":1}}"), NO("{1:1}"), NO("{null:1}"),
	/* duplicates */
	NO("{\"a\":1,\"a\":2}"), NO("{\"a\":1,\"b\":2,\"a\":3}"),
	NO("{\"\":1,\"\":1}"), NO("{\"o\":{\"x\":1,\"x\":2}}"),
	NO("{\"o\":[{\"x\":1,\"x\":2}]}"), NO("{\"o\":{\"p\":{\"q\":1,\"q\":1}}}"),
	NO("{\"o\":[{\"x\":1},{\"y\":1,\"y\":2}]}"),
	NO("{\"o\":{\"x\":{},\"y\":[],\"x\":null}}"),
	/* outside strings */
	NO("\xef\xbb\xbf{}"), NO("{\"a\":1}\xc2\xa0"), NO("\xc2\xa0{}"),
	NO("\f{}"), NO("\v{}"), NO("{}\f"), NO("{\"a\":1}\x00"), NO("\x00{}"),
	NO("{\"a\"\x00:1}"), NO("{\"a\":\xc3\xa9}"),
};

static void
run_table(const struct tc *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int k = differ(t[i].s, t[i].n);
		CHECK(k == t[i].want, t[i].s, t[i].n);
	}
}

static void
test_common_accepted(void **state)
{
	run_table(common, sizeof common / sizeof common[0]);
}

static void
test_refused(void **state)
{
	run_table(refused, sizeof refused / sizeof refused[0]);
}

/* The refusals that are the scanner's choice, not jansson's: jansson
 * takes each of these. */
static const struct tc conservative[] = {
	NO("{\"a\":\"\\ud83d\\ude00\"}"), NO("{\"\\u0061\":1}"),
	NO("{\"a\\nb\":1}"), NO("{\"a\":1234567890123456789}"),
	NO("{\"a\":-9223372036854775808}"), NO("{\"a\":1e100}"),
	NO("{\"a\":1E+001}"), NO("{\"a\":0.5e-300}"),
};

static void
test_conservative(void **state)
{
	for (size_t i = 0; i < sizeof conservative / sizeof conservative[0];
	    i++) {
		const struct tc *t = &conservative[i];
		CHECK(jansson_ok(t->s, t->n), t->s, t->n);
		CHECK(differ(t->s, t->n) == -1, t->s, t->n);
	}
}

/* Appends the text s to a fixed test buffer. */
struct text {
	char	b[65536];
	size_t	n;
};

static void
add(struct text *t, const char *s)
{
	size_t n = strlen(s);
	assert_true(t->n + n < sizeof t->b);
	memcpy(t->b + t->n, s, n);
	t->n += n;
}

/* {"a": then levels - 1 nested containers, so that the top-level object
 * makes levels in all. */
static void
deep(struct text *t, int levels, bool objects)
{
	t->n = 0;
	add(t, "{\"a\":");
	for (int i = 1; i < levels; i++)
		add(t, objects ? "{\"a\":" : "[");
	add(t, objects ? "1" : "");
	for (int i = 1; i < levels; i++)
		add(t, objects ? "}" : "]");
	add(t, "}");
}

static void
test_depth(void **state)
{
	static struct text t;
	deep(&t, JRAW_MAX_DEPTH, false);
	assert_int_equal(differ(t.b, t.n), 1);
	deep(&t, JRAW_MAX_DEPTH, true);
	assert_int_equal(differ(t.b, t.n), 1);
	deep(&t, JRAW_MAX_DEPTH + 1, false);
	assert_true(jansson_ok(t.b, t.n));
	assert_int_equal(differ(t.b, t.n), -1);
	deep(&t, JRAW_MAX_DEPTH + 1, true);
	assert_int_equal(differ(t.b, t.n), -1);
	deep(&t, 1000, false);
	assert_int_equal(differ(t.b, t.n), -1);
	deep(&t, 1000, true);
	t.n -= 10;	/* unbalanced */
	assert_int_equal(differ(t.b, t.n), -1);
}

/* An object of n keys "k0".."k<n-1>" (the last one dup if asked). */
static void
keys(struct text *t, int n, bool dup)
{
	char k[32];
	add(t, "{");
	for (int i = 0; i < n; i++) {
		snprintf(k, sizeof k, "%s\"k%d\":%d", i ? "," : "",
		    dup && i == n - 1 ? 0 : i, i);
		add(t, k);
	}
	add(t, "}");
}

static void
test_nested_keys(void **state)
{
	static struct text t;
	t.n = 0;
	add(&t, "{\"o\":");
	keys(&t, JRAW_MAX_KEYS, false);
	add(&t, "}");
	assert_int_equal(differ(t.b, t.n), 1);
	t.n = 0;
	add(&t, "{\"o\":");
	keys(&t, JRAW_MAX_KEYS, true);
	add(&t, "}");
	assert_int_equal(differ(t.b, t.n), -1);
	assert_false(jansson_ok(t.b, t.n));
	t.n = 0;
	add(&t, "{\"o\":[");
	keys(&t, JRAW_MAX_KEYS + 1, false);
	add(&t, "]}");
	assert_true(jansson_ok(t.b, t.n));
	assert_int_equal(differ(t.b, t.n), -1);
	/* the top level has no such limit, only max */
	t.n = 0;
	keys(&t, MAXM, false);
	assert_int_equal(differ(t.b, t.n), MAXM);
	t.n = 0;
	keys(&t, MAXM, true);
	assert_int_equal(differ(t.b, t.n), -1);
}

/* Closed objects give their keys' room back: many siblings of
 * JRAW_MAX_KEYS keys each are fine; only keys of objects open at once
 * count (jraw.c keeps room for eight levels' worth). */
static void
test_key_stack(void **state)
{
	static struct text t;
	t.n = 0;
	add(&t, "{\"a\":[");
	for (int i = 0; i < 40; i++) {
		if (i)
			add(&t, ",");
		keys(&t, JRAW_MAX_KEYS, false);
	}
	add(&t, "]}");
	assert_int_equal(differ(t.b, t.n), 1);
	for (int levels = 8; levels <= 9; levels++) {
		t.n = 0;
		add(&t, "{\"top\":");
		for (int i = 0; i < levels; i++) {
			keys(&t, JRAW_MAX_KEYS - 1, false);
			t.n--;	/* still open: its last key "n" follows */
			add(&t, ",\"n\":");
		}
		add(&t, "{}");
		for (int i = 0; i < levels; i++)
			add(&t, "}");
		add(&t, "}");
		assert_true(jansson_ok(t.b, t.n));
		assert_int_equal(differ(t.b, t.n), levels == 8 ? 1 : -1);
	}
}

static void
test_numbers_limits(void **state)
{
	static struct text t;
	t.n = 0;
	add(&t, "{\"a\":1");
	for (int i = 1; i < 200; i++)
		add(&t, "0");
	add(&t, ".5e99}");
	assert_int_equal(differ(t.b, t.n), 1);	/* 200 digits, 1e299 */
	t.n -= 6;
	add(&t, "0.5}");
	assert_true(jansson_ok(t.b, t.n));
	assert_int_equal(differ(t.b, t.n), -1);	/* 201 digits */
	t.n = 0;
	add(&t, "{\"a\":0.");
	for (int i = 0; i < 500; i++)
		add(&t, "0");
	add(&t, "1e-99}");
	assert_int_equal(differ(t.b, t.n), 1);	/* long fractions are fine */
}

static void
test_max(void **state)
{
	struct jraw_member m[6];
	size_t n = strlen(request);
	assert_int_equal(jraw_object(request, n, m, 6), 6);
	assert_int_equal(jraw_object(request, n, m, 5), -1);
	assert_int_equal(jraw_object(request, n, m, 0), -1);
	assert_int_equal(jraw_object("{}", 2, NULL, 0), 0);
	assert_int_equal(jraw_object(" { } ", 5, NULL, 0), 0);
	assert_int_equal(jraw_object("{\"a\":1}", 7, m, 1), 1);
	assert_int_equal(jraw_object("{\"a\":1}", 7, m, -1), -1);
}

static void
test_get_int_str(void **state)
{
	static const char req[] = "{\"id\":-42,\"i\":1,\"s\":\"x\\ny\","
	    "\"t\":\"plain\",\"r\":1.0,\"big\":999999999999999999,\"o\":{}}";
	struct jraw_member m[8];
	const char *s;
	size_t n;
	int64_t v;
	int k = jraw_object(req, strlen(req), m, 8);
	assert_int_equal(k, 7);
	assert_null(jraw_get(m, k, "missing"));
	assert_null(jraw_get(m, k, ""));
	assert_null(jraw_get(m, k, "bi"));
	assert_ptr_equal(jraw_get(m, k, "i"), &m[1]);
	assert_true(jraw_int(jraw_get(m, k, "id"), &v));
	assert_int_equal(v, -42);
	assert_true(jraw_int(jraw_get(m, k, "big"), &v));
	assert_int_equal(v, 999999999999999999LL);
	assert_false(jraw_int(jraw_get(m, k, "r"), &v));
	assert_false(jraw_int(jraw_get(m, k, "t"), &v));
	assert_true(jraw_get(m, k, "s")->escaped);
	assert_false(jraw_str(jraw_get(m, k, "s"), &s, &n));
	assert_true(jraw_str(jraw_get(m, k, "t"), &s, &n));
	assert_int_equal(n, 5);
	assert_memory_equal(s, "plain", 5);
	assert_false(jraw_str(jraw_get(m, k, "o"), &s, &n));
	assert_false(jraw_str(jraw_get(m, k, "i"), &s, &n));
	assert_int_equal(jraw_get(m, k, "o")->type, JRAW_OBJECT);
	assert_int_equal(jraw_get(m, k, "r")->type, JRAW_REAL);
	/* a missing member composes: jraw_get's NULL is false */
	assert_false(jraw_int(jraw_get(m, k, "missing"), &v));
	assert_false(jraw_str(jraw_get(m, k, "missing"), &s, &n));
}

/* Every byte inside a string, after a backslash, and as a value: inside
 * the scanner's domain (no \u), so it must answer as jansson does. */
static void
test_every_byte(void **state)
{
	char in[16];
	for (int c = 0; c < 256; c++) {
		memcpy(in, "{\"a\":\"x?y\"}", 11);
		in[7] = (char)c;
		same(in, 11);
		memcpy(in, "{\"a\":\"\\?\"}", 10);
		in[7] = (char)c;
		if (c != 'u')
			same(in, 10);
		memcpy(in, "{\"a\":?}", 7);
		in[5] = (char)c;
		same(in, 7);
		memcpy(in, "{\"a\":1?}", 8);
		in[6] = (char)c;
		if (c != 0)
			same(in, 8);
		else	/* jansson 2.14 drops a NUL it has read ahead */
			CHECK(differ(in, 8) == -1 && jansson_ok(in, 8), in, 8);
		memcpy(in, "{?\"a\":1}", 8);
		in[1] = (char)c;
		same(in, 8);
	}
}

/* Every two-byte sequence and every three-byte one whose trailing bytes
 * sit around the continuation range, in a string: jansson's answer. */
static void
test_utf8_sequences(void **state)
{
	static const unsigned char edge[] = { 0x00, 0x41, 0x7f, 0x80, 0x81,
	    0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xe0, 0xf0, 0xff };
	char in[16];
	for (int a = 0x80; a < 256; a++) {
		for (int b = 0; b < 256; b++) {
			memcpy(in, "{\"a\":\"..\"}", 10);
			in[6] = (char)a;
			in[7] = (char)b;
			same(in, 10);
		}
		for (size_t i = 0; i < sizeof edge; i++)
			for (size_t j = 0; j < sizeof edge; j++)
				for (size_t l = 0; l < sizeof edge; l++) {
					memcpy(in, "{\"a\":\"....\"}", 12);
					in[6] = (char)a;
					in[7] = (char)edge[i];
					in[8] = (char)edge[j];
					in[9] = (char)edge[l];
					same(in, 12);
				}
	}
}

/* \u escapes around every boundary: the accepted ones agree. */
static void
test_u_escapes(void **state)
{
	static const char *const hex[] = { "0000", "0001", "001f", "0020",
	    "007F", "0080", "00e9", "07ff", "0800", "d7ff", "D800", "dbff",
	    "dc00", "DFFF", "e000", "fffe", "FFFF", "00G0", "0", "12", "123",
	    "aBcD" };
	char in[64];
	for (size_t i = 0; i < sizeof hex / sizeof hex[0]; i++) {
		int n = snprintf(in, sizeof in, "{\"a\":\"\\u%s\"}", hex[i]);
		int k = differ(in, (size_t)n);
		unsigned v = (unsigned)strtoul(hex[i], NULL, 16);
		bool want = strlen(hex[i]) == 4 && strchr(hex[i], 'G') == NULL &&
		    v != 0 && (v < 0xd800 || v > 0xdfff);
		CHECK((k == 1) == want, in, (size_t)n);
	}
}

/* A small deterministic PRNG (xorshift64*), so failures reproduce. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static const char interesting[] = "{}[]\":,\\ 0123456789-+.eEtfnulrsa\t\n"
    "\x00\x01\x1f\x7f\x80\xbf\xc3\xe6\xed\xf0\xf4\xff";

/* One random edit of t: replace, insert, delete, truncate or copy. */
static void
mutate(struct text *t, uint64_t *seed)
{
	size_t at = t->n ? rnd(seed) % t->n : 0;
	char c = rnd(seed) & 1 ? (char)rnd(seed) :
	    interesting[rnd(seed) % (sizeof interesting - 1)];
	switch (rnd(seed) % 6) {
	case 0:
		if (t->n)
			t->b[at] = c;
		break;
	case 1:
		memmove(t->b + at + 1, t->b + at, t->n - at);
		t->b[at] = c;
		t->n++;
		break;
	case 2:
		if (t->n) {
			memmove(t->b + at, t->b + at + 1, t->n - at - 1);
			t->n--;
		}
		break;
	case 3:
		t->n = at;
		break;
	default: {
		/* copy a span elsewhere: duplicate keys and members appear */
		size_t from = rnd(seed) % (t->n + 1);
		size_t len = rnd(seed) % 24;
		if (len > t->n - from)
			len = t->n - from;
		memmove(t->b + at + len, t->b + at, t->n - at);
		memmove(t->b + at, t->b + (from >= at ? from + len : from), len);
		t->n += len;
		break;
	}
	}
}

static const char *const bases[] = {
	request,
	"{\"id\":7,\"success\":true,\"result\":{\"x\":[1,2.5,null],\"text\":"
	"\"h\\u00e9llo \\\"q\\\"\\n\",\"t\":\"café 日本 😀\"}}",
	"{\"a\":{\"b\":[{\"c\":1,\"d\":[true,false,null]},{\"c\":2}]},"
	"\"e\":-1.5e10,\"f\":\"x\",\"g\":1E+2,\"h\":-0}",
	" {\n \"k\" : [ 1 , { \"k\" : { } } ] ,\t\"l\" : \"\\/\\t\" }\r\n",
	"{\"id\":1,\"op\":\"status\"}",
};

static void
test_differential_mutations(void **state)
{
	static struct text t;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	int accepted = 0, refused_ok = 0, total = 0;
	for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
		for (int i = 0; i < 1500; i++) {
			t.n = 0;
			add(&t, bases[b]);
			int edits = 1 + (int)(rnd(&seed) % 3);
			while (edits--)
				mutate(&t, &seed);
			int k = differ(t.b, t.n);
			accepted += k >= 0;
			refused_ok += k < 0 && jansson_ok(t.b, t.n);
			total++;
		}
	}
	print_message("jraw: %d mutations, %d accepted, %d left to jansson "
	    "though valid\n", total, accepted, refused_ok);
	assert_true(accepted > total / 20);
	assert_true(accepted < total);
}

/* jraw_put_str(s) reads back through jansson as s, is as long as
 * jraw_str_size says, and a scanner accepts it in an object unless it
 * holds a NUL. */
static void
put_str_round_trip(const char *s, size_t n)
{
	struct buf b;
	json_error_t err;
	buf_init(&b);
	jraw_put(&b, "{\"s\":");
	size_t at = b.len;
	jraw_put_str(&b, s, n);
	size_t len = b.len - at;
	CHECK(jraw_str_size(s, n) == len, s, n);
	jraw_put(&b, "}");
	json_t *j = json_loadb(b.data + at, len, JSON_DECODE_ANY |
	    JSON_ALLOW_NUL, &err);
	CHECK(j != NULL && json_is_string(j), s, n);
	CHECK(json_string_length(j) == n &&
	    memcmp(json_string_value(j), s, n) == 0, s, n);
	struct jraw_member m[1];
	int k = differ(b.data, b.len);
	CHECK(k == (memchr(s, 0, n) ? -1 : 1), s, n);
	if (k == 1) {
		assert_int_equal(jraw_object(b.data, b.len, m, 1), 1);
		CHECK(m[0].val == b.data + at && m[0].val_len == len, s, n);
	}
	json_decref(j);
	buf_release(&b);
}

static void
test_put_str(void **state)
{
	char all[256];
	for (int i = 0; i < 128; i++)
		all[i] = (char)i;
	put_str_round_trip(all, 128);
	put_str_round_trip(all + 1, 127);
	put_str_round_trip("", 0);
	put_str_round_trip("\"\\/", 3);
	put_str_round_trip("café 日本 😀", strlen("café 日本 😀"));
	/* an escape at every offset of the word-at-a-time loop */
	for (int pos = 0; pos < 24; pos++)
		for (int c = 0; c < 0x24; c++) {
			char s[24];
			memset(s, 'x', sizeof s);
			s[pos] = (char)(c == 0x20 ? '"' : c == 0x21 ? '\\' :
			    c == 0x22 ? 'a' : c == 0x23 ? (char)0xc3 : c);
			if (c == 0x23 && pos == 23)
				continue;
			if (c == 0x23)
				s[pos + 1] = (char)0xa9;
			put_str_round_trip(s, sizeof s);
		}
	struct buf b;
	buf_init(&b);
	jraw_put_str(&b, "a\"b\\c\n\x01\x1f/\t\b\f\r\x7f" "é", 16);
	static const char want[] =
	    "\"a\\\"b\\\\c\\n\\u0001\\u001f/\\t\\b\\f\\r\x7f" "é\"";
	assert_int_equal(b.len, sizeof want - 1);
	assert_memory_equal(b.data, want, b.len);
	buf_release(&b);
}

static void
test_put_int(void **state)
{
	static const int64_t vals[] = { 0, -1, 1, 9, 10, -10, 42, 99, 100, -999,
	    1000, 1000000000000000000LL, -1000000000000000000LL,
	    999999999999999999LL, INT64_MIN, INT64_MAX, INT64_MIN + 1 };
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		struct buf b;
		char want[32];
		json_error_t err;
		buf_init(&b);
		jraw_put(&b, "x");
		jraw_put_int(&b, vals[i]);
		int n = snprintf(want, sizeof want, "x%" PRId64, vals[i]);
		assert_int_equal(b.len, (size_t)n);
		assert_memory_equal(b.data, want, b.len);
		json_t *j = json_loadb(b.data + 1, b.len - 1, JSON_DECODE_ANY,
		    &err);
		assert_non_null(j);
		assert_int_equal(json_integer_value(j), vals[i]);
		json_decref(j);
		buf_release(&b);
	}
}

/* The writers compose a reply the scanner reads back. */
static void
test_put_reply(void **state)
{
	struct buf b;
	struct jraw_member m[4];
	buf_init(&b);
	jraw_put(&b, "{\"id\":");
	jraw_put_int(&b, INT64_MIN);
	jraw_put(&b, ",\"ok\":true,\"msg\":");
	jraw_put_str(&b, "tab\there", 8);
	jraw_put(&b, "}");
	assert_true(jansson_ok(b.data, b.len));
	/* 19 digits: the scanner leaves it to jansson */
	assert_int_equal(jraw_object(b.data, b.len, m, 4), -1);
	buf_release(&b);
	buf_init(&b);
	jraw_put(&b, "{\"id\":");
	jraw_put_int(&b, -7);
	jraw_put(&b, ",\"msg\":");
	jraw_put_str(&b, "tab\there", 8);
	jraw_put(&b, "}");
	assert_int_equal(differ(b.data, b.len), 2);
	assert_int_equal(jraw_object(b.data, b.len, m, 4), 2);
	expect(m, 1, "msg", "\"tab\\there\"", JRAW_STRING);
	assert_true(m[1].escaped);
	buf_release(&b);
}

/* jraw_put_indented lays a value out as jansson's JSON_INDENT(2) does,
 * from compact text and from text indented otherwise. */
static void
test_put_indented(void **state)
{
	static const char *const docs[] = {
		"{}", "[]", "1", "\"s\"", "null", "[1,2.5,-3e+20,true,false,null]",
		"{\"a\":{},\"b\":[],\"c\":[{}],\"d\":[[]],\"e\":{\"f\":{\"g\":[1,{\"h\":null}]}}}",
		"{\"s\":\"q\\\"uote, comma: colon ] } {\",\"u\":\"\\u0001\\n\\t\u00e9\u4e2d\"}",
		"{\"name\":\"root\",\"children\":[{\"name\":\"pool\",\"children\":[],"
		    "\"max_seconds\":60}],\"pid\":123}",
	};
	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		json_error_t err;
		json_t *j = json_loads(docs[i], JSON_DECODE_ANY, &err);
		assert_non_null(j);
		char *want = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);
		const size_t forms[] = { JSON_COMPACT, JSON_INDENT(4),
		    JSON_INDENT(0) };
		for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
			char *in = json_dumps(j, forms[f] | JSON_ENCODE_ANY);
			struct buf b;
			buf_init(&b);
			jraw_put_indented(&b, in, strlen(in), 2);
			if (b.len != strlen(want) || memcmp(b.data, want, b.len))
				fail_msg("from %s:\n%.*s\nwant:\n%s", in,
				    (int)b.len, b.data, want);
			buf_release(&b);
			free(in);
		}
		free(want);
		json_decref(j);
	}
}

/* The member key k[0..n) (as written, escapes and all) decoded. */
static json_t *
decoded_key(const char *k, size_t n)
{
	char *q = malloc(n + 2);
	assert_non_null(q);
	q[0] = '"';
	memcpy(q + 1, k, n);
	q[n + 1] = '"';
	json_t *key = json_loadb(q, n + 2, JSON_DECODE_ANY, NULL);
	free(q);
	assert_non_null(key);
	return key;
}

/* jraw_split: text jansson accepts, past the scanner's limits, split into
 * members whose key and value jansson reads as it reads them in the
 * whole, typed as the scanner types them. */
static void
test_split(void **state)
{
	char wide[2048], deep[512], *at = wide;
	at += sprintf(at, "{");
	for (int i = 0; i < 40; i++)
		at += sprintf(at, "%s\"k%d\":%d.5", i ? "," : "", i, i);
	sprintf(at, "}");
	at = deep;
	at += sprintf(at, "{ \"d\" : ");
	for (int i = 0; i < 80; i++)
		*at++ = '[';
	for (int i = 0; i < 80; i++)
		*at++ = ']';
	sprintf(at, " , \"z\":1 }");
	const char *const docs[] = {
		request, wide, deep,
		" {\n \"a\" :\t1234567890123456789 , \"b\":-12,\"c\":1e300,"
		    "\"d\":-0.0}\n",
		"{\"s\":\"q\\\"uote, comma: colon ] } {\",\"\\u0069d\":"
		    "\"\\u0000\",\"t\":true,\"f\":false,\"n\":null}",
		"{\"o\":{\"x\":[1,{\"y\":\"}\"}],\"w\":{}},\"e\":[]}",
	};
	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		const char *d = docs[i];
		json_t *whole = json_loads(d, JSON_ALLOW_NUL, NULL);
		assert_non_null(whole);
		struct jraw_member m[64];
		int k = jraw_split(d, strlen(d), m, 64);
		CHECK(k == (int)json_object_size(whole), d, strlen(d));
		for (int j = 0; j < k; j++) {
			json_t *key = decoded_key(m[j].key, m[j].key_len);
			json_t *v = json_loadb(m[j].val, m[j].val_len,
			    JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
			json_t *want = json_object_get(whole,
			    json_string_value(key));
			CHECK(v != NULL && want != NULL && json_equal(v, want),
			    m[j].val, m[j].val_len);
			enum jraw_type t = json_is_object(v) ? JRAW_OBJECT :
			    json_is_array(v) ? JRAW_ARRAY :
			    json_is_string(v) ? JRAW_STRING :
			    json_is_true(v) ? JRAW_TRUE :
			    json_is_false(v) ? JRAW_FALSE :
			    json_is_null(v) ? JRAW_NULL :
			    json_is_integer(v) && m[j].val_len <= 18 ?
			    JRAW_INT : JRAW_REAL;
			CHECK(m[j].type == t, m[j].val, m[j].val_len);
			json_decref(v);
			json_decref(key);
		}
		json_decref(whole);
	}
	struct jraw_member m[4];
	assert_int_equal(jraw_split("{}", 2, m, 4), 0);
	assert_int_equal(jraw_split(" { } ", 5, m, 4), 0);
	assert_int_equal(jraw_split("[1]", 3, m, 4), -1);
	assert_int_equal(jraw_split("\"s\"", 3, m, 4), -1);
	assert_int_equal(jraw_split("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}",
	    31, m, 4), -1);
	assert_int_equal(jraw_split("{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", 25, m,
	    4), 4);
}

#define T(f)	cmocka_unit_test(f)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_typical_request),
		T(test_whitespace),
		T(test_common_accepted),
		T(test_refused),
		T(test_conservative),
		T(test_depth),
		T(test_nested_keys),
		T(test_key_stack),
		T(test_numbers_limits),
		T(test_max),
		T(test_get_int_str),
		T(test_every_byte),
		T(test_utf8_sequences),
		T(test_u_escapes),
		T(test_differential_mutations),
		T(test_put_str),
		T(test_put_int),
		T(test_put_reply),
		T(test_put_indented),
		T(test_split),
	};
	return cmocka_run_group_tests_name("jraw", tests, NULL, NULL);
}
