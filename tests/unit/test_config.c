/* Unit tests for supervisor/config.c: files are written into a temporary
 * directory and loaded; errors are checked down to "file:line: key:". */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/xmalloc.h"
#include "supervisor/config.h"

#define MINIMAL	"environments = { dev = { }; };\n"

struct fx {
	char	*dir;		/* realpath of the temporary directory */
	char	*parent;	/* its parent */
	char	*path;		/* dir/arbor.conf */
	char	 err[1024];
};

static int
setup(void **state)
{
	char tmpl[] = "/tmp/arbor-config-XXXXXX";
	struct fx *fx = xcalloc(1, sizeof *fx);
	assert_non_null(mkdtemp(tmpl));
	fx->dir = realpath(tmpl, NULL);
	assert_non_null(fx->dir);
	fx->parent = xstrdup(fx->dir);
	*strrchr(fx->parent, '/') = '\0';
	if (fx->parent[0] == '\0')
		strcpy(fx->parent, "/");
	fx->path = xasprintf("%s/arbor.conf", fx->dir);
	unsetenv("ARBOR_ENV");
	unsetenv("TEST_MODE");
	*state = fx;
	return 0;
}

/* Removes the directory and what the test wrote into it (one level of
 * subdirectories). */
static void
rmtree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *p = xasprintf("%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR)
			rmtree(p);
		else
			unlink(p);
		free(p);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	rmtree(fx->dir);
	free(fx->dir);
	free(fx->parent);
	free(fx->path);
	free(fx);
	unsetenv("ARBOR_ENV");
	unsetenv("TEST_MODE");
	return 0;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

/* Writes text as fx->path and loads it for env. */
static struct config *
load(struct fx *fx, const char *text, const char *env)
{
	write_file(fx->path, text);
	fx->err[0] = '\0';
	struct config *c = config_load(fx->path, env, fx->err, sizeof fx->err);
	if (c == NULL)
		print_error("unexpected error: %s\n", fx->err);
	return c;
}

/* Loading text for env fails with exactly "PATH:line: what". */
static void
expect_error(struct fx *fx, const char *text, const char *env, int line,
    const char *what)
{
	write_file(fx->path, text);
	struct config *c = config_load(fx->path, env, fx->err, sizeof fx->err);
	assert_null(c);
	char *want = xasprintf("%s:%d: %s", fx->path, line, what);
	assert_string_equal(fx->err, want);
	free(want);
}

/* Loading text fails with an error that starts with "PATH:line: prefix". */
static void
expect_error_prefix(struct fx *fx, const char *text, int line,
    const char *prefix)
{
	write_file(fx->path, text);
	struct config *c = config_load(fx->path, NULL, fx->err, sizeof fx->err);
	assert_null(c);
	char *want = xasprintf("%s:%d: %s", fx->path, line, prefix);
	if (strncmp(fx->err, want, strlen(want)) != 0)
		fail_msg("error \"%s\" does not start with \"%s\"", fx->err, want);
	free(want);
}

static int
cpus2(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return 2 * (n > 0 ? (int)n : 1);
}

/* ---- defaults and resolution ---- */

static void
test_defaults(void **state)
{
	struct fx *fx = *state;
	struct config *c = load(fx, MINIMAL, NULL);
	assert_non_null(c);
	assert_string_equal(c->path, fx->path);
	assert_string_equal(c->env, "dev");
	assert_int_equal(c->mode, MODE_SINGLE);
	assert_int_equal(c->adapter, ADAPTER_PYTHON_PORT);
	assert_null(c->test_mode);
	assert_int_equal(c->supervisor.max_restarts, 3);
	assert_int_equal(c->supervisor.max_seconds, 5);
	assert_true(c->bridge.enabled);
	assert_false(c->bridge.pooling_enabled);
	assert_int_equal(c->bridge.adapter, ADAPTER_AUTO);
	assert_int_equal(c->bridge.max_restarts, 5);
	assert_int_equal(c->bridge.max_seconds, 60);
	assert_int_equal(c->worker.restart, RESTART_PERMANENT);
	assert_int_equal(c->worker.init_timeout_ms, 5000);
	assert_int_equal(c->worker.request_timeout_ms, 30000);
	assert_int_equal(c->worker.health_interval_ms, 30000);
	assert_int_equal(c->worker.health_timeout_ms, 1000);
	assert_int_equal(c->worker.shutdown_timeout_ms, 5000);
	assert_int_equal(c->worker.max_requests, 0);
	assert_int_equal(c->worker.max_errors, 10);
	assert_int_equal(c->worker.max_frame_bytes, 16777216);
	assert_int_equal(c->worker.restart_delay_ms, 100);
	assert_int_equal(c->worker.max_restart_delay_ms, 5000);
	assert_int_equal(c->worker.max_inflight, 64);
	assert_int_equal(c->worker.sched_policy, SCHEDP_INHERIT);
	config_free(c);
}

static void
test_defaults_pool_control_log(void **state)
{
	struct fx *fx = *state;
	struct config *c = load(fx, MINIMAL, NULL);
	assert_non_null(c);
	assert_int_equal(c->pool.size, cpus2());
	assert_int_equal(c->pool.max_overflow, 2);
	assert_int_equal(c->pool.overflow_idle_ms, 10000);
	assert_int_equal(c->pool.strategy, STRATEGY_FIFO);
	assert_false(c->pool.lazy);
	assert_int_equal(c->pool.checkout_timeout_ms, 5000);
	assert_int_equal(c->pool.max_waiting, 1024);
	assert_int_equal(c->pool.affinity, AFFINITY_STRICT);
	assert_int_equal(c->pool.session_ttl_ms, 3600000);
	assert_int_equal(c->pool.max_restarts, 5);
	assert_int_equal(c->pool.max_seconds, 60);
	assert_int_equal(c->control.mode, 0600);
	assert_int_equal(c->control.max_clients, 1024);
	assert_int_equal(c->control.max_frame_bytes, 1048576);
	assert_int_equal(c->log.level, LOG_INFO);
	assert_int_equal(c->log.format, LOG_TEXT);
	config_free(c);
}

static void
test_defaults_paths(void **state)
{
	struct fx *fx = *state;
	struct config *c = load(fx, MINIMAL, NULL);
	assert_non_null(c);
	char *sock = xasprintf("%s/run/arbor.sock",
	    strcmp(fx->parent, "/") ? fx->parent : "");
	char *script = xasprintf("%s/workers/python/bridge_worker.py",
	    strcmp(fx->parent, "/") ? fx->parent : "");
	assert_string_equal(c->control.socket, sock);
	assert_string_equal(c->worker.argv[0], "python3");
	assert_string_equal(c->worker.argv[1], script);
	assert_null(c->worker.argv[2]);
	assert_string_equal(c->worker.env[0], "PYTHONUNBUFFERED=1");
	assert_null(c->worker.env[1]);
	free(sock);
	free(script);
	config_free(c);
}

static const char overlay_conf[] =
	"pool = { size = 3; max_overflow = 7; strategy = \"lifo\"; };\n"
	"worker = { command = [\"a\", \"b\"]; env = { A = \"1\"; B = \"2\"; };\n"
	"  init_timeout_ms = 1234; sched_policy = \"idle\"; };\n"
	"environments = {\n"
	"  dev = { };\n"
	"  test = { pool = { size = 5; };\n"
	"           worker = { env = { B = \"3\"; C = \"4\"; };\n"
	"                      sched_policy = \"batch\"; }; };\n"
	"  other = { worker = { command = [\"z\"]; }; };\n"
	"};\n";

/* An environment changes only the keys it names. */
static void
test_overlay_key_by_key(void **state)
{
	struct fx *fx = *state;
	struct config *c = load(fx, overlay_conf, "test");
	assert_non_null(c);
	assert_string_equal(c->env, "test");
	assert_int_equal(c->pool.size, 5);
	assert_int_equal(c->pool.max_overflow, 7);
	assert_int_equal(c->pool.strategy, STRATEGY_LIFO);
	assert_int_equal(c->pool.max_waiting, 1024);
	assert_int_equal(c->worker.init_timeout_ms, 1234);
	assert_int_equal(c->worker.sched_policy, SCHEDP_BATCH);
	assert_string_equal(c->worker.argv[0], "a");
	assert_string_equal(c->worker.env[0], "A=1");
	assert_string_equal(c->worker.env[1], "B=3");
	assert_string_equal(c->worker.env[2], "C=4");
	assert_null(c->worker.env[3]);
	config_free(c);

	c = load(fx, overlay_conf, "dev");
	assert_non_null(c);
	assert_int_equal(c->pool.size, 3);
	assert_string_equal(c->worker.env[1], "B=2");
	config_free(c);

	/* Without a base worker.env, an environment's adds to the default. */
	c = load(fx, "environments = { dev = {\n"
	    "  worker = { env = { X = \"1\"; }; }; }; };\n", NULL);
	assert_non_null(c);
	assert_string_equal(c->worker.env[0], "PYTHONUNBUFFERED=1");
	assert_string_equal(c->worker.env[1], "X=1");
	assert_null(c->worker.env[2]);
	config_free(c);

	c = load(fx, overlay_conf, "other");
	assert_non_null(c);
	assert_string_equal(c->worker.argv[0], "z");
	assert_null(c->worker.argv[1]);
	assert_int_equal(c->pool.size, 3);
	config_free(c);
}

static const char envs_conf[] =
	"default_environment = \"b\";\n"
	"environments = {\n"
	"  a = { pool = { size = 11; }; };\n"
	"  b = { pool = { size = 12; }; };\n"
	"  c = { pool = { size = 13; }; };\n"
	"  dev = { pool = { size = 14; }; };\n"
	"};\n";

static void
expect_env(struct fx *fx, const char *text, const char *arg,
    const char *name, int size)
{
	struct config *c = load(fx, text, arg);
	assert_non_null(c);
	assert_string_equal(c->env, name);
	assert_int_equal(c->pool.size, size);
	config_free(c);
}

/* -e ENV, then $ARBOR_ENV, then default_environment, then "dev". */
static void
test_env_precedence(void **state)
{
	struct fx *fx = *state;
	setenv("ARBOR_ENV", "c", 1);
	expect_env(fx, envs_conf, "a", "a", 11);
	expect_env(fx, envs_conf, NULL, "c", 13);
	expect_env(fx, envs_conf, "", "c", 13);
	setenv("ARBOR_ENV", "", 1);
	expect_env(fx, envs_conf, NULL, "b", 12);
	unsetenv("ARBOR_ENV");
	expect_env(fx, envs_conf, NULL, "b", 12);
	/* Without default_environment: dev. */
	expect_env(fx, strchr(envs_conf, '\n') + 1, NULL, "dev", 14);
}

static void
test_env_undefined(void **state)
{
	struct fx *fx = *state;
	expect_error(fx, envs_conf, "nope", 2,
	    "environments: environment 'nope' (from -e) is not defined");
	setenv("ARBOR_ENV", "x", 1);
	expect_error(fx, envs_conf, NULL, 2,
	    "environments: environment 'x' (from $ARBOR_ENV) is not defined");
	unsetenv("ARBOR_ENV");
	/* The file's own choice: default_environment's line, not the
	 * group's. */
	expect_error(fx, "environments = {\n  dev = { };\n};\n"
	    "default_environment = \"prod\";\n", NULL, 4,
	    "default_environment: environment 'prod' (from "
	    "default_environment) is not defined");
	/* No environments at all: dev is not defined either, and there is
	 * no line to name. */
	write_file(fx->path, "pool = { size = 1; };\n");
	assert_null(config_load(fx->path, NULL, fx->err, sizeof fx->err));
	char *want = xasprintf("%s: environments: environment 'dev' (from the "
	    "default) is not defined: the file has no environments group",
	    fx->path);
	assert_string_equal(fx->err, want);
	free(want);
	/* ... unless default_environment chose it: then its line. */
	expect_error(fx, "pool = { size = 1; };\ndefault_environment = \"p\";\n",
	    NULL, 2, "default_environment: environment 'p' (from "
	    "default_environment) is not defined: the file has no "
	    "environments group");
}

static const char modes_conf[] =
	"environments = {\n"
	"  dev = { };\n"
	"  test = { pool = { size = 2; }; };\n"
	"  pooled = { bridge = { pooling_enabled = true; }; };\n"
	"  off = { bridge = { enabled = false; pooling_enabled = true; }; };\n"
	"  fixed = { bridge = { adapter = \"bridge_mock\"; }; };\n"
	"  offtest = { };\n"
	"  offmock = { bridge = { enabled = false; adapter = \"mock\"; }; };\n"
	"};\n";

static void
expect_mode(struct fx *fx, const char *env, enum cfg_mode mode,
    enum cfg_adapter adapter)
{
	struct config *c = load(fx, modes_conf, env);
	assert_non_null(c);
	assert_int_equal(c->mode, mode);
	assert_int_equal(c->adapter, adapter);
	config_free(c);
}

static void
test_mode_resolution(void **state)
{
	struct fx *fx = *state;
	expect_mode(fx, "dev", MODE_SINGLE, ADAPTER_PYTHON_PORT);
	expect_mode(fx, "pooled", MODE_POOL, ADAPTER_PYTHON_POOL);
	expect_mode(fx, "off", MODE_DISABLED, ADAPTER_AUTO);
	expect_mode(fx, "fixed", MODE_SINGLE, ADAPTER_BRIDGE_MOCK);
	/* Mode disabled runs no adapter: auto stays auto (above), a named
	 * one stays as named. */
	expect_mode(fx, "offmock", MODE_DISABLED, ADAPTER_MOCK);
}

static void
test_test_mode(void **state)
{
	struct fx *fx = *state;
	setenv("TEST_MODE", "mock_adapter", 1);
	expect_mode(fx, "test", MODE_SINGLE, ADAPTER_MOCK);
	setenv("TEST_MODE", "bridge_mock", 1);
	expect_mode(fx, "test", MODE_SINGLE, ADAPTER_BRIDGE_MOCK);
	setenv("TEST_MODE", "full_integration", 1);
	struct config *c = load(fx, modes_conf, "test");
	assert_non_null(c);
	assert_int_equal(c->mode, MODE_POOL);
	assert_int_equal(c->adapter, ADAPTER_PYTHON_POOL);
	assert_true(c->bridge.enabled);
	assert_true(c->bridge.pooling_enabled);
	assert_int_equal(c->pool.size, 2);
	assert_string_equal(c->test_mode, "full_integration");
	config_free(c);
	setenv("TEST_MODE", "", 1);
	expect_mode(fx, "test", MODE_SINGLE, ADAPTER_PYTHON_PORT);
}

/* TEST_MODE means nothing outside the environment named "test", even when
 * its value is not one of the words. */
static void
test_test_mode_only_in_test(void **state)
{
	struct fx *fx = *state;
	setenv("TEST_MODE", "full_integration", 1);
	expect_mode(fx, "dev", MODE_SINGLE, ADAPTER_PYTHON_PORT);
	expect_mode(fx, "off", MODE_DISABLED, ADAPTER_AUTO);
	setenv("TEST_MODE", "mock_adapter", 1);
	struct config *c = load(fx, modes_conf, "offtest");
	assert_non_null(c);
	assert_int_equal(c->adapter, ADAPTER_PYTHON_PORT);
	assert_null(c->test_mode);
	config_free(c);
	setenv("TEST_MODE", "bogus", 1);
	expect_mode(fx, "pooled", MODE_POOL, ADAPTER_PYTHON_POOL);
}

static void
test_test_mode_unknown(void **state)
{
	struct fx *fx = *state;
	setenv("TEST_MODE", "bogus", 1);
	write_file(fx->path, modes_conf);
	assert_null(config_load(fx->path, "test", fx->err, sizeof fx->err));
	char *want = xasprintf("%s: TEST_MODE: unknown value 'bogus'", fx->path);
	assert_memory_equal(fx->err, want, strlen(want));
	free(want);
}

static void
test_pool_size_zero(void **state)
{
	struct fx *fx = *state;
	struct config *c = load(fx, "pool = { size = 0; };\n"
	    "environments = { dev = { }; one = { pool = { size = 1; }; }; };\n",
	    NULL);
	assert_non_null(c);
	assert_int_equal(c->pool.size, cpus2());
	config_free(c);
	c = load(fx, "pool = { size = 0; };\n"
	    "environments = { dev = { }; one = { pool = { size = 1; }; }; };\n",
	    "one");
	assert_non_null(c);
	assert_int_equal(c->pool.size, 1);
	config_free(c);
}

static void
test_relative_paths(void **state)
{
	struct fx *fx = *state;
	struct config *c = load(fx,
	    "control = { socket = \"sub/../x/a.sock\"; };\n"
	    "worker = { command = [\"./bin/w\", \"-c\", \"../lib/x.py\",\n"
	    "  \"--opt=a/b\", \"/abs/p\", \"plain\", \"./w.py\"]; };\n"
	    "environments = { dev = { }; up = { control = {"
	    " socket = \"../up.sock\"; }; }; };\n", NULL);
	assert_non_null(c);
	char *want = xasprintf("%s/sub/../x/a.sock", fx->dir);
	assert_string_equal(c->control.socket, want);
	free(want);
	char **v = c->worker.argv;
	want = xasprintf("%s/bin/w", fx->dir);
	assert_string_equal(v[0], want);
	free(want);
	assert_string_equal(v[1], "-c");
	want = xasprintf("%s/lib/x.py", strcmp(fx->parent, "/") ? fx->parent : "");
	assert_string_equal(v[2], want);
	free(want);
	assert_string_equal(v[3], "--opt=a/b");
	assert_string_equal(v[4], "/abs/p");
	assert_string_equal(v[5], "plain");
	want = xasprintf("%s/w.py", fx->dir);
	assert_string_equal(v[6], want);
	free(want);
	assert_null(v[7]);
	config_free(c);
}

/* Only elements that read as file names are resolved: one holding
 * whitespace or a character a POSIX shell needs quoted is an argument (a
 * script for sh -c), left as it is. */
static void
test_command_arguments_not_paths(void **state)
{
	struct fx *fx = *state;
	struct config *c = load(fx,
	    "worker = { command = [\"/bin/sh\", \"-c\", \"printf x; exec ./w\",\n"
	    "  \"./w\", \"a/b c\", \"x|y/z\", \"$HOME/w\", \"a/'b'\",\n"
	    "  \"(cd/x)\", \"a\\\\/b\", \"x/y>z\", \"tab\\t/x\", \"../workers/w.py\"]; };\n"
	    MINIMAL, NULL);
	assert_non_null(c);
	char **v = c->worker.argv;
	assert_string_equal(v[0], "/bin/sh");
	assert_string_equal(v[1], "-c");
	assert_string_equal(v[2], "printf x; exec ./w");
	char *want = xasprintf("%s/w", fx->dir);
	assert_string_equal(v[3], want);
	free(want);
	const char *kept[] = { "a/b c", "x|y/z", "$HOME/w", "a/'b'", "(cd/x)",
	    "a\\/b", "x/y>z", "tab\t/x" };
	for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
		assert_string_equal(v[4 + i], kept[i]);
	want = xasprintf("%s/workers/w.py", strcmp(fx->parent, "/") ?
	    fx->parent : "");
	assert_string_equal(v[12], want);
	free(want);
	assert_null(v[13]);
	config_free(c);
}

/* Paths follow the real file: a symbolic link elsewhere, or a path with
 * "..", still resolves against the directory holding the file. */
static void
test_relative_paths_realpath(void **state)
{
	struct fx *fx = *state;
	write_file(fx->path, "control = { socket = \"s.sock\"; };\n" MINIMAL);
	char *sub = xasprintf("%s/sub", fx->dir);
	char *link = xasprintf("%s/sub/link.conf", fx->dir);
	char *dotted = xasprintf("%s/sub/../arbor.conf", fx->dir);
	char *want = xasprintf("%s/s.sock", fx->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(symlink(fx->path, link), 0);
	const char *paths[] = { link, dotted };
	for (size_t i = 0; i < 2; i++) {
		struct config *c = config_load(paths[i], NULL, fx->err,
		    sizeof fx->err);
		assert_non_null(c);
		assert_string_equal(c->path, fx->path);
		assert_string_equal(c->control.socket, want);
		config_free(c);
	}
	free(sub);
	free(link);
	free(dotted);
	free(want);
}

static void
test_include(void **state)
{
	struct fx *fx = *state;
	char *inc = xasprintf("%s/base.inc", fx->dir);
	write_file(inc, "pool = { size = 7; };\n");
	struct config *c = load(fx, "@include \"base.inc\"\n" MINIMAL, NULL);
	assert_non_null(c);
	assert_int_equal(c->pool.size, 7);
	config_free(c);
	/* An error inside the included file names that file. */
	write_file(inc, "\npool = { size = -7; };\n");
	write_file(fx->path, "@include \"base.inc\"\n" MINIMAL);
	assert_null(config_load(fx->path, NULL, fx->err, sizeof fx->err));
	char *want = xasprintf("%s:2: pool.size: must be >= 0", inc);
	assert_string_equal(fx->err, want);
	free(want);
	write_file(inc, "\n\npool = { size = ; };\n");
	assert_null(config_load(fx->path, NULL, fx->err, sizeof fx->err));
	want = xasprintf("%s:3: syntax: ", inc);
	assert_memory_equal(fx->err, want, strlen(want));
	free(want);
	free(inc);
}

/* ---- errors ---- */

static void
test_err_unknown_key(void **state)
{
	struct fx *fx = *state;
	expect_error(fx, "\n\nfoo = 1;\n" MINIMAL, NULL, 3, "foo: unknown key");
	expect_error(fx, "pool = {\n  size = 2;\n  sise = 2;\n};\n" MINIMAL,
	    NULL, 3, "pool.sise: unknown key");
	expect_error(fx, "log = { level = \"info\"; colour = true; };\n"
	    MINIMAL, NULL, 1, "log.colour: unknown key");
	expect_error(fx, "pool = 5;\n" MINIMAL, NULL, 1,
	    "pool: must be a group");
}

/* Every environment is validated, not only the selected one. */
static void
test_err_unknown_key_in_environment(void **state)
{
	struct fx *fx = *state;
	expect_error(fx, "environments = {\n"
	    "  dev = { };\n"
	    "  other = {\n"
	    "    pool = { bogus = 1; };\n"
	    "  };\n"
	    "};\n", "dev", 4, "environments.other.pool.bogus: unknown key");
	expect_error(fx, "environments = {\n  dev = { };\n"
	    "  x = { default_environment = \"dev\"; };\n};\n", NULL, 3,
	    "environments.x.default_environment: unknown key");
	expect_error(fx, "environments = {\n  dev = { };\n"
	    "  x = { environments = { }; };\n};\n", NULL, 3,
	    "environments.x.environments: unknown key");
	expect_error(fx, "environments = { dev = { };\n"
	    "  x = { pool = { size = -2; }; }; };\n", NULL, 2,
	    "environments.x.pool.size: must be >= 0");
	expect_error(fx, "environments = { dev = { }; x = 3; };\n", NULL, 1,
	    "environments.x: must be a group");
	expect_error(fx, "environments = 3;\n", NULL, 1,
	    "environments: must be a group");
	expect_error(fx, "environments = { dev = { pool = 1; }; };\n", NULL,
	    1, "environments.dev.pool: must be a group");
}

static void
test_err_wrong_type(void **state)
{
	struct fx *fx = *state;
	expect_error(fx, "pool = { size = \"2\"; };\n" MINIMAL, NULL, 1,
	    "pool.size: must be an integer");
	expect_error(fx, "\nworker = { init_timeout_ms = 1.5; };\n" MINIMAL,
	    NULL, 2, "worker.init_timeout_ms: must be an integer");
	expect_error(fx, "bridge = { enabled = 1; };\n" MINIMAL, NULL, 1,
	    "bridge.enabled: must be true or false");
	expect_error(fx, "pool = { lazy = \"yes\"; };\n" MINIMAL, NULL, 1,
	    "pool.lazy: must be true or false");
	expect_error(fx, "pool = { strategy = 1; };\n" MINIMAL, NULL, 1,
	    "pool.strategy: must be a string, one of fifo | lifo");
	expect_error(fx, "control = { socket = 5; };\n" MINIMAL, NULL, 1,
	    "control.socket: must be a non-empty string");
	expect_error(fx, "control = { socket = \"\"; };\n" MINIMAL, NULL, 1,
	    "control.socket: must be a non-empty string");
	expect_error(fx, "default_environment = 5;\n" MINIMAL, NULL, 1,
	    "default_environment: must be a non-empty string");
	expect_error(fx, "worker = {\n env = { A = \"1\"; B = 2; }; };\n"
	    MINIMAL, NULL, 2, "worker.env.B: must be a string");
	expect_error(fx, "worker = { env = \"A=1\"; };\n" MINIMAL, NULL, 1,
	    "worker.env: must be a group of NAME = \"value\"");
}

static void
test_err_out_of_range(void **state)
{
	struct fx *fx = *state;
	expect_error(fx, "pool = { size = -1; };\n" MINIMAL, NULL, 1,
	    "pool.size: must be >= 0");
	expect_error(fx, "supervisor = { max_restarts = -1; };\n" MINIMAL,
	    NULL, 1, "supervisor.max_restarts: must be >= 0");
	expect_error(fx, "supervisor = { max_seconds = 0; };\n" MINIMAL, NULL,
	    1, "supervisor.max_seconds: must be >= 1");
	expect_error(fx, "pool = { max_seconds = 0; };\n" MINIMAL, NULL, 1,
	    "pool.max_seconds: must be >= 1");
	expect_error(fx, "worker = { init_timeout_ms = 0; };\n" MINIMAL, NULL,
	    1, "worker.init_timeout_ms: must be >= 1");
	expect_error(fx, "worker = { shutdown_timeout_ms = -5; };\n" MINIMAL,
	    NULL, 1, "worker.shutdown_timeout_ms: must be >= 0");
	expect_error(fx, "pool = { session_ttl_ms = -1L; };\n" MINIMAL, NULL,
	    1, "pool.session_ttl_ms: must be >= 0");
	expect_error(fx, "worker = { max_frame_bytes = 255; };\n" MINIMAL,
	    NULL, 1, "worker.max_frame_bytes: must be >= 256");
	expect_error(fx, "control = { max_frame_bytes = 63; };\n" MINIMAL,
	    NULL, 1, "control.max_frame_bytes: must be >= 64");
	expect_error(fx, "control = { max_frame_bytes = 1073741825; };\n"
	    MINIMAL, NULL, 1, "control.max_frame_bytes: must be <= 1073741824");
	expect_error(fx, "worker = { request_timeout_ms = 3000000000L; };\n"
	    MINIMAL, NULL, 1,
	    "worker.request_timeout_ms: must be <= 2147483647");
	expect_error(fx, "worker = { max_inflight = 0; };\n" MINIMAL, NULL, 1,
	    "worker.max_inflight: must be >= 1");
	expect_error(fx, "control = { max_clients = 0; };\n" MINIMAL, NULL, 1,
	    "control.max_clients: must be >= 1");
	/* Beyond these, arbord would allocate without bound or run out of
	 * overflow names: refused as any out-of-range value. */
	expect_error(fx, "supervisor = { max_restarts = 2147483647; };\n"
	    MINIMAL, NULL, 1, "supervisor.max_restarts: must be <= 1000000");
	expect_error(fx, "bridge = { max_restarts = 1000001; };\n" MINIMAL,
	    NULL, 1, "bridge.max_restarts: must be <= 1000000");
	expect_error(fx, "pool = { max_restarts = 1000001; };\n" MINIMAL,
	    NULL, 1, "pool.max_restarts: must be <= 1000000");
	expect_error(fx, "pool = { max_overflow = 65; };\n" MINIMAL, NULL, 1,
	    "pool.max_overflow: must be <= 64");
}

/* libconfig 1.5 reads an integer literal without the L suffix into an
 * int, wrapping: 4294967296 arrives as 0, 4294967297 as 1. The value as
 * written is the one checked (and kept, for a 64-bit key). */
static void
test_err_out_of_range_unsuffixed(void **state)
{
	struct fx *fx = *state;
	expect_error(fx, "pool = { size = 4294967296; };\n" MINIMAL, NULL, 1,
	    "pool.size: must be <= 2147483647");
	expect_error(fx, "worker = { request_timeout_ms = 4294967297; };\n"
	    MINIMAL, NULL, 1,
	    "worker.request_timeout_ms: must be <= 2147483647");
	expect_error(fx, "pool = { max_overflow =\n  # why\n  4294967298; };\n"
	    MINIMAL, NULL, 1, "pool.max_overflow: must be <= 64");
	expect_error(fx, "pool = { size = 2; max_waiting = -4294967295; };\n"
	    MINIMAL, NULL, 1, "pool.max_waiting: must be >= 0");
	expect_error(fx, "pool = { size = 0x100000002; };\n" MINIMAL, NULL, 1,
	    "pool.size: must be <= 2147483647");
	expect_error(fx, "control = { max_clients = 99999999999999999999; };\n"
	    MINIMAL, NULL, 1, "control.max_clients: must be <= 2147483647");
	/* One line may hold the same name twice: each setting is read from
	 * its own literal, not from the first one that would fit. */
	expect_error(fx, "bridge = { max_restarts = 0; }; pool = { "
	    "max_restarts = 4294967296; };\n" MINIMAL, NULL, 1,
	    "pool.max_restarts: must be <= 1000000");
	expect_error(fx, "environments = { dev = { pool = { size = 0; }; }; "
	    "x = { pool = { size = 4294967296; }; }; };\n", NULL, 1,
	    "environments.x.pool.size: must be <= 2147483647");
	struct config *c = load(fx, "bridge = { max_restarts = 9; }; pool = { max_restarts"
	    " = 9; size = 0; }; worker = { max_requests = 4294967296; };\n"
	    MINIMAL, NULL);
	assert_non_null(c);
	assert_int_equal(c->bridge.max_restarts, 9);
	assert_int_equal(c->pool.max_restarts, 9);
	assert_int_equal(c->worker.max_requests, 4294967296L);
	config_free(c);
	c = load(fx, "worker = { max_requests = 99999999999; "
	    "max_errors = 7; };\npool = { size = 3; max_waiting = 0x10; };\n"
	    MINIMAL, NULL);
	assert_non_null(c);
	assert_int_equal(c->worker.max_requests, 99999999999L);
	assert_int_equal(c->worker.max_errors, 7);
	assert_int_equal(c->pool.size, 3);
	assert_int_equal(c->pool.max_waiting, 16);
	config_free(c);
}

/* The literal is found as libconfig's scanner reads the text: a "name ="
 * in a comment or a string before the setting on its line is none (it was
 * taken for the setting, and 4294967296 passed as the 0 libconfig holds:
 * a pool of the CPU count). */
static void
test_err_out_of_range_unsuffixed_comment(void **state)
{
	struct fx *fx = *state;
	expect_error(fx, "pool = { /* size = 1 */ size = 4294967296; };\n"
	    MINIMAL, NULL, 1, "pool.size: must be <= 2147483647");
	expect_error(fx, "control = { socket = \"x size = 1\"; }; "
	    "pool = { size = 4294967296; };\n" MINIMAL, NULL, 1,
	    "pool.size: must be <= 2147483647");
	expect_error(fx, "pool = { /* size = 1\n size = 2 */ "
	    "size = 4294967296; };\n" MINIMAL, NULL, 2,
	    "pool.size: must be <= 2147483647");
	expect_error(fx, "control = { socket = \"a\nmax_clients = 1\"; "
	    "max_clients = 4294967296; };\n" MINIMAL, NULL, 2,
	    "control.max_clients: must be <= 2147483647");
	struct config *c = load(fx, "pool = { /* size = 0 */ size = 3; }; "
	    "# size = 4294967296\n" MINIMAL, NULL);
	assert_non_null(c);
	assert_int_equal(c->pool.size, 3);
	config_free(c);
}

/* A literal beyond 64 bits is out of range too: libconfig holds the
 * nearest bound (or a hex literal's low 64 bits, LLONG_MAX without the L
 * suffix), which passed for a long setting as LONG_MAX. */
static void
test_err_out_of_range_64(void **state)
{
	struct fx *fx = *state;
	static const char *const big[] = {
		"9223372036854775808", "9223372036854775808L",
		"18446744073709551616", "99999999999999999999999L",
		"0xFFFFFFFFFFFFFFFF", "0x1FFFFFFFFFFFFFFFFL",
	};
	for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
		char *text = xasprintf("worker = { max_requests = %s; };\n"
		    MINIMAL, big[i]);
		expect_error(fx, text, NULL, 1,
		    "worker.max_requests: must be <= 9223372036854775807");
		free(text);
	}
	expect_error(fx, "pool = { session_ttl_ms = -9223372036854775809L; "
	    "};\n" MINIMAL, NULL, 1, "pool.session_ttl_ms: must be >= 0");
	struct config *c = load(fx, "worker = { max_requests = "
	    "9223372036854775807; max_errors = 0x7FFFFFFFFFFFFFFFL; };\n"
	    MINIMAL, NULL);
	assert_non_null(c);
	assert_true(c->worker.max_requests == LONG_MAX);
	assert_true(c->worker.max_errors == LONG_MAX);
	config_free(c);
}

static void
test_err_enum_word(void **state)
{
	struct fx *fx = *state;
	expect_error(fx, "pool = { strategy = \"random\"; };\n" MINIMAL, NULL,
	    1, "pool.strategy: must be one of fifo | lifo, not \"random\"");
	expect_error(fx, "worker = { sched_policy = \"fast\"; };\n" MINIMAL,
	    NULL, 1, "worker.sched_policy: must be one of inherit | other | "
	    "batch | idle, not \"fast\"");
	expect_error(fx, "pool = { affinity = \"sticky\"; };\n" MINIMAL, NULL,
	    1, "pool.affinity: must be one of strict | prefer | none, "
	    "not \"sticky\"");
	expect_error(fx, "bridge = { adapter = \"python\"; };\n" MINIMAL, NULL,
	    1, "bridge.adapter: must be one of auto | python_port | "
	    "python_pool | bridge_mock | mock, not \"python\"");
	expect_error(fx, "worker = { restart = \"always\"; };\n" MINIMAL, NULL,
	    1, "worker.restart: must be one of permanent | transient | "
	    "temporary, not \"always\"");
	expect_error(fx, "log = { level = \"trace\"; };\n" MINIMAL, NULL, 1,
	    "log.level: must be one of debug | info | warn | error, "
	    "not \"trace\"");
	expect_error(fx, "log = { format = \"xml\"; };\n" MINIMAL, NULL, 1,
	    "log.format: must be one of text | json, not \"xml\"");
}

static void
test_err_control_mode(void **state)
{
	static const char *const bad[] = {
		"control = { mode = \"0800\"; };\n",
		"control = { mode = \"rw\"; };\n",
		"control = { mode = \"60\"; };\n",
		"control = { mode = \"00600\"; };\n",
		"control = { mode = 0600; };\n",
	};
	struct fx *fx = *state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *text = xasprintf("%s%s", bad[i], MINIMAL);
		expect_error(fx, text, NULL, 1, "control.mode: must be an octal "
		    "string such as \"0600\"");
		free(text);
	}
	struct config *c = load(fx, "control = { mode = \"660\"; };\n" MINIMAL,
	    NULL);
	assert_non_null(c);
	assert_int_equal(c->control.mode, 0660);
	config_free(c);
}

static void
test_err_command(void **state)
{
	struct fx *fx = *state;
	const char *bad = "worker.command: must be a non-empty list of strings";
	expect_error(fx, "worker = { command = []; };\n" MINIMAL, NULL, 1, bad);
	expect_error(fx, "worker = { command = (); };\n" MINIMAL, NULL, 1, bad);
	expect_error(fx, "worker = { command = \"python3\"; };\n" MINIMAL,
	    NULL, 1, bad);
	char *want = xasprintf("%s (element 2 is not a string)", bad);
	expect_error(fx, "worker = { command = (\"a\",\n 5); };\n" MINIMAL,
	    NULL, 2, want);
	free(want);
	want = xasprintf("%s (element 1 is empty)", bad);
	expect_error(fx, "worker = { command = [\"\", \"x\"]; };\n" MINIMAL,
	    NULL, 1, want);
	free(want);
	/* A list (parentheses) works as well as an array. */
	struct config *c = load(fx, "worker = { command = (\"a\", \"\"); };\n"
	    MINIMAL, NULL);
	assert_non_null(c);
	assert_string_equal(c->worker.argv[1], "");
	config_free(c);
}

static void
test_err_syntax(void **state)
{
	struct fx *fx = *state;
	expect_error_prefix(fx, "pool = {\n  size = ;\n};\n" MINIMAL, 2,
	    "syntax: ");
	expect_error_prefix(fx, MINIMAL "\n\nlog = { level = = \"x\"; };\n", 4,
	    "syntax: ");
	/* A key given twice: the parser's error, with the key named
	 * (test_duplicate_names_key). */
	expect_error_prefix(fx, "pool = { size = 1;\n size = 2; };\n" MINIMAL,
	    2, "pool.size: duplicate setting");
}

static void
test_err_missing_file(void **state)
{
	struct fx *fx = *state;
	char *path = xasprintf("%s/nope.conf", fx->dir);
	char *want = xasprintf("%s: cannot open: No such file or directory",
	    path);
	assert_null(config_load(path, NULL, fx->err, sizeof fx->err));
	assert_string_equal(fx->err, want);
	free(want);
	want = xasprintf("%s: cannot open: Is a directory", fx->dir);
	assert_null(config_load(fx->dir, NULL, fx->err, sizeof fx->err));
	assert_string_equal(fx->err, want);
	free(want);
	free(path);
}

/* A config that is no regular file is refused at once: a FIFO blocked the
 * load (at a reload, the daemon) until a writer came, and a device such
 * as /dev/zero was read until memory ran out. An alarm turns a blocked
 * load into a failure. */
static void
test_err_not_regular_file(void **state)
{
	struct fx *fx = *state;
	char *fifo = xasprintf("%s/fifo.conf", fx->dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	const char *paths[] = { fifo, "/dev/null" };
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		char *want = xasprintf("%s: cannot open: not a regular file",
		    paths[i]);
		alarm(10);
		assert_null(config_load(paths[i], NULL, fx->err,
		    sizeof fx->err));
		alarm(0);
		assert_string_equal(fx->err, want);
		free(want);
	}
	free(fifo);
}

/* err may be NULL or short: the load still fails cleanly. */
static void
test_err_buffer(void **state)
{
	struct fx *fx = *state;
	char small[8];
	write_file(fx->path, "foo = 1;\n" MINIMAL);
	assert_null(config_load(fx->path, NULL, NULL, 0));
	assert_null(config_load(fx->path, NULL, small, sizeof small));
	assert_int_equal(strlen(small), sizeof small - 1);
	assert_memory_equal(small, fx->path, sizeof small - 1);
}

static void
test_err_socket_too_long(void **state)
{
	struct fx *fx = *state;
	char name[200];
	memset(name, 'a', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	char *text = xasprintf("control = { socket = \"%s\"; };\n" MINIMAL,
	    name);
	write_file(fx->path, text);
	assert_null(config_load(fx->path, NULL, fx->err, sizeof fx->err));
	char *want = xasprintf("%s:1: control.socket: ", fx->path);
	assert_memory_equal(fx->err, want, strlen(want));
	assert_non_null(strstr(fx->err, "too long for a unix socket"));
	free(want);
	free(text);
}

/* ---- the shipped files ---- */

static struct config *
load_shipped(const char *path, const char *env)
{
	char err[1024];
	struct config *c = config_load(path, env, err, sizeof err);
	if (c == NULL)
		fail_msg("%s (%s): %s", path, env ? env : "default", err);
	return c;
}

static void
expect_shipped(const char *path, const char *env, const char *name,
    enum cfg_mode mode, enum cfg_adapter adapter, int size)
{
	struct config *c = load_shipped(path, env);
	assert_string_equal(c->env, name);
	assert_int_equal(c->mode, mode);
	assert_int_equal(c->adapter, adapter);
	if (size >= 0)
		assert_int_equal(c->pool.size, size);
	assert_true(c->control.socket[0] == '/');
	config_free(c);
}

static void
test_shipped_arbor_conf(void **state)
{
	(void)state;
	const char *p = "conf/arbor.conf";
	expect_shipped(p, NULL, "dev", MODE_SINGLE, ADAPTER_PYTHON_PORT, -1);
	expect_shipped(p, "dev", "dev", MODE_SINGLE, ADAPTER_PYTHON_PORT, -1);
	expect_shipped(p, "test", "test", MODE_SINGLE, ADAPTER_PYTHON_PORT, 2);
	expect_shipped(p, "prod", "prod", MODE_POOL, ADAPTER_PYTHON_POOL,
	    cpus2());
	setenv("TEST_MODE", "full_integration", 1);
	expect_shipped(p, "test", "test", MODE_POOL, ADAPTER_PYTHON_POOL, 2);
	setenv("TEST_MODE", "bridge_mock", 1);
	expect_shipped(p, "test", "test", MODE_SINGLE, ADAPTER_BRIDGE_MOCK, 2);
	setenv("TEST_MODE", "mock_adapter", 1);
	expect_shipped(p, "test", "test", MODE_SINGLE, ADAPTER_MOCK, 2);

	struct config *c = load_shipped(p, "dev");
	assert_string_equal(c->worker.argv[0], "python3");
	assert_non_null(strstr(c->worker.argv[1],
	    "/workers/python/bridge_worker.py"));
	assert_true(c->worker.argv[1][0] == '/');
	assert_non_null(strstr(c->control.socket, "/run/arbor.sock"));
	assert_null(strstr(c->control.socket, ".."));
	config_free(c);
}

static void
test_shipped_examples(void **state)
{
	(void)state;
	const char *pool = "conf/examples/pool.conf";
	const char *single = "conf/examples/single.conf";
	const char *off = "conf/examples/disabled.conf";
	expect_shipped(pool, NULL, "prod", MODE_POOL, ADAPTER_PYTHON_POOL, 4);
	expect_shipped(pool, "small", "small", MODE_POOL, ADAPTER_PYTHON_POOL, 2);
	expect_shipped(single, NULL, "dev", MODE_SINGLE, ADAPTER_PYTHON_PORT, -1);
	expect_shipped(single, "mock", "mock", MODE_SINGLE, ADAPTER_BRIDGE_MOCK,
	    -1);
	expect_shipped(off, NULL, "off", MODE_DISABLED, ADAPTER_AUTO, -1);
	expect_shipped(off, "on", "on", MODE_SINGLE, ADAPTER_PYTHON_PORT, -1);
}

/* ---- diff, print, names ---- */

static bool
has_key(const char **keys, const char *key)
{
	for (; *keys != NULL; keys++)
		if (strcmp(*keys, key) == 0)
			return true;
	return false;
}

static size_t
count_keys(const char **keys)
{
	size_t n = 0;
	while (keys[n] != NULL)
		n++;
	return n;
}

static const char diff_conf[] =
	"worker = { env = { A = \"1\"; }; };\n"
	"environments = {\n"
	"  dev = { };\n"
	"  same = { };\n"
	"  other = {\n"
	"    bridge = { pooling_enabled = true; };\n"
	"    pool = { size = 9; lazy = true; affinity = \"none\"; };\n"
	"    worker = { command = [\"x\"]; env = { A = \"2\"; };\n"
	"               max_frame_bytes = 1024; };\n"
	"    control = { socket = \"o.sock\"; mode = \"0660\"; };\n"
	"    log = { format = \"json\"; };\n"
	"  };\n"
	"};\n";

static void
test_diff(void **state)
{
	struct fx *fx = *state;
	struct config *a = load(fx, diff_conf, "dev");
	struct config *b = load(fx, diff_conf, "same");
	struct config *c = load(fx, diff_conf, "other");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	const char **d = config_diff(a, b);
	assert_int_equal(count_keys(d), 1);
	assert_string_equal(d[0], "environment");
	free(d);
	d = config_diff(a, a);
	assert_null(d[0]);
	free(d);
	static const char *const want[] = {
		"environment", "mode", "adapter", "bridge.pooling_enabled",
		"pool.size", "pool.lazy", "pool.affinity", "worker.command",
		"worker.env", "worker.max_frame_bytes", "control.socket",
		"control.mode", "log.format",
	};
	d = config_diff(a, c);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (!has_key(d, want[i]))
			fail_msg("config_diff lacks %s", want[i]);
	assert_int_equal(count_keys(d), sizeof want / sizeof want[0]);
	free(d);
	config_free(a);
	config_free(b);
	config_free(c);
}

/* worker.env is a set of variables: the same ones in another order are no
 * change (worker.command's order is). */
static void
test_diff_env_order(void **state)
{
	struct fx *fx = *state;
	struct config *a = load(fx, "worker = { env = { A = \"1\"; B = \"2\"; };"
	    " };\n" MINIMAL, NULL);
	struct config *b = load(fx, "worker = { env = { B = \"2\"; A = \"1\"; };"
	    " };\n" MINIMAL, NULL);
	struct config *c = load(fx, "worker = { env = { B = \"2\"; A = \"3\"; };"
	    " };\n" MINIMAL, NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	const char **d = config_diff(a, b);
	assert_null(d[0]);
	free(d);
	d = config_diff(a, c);
	assert_int_equal(count_keys(d), 1);
	assert_string_equal(d[0], "worker.env");
	free(d);
	config_free(a);
	config_free(b);
	config_free(c);
	a = load(fx, "worker = { command = [\"a\", \"b\"]; };\n" MINIMAL, NULL);
	b = load(fx, "worker = { command = [\"b\", \"a\"]; };\n" MINIMAL, NULL);
	d = config_diff(a, b);
	assert_int_equal(count_keys(d), 1);
	assert_string_equal(d[0], "worker.command");
	free(d);
	config_free(a);
	config_free(b);
}

static void
test_diff_test_mode(void **state)
{
	struct fx *fx = *state;
	struct config *a = load(fx, modes_conf, "test");
	setenv("TEST_MODE", "mock_adapter", 1);
	struct config *b = load(fx, modes_conf, "test");
	const char **d = config_diff(a, b);
	assert_true(has_key(d, "adapter"));
	assert_true(has_key(d, "test_mode"));
	assert_int_equal(count_keys(d), 2);
	free(d);
	config_free(a);
	config_free(b);
}

/* Every key of SPEC 3 and worker.sched_policy, in dotted form. */
static const char *const spec_keys[] = {
	"supervisor.max_restarts", "supervisor.max_seconds",
	"bridge.enabled", "bridge.pooling_enabled", "bridge.adapter",
	"bridge.max_restarts", "bridge.max_seconds",
	"worker.command", "worker.env", "worker.restart",
	"worker.init_timeout_ms", "worker.request_timeout_ms",
	"worker.health_interval_ms", "worker.health_timeout_ms",
	"worker.shutdown_timeout_ms", "worker.max_requests", "worker.max_errors",
	"worker.max_frame_bytes", "worker.restart_delay_ms",
	"worker.max_restart_delay_ms", "worker.max_inflight",
	"worker.sched_policy", "pool.size", "pool.max_overflow", "pool.overflow_idle_ms",
	"pool.strategy", "pool.lazy", "pool.checkout_timeout_ms",
	"pool.max_waiting", "pool.affinity", "pool.session_ttl_ms",
	"pool.max_restarts", "pool.max_seconds",
	"control.socket", "control.mode", "control.max_clients",
	"control.max_frame_bytes", "log.level", "log.format",
	"environment", "mode", "adapter",
};

static char *
print_to_string(const struct config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	config_print(c, f);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void
expect_line(const char *text, const char *line)
{
	char *want = xasprintf("\n%s\n", line);
	char *all = xasprintf("\n%s", text);
	if (strstr(all, want) == NULL)
		fail_msg("no line \"%s\" in:\n%s", line, text);
	free(want);
	free(all);
}

static void
test_print(void **state)
{
	struct fx *fx = *state;
	setenv("TEST_MODE", "bridge_mock", 1);
	struct config *c = load(fx, "worker = { command = [\"py\", \"./w.py\", "
	    "\"a\\\"b\", \"sh -c ./x\"]; env = { X = \"1\"; }; };\n"
	    "control = { socket = \"s.sock\"; };\n"
	    "environments = { test = { }; };\n", "test");
	assert_non_null(c);
	char *out = print_to_string(c);
	char *line = xasprintf("control.socket = %s/s.sock", fx->dir);
	expect_line(out, line);
	free(line);
	line = xasprintf("worker.command = [\"py\", \"%s/w.py\", \"a\\\"b\", "
	    "\"sh -c ./x\"]", fx->dir);
	expect_line(out, line);
	free(line);
	line = xasprintf("pool.size = %d", cpus2());
	expect_line(out, line);
	free(line);
	line = xasprintf("config = %s", fx->path);
	expect_line(out, line);
	free(line);
	expect_line(out, "environment = test");
	expect_line(out, "mode = single");
	expect_line(out, "adapter = bridge_mock");
	expect_line(out, "test_mode = bridge_mock");
	expect_line(out, "bridge.adapter = auto");
	expect_line(out, "bridge.enabled = true");
	expect_line(out, "pool.lazy = false");
	expect_line(out, "worker.env = {\"X\": \"1\"}");
	expect_line(out, "worker.init_timeout_ms = 5000");
	expect_line(out, "worker.max_frame_bytes = 16777216");
	expect_line(out, "pool.session_ttl_ms = 3600000");
	expect_line(out, "control.mode = 0600");
	expect_line(out, "log.level = info");
	expect_line(out, "log.format = text");
	free(out);
	config_free(c);
}

static void
test_print_every_key(void **state)
{
	struct fx *fx = *state;
	struct config *c = load(fx, MINIMAL, NULL);
	assert_non_null(c);
	char *out = print_to_string(c);
	char *all = xasprintf("\n%s", out);
	for (size_t i = 0; i < sizeof spec_keys / sizeof spec_keys[0]; i++) {
		char *want = xasprintf("\n%s = ", spec_keys[i]);
		if (strstr(all, want) == NULL)
			fail_msg("config_print lacks %s", spec_keys[i]);
		free(want);
	}
	assert_null(strstr(all, "\ntest_mode = "));
	free(all);
	free(out);
	config_free(c);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(cfg_mode_name(MODE_DISABLED), "disabled");
	assert_string_equal(cfg_mode_name(MODE_SINGLE), "single");
	assert_string_equal(cfg_mode_name(MODE_POOL), "pool");
	assert_string_equal(cfg_adapter_name(ADAPTER_AUTO), "auto");
	assert_string_equal(cfg_adapter_name(ADAPTER_PYTHON_PORT), "python_port");
	assert_string_equal(cfg_adapter_name(ADAPTER_PYTHON_POOL), "python_pool");
	assert_string_equal(cfg_adapter_name(ADAPTER_BRIDGE_MOCK), "bridge_mock");
	assert_string_equal(cfg_adapter_name(ADAPTER_MOCK), "mock");
	assert_string_equal(cfg_restart_name(RESTART_PERMANENT), "permanent");
	assert_string_equal(cfg_restart_name(RESTART_TRANSIENT), "transient");
	assert_string_equal(cfg_restart_name(RESTART_TEMPORARY), "temporary");
	assert_string_equal(cfg_sched_name(SCHEDP_INHERIT), "inherit");
	assert_string_equal(cfg_sched_name(SCHEDP_OTHER), "other");
	assert_string_equal(cfg_sched_name(SCHEDP_BATCH), "batch");
	assert_string_equal(cfg_sched_name(SCHEDP_IDLE), "idle");
	assert_string_equal(cfg_strategy_name(STRATEGY_FIFO), "fifo");
	assert_string_equal(cfg_strategy_name(STRATEGY_LIFO), "lifo");
	assert_string_equal(cfg_affinity_name(AFFINITY_STRICT), "strict");
	assert_string_equal(cfg_affinity_name(AFFINITY_PREFER), "prefer");
	assert_string_equal(cfg_affinity_name(AFFINITY_NONE), "none");
	assert_string_equal(cfg_log_level_name(LOG_DEBUG), "debug");
	assert_string_equal(cfg_log_level_name(LOG_INFO), "info");
	assert_string_equal(cfg_log_level_name(LOG_WARN), "warn");
	assert_string_equal(cfg_log_level_name(LOG_ERROR), "error");
	assert_string_equal(cfg_log_format_name(LOG_TEXT), "text");
	assert_string_equal(cfg_log_format_name(LOG_JSON), "json");
	assert_string_equal(cfg_mode_name((enum cfg_mode)42), "?");
	config_free(NULL);
}

/* The main file includes PATH.inc, holding body[0..n); loading fails with
 * an error holding "PATH.inc:<want>". */
static void
expect_include_error(struct fx *fx, const char *body, size_t n,
    const char *want)
{
	char *inc = xasprintf("%s.inc", fx->path);
	FILE *f = fopen(inc, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(body, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
	char *text = xasprintf("@include \"%s\"\n", strrchr(inc, '/') + 1);
	write_file(fx->path, text);
	assert_null(config_load(fx->path, NULL, fx->err, sizeof fx->err));
	char *where = xasprintf("%s:%s", inc, want);
	if (strstr(fx->err, where) == NULL)
		fail_msg("error \"%s\" does not hold \"%s\"", fx->err, where);
	free(where);
	free(text);
	unlink(inc);
	free(inc);
}

/* An @include of a directory (libconfig 1.5 would exit the process from
 * its scanner) is an error with file:line, nested includes too. */
static void
test_include_directory_refused(void **state)
{
	struct fx *fx = *state;
	expect_error(fx, "\n@include \"\"\n", NULL, 2,
	    "@include: \"\" is not a readable file");
	static const char nested[] = "@include \".\"\n";
	expect_include_error(fx, nested, sizeof nested - 1,
	    "1: @include: \".\" is not");
}

/* Makes the directory path and its missing parents. */
static void
mkdir_p(const char *path)
{
	char *p = xstrdup(path);
	for (char *sl = p + 1; (sl = strchr(sl, '/')) != NULL; sl++) {
		*sl = '\0';
		assert_true(mkdir(p, 0700) == 0 || errno == EEXIST);
		*sl = '/';
	}
	assert_int_equal(mkdir(p, 0700), 0);
	free(p);
}

/* An @include name is read as libconfig's scanner reads it, so the file
 * checked is the file the scanner opens: `\\` and `\"` stand for `\` and
 * `"`, another backslash is refused (the scanner drops it: "d\r" opens
 * "dr"), a name may span lines, and every name, an absolute one too, is
 * taken after the directory of the config file. Each of these names a
 * directory to the scanner, which would exit the process. */
static void
test_include_name_as_scanned(void **state)
{
	struct fx *fx = *state;
	char *p = xasprintf("%s/dr", fx->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	free(p);
	p = xasprintf("%s/d\\r", fx->dir);
	write_file(p, "pool = { size = 3; };\n");
	free(p);
	expect_error(fx, "\n@include \"d\\r\"\n" MINIMAL, NULL, 2,
	    "@include: a backslash in the name escapes neither \\ nor \"");
	struct config *c = load(fx, "@include \"d\\\\r\"\n" MINIMAL, NULL);
	assert_non_null(c);
	assert_int_equal(c->pool.size, 3);
	config_free(c);

	p = xasprintf("%s/d\nr", fx->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	free(p);
	expect_error(fx, MINIMAL "@include \"d\nr\"\n", NULL, 2,
	    "@include: \"d\nr\" is not a readable file");

	/* "/D/x.inc" is a file; the scanner opens D//D/x.inc, a directory. */
	char *inc = xasprintf("%s/x.inc", fx->dir);
	write_file(inc, "pool = { size = 3; };\n");
	p = xasprintf("%s/%s", fx->dir, fx->dir);
	char *dir = xasprintf("%s/x.inc", p);
	mkdir_p(dir);
	char *text = xasprintf("@include \"%s\"\n" MINIMAL, inc);
	char *want = xasprintf("@include: \"%s\" is not a readable file "
	    "(every name is read from the directory of the config file: "
	    "%s/%s)", inc, fx->dir, inc);
	expect_error(fx, text, NULL, 1, want);
	free(want);
	free(text);
	free(dir);
	free(p);
	free(inc);
}

/* A setting repeated in its group is an error naming its dotted key
 * (libconfig's own error names only the line): nested, in an environment,
 * several on one line, across an @include; a name in a comment or a
 * string, or the same name in another group, is no repeat. */
static void
test_duplicate_names_key(void **state)
{
	struct fx *fx = *state;
	static const char why[] = "duplicate setting (already set in its group)";
	char *want = xasprintf("log: %s", why);
	expect_error(fx, "log = { };\n" MINIMAL "log = { };\n", NULL, 3, want);
	free(want);
	want = xasprintf("worker.max_errors: %s", why);
	expect_error(fx, "worker = {\n  max_errors = 3;\n"
	    "  /* command = 0; command = 1; */ command = [ \"command =\" ];\n"
	    "  max_errors\n  = 4;\n};\n" MINIMAL, NULL, 4, want);
	free(want);
	want = xasprintf("pool.size: %s", why);
	expect_error(fx, "pool = { lazy = true; size = 1; size = 2; "
	    "max_overflow = 1; };\n" MINIMAL, NULL, 1, want);
	free(want);
	want = xasprintf("environments.test.pool.size: %s", why);
	expect_error(fx, "environments = {\n"
	    "  dev = { pool = { size = 1; }; };\n"
	    "  test = { pool = { size = 2; size = 3; }; };\n"
	    "};\n", NULL, 3, want);
	free(want);
	want = xasprintf("environments.test.pool: %s", why);
	expect_error(fx, "environments = {\n"
	    "  dev = { pool = { size = 1; }; };\n"
	    "  test = { pool = { size = 2; }; worker = { }; pool = { }; };\n"
	    "};\n", NULL, 3, want);
	free(want);
	static const char inc[] = "max_errors = 5;\n";
	char *inc_path = xasprintf("%s/w.inc", fx->dir);
	write_file(inc_path, inc);
	write_file(fx->path, "worker = {\n  max_errors = 3;\n"
	    "  @include \"w.inc\"\n};\n" MINIMAL);
	assert_null(config_load(fx->path, NULL, fx->err, sizeof fx->err));
	want = xasprintf("%s:1: worker.max_errors: %s", inc_path, why);
	assert_string_equal(fx->err, want);
	free(want);
	free(inc_path);
}

/* An @include in a block comment is none: libconfig's scanner skips the
 * comment, and so does the check (it refused a name the scanner never
 * opens); one after the comment is checked, with its line. */
static void
test_include_in_comment_skipped(void **state)
{
	struct fx *fx = *state;
	struct config *c = load(fx, "/*\n@include \"missing.inc\"\n"
	    "  @include \".\"\n*/\n" MINIMAL, NULL);
	assert_non_null(c);
	config_free(c);
	expect_error(fx, "/* one\n * two */\n@include \"missing.inc\"\n"
	    MINIMAL, NULL, 3, "@include: \"missing.inc\" is not a readable "
	    "file");
	expect_error(fx, "# @include \"x\"\n/*\n*/ pool = { size = 2; };\n"
	    "\t@include \"missing.inc\"\n" MINIMAL, NULL, 4,
	    "@include: \"missing.inc\" is not a readable file");
}

/* A NUL byte anywhere, in the file or in one it includes, is an error
 * with file:line (`@include "\0"` would make libconfig's scanner open the
 * directory and exit the process). */
static void
test_nul_byte_refused(void **state)
{
	struct fx *fx = *state;
	static const char inc_nul[] = "@include  \"\0\" ]; };\"\n";
	static const char str_nul[] = "pool = { size = 2; };\n"
	    "log = { level = \"in\0fo\"; };\n";
	const struct { const char *p; size_t n; int line; } cases[] = {
		{ inc_nul, sizeof inc_nul - 1, 1 },
		{ str_nul, sizeof str_nul - 1, 2 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		FILE *f = fopen(fx->path, "w");
		assert_non_null(f);
		assert_int_equal(fwrite(cases[i].p, 1, cases[i].n, f),
		    cases[i].n);
		assert_int_equal(fclose(f), 0);
		assert_null(config_load(fx->path, NULL, fx->err,
		    sizeof fx->err));
		char *want = xasprintf("%s:%d: a NUL byte: not a text file",
		    fx->path, cases[i].line);
		assert_string_equal(fx->err, want);
		free(want);
	}
	/* In an included file: named with its own line. */
	expect_include_error(fx, "\n\n\0\n", 4, "3: a NUL byte");
}

#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)


int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_defaults),
		T(test_defaults_pool_control_log),
		T(test_defaults_paths),
		T(test_overlay_key_by_key),
		T(test_env_precedence),
		T(test_env_undefined),
		T(test_mode_resolution),
		T(test_test_mode),
		T(test_test_mode_only_in_test),
		T(test_test_mode_unknown),
		T(test_pool_size_zero),
		T(test_relative_paths),
		T(test_relative_paths_realpath),
		T(test_command_arguments_not_paths),
		T(test_include),
		T(test_nul_byte_refused),
		T(test_err_unknown_key),
		T(test_err_unknown_key_in_environment),
		T(test_err_wrong_type),
		T(test_err_out_of_range),
		T(test_err_out_of_range_unsuffixed),
		T(test_err_out_of_range_unsuffixed_comment),
		T(test_err_out_of_range_64),
		T(test_err_enum_word),
		T(test_err_control_mode),
		T(test_err_command),
		T(test_err_syntax),
		T(test_err_missing_file),
		T(test_err_not_regular_file),
		T(test_err_buffer),
		T(test_err_socket_too_long),
		T(test_shipped_arbor_conf),
		T(test_shipped_examples),
		T(test_diff),
		T(test_diff_env_order),
		T(test_diff_test_mode),
		T(test_print),
		T(test_print_every_key),
		T(test_names),
		T(test_include_directory_refused),
		T(test_include_name_as_scanned),
		T(test_include_in_comment_skipped),
		T(test_duplicate_names_key),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
