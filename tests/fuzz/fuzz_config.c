/* Fuzzes the config loader (supervisor/config): the input is written to a
 * file and loaded for the default environment, for "prod" and for "test"
 * (with TEST_MODE set); a config that loads is printed and diffed against
 * a fixed valid one and against itself.
 *
 * Checked per input: a failed load says why, naming the file; a loaded
 * config is resolved as SPEC 3 says and differs from itself in no key. An @include may name only a file
 * of the fuzzer's own directory (see include_ok). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/xmalloc.h"
#include "supervisor/config.h"
#include "tests/fuzz/fuzz.h"

static const char base_text[] =
    "default_environment = \"dev\";\n"
    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
    "worker = { command = [ \"./w\", \"--x\" ]; env = { A = \"1\"; }; };\n"
    "pool = { size = 3; affinity = \"prefer\"; };\n"
    "control = { socket = \"run/arbor.sock\"; mode = \"0660\"; };\n"
    "log = { level = \"warn\"; format = \"json\"; };\n"
    "environments = { dev = {}; prod = { pool = { size = 8; }; };\n"
    "  test = { bridge = { enabled = false; }; }; };\n";

static struct {
	char		 dir[64];
	char		*path;		/* the input, rewritten per input */
	char		*base_path;
	struct config	*base;		/* base_text, loaded */
	FILE		*devnull;
} z;

static void
write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		FUZZ_DIE("%s: %s", path, strerror(errno));
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			FUZZ_DIE("%s: %s", path, strerror(errno));
		c += w;
		n -= (size_t)w;
	}
	close(fd);
}

static void
teardown(void)
{
	config_free(z.base);
	fclose(z.devnull);
	unlink(z.path);
	unlink(z.base_path);
	free(z.path);
	free(z.base_path);
	rmdir(z.dir);
}

static void
setup(void)
{
	char err[1024];
	unsetenv("ARBOR_ENV");
	setenv("TEST_MODE", "mock_adapter", 1);
	snprintf(z.dir, sizeof z.dir, "/tmp/arbor-fuzz-config-XXXXXX");
	if (mkdtemp(z.dir) == NULL)
		FUZZ_DIE("mkdtemp: %s", strerror(errno));
	z.path = xasprintf("%s/fuzz.conf", z.dir);
	z.base_path = xasprintf("%s/base.conf", z.dir);
	write_file(z.base_path, base_text, sizeof base_text - 1);
	if ((z.base = config_load(z.base_path, NULL, err, sizeof err)) == NULL)
		FUZZ_DIE("%s", err);
	if ((z.devnull = fopen("/dev/null", "w")) == NULL)
		FUZZ_DIE("/dev/null: %s", strerror(errno));
	atexit(teardown);
}

/* The file an @include at data[i] names, as libconfig takes it: from the
 * opening quote to the closing one, cut at a NUL byte. Its length in *n;
 * NULL when there is no opening quote. */
static const char *
include_name(const uint8_t *data, size_t size, size_t i, size_t *n)
{
	while (i < size && (data[i] == ' ' || data[i] == '\t'))
		i++;
	if (i == size || data[i] != '"')
		return NULL;
	const char *name = (const char *)data + ++i;
	for (*n = 0; i + *n < size && data[i + *n] != '"' &&
	    data[i + *n] != '\0'; (*n)++)
		;
	return name;
}

/* Whether libconfig may read the include name[0..n): only a name of the
 * fuzzer's own directory, so that the fuzzer cannot make the loader read
 * the machine's devices or large files. A directory ("", ".") is allowed:
 * config.c must refuse it before libconfig 1.5's scanner would exit(2)
 * (the seed crash-include-directory). */
static bool
include_ok(const char *dir, const char *name, size_t n)
{
	if (memchr(name, '/', n) != NULL || memchr(name, '\\', n) != NULL)
		return false;
	(void)dir;	/* directories too: config.c rejects them itself */
	return true;
}

/* Whether every @include of the input is one include_ok() allows. */
static bool
includes_ok(const uint8_t *data, size_t size)
{
	static const char kw[] = "@include";
	const size_t kn = sizeof kw - 1;
	for (size_t i = 0; i + kn <= size; i++) {
		size_t n;
		if (strncasecmp((const char *)data + i, kw, kn) != 0)
			continue;
		const char *name = include_name(data, size, i + kn, &n);
		if (name != NULL && !include_ok(z.dir, name, n))
			return false;
	}
	return true;
}

/* No key differs between a config and itself; the diff against base is a
 * list of names. */
static void
check_diff(const struct config *c)
{
	const char **self = config_diff(c, c);
	FUZZ_CHECK(self != NULL && self[0] == NULL);
	free(self);
	const char **keys = config_diff(z.base, c);
	FUZZ_CHECK(keys != NULL);
	for (size_t i = 0; keys[i] != NULL; i++)
		FUZZ_CHECK(keys[i][0] != '\0');
	free(keys);
}

/* What resolution promises (SPEC 3): an absolute socket path that fits a
 * unix address, a concrete adapter (auto only where no adapter runs, in
 * mode disabled), a pool size of at least 1, a command. */
static void
check_resolved(const struct config *c)
{
	FUZZ_CHECK(c->env != NULL && c->env[0] != '\0');
	FUZZ_CHECK(c->control.socket != NULL && c->control.socket[0] == '/');
	FUZZ_CHECK(strlen(c->control.socket) < sizeof
	    ((struct sockaddr_un *)0)->sun_path);
	FUZZ_CHECK((c->adapter != ADAPTER_AUTO || c->mode == MODE_DISABLED) &&
	    c->adapter <= ADAPTER_MOCK);
	FUZZ_CHECK(c->mode <= MODE_POOL);
	FUZZ_CHECK((c->mode == MODE_DISABLED) == !c->bridge.enabled ||
	    c->test_mode != NULL);
	FUZZ_CHECK(c->pool.size >= 1);
	FUZZ_CHECK(c->control.max_frame_bytes >= 64);
	FUZZ_CHECK(c->worker.argv != NULL && c->worker.argv[0] != NULL &&
	    c->worker.argv[0][0] != '\0');
}

static void
load(const char *env)
{
	char err[1024];
	struct config *c = config_load(z.path, env, err, sizeof err);
	if (c == NULL) {
		/* "file:line: key: reason" or "file: reason" */
		FUZZ_CHECK(strncmp(err, z.dir, strlen(z.dir)) == 0);
		FUZZ_CHECK(strstr(err, ": ") != NULL);
		return;
	}
	check_resolved(c);
	config_print(c, z.devnull);
	check_diff(c);
	config_free(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		setup();
		ready = true;
	}
	if (!includes_ok(data, size))
		return 0;
	write_file(z.path, data, size);
	load(NULL);
	load("prod");
	load("test");
	return 0;
}
