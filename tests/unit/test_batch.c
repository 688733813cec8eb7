/* Unit tests for supervisor/batch.c: deferred writes are flushed once per
 * item, in the order queued; cancelled items are skipped; an item queued
 * during a flush is flushed by the same call. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <ev.h>

#include "supervisor/batch.h"

struct peer {
	struct batch_item	 batch;
	char			 name;
	struct peer		*chain;	/* queued when this one is flushed */
};

static char order[32];
static size_t norder;

static void
on_flush(struct batch_item *it)
{
	struct peer *p = batch_owner(it, struct peer, batch);
	order[norder++] = p->name;
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
	struct peer c1 = { .name = 'a' }, w1 = { .name = 'W' },
	    c2 = { .name = 'b' }, w2 = { .name = 'X' };
	batch_init(&c1.batch, on_flush);
	batch_init(&c2.batch, on_flush);
	batch_init(&w1.batch, on_flush);
	batch_init(&w2.batch, on_flush);
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
	struct peer c = { .name = 'c' }, w = { .name = 'W' };
	batch_init(&c.batch, on_flush);
	batch_init(&w.batch, on_flush);
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
	struct peer w = { .name = 'W' };
	struct peer c = { .name = 'c', .chain = &w };
	batch_init(&c.batch, on_flush);
	batch_init(&w.batch, on_flush);
	reset();
	batch_queue(&c.batch);
	batch_flush();
	assert_string_equal(order, "cW");
}

int
main(void)
{
	ev_default_loop(0);	/* the batch's ev_prepare lives on it */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_once_each_in_order),
		cmocka_unit_test(test_cancel_skips),
		cmocka_unit_test(test_queued_while_flushing),
	};
	return cmocka_run_group_tests_name("batch", tests, NULL, NULL);
}
