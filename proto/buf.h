/* buf: a growable byte buffer with a read offset.
 * Bytes are appended at the tail and consumed from the head; the buffer
 * compacts itself lazily, so a steady stream of frames costs no allocation. */
#ifndef ARBOR_BUF_H
#define ARBOR_BUF_H
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

struct buf {
	char	*data;
	size_t	 off;	/* first unconsumed byte */
	size_t	 len;	/* end of valid bytes */
	size_t	 cap;
	bool	 scratch;	/* data is the shared read area, not ours */
};

void	 buf_init(struct buf *);
void	 buf_release(struct buf *);		/* frees the storage */
void	 buf_grow(struct buf *, size_t);	/* buf_reserve's slow path */
void	 buf_consume(struct buf *, size_t);
static inline size_t buf_used(const struct buf *b) { return b->len - b->off; }
static inline char *buf_head(const struct buf *b) { return b->data + b->off; }
static inline char *buf_tail(const struct buf *b) { return b->data + b->len; }

/* Room for n more bytes at the tail (inline: called per token on the
 * request path). */
static inline void
buf_reserve(struct buf *b, size_t n)
{
	if (b->cap - b->len < n)
		buf_grow(b, n);
}

static inline void
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;		/* data may still be NULL: no memcpy */
	buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* Reads what fd has (up to one chunk) into the tail: >0 bytes, 0 EOF,
 * -1 error (errno; EAGAIN when nothing is there). An empty buffer reads
 * into a scratch area shared with the thread's other buffers instead of
 * storage of its own, so that a peer whose frames arrive whole needs none:
 * call buf_settle() in the same thread once the frames are consumed (it
 * keeps a partial frame in storage of the buffer's own).
 * Both buf_settle and buf_write_fd free the storage of a buffer they leave
 * empty if a big message grew it past 64 KiB. */
ssize_t	 buf_read_fd(struct buf *, int fd);
void	 buf_settle(struct buf *);
/* Writes as much of the buffer as fd takes; 0 or -1 (errno). */
int	 buf_write_fd(struct buf *, int fd);

#endif
