/* buf: a growable byte buffer with a read offset.
 * Bytes are appended at the tail and consumed from the head; the buffer
 * compacts itself lazily, so a steady stream of frames costs no allocation. */
#ifndef ARBOR_BUF_H
#define ARBOR_BUF_H
#include <stdbool.h>
#include <stddef.h>
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
void	 buf_reserve(struct buf *, size_t);	/* room for n more bytes at the tail */
void	 buf_append(struct buf *, const void *, size_t);
void	 buf_consume(struct buf *, size_t);
static inline size_t buf_used(const struct buf *b) { return b->len - b->off; }
static inline char *buf_head(const struct buf *b) { return b->data + b->off; }
static inline char *buf_tail(const struct buf *b) { return b->data + b->len; }

/* Reads what fd has (up to one chunk) into the tail: >0 bytes, 0 EOF,
 * -1 error (errno; EAGAIN when nothing is there). An empty buffer reads
 * into a shared scratch area instead of storage of its own, so that a peer
 * whose frames arrive whole needs none: call buf_settle() once the frames
 * are consumed (it keeps a partial frame in storage of the buffer's own).
 * Both buf_settle and buf_write_fd free the storage of a buffer they leave
 * empty if a big message grew it past 64 KiB. */
ssize_t	 buf_read_fd(struct buf *, int fd);
void	 buf_settle(struct buf *);
/* Writes as much of the buffer as fd takes; 0 or -1 (errno). */
int	 buf_write_fd(struct buf *, int fd);

#endif
