/* Unit tests for registry/registry.c: the name -> node map of the tree.
 * Adds, lookups and removals, growth to many names, and the tombstones
 * that removals leave behind. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry.h"

#define MANY	10000

static int
setup(void **state)
{
	*state = reg_new();
	return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	reg_free(*state);
	return 0;
}

/* A distinct object address per index, without allocating one. */
static char objs[MANY];

static void
name_of(char *out, size_t n, const char *prefix, int i)
{
	snprintf(out, n, "%s/worker.%d", prefix, i);
}

static void
test_empty(void **state)
{
	struct registry *r = *state;
	enum reg_kind kind = REG_ROOT;
	assert_int_equal(reg_count(r), 0);
	assert_null(reg_lookup(r, "root", &kind));
	assert_null(reg_lookup(r, "", NULL));
}

static void
test_add_lookup_remove(void **state)
{
	struct registry *r = *state;
	enum reg_kind kind = REG_ROOT;
	assert_int_equal(reg_add(r, "pool/worker.1", REG_WORKER, &objs[1]), 0);
	assert_int_equal(reg_count(r), 1);
	assert_ptr_equal(reg_lookup(r, "pool/worker.1", &kind), &objs[1]);
	assert_int_equal(kind, REG_WORKER);
	assert_ptr_equal(reg_lookup(r, "pool/worker.1", NULL), &objs[1]);
	/* Names are whole paths: neither a prefix nor the short name match. */
	assert_null(reg_lookup(r, "worker.1", NULL));
	assert_null(reg_lookup(r, "pool/worker.", NULL));
	assert_null(reg_lookup(r, "pool/worker.10", NULL));
	assert_int_equal(reg_remove(r, "pool/worker.1"), 0);
	assert_int_equal(reg_count(r), 0);
	assert_null(reg_lookup(r, "pool/worker.1", &kind));
}

/* The registry copies the name: the caller's buffer may change. */
static void
test_name_is_copied(void **state)
{
	struct registry *r = *state;
	char buf[32] = "bridge/worker";
	assert_int_equal(reg_add(r, buf, REG_WORKER, &objs[2]), 0);
	buf[0] = 'X';
	assert_ptr_equal(reg_lookup(r, "bridge/worker", NULL), &objs[2]);
	assert_null(reg_lookup(r, buf, NULL));
}

static void
test_duplicate_add_fails(void **state)
{
	struct registry *r = *state;
	enum reg_kind kind = REG_ROOT;
	assert_int_equal(reg_add(r, "pool", REG_SUPERVISOR, &objs[1]), 0);
	assert_int_equal(reg_add(r, "pool", REG_WORKER, &objs[2]), -1);
	assert_int_equal(reg_count(r), 1);
	/* The first mapping is untouched. */
	assert_ptr_equal(reg_lookup(r, "pool", &kind), &objs[1]);
	assert_int_equal(kind, REG_SUPERVISOR);
}

static void
test_remove_missing_fails(void **state)
{
	struct registry *r = *state;
	assert_int_equal(reg_remove(r, "pool/worker.1"), -1);
	assert_int_equal(reg_add(r, "pool/worker.1", REG_WORKER, &objs[1]), 0);
	assert_int_equal(reg_remove(r, "pool/worker.2"), -1);
	assert_int_equal(reg_remove(r, "pool/worker.1"), 0);
	/* A second remove of the same name fails: it is gone. */
	assert_int_equal(reg_remove(r, "pool/worker.1"), -1);
	assert_int_equal(reg_count(r), 0);
}

/* Each kind comes back as it was added. */
static void
test_kinds(void **state)
{
	struct registry *r = *state;
	enum reg_kind kind;
	assert_int_equal(reg_add(r, "root", REG_ROOT, &objs[0]), 0);
	assert_int_equal(reg_add(r, "pool", REG_SUPERVISOR, &objs[1]), 0);
	assert_int_equal(reg_add(r, "pool/worker.1", REG_WORKER, &objs[2]), 0);
	assert_int_equal(reg_add(r, "bridge", REG_SUPERVISOR, NULL), 0);

	kind = REG_WORKER;
	assert_ptr_equal(reg_lookup(r, "root", &kind), &objs[0]);
	assert_int_equal(kind, REG_ROOT);
	kind = REG_ROOT;
	assert_ptr_equal(reg_lookup(r, "pool", &kind), &objs[1]);
	assert_int_equal(kind, REG_SUPERVISOR);
	kind = REG_ROOT;
	assert_ptr_equal(reg_lookup(r, "pool/worker.1", &kind), &objs[2]);
	assert_int_equal(kind, REG_WORKER);
	assert_int_equal(reg_count(r), 4);
}

/* Growth: many names, every one still found with its own object and
 * kind, and none of the names never added. */
static void
test_many_names(void **state)
{
	struct registry *r = *state;
	char name[64];
	for (int i = 0; i < MANY; i++) {
		name_of(name, sizeof name, "pool", i);
		assert_int_equal(reg_add(r, name, i % 2 ? REG_WORKER :
		    REG_SUPERVISOR, &objs[i]), 0);
		assert_int_equal(reg_count(r), (size_t)i + 1);
	}
	for (int i = 0; i < MANY; i++) {
		enum reg_kind kind = REG_ROOT;
		name_of(name, sizeof name, "pool", i);
		assert_ptr_equal(reg_lookup(r, name, &kind), &objs[i]);
		assert_int_equal(kind, i % 2 ? REG_WORKER : REG_SUPERVISOR);
		assert_int_equal(reg_add(r, name, REG_WORKER, NULL), -1);
	}
	for (int i = 0; i < 100; i++) {
		name_of(name, sizeof name, "bridge", i);
		assert_null(reg_lookup(r, name, NULL));
	}
	assert_int_equal(reg_count(r), MANY);
}

/* Removing every other name of many leaves the rest reachable, even
 * past the tombstones in their probe chains. */
static void
test_many_remove_half(void **state)
{
	struct registry *r = *state;
	char name[64];
	for (int i = 0; i < MANY; i++) {
		name_of(name, sizeof name, "pool", i);
		assert_int_equal(reg_add(r, name, REG_WORKER, &objs[i]), 0);
	}
	for (int i = 0; i < MANY; i += 2) {
		name_of(name, sizeof name, "pool", i);
		assert_int_equal(reg_remove(r, name), 0);
	}
	assert_int_equal(reg_count(r), MANY / 2);
	for (int i = 0; i < MANY; i++) {
		name_of(name, sizeof name, "pool", i);
		if (i % 2)
			assert_ptr_equal(reg_lookup(r, name, NULL), &objs[i]);
		else
			assert_null(reg_lookup(r, name, NULL));
	}
}

/* One name added and removed many times: the count and lookups stay
 * right, and the tombstones do not pile up into a full table (which
 * would make a lookup of a missing name probe forever). */
static void
test_tombstone_cycles_one_name(void **state)
{
	struct registry *r = *state;
	assert_int_equal(reg_add(r, "root", REG_ROOT, &objs[0]), 0);
	for (int i = 0; i < 50000; i++) {
		assert_int_equal(reg_add(r, "pool/worker.1", REG_WORKER,
		    &objs[i % MANY]), 0);
		assert_int_equal(reg_count(r), 2);
		assert_ptr_equal(reg_lookup(r, "pool/worker.1", NULL),
		    &objs[i % MANY]);
		assert_int_equal(reg_remove(r, "pool/worker.1"), 0);
		assert_int_equal(reg_count(r), 1);
		assert_null(reg_lookup(r, "pool/worker.1", NULL));
	}
	assert_ptr_equal(reg_lookup(r, "root", NULL), &objs[0]);
	assert_null(reg_lookup(r, "pool/overflow.1", NULL));
}

/* Many distinct names churned through a small live set: each add may
 * land on a tombstone or an empty slot; the table must keep finding the
 * live ones and never loop on a lookup of a missing name. */
static void
test_tombstone_cycles_many_names(void **state)
{
	struct registry *r = *state;
	char name[64];
	const int live = 8, rounds = 20000;
	for (int i = 0; i < rounds; i++) {
		name_of(name, sizeof name, "pool", i);
		assert_int_equal(reg_add(r, name, REG_WORKER, &objs[i % MANY]), 0);
		if (i >= live) {
			name_of(name, sizeof name, "pool", i - live);
			assert_int_equal(reg_remove(r, name), 0);
		}
		assert_int_equal(reg_count(r), (size_t)(i < live ? i + 1 : live));
	}
	for (int i = 0; i < rounds; i++) {
		name_of(name, sizeof name, "pool", i);
		if (i >= rounds - live)
			assert_ptr_equal(reg_lookup(r, name, NULL),
			    &objs[i % MANY]);
		else
			assert_null(reg_lookup(r, name, NULL));
	}
}

/* A removed name can be added back with a new object and kind (a
 * restarted subtree re-registers under its old name). */
static void
test_readd_after_remove(void **state)
{
	struct registry *r = *state;
	enum reg_kind kind = REG_ROOT;
	char name[64];
	for (int i = 0; i < 64; i++) {
		name_of(name, sizeof name, "pool", i);
		assert_int_equal(reg_add(r, name, REG_WORKER, &objs[i]), 0);
	}
	for (int i = 0; i < 64; i++) {
		name_of(name, sizeof name, "pool", i);
		assert_int_equal(reg_remove(r, name), 0);
		assert_int_equal(reg_add(r, name, REG_SUPERVISOR,
		    &objs[i + 100]), 0);
	}
	assert_int_equal(reg_count(r), 64);
	for (int i = 0; i < 64; i++) {
		name_of(name, sizeof name, "pool", i);
		assert_ptr_equal(reg_lookup(r, name, &kind), &objs[i + 100]);
		assert_int_equal(kind, REG_SUPERVISOR);
	}
}

/* Names of every length from 0 to 40 (the hash reads them a word, a
 * half word or a byte at a time, by length), each next to names that
 * differ from it in one byte: all distinct, all found. Each name is
 * allocated at its exact size, so ASan sees any read past its end. */
static void
test_every_length(void **state)
{
	struct registry *r = *state;
	int k = 0;
	for (size_t n = 0; n <= 40; n++) {
		for (size_t at = 0; at <= n; at++) {
			char *name = malloc(n + 1);
			memset(name, 'a', n);
			name[n] = '\0';
			if (at < n)
				name[at] = 'b';
			assert_int_equal(reg_add(r, name, REG_WORKER,
			    &objs[k]), 0);
			assert_int_equal(reg_add(r, name, REG_WORKER, NULL),
			    -1);
			assert_ptr_equal(reg_lookup(r, name, NULL), &objs[k++]);
			free(name);
		}
	}
	assert_int_equal(reg_count(r), (size_t)k);
}

static void
test_free_null(void **state)
{
	reg_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_lookup_remove, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_name_is_copied, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_add_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_remove_missing_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_remove_half, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tombstone_cycles_one_name,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_tombstone_cycles_many_names,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_readd_after_remove, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_every_length, setup,
		    teardown),
		cmocka_unit_test(test_free_null),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
