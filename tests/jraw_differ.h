/* jraw_differ: the differential check of proto/jraw against jansson,
 * shared by its unit test and its fuzz target. Whatever jraw_object
 * accepts, json_loadb with JSON_REJECT_DUPLICATES (as frame_parse calls
 * it) must accept as an object of the same members, in order, each value's
 * text decoding to jansson's value for that key, with the type jraw gave
 * it. Refusing is always allowed: the caller then asks jansson.
 *
 * Header only (static functions): the includer first defines
 * DIFFER_CHECK(cond, p, n), which fails the test or aborts the fuzz run
 * when cond is false on the input p[0..n). */
#ifndef ARBOR_JRAW_DIFFER_H
#define ARBOR_JRAW_DIFFER_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "proto/jraw.h"

#ifndef DIFFER_CHECK
#error "define DIFFER_CHECK(cond, p, n) before including jraw_differ.h"
#endif

#define DIFFER_MAXM	64	/* members asked for */

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

static bool
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The spans of e lie in p[0..n): the key between quotes, the value
 * without surrounding whitespace. */
static void
check_spans(const struct jraw_member *e, const char *p, size_t n)
{
	DIFFER_CHECK(e->key > p && e->key + e->key_len < p + n, p, n);
	DIFFER_CHECK(e->key[-1] == '"' && e->key[e->key_len] == '"', p, n);
	DIFFER_CHECK(memchr(e->key, '\\', e->key_len) == NULL, p, n);
	DIFFER_CHECK(e->val > e->key + e->key_len && e->val_len > 0, p, n);
	DIFFER_CHECK(e->val + e->val_len <= p + n, p, n);
	DIFFER_CHECK(!is_ws(e->val[0]) && !is_ws(e->val[e->val_len - 1]), p, n);
}

/* The member e agrees with want, jansson's value for its key. */
static void
check_member(const struct jraw_member *e, const json_t *want, const char *p,
    size_t n)
{
	json_error_t err;
	DIFFER_CHECK(want != NULL, p, n);
	json_t *got = json_loadb(e->val, e->val_len,
	    JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
	DIFFER_CHECK(got != NULL && json_equal(got, want), p, n);
	json_decref(got);
	DIFFER_CHECK(e->type == type_of(want), p, n);
	bool bs = memchr(e->val, '\\', e->val_len) != NULL;
	DIFFER_CHECK(e->escaped == (e->type == JRAW_STRING && bs), p, n);
	const char *s;
	size_t len;
	int64_t v;
	if (jraw_str(e, &s, &len))
		DIFFER_CHECK(len == json_string_length(want) &&
		    memcmp(s, json_string_value(want), len) == 0, p, n);
	if (jraw_int(e, &v))
		DIFFER_CHECK(v == json_integer_value(want), p, n);
}

/* The differential property: when jraw accepts p[0..n) with k members,
 * jansson accepts it as an object of the same k members, in order, with
 * equal values. Returns jraw's answer. */
static int
differ(const char *p, size_t n)
{
	struct jraw_member m[DIFFER_MAXM];
	int k = jraw_object(p, n, m, DIFFER_MAXM);
	if (k < 0)
		return k;
	json_error_t err;
	json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &err);
	DIFFER_CHECK(o != NULL && json_is_object(o), p, n);
	DIFFER_CHECK(json_object_size(o) == (size_t)k, p, n);
	const char *key;
	json_t *val;
	int i = 0;
	json_object_foreach(o, key, val) {
		DIFFER_CHECK(strlen(key) == m[i].key_len &&
		    memcmp(key, m[i].key, m[i].key_len) == 0, p, n);
		check_spans(&m[i], p, n);
		if (i > 0)
			DIFFER_CHECK(m[i].key > m[i - 1].val + m[i - 1].val_len, p, n);
		check_member(&m[i], val, p, n);
		i++;
	}
	json_decref(o);
	/* max bounds the members, and only that */
	DIFFER_CHECK(jraw_object(p, n, m, k) == k, p, n);
	if (k > 0)
		DIFFER_CHECK(jraw_object(p, n, m, k - 1) == -1, p, n);
	return k;
}

#endif
