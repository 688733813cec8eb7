/* Fuzzes the incremental frame decoder (proto/frame over proto/buf) the way
 * a connection drives it: the stream arrives in chunks of varying sizes,
 * frame_peek/frame_done take whole frames off the head, every payload goes
 * through frame_parse, and every object parsed is encoded again with
 * frame_put_json and must decode to the same value and the same bytes.
 *
 * Input: one control byte, then the stream. The control byte picks the
 * frame size limit and the range of chunk sizes; each chunk's size is drawn
 * from the stream byte it starts at, so the fuzzer steers both at once. */
#include <jansson.h>
#include <string.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/xmalloc.h"
#include "tests/fuzz/fuzz.h"

#define MAX_SMALL	64
#define MAX_LARGE	4096

/* Bytes per read: 1 .. span, where span comes from the control byte. */
static size_t
chunk_len(uint8_t ctl, uint8_t first)
{
	static const size_t spans[] = { 1, 3, 7, 64, 512, 4096, 5, 256 };
	size_t span = spans[ctl & 7];
	return 1 + (size_t)(first ^ (ctl >> 4)) * 131 % span;
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* Takes the frame at the head of out: it must hold exactly want[0..n). */
static void
take_same(struct buf *out, const char *want, size_t n)
{
	const char *p = NULL;
	size_t len = 0;
	FUZZ_CHECK(frame_peek(out, SIZE_MAX, &p, &len) == FRAME_OK);
	FUZZ_CHECK(len == n && memcmp(p, want, n) == 0);
	frame_done(out, len);
}

/* j encoded and framed decodes to the same value; encoding it again, or
 * what was decoded, gives the same bytes (compact output keeps insertion
 * order and full real precision). The frames share one buffer so that
 * appending behind consumed bytes (compaction) is exercised too. */
static void
round_trip(const json_t *j)
{
	struct buf out;
	const char *p = NULL;
	size_t len = 0;
	buf_init(&out);
	size_t n = frame_put_json(&out, j);
	FUZZ_CHECK(buf_used(&out) == FRAME_HDR + n);
	FUZZ_CHECK(frame_put_json(&out, j) == n);
	FUZZ_CHECK(frame_peek(&out, SIZE_MAX, &p, &len) == FRAME_OK);
	FUZZ_CHECK(len == n);
	char *first = xmalloc(n ? n : 1);
	memcpy(first, p, n);
	json_t *back = frame_parse(p, len, NULL);
	FUZZ_CHECK(back != NULL && json_equal(j, back));
	frame_done(&out, len);
	FUZZ_CHECK(frame_put_json(&out, back) == n);
	take_same(&out, first, n);
	take_same(&out, first, n);
	FUZZ_CHECK(buf_used(&out) == 0);
	free(first);
	json_decref(back);
	buf_release(&out);
}

static void
payload(const char *p, size_t len)
{
	json_error_t err;
	json_t *j = frame_parse(p, len, &err);
	if (j == NULL) {
		FUZZ_CHECK(err.text[0] != '\0');	/* a reason is given */
		return;
	}
	FUZZ_CHECK(json_is_object(j));
	round_trip(j);
	json_decref(j);
}

/* The decoder's view of the stream s: fed bytes read so far, *taken bytes
 * consumed as whole frames. */
struct stream {
	const uint8_t	*s;
	size_t		 fed, taken, max;
};

/* Takes every whole frame off in; -1 once a frame is too large (the
 * connection would be closed). */
static int
drain(struct buf *in, struct stream *st)
{
	for (;;) {
		const char *p = NULL;
		size_t len = 0, avail = st->fed - st->taken;
		FUZZ_CHECK(buf_used(in) == avail);
		enum frame_status rc = frame_peek(in, st->max, &p, &len);
		if (rc == FRAME_MORE) {
			FUZZ_CHECK(avail < FRAME_HDR ||
			    (be32(st->s + st->taken) <= st->max &&
			    avail - FRAME_HDR < be32(st->s + st->taken)));
			return 0;
		}
		FUZZ_CHECK(avail >= FRAME_HDR && len == be32(st->s + st->taken));
		if (rc == FRAME_TOO_LARGE) {
			FUZZ_CHECK(len > st->max);
			return -1;
		}
		FUZZ_CHECK(rc == FRAME_OK && len <= st->max);
		FUZZ_CHECK(FRAME_HDR + len <= avail);
		FUZZ_CHECK(p == buf_head(in) + FRAME_HDR);
		FUZZ_CHECK(memcmp(p, st->s + st->taken + FRAME_HDR, len) == 0);
		payload(p, len);
		frame_done(in, len);
		st->taken += FRAME_HDR + len;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	struct stream st = { .s = data + 1, .max = ctl & 8 ? MAX_SMALL :
	    MAX_LARGE };
	size_t n = size - 1;
	struct buf in;
	buf_init(&in);
	while (st.fed < n) {
		size_t k = chunk_len(ctl, st.s[st.fed]);
		if (k > n - st.fed)
			k = n - st.fed;
		buf_append(&in, st.s + st.fed, k);
		st.fed += k;
		if (drain(&in, &st) < 0)
			break;
	}
	buf_release(&in);
	return 0;
}
