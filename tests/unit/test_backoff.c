/* Unit tests for supervisor/backoff.c: the restart delay of one worker
 * (SPEC 3 worker.restart_delay_ms / max_restart_delay_ms). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "supervisor/backoff.h"

#define QUICK	0.5		/* an uptime well inside BACKOFF_HEALTHY_S */

/* Quick deaths double the delay from base up to max, then stay at max. */
static void
test_doubles_to_max(void **state)
{
	struct backoff b = { 0 };
	static const int want[] = {
		100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		assert_int_equal(backoff_next(&b, QUICK, 100, 5000), want[i]);
}

/* A max that is an exact power-of-two multiple of base is reached
 * exactly, not overshot. */
static void
test_exact_max(void **state)
{
	struct backoff b = { 0 };
	assert_int_equal(backoff_next(&b, 0, 250, 1000), 250);
	assert_int_equal(backoff_next(&b, 0, 250, 1000), 500);
	assert_int_equal(backoff_next(&b, 0, 250, 1000), 1000);
	assert_int_equal(backoff_next(&b, 0, 250, 1000), 1000);
}

/* A long run of quick deaths neither overflows nor leaves [base, max]. */
static void
test_long_run_capped(void **state)
{
	struct backoff b = { 0 };
	for (int i = 0; i < 100000; i++) {
		int d = backoff_next(&b, 1.0, 100, 5000);
		assert_true(d >= 100 && d <= 5000);
		if (i >= 6)
			assert_int_equal(d, 5000);
	}
	/* A large max with a large base: doubling must not overflow int. */
	struct backoff c = { 0 };
	for (int i = 0; i < 64; i++) {
		int d = backoff_next(&c, 1.0, 1 << 29, 2000000000);
		assert_true(d >= 1 << 29 && d <= 2000000000);
	}
	assert_int_equal(backoff_next(&c, 1.0, 1 << 29, 2000000000), 2000000000);
}

/* A death after >= BACKOFF_HEALTHY_S of uptime restarts at once and
 * resets the sequence: the next quick death waits base again. */
static void
test_healthy_run_resets(void **state)
{
	struct backoff b = { 0 };
	assert_int_equal(backoff_next(&b, QUICK, 100, 5000), 100);
	assert_int_equal(backoff_next(&b, QUICK, 100, 5000), 200);
	assert_int_equal(backoff_next(&b, QUICK, 100, 5000), 400);
	assert_int_equal(backoff_next(&b, BACKOFF_HEALTHY_S, 100, 5000), 0);
	assert_int_equal(backoff_next(&b, QUICK, 100, 5000), 100);
	assert_int_equal(backoff_next(&b, QUICK, 100, 5000), 200);
	assert_int_equal(backoff_next(&b, 3600.0, 100, 5000), 0);
	assert_int_equal(backoff_next(&b, 3600.0, 100, 5000), 0);
	assert_int_equal(backoff_next(&b, QUICK, 100, 5000), 100);
}

/* The threshold: just under BACKOFF_HEALTHY_S is quick, at it is not. */
static void
test_threshold(void **state)
{
	struct backoff b = { 0 };
	assert_int_equal(backoff_next(&b, BACKOFF_HEALTHY_S - 0.001, 100, 5000),
	    100);
	assert_int_equal(backoff_next(&b, BACKOFF_HEALTHY_S - 0.001, 100, 5000),
	    200);
	assert_int_equal(backoff_next(&b, BACKOFF_HEALTHY_S, 100, 5000), 0);
	assert_int_equal(backoff_next(&b, 0.0, 100, 5000), 100);
	assert_true(BACKOFF_HEALTHY_S == 10.0);
}

/* base 0: never wait, however the worker died. */
static void
test_base_zero(void **state)
{
	struct backoff b = { 0 };
	for (int i = 0; i < 20; i++)
		assert_int_equal(backoff_next(&b, QUICK, 0, 5000), 0);
	assert_int_equal(backoff_next(&b, 60.0, 0, 5000), 0);
	assert_int_equal(backoff_next(&b, 0.0, 0, 0), 0);
	/* Switching to a non-zero base (a reload) starts at base. */
	assert_int_equal(backoff_next(&b, QUICK, 100, 5000), 100);
}

/* Two workers' backoffs are independent. */
static void
test_independent(void **state)
{
	struct backoff a = { 0 }, b = { 0 };
	assert_int_equal(backoff_next(&a, QUICK, 100, 5000), 100);
	assert_int_equal(backoff_next(&a, QUICK, 100, 5000), 200);
	assert_int_equal(backoff_next(&b, QUICK, 100, 5000), 100);
	assert_int_equal(backoff_next(&a, QUICK, 100, 5000), 400);
	assert_int_equal(backoff_next(&b, QUICK, 100, 5000), 200);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doubles_to_max),
		cmocka_unit_test(test_exact_max),
		cmocka_unit_test(test_long_run_capped),
		cmocka_unit_test(test_healthy_run_resets),
		cmocka_unit_test(test_threshold),
		cmocka_unit_test(test_base_zero),
		cmocka_unit_test(test_independent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
