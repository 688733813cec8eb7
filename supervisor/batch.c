#include "supervisor/batch.h"

#include <ev.h>
#include <stddef.h>

#include "proto/buf.h"
#include "proto/uring.h"
#include "supervisor/log.h"

#define TOGETHER_MAX	256	/* items per uring_writes */

static TAILQ_HEAD(, batch_item) pending = TAILQ_HEAD_INITIALIZER(pending);
static ev_prepare w_prepare;
static bool started;

static void
on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	batch_flush();
}

static bool
has_output(const struct batch_item *it)
{
	return *it->fd >= 0 && buf_used(it->out) > 0;
}

/* Logs (debug) how the writes go, when that changes: together, or one
 * per peer where the kernel refused io_uring. */
static void
say_how(void)
{
	static int said = -1;
	int now = uring_active();
	if (now == said || (!now && uring_refused() == NULL))
		return;
	said = now;
	if (now)
		log_debug("batch", "a loop iteration's writes go out in one "
		    "system call (io_uring)");
	else
		log_debug("batch", "one write per peer: %s", uring_refused());
}

/* Writes the output of the items from it on, up to TOGETHER_MAX of them,
 * in one system call; returns the item after the last one taken. */
static struct batch_item *
write_some(struct batch_item *it)
{
	static struct uring_write w[TOGETHER_MAX];
	static struct batch_item *of[TOGETHER_MAX];
	size_t n = 0;
	for (; it != NULL && n < TOGETHER_MAX; it = TAILQ_NEXT(it, link)) {
		if (!has_output(it))
			continue;
		w[n] = (struct uring_write){ .fd = *it->fd,
		    .buf = buf_head(it->out), .len = buf_used(it->out) };
		of[n++] = it;
	}
	uring_writes(w, n);
	say_how();
	for (size_t i = 0; i < n; i++) {
		buf_consume(of[i]->out, w[i].done);
		of[i]->sent = w[i].done;
	}
	return it;
}

/* Writes the queued output together where there is more than one item's
 * (one has nothing to gain: its flush writes it). */
static void
write_together(void)
{
	struct batch_item *it, *first = NULL;
	TAILQ_FOREACH(it, &pending, link) {
		if (!has_output(it))
			continue;
		if (first != NULL)
			break;
		first = it;
	}
	if (it == NULL)
		return;
	for (it = first; it != NULL; )
		it = write_some(it);
}

/* Flushes everything queued; a flush may queue more (handled too). */
void
batch_flush(void)
{
	write_together();
	struct batch_item *it;
	while ((it = TAILQ_FIRST(&pending)) != NULL) {
		TAILQ_REMOVE(&pending, it, link);
		it->queued = false;
		it->flush(it);	/* it may be freed: not touched again */
	}
}

void
batch_init(struct batch_item *it, void (*fn)(struct batch_item *),
    const int *fd, struct buf *out)
{
	it->queued = false;
	it->flush = fn;
	it->fd = fd;
	it->out = out;
	it->sent = 0;
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
		it->sent = 0;
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
