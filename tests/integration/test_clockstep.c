/* A step of the wall clock (NTP correcting a clock that was off, `date
 * -s`, a VM resumed) changes nothing arbord measures: durations and
 * deadlines run on the monotonic clock. arbord runs with
 * tests/clock_step.so preloaded, which moves its wall clock by what the
 * test writes in a file. After a step back of an hour, the tree's
 * uptime_ms and last_activity_ms stay what they were, counting on (not
 * negative, not an hour off), and a request's timeout_ms and a waiting
 * request's checkout_timeout_ms still end it on time (not an hour
 * later); after a step forward, a session is not taken for idle past its
 * ttl (nor counted in stale_sessions_cleaned). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/xmalloc.h"
#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define SHIM		"tests/clock_step.so"
#define HOUR_S		3600
#define WATCH_MS	2000	/* long enough for libev to see a step (0.5 s) */

static const char CONF_FMT[] =
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "pool = { size = %d; max_overflow = 0; checkout_timeout_ms = %d;\n"
    "  session_ttl_ms = %d; };\n"
    "environments = { dev = { }; };\n";

struct stepper {
	struct arb	*a;
	char		*file;		/* the shim's control file */
	char		*env[3];	/* ARBOR_CLOCK_STEP=, LD_PRELOAD=, NULL */
};

/* Moves arbord's wall clock to the true time + s seconds. */
static void
step_to(const struct stepper *st, long s)
{
	FILE *f = fopen(st->file, "w");
	if (f == NULL || fprintf(f, "%ld\n", s) < 0 || fclose(f) != 0)
		fail_msg("cannot write %s", st->file);
}

/* arbord up with the shim preloaded (its map says so), its clock true. */
static void
start_stepped(struct stepper *st, int size, int checkout_ms, int ttl_ms)
{
	char *conf = xasprintf(CONF_FMT, size, checkout_ms, ttl_ms);
	st->a = arb_new(conf);
	free(conf);
	st->file = xasprintf("%s/clock_step", arb_dir(st->a));
	step_to(st, 0);
	st->env[0] = xasprintf("ARBOR_CLOCK_STEP=%s", st->file);
	st->env[1] = arb_preload(SHIM);
	st->env[2] = NULL;
	arb_spawn(st->a, "dev", (const char *const *)st->env);
	if (arb_wait_ready(st->a, ARB_START_MS) < 0)
		fail_msg("arbord did not come up");
	char *maps = xasprintf("/proc/%d/maps", (int)arb_pid(st->a));
	FILE *f = fopen(maps, "r");
	char line[4096];
	bool loaded = false;
	while (f && !loaded && fgets(line, sizeof line, f))
		loaded = strstr(line, "/clock_step.so") != NULL;
	if (f)
		fclose(f);
	free(maps);
	assert_true(loaded);
	json_decref(arb_wait_all_ready(st->a, "pool", (size_t)size,
	    ARB_EVENT_MS));
}

static void
stop_stepped(struct stepper *st)
{
	step_to(st, 0);
	arb_stop(st->a);
	free(st->file);
	free(st->env[0]);
	free(st->env[1]);
}

/* Each of the node's time figures is at least what it was (at *prev,
 * which it replaces) and at most what has passed since since_ms. */
static void
check_times(json_t *node, json_int_t *prev, long long since_ms)
{
	json_int_t up = arb_node_int(node, "uptime_ms");
	json_int_t idle = arb_node_int(json_object_get(node, "stats"),
	    "last_activity_ms");
	long long bound = arb_now_ms() - since_ms + 1000;
	if (up < prev[0] || up > bound || idle < -1 || idle > bound)
		fail_msg("%s: uptime_ms %lld (was %lld), last_activity_ms "
		    "%lld, with %lld ms passed", arb_node_str(node, "name"),
		    (long long)up, (long long)prev[0], (long long)idle,
		    bound - 1000);
	prev[0] = up;
	if (idle >= 0) {
		if (idle < prev[1])
			fail_msg("%s: last_activity_ms went back: %lld < %lld",
			    arb_node_str(node, "name"), (long long)idle,
			    (long long)prev[1]);
		prev[1] = idle;
	}
}

/* Fails the test unless reply (freed here) is an error with code. */
static void
expect_code(json_t *reply, const char *code)
{
	const char *got = reply ? arb_reply_code(reply) : NULL;
	if (got == NULL || strcmp(got, code) != 0)
		fail_msg("expected %s, got %s", code,
		    reply ? cl_describe(reply) : "no reply");
	json_decref(reply);
}

/* The tree's uptimes and a worker's idle time count on through a step
 * back of an hour, as `status` and arborctl show them. */
static void
test_step_back_uptimes(void **state)
{
	struct stepper st;
	long long t0 = arb_now_ms();
	start_stepped(&st, 1, 5000, 0);
	json_decref(cl_exec_ok(st.a, "echo", NULL, NULL));
	static const char *const names[] = { "root", "pool", "pool/worker.1" };
	json_int_t prev[3][2] = { { 0, -1 }, { 0, -1 }, { 0, -1 } };
	step_to(&st, -HOUR_S);
	for (long long end = arb_now_ms() + WATCH_MS; arb_now_ms() < end;) {
		json_t *tree = arb_status(st.a, NULL);
		assert_non_null(tree);
		for (size_t i = 0; i < 3; i++)
			check_times(arb_find(tree, names[i]), prev[i], t0);
		json_decref(tree);
		arb_sleep_ms(100);
	}
	char out[4096];
	assert_int_equal(arb_ctl(st.a, out, sizeof out, "status", NULL), 0);
	assert_null(strstr(out, "up -"));
	stop_stepped(&st);
}

/* A request's timeout_ms passes on time after a step back. */
static void
test_step_back_request_deadline(void **state)
{
	struct stepper st;
	start_stepped(&st, 1, 5000, 0);
	struct cl_conn *c = cl_open(st.a);
	json_t *req = cl_exec_req(7, "hang", NULL, NULL, 3000);
	cl_send(c, req);
	json_decref(req);
	assert_true(cl_wait_stat(st.a, "busy", 1, 1, ARB_EVENT_MS));
	step_to(&st, -HOUR_S);
	json_t *r = cl_recv(c, ARB_EVENT_MS);
	if (r == NULL)
		fail_msg("no reply to a request with timeout_ms 3000 within "
		    "%d ms of a step back", ARB_EVENT_MS);
	expect_code(r, "timeout");
	cl_close(c);
	stop_stepped(&st);
}

/* A waiting request's checkout_timeout_ms passes on time after a step
 * back: it gets pool_timeout, rather than the worker once it is free. */
static void
test_step_back_checkout_deadline(void **state)
{
	struct stepper st;
	start_stepped(&st, 1, 1500, 0);
	struct cl_conn *busy = cl_send_held(st.a, 1, "sleep",
	    cl_hold_args(CL_HOLD_MS), NULL, "busy", 1);
	struct cl_conn *c = cl_send_held(st.a, 2, "echo", NULL, NULL,
	    "waiting", 1);
	step_to(&st, -HOUR_S);
	json_t *r = cl_recv(c, ARB_EVENT_MS);
	expect_code(r, "pool_timeout");
	cl_release(st.a, "pool/worker.1");
	json_decref(cl_recv_ok(busy, ARB_EVENT_MS, "the sleep"));
	cl_close(c);
	cl_close(busy);
	stop_stepped(&st);
}

/* After a step forward of an hour, a session is not taken for idle past
 * its ttl: when the ttl's sweep ends the session idle longest, the one
 * used GAP_MS after it stays, to end GAP_MS later (stale_sessions_cleaned
 * reads 1 before it reads 2). */
#define TTL_MS	6000
#define GAP_MS	3000
static void
test_step_forward_sessions(void **state)
{
	struct stepper st;
	start_stepped(&st, 1, 5000, TTL_MS);
	json_decref(cl_exec_ok(st.a, "echo", NULL, "x"));
	arb_sleep_ms(GAP_MS);	/* spaces the two sessions' last use */
	json_decref(cl_exec_ok(st.a, "echo", NULL, "y"));
	step_to(&st, HOUR_S);
	json_int_t stale = 0;
	for (long long end = arb_now_ms() + TTL_MS + ARB_EVENT_MS;
	    stale == 0 && arb_now_ms() < end; arb_sleep_ms(50))
		stale = cl_stat(st.a, "stale_sessions_cleaned");
	assert_int_equal(stale, 1);
	assert_true(cl_wait_stat(st.a, "stale_sessions_cleaned", 2, 2,
	    ARB_EVENT_MS));
	stop_stepped(&st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_step_back_uptimes, arb_teardown),
		cmocka_unit_test_teardown(test_step_back_request_deadline,
		    arb_teardown),
		cmocka_unit_test_teardown(test_step_back_checkout_deadline,
		    arb_teardown),
		cmocka_unit_test_teardown(test_step_forward_sessions,
		    arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
