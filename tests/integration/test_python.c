/* The Python SDK under a real arbord: what a handler does wrong fails its
 * request with worker_error, and the worker keeps serving. A reply arbord
 * cannot read, or no reply at all, would instead kill the worker and fail
 * the request with worker_crashed. */
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

#include "proto/xmalloc.h"
#include "supervisor/config.h"
#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define SDK_DIR	"workers/python"
#define BW	"bridge/worker"

/* A worker whose "value" command returns what Python encodes as JSON but
 * jansson refuses, or raises a BaseException subclass. */
static const char worker_py[] =
    "import sys\n"
    "from arbor_worker import Worker\n"
    "worker = Worker()\n"
    "class Abort(BaseException):\n"
    "    pass\n"
    "VALUES = {\n"
    "    'nul': 'a\\x00b',\n"
    "    'surrogate': b'\\xff'.decode('utf-8', 'surrogateescape'),\n"
    "    'int_over': {'n': 2 ** 64},\n"
    "}\n"
    "@worker.command('value')\n"
    "def value(args, session_id):\n"
    "    if args['kind'] == 'abort':\n"
    "        raise Abort('aborted')\n"
    "    return VALUES[args['kind']]\n"
    "@worker.command('wide')\n"
    "def wide(args, session_id):\n"
    "    return {'k%d' % i: 0.7 for i in range(40)}\n"
    "@worker.command('echo')\n"
    "def echo(args, session_id):\n"
    "    return args\n"
    "worker.run()\n";

/* The config running worker_py in mode single, with worker_extra (settings)
 * in its worker group; caller frees. */
static char *
python_conf(const char *worker_extra)
{
	char *root = arb_repo_root(SDK_DIR "/arbor_worker.py");
	char *body = xasprintf(
	    "bridge = { adapter = \"python_port\"; };\n"
	    "worker = {\n"
	    "  command = [ \"python3\", \"./w.py\" ];\n"
	    "  env = { PYTHONUNBUFFERED = \"1\"; PYTHONPATH = \"%s/%s\"; };\n"
	    "  max_errors = 100;\n"
	    "  %s\n"
	    "};\n"
	    "environments = { dev = { }; };\n", root, SDK_DIR, worker_extra);
	free(root);
	return body;
}

/* An arbord (not started) whose config is python_conf(worker_extra), with
 * worker_py written next to it. */
static struct arb *
new_python(const char *worker_extra)
{
	char *body = python_conf(worker_extra);
	struct arb *a = arb_new(body);
	free(body);
	char path[PATH_MAX + 64];
	snprintf(path, sizeof path, "%s/w.py", arb_dir(a));
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(worker_py, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return a;
}

/* Mode single with worker_py as bridge/worker, ready. */
static struct arb *
start_python(const char *worker_extra)
{
	struct arb *a = new_python(worker_extra);
	arb_spawn(a, "dev", NULL);
	assert_int_equal(arb_wait_ready(a, ARB_START_MS), 0);
	arb_wait_ready_pid(a, BW, 0);
	return a;
}

static void
test_bad_results_are_worker_errors(void **state)
{
	(void)state;
	struct arb *a = start_python("");
	json_int_t pid = cl_worker_pid(a, BW);
	assert_true(pid > 0);
	static const char *const kinds[] = { "nul", "surrogate", "int_over",
	    "abort" };
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		json_t *r = cl_exec_err(a, "value", json_pack("{s:s}", "kind",
		    kinds[i]), NULL, "worker_error");
		json_decref(r);
	}
	json_decref(cl_exec_ok(a, "echo", json_pack("{s:i}", "n", 1), NULL));
	assert_int_equal(cl_worker_pid(a, BW), pid);
	assert_false(arb_log_contains(a, "protocol failure"));
	assert_int_equal(arb_stop(a), 0);
}

/* A result that arbord reads with jansson (more than 32 keys in it, beyond
 * its scanner) reaches the client as the worker wrote it, as one read by
 * the scanner does: written anew by jansson, 0.7 came out as
 * 0.69999999999999996. */
static void
test_wide_result_as_written(void **state)
{
	(void)state;
	struct arb *a = start_python("");
	static const char req[] = "{\"id\":1,\"op\":\"execute\","
	    "\"command\":\"wide\"}";
	char hdr[4] = { 0, 0, 0, (char)(sizeof req - 1) };
	struct arb_conn *c = arb_conn_open(a);
	assert_non_null(c);
	assert_int_equal(arb_conn_send_raw(c, hdr, 4), 0);
	assert_int_equal(arb_conn_send_raw(c, req, sizeof req - 1), 0);
	char *r = arb_conn_recv_text(c, ARB_REPLY_MS);
	assert_non_null(r);
	if (strstr(r, "\"ok\":true") == NULL || strstr(r, "0.7") == NULL ||
	    strstr(r, "0.69999") != NULL)
		fail_msg("reply: %s", r);
	free(r);
	arb_conn_close(c);

	/* arborctl prints it so too, though its own scanner leaves it to
	 * jansson as well */
	static char out[65536];
	assert_int_equal(arb_ctl(a, out, sizeof out, "call", "wide", NULL), 0);
	if (strstr(out, "\"k39\": 0.7\n") == NULL ||
	    strstr(out, "0.69999") != NULL)
		fail_msg("arborctl printed: %s", out);
	assert_int_equal(arb_stop(a), 0);
}

/* arbord -t on a's config: its exit code. */
static int
check_config(struct arb *a)
{
	char *bin = arb_bin_path("arbord");
	const char *argv[] = { bin, "-c", arb_conf_path(a), "-t", NULL };
	char out[4096], err[4096];
	int code = arb_run(argv, NULL, out, sizeof out, err, sizeof err);
	free(bin);
	return code;
}

/* At the least worker.max_frame_bytes the config accepts, a Python worker
 * answers its init ping and serves: at 64, once the least, the init ping
 * itself was too large for it and it never became ready. */
static void
test_least_frame_limit_serves(void **state)
{
	(void)state;
	char extra[64];
	snprintf(extra, sizeof extra, "max_frame_bytes = %d;",
	    CONFIG_MIN_WORKER_FRAME - 1);
	struct arb *a = new_python(extra);
	assert_int_equal(check_config(a), 78);
	arb_free(a);
	snprintf(extra, sizeof extra, "max_frame_bytes = %d;",
	    CONFIG_MIN_WORKER_FRAME);
	a = start_python(extra);
	json_int_t pid = cl_worker_pid(a, BW);
	json_decref(cl_exec_ok(a, "echo", json_pack("{s:i}", "n", 1), NULL));
	assert_int_equal(cl_worker_pid(a, BW), pid);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_bad_results_are_worker_errors,
		    arb_teardown),
		cmocka_unit_test_teardown(test_least_frame_limit_serves,
		    arb_teardown),
		cmocka_unit_test_teardown(test_wide_result_as_written,
		    arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
