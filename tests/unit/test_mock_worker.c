/* Tests of build/mock_worker (SPEC 5), and through it of libworker: each
 * test starts the real program over pipes, talks the worker protocol to it
 * and checks its replies, its exit status and its stderr. Run from the
 * repository root. Every child is killed and reaped by the teardown, also
 * when an assertion fails. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "workers/libworker/worker.h"

#ifndef MOCK_WORKER
#define MOCK_WORKER	"./build/mock_worker"
#endif
#define REPLY_MS	5000		/* how long a reply may take */
#define QUIET_MS	300		/* how long "no reply" is watched */
#define MAX_FRAME	(64u << 20)

struct fx {
	pid_t		pid;		/* -1 when none or reaped */
	int		status;		/* once reaped */
	int		in;		/* the worker's stdin */
	int		out;		/* the worker's stdout */
	int		err;		/* the worker's stderr */
	struct buf	rbuf;		/* bytes read from out */
	char		errtext[65536];	/* bytes read from err */
	size_t		errlen;
	json_int_t	next_id;
	json_t		*last;		/* the last reply */
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (f == NULL)
		return -1;
	f->pid = -1;
	f->in = f->out = f->err = -1;
	f->next_id = 1;
	buf_init(&f->rbuf);
	*state = f;
	return 0;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		while (waitpid(f->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	close_fd(&f->in);
	close_fd(&f->out);
	close_fd(&f->err);
	buf_release(&f->rbuf);
	json_decref(f->last);
	free(f);
	return 0;
}

/* In the child: the environment knobs given, and none inherited. */
static void
child_env(const char *const *env)
{
	unsetenv("MOCK_WORKER_CRASH_AT_START");
	unsetenv("MOCK_WORKER_NO_INIT");
	unsetenv("MOCK_WORKER_IGNORE_TERM");
	unsetenv("MOCK_WORKER_STDERR_AT_START");
	unsetenv("MOCK_WORKER_SICK");
	for (; env && *env; env++)
		putenv((char *)*env);
}

/* The mock under test: $ARBOR_BUILD/mock_worker (make test sets it),
 * else MOCK_WORKER. */
static char mock_path[4096] = MOCK_WORKER;

/* In the child: stdio onto the pipes, then exec path. */
static void
child_exec(const char *path, int in, int out, int err,
    const char *const *args, const char *const *env)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	child_env(env);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(126);
	char *argv[16] = { (char *)path };
	for (size_t i = 0; args && args[i] && i < 14; i++)
		argv[i + 1] = (char *)args[i];
	execv(path, argv);
	_exit(127);
}

/* Starts the program at path with extra arguments and NAME=VALUE
 * environment entries (both NULL-terminated, may be NULL). */
static void
spawn_prog(struct fx *f, const char *path, const char *const *args,
    const char *const *env)
{
	int pin[2], pout[2], perr[2];
	assert_int_equal(pipe2(pin, O_CLOEXEC), 0);
	assert_int_equal(pipe2(pout, O_CLOEXEC), 0);
	assert_int_equal(pipe2(perr, O_CLOEXEC), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0)
		child_exec(path, pin[0], pout[1], perr[1], args, env);
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	f->in = pin[1];
	f->out = pout[0];
	f->err = perr[0];
}

/* Starts mock_worker (see spawn_prog). */
static void
spawn(struct fx *f, const char *const *args, const char *const *env)
{
	spawn_prog(f, mock_path, args, env);
}

static int64_t
now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits up to ms for fd to be readable: true if it is (or at EOF). */
static bool
wait_readable(int fd, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return false;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, (int)left);
		if (r > 0)
			return true;
		if (r < 0 && errno != EINTR)
			fail_msg("poll: %s", strerror(errno));
	}
}

/* Reads one frame from the worker's stdout within ms: 1 and a copy of the
 * payload in *out (caller frees), 0 at EOF, -1 on timeout. */
static int
recv_frame(struct fx *f, int ms, char **out, size_t *len)
{
	int64_t deadline = now_ms() + ms;
	for (;;) {
		const char *p;
		enum frame_status s = frame_peek(&f->rbuf, MAX_FRAME, &p, len);
		assert_int_not_equal(s, FRAME_TOO_LARGE);
		if (s == FRAME_OK) {
			*out = malloc(*len + 1);
			memcpy(*out, p, *len);
			(*out)[*len] = '\0';
			frame_done(&f->rbuf, *len);
			return 1;
		}
		if (!wait_readable(f->out, deadline))
			return -1;
		ssize_t n = buf_read_fd(&f->rbuf, f->out);
		if (n == 0)
			return 0;
		assert_true(n > 0);
	}
}

/* Writes one frame holding text to the worker. */
static void
send_text(struct fx *f, const char *text)
{
	assert_int_equal(frame_write_blocking(f->in, text, strlen(text)), 0);
}

/* JSON written with single quotes, for readable tests: 'a' -> "a". */
static json_t *
json_q(const char *text)
{
	char *s = strdup(text);
	for (char *c = s; *c; c++)
		if (*c == '\'')
			*c = '"';
	json_error_t e;
	json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
	if (j == NULL)
		fail_msg("bad test JSON %s: %s", s, e.text);
	free(s);
	return j;
}

/* Sends a request (args in json_q() notation, or NULL); returns its id. */
static json_int_t
send_req(struct fx *f, const char *command, const char *args,
    const char *session)
{
	json_int_t id = f->next_id++;
	json_t *req = msg_worker_request(id, command, args ? json_q(args) : NULL,
	    session);
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	send_text(f, text);
	free(text);
	return id;
}

/* The reply to request id, within REPLY_MS (borrowed: kept in f->last
 * until the next call). */
static json_t *
recv_reply(struct fx *f, json_int_t id)
{
	char *p;
	size_t n;
	assert_int_equal(recv_frame(f, REPLY_MS, &p, &n), 1);
	json_decref(f->last);
	f->last = frame_parse(p, n, NULL);
	if (f->last == NULL)
		fail_msg("reply is not a JSON object: %s", p);
	free(p);
	json_int_t got;
	assert_true(msg_int(f->last, "id", &got));
	assert_int_equal(got, id);
	return f->last;
}

/* Sends a request (args in json_q() notation, or NULL) and returns its
 * reply (borrowed: kept in f->last until the next call). */
static json_t *
call(struct fx *f, const char *command, const char *args, const char *session)
{
	return recv_reply(f, send_req(f, command, args, session));
}

/* call() that must succeed: its result (borrowed). */
static json_t *
ok(struct fx *f, const char *command, const char *args, const char *session)
{
	json_t *r = call(f, command, args, session);
	if (!json_is_true(json_object_get(r, "success")))
		fail_msg("%s failed: %s", command, msg_str(r, "error"));
	assert_int_equal(json_object_size(r), 3);
	assert_non_null(json_object_get(r, "result"));
	return json_object_get(r, "result");
}

/* call() that must fail: its error message (borrowed). */
static const char *
err(struct fx *f, const char *command, const char *args, const char *session)
{
	json_t *r = call(f, command, args, session);
	assert_true(json_is_false(json_object_get(r, "success")));
	assert_int_equal(json_object_size(r), 3);
	assert_non_null(msg_str(r, "error"));
	return msg_str(r, "error");
}

/* Asserts that result equals the json_q() text want. */
static void
expect_json(const json_t *result, const char *want)
{
	json_t *w = json_q(want);
	if (!json_equal(result, w)) {
		char *got = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
		fail_msg("got %s, want %s", got, want);
	}
	json_decref(w);
}

/* Waits up to ms for the worker to exit; returns its wait status. */
static int
wait_exit(struct fx *f, int ms)
{
	int64_t deadline = now_ms() + ms;
	for (;;) {
		pid_t r = waitpid(f->pid, &f->status, WNOHANG);
		if (r == f->pid) {
			f->pid = -1;
			return f->status;
		}
		if (now_ms() > deadline)
			fail_msg("worker still running after %d ms", ms);
		usleep(5000);
	}
}

static void
expect_exit_code(struct fx *f, int code)
{
	int st = wait_exit(f, REPLY_MS);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), code);
}

/* Asserts that nothing comes on stdout for a while (the worker lives). */
static void
expect_silence(struct fx *f)
{
	char *p = NULL;
	size_t n;
	int r = recv_frame(f, QUIET_MS, &p, &n);
	free(p);
	assert_int_equal(r, -1);
}

/* Reads the worker's stderr until it holds needle, within ms. */
static bool
stderr_has(struct fx *f, const char *needle, int ms)
{
	int64_t deadline = now_ms() + ms;
	for (;;) {
		f->errtext[f->errlen] = '\0';
		if (strstr(f->errtext, needle) != NULL)
			return true;
		if (f->errlen + 1 >= sizeof f->errtext ||
		    !wait_readable(f->err, deadline))
			return false;
		ssize_t n = read(f->err, f->errtext + f->errlen,
		    sizeof f->errtext - 1 - f->errlen);
		if (n <= 0)
			return false;
		f->errlen += (size_t)n;
	}
}

/* Asserts that r is the result of a ping to this worker named name. */
static void
expect_pong(struct fx *f, const json_t *r, const char *name)
{
	assert_int_equal(json_object_size(r), 3);
	assert_true(json_is_true(json_object_get(r, "pong")));
	if (name != NULL)
		assert_string_equal(msg_str(r, "worker_id"), name);
	else
		assert_true(json_is_null(json_object_get(r, "worker_id")));
	json_int_t pid;
	assert_true(msg_int(r, "pid", &pid));
	assert_int_equal(pid, f->pid);
}

/* The init ping, as arbord sends it. */
static void
init_ping(struct fx *f, const char *name)
{
	char args[256];
	snprintf(args, sizeof args,
	    "{'initialization': true, 'worker_id': '%s'}", name);
	expect_pong(f, ok(f, "ping", args, NULL), name);
}

static struct fx *
started(void **state)
{
	struct fx *f = *state;
	spawn(f, NULL, NULL);
	init_ping(f, "pool/worker.1");
	return f;
}

/* --- the test commands ------------------------------------------------ */

static void
test_ping(void **state)
{
	struct fx *f = started(state);
	expect_pong(f, ok(f, "ping", NULL, NULL), "pool/worker.1");
	/* A later name replaces the first. */
	expect_pong(f, ok(f, "ping", "{'worker_id': 'pool/worker.9'}", NULL),
	    "pool/worker.9");
	/* The id comes back as sent, whatever its type. */
	send_text(f, "{\"id\":\"abc\",\"command\":\"ping\"}");
	char *p;
	size_t n;
	assert_int_equal(recv_frame(f, REPLY_MS, &p, &n), 1);
	json_t *r = frame_parse(p, n, NULL);
	assert_string_equal(msg_str(r, "id"), "abc");
	json_decref(r);
	free(p);
}

static void
test_ping_without_init(void **state)
{
	struct fx *f = *state;
	spawn(f, NULL, NULL);
	expect_pong(f, ok(f, "ping", NULL, NULL), NULL);
}

/* sicken: later pings get an error reply, other commands still work. */
static void
test_sicken(void **state)
{
	struct fx *f = started(state);
	expect_json(ok(f, "sicken", NULL, NULL), "{'sick': true}");
	assert_string_equal(err(f, "ping", NULL, NULL), "sick");
	assert_string_equal(err(f, "ping", NULL, NULL), "sick");
	expect_json(ok(f, "echo", "{'x': 1}", NULL), "{'x': 1}");
}

/* MOCK_WORKER_SICK: the init ping succeeds, every later ping fails. */
static void
test_sick_env(void **state)
{
	struct fx *f = *state;
	static const char *const env[] = { "MOCK_WORKER_SICK=1", NULL };
	spawn(f, NULL, env);
	init_ping(f, "pool/worker.1");
	assert_string_equal(err(f, "ping", NULL, NULL), "sick");
	expect_json(ok(f, "echo", "{'x': 1}", NULL), "{'x': 1}");
}

static void
test_echo(void **state)
{
	struct fx *f = started(state);
	const char *args = "{'a': [1, 2.5, null], 'b': {'c': 'ünïcødé'}}";
	expect_json(ok(f, "echo", args, NULL), args);
	expect_json(ok(f, "echo", NULL, NULL), "{}");
	expect_json(ok(f, "echo", "{'x': 1}", "s1"), "{'x': 1}");
}

static void
test_sleep(void **state)
{
	struct fx *f = started(state);
	int64_t t0 = now_ms();
	expect_json(ok(f, "sleep", "{'ms': 120}", NULL), "{'slept': 120}");
	assert_true(now_ms() - t0 >= 120);
	expect_json(ok(f, "sleep", "{'ms': 0}", NULL), "{'slept': 0}");
	assert_string_equal(err(f, "sleep", "{'ms': -1}", NULL),
	    "ms out of range 0..86400000");
	assert_string_equal(err(f, "sleep", "{}", NULL),
	    "ms must be an integer");
}

/* Whether the worker catches sig (SigCgt in /proc/<pid>/status). */
static bool
catches(struct fx *f, int sig)
{
	char path[64], line[256];
	unsigned long long mask = 0;
	snprintf(path, sizeof path, "/proc/%d/status", (int)f->pid);
	FILE *st = fopen(path, "re");
	assert_non_null(st);
	while (fgets(line, sizeof line, st) != NULL)
		if (sscanf(line, "SigCgt: %llx", &mask) == 1)
			break;
	fclose(st);
	return (mask >> (sig - 1)) & 1;
}

/* sleep with until_usr1: it sleeps (SIGUSR1 caught meanwhile) until a
 * SIGUSR1 ends it, long before its bound; then SIGUSR1 has its default
 * action again and the worker serves on. */
static void
test_sleep_until_usr1(void **state)
{
	struct fx *f = started(state);
	assert_false(catches(f, SIGUSR1));
	int64_t t0 = now_ms();
	json_int_t id = send_req(f, "sleep",
	    "{'ms': 60000, 'until_usr1': true}", NULL);
	while (!catches(f, SIGUSR1)) {
		if (now_ms() - t0 > REPLY_MS)
			fail_msg("the sleep never began to catch SIGUSR1");
		usleep(5000);
	}
	expect_silence(f);	/* still asleep */
	assert_int_equal(kill(f->pid, SIGUSR1), 0);
	json_t *r = recv_reply(f, id);	/* within REPLY_MS, not 60 s */
	assert_true(json_is_true(json_object_get(r, "success")));
	json_t *res = json_object_get(r, "result");
	assert_true(json_is_true(json_object_get(res, "woken")));
	json_int_t slept;
	assert_true(msg_int(res, "slept", &slept));
	assert_in_range(slept, QUIET_MS, now_ms() - t0);
	assert_false(catches(f, SIGUSR1));
	expect_json(ok(f, "echo", "{'x': 1}", NULL), "{'x': 1}");
}

/* sleep with until_usr1 and no SIGUSR1 ends at its bound; outside such a
 * sleep SIGUSR1 still kills the worker (its default action). */
static void
test_sleep_until_usr1_bound(void **state)
{
	struct fx *f = started(state);
	int64_t t0 = now_ms();
	expect_json(ok(f, "sleep", "{'ms': 150, 'until_usr1': true}", NULL),
	    "{'slept': 150, 'woken': false}");
	assert_true(now_ms() - t0 >= 150);
	expect_json(ok(f, "sleep", "{'ms': 20, 'until_usr1': false}", NULL),
	    "{'slept': 20}");
	assert_string_equal(err(f, "sleep", "{'ms': 20, 'until_usr1': 1}",
	    NULL), "until_usr1 must be a boolean");
	assert_string_equal(err(f, "sleep", "{'until_usr1': true}", NULL),
	    "ms must be an integer");
	assert_int_equal(kill(f->pid, SIGUSR1), 0);
	int st = wait_exit(f, REPLY_MS);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGUSR1);
}

static void
test_crash_with_code(void **state)
{
	struct fx *f = started(state);
	send_text(f, "{\"id\":2,\"command\":\"crash\",\"args\":{\"code\":7}}");
	char *p = NULL;
	size_t n;
	assert_int_equal(recv_frame(f, REPLY_MS, &p, &n), 0);	/* no reply */
	expect_exit_code(f, 7);
}

static void
test_crash_default_code(void **state)
{
	struct fx *f = started(state);
	send_text(f, "{\"id\":2,\"command\":\"crash\"}");
	expect_exit_code(f, 1);
}

static void
test_crash_with_signal(void **state)
{
	struct fx *f = started(state);
	char text[128];
	snprintf(text, sizeof text,
	    "{\"id\":2,\"command\":\"crash\",\"args\":{\"signal\":%d}}", SIGUSR1);
	send_text(f, text);
	int st = wait_exit(f, REPLY_MS);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGUSR1);
}

static void
test_hang_dies_on_term(void **state)
{
	struct fx *f = started(state);
	send_text(f, "{\"id\":2,\"command\":\"hang\"}");
	expect_silence(f);
	assert_int_equal(kill(f->pid, SIGTERM), 0);
	int st = wait_exit(f, REPLY_MS);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGTERM);
}

static void
test_garbage(void **state)
{
	struct fx *f = started(state);
	send_text(f, "{\"id\":2,\"command\":\"garbage\"}");
	char *p;
	size_t n;
	assert_int_equal(recv_frame(f, REPLY_MS, &p, &n), 1);
	assert_true(n > 0);
	json_error_t e;
	assert_null(frame_parse(p, n, &e));
	free(p);
	/* A whole frame: the stream is still in step, the worker alive. */
	expect_pong(f, ok(f, "ping", NULL, NULL), "pool/worker.1");
}

/* Asks big for bytes and checks the reply's payload size and content. */
static void
check_big(struct fx *f, json_int_t bytes)
{
	char text[128];
	snprintf(text, sizeof text, "{\"id\":%" JSON_INTEGER_FORMAT
	    ",\"command\":\"big\",\"args\":{\"bytes\":%" JSON_INTEGER_FORMAT "}}",
	    f->next_id++, bytes);
	send_text(f, text);
	char *p;
	size_t n;
	assert_int_equal(recv_frame(f, REPLY_MS, &p, &n), 1);
	assert_int_equal(n, (size_t)bytes);
	json_t *r = frame_parse(p, n, NULL);
	assert_non_null(r);
	assert_true(json_is_true(json_object_get(r, "success")));
	const json_t *data = json_object_get(json_object_get(r, "result"),
	    "data");
	const char *s = json_string_value(data);
	assert_non_null(s);
	for (size_t i = 0; i < json_string_length(data); i++)
		assert_int_equal(s[i], 'x');
	json_decref(r);
	free(p);
}

static void
test_big(void **state)
{
	struct fx *f = started(state);
	check_big(f, 100);
	check_big(f, 100000);
	check_big(f, 3 * 1000 * 1000);		/* far more than a pipe holds */
	/* Smaller than the reply's own shape: the smallest reply. */
	json_t *r = ok(f, "big", "{'bytes': 1}", NULL);
	expect_json(r, "{'data': ''}");
	assert_string_equal(err(f, "big", "{'bytes': -5}", NULL),
	    "bytes out of range 0..268435456");
}

static void
test_stderr(void **state)
{
	struct fx *f = started(state);
	expect_json(ok(f, "stderr", "{'line': 'hello from the worker'}", NULL),
	    "{'written': true}");
	assert_true(stderr_has(f, "hello from the worker\n", REPLY_MS));
	assert_string_equal(err(f, "stderr", "{}", NULL),
	    "line must be a string");
}

static void
test_shutdown(void **state)
{
	struct fx *f = started(state);
	expect_json(ok(f, "shutdown", NULL, NULL), "{'shutting_down': true}");
	expect_exit_code(f, 0);
}

static void
test_eof_exits_0(void **state)
{
	struct fx *f = started(state);
	close_fd(&f->in);
	expect_exit_code(f, 0);
}

static void
test_unknown_command(void **state)
{
	struct fx *f = started(state);
	assert_string_equal(err(f, "frobnicate", NULL, NULL),
	    "unknown command: frobnicate");
	/* An error reply changes nothing: the worker goes on. */
	expect_json(ok(f, "echo", "{'a': 1}", NULL), "{'a': 1}");
}

static void
test_bad_requests_get_errors(void **state)
{
	struct fx *f = started(state);
	send_text(f, "{\"id\":2}");
	char *p;
	size_t n;
	assert_int_equal(recv_frame(f, REPLY_MS, &p, &n), 1);
	json_t *r = frame_parse(p, n, NULL);
	free(p);
	assert_true(json_is_false(json_object_get(r, "success")));
	assert_string_equal(msg_str(r, "error"),
	    "invalid request: command must be a non-empty string");
	json_decref(r);
	send_text(f, "{\"id\":3,\"command\":\"echo\",\"args\":[1]}");
	assert_int_equal(recv_frame(f, REPLY_MS, &p, &n), 1);
	r = frame_parse(p, n, NULL);
	free(p);
	assert_string_equal(msg_str(r, "error"),
	    "invalid request: args must be an object");
	json_decref(r);
	send_text(f, "{\"id\":4,\"command\":\"echo\",\"session_id\":7}");
	assert_int_equal(recv_frame(f, REPLY_MS, &p, &n), 1);
	r = frame_parse(p, n, NULL);
	free(p);
	assert_string_equal(msg_str(r, "error"),
	    "invalid request: session_id must be a string");
	json_decref(r);
	/* Null args and session_id are as good as none. */
	send_text(f, "{\"id\":5,\"command\":\"echo\",\"args\":null,"
	    "\"session_id\":null}");
	assert_int_equal(recv_frame(f, REPLY_MS, &p, &n), 1);
	r = frame_parse(p, n, NULL);
	free(p);
	assert_true(json_is_true(json_object_get(r, "success")));
	expect_json(json_object_get(r, "result"), "{}");
	json_decref(r);
}

static void
test_invalid_json_exits_2(void **state)
{
	struct fx *f = started(state);
	send_text(f, "{\"id\": 2, \"command\": ");
	expect_exit_code(f, 2);
	assert_true(stderr_has(f, "invalid request", REPLY_MS));
}

static void
test_eof_inside_frame_exits_2(void **state)
{
	struct fx *f = started(state);
	static const unsigned char part[] = { 0, 0, 0, 50, '{' };
	assert_int_equal(write(f->in, part, sizeof part), (ssize_t)sizeof part);
	close_fd(&f->in);
	expect_exit_code(f, 2);
	assert_true(stderr_has(f, "inside a request frame", REPLY_MS));
}

static void
test_oversized_request_exits_2(void **state)
{
	struct fx *f = started(state);
	static const unsigned char hdr[] = { 0x7f, 0, 0, 0 };
	assert_int_equal(write(f->in, hdr, sizeof hdr), (ssize_t)sizeof hdr);
	expect_exit_code(f, 2);
	assert_true(stderr_has(f, "exceeds", REPLY_MS));
}

/* --- the bridge commands ---------------------------------------------- */

static void
test_programs_per_session(void **state)
{
	struct fx *f = started(state);
	const char *sig = "{'program_id': 'p1', 'signature': 'question -> answer'}";
	expect_json(ok(f, "create_program", sig, "s1"), "{'program_id': 'p1'}");
	expect_json(ok(f, "list_programs", NULL, "s1"), "{'programs': ['p1']}");
	expect_json(ok(f, "list_programs", NULL, "s2"), "{'programs': []}");
	expect_json(ok(f, "list_programs", NULL, NULL), "{'programs': []}");
	assert_string_equal(err(f, "execute_program",
	    "{'program_id': 'p1', 'inputs': {'question': 'q'}}", "s2"),
	    "program not found: p1");
	assert_string_equal(err(f, "get_program_info", "{'program_id': 'p1'}",
	    NULL), "program not found: p1");
	/* The same id in another space is another program. */
	expect_json(ok(f, "create_program",
	    "{'program_id': 'p1', 'signature': 'x -> y'}", "s2"),
	    "{'program_id': 'p1'}");
	expect_json(ok(f, "get_program_info", "{'program_id': 'p1'}", "s1"),
	    "{'program_id': 'p1', 'signature': 'question -> answer', "
	    "'executions': 0, 'inputs': ['question'], 'outputs': ['answer']}");
	expect_json(ok(f, "get_program_info", "{'program_id': 'p1'}", "s2"),
	    "{'program_id': 'p1', 'signature': 'x -> y', 'executions': 0, "
	    "'inputs': ['x'], 'outputs': ['y']}");
	/* The anonymous space is one more space. */
	ok(f, "create_program", "{'program_id': 'anon'}", NULL);
	expect_json(ok(f, "list_programs", NULL, NULL), "{'programs': ['anon']}");
	expect_json(ok(f, "list_programs", NULL, "s1"), "{'programs': ['p1']}");
}

static void
test_execute_program(void **state)
{
	struct fx *f = started(state);
	ok(f, "create_program",
	    "{'program_id': 'qa', 'signature': 'question -> answer'}", NULL);
	expect_json(ok(f, "execute_program",
	    "{'program_id': 'qa', 'inputs': {'question': '2+2?'}}", NULL),
	    "{'program_id': 'qa', 'outputs': {'answer': 'answer: 2+2?'}}");
	ok(f, "create_program",
	    "{'program_id': 'm', 'signature': 'a,b->c , d'}", NULL);
	expect_json(ok(f, "execute_program",
	    "{'program_id': 'm', 'inputs': {'b': 1, 'a': 'x', 'z': 0}}", NULL),
	    "{'program_id': 'm', 'outputs': {'c': 'c: x 1', 'd': 'd: x 1'}}");
	/* Values that are not strings: compact JSON, sorted, ASCII. */
	json_t *out = json_object_get(ok(f, "execute_program",
	    "{'program_id': 'm', 'inputs': "
	    "{'a': {'z': [true, null], 'y': 'é'}, 'b': 2.5}}", NULL), "outputs");
	assert_string_equal(msg_str(out, "c"),
	    "c: {\"y\":\"\\u00e9\",\"z\":[true,null]} 2.5");
	assert_string_equal(msg_str(out, "d"),
	    "d: {\"y\":\"\\u00e9\",\"z\":[true,null]} 2.5");
	assert_string_equal(err(f, "execute_program",
	    "{'program_id': 'm', 'inputs': {'a': 'x'}}", NULL),
	    "missing input: b");
	assert_string_equal(err(f, "execute_program", "{'program_id': 'm'}",
	    NULL), "missing input: a");
	assert_string_equal(err(f, "execute_program",
	    "{'program_id': 'm', 'inputs': 3}", NULL),
	    "inputs must be an object");
	assert_string_equal(err(f, "execute_program", "{}", NULL),
	    "program_id is required (a non-empty string)");
	assert_string_equal(err(f, "execute_program",
	    "{'program_id': 'nope', 'inputs': {}}", NULL),
	    "program not found: nope");
	json_t *info = ok(f, "get_program_info", "{'program_id': 'm'}", NULL);
	assert_string_equal(msg_str(info, "signature"), "a, b -> c, d");
	info = ok(f, "get_program_info", "{'program_id': 'qa'}", NULL);
	json_int_t n;
	assert_true(msg_int(info, "executions", &n) && n == 1);
}

/* Error messages come through whole, however long. */
static void
test_long_error_message(void **state)
{
	struct fx *f = started(state);
	char id[3001], args[3100], want[3100];
	memset(id, 'k', sizeof id - 1);
	id[sizeof id - 1] = '\0';
	snprintf(args, sizeof args, "{'program_id': '%s'}", id);
	snprintf(want, sizeof want, "program not found: %s", id);
	assert_string_equal(err(f, "get_program_info", args, "s"), want);
}

static void
test_create_program_ids(void **state)
{
	struct fx *f = started(state);
	expect_json(ok(f, "create_program", NULL, "s"), "{'program_id': 'prog_1'}");
	/* A taken id is skipped; the counter is per process. */
	ok(f, "create_program", "{'program_id': 'prog_3'}", "s");
	expect_json(ok(f, "create_program", NULL, "s"), "{'program_id': 'prog_2'}");
	expect_json(ok(f, "create_program", NULL, "s"), "{'program_id': 'prog_4'}");
	expect_json(ok(f, "create_program", NULL, "t"), "{'program_id': 'prog_5'}");
	expect_json(ok(f, "get_program_info", "{'program_id': 'prog_1'}", "s"),
	    "{'program_id': 'prog_1', 'signature': 'question -> answer', "
	    "'executions': 0, 'inputs': ['question'], 'outputs': ['answer']}");
	assert_string_equal(err(f, "create_program",
	    "{'program_id': 'prog_3', 'signature': 'q -> a'}", "s"),
	    "program already exists: prog_3");
	assert_string_equal(err(f, "create_program", "{'program_id': 5}", "s"),
	    "program_id must be a non-empty string");
	assert_string_equal(err(f, "create_program", "{'program_id': ''}", "s"),
	    "program_id must be a non-empty string");
}

static void
test_create_program_bad_signatures(void **state)
{
	struct fx *f = started(state);
	static const char *const arrows[] = { "no arrow", "a -> b -> c", "" };
	for (size_t i = 0; i < sizeof arrows / sizeof arrows[0]; i++) {
		char args[128], want[128];
		snprintf(args, sizeof args, "{'signature': '%s'}", arrows[i]);
		snprintf(want, sizeof want, "invalid signature: '%s' needs "
		    "exactly one '->'", arrows[i]);
		assert_string_equal(err(f, "create_program", args, NULL), want);
	}
	static const char *const fields[] = { "-> a", "q ->", "a,,b -> c",
	    "q -> a, ", "a b -> c", "1a -> b", "a: int -> b" };
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		char args[128], want[128];
		snprintf(args, sizeof args, "{'signature': '%s'}", fields[i]);
		snprintf(want, sizeof want, "invalid signature: '%s': fields "
		    "must be comma-separated names", fields[i]);
		assert_string_equal(err(f, "create_program", args, NULL), want);
	}
	static const char *const repeats[] = { "a, a -> b", "a -> a",
	    "a, b -> c, b" };
	for (size_t i = 0; i < sizeof repeats / sizeof repeats[0]; i++) {
		char args[128], want[128];
		snprintf(args, sizeof args, "{'signature': '%s'}", repeats[i]);
		snprintf(want, sizeof want, "invalid signature: '%s' repeats a "
		    "field", repeats[i]);
		assert_string_equal(err(f, "create_program", args, NULL), want);
	}
	assert_string_equal(err(f, "create_program", "{'signature': 3}", NULL),
	    "invalid signature: must be a string like 'question -> answer'");
	expect_json(ok(f, "list_programs", NULL, NULL), "{'programs': []}");
}

static void
test_delete_program(void **state)
{
	struct fx *f = started(state);
	ok(f, "create_program", "{'program_id': 'a'}", "s1");
	ok(f, "create_program", "{'program_id': 'b'}", "s1");
	expect_json(ok(f, "list_programs", NULL, "s1"),
	    "{'programs': ['a', 'b']}");
	expect_json(ok(f, "delete_program", "{'program_id': 'a'}", "s1"),
	    "{'deleted': true}");
	expect_json(ok(f, "list_programs", NULL, "s1"), "{'programs': ['b']}");
	assert_string_equal(err(f, "delete_program", "{'program_id': 'a'}",
	    "s1"), "program not found: a");
	assert_string_equal(err(f, "delete_program", "{'program_id': 'b'}",
	    "s2"), "program not found: b");
	assert_string_equal(err(f, "delete_program", NULL, "s1"),
	    "program_id is required (a non-empty string)");
	/* A session's space goes with its last program. */
	json_int_t n;
	assert_true(msg_int(ok(f, "get_stats", NULL, NULL), "sessions_count",
	    &n) && n == 1);
	ok(f, "delete_program", "{'program_id': 'b'}", "s1");
	assert_true(msg_int(ok(f, "get_stats", NULL, NULL), "sessions_count",
	    &n) && n == 0);
}

/* Asserts get_stats' counters. */
static void
expect_stats(struct fx *f, json_int_t programs, json_int_t commands,
    json_int_t errors, json_int_t sessions)
{
	json_t *st = ok(f, "get_stats", NULL, NULL);
	assert_int_equal(json_object_size(st), 5);
	json_int_t v;
	assert_true(msg_int(st, "programs_count", &v));
	assert_int_equal(v, programs);
	assert_true(msg_int(st, "command_count", &v));
	assert_int_equal(v, commands);
	assert_true(msg_int(st, "error_count", &v));
	assert_int_equal(v, errors);
	assert_true(msg_int(st, "sessions_count", &v));
	assert_int_equal(v, sessions);
	assert_true(msg_int(st, "uptime_ms", &v) && v >= 0);
}

static void
test_stats_cleanup_reset(void **state)
{
	struct fx *f = started(state);
	ok(f, "create_program", "{'program_id': 'a'}", "s1");
	ok(f, "create_program", "{'program_id': 'b'}", "s1");
	ok(f, "create_program", "{'program_id': 'c'}", "s2");
	ok(f, "create_program", "{'program_id': 'd'}", NULL);
	err(f, "nope", NULL, NULL);
	expect_stats(f, 4, 7, 1, 2);	/* the init ping counts */

	expect_json(ok(f, "cleanup_session", "{'session_id': 's1'}", NULL),
	    "{'cleaned': 2}");
	expect_json(ok(f, "list_programs", NULL, "s1"), "{'programs': []}");
	expect_json(ok(f, "cleanup_session", "{'session_id': 's1'}", NULL),
	    "{'cleaned': 0}");
	/* Without args, the request's own session. */
	expect_json(ok(f, "cleanup_session", NULL, "s2"), "{'cleaned': 1}");
	assert_string_equal(err(f, "cleanup_session", NULL, NULL),
	    "session_id is required (a non-empty string)");
	assert_string_equal(err(f, "cleanup_session", "{'session_id': 1}",
	    "s2"), "session_id is required (a non-empty string)");
	expect_stats(f, 1, 14, 3, 0);

	ok(f, "create_program", NULL, "s3");
	expect_json(ok(f, "reset_state", NULL, NULL), "{'reset': true}");
	expect_stats(f, 0, 1, 0, 0);
	expect_json(ok(f, "list_programs", NULL, NULL), "{'programs': []}");
	expect_json(ok(f, "list_programs", NULL, "s3"), "{'programs': []}");
	/* Generated ids start over too. */
	expect_json(ok(f, "create_program", NULL, "s3"),
	    "{'program_id': 'prog_1'}");
}

/* --- frame size limits (ARBOR_MAX_FRAME_BYTES) -------------------------- */

static void
test_reply_over_limit_becomes_error(void **state)
{
	struct fx *f = *state;
	static const char *const env[] = { "ARBOR_MAX_FRAME_BYTES=200", NULL };
	spawn(f, NULL, env);
	init_ping(f, "w");
	for (int i = 0; i < 10; i++) {
		char args[64];
		snprintf(args, sizeof args, "{'program_id': 'program-number-%d'}",
		    i);
		ok(f, "create_program", args, NULL);
	}
	const char *e = err(f, "list_programs", NULL, NULL);
	assert_non_null(strstr(e, "list_programs: reply of "));
	assert_non_null(strstr(e, "exceeds the maximum frame size 200"));
	/* big is the exception: it sends what was asked for. */
	check_big(f, 5000);
}

static void
test_request_over_limit_exits_2(void **state)
{
	struct fx *f = *state;
	static const char *const env[] = { "ARBOR_MAX_FRAME_BYTES=100", NULL };
	spawn(f, NULL, env);
	init_ping(f, "w");
	char args[200];
	snprintf(args, sizeof args, "{'s': '%0120d'}", 0);
	json_t *req = msg_worker_request(2, "echo", json_q(args), NULL);
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	/* The worker may exit on the header alone, before the payload is
	 * written: a failed write (EPIPE) is part of the expected outcome. */
	(void)frame_write_blocking(f->in, text, strlen(text));
	free(text);
	expect_exit_code(f, 2);
	assert_true(stderr_has(f, "exceeds the maximum 100", REPLY_MS));
}

/* --- the raw path: echo's requests are not parsed ---------------------- */

/* Sends text and checks the reply: success, id as the JSON text want_id,
 * result equal to the JSON text want (single quotes as json_q()). */
static void
expect_echo(struct fx *f, const char *text, const char *want_id,
    const char *want)
{
	send_text(f, text);
	char *p;
	size_t n;
	assert_int_equal(recv_frame(f, REPLY_MS, &p, &n), 1);
	json_t *r = frame_parse(p, n, NULL);
	if (r == NULL || !json_is_true(json_object_get(r, "success")))
		fail_msg("request %s: reply %s", text, p);
	free(p);
	json_t *id = json_q(want_id);
	assert_true(json_equal(json_object_get(r, "id"), id));
	json_decref(id);
	expect_json(json_object_get(r, "result"), want);
	assert_int_equal(json_object_size(r), 3);
	json_decref(r);
}

/* Every request shape gets the same reply, whether the library takes it as
 * text or leaves it to jansson (escapes in keys or in the session_id, a
 * long session_id, many members, an escaped command name). */
static void
test_echo_raw_and_parsed(void **state)
{
	struct fx *f = started(state);
	expect_echo(f, "{\"id\":2,\"command\":\"echo\",\"args\":{\"a\":1}}",
	    "2", "{'a': 1}");
	expect_echo(f, " { \"id\" : 3 , \"command\" : \"echo\" , \"args\" :"
	    " { \"a\" : [ 1 , 2e3 , -0.5 ] } } ", "3", "{'a': [1, 2e3, -0.5]}");
	expect_echo(f, "{\"command\":\"echo\",\"args\":{},\"id\":\"x\"}",
	    "'x'", "{}");
	expect_echo(f, "{\"command\":\"echo\",\"args\":{\"b\":true}}", "null",
	    "{'b': true}");
	expect_echo(f, "{\"id\":1.5,\"command\":\"echo\"}", "1.5", "{}");
	expect_echo(f, "{\"id\":4,\"command\":\"echo\",\"args\":"
	    "{\"k\\\"ey\":\"v\\u00e9\"}}", "4", "{'k\\\"ey': 'v\\u00e9'}");
	expect_echo(f, "{\"id\":5,\"command\":\"ech\\u006f\",\"args\":"
	    "{\"c\":[]}}", "5", "{'c': []}");
	expect_echo(f, "{\"id\":6,\"command\":\"echo\",\"session_id\":"
	    "\"s\\u0031\",\"args\":{\"d\":null}}", "6", "{'d': null}");
	expect_echo(f, "{\"id\":7,\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,"
	    "\"f\":6,\"g\":7,\"command\":\"echo\",\"args\":{\"e\":\"\"}}",
	    "7", "{'e': ''}");
	char text[1024];
	snprintf(text, sizeof text, "{\"id\":8,\"command\":\"echo\","
	    "\"session_id\":\"%0300d\",\"args\":{\"f\":8}}", 0);
	expect_echo(f, text, "8", "{'f': 8}");
	/* The counts see both paths. */
	expect_json(json_object_get(ok(f, "get_stats", NULL, NULL),
	    "command_count"), "12");
}

/* Sends text and checks the reply byte for byte: success, the id's text
 * want_id and the result's text want, as the request wrote them. */
static void
expect_echo_text(struct fx *f, const char *text, const char *want_id,
    const char *want)
{
	send_text(f, text);
	char *p;
	size_t n;
	const char *v;
	size_t vn;
	assert_int_equal(recv_frame(f, REPLY_MS, &p, &n), 1);
	json_t *r = frame_parse(p, n, NULL);
	if (r == NULL || !json_is_true(json_object_get(r, "success")))
		fail_msg("request %s: reply %s", text, p);
	json_decref(r);
	if (!frame_id_text(p, n, &v, &vn) || vn != strlen(want_id) ||
	    memcmp(v, want_id, vn) != 0)
		fail_msg("request %s: id not %s in %s", text, want_id, p);
	if (!frame_member_text(p, n, "result", &v, &vn) ||
	    vn != strlen(want) || memcmp(v, want, vn) != 0)
		fail_msg("request %s: result not %s in %s", text, want, p);
	free(p);
}

/* Requests that the library leaves to jansson (a three-digit exponent,
 * escapes in the session_id, the command or a key, many members) are
 * echoed as written too, their numbers and id included: jansson would
 * write 0.7 anew as 0.69999999999999996, 1e100 as 1e+100, 2.50 as 2.5. */
static void
test_echo_parsed_keeps_text(void **state)
{
	struct fx *f = started(state);
	expect_echo_text(f, "{\"id\":2,\"command\":\"echo\",\"args\":"
	    "{\"x\":0.7,\"big\":1e100}}", "2", "{\"x\":0.7,\"big\":1e100}");
	expect_echo_text(f, "{\"id\":2.50,\"command\":\"echo\",\"session_id\":"
	    "\"s\\u0031\",\"args\": { \"r\" : [0.1, 1.10, 2E+05, -0.0] } }",
	    "2.50", "{ \"r\" : [0.1, 1.10, 2E+05, -0.0] }");
	expect_echo_text(f, "{\"id\":3,\"\\u0061rgs\":{\"y\":0.3},"
	    "\"command\":\"echo\"}", "3", "{\"y\":0.3}");
	expect_echo_text(f, "{\"id\":4,\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,"
	    "\"f\":6,\"g\":7,\"command\":\"echo\",\"args\":{\"e\":1.0}}",
	    "4", "{\"e\":1.0}");
	expect_echo_text(f, "{\"id\":5,\"command\":\"ech\\u006f\",\"args\":null}",
	    "5", "{}");
}

/* --- raw handlers of the library's own, in this program ----------------- */

static int
raw_fail(struct worker *w, const char *args, size_t len, const char *sid,
    const char **res, size_t *res_len)
{
	worker_fail(w, "failed in %s for %s", worker_command(w),
	    sid ? sid : "-");
	return -1;
}

static int
raw_silent(struct worker *w, const char *args, size_t len, const char *sid,
    const char **res, size_t *res_len)
{
	return -1;
}

static int
raw_quiet(struct worker *w, const char *args, size_t len, const char *sid,
    const char **res, size_t *res_len)
{
	worker_no_reply(w);
	return -1;
}

static int
raw_bad_json(struct worker *w, const char *args, size_t len,
    const char *sid, const char **res, size_t *res_len)
{
	*res = "{nope";
	*res_len = 5;
	return 0;
}

/* A result of 300 bytes. */
static int
raw_big(struct worker *w, const char *args, size_t len, const char *sid,
    const char **res, size_t *res_len)
{
	static char text[301];
	memset(text, 'x', 300);
	text[0] = text[299] = '"';
	*res = text;
	*res_len = 300;
	return 0;
}

/* The request's id, as the library gives it to a handler. */
static int
raw_id(struct worker *w, const char *args, size_t len, const char *sid,
    const char **res, size_t *res_len)
{
	static char text[256];
	size_t n = json_dumpb(worker_request_id(w), text, sizeof text,
	    JSON_ENCODE_ANY | JSON_COMPACT);
	if (n == 0 || n > sizeof text)
		return -1;
	*res = text;
	*res_len = n;
	return 0;
}

/* This program as a worker with the raw handlers above. */
static int
raw_worker_main(void)
{
	struct worker *w = worker_new();
	worker_on_raw(w, "fail", raw_fail);
	worker_on_raw(w, "silent", raw_silent);
	worker_on_raw(w, "quiet", raw_quiet);
	worker_on_raw(w, "bad_json", raw_bad_json);
	worker_on_raw(w, "id", raw_id);
	worker_on_raw(w, "big", raw_big);
	int rc = worker_run(w);
	worker_free(w);
	return rc;
}

/* A raw handler's failures become error replies on both paths. */
static void
test_raw_handler_outcomes(void **state)
{
	struct fx *f = *state;
	static const char *const args[] = { "--raw-worker", NULL };
	spawn_prog(f, "/proc/self/exe", args, NULL);
	init_ping(f, "raw");
	assert_string_equal(err(f, "fail", NULL, "s1"), "failed in fail for s1");
	assert_string_equal(err(f, "silent", NULL, NULL),
	    "silent: handler failed");
	/* Escapes in a key send the request through jansson. */
	assert_string_equal(err(f, "fail", "{'\\n': 1}", NULL),
	    "failed in fail for -");
	assert_string_equal(err(f, "bad_json", "{'\\n': 1}", NULL),
	    "bad_json: handler returned invalid JSON");
	expect_json(ok(f, "id", NULL, NULL), "6");
	expect_json(ok(f, "id", "{'\\n': 1}", NULL), "7");
	expect_echo(f, "{\"id\":[1,\"two\"],\"command\":\"id\"}", "[1, 'two']",
	    "[1, 'two']");
	/* No reply at all; the next request is answered. */
	send_text(f, "{\"id\":99,\"command\":\"quiet\"}");
	expect_json(ok(f, "id", NULL, NULL), "8");
	send_text(f, "{\"id\":98,\"command\":\"quiet\",\"args\":{\"\\n\":1}}");
	expect_json(ok(f, "id", NULL, NULL), "9");
}

/* A raw reply over the frame limit becomes an error; the worker goes on. */
static void
test_raw_reply_over_limit(void **state)
{
	struct fx *f = *state;
	static const char *const args[] = { "--raw-worker", NULL };
	static const char *const env[] = { "ARBOR_MAX_FRAME_BYTES=200", NULL };
	spawn_prog(f, "/proc/self/exe", args, env);
	init_ping(f, "raw");
	const char *e = err(f, "big", NULL, NULL);
	assert_non_null(strstr(e, "big: reply of 333 bytes exceeds the maximum"
	    " frame size 200"));
	expect_json(ok(f, "id", NULL, NULL), "3");
	assert_non_null(strstr(err(f, "big", "{'\\n': 1}", NULL),
	    "exceeds the maximum frame size 200"));
}

/* --- the knobs ---------------------------------------------------------- */

static void
test_crash_at_start_env(void **state)
{
	struct fx *f = *state;
	static const char *const env[] = { "MOCK_WORKER_CRASH_AT_START=3",
	    NULL };
	spawn(f, NULL, env);
	expect_exit_code(f, 3);
	char *p = NULL;
	size_t n;
	assert_int_equal(recv_frame(f, REPLY_MS, &p, &n), 0);
}

static void
test_crash_at_start_flag(void **state)
{
	struct fx *f = *state;
	static const char *const args[] = { "--crash-at-start", "42", NULL };
	spawn(f, args, NULL);
	expect_exit_code(f, 42);
}

/* A worker that never answers, which still exits at EOF. */
static void
expect_no_init(struct fx *f)
{
	send_text(f, "{\"id\":1,\"command\":\"ping\",\"args\":"
	    "{\"initialization\":true,\"worker_id\":\"bridge/worker\"}}");
	expect_silence(f);
	send_text(f, "{\"id\":2,\"command\":\"ping\"}");
	expect_silence(f);
	close_fd(&f->in);
	expect_exit_code(f, 0);
}

static void
test_no_init_env(void **state)
{
	struct fx *f = *state;
	static const char *const env[] = { "MOCK_WORKER_NO_INIT=1", NULL };
	spawn(f, NULL, env);
	expect_no_init(f);
}

static void
test_no_init_flag(void **state)
{
	struct fx *f = *state;
	static const char *const args[] = { "--no-init", NULL };
	spawn(f, args, NULL);
	expect_no_init(f);
}

/* SIGTERM does nothing; the worker still answers; SIGKILL still works. */
static void
expect_ignores_term(struct fx *f)
{
	init_ping(f, "pool/worker.2");
	assert_int_equal(kill(f->pid, SIGTERM), 0);
	expect_json(ok(f, "sleep", "{'ms': 50}", NULL), "{'slept': 50}");
	assert_int_equal(waitpid(f->pid, NULL, WNOHANG), 0);
	send_text(f, "{\"id\":99,\"command\":\"hang\"}");
	assert_int_equal(kill(f->pid, SIGTERM), 0);
	expect_silence(f);
	assert_int_equal(waitpid(f->pid, NULL, WNOHANG), 0);
	assert_int_equal(kill(f->pid, SIGKILL), 0);
	int st = wait_exit(f, REPLY_MS);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

static void
test_ignore_term_env(void **state)
{
	struct fx *f = *state;
	static const char *const env[] = { "MOCK_WORKER_IGNORE_TERM=1", NULL };
	spawn(f, NULL, env);
	expect_ignores_term(f);
}

static void
test_ignore_term_flag(void **state)
{
	struct fx *f = *state;
	static const char *const args[] = { "--ignore-term", NULL };
	spawn(f, args, NULL);
	expect_ignores_term(f);
}

static void
test_term_by_default(void **state)
{
	struct fx *f = started(state);
	assert_int_equal(kill(f->pid, SIGTERM), 0);
	int st = wait_exit(f, REPLY_MS);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
}

static void
test_stderr_at_start_env(void **state)
{
	struct fx *f = *state;
	static const char *const env[] = {
	    "MOCK_WORKER_STDERR_AT_START=starting up, slowly", NULL };
	spawn(f, NULL, env);
	assert_true(stderr_has(f, "starting up, slowly\n", REPLY_MS));
	init_ping(f, "pool/worker.3");
}

/* Knobs combine: the line comes out before the crash. */
static void
test_stderr_at_start_flag_then_crash(void **state)
{
	struct fx *f = *state;
	static const char *const args[] = { "--stderr-at-start", "bye",
	    "--crash-at-start", "5", NULL };
	spawn(f, args, NULL);
	expect_exit_code(f, 5);
	assert_true(stderr_has(f, "bye\n", REPLY_MS));
}

static void
test_bad_usage(void **state)
{
	struct fx *f = *state;
	static const char *const args[] = { "--crash-at-start", "x", NULL };
	spawn(f, args, NULL);
	expect_exit_code(f, 64);
	assert_true(stderr_has(f, "usage:", REPLY_MS));
}

#define T(fn)	cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--raw-worker") == 0)
		return raw_worker_main();
	signal(SIGPIPE, SIG_IGN);
	if (getenv("ARBOR_BUILD"))
		snprintf(mock_path, sizeof mock_path, "%s/mock_worker",
		    getenv("ARBOR_BUILD"));
	if (access(mock_path, X_OK) != 0) {
		fprintf(stderr, "test_mock_worker: %s not found (run from the"
		    " repository root after building it)\n", mock_path);
		return 1;
	}
	const struct CMUnitTest tests[] = {
		T(test_ping),
		T(test_ping_without_init),
		T(test_sicken),
		T(test_sick_env),
		T(test_echo),
		T(test_echo_raw_and_parsed),
		T(test_echo_parsed_keeps_text),
		T(test_raw_handler_outcomes),
		T(test_raw_reply_over_limit),
		T(test_sleep),
		T(test_sleep_until_usr1),
		T(test_sleep_until_usr1_bound),
		T(test_crash_with_code),
		T(test_crash_default_code),
		T(test_crash_with_signal),
		T(test_hang_dies_on_term),
		T(test_garbage),
		T(test_big),
		T(test_stderr),
		T(test_shutdown),
		T(test_eof_exits_0),
		T(test_unknown_command),
		T(test_bad_requests_get_errors),
		T(test_invalid_json_exits_2),
		T(test_eof_inside_frame_exits_2),
		T(test_oversized_request_exits_2),
		T(test_programs_per_session),
		T(test_execute_program),
		T(test_long_error_message),
		T(test_create_program_ids),
		T(test_create_program_bad_signatures),
		T(test_delete_program),
		T(test_stats_cleanup_reset),
		T(test_reply_over_limit_becomes_error),
		T(test_request_over_limit_exits_2),
		T(test_crash_at_start_env),
		T(test_crash_at_start_flag),
		T(test_no_init_env),
		T(test_no_init_flag),
		T(test_ignore_term_env),
		T(test_ignore_term_flag),
		T(test_term_by_default),
		T(test_stderr_at_start_env),
		T(test_stderr_at_start_flag_then_crash),
		T(test_bad_usage),
	};
	return cmocka_run_group_tests_name("mock_worker", tests, NULL, NULL);
}
