/* Unit tests for supervisor/log.c: one record per line on stderr, text or
 * JSON (SPEC 2), whatever bytes a worker's stderr line holds. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor/log.h"

/* What the logger wrote while stderr pointed at a temp file. */
struct capture {
	int	saved;
	FILE	*file;
	char	text[8192];
};

static void
capture_start(struct capture *c)
{
	fflush(stderr);
	c->file = tmpfile();
	assert_non_null(c->file);
	c->saved = dup(2);
	assert_true(c->saved >= 0);
	assert_true(dup2(fileno(c->file), 2) == 2);
}

/* Restores stderr; c->text is the output, NUL-terminated; returns its
 * length (it may hold NULs itself). */
static size_t
capture_end(struct capture *c)
{
	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	rewind(c->file);
	size_t n = fread(c->text, 1, sizeof c->text - 1, c->file);
	c->text[n] = '\0';
	fclose(c->file);
	return n;
}

/* The record of one log_line() call with format fmt: its output. */
static size_t
log_one(struct capture *c, enum cfg_log_format fmt, const char *line,
    size_t len)
{
	log_setup(LOG_INFO, fmt);
	capture_start(c);
	log_line("pool/worker.1", line, len);
	return capture_end(c);
}

/* A NUL, an escape and other control bytes in a worker's line: the text
 * record is one line, holds all of it, and no raw control byte. */
static void
test_text_control_bytes(void **state)
{
	static const char line[] = "a\0b \x1b[31mred\x01\x7f\tend";
	struct capture c;
	size_t n = log_one(&c, LOG_TEXT, line, sizeof line - 1);

	assert_int_equal(strlen(c.text), n);	/* no NUL written */
	assert_non_null(strstr(c.text, " info  pool/worker.1: "
	    "a\\x00b \\x1b[31mred\\x01\\x7f\tend\n"));
	for (size_t i = 0; i + 1 < n; i++)
		assert_false(c.text[i] != '\t' &&
		    ((unsigned char)c.text[i] < 0x20 || c.text[i] == 0x7f));
}

/* A line that is not UTF-8 (Latin-1, a cut sequence): the JSON record
 * keeps the text, with U+FFFD for the bytes that are not UTF-8. */
static void
test_json_invalid_utf8(void **state)
{
	static const char line[] = "caf\xe9 ok \xe2\x82 end \xe2\x82\xac";
	struct capture c;
	json_error_t err;

	size_t n = log_one(&c, LOG_JSON, line, sizeof line - 1);
	assert_true(n > 0 && c.text[n - 1] == '\n');
	assert_ptr_equal(strchr(c.text, '\n'), c.text + n - 1);	/* one line */
	json_t *j = json_loads(c.text, 0, &err);
	if (j == NULL)
		fail_msg("not one JSON object: %s: %s", err.text, c.text);
	assert_string_equal(json_string_value(json_object_get(j, "name")),
	    "pool/worker.1");
	assert_string_equal(json_string_value(json_object_get(j, "msg")),
	    "caf\xef\xbf\xbd ok \xef\xbf\xbd\xef\xbf\xbd end \xe2\x82\xac");
	json_decref(j);
}

/* NUL and control bytes in JSON are escaped by the encoder, kept whole. */
static void
test_json_control_bytes(void **state)
{
	static const char line[] = "a\0b\x1b\"q\\";
	struct capture c;
	size_t len;

	log_one(&c, LOG_JSON, line, sizeof line - 1);
	json_t *j = json_loads(c.text, JSON_ALLOW_NUL, NULL);
	assert_non_null(j);
	const json_t *msg = json_object_get(j, "msg");
	len = json_string_length(msg);
	assert_int_equal(len, sizeof line - 1);
	assert_memory_equal(json_string_value(msg), line, len);
	json_decref(j);
}

/* log.level filters: below it nothing is written. */
static void
test_level_filters(void **state)
{
	struct capture c;

	log_setup(LOG_WARN, LOG_TEXT);
	capture_start(&c);
	log_info("root", "not shown");
	log_line("pool/worker.1", "not shown either", 16);
	log_warn("root", "shown %d", 1);
	capture_end(&c);
	assert_null(strstr(c.text, "not shown"));
	assert_non_null(strstr(c.text, " warn  root: shown 1\n"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_control_bytes),
		cmocka_unit_test(test_json_invalid_utf8),
		cmocka_unit_test(test_json_control_bytes),
		cmocka_unit_test(test_level_filters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
