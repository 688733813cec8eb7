/* Unit tests for proto/msg: the messages of SPEC 5 and SPEC 6. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "proto/msg.h"

/* SPEC 6's error codes, in enum order. */
static const struct {
	enum msg_code	 code;
	const char	*name;
} codes[] = {
	{ ERR_BAD_REQUEST, "bad_request" },
	{ ERR_UNKNOWN_OP, "unknown_op" },
	{ ERR_NOT_FOUND, "not_found" },
	{ ERR_PERMISSION_DENIED, "permission_denied" },
	{ ERR_FRAME_TOO_LARGE, "frame_too_large" },
	{ ERR_BRIDGE_DISABLED, "bridge_disabled" },
	{ ERR_POOL_TIMEOUT, "pool_timeout" },
	{ ERR_OVERLOADED, "overloaded" },
	{ ERR_WORKER_ERROR, "worker_error" },
	{ ERR_WORKER_CRASHED, "worker_crashed" },
	{ ERR_TIMEOUT, "timeout" },
	{ ERR_SHUTTING_DOWN, "shutting_down" },
	{ ERR_CONFIG_ERROR, "config_error" },
};
#define NCODES	(sizeof codes / sizeof codes[0])

/* Asserts that obj has exactly n keys. */
static void
expect_keys(const json_t *obj, size_t n)
{
	assert_true(json_is_object(obj));
	assert_int_equal(json_object_size(obj), n);
}

static void
test_code_names(void **state)
{
	assert_int_equal(NCODES, ERR__COUNT);
	for (size_t i = 0; i < NCODES; i++)
		assert_string_equal(msg_code_name(codes[i].code), codes[i].name);
	assert_string_equal(msg_code_name(ERR__COUNT), "unknown");
	assert_string_equal(msg_code_name((enum msg_code)-1), "unknown");
	(void)state;
}

static void
test_error_shape_every_code(void **state)
{
	json_t *id = json_integer(9);
	for (size_t i = 0; i < NCODES; i++) {
		json_t *r = msg_error(id, codes[i].code, "bad %s #%d", "thing",
		    (int)i);
		expect_keys(r, 3);
		assert_ptr_equal(json_object_get(r, "id"), id);
		assert_true(json_is_false(json_object_get(r, "ok")));
		json_t *e = json_object_get(r, "error");
		expect_keys(e, 2);
		assert_string_equal(msg_str(e, "code"), codes[i].name);
		char want[64];
		snprintf(want, sizeof want, "bad thing #%zu", i);
		assert_string_equal(msg_str(e, "message"), want);
		json_decref(r);
	}
	/* id is borrowed: ours is the only reference left. */
	assert_int_equal(id->refcount, 1);
	json_decref(id);
	(void)state;
}

static void
test_error_null_id(void **state)
{
	json_t *r = msg_error(NULL, ERR_BAD_REQUEST, "no id");
	assert_true(json_is_null(json_object_get(r, "id")));
	json_decref(r);
	(void)state;
}

static void
test_ok_shape(void **state)
{
	json_t *id = json_string("abc");
	json_t *r = msg_ok(id);
	expect_keys(r, 2);
	assert_string_equal(msg_str(r, "id"), "abc");
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	assert_int_equal(id->refcount, 1);
	json_decref(id);
	r = msg_ok(NULL);
	assert_true(json_is_null(json_object_get(r, "id")));
	json_decref(r);
	(void)state;
}

static void
test_worker_request(void **state)
{
	json_t *args = json_pack("{s:s}", "k", "v");
	json_t *r = msg_worker_request(7, "execute_program", args, "s1");
	expect_keys(r, 4);
	json_int_t id;
	assert_true(msg_int(r, "id", &id));
	assert_int_equal(id, 7);
	assert_string_equal(msg_str(r, "command"), "execute_program");
	assert_ptr_equal(json_object_get(r, "args"), args);	/* stolen */
	assert_int_equal(args->refcount, 1);
	assert_string_equal(msg_str(r, "session_id"), "s1");
	json_decref(r);

	r = msg_worker_request(2, "ping", NULL, NULL);
	expect_keys(r, 3);
	assert_null(json_object_get(r, "session_id"));
	json_t *empty = json_object_get(r, "args");
	expect_keys(empty, 0);
	json_decref(r);
	(void)state;
}

static void
test_worker_ok(void **state)
{
	json_t *id = json_integer(3);
	json_t *result = json_pack("{s:b}", "pong", 1);
	json_t *r = msg_worker_ok(id, result);
	expect_keys(r, 3);
	assert_ptr_equal(json_object_get(r, "id"), id);
	assert_true(json_is_true(json_object_get(r, "success")));
	assert_ptr_equal(json_object_get(r, "result"), result);
	assert_int_equal(result->refcount, 1);	/* stolen */
	json_decref(r);
	assert_int_equal(id->refcount, 1);	/* borrowed */

	r = msg_worker_ok(id, NULL);
	assert_true(json_is_null(json_object_get(r, "result")));
	json_decref(r);
	json_decref(id);
	(void)state;
}

static void
test_worker_err(void **state)
{
	json_t *id = json_integer(4);
	json_t *r = msg_worker_err(id, "program not found: %s", "p1");
	expect_keys(r, 3);
	assert_ptr_equal(json_object_get(r, "id"), id);
	assert_true(json_is_false(json_object_get(r, "success")));
	assert_string_equal(msg_str(r, "error"), "program not found: p1");
	assert_null(json_object_get(r, "result"));
	json_decref(r);
	assert_int_equal(id->refcount, 1);
	json_decref(id);
	r = msg_worker_err(NULL, "x");
	assert_true(json_is_null(json_object_get(r, "id")));
	json_decref(r);
	(void)state;
}

/* A long message of multi-byte characters must come through whole. */
static void
test_long_messages_kept_whole(void **state)
{
	char text[3001];
	for (size_t i = 0; i < 1000; i++)
		memcpy(text + 3 * i, "\xe2\x82\xac", 3);	/* U+20AC */
	text[3000] = '\0';
	json_t *r = msg_worker_err(NULL, "%s", text);
	assert_string_equal(msg_str(r, "error"), text);
	json_decref(r);
	r = msg_error(NULL, ERR_WORKER_ERROR, "x%s", text);
	assert_string_equal(msg_str(json_object_get(r, "error"), "message") + 1,
	    text);
	json_decref(r);
	(void)state;
}

/* Bytes that are not UTF-8 (a Latin-1 config file named in a config_error,
 * a message cut inside a character) become U+FFFD; the rest is kept. */
static void
test_invalid_utf8_replaced(void **state)
{
	json_t *r = msg_error(NULL, ERR_CONFIG_ERROR, "%s:3: log.level: not "
	    "\"%s\"", "/etc/a.conf", "d\xe9" "bug");
	assert_string_equal(msg_str(json_object_get(r, "error"), "message"),
	    "/etc/a.conf:3: log.level: not \"d\xef\xbf\xbd" "bug\"");
	json_decref(r);
	r = msg_worker_err(NULL, "cut \xe2\x82");
	assert_string_equal(msg_str(r, "error"), "cut \xef\xbf\xbd\xef\xbf\xbd");
	json_decref(r);
	(void)state;
}

static void
test_msg_str(void **state)
{
	json_t *o = json_pack("{s:s,s:i,s:n,s:[]}", "s", "text", "i", 1,
	    "n", "a");
	assert_string_equal(msg_str(o, "s"), "text");
	assert_null(msg_str(o, "i"));
	assert_null(msg_str(o, "n"));
	assert_null(msg_str(o, "a"));
	assert_null(msg_str(o, "absent"));
	assert_null(msg_str(NULL, "s"));
	json_t *arr = json_array();
	assert_null(msg_str(arr, "s"));
	json_decref(arr);
	json_decref(o);
	(void)state;
}

static void
test_msg_int(void **state)
{
	json_t *o = json_pack("{s:I,s:f,s:s,s:b,s:n}", "i", (json_int_t)1 << 40,
	    "f", 1.5, "s", "3", "b", 1, "n");
	json_int_t v = 0;
	assert_true(msg_int(o, "i", &v));
	assert_true(v == (json_int_t)1 << 40);
	static const char *const wrong[] = { "f", "s", "b", "n", "absent" };
	for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
		v = 42;
		assert_false(msg_int(o, wrong[i], &v));
		assert_int_equal(v, 42);	/* untouched */
	}
	assert_false(msg_int(NULL, "i", &v));
	json_decref(o);
	(void)state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_code_names),
		cmocka_unit_test(test_error_shape_every_code),
		cmocka_unit_test(test_error_null_id),
		cmocka_unit_test(test_ok_shape),
		cmocka_unit_test(test_worker_request),
		cmocka_unit_test(test_worker_ok),
		cmocka_unit_test(test_worker_err),
		cmocka_unit_test(test_long_messages_kept_whole),
		cmocka_unit_test(test_invalid_utf8_replaced),
		cmocka_unit_test(test_msg_str),
		cmocka_unit_test(test_msg_int),
	};
	return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
