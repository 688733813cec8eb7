/* The three test layers of the seed system, on the `test` environment with
 * TEST_MODE choosing the layer (SPEC 3):
 *   1 mock_adapter      adapter mock: arbord answers execute itself, no
 *                       worker process at all;
 *   2 bridge_mock       mock_worker as bridge/worker (mode single);
 *   3 full_integration  a pool of 2 Python bridge workers.
 * Layers 2 and 3 run the same scenario of bridge commands in a session.
 *
 * With TEST_MODE set in this program's environment only that layer runs
 * (the others are skipped); without it all three run. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define BRIDGE_WORKER	"workers/python/bridge_worker.py"

static const char *const layers[] = { "mock_adapter", "bridge_mock",
    "full_integration", NULL };

/* Skips the running test unless TEST_MODE is unset or names layer. */
static void
select_layer(const char *layer)
{
	const char *want = getenv("TEST_MODE");
	if (want == NULL || *want == '\0' || strcmp(want, layer) == 0)
		return;
	print_message("TEST_MODE=%s: layer %s skipped\n", want, layer);
	skip();
}

/* arbord on the test environment of a config shaped like
 * conf/arbor.conf's, with TEST_MODE=layer. */
static struct arb *
start_layer(const char *layer)
{
	char *root = arb_repo_root(BRIDGE_WORKER);
	char body[PATH_MAX + 1024], mode[64];
	snprintf(body, sizeof body,
	    "default_environment = \"dev\";\n"
	    "bridge = { enabled = true; pooling_enabled = false;"
	    " adapter = \"auto\"; };\n"
	    "worker = {\n"
	    "  command = [ \"python3\", \"%s/%s\" ];\n"
	    "  env = { PYTHONUNBUFFERED = \"1\"; };\n"
	    "};\n"
	    "environments = {\n"
	    "  dev = { };\n"
	    "  test = {\n"
	    "    pool = { size = 2; };\n"
	    "    worker = { health_interval_ms = 2000;"
	    " shutdown_timeout_ms = 2000;\n"
	    "      restart_delay_ms = 50; max_restart_delay_ms = 1000; };\n"
	    "  };\n"
	    "};\n", root, BRIDGE_WORKER);
	free(root);
	snprintf(mode, sizeof mode, "TEST_MODE=%s", layer);
	return arb_start(body, "test", mode, NULL);
}

/* Checks the root's env, mode and adapter. */
static void
assert_root(struct arb *a, const char *mode, const char *adapter)
{
	json_t *tree = arb_status(a, NULL);
	assert_non_null(tree);
	assert_string_equal(arb_node_str(tree, "env"), "test");
	assert_string_equal(arb_node_str(tree, "mode"), mode);
	assert_string_equal(arb_node_str(tree, "adapter"), adapter);
	json_decref(tree);
}

/* ---- the bridge scenario of layers 2 and 3 ---- */

/* An execute in session sid that must succeed on the session's worker
 * (the first call records it in worker). The reply's result, borrowed
 * from *reply, which the caller frees. */
static json_t *
bridge_ok(struct arb *a, const char *sid, char *worker, size_t wlen,
    const char *command, json_t *args, json_t **reply)
{
	*reply = cl_exec_ok(a, command, args, sid);
	const char *w = cl_reply_worker(*reply);
	assert_non_null(w);
	if (worker[0] == '\0')
		snprintf(worker, wlen, "%s", w);
	assert_string_equal(w, worker);
	return json_object_get(*reply, "result");
}

/* The sorted program ids of list_programs in session sid, as one
 * comma-separated string (caller frees). */
static char *
list_programs(struct arb *a, const char *sid)
{
	json_t *r = cl_exec_ok(a, "list_programs", NULL, sid);
	json_t *ids = json_object_get(json_object_get(r, "result"), "programs");
	assert_true(json_is_array(ids));
	size_t n = json_array_size(ids);
	const char *v[16];
	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++) {
		v[i] = json_string_value(json_array_get(ids, i));
		assert_non_null(v[i]);
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			const char *t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	}
	char *out = calloc(1, 1024);
	for (size_t i = 0; i < n; i++)
		snprintf(out + strlen(out), 1024 - strlen(out), "%s%s",
		    i ? "," : "", v[i]);
	json_decref(r);
	return out;
}

static void
assert_programs(struct arb *a, const char *sid, const char *want)
{
	char *got = list_programs(a, sid);
	assert_string_equal(got, want);
	free(got);
}

/* The session under test and the worker serving it. */
struct scen {
	const char	*sid;
	char		 worker[64];
	char		 gen[64];	/* the generated program id */
};

/* create_program with and without a program_id. */
static void
scenario_create(struct arb *a, struct scen *sc)
{
	json_t *r;
	json_t *res = bridge_ok(a, sc->sid, sc->worker, sizeof sc->worker,
	    "create_program", json_pack("{s:s,s:s}", "signature",
	    "question -> answer", "program_id", "qa"), &r);
	assert_string_equal(json_string_value(json_object_get(res,
	    "program_id")), "qa");
	json_decref(r);
	res = bridge_ok(a, sc->sid, sc->worker, sizeof sc->worker,
	    "create_program", json_pack("{s:s}", "signature", "a, b -> c"), &r);
	const char *gen = json_string_value(json_object_get(res, "program_id"));
	assert_non_null(gen);
	assert_string_not_equal(gen, "qa");
	snprintf(sc->gen, sizeof sc->gen, "%s", gen);
	json_decref(r);
}

/* execute_program on both programs: the deterministic mock model. */
static void
scenario_execute(struct arb *a, struct scen *sc)
{
	json_t *r;
	json_t *res = bridge_ok(a, sc->sid, sc->worker, sizeof sc->worker,
	    "execute_program", json_pack("{s:s,s:{s:s}}", "program_id", "qa",
	    "inputs", "question", "hi"), &r);
	json_t *want = json_pack("{s:s,s:{s:s}}", "program_id", "qa",
	    "outputs", "answer", "answer: hi");
	assert_true(json_equal(res, want));
	json_decref(want);
	json_decref(r);
	res = bridge_ok(a, sc->sid, sc->worker, sizeof sc->worker,
	    "execute_program", json_pack("{s:s,s:{s:s,s:i}}", "program_id",
	    sc->gen, "inputs", "a", "x", "b", 1), &r);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    res, "outputs"), "c")), "c: x 1");
	json_decref(r);
}

/* list_programs, get_program_info, delete_program. */
static void
scenario_inspect(struct arb *a, struct scen *sc)
{
	bool gen_first = strcmp(sc->gen, "qa") < 0;
	char both[160];
	snprintf(both, sizeof both, "%s,%s", gen_first ? sc->gen : "qa",
	    gen_first ? "qa" : sc->gen);
	assert_programs(a, sc->sid, both);
	json_t *r;
	json_t *res = bridge_ok(a, sc->sid, sc->worker, sizeof sc->worker,
	    "get_program_info", json_pack("{s:s}", "program_id", "qa"), &r);
	assert_string_equal(json_string_value(json_object_get(res,
	    "program_id")), "qa");
	assert_string_equal(json_string_value(json_object_get(res,
	    "signature")), "question -> answer");
	assert_int_equal(json_integer_value(json_object_get(res,
	    "executions")), 1);
	json_decref(r);
	res = bridge_ok(a, sc->sid, sc->worker, sizeof sc->worker,
	    "delete_program", json_pack("{s:s}", "program_id", sc->gen), &r);
	assert_true(json_is_true(json_object_get(res, "deleted")));
	json_decref(r);
	assert_programs(a, sc->sid, "qa");
}

/* An unknown program, another session, end_session's cleanup. */
static void
scenario_finish(struct arb *a, struct scen *sc)
{
	json_t *r = cl_exec_err(a, "execute_program",
	    json_pack("{s:s,s:{s:s}}", "program_id", "nope", "inputs",
	    "question", "hi"), sc->sid, "worker_error");
	assert_string_equal(cl_reply_message(r), "program not found: nope");
	json_decref(r);
	assert_programs(a, "layer-s2", "");	/* sessions do not share */
	r = arb_call_ok(a, json_pack("{s:s,s:s}", "op", "end_session",
	    "session_id", sc->sid));
	assert_true(json_is_true(json_object_get(r, "ended")));
	json_decref(r);
	assert_programs(a, sc->sid, "");	/* cleaned up */
}

/* The bridge commands in one session, every reply from one worker. */
static void
bridge_scenario(struct arb *a)
{
	struct scen sc = { .sid = "layer-s1" };
	scenario_create(a, &sc);
	scenario_execute(a, &sc);
	scenario_inspect(a, &sc);
	scenario_finish(a, &sc);
}

/* ---- the layers ---- */

static void
test_layer1_mock_adapter(void **state)
{
	select_layer("mock_adapter");
	struct arb *a = start_layer("mock_adapter");
	assert_root(a, "single", "mock");
	json_t *tree = arb_status(a, NULL);
	assert_int_equal(arb_node_nchildren(tree), 0);
	json_decref(tree);
	json_t *r = cl_exec_ok(a, "echo", json_pack("{s:i}", "x", 1), NULL);
	json_t *want = json_pack("{s:b,s:s,s:{s:i}}", "mock", 1, "command",
	    "echo", "args", "x", 1);
	assert_true(json_equal(json_object_get(r, "result"), want));
	json_decref(want);
	json_decref(r);
	r = cl_exec_ok(a, "create_program", json_pack("{s:s}", "signature",
	    "question -> answer"), "s1");
	assert_true(json_is_true(json_object_get(json_object_get(r, "result"),
	    "mock")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    r, "result"), "command")), "create_program");
	json_decref(r);
	r = arb_op_ok(a, "health");
	assert_string_equal(json_string_value(json_object_get(r, "health")),
	    "healthy");
	assert_int_equal(json_integer_value(json_object_get(r, "ready")), 0);
	assert_int_equal(json_integer_value(json_object_get(r, "expected")), 0);
	json_decref(r);
	assert_int_equal(arb_children(a, NULL, 0), 0);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_layer2_bridge_mock(void **state)
{
	select_layer("bridge_mock");
	struct arb *a = start_layer("bridge_mock");
	arb_wait_ready_pid(a, "bridge/worker", 0);
	assert_root(a, "single", "bridge_mock");
	bridge_scenario(a);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_layer3_full_integration(void **state)
{
	select_layer("full_integration");
	struct arb *a = start_layer("full_integration");
	json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
	assert_non_null(tree);
	json_decref(tree);
	assert_root(a, "pool", "python_pool");
	bridge_scenario(a);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const char *mode = getenv("TEST_MODE");
	bool known = mode == NULL || *mode == '\0';
	for (size_t i = 0; !known && layers[i] != NULL; i++)
		known = strcmp(mode, layers[i]) == 0;
	if (!known) {
		fprintf(stderr, "TEST_MODE=%s: not one of mock_adapter, "
		    "bridge_mock, full_integration\n", mode);
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_layer1_mock_adapter, arb_teardown),
		cmocka_unit_test_teardown(test_layer2_bridge_mock, arb_teardown),
		cmocka_unit_test_teardown(test_layer3_full_integration, arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
