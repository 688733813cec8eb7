/* The conditional root end to end: each environment and TEST_MODE resolves
 * to the mode, adapter and tree SPEC 3 and 4 give, `arbord -t` prints the
 * resolved settings, a bad config exits 78 naming file, line and key, and
 * `arborctl status` shows the same tree. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

/* dev: single; test: pool of 2 (overlay); prod: pool of 3 (top level).
 * default_environment is prod, so a run without -e is told from "dev". */
static const char MODES_CONF[] =
    "default_environment = \"prod\";\n"
    "bridge = { adapter = \"bridge_mock\"; };\n"
    "pool = { size = 3; };\n"
    "environments = {\n"
    "  dev  = { };\n"
    "  test = { bridge = { pooling_enabled = true; }; pool = { size = 2; }; };\n"
    "  prod = { bridge = { pooling_enabled = true; }; };\n"
    "};\n";

static const char DISABLED_CONF[] =
    "bridge = { enabled = false; adapter = \"bridge_mock\"; };\n"
    "environments = { dev = { }; };\n";

/* Mode disabled with adapter auto (the default). */
static const char DISABLED_AUTO_CONF[] =
    "bridge = { enabled = false; };\n"
    "environments = { dev = { }; };\n";

/* adapter auto and a worker command that cannot run: only a TEST_MODE
 * override gives ready workers. */
static const char TESTMODE_CONF[] =
    "worker = { command = [ \"/nonexistent/arbor-test-worker\" ]; };\n"
    "environments = {\n"
    "  test = { bridge = { pooling_enabled = true; }; pool = { size = 2; }; };\n"
    "  prod = { };\n"
    "};\n";

#define OUT_MAX	65536

/* An uptime as arborctl shows it: 12s, 5m03s, 3h02m, 2d04h. */
#define DUR	"([0-9]+s|[0-9]+m[0-5][0-9]s|[0-9]+h[0-5][0-9]m|[0-9]+d[0-2][0-9]h)"
#define PID	"pid [1-9][0-9]*"
#define WORKER	"ready  " PID "  up " DUR "  healthy  sessions 0  req 0  err 0\n"

/* `arborctl status` (human view) matches the extended regex want, the
 * whole output at once. */
static void
assert_status_view(struct arb *a, const char *want)
{
	static char out[OUT_MAX];
	regex_t re;
	assert_int_equal(regcomp(&re, want, REG_EXTENDED | REG_NOSUB), 0);
	int code = arb_ctl(a, out, OUT_MAX, "status", NULL);
	int m = regexec(&re, out, 0, NULL, 0);
	regfree(&re);
	if (code != 0 || m != 0) {
		fprintf(stderr, "exit %d, stdout:\n%s\nwanted:\n%s\n", code,
		    out, want);
		fail_msg("arborctl status: not the expected view");
	}
}

/* Checks the root node's identity fields. */
static void
assert_root(struct arb *a, json_t *tree, const char *env, const char *mode,
    const char *adapter)
{
	assert_string_equal(arb_node_str(tree, "name"), "root");
	assert_string_equal(arb_node_str(tree, "kind"), "supervisor");
	assert_string_equal(arb_node_str(tree, "state"), "running");
	assert_string_equal(arb_node_str(tree, "env"), env);
	assert_string_equal(arb_node_str(tree, "mode"), mode);
	assert_string_equal(arb_node_str(tree, "adapter"), adapter);
	assert_string_equal(arb_node_str(tree, "strategy"), "one_for_one");
	assert_int_equal(arb_node_int(tree, "pid"), arb_pid(a));
	assert_non_null(arb_node_str(tree, "version"));
	assert_true(arb_node_int(tree, "max_restarts") >= 0);
	assert_true(arb_node_int(tree, "max_seconds") >= 0);
}

/* Checks one worker node that has come up: a live child of arbord. */
static void
assert_ready_worker(struct arb *a, json_t *node, const char *name)
{
	assert_non_null(node);
	assert_string_equal(arb_node_str(node, "name"), name);
	assert_string_equal(arb_node_str(node, "kind"), "worker");
	assert_string_equal(arb_node_str(node, "state"), "ready");
	assert_string_equal(arb_node_str(node, "health"), "healthy");
	assert_int_equal(arb_node_nchildren(node), 0);
	assert_true(json_is_array(json_object_get(node, "children")));
	assert_true(json_is_object(json_object_get(node, "stats")));
	json_int_t pid = arb_node_pid(node);
	assert_true(pid > 0);
	assert_true(proc_exists((pid_t)pid));
	assert_int_equal(proc_ppid((pid_t)pid), arb_pid(a));
}

/* The pool subtree: root -> pool -> pool/worker.1..n, all ready. */
static void
assert_pool_tree(struct arb *a, size_t n)
{
	json_t *tree = arb_wait_all_ready(a, "pool", n, ARB_EVENT_MS);
	assert_non_null(tree);
	assert_int_equal(arb_node_nchildren(tree), 1);
	json_t *pool = arb_find(tree, "pool");
	assert_ptr_equal(pool, json_array_get(json_object_get(tree,
	    "children"), 0));
	assert_string_equal(arb_node_str(pool, "kind"), "supervisor");
	assert_string_equal(arb_node_str(pool, "state"), "running");
	assert_string_equal(arb_node_str(pool, "strategy"), "one_for_one");
	static const char *const ints[] = { "restarts", "uptime_ms",
	    "max_restarts", "max_seconds", "max_overflow", "waiting" };
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
		assert_true(json_is_integer(json_object_get(pool, ints[i])));
	assert_int_equal(arb_node_int(pool, "waiting"), 0);
	json_int_t pids[16];
	assert_int_equal(arb_worker_pids(tree, pids, 16), n);
	for (size_t i = 0; i < n; i++) {
		char name[48];
		snprintf(name, sizeof name, "pool/worker.%zu", i + 1);
		assert_ready_worker(a, arb_find(tree, name), name);
		for (size_t j = 0; j < i; j++)
			assert_true(pids[i] != pids[j]);
	}
	json_decref(tree);
}

static void
test_dev_is_single(void **state)
{
	struct arb *a = arb_start(MODES_CONF, "dev", NULL);
	arb_wait_ready_pid(a, "bridge/worker", 0);
	json_t *tree = arb_status(a, NULL);
	assert_non_null(tree);
	assert_root(a, tree, "dev", "single", "bridge_mock");
	assert_int_equal(arb_node_nchildren(tree), 1);
	json_t *bridge = json_array_get(json_object_get(tree, "children"), 0);
	assert_string_equal(arb_node_str(bridge, "name"), "bridge");
	assert_string_equal(arb_node_str(bridge, "kind"), "supervisor");
	assert_int_equal(arb_node_nchildren(bridge), 1);
	assert_ready_worker(a, arb_find(tree, "bridge/worker"), "bridge/worker");
	json_decref(tree);
	assert_status_view(a, "^root  running  env=dev mode=single "
	    "adapter=bridge_mock  " PID "  up " DUR "\n"
	    "└─ bridge  running  one_for_one  1/1 ready  busy 0  restarts 0\n"
	    "   └─ worker  " WORKER "$");
	assert_int_equal(arb_stop(a), 0);
}

static void
test_test_env_is_pool_of_two(void **state)
{
	struct arb *a = arb_start(MODES_CONF, "test", NULL);
	assert_pool_tree(a, 2);
	json_t *tree = arb_status(a, NULL);
	assert_root(a, tree, "test", "pool", "bridge_mock");
	json_decref(tree);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_prod_is_pool_of_three(void **state)
{
	struct arb *a = arb_start(MODES_CONF, "prod", NULL);
	assert_pool_tree(a, 3);
	json_t *tree = arb_status(a, NULL);
	assert_root(a, tree, "prod", "pool", "bridge_mock");
	json_decref(tree);
	assert_int_equal(arb_stop(a), 0);
}

/* Without -e and $ARBOR_ENV, the file's default_environment applies. */
static void
test_default_environment(void **state)
{
	struct arb *a = arb_start(MODES_CONF, NULL, NULL);
	json_t *tree = arb_status(a, NULL);
	assert_non_null(tree);
	assert_string_equal(arb_node_str(tree, "env"), "prod");
	assert_string_equal(arb_node_str(tree, "mode"), "pool");
	json_decref(tree);
	assert_int_equal(arb_stop(a), 0);
}

/* restart root without a subtree (modes disabled and mock): like OTP's
 * restart of a supervisor with no children, it succeeds and starts
 * nothing; the root runs on, still without children or processes. */
static void
assert_root_restart_empty(struct arb *a)
{
	json_t *r = arb_call_ok(a, json_pack("{s:s, s:s}", "op", "restart",
	    "name", "root"));
	assert_string_equal(arb_node_str(r, "restarted"), "root");
	json_decref(r);
	json_t *tree = arb_status(a, NULL);
	assert_non_null(tree);
	assert_string_equal(arb_node_str(tree, "state"), "running");
	assert_int_equal(arb_node_int(tree, "restarts"), 0);
	assert_int_equal(arb_node_nchildren(tree), 0);
	json_decref(tree);
	assert_int_equal(arb_children(a, NULL, 0), 0);
}

static void
test_disabled_has_no_children(void **state)
{
	struct arb *a = arb_start(DISABLED_CONF, "dev", NULL);
	json_t *tree = arb_status(a, NULL);
	assert_non_null(tree);
	assert_root(a, tree, "dev", "disabled", "bridge_mock");
	assert_int_equal(arb_node_nchildren(tree), 0);
	assert_true(json_is_array(json_object_get(tree, "children")));
	json_decref(tree);
	assert_int_equal(arb_children(a, NULL, 0), 0);

	json_t *r = arb_op_ok(a, "health");
	assert_string_equal(arb_node_str(r, "health"), "healthy");
	assert_int_equal(arb_node_int(r, "ready"), 0);
	assert_int_equal(arb_node_int(r, "expected"), 0);
	json_decref(r);
	r = arb_call_err(a, json_pack("{s:s, s:s}", "op", "execute",
	    "command", "ping"), "bridge_disabled");
	json_decref(r);
	assert_status_view(a, "^root  running  env=dev mode=disabled "
	    "adapter=bridge_mock  " PID "  up " DUR "\n$");
	char out[64];
	assert_int_equal(arb_ctl(a, out, sizeof out, "health", NULL), 0);
	assert_string_equal(out, "healthy 0/0\n");
	assert_root_restart_empty(a);
	assert_int_equal(arb_stop(a), 0);
}

static void
test_test_mode_bridge_mock(void **state)
{
	struct arb *a = arb_start(TESTMODE_CONF, "test",
	    "TEST_MODE=bridge_mock", NULL);
	assert_pool_tree(a, 2);
	json_t *tree = arb_status(a, NULL);
	assert_root(a, tree, "test", "pool", "bridge_mock");
	json_decref(tree);
	assert_int_equal(arb_stop(a), 0);
}

/* Adapter mock: arbord answers execute itself and runs no process. */
static void
test_test_mode_mock_adapter(void **state)
{
	struct arb *a = arb_start(TESTMODE_CONF, "test",
	    "TEST_MODE=mock_adapter", NULL);
	json_t *tree = arb_status(a, NULL);
	assert_non_null(tree);
	assert_string_equal(arb_node_str(tree, "adapter"), "mock");
	assert_string_equal(arb_node_str(tree, "env"), "test");
	json_int_t pids[8];
	assert_int_equal(arb_worker_pids(tree, pids, 8), 0);
	json_decref(tree);

	json_t *r = arb_call_ok(a, json_pack("{s:s, s:s, s:{s:i}}", "op",
	    "execute", "command", "echo", "args", "x", 1));
	json_t *res = json_object_get(r, "result");
	assert_true(json_is_true(json_object_get(res, "mock")));
	assert_string_equal(arb_node_str(res, "command"), "echo");
	assert_int_equal(arb_node_int(json_object_get(res, "args"), "x"), 1);
	json_decref(r);
	r = arb_op_ok(a, "health");
	assert_string_equal(arb_node_str(r, "health"), "healthy");
	assert_int_equal(arb_node_int(r, "ready"), 0);
	assert_int_equal(arb_node_int(r, "expected"), 0);
	json_decref(r);
	assert_status_view(a, "^root  running  env=test mode=[a-z]+ "
	    "adapter=mock  " PID "  up " DUR "\n$");
	char out[64];
	assert_int_equal(arb_ctl(a, out, sizeof out, "health", NULL), 0);
	assert_string_equal(out, "healthy 0/0\n");
	assert_int_equal(arb_children(a, NULL, 0), 0);
	assert_root_restart_empty(a);
	assert_int_equal(arb_stop(a), 0);
}

/* {"op": "end_session", "session_id": sid}: the value of "ended". */
static bool
end_session(struct arb *a, const char *sid)
{
	json_t *r = arb_call_ok(a, json_pack("{s:s,s:s}", "op", "end_session",
	    "session_id", sid));
	bool ended = json_is_true(json_object_get(r, "ended"));
	json_decref(r);
	return ended;
}

/* Adapter mock keeps the sessions its requests use, as workers would:
 * counted in stats, ended by end_session (then counted no more). */
static void
test_mock_adapter_keeps_sessions(void **state)
{
	struct arb *a = arb_start(TESTMODE_CONF, "test",
	    "TEST_MODE=mock_adapter", NULL);
	for (int i = 0; i < 2; i++) {
		json_t *r = cl_exec_ok(a, "echo", NULL, "m1");
		assert_false(json_is_true(json_object_get(r, "session_reset")));
		json_decref(r);
	}
	json_decref(cl_exec_ok(a, "echo", NULL, "m2"));
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	assert_int_equal(cl_stat(a, "sessions"), 2);
	assert_int_equal(cl_stat(a, "total_sessions"), 2);
	assert_true(end_session(a, "m1"));
	assert_false(end_session(a, "m1"));
	assert_false(end_session(a, "never-used"));
	assert_int_equal(cl_stat(a, "sessions"), 1);
	assert_int_equal(cl_stat(a, "total_sessions"), 2);
	char out[128];
	assert_int_equal(arb_ctl(a, out, sizeof out, "end-session", "m2",
	    NULL), 0);
	assert_null(strstr(out, "no such session"));
	assert_int_equal(cl_stat(a, "sessions"), 0);
	assert_int_equal(arb_stop(a), 0);
}

/* Whether an execute in session sid tells session_reset. */
static bool
exec_reset(struct arb *a, const char *sid)
{
	json_t *r = cl_exec_ok(a, "echo", NULL, sid);
	bool reset = json_is_true(json_object_get(r, "session_reset"));
	json_decref(r);
	return reset;
}

#define SINGLE_BODY	"bridge = { adapter = \"bridge_mock\"; };\n" \
			"environments = { dev = { }; };\n"
#define MOCK_BODY	"bridge = { adapter = \"mock\"; };\n" \
			"environments = { dev = { }; };\n"

/* A session a worker served, carried over a reload to adapter mock: the
 * first mock reply in it tells the reset, once; back to a mode with a
 * worker, the next reply tells it again (the mock kept no state). */
static void
test_mock_adapter_tells_carried_reset(void **state)
{
	struct arb *a = arb_start(SINGLE_BODY, "dev", NULL);
	arb_await_node(a, "bridge/worker", "ready");
	assert_false(exec_reset(a, "c1"));
	arb_rewrite_config(a, MOCK_BODY);
	json_decref(arb_op_ok(a, "reload"));
	assert_true(exec_reset(a, "c1"));
	assert_false(exec_reset(a, "c1"));
	assert_int_equal(cl_stat(a, "sessions"), 1);
	arb_rewrite_config(a, SINGLE_BODY);
	json_decref(arb_op_ok(a, "reload"));
	arb_await_node(a, "bridge/worker", "ready");
	assert_true(exec_reset(a, "c1"));
	assert_false(exec_reset(a, "c1"));
	assert_int_equal(arb_stop(a), 0);
}

/* ---- arbord -t ---- */

/* Runs arbord -c <conf> [-e env] -t with one extra variable (may be NULL);
 * stdout in out, stderr in err; returns the exit code. */
static int
check_config(struct arb *a, const char *env, const char *var, char *out,
    char *err)
{
	char *bin = arb_bin_path("arbord");
	const char *argv[] = { bin, "-c", arb_conf_path(a), "-t",
	    env ? "-e" : NULL, env, NULL };
	const char *extra[] = { var, NULL };
	int code = arb_run(argv, extra, out, OUT_MAX, err, OUT_MAX);
	free(bin);
	return code;
}

/* Asserts that out has the line "key = value". */
static void
assert_setting(const char *out, const char *key, const char *value)
{
	char line[PATH_MAX + 64];
	snprintf(line, sizeof line, "%s = %s\n", key, value);
	const char *p = strstr(out, line);
	if (p == NULL || (p != out && p[-1] != '\n')) {
		fprintf(stderr, "arbord -t output:\n%s", out);
		fail_msg("no line \"%s = %s\"", key, value);
	}
}

/* One environment's resolved settings. */
static void
assert_check(struct arb *a, const char *env, const char *var,
    const char *want_env, const char *mode, const char *adapter)
{
	static char out[OUT_MAX], err[OUT_MAX];
	int code = check_config(a, env, var, out, err);
	if (code != 0)
		fprintf(stderr, "arbord -t: %s", err);
	assert_int_equal(code, 0);
	assert_setting(out, "environment", want_env);
	assert_setting(out, "mode", mode);
	assert_setting(out, "adapter", adapter);
}

static void
test_check_prints_settings(void **state)
{
	struct arb *a = arb_new(MODES_CONF);
	static char out[OUT_MAX], err[OUT_MAX];
	assert_check(a, "dev", NULL, "dev", "single", "bridge_mock");
	assert_check(a, "test", NULL, "test", "pool", "bridge_mock");
	assert_check(a, "prod", NULL, "prod", "pool", "bridge_mock");
	assert_check(a, NULL, NULL, "prod", "pool", "bridge_mock");
	assert_check(a, NULL, "ARBOR_ENV=test", "test", "pool", "bridge_mock");
	assert_check(a, "dev", "ARBOR_ENV=test", "dev", "single", "bridge_mock");

	assert_int_equal(check_config(a, "test", NULL, out, err), 0);
	assert_setting(out, "pool.size", "2");
	assert_int_equal(check_config(a, "prod", NULL, out, err), 0);
	assert_setting(out, "pool.size", "3");
	char real[PATH_MAX], sock[PATH_MAX + 16];
	assert_non_null(realpath(arb_dir(a), real));
	snprintf(sock, sizeof sock, "%s/arbor.sock", real);
	if (strstr(out, sock) != NULL)
		assert_setting(out, "control.socket", sock);
	else
		assert_setting(out, "control.socket", arb_socket_path(a));
	arb_free(a);
}

static void
test_check_auto_adapter_and_test_mode(void **state)
{
	struct arb *a = arb_new(TESTMODE_CONF);
	assert_check(a, "test", NULL, "test", "pool", "python_pool");
	assert_check(a, "prod", NULL, "prod", "single", "python_port");
	assert_check(a, "test", "TEST_MODE=bridge_mock", "test", "pool",
	    "bridge_mock");
	assert_check(a, "test", "TEST_MODE=mock_adapter", "test", "pool",
	    "mock");
	/* TEST_MODE acts in the test environment only. */
	assert_check(a, "prod", "TEST_MODE=mock_adapter", "prod", "single",
	    "python_port");
	arb_free(a);

	a = arb_new("environments = { test = { }; };\n");
	assert_check(a, "test", NULL, "test", "single", "python_port");
	assert_check(a, "test", "TEST_MODE=full_integration", "test", "pool",
	    "python_pool");
	arb_free(a);
	a = arb_new(DISABLED_CONF);
	assert_check(a, "dev", NULL, "dev", "disabled", "bridge_mock");
	arb_free(a);
}

/* Mode disabled resolves no adapter: auto shows as auto, in the status op,
 * arborctl status and arbord -t (SPEC 3 resolves it for pool and single
 * only). */
static void
test_disabled_adapter_auto(void **state)
{
	struct arb *a = arb_start(DISABLED_AUTO_CONF, "dev", NULL);
	json_t *tree = arb_status(a, NULL);
	assert_non_null(tree);
	assert_root(a, tree, "dev", "disabled", "auto");
	assert_int_equal(arb_node_nchildren(tree), 0);
	json_decref(tree);
	assert_status_view(a, "^root  running  env=dev mode=disabled "
	    "adapter=auto  " PID "  up " DUR "\n$");
	assert_check(a, "dev", NULL, "dev", "disabled", "auto");
	assert_int_equal(arb_stop(a), 0);
}

/* pool.size = 0 is resolved to 2 x online CPUs (SPEC 3). */
static void
test_check_pool_size_zero(void **state)
{
	static char out[OUT_MAX], err[OUT_MAX];
	struct arb *a = arb_new(
	    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
	    "pool = { size = 0; };\n"
	    "environments = { dev = { }; };\n");
	assert_int_equal(check_config(a, "dev", NULL, out, err), 0);
	char want[32];
	snprintf(want, sizeof want, "%ld", 2 * sysconf(_SC_NPROCESSORS_ONLN));
	assert_setting(out, "pool.size", want);
	arb_free(a);
}

/* Runs arbord -t with no -c, or with -c conf, and one extra variable. */
static int
check_config_from(const char *conf, const char *var, char *out, char *err)
{
	char *bin = arb_bin_path("arbord");
	const char *argv[] = { bin, "-t", conf ? "-c" : NULL, conf, NULL };
	const char *extra[] = { var, NULL };
	int code = arb_run(argv, extra, out, OUT_MAX, err, OUT_MAX);
	free(bin);
	return code;
}

/* -c FILE, else $ARBOR_CONF, else /etc/arbor/arbor.conf; an empty
 * $ARBOR_CONF is unset, as an empty $ARBOR_ENV is (and as arborctl
 * takes it). */
static void
test_check_conf_from_environment(void **state)
{
	static char out[OUT_MAX], err[OUT_MAX];
	char real[PATH_MAX];
	struct arb *a = arb_new(MODES_CONF);
	assert_non_null(realpath(arb_conf_path(a), real));
	char var[PATH_MAX + 16];
	snprintf(var, sizeof var, "ARBOR_CONF=%s", arb_conf_path(a));
	assert_int_equal(check_config_from(NULL, var, out, err), 0);
	assert_setting(out, "config", real);
	assert_int_equal(check_config_from(arb_conf_path(a),
	    "ARBOR_CONF=/nonexistent/arbor.conf", out, err), 0);
	assert_setting(out, "config", real);

	const char *dflt = "/etc/arbor/arbor.conf";
	int code = check_config_from(NULL, "ARBOR_CONF=", out, err);
	if (code == 0)
		assert_setting(out, "config", dflt);
	else if (code != 78 || strstr(err, dflt) == NULL)
		fail_msg("ARBOR_CONF empty: exit %d, expected %s: %s", code,
		    dflt, err);
	arb_free(a);
}

/* Runs -t on a bad config: exit 78 and a message naming file:line: and
 * the key. */
static void
assert_config_error(const char *body, const char *env, int line,
    const char *key)
{
	static char out[OUT_MAX], err[OUT_MAX];
	struct arb *a = arb_new(body);
	int code = check_config(a, env, NULL, out, err);
	char where[64];
	snprintf(where, sizeof where, "arbor.conf:%d:", line);
	if (code != 78 || (line > 0 && strstr(err, where) == NULL) ||
	    strstr(err, key) == NULL) {
		fprintf(stderr, "exit %d, stdout:\n%s\nstderr:\n%s\n", code,
		    out, err);
		fail_msg("expected exit 78 naming %s and %s", where, key);
	}
	arb_free(a);
}

static void
test_bad_config_exits_78(void **state)
{
	assert_config_error(
	    "bridge = { adapter = \"bridge_mock\"; };\n"
	    "pool = {\n"
	    "  size = 2;\n"
	    "  sise = 3;\n"
	    "};\n"
	    "environments = { dev = { }; };\n", "dev", 4, "sise");
	assert_config_error(
	    "bridge = { adapter = \"bridge_mock\"; };\n"
	    "pool = { size = \"two\"; };\n"
	    "environments = { dev = { }; };\n", "dev", 2, "size");
	assert_config_error(
	    "pool = { strategy = \"random\"; };\n"
	    "environments = { dev = { }; };\n", "dev", 1, "strategy");
	assert_config_error(
	    "environments = {\n"
	    "  dev = { };\n"
	    "  prod = { pool = { colour = 1; }; };\n"
	    "};\n", "prod", 3, "colour");
	assert_config_error(
	    "bridge = { adapter = \"bridge_mock\"; };\n"
	    "environments = { dev = { }; };\n", "staging", 0, "staging");
}

/* The daemon itself (not only -t) refuses a bad config with 78. */
static void
test_daemon_bad_config_exits_78(void **state)
{
	static char out[OUT_MAX], err[OUT_MAX];
	struct arb *a = arb_new(
	    "bridge = { adapter = \"bridge_mock\"; };\n"
	    "pool = { size = ; };\n"
	    "environments = { dev = { }; };\n");
	char *bin = arb_bin_path("arbord");
	const char *argv[] = { bin, "-c", arb_conf_path(a), "-e", "dev", NULL };
	int code = arb_run(argv, NULL, out, OUT_MAX, err, OUT_MAX);
	free(bin);
	if (code != 78 || strstr(err, "arbor.conf:2") == NULL) {
		fprintf(stderr, "exit %d, stderr:\n%s\n", code, err);
		fail_msg("expected exit 78 naming arbor.conf:2");
	}
	assert_int_equal(access(arb_socket_path(a), F_OK), -1);
	arb_free(a);
}

static void
test_usage_exits_64(void **state)
{
	static char out[OUT_MAX], err[OUT_MAX];
	char *bin = arb_bin_path("arbord");
	const char *argv[] = { bin, "--no-such-option", NULL };
	int code = arb_run(argv, NULL, out, OUT_MAX, err, OUT_MAX);
	free(bin);
	if (code != 64)
		fprintf(stderr, "exit %d, stderr:\n%s\n", code, err);
	assert_int_equal(code, 64);
}

/* -t, --version and -h whose output cannot be written (a full disk) exit
 * 1 with a line on stderr: exit 0 said the config was checked and printed
 * while the settings were lost. */
static void
test_check_output_unwritable(void **state)
{
	static char out[OUT_MAX], err[OUT_MAX];
	struct arb *a = arb_new(MODES_CONF);
	char *bin = arb_bin_path("arbord");
	const char *opts[] = { "-t", "--version", "-h" };
	for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
		const char *argv[] = { "/bin/sh", "-c",
		    "exec \"$0\" -c \"$1\" \"$2\" >/dev/full", bin,
		    arb_conf_path(a), opts[i], NULL };
		int code = arb_run(argv, NULL, out, OUT_MAX, err, OUT_MAX);
		if (code != 1 || strstr(err, "cannot write") == NULL ||
		    strchr(err, '\n') != err + strlen(err) - 1)
			fail_msg("%s to /dev/full: exit %d, stderr: %s",
			    opts[i], code, err);
	}
	free(bin);
	arb_free(a);
}

/* --version and -h print on stdout and exit 0; an operand (named), -v
 * with -q, or an option without its argument or with an empty one is a
 * usage error (64). */
static void
test_version_help_usage(void **state)
{
	static char out[OUT_MAX], err[OUT_MAX];
	char *bin = arb_bin_path("arbord");
	const char *version[] = { bin, "--version", NULL };
	assert_int_equal(arb_run(version, NULL, out, OUT_MAX, err, OUT_MAX), 0);
	assert_memory_equal(out, "arbord ", 7);
	const char *help[] = { bin, "-h", NULL };
	assert_int_equal(arb_run(help, NULL, out, OUT_MAX, err, OUT_MAX), 0);
	assert_non_null(strstr(out, "usage: arbord"));
	/* every option of the usage line is explained below it */
	const char *opt[] = { "-c FILE", "-e ENV", "-t ", "-v / -q",
	    "--version", "-h " };
	for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++) {
		char line[32];
		snprintf(line, sizeof line, "\n  %s", opt[i]);
		assert_non_null(strstr(out, line));
	}
	const char *noarg[] = { bin, "-c", NULL };
	assert_int_equal(arb_run(noarg, NULL, out, OUT_MAX, err, OUT_MAX), 64);
	assert_non_null(strstr(err, "usage: arbord"));
	const char *operand[] = { bin, "-t", "-c", "/dev/null", "extra", NULL };
	assert_int_equal(arb_run(operand, NULL, out, OUT_MAX, err, OUT_MAX), 64);
	assert_non_null(strstr(err, "unexpected argument 'extra'"));
	assert_non_null(strstr(err, "usage: arbord"));
	/* [-v|-q]: one or the other */
	const char *both[] = { bin, "-t", "-c", "/dev/null", "-v", "-q", NULL };
	assert_int_equal(arb_run(both, NULL, out, OUT_MAX, err, OUT_MAX), 64);
	assert_non_null(strstr(err, "-v and -q"));
	const char *twice[] = { bin, "-v", "-v", "-h", NULL };
	assert_int_equal(arb_run(twice, NULL, out, OUT_MAX, err, OUT_MAX), 0);
	/* an empty value names nothing: not a fallback to the defaults */
	const char *no_env[] = { bin, "-t", "-c", "/dev/null", "-e", "", NULL };
	assert_int_equal(arb_run(no_env, NULL, out, OUT_MAX, err, OUT_MAX), 64);
	assert_non_null(strstr(err, "-e"));
	const char *no_conf[] = { bin, "-t", "-c", "", NULL };
	assert_int_equal(arb_run(no_conf, NULL, out, OUT_MAX, err, OUT_MAX), 64);
	assert_non_null(strstr(err, "-c"));
	free(bin);
}

/* A crash, then the restarted worker's "ready" line: the log then holds
 * every record the restart makes. */
static void
crash_and_wait(struct arb *a)
{
	json_int_t pid = arb_wait_ready_pid(a, "bridge/worker", 0);
	json_t *r = arb_call(a, json_pack("{s:s, s:s, s:{s:i}}", "op",
	    "execute", "command", "crash", "args", "code", 3));
	json_decref(r);
	arb_wait_ready_pid(a, "bridge/worker", pid);
}

/* -v logs at debug whatever log.level says; -q only warnings and errors. */
static void
test_verbosity(void **state)
{
	static const char conf[] =
	    "bridge = { adapter = \"bridge_mock\"; };\n"
	    "worker = { restart_delay_ms = 0; };\n"
	    "log = { level = \"error\"; };\n"
	    "environments = { dev = { }; };\n";
	struct arb *a = arb_new(conf);
	arb_spawn_flag(a, "dev", "-v", NULL);
	assert_int_equal(arb_wait_ready(a, ARB_START_MS), 0);
	crash_and_wait(a);
	assert_true(arb_log_has_line(a, "debug", "spawned pid", NULL));
	assert_true(arb_log_has_line(a, "info", "bridge/worker", "ready",
	    NULL));
	assert_int_equal(arb_stop(a), 0);

	a = arb_new("bridge = { adapter = \"bridge_mock\"; };\n"
	    "worker = { restart_delay_ms = 0; };\n"
	    "log = { level = \"debug\"; };\n"
	    "environments = { dev = { }; };\n");
	arb_spawn_flag(a, "dev", "-q", NULL);
	assert_int_equal(arb_wait_ready(a, ARB_START_MS), 0);
	crash_and_wait(a);
	/* The crash is a warning; the spawn and the ready lines are not. */
	assert_true(arb_log_has_line(a, "warn", "bridge/worker", NULL));
	assert_false(arb_log_contains(a, " info "));
	assert_false(arb_log_contains(a, " debug "));
	assert_int_equal(arb_stop(a), 0);
}

/* ---- arborctl status ---- */

static void
test_arborctl_status(void **state)
{
	static char out[OUT_MAX];
	struct arb *a = arb_start(MODES_CONF, "test", NULL);
	json_t *tree = arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS);
	assert_non_null(tree);

	assert_int_equal(arb_ctl(a, out, OUT_MAX, "--json", "status", NULL), 0);
	json_error_t jerr;
	json_t *ctl = json_loads(out, 0, &jerr);
	if (ctl == NULL)
		fail_msg("arborctl --json status: %s:\n%s", jerr.text, out);
	assert_root(a, ctl, "test", "pool", "bridge_mock");
	/* Shown from the reply's text, laid out exactly as jansson would. */
	char *indented = json_dumps(ctl, JSON_INDENT(2));
	size_t n = strlen(indented);
	assert_true(strlen(out) == n + 1 && memcmp(out, indented, n) == 0 &&
	    out[n] == '\n');
	free(indented);
	json_int_t want[8], got[8];
	assert_int_equal(arb_worker_pids(ctl, got, 8), 2);
	assert_int_equal(arb_worker_pids(tree, want, 8), 2);
	assert_memory_equal(got, want, sizeof got[0] * 2);
	assert_non_null(arb_find(ctl, "pool/worker.2"));
	json_decref(ctl);

	assert_int_equal(arb_ctl(a, out, OUT_MAX, "--json", "status",
	    "pool/worker.1", NULL), 0);
	ctl = json_loads(out, 0, &jerr);
	assert_non_null(ctl);
	assert_string_equal(arb_node_str(ctl, "name"), "pool/worker.1");
	assert_int_equal(arb_node_pid(ctl), want[0]);
	json_decref(ctl);
	/* An error reply still goes the parsed way: message, exit 1. */
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "--json", "status",
	    "pool/worker.9", NULL), 1);

	assert_status_view(a, "^root  running  env=test mode=pool "
	    "adapter=bridge_mock  " PID "  up " DUR "\n"
	    "└─ pool  running  one_for_one  2/2 ready  busy 0  overflow 0/2  "
	    "restarts 0\n"
	    "   ├─ worker.1  " WORKER
	    "   └─ worker.2  " WORKER "$");
	/* status NAME: the subtree, its top line named in full */
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "status", "pool", NULL), 0);
	assert_int_equal(strncmp(out, "pool  running  one_for_one  2/2 ready",
	    37), 0);
	assert_non_null(strstr(out, "\n└─ worker.2  ready  pid "));
	assert_int_equal(arb_ctl(a, out, OUT_MAX, "status", "pool/worker.1",
	    NULL), 0);
	assert_int_equal(strncmp(out, "pool/worker.1  ready  pid ", 26), 0);
	assert_non_null(strstr(out, "err 0\n"));
	json_decref(tree);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_dev_is_single, arb_teardown),
		cmocka_unit_test_teardown(test_test_env_is_pool_of_two, arb_teardown),
		cmocka_unit_test_teardown(test_prod_is_pool_of_three, arb_teardown),
		cmocka_unit_test_teardown(test_default_environment, arb_teardown),
		cmocka_unit_test_teardown(test_disabled_has_no_children, arb_teardown),
		cmocka_unit_test_teardown(test_disabled_adapter_auto, arb_teardown),
		cmocka_unit_test_teardown(test_test_mode_bridge_mock, arb_teardown),
		cmocka_unit_test_teardown(test_test_mode_mock_adapter, arb_teardown),
		cmocka_unit_test_teardown(test_mock_adapter_keeps_sessions,
		    arb_teardown),
		cmocka_unit_test_teardown(test_mock_adapter_tells_carried_reset,
		    arb_teardown),
		cmocka_unit_test_teardown(test_check_prints_settings, arb_teardown),
		cmocka_unit_test_teardown(test_check_auto_adapter_and_test_mode, arb_teardown),
		cmocka_unit_test_teardown(test_check_pool_size_zero, arb_teardown),
		cmocka_unit_test_teardown(test_check_conf_from_environment, arb_teardown),
		cmocka_unit_test_teardown(test_bad_config_exits_78, arb_teardown),
		cmocka_unit_test_teardown(test_daemon_bad_config_exits_78, arb_teardown),
		cmocka_unit_test_teardown(test_usage_exits_64, arb_teardown),
		cmocka_unit_test_teardown(test_version_help_usage, arb_teardown),
		cmocka_unit_test_teardown(test_check_output_unwritable,
		    arb_teardown),
		cmocka_unit_test_teardown(test_verbosity, arb_teardown),
		cmocka_unit_test_teardown(test_arborctl_status, arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
