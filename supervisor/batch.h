/* batch: writes deferred to the end of the loop iteration. Replies and
 * requests produced while handling one wake-up are appended to their
 * buffers and written just before the loop blocks again (an ev_prepare
 * watcher), instead of one write per frame: all of them in one system
 * call where there are several (uring.h), then each item's flush, which
 * writes what is left, if anything, and handles what it meets. */
#ifndef ARBOR_BATCH_H
#define ARBOR_BATCH_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

struct buf;

struct batch_item {
	TAILQ_ENTRY(batch_item)	 link;
	bool			 queued;
	void			(*flush)(struct batch_item *);
	const int		*fd;	/* where the output goes (< 0: nowhere) */
	struct buf		*out;	/*   and what it is */
	size_t			 sent;	/* written of out just before the
					 * flush (read it there: batch does
					 * not touch the item after) */
};

/* Embeds in the owner; fn gets the item back (use container_of). out, to
 * be written to *fd, is what fn writes: batch may write some or all of it
 * first (sent says how much, for fn's own accounting). */
void	batch_init(struct batch_item *, void (*fn)(struct batch_item *),
	    const int *fd, struct buf *out);
/* Asks for one flush before the loop blocks (idempotent). */
void	batch_queue(struct batch_item *);
/* Flushes everything queued now: for work done in another ev_prepare
 * callback, which may run after the batch's own. */
void	batch_flush(void);
/* Forgets a queued flush (the owner goes away). */
void	batch_cancel(struct batch_item *);

#define batch_owner(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#endif
