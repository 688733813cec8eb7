/* worker.sched_policy: each worker starts under the CPU scheduling policy
 * the key names (other, batch, idle), or under arbord's own (inherit, the
 * default), in pool and single mode, replacements included; a reload
 * changes the policy of the workers started after it, not of those
 * running. Read back with sched_getscheduler(2) on the worker's pid. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/xmalloc.h"
#include "tests/integration/harness.h"

/* A pool of 2 (bridge_mock) whose workers run under policy (NULL: the
 * key left out). */
static char *
pool_conf(const char *policy)
{
	char key[64] = "";
	if (policy)
		snprintf(key, sizeof key, " sched_policy = \"%s\";", policy);
	return xasprintf(
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { restart_delay_ms = 0;%s };\n"
	    "pool = { size = 2; max_overflow = 0; };\n"
	    "environments = { dev = { }; };\n", key);
}

static struct arb *
start_pool(const char *policy)
{
	char *conf = pool_conf(policy);
	struct arb *a = arb_start(conf, "dev", NULL);
	free(conf);
	json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	return a;
}

/* The policy of worker name, ready (the pid that is not other_than). */
static int
policy_of(struct arb *a, const char *name, json_int_t other_than,
    json_int_t *pid)
{
	json_int_t p = arb_wait_ready_pid(a, name, other_than);
	int policy = sched_getscheduler((pid_t)p);
	assert_true(policy >= 0);
	if (pid)
		*pid = p;
	return policy;
}

/* An echo through the pool answers: the policy does not stop the work. */
static void
echo_ok(struct arb *a)
{
	json_t *r = arb_call_ok(a, json_pack("{s:s,s:s,s:{s:i}}", "op",
	    "execute", "command", "echo", "args", "n", 1));
	json_decref(r);
}

/* Kills worker name (pid) and returns the policy of its replacement. */
static int
policy_after_kill(struct arb *a, const char *name, json_int_t pid)
{
	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	return policy_of(a, name, pid, NULL);
}

static void
test_batch_and_idle_in_pool(void **state)
{
	static const struct { const char *word; int policy; } cases[] = {
		{ "batch", SCHED_BATCH }, { "idle", SCHED_IDLE },
		{ "other", SCHED_OTHER },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct arb *a = start_pool(cases[i].word);
		json_int_t pid;
		assert_int_equal(policy_of(a, "pool/worker.1", 0, &pid),
		    cases[i].policy);
		assert_int_equal(policy_of(a, "pool/worker.2", 0, NULL),
		    cases[i].policy);
		assert_int_equal(sched_getscheduler(arb_pid(a)), SCHED_OTHER);
		echo_ok(a);
		assert_int_equal(policy_after_kill(a, "pool/worker.1", pid),
		    cases[i].policy);
		assert_int_equal(arb_stop(a), 0);
	}
}

/* inherit (the key left out) gives workers arbord's policy, which other
 * overrides: arbord is moved to SCHED_BATCH while it runs, then a worker
 * is replaced. */
static void
test_inherit_follows_arbord(void **state)
{
	static const struct { const char *word; int policy; } cases[] = {
		{ NULL, SCHED_BATCH }, { "inherit", SCHED_BATCH },
		{ "other", SCHED_OTHER },
	};
	struct sched_param none = { 0 };
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct arb *a = start_pool(cases[i].word);
		json_int_t pid;
		assert_int_equal(policy_of(a, "pool/worker.1", 0, &pid),
		    SCHED_OTHER);
		assert_int_equal(sched_setscheduler(arb_pid(a), SCHED_BATCH,
		    &none), 0);
		assert_int_equal(policy_after_kill(a, "pool/worker.1", pid),
		    cases[i].policy);
		assert_int_equal(arb_stop(a), 0);
	}
}

static void
test_single_mode_worker(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { adapter = \"bridge_mock\"; };\n"
	    "worker = { sched_policy = \"batch\"; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	assert_int_equal(policy_of(a, "bridge/worker", 0, NULL), SCHED_BATCH);
	echo_ok(a);
	assert_int_equal(arb_stop(a), 0);
}

/* A reload names the key as changed; the running workers keep the policy
 * they started with, a worker started after it takes the new one. */
static void
test_reload_applies_to_new_workers(void **state)
{
	struct arb *a = start_pool(NULL);
	json_int_t pid;
	assert_int_equal(policy_of(a, "pool/worker.1", 0, &pid), SCHED_OTHER);
	char *conf = pool_conf("batch");
	arb_rewrite_config(a, conf);
	free(conf);
	json_t *r = arb_op_ok(a, "reload");
	json_t *changed = json_object_get(r, "changed");
	assert_int_equal(json_array_size(changed), 1);
	assert_string_equal(json_string_value(json_array_get(changed, 0)),
	    "worker.sched_policy");
	json_decref(r);
	assert_int_equal(policy_of(a, "pool/worker.1", 0, NULL), SCHED_OTHER);
	assert_int_equal(policy_of(a, "pool/worker.2", 0, NULL), SCHED_OTHER);
	assert_int_equal(policy_after_kill(a, "pool/worker.1", pid),
	    SCHED_BATCH);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_batch_and_idle_in_pool,
		    arb_teardown),
		cmocka_unit_test_teardown(test_inherit_follows_arbord,
		    arb_teardown),
		cmocka_unit_test_teardown(test_single_mode_worker,
		    arb_teardown),
		cmocka_unit_test_teardown(test_reload_applies_to_new_workers,
		    arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
