/* Unit tests for proto/frame and proto/buf: the wire framing of SPEC 5. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/msg.h"

/* Each test gets a fresh buffer and a pipe (both ends closed afterwards). */
struct fx {
	struct buf	b;
	int		rd;
	int		wr;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	int p[2];
	if (f == NULL || pipe2(p, O_CLOEXEC) < 0)
		return -1;
	buf_init(&f->b);
	f->rd = p[0];
	f->wr = p[1];
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	buf_release(&f->b);
	if (f->rd >= 0)
		close(f->rd);
	if (f->wr >= 0)
		close(f->wr);
	free(f);
	return 0;
}

/* Closes the write end so the reader sees EOF. */
static void
close_wr(struct fx *f)
{
	close(f->wr);
	f->wr = -1;
}

/* Asserts that the head of b is one whole frame holding s. */
static void
expect_frame(struct buf *b, const char *s)
{
	const char *p = NULL;
	size_t n = 0;
	assert_int_equal(frame_peek(b, 1 << 20, &p, &n), FRAME_OK);
	assert_int_equal(n, strlen(s));
	assert_memory_equal(p, s, n);
	frame_done(b, n);
}

static void
test_round_trip(void **state)
{
	struct fx *f = *state;
	frame_put(&f->b, "hello", 5);
	assert_int_equal(buf_used(&f->b), FRAME_HDR + 5);
	static const unsigned char hdr[] = { 0, 0, 0, 5 };
	assert_memory_equal(buf_head(&f->b), hdr, sizeof hdr);
	expect_frame(&f->b, "hello");
	assert_int_equal(buf_used(&f->b), 0);
}

static void
test_big_endian_length(void **state)
{
	struct fx *f = *state;
	static const unsigned char hdr[] = { 0x01, 0x02, 0x03, 0x04 };
	buf_append(&f->b, hdr, sizeof hdr);
	const char *p;
	size_t n = 0;
	assert_int_equal(frame_peek(&f->b, SIZE_MAX, &p, &n), FRAME_MORE);
	assert_int_equal(n, 0x01020304);
}

static void
test_empty_buffer_and_partial_header(void **state)
{
	struct fx *f = *state;
	const char *p;
	size_t n;
	assert_int_equal(frame_peek(&f->b, 100, &p, &n), FRAME_MORE);
	buf_append(&f->b, "\0\0\0", 3);
	assert_int_equal(frame_peek(&f->b, 100, &p, &n), FRAME_MORE);
}

/* Three frames as one byte string, and their payloads. */
static const char *const three[] = { "{\"id\":1}", "", "{\"a\":\"bc\"}" };

static void
put_three(struct buf *b)
{
	for (size_t i = 0; i < 3; i++)
		frame_put(b, three[i], strlen(three[i]));
}

/* Decodes what b holds; returns how many frames matched three[] in order. */
static size_t
drain(struct buf *b, size_t first)
{
	size_t i = first;
	const char *p;
	size_t n;
	while (frame_peek(b, 1024, &p, &n) == FRAME_OK) {
		assert_true(i < 3);
		assert_int_equal(n, strlen(three[i]));
		assert_memory_equal(p, three[i], n);
		frame_done(b, n);
		i++;
	}
	return i;
}

static void
test_byte_by_byte(void **state)
{
	struct fx *f = *state;
	struct buf wire;
	buf_init(&wire);
	put_three(&wire);
	size_t got = 0;
	for (size_t i = 0; i < buf_used(&wire); i++) {
		buf_append(&f->b, buf_head(&wire) + i, 1);
		got = drain(&f->b, got);
	}
	assert_int_equal(got, 3);
	assert_int_equal(buf_used(&f->b), 0);
	buf_release(&wire);
}

static void
test_split_at_every_boundary(void **state)
{
	struct fx *f = *state;
	struct buf wire;
	buf_init(&wire);
	put_three(&wire);
	size_t total = buf_used(&wire);
	for (size_t k = 0; k <= total; k++) {
		struct buf b;
		buf_init(&b);
		buf_append(&b, buf_head(&wire), k);
		size_t got = drain(&b, 0);
		buf_append(&b, buf_head(&wire) + k, total - k);
		assert_int_equal(drain(&b, got), 3);
		assert_int_equal(buf_used(&b), 0);
		buf_release(&b);
	}
	buf_release(&wire);
	(void)f;
}

static void
test_several_frames_in_one_buffer(void **state)
{
	struct fx *f = *state;
	put_three(&f->b);
	assert_int_equal(drain(&f->b, 0), 3);
	assert_int_equal(buf_used(&f->b), 0);
}

static void
test_oversized(void **state)
{
	struct fx *f = *state;
	static const unsigned char hdr[] = { 0, 0, 0x03, 0xe8 };	/* 1000 */
	buf_append(&f->b, hdr, sizeof hdr);
	const char *p;
	size_t n = 0;
	assert_int_equal(frame_peek(&f->b, 999, &p, &n), FRAME_TOO_LARGE);
	assert_int_equal(n, 1000);
	/* Exactly the maximum is fine (it only waits for the payload). */
	assert_int_equal(frame_peek(&f->b, 1000, &p, &n), FRAME_MORE);
}

static void
test_zero_length(void **state)
{
	struct fx *f = *state;
	frame_put(&f->b, NULL, 0);
	assert_int_equal(buf_used(&f->b), FRAME_HDR);
	const char *p = NULL;
	size_t n = 99;
	assert_int_equal(frame_peek(&f->b, 0, &p, &n), FRAME_OK);
	assert_int_equal(n, 0);
	assert_non_null(p);
	frame_done(&f->b, n);
	assert_int_equal(buf_used(&f->b), 0);
}

static void
test_put_json(void **state)
{
	struct fx *f = *state;
	json_t *j = json_pack("{s:i,s:s,s:[i,i]}", "id", 7, "command", "échø",
	    "args", 1, 2);
	char *want = json_dumps(j, JSON_COMPACT);
	size_t n = frame_put_json(&f->b, j);
	assert_int_equal(n, strlen(want));
	expect_frame(&f->b, want);

	frame_put_json(&f->b, j);
	const char *p;
	assert_int_equal(frame_peek(&f->b, 1024, &p, &n), FRAME_OK);
	json_t *back = frame_parse(p, n, NULL);
	assert_non_null(back);
	assert_true(json_equal(back, j));
	frame_done(&f->b, n);
	json_decref(back);
	json_decref(j);
	free(want);
}

static void
test_parse_invalid(void **state)
{
	json_error_t e;
	static const char *const bad[] = { "", "{", "{\"a\":}", "nope",
	    "{\"a\":1}x", "{\"a\":1,\"a\":2}" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&e, 0, sizeof e);
		assert_null(frame_parse(bad[i], strlen(bad[i]), &e));
		assert_true(e.text[0] != '\0');
		assert_null(frame_parse(bad[i], strlen(bad[i]), NULL));
	}
	(void)state;
}

/* An array parses as JSON but is not a request; scalars are refused by
 * the parser itself. Either way: NULL and a reason. */
static void
test_parse_non_object(void **state)
{
	json_error_t e;
	memset(&e, 0, sizeof e);
	assert_null(frame_parse("[1,2]", 5, &e));
	assert_string_equal(e.text, "not a JSON object");
	assert_null(frame_parse("[1,2]", 5, NULL));
	static const char *const bad[] = { "42", "\"s\"", "null", "true" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&e, 0, sizeof e);
		assert_null(frame_parse(bad[i], strlen(bad[i]), &e));
		assert_true(e.text[0] != '\0');
		assert_null(frame_parse(bad[i], strlen(bad[i]), NULL));
	}
	(void)state;
}

static void
test_parse_object(void **state)
{
	/* The payload is not NUL-terminated: the length bounds it. */
	static const char p[] = "{\"id\":3}GARBAGE";
	json_t *j = frame_parse(p, 8, NULL);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), 3);
	json_decref(j);
	(void)state;
}

/* The id of a payload frame_parse refuses: read where the JSON is
 * well-formed, given back as the request wrote it (a whole number read
 * past a huge integer is an integer again); none for invalid JSON. */
static void
test_parse_id_of_refused(void **state)
{
	static const struct {
		const char	*payload;
		const char	*id;	/* compact JSON, NULL: none */
	} cases[] = {
		{ "{\"id\":4,\"s\":\"a\\u0000b\"}", "4" },
		{ "{\"id\":5,\"t\":1,\"t\":2}", "5" },
		{ "{\"id\":6,\"t\":99999999999999999999999}", "6" },
		{ "{\"id\":\"x\",\"t\":99999999999999999999999}", "\"x\"" },
		{ "{\"id\":6.5,\"t\":99999999999999999999999}", "6.5" },
		{ "{\"id\":7,", NULL },
		{ "[7]", NULL },
		{ "{\"op\":\"\\u0000\"}", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *p = cases[i].payload;
		assert_null(frame_parse(p, strlen(p), NULL));
		json_t *id = frame_parse_id(p, strlen(p));
		if (cases[i].id == NULL) {
			assert_null(id);
			continue;
		}
		assert_non_null(id);
		char *got = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
		assert_string_equal(got, cases[i].id);
		free(got);
		json_decref(id);
	}
	(void)state;
}

/* The id's text as the request wrote it: the top-level member's (not one
 * nested in another value, nor a string's contents), the last of several
 * as jansson keeps, under an escaped key too, without the whitespace
 * around it; none when there is no such member. */
static void
test_id_text(void **state)
{
	static const struct {
		const char	*payload;
		const char	*id;	/* NULL: none */
	} cases[] = {
		{ "{\"id\":123456789012345678901234567890}",
		    "123456789012345678901234567890" },
		{ " { \"a\" : {\"id\":[1,\"}\"]} , \"id\" : -1.5e400 } ",
		    "-1.5e400" },
		{ "{\"s\":\"\\\",\\\"id\\\":2\",\"id\":3}", "3" },
		{ "{\"id\":1,\"id\":\"x,y\"}", "\"x,y\"" },
		{ "{\"\\u0069d\":7}", "7" },
		{ "{\"\\u0069\\u0064\":{\"k\":1}}", "{\"k\":1}" },
		{ "{\"i\\u0064x\":7}", NULL },
		{ "{\"idx\":7,\"x\":[\"id\",8]}", NULL },
		{ "{}", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *p = cases[i].payload, *text;
		size_t n;
		bool found = frame_id_text(p, strlen(p), &text, &n);
		if (cases[i].id == NULL) {
			assert_false(found);
			continue;
		}
		assert_true(found);
		assert_int_equal(n, strlen(cases[i].id));
		assert_memory_equal(text, cases[i].id, n);
	}
	(void)state;
}

/* Ids that jansson reads but would write otherwise (a number's form, a
 * string's escapes, a container's spacing) and the whitespace around
 * them, as request payloads: frame_id_text gives the id's text, and a
 * reply made with msg_put_with_id carries exactly that text, ok or not. */
static void
test_id_text_in_reply(void **state)
{
	static const struct {
		const char	*payload;
		const char	*id;
	} cases[] = {
		{ "{\"id\":1E+2,\"op\":\"ping\"}", "1E+2" },
		{ "{\"op\":\"ping\",\"id\":\n\t1.50 \r\n}", "1.50" },
		{ "{\"id\": -0.0 ,\"op\":\"x\"}", "-0.0" },
		{ "{\"id\":\"\\u00e9\\/\\u0041\"}", "\"\\u00e9\\/\\u0041\"" },
		{ "{\"id\":[1, \"x\" ,{ }] }", "[1, \"x\" ,{ }]" },
		{ "{\"id\":null}", "null" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *p = cases[i].payload, *text;
		size_t n;
		assert_true(frame_id_text(p, strlen(p), &text, &n));
		json_t *r[2] = { msg_ok(NULL),
		    msg_error(NULL, ERR_NOT_FOUND, "no %s", "x") };
		for (int k = 0; k < 2; k++) {
			struct buf out;
			buf_init(&out);
			msg_put_with_id(&out, r[k], text, n);
			char want[128];
			snprintf(want, sizeof want, "{\"id\":%s,\"ok\":%s",
			    cases[i].id, k == 0 ? "true" : "false");
			assert_true(buf_used(&out) > strlen(want));
			assert_memory_equal(buf_head(&out), want, strlen(want));
			assert_int_equal(buf_head(&out)[buf_used(&out) - 1],
			    '}');
			buf_release(&out);
			json_decref(r[k]);
		}
	}
	(void)state;
}

static void
test_buf_growth(void **state)
{
	struct fx *f = *state;
	char chunk[1000];
	for (int i = 0; i < 1000; i++) {
		memset(chunk, 'a' + i % 26, sizeof chunk);
		buf_append(&f->b, chunk, sizeof chunk);
	}
	assert_int_equal(buf_used(&f->b), 1000 * 1000);
	assert_true(f->b.cap >= f->b.len);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(buf_head(&f->b)[0], 'a' + i % 26);
		assert_int_equal(buf_head(&f->b)[999], 'a' + i % 26);
		buf_consume(&f->b, 1000);
	}
	assert_int_equal(buf_used(&f->b), 0);
	assert_int_equal(f->b.off, 0);
	assert_int_equal(f->b.len, 0);
}

static void
test_buf_compaction(void **state)
{
	struct fx *f = *state;
	buf_reserve(&f->b, 100);
	size_t cap = f->b.cap;
	char *data = f->b.data;
	memset(buf_tail(&f->b), 'x', cap);
	f->b.len = cap;
	buf_consume(&f->b, cap - 10);
	buf_head(&f->b)[0] = 'y';
	/* Room for what was consumed comes from sliding, not growing. */
	buf_reserve(&f->b, cap - 10);
	assert_int_equal(f->b.off, 0);
	assert_int_equal(f->b.len, 10);
	assert_int_equal(f->b.cap, cap);
	assert_ptr_equal(f->b.data, data);
	assert_int_equal(f->b.data[0], 'y');
	assert_int_equal(f->b.data[9], 'x');
	/* More than fits: it grows, keeping the bytes. */
	buf_reserve(&f->b, cap);
	assert_true(f->b.cap - f->b.len >= cap);
	assert_int_equal(f->b.data[0], 'y');
}

static void
test_buf_release_twice(void **state)
{
	struct fx *f = *state;
	buf_append(&f->b, "abc", 3);
	buf_release(&f->b);
	assert_null(f->b.data);
	assert_int_equal(buf_used(&f->b), 0);
	buf_release(&f->b);
}

static void
test_buf_fd_io(void **state)
{
	struct fx *f = *state;
	buf_append(&f->b, "ping", 4);
	assert_int_equal(buf_write_fd(&f->b, f->wr), 0);
	assert_int_equal(buf_used(&f->b), 0);
	assert_int_equal(buf_read_fd(&f->b, f->rd), 4);
	assert_memory_equal(buf_head(&f->b), "ping", 4);
	buf_consume(&f->b, 4);
	fcntl(f->rd, F_SETFL, O_NONBLOCK);
	errno = 0;
	assert_int_equal(buf_read_fd(&f->b, f->rd), -1);
	assert_int_equal(errno, EAGAIN);
	close_wr(f);
	assert_int_equal(buf_read_fd(&f->b, f->rd), 0);
}

static void
test_blocking_round_trip(void **state)
{
	struct fx *f = *state;
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(frame_write_blocking(f->wr, three[i],
		    strlen(three[i])), 0);
	close_wr(f);
	for (size_t i = 0; i < 3; i++) {
		const char *p;
		size_t n;
		assert_int_equal(frame_read_blocking(f->rd, &f->b, 1024, &p,
		    &n), 1);
		assert_int_equal(n, strlen(three[i]));
		assert_memory_equal(p, three[i], n);
		frame_done(&f->b, n);
	}
	const char *p;
	size_t n;
	assert_int_equal(frame_read_blocking(f->rd, &f->b, 1024, &p, &n), 0);
}

static void
test_blocking_eof_mid_frame(void **state)
{
	struct fx *f = *state;
	static const unsigned char part[] = { 0, 0, 0, 10, 'a', 'b' };
	assert_int_equal(write(f->wr, part, sizeof part), (ssize_t)sizeof part);
	close_wr(f);
	const char *p;
	size_t n;
	errno = 0;
	assert_int_equal(frame_read_blocking(f->rd, &f->b, 1024, &p, &n), -1);
	assert_int_equal(errno, EPROTO);
}

static void
test_blocking_eof_mid_header(void **state)
{
	struct fx *f = *state;
	assert_int_equal(write(f->wr, "\0\0", 2), 2);
	close_wr(f);
	const char *p;
	size_t n;
	errno = 0;
	assert_int_equal(frame_read_blocking(f->rd, &f->b, 1024, &p, &n), -1);
	assert_int_equal(errno, EPROTO);
}

static void
test_blocking_oversized(void **state)
{
	struct fx *f = *state;
	assert_int_equal(frame_write_blocking(f->wr, "0123456789", 10), 0);
	const char *p;
	size_t n = 0;
	errno = 0;
	assert_int_equal(frame_read_blocking(f->rd, &f->b, 9, &p, &n), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(n, 10);
}

/* A frame larger than a pipe holds, written by a child while we read. */
static void
test_blocking_large_frame(void **state)
{
	struct fx *f = *state;
	size_t size = 1 << 20;
	char *data = malloc(size);
	assert_non_null(data);
	for (size_t i = 0; i < size; i++)
		data[i] = (char)('a' + i % 26);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int rc = frame_write_blocking(f->wr, data, size) == 0 ? 0 : 1;
		free(data);
		_exit(rc);
	}
	close_wr(f);
	const char *p;
	size_t n;
	int r = frame_read_blocking(f->rd, &f->b, size, &p, &n);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(r, 1);
	assert_int_equal(n, size);
	assert_memory_equal(p, data, size);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(data);
}

static void
test_blocking_write_to_closed_pipe(void **state)
{
	struct fx *f = *state;
	close(f->rd);
	f->rd = -1;
	errno = 0;
	assert_int_equal(frame_write_blocking(f->wr, "x", 1), -1);
	assert_int_equal(errno, EPIPE);
}

/* frame_open/frame_close: a frame built in place, even when the buffer
 * slides or grows between the two. */
static void
test_frame_in_place(void **state)
{
	struct fx *f = *state;
	buf_append(&f->b, "xxxx", 4);
	buf_consume(&f->b, 2);		/* off > 0: a reserve will slide */
	size_t at = frame_open(&f->b);
	static char big[5000];
	memset(big, 'a', sizeof big);
	buf_append(&f->b, big, sizeof big);	/* grows */
	frame_close(&f->b, at);
	buf_consume(&f->b, 2);
	const char *p;
	size_t n;
	assert_int_equal(frame_peek(&f->b, 1 << 20, &p, &n), FRAME_OK);
	assert_int_equal(n, sizeof big);
	assert_memory_equal(p, big, n);
	frame_done(&f->b, n);
}

/* A buffer that a big message grew gives its storage back once written
 * out; a small one keeps it. */
static void
test_buf_trim_after_big_write(void **state)
{
	struct fx *f = *state;
	int fd = open("/dev/null", O_WRONLY);
	assert_true(fd >= 0);
	static char big[200000];
	buf_append(&f->b, big, sizeof big);
	assert_int_equal(buf_write_fd(&f->b, fd), 0);
	assert_int_equal(buf_used(&f->b), 0);
	assert_int_equal(f->b.cap, 0);
	assert_null(f->b.data);
	buf_append(&f->b, big, 1000);
	assert_int_equal(buf_write_fd(&f->b, fd), 0);
	assert_true(f->b.cap > 0);	/* small: kept for the next message */
	close(fd);
}

#define T(fn)	cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		T(test_round_trip),
		T(test_big_endian_length),
		T(test_empty_buffer_and_partial_header),
		T(test_byte_by_byte),
		T(test_split_at_every_boundary),
		T(test_several_frames_in_one_buffer),
		T(test_oversized),
		T(test_zero_length),
		T(test_put_json),
		T(test_frame_in_place),
		T(test_buf_trim_after_big_write),
		T(test_parse_invalid),
		T(test_parse_non_object),
		T(test_parse_object),
		T(test_parse_id_of_refused),
		T(test_id_text),
		T(test_id_text_in_reply),
		T(test_buf_growth),
		T(test_buf_compaction),
		T(test_buf_release_twice),
		T(test_buf_fd_io),
		T(test_blocking_round_trip),
		T(test_blocking_eof_mid_frame),
		T(test_blocking_eof_mid_header),
		T(test_blocking_oversized),
		T(test_blocking_large_frame),
		T(test_blocking_write_to_closed_pipe),
	};
	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
