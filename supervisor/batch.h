/* batch: writes deferred to the end of the loop iteration. Replies and
 * requests produced while handling one wake-up are appended to their
 * buffers and written with one syscall per peer just before the loop
 * blocks again (an ev_prepare watcher), instead of one write per frame. */
#ifndef ARBOR_BATCH_H
#define ARBOR_BATCH_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

struct batch_item {
	TAILQ_ENTRY(batch_item)	 link;
	bool			 queued;
	void			(*flush)(struct batch_item *);
};

/* Embeds in the owner; fn gets the item back (use container_of). */
void	batch_init(struct batch_item *, void (*fn)(struct batch_item *));
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
