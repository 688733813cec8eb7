/* Unit tests for supervisor/intensity.c: OTP restart intensity. More than
 * max_restarts restarts within max_seconds means give up; the window
 * slides, so restarts spaced wider than max_seconds never add up. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "supervisor/intensity.h"

/* An arbitrary monotonic start: the module must not assume 0. */
#define T0	1000.0

/* max_restarts restarts in quick succession are allowed; the next one
 * within the window gives up. */
static void
test_r_then_give_up(void **state)
{
	struct intensity in;
	intensity_init(&in, 3, 5);
	assert_false(intensity_add(&in, T0 + 0.0));
	assert_false(intensity_add(&in, T0 + 0.1));
	assert_false(intensity_add(&in, T0 + 0.2));
	assert_true(intensity_add(&in, T0 + 0.3));
	intensity_release(&in);
}

/* All restarts at the very same instant count as within the window. */
static void
test_same_instant(void **state)
{
	struct intensity in;
	intensity_init(&in, 2, 1);
	assert_false(intensity_add(&in, T0));
	assert_false(intensity_add(&in, T0));
	assert_true(intensity_add(&in, T0));
	intensity_release(&in);
}

/* The R+1th restart just inside the window gives up. */
static void
test_edge_inside_window(void **state)
{
	struct intensity in;
	intensity_init(&in, 3, 5);
	assert_false(intensity_add(&in, T0));
	assert_false(intensity_add(&in, T0 + 1));
	assert_false(intensity_add(&in, T0 + 2));
	assert_true(intensity_add(&in, T0 + 4.9));
	intensity_release(&in);
}

/* A restart exactly max_seconds after the oldest counted one is still
 * within the window, as in OTP's supervisor (Now =< Then + Period); one
 * just beyond it is not. */
static void
test_edge_exactly_window(void **state)
{
	struct intensity in;
	intensity_init(&in, 1, 5);
	assert_false(intensity_add(&in, T0));
	assert_true(intensity_add(&in, T0 + 5));
	intensity_release(&in);

	intensity_init(&in, 1, 5);
	assert_false(intensity_add(&in, T0));
	assert_false(intensity_add(&in, T0 + 5.001));
	intensity_release(&in);
}

/* Restarts spaced wider than max_seconds never give up, however many. */
static void
test_spaced_never_give_up(void **state)
{
	struct intensity in;
	intensity_init(&in, 1, 5);
	for (int i = 0; i < 1000; i++)
		assert_false(intensity_add(&in, T0 + 5.5 * i));
	intensity_release(&in);

	/* R restarts per window, windows far apart: still never. */
	intensity_init(&in, 3, 5);
	for (int w = 0; w < 100; w++)
		for (int k = 0; k < 3; k++)
			assert_false(intensity_add(&in, T0 + 20.0 * w + 0.1 * k));
	intensity_release(&in);
}

/* The window slides: old restarts fall out of it one by one. */
static void
test_window_slides(void **state)
{
	struct intensity in;
	intensity_init(&in, 2, 10);
	assert_false(intensity_add(&in, T0 + 0));
	assert_false(intensity_add(&in, T0 + 5));
	/* T0 has left the window (11 s ago): 5, 11 remain, that is 2. */
	assert_false(intensity_add(&in, T0 + 11));
	/* 5, 11, 12 are three within 10 s. */
	assert_true(intensity_add(&in, T0 + 12));
	intensity_release(&in);

	/* A steady rate just under the limit never gives up. */
	intensity_init(&in, 2, 10);
	for (int i = 0; i < 300; i++)
		assert_false(intensity_add(&in, T0 + 5.1 * i));
	intensity_release(&in);
}

/* max_restarts 0: the very first restart already gives up. */
static void
test_zero_restarts(void **state)
{
	struct intensity in;
	intensity_init(&in, 0, 5);
	assert_true(intensity_add(&in, T0));
	intensity_release(&in);

	intensity_init(&in, 0, 3600);
	assert_true(intensity_add(&in, T0 + 123.0));
	intensity_release(&in);
}

/* reset forgets the past: R more restarts are allowed at once. */
static void
test_reset(void **state)
{
	struct intensity in;
	intensity_init(&in, 2, 60);
	assert_false(intensity_add(&in, T0));
	assert_false(intensity_add(&in, T0 + 1));
	intensity_reset(&in);
	assert_false(intensity_add(&in, T0 + 2));
	assert_false(intensity_add(&in, T0 + 3));
	assert_true(intensity_add(&in, T0 + 4));
	/* After giving up and a reset, the count starts over too. */
	intensity_reset(&in);
	assert_false(intensity_add(&in, T0 + 5));
	assert_false(intensity_add(&in, T0 + 6));
	assert_true(intensity_add(&in, T0 + 7));
	intensity_release(&in);
}

/* Once over the limit, further restarts in the window keep giving up. */
static void
test_stays_exceeded(void **state)
{
	struct intensity in;
	intensity_init(&in, 1, 10);
	assert_false(intensity_add(&in, T0));
	assert_true(intensity_add(&in, T0 + 1));
	assert_true(intensity_add(&in, T0 + 2));
	/* Then a quiet spell: a single restart later is fine again. */
	assert_false(intensity_add(&in, T0 + 100));
	intensity_release(&in);
}

/* Large R: a ring bigger than a few entries wraps correctly. */
static void
test_large_ring(void **state)
{
	struct intensity in;
	intensity_init(&in, 50, 10);
	for (int round = 0; round < 5; round++) {
		double base = T0 + 1000.0 * round;
		for (int i = 0; i < 50; i++)
			assert_false(intensity_add(&in, base + 0.01 * i));
		assert_true(intensity_add(&in, base + 0.6));
	}
	intensity_release(&in);
}

/* A large R costs memory only as restarts come: the ring starts small
 * and grows, keeping its times in order across each growth. */
static void
test_ring_grows_on_demand(void **state)
{
	struct intensity in;
	intensity_init(&in, 1000000, 10);
	assert_true(in.alloc <= 8);
	for (int i = 0; i < 100; i++)	/* 11 s apart: never 2 in a window */
		assert_false(intensity_add(&in, T0 + 11.0 * i));
	assert_true(in.alloc >= 100 && in.alloc <= 256);
	intensity_release(&in);

	intensity_init(&in, 20, 10);	/* grows 8, 16, 21, then wraps */
	for (int round = 0; round < 3; round++) {
		double base = T0 + 1000.0 * round;
		for (int i = 0; i < 20; i++)
			assert_false(intensity_add(&in, base + 0.1 * i));
		assert_true(intensity_add(&in, base + 9.0));
	}
	assert_int_equal(in.alloc, 21);
	intensity_release(&in);
}

static void
test_release_twice(void **state)
{
	struct intensity in;
	intensity_init(&in, 3, 5);
	intensity_release(&in);
	assert_null(in.times);
	intensity_release(&in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_r_then_give_up),
		cmocka_unit_test(test_same_instant),
		cmocka_unit_test(test_edge_inside_window),
		cmocka_unit_test(test_edge_exactly_window),
		cmocka_unit_test(test_spaced_never_give_up),
		cmocka_unit_test(test_window_slides),
		cmocka_unit_test(test_zero_restarts),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_stays_exceeded),
		cmocka_unit_test(test_large_ring),
		cmocka_unit_test(test_ring_grows_on_demand),
		cmocka_unit_test(test_release_twice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
