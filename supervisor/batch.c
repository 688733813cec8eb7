#include "supervisor/batch.h"

#include <ev.h>
#include <stddef.h>

static TAILQ_HEAD(, batch_item) pending = TAILQ_HEAD_INITIALIZER(pending);
static ev_prepare w_prepare;
static bool started;

static void
on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	batch_flush();
}

/* Flushes everything queued; a flush may queue more (handled too). */
void
batch_flush(void)
{
	struct batch_item *it;
	while ((it = TAILQ_FIRST(&pending)) != NULL) {
		TAILQ_REMOVE(&pending, it, link);
		it->queued = false;
		it->flush(it);
	}
}

void
batch_init(struct batch_item *it, void (*fn)(struct batch_item *))
{
	it->queued = false;
	it->flush = fn;
}

void
batch_queue(struct batch_item *it)
{
	if (!started) {
		ev_prepare_init(&w_prepare, on_prepare);
		ev_prepare_start(EV_DEFAULT_UC, &w_prepare);
		ev_unref(EV_DEFAULT_UC);	/* does not keep the loop alive */
		started = true;
	}
	if (!it->queued) {
		TAILQ_INSERT_TAIL(&pending, it, link);
		it->queued = true;
	}
}

void
batch_cancel(struct batch_item *it)
{
	if (it->queued) {
		TAILQ_REMOVE(&pending, it, link);
		it->queued = false;
	}
}
