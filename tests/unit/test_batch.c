/* Unit tests for supervisor/batch.c: deferred writes are flushed once per
 * item, in the order queued; cancelled items are skipped; an item queued
 * during a flush is flushed by the same call; the output of several items
 * goes out together before their flushes (where the kernel has io_uring),
 * that of one alone is left to its flush. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <ev.h>
#include <fcntl.h>
#include <unistd.h>

#include "proto/buf.h"
#include "supervisor/batch.h"
#include "tests/io_uring_probe.h"

struct peer {
	struct batch_item	 batch;
	char			 name;
	struct peer		*chain;	/* queued when this one is flushed */
	int			 fd;	/* -1: no output */
	struct buf		 out;
	size_t			 left, sent;	/* seen by the flush */
};

static void	on_flush(struct batch_item *);

static void
peer_init(struct peer *p, char name)
{
	*p = (struct peer){ .name = name, .fd = -1 };
	batch_init(&p->batch, on_flush, &p->fd, &p->out);
}

static char order[32];
static size_t norder;

static void
on_flush(struct batch_item *it)
{
	struct peer *p = batch_owner(it, struct peer, batch);
	order[norder++] = p->name;
	p->left = buf_used(&p->out);
	p->sent = it->sent;
	if (p->fd >= 0)
		assert_int_equal(buf_write_fd(&p->out, p->fd), 0);
	if (p->chain != NULL)
		batch_queue(&p->chain->batch);
}

static void
reset(void)
{
	memset(order, 0, sizeof order);
	norder = 0;
}

static void
test_once_each_in_order(void **state)
{
	struct peer c1, w1, c2, w2;
	peer_init(&c1, 'a');
	peer_init(&w1, 'W');
	peer_init(&c2, 'b');
	peer_init(&w2, 'X');
	reset();
	batch_queue(&c1.batch);
	batch_queue(&w1.batch);
	batch_queue(&c2.batch);
	batch_queue(&c1.batch);		/* once only */
	batch_queue(&w2.batch);
	batch_flush();
	assert_string_equal(order, "aWbX");
	reset();
	batch_flush();			/* nothing left */
	assert_int_equal(norder, 0);
}

static void
test_cancel_skips(void **state)
{
	struct peer c, w;
	peer_init(&c, 'c');
	peer_init(&w, 'W');
	reset();
	batch_queue(&c.batch);
	batch_queue(&w.batch);
	batch_cancel(&w.batch);
	batch_cancel(&w.batch);		/* twice is harmless */
	batch_flush();
	assert_string_equal(order, "c");
}

/* A client's flush that makes a worker request: written in the same call. */
static void
test_queued_while_flushing(void **state)
{
	struct peer w, c;
	peer_init(&w, 'W');
	peer_init(&c, 'c');
	c.chain = &w;
	reset();
	batch_queue(&c.batch);
	batch_flush();
	assert_string_equal(order, "cW");
}

static void
pipe_peer(struct peer *p, char name, int fds[2], const char *text)
{
	peer_init(p, name);
	assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	p->fd = fds[1];
	buf_append(&p->out, text, strlen(text));
}

static void
read_back(int fd, const char *want)
{
	char got[64] = "";
	assert_int_equal(read(fd, got, sizeof got), (ssize_t)strlen(want));
	assert_string_equal(got, want);
}

/* Three outputs (one peer without any between them): written before the
 * flushes, which find nothing left and are told how much went. */
static void
test_written_together(void **state)
{
	int a[2], b[2], d[2];
	struct peer pa, pb, idle, pd;
	pipe_peer(&pa, 'a', a, "reply to a");
	pipe_peer(&pb, 'b', b, "request to worker b");
	peer_init(&idle, 'i');
	pipe_peer(&pd, 'd', d, "reply to d");
	reset();
	batch_queue(&pa.batch);
	batch_queue(&idle.batch);
	batch_queue(&pb.batch);
	batch_queue(&pd.batch);
	batch_flush();
	assert_string_equal(order, "aibd");
	bool together = io_uring_allowed();
	struct peer *all[] = { &pa, &pb, &pd };
	const char *text[] = { "reply to a", "request to worker b",
	    "reply to d" };
	for (size_t i = 0; i < 3; i++) {
		size_t len = strlen(text[i]);
		assert_int_equal(all[i]->left, together ? 0 : len);
		assert_int_equal(all[i]->sent, together ? len : 0);
	}
	read_back(a[0], "reply to a");
	read_back(b[0], "request to worker b");
	read_back(d[0], "reply to d");
	int *fds[] = { a, b, d };
	for (size_t i = 0; i < 3; i++) {
		close(fds[i][0]);
		close(fds[i][1]);
		buf_release(&all[i]->out);
	}
}

/* A flush that frees its owner (a connection closed on a write error):
 * batch touches the item no more (ASan, under SAN=1, would tell). */
static void
on_flush_free(struct batch_item *it)
{
	struct peer *p = batch_owner(it, struct peer, batch);
	order[norder++] = p->name;
	if (p->fd >= 0)
		buf_write_fd(&p->out, p->fd);
	buf_release(&p->out);
	free(p);
}

static void
test_flush_frees_its_owner(void **state)
{
	int a[2], b[2];
	struct peer *pa = calloc(1, sizeof *pa), *pb = calloc(1, sizeof *pb);
	assert_non_null(pa);
	assert_non_null(pb);
	pipe_peer(pa, 'a', a, "first");
	pipe_peer(pb, 'b', b, "second");
	batch_init(&pa->batch, on_flush_free, &pa->fd, &pa->out);
	batch_init(&pb->batch, on_flush_free, &pb->fd, &pb->out);
	reset();
	batch_queue(&pa->batch);
	batch_queue(&pb->batch);
	batch_flush();
	assert_string_equal(order, "ab");
	read_back(a[0], "first");
	read_back(b[0], "second");
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
}

/* One output alone: its flush writes it, as it always did. */
static void
test_one_left_to_its_flush(void **state)
{
	int a[2];
	struct peer pa, idle;
	pipe_peer(&pa, 'a', a, "alone");
	peer_init(&idle, 'i');
	reset();
	batch_queue(&pa.batch);
	batch_queue(&idle.batch);
	batch_flush();
	assert_int_equal(pa.sent, 0);
	assert_int_equal(pa.left, 5);
	read_back(a[0], "alone");
	close(a[0]);
	close(a[1]);
	buf_release(&pa.out);
}

int
main(void)
{
	ev_default_loop(0);	/* the batch's ev_prepare lives on it */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_once_each_in_order),
		cmocka_unit_test(test_cancel_skips),
		cmocka_unit_test(test_queued_while_flushing),
		cmocka_unit_test(test_written_together),
		cmocka_unit_test(test_one_left_to_its_flush),
		cmocka_unit_test(test_flush_frees_its_owner),
	};
	return cmocka_run_group_tests_name("batch", tests, NULL, NULL);
}
