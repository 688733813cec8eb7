/* Unit tests for supervisor/slab.c: freed blocks are kept for reuse
 * whatever their number, and slab_trim() gives back only those that
 * stayed unused for a whole period, beyond the SLAB_KEEP (512) per class
 * it always leaves. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "supervisor/slab.h"

#define N	2000
#define KEEP	512

static void *blocks[N];

static void
alloc_n(int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		blocks[i] = slab_alloc(size);
		memset(blocks[i], 0xa5, size);
	}
}

static void
free_n(int n)
{
	for (int i = 0; i < n; i++)
		slab_free(blocks[i]);
}

/* Empties the cache: two trims with nothing used in between free all but
 * KEEP per class; these tests use one class. */
static void
settle(void)
{
	slab_trim();
	slab_trim();
}

/* 2,000 blocks in flight at once, freed and taken again: every one comes
 * from the cache, none is given back on the way. */
static void
test_keeps_every_freed_block(void **state)
{
	settle();
	size_t base = slab_cached();
	alloc_n(N, 100);
	free_n(N);
	assert_int_equal(slab_cached(), base + N);
	void *first = blocks[N - 1];
	alloc_n(N, 100);
	assert_ptr_equal(blocks[0], first);	/* last freed, first reused */
	assert_int_equal(slab_cached(), base);
	free_n(N);
	settle();
}

/* A trim frees only what stayed unused since the previous one. */
static void
test_trim_frees_what_stayed_idle(void **state)
{
	settle();
	alloc_n(N, 200);
	free_n(N);
	size_t cached = slab_cached();
	slab_trim();	/* the first period saw all of them in use */
	assert_int_equal(slab_cached(), cached);
	alloc_n(1000, 200);	/* 1,000 stay idle through this period */
	free_n(1000);
	slab_trim();
	assert_int_equal(slab_cached(), cached - 1000);
	slab_trim();	/* now all idle: down to KEEP in the class */
	assert_true(slab_cached() <= cached - N + KEEP);
	assert_true(slab_cached() >= KEEP);
}

static int surplus_calls;

static void
on_surplus(void)
{
	surplus_calls++;
}

/* The surplus callback comes once when a class first holds more than KEEP
 * free blocks, and again only after a trim has found nothing left. */
static void
test_surplus_told_once_until_trimmed(void **state)
{
	settle();
	assert_false(slab_trim());
	slab_on_surplus(on_surplus);
	surplus_calls = 0;
	alloc_n(KEEP, 300);
	free_n(KEEP);
	assert_int_equal(surplus_calls, 0);	/* KEEP is not a surplus */
	alloc_n(600, 300);
	free_n(600);
	assert_int_equal(surplus_calls, 1);
	alloc_n(700, 300);
	free_n(700);
	assert_int_equal(surplus_calls, 1);
	assert_true(slab_trim());	/* all were in use this period */
	assert_false(slab_trim());	/* down to KEEP: nothing more */
	alloc_n(600, 300);
	free_n(600);
	assert_int_equal(surplus_calls, 2);
	slab_on_surplus(NULL);
	settle();
}

/* Blocks too big for a class are plain malloc ones, never cached. */
static void
test_big_blocks_not_cached(void **state)
{
	settle();
	size_t base = slab_cached();
	alloc_n(10, 100000);
	free_n(10);
	assert_int_equal(slab_cached(), base);
}

/* At exit everything held goes back. */
static void
test_release_all(void **state)
{
	alloc_n(N, 64);
	free_n(N);
	assert_true(slab_cached() >= N);
	slab_release();
	assert_int_equal(slab_cached(), 0);
	alloc_n(3, 64);		/* and it works on afterwards */
	free_n(3);
	assert_int_equal(slab_cached(), 3);
	slab_release();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keeps_every_freed_block),
		cmocka_unit_test(test_trim_frees_what_stayed_idle),
		cmocka_unit_test(test_surplus_told_once_until_trimmed),
		cmocka_unit_test(test_big_blocks_not_cached),
		cmocka_unit_test(test_release_all),
	};
	return cmocka_run_group_tests_name("slab", tests, NULL, NULL);
}
