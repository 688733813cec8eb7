/* Unit tests for supervisor/pidset.c: the sorted set of pids strays and
 * the keeper keep. Members in any order, each once; removal says whether
 * it was there; the set grows past its first allocation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "supervisor/pidset.h"

static void
assert_sorted(const struct pidset *s)
{
	for (size_t i = 1; i < s->n; i++)
		assert_true(s->v[i - 1] < s->v[i]);
}

static void
test_add_has_del(void **state)
{
	struct pidset s = { 0 };
	assert_false(pidset_has(&s, 42));
	assert_false(pidset_del(&s, 42));
	pidset_add(&s, 42);
	pidset_add(&s, 7);
	pidset_add(&s, 100);
	pidset_add(&s, 42);	/* once */
	assert_int_equal(s.n, 3);
	assert_sorted(&s);
	assert_true(pidset_has(&s, 7));
	assert_true(pidset_has(&s, 42));
	assert_true(pidset_has(&s, 100));
	assert_false(pidset_has(&s, 8));
	assert_true(pidset_del(&s, 42));
	assert_false(pidset_del(&s, 42));
	assert_false(pidset_has(&s, 42));
	assert_true(pidset_has(&s, 7) && pidset_has(&s, 100));
	assert_int_equal(s.n, 2);
	pidset_clear(&s);
	assert_int_equal(s.n, 0);
	assert_false(pidset_has(&s, 7));
}

/* Past the first block of 64: 1..1000 added in a scattered order (7919
 * is prime to 1000), then the even ones removed: the odd ones are left,
 * in order. */
static void
test_grows(void **state)
{
	struct pidset s = { 0 };
	for (pid_t i = 0; i < 1000; i++)
		pidset_add(&s, 1 + i * 7919 % 1000);
	assert_int_equal(s.n, 1000);
	assert_sorted(&s);
	for (pid_t p = 2; p <= 1000; p += 2)
		assert_true(pidset_del(&s, p));
	assert_int_equal(s.n, 500);
	assert_sorted(&s);
	for (pid_t p = 0; p <= 1001; p++)
		assert_int_equal(pidset_has(&s, p), p >= 1 && p <= 1000 && p % 2);
	pidset_clear(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_has_del),
		cmocka_unit_test(test_grows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
