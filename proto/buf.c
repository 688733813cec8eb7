#include "proto/buf.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "proto/xmalloc.h"

#define BUF_READ_CHUNK	4096	/* at least this much room per read */
#define SCRATCH_SIZE	65536
#define BUF_KEEP	65536	/* storage an empty buffer may keep */

/* Per thread: two threads reading at once must not share it (a reply read
 * by one would show in the other's buffer). */
static _Thread_local char scratch[SCRATCH_SIZE];
static _Thread_local bool scratch_busy;	/* lent to one buffer until it
					 * settles */

void
buf_init(struct buf *b)
{
	memset(b, 0, sizeof *b);
}

void
buf_release(struct buf *b)
{
	if (b->scratch)
		scratch_busy = false;
	else
		free(b->data);
	buf_init(b);
}

/* Moves the live bytes out of the scratch area into storage of b's own,
 * with room for n more. */
static void
unborrow(struct buf *b, size_t n)
{
	size_t used = buf_used(b);
	char *src = buf_head(b);
	b->scratch = false;
	scratch_busy = false;
	b->data = NULL;
	b->off = b->len = b->cap = 0;
	buf_reserve(b, used + n);
	if (used)
		memcpy(b->data, src, used);
	b->len = used;
}

/* An emptied buffer that a big message grew gives its storage back. */
static void
trim(struct buf *b)
{
	if (!b->scratch && buf_used(b) == 0 && b->cap > BUF_KEEP) {
		free(b->data);
		buf_init(b);
	}
}

void
buf_settle(struct buf *b)
{
	if (!b->scratch) {
		trim(b);
		return;
	}
	if (buf_used(b) == 0) {
		scratch_busy = false;
		buf_init(b);
	} else {
		unborrow(b, 0);
	}
}

/* buf_reserve without the room: first by sliding the live bytes down. */
void
buf_grow(struct buf *b, size_t n)
{
	if (b->scratch) {
		unborrow(b, n);
		return;
	}
	if (b->off > 0) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= n)
			return;
	}
	size_t ncap = b->cap ? b->cap : 256;
	while (ncap - b->len < n)
		ncap *= 2;
	b->data = xrealloc(b->data, ncap);
	b->cap = ncap;
}

void
buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

ssize_t
buf_read_fd(struct buf *b, int fd)
{
	if (b->cap == 0 && !scratch_busy) {
		b->data = scratch;
		b->cap = SCRATCH_SIZE;
		b->off = b->len = 0;
		b->scratch = scratch_busy = true;
	}
	buf_reserve(b, BUF_READ_CHUNK);
	ssize_t n;
	do
		n = read(fd, buf_tail(b), b->cap - b->len);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		b->len += (size_t)n;
	return n;
}

int
buf_write_fd(struct buf *b, int fd)
{
	while (buf_used(b) > 0) {
		ssize_t n = write(fd, buf_head(b), buf_used(b));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		buf_consume(b, (size_t)n);
	}
	trim(b);
	return 0;
}
