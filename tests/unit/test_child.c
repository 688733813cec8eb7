/* Unit tests for supervisor/child.c with real processes: build/mock_worker
 * runs as the worker (SPEC 5), and so does this program itself in two
 * worker modes (--fd-probe, --reply-and-exit; see main). Each test spawns
 * a worker and runs the default libev loop until the event it waits for
 * has happened, bounded by a generous deadline (never a fixed sleep), so
 * the tests hold on a loaded machine. Teardown kills and reaps whatever is
 * left.
 *
 * Run from the repository root, after `make build/mock_worker`. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/xmalloc.h"
#include "supervisor/child.h"
#include "supervisor/clock.h"
#include "supervisor/config.h"
#include "supervisor/log.h"
#include "tests/unit/evwait.h"

#define LOOP		EV_DEFAULT
#define BOUND_S		20.0	/* the most any wait may take */
#define TICK_S		0.01	/* how often waits re-check their condition */
#define NAME		"pool/worker.1"
#define MAX_REPLIES	16

static char *mock_path;		/* absolute path of mock_worker */
static char *self_path;		/* absolute path of this program */

/* One request's outcome, as child_reply_fn reported it. */
struct reply {
	int		 calls;		/* must end up exactly 1 */
	json_t		*reply;		/* a reference of our own, or NULL */
	enum msg_code	 err;
	char		*why;
};

struct fx {
	struct config	 cfg;
	char		*argv[6];
	char		*env[4];
	struct child	*c;
	/* Events, as the owner saw them. */
	int		 nready, nidle, nexited;
	int		 want_ready;	/* nready that is_ready waits for */
	enum child_state state_at_exit;
	int		 status_at_exit;
	bool		 abnormal_at_exit;
	bool		 alive_at_exit;
	pid_t		 pid;		/* the last process spawned */
	ev_tstamp	 ready_at, exited_at;
	struct reply	 r[MAX_REPLIES];
};

/* ---- events ------------------------------------------------------------ */

static void
on_ready(struct child *c, void *owner)
{
	struct fx *fx = owner;
	fx->nready++;
	fx->ready_at = clock_now();
	ev_break(LOOP, EVBREAK_ALL);
}

static void
on_idle(struct child *c, void *owner)
{
	struct fx *fx = owner;
	fx->nidle++;
}

static void
on_exited(struct child *c, void *owner)
{
	struct fx *fx = owner;
	fx->nexited++;
	fx->state_at_exit = child_state(c);
	fx->status_at_exit = child_exit_status(c);
	fx->abnormal_at_exit = child_exit_abnormal(c);
	fx->alive_at_exit = child_alive(c);
	fx->exited_at = clock_now();
	ev_break(LOOP, EVBREAK_ALL);
}

static const struct child_events events = {
	.ready = on_ready, .idle = on_idle, .exited = on_exited,
};

/* The reply as a JSON object of our own: success, result, error. */
static json_t *
reply_json(const struct child_reply *reply)
{
	if (reply == NULL)
		return NULL;
	json_t *res = json_loadb(reply->result, reply->result_len,
	    JSON_DECODE_ANY, NULL);
	assert_non_null(res);	/* the result text is JSON */
	json_t *j = json_pack("{s:b,s:o}", "success", reply->success,
	    "result", res);
	if (reply->error)
		json_object_set_new(j, "error", json_string(reply->error));
	return j;
}

static void
on_reply(void *arg, const struct child_reply *reply, enum msg_code err,
    const char *why)
{
	struct reply *r = arg;
	r->calls++;
	if (r->calls > 1)
		return;		/* asserted by the test: exactly one call */
	r->reply = reply_json(reply);	/* borrowed: keep our own */
	r->err = err;
	r->why = why ? xstrdup(why) : NULL;
	ev_break(LOOP, EVBREAK_ALL);
}

/* ---- running the loop until something happened ------------------------ */

static bool
is_ready(void *arg)
{
	struct fx *fx = arg;
	return fx->nready >= fx->want_ready;
}

static bool
has_exited(void *arg)
{
	struct fx *fx = arg;
	return fx->nexited > 0;
}

static bool
has_reply(void *arg)
{
	struct reply *r = arg;
	return r->calls > 0;
}

/* The process group pgid no longer exists. */
static bool
group_gone(void *arg)
{
	pid_t pgid = *(pid_t *)arg;
	return kill(-pgid, 0) < 0 && errno == ESRCH;
}

/* ---- fixture ------------------------------------------------------------- */

/* Settings that do not depend on an adapter: timeouts generous enough for
 * a loaded machine, no health pings. */
static void
default_config(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->mode = MODE_POOL;
	cfg->adapter = ADAPTER_BRIDGE_MOCK;
	cfg->worker.restart = RESTART_PERMANENT;
	cfg->worker.init_timeout_ms = 10000;
	cfg->worker.request_timeout_ms = 30000;
	cfg->worker.health_interval_ms = 0;
	cfg->worker.health_timeout_ms = 1000;
	cfg->worker.shutdown_timeout_ms = 5000;
	cfg->worker.max_frame_bytes = 1 << 20;
	cfg->worker.max_inflight = 8;
	cfg->worker.restart_delay_ms = 100;
	cfg->worker.max_restart_delay_ms = 5000;
}

static int
setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof *fx);
	(void)ev_default_loop(0);
	ev_now_update(LOOP);
	default_config(&fx->cfg);
	fx->argv[0] = mock_path;
	fx->argv[1] = NULL;
	fx->env[0] = NULL;
	fx->cfg.worker.argv = fx->argv;
	fx->cfg.worker.env = fx->env;
	fx->c = child_new(NAME, &fx->cfg, fx->argv, &events, fx);
	fx->want_ready = 1;
	*state = fx;
	return 0;
}

static bool
reaped(void *arg)
{
	pid_t pid = *(pid_t *)arg;
	return waitpid(pid, NULL, WNOHANG) != 0;	/* done, or not ours */
}

/* Kills what is left, waits for its exit, frees everything. */
static int
teardown(void **state)
{
	struct fx *fx = *state;
	pid_t pid = fx->c ? child_pid(fx->c) : 0;
	if (pid > 0) {
		fx->nexited = 0;
		child_kill(fx->c, NULL);
		evwait_until(has_exited, fx, BOUND_S, TICK_S);
	}
	child_free(fx->c);		/* kills it if it is still there */
	if (pid > 0) {
		kill(-pid, SIGKILL);
		evwait_until(reaped, &pid, BOUND_S, TICK_S);
	}
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	for (int i = 0; i < MAX_REPLIES; i++) {
		json_decref(fx->r[i].reply);
		free(fx->r[i].why);
	}
	free(fx);
	return 0;
}

/* Spawns and waits for the init ping's answer. */
static void
spawn_ready(struct fx *fx)
{
	int before = fx->nready;
	fx->want_ready = before + 1;
	assert_int_equal(child_spawn(fx->c), 0);
	fx->pid = child_pid(fx->c);
	assert_true(fx->pid > 0);
	assert_true(evwait_until(is_ready, fx, BOUND_S, TICK_S));
	assert_int_equal(fx->nready, before + 1);
	assert_int_equal(child_state(fx->c), CS_READY);
}

/* Sends command with args (a JSON text, or NULL) into fx->r[k]. */
static void
request(struct fx *fx, int k, const char *command, const char *args,
    int timeout_ms)
{
	assert_int_equal(child_request(fx->c, command, args,
	    args ? strlen(args) : 0, NULL, timeout_ms, on_reply, &fx->r[k]), 0);
}

static void
wait_reply(struct fx *fx, int k)
{
	assert_true(evwait_until(has_reply, &fx->r[k], BOUND_S, TICK_S));
	assert_int_equal(fx->r[k].calls, 1);
}

static void
wait_exit(struct fx *fx)
{
	assert_true(evwait_until(has_exited, fx, BOUND_S, TICK_S));
	assert_int_equal(fx->nexited, 1);
	assert_false(fx->alive_at_exit);
	assert_false(child_alive(fx->c));
	assert_int_equal(child_pid(fx->c), 0);
}

/* After an exit nothing of the worker's process group is left. */
static void
assert_group_gone(pid_t pgid)
{
	assert_true(pgid > 0);
	assert_true(evwait_until(group_gone, &pgid, BOUND_S, TICK_S));
	int rc = kill(-pgid, 0), e = errno;
	assert_int_equal(rc, -1);
	assert_int_equal(e, ESRCH);
}

static const char *
reply_str(const struct reply *r, const char *key)
{
	return json_string_value(json_object_get(r->reply, key));
}

/* ---- spawn and requests -------------------------------------------------- */

static void
test_spawn_ready(void **state)
{
	struct fx *fx = *state;
	assert_int_equal(child_state(fx->c), CS_STOPPED);
	assert_false(child_alive(fx->c));
	assert_string_equal(child_name(fx->c), NAME);
	assert_ptr_equal(child_owner(fx->c), fx);
	assert_int_equal(child_spawn(fx->c), 0);
	fx->pid = child_pid(fx->c);
	assert_true(fx->pid > 0);
	assert_true(child_alive(fx->c));
	assert_int_equal(child_state(fx->c), CS_STARTING);
	/* Its own process group. */
	assert_int_equal(getpgid(fx->pid), fx->pid);
	assert_true(evwait_until(is_ready, fx, BOUND_S, TICK_S));
	assert_int_equal(fx->nready, 1);
	assert_int_equal(child_state(fx->c), CS_READY);
	assert_int_equal(fx->nexited, 0);
	assert_int_equal(fx->nidle, 0);	/* the init ping is not a request */
	assert_int_equal(child_inflight(fx->c), 0);
}

/* Until the init ping is answered, the child takes no requests. */
static void
test_request_before_ready(void **state)
{
	struct fx *fx = *state;
	assert_int_equal(child_request(fx->c, "echo", "{\"x\":1}", 7, NULL, 0,
	    on_reply, &fx->r[0]), -1);	/* no process at all */
	assert_int_equal(child_spawn(fx->c), 0);
	fx->pid = child_pid(fx->c);
	assert_int_equal(child_request(fx->c, "echo", "{\"x\":2}", 7, NULL, 0,
	    on_reply, &fx->r[0]), -1);
	assert_true(evwait_until(is_ready, fx, BOUND_S, TICK_S));
	assert_int_equal(fx->r[0].calls, 0);
}

static void
test_echo(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "echo", "{\"a\": 1, \"s\": \"x\", \"l\": [1, 2]}", 0);
	assert_int_equal(child_state(fx->c), CS_BUSY);
	assert_int_equal(child_inflight(fx->c), 1);
	wait_reply(fx, 0);
	assert_non_null(fx->r[0].reply);
	assert_true(json_is_true(json_object_get(fx->r[0].reply, "success")));
	json_t *want = json_loads("{\"a\": 1, \"s\": \"x\", \"l\": [1, 2]}", 0,
	    NULL);
	assert_true(json_equal(json_object_get(fx->r[0].reply, "result"), want));
	json_decref(want);
	assert_int_equal(child_inflight(fx->c), 0);
	assert_int_equal(child_state(fx->c), CS_READY);
	assert_int_equal(fx->nidle, 1);
	assert_int_equal(child_stats(fx->c)->requests_handled, 1);
	assert_int_equal(child_stats(fx->c)->errors, 0);
	assert_int_equal(fx->nexited, 0);
}

/* Several requests in flight at once: each gets its own reply, and the
 * child is idle once, after the last. */
static void
test_pipelined(void **state)
{
	struct fx *fx = *state;
	char args[32];
	spawn_ready(fx);
	for (int k = 0; k < 5; k++) {
		snprintf(args, sizeof args, "{\"k\": %d}", k);
		request(fx, k, "echo", args, 0);
	}
	assert_int_equal(child_inflight(fx->c), 5);
	wait_reply(fx, 4);
	for (int k = 0; k < 5; k++) {
		assert_int_equal(fx->r[k].calls, 1);
		json_t *res = json_object_get(fx->r[k].reply, "result");
		assert_int_equal(json_integer_value(json_object_get(res, "k")), k);
	}
	assert_int_equal(fx->nidle, 1);
	assert_int_equal(child_stats(fx->c)->requests_handled, 5);
}

/* The worker is told its name (ARBOR_WORKER and the init ping). */
static void
test_ping_worker_id(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "ping", NULL, 0);
	wait_reply(fx, 0);
	json_t *res = json_object_get(fx->r[0].reply, "result");
	assert_string_equal(json_string_value(json_object_get(res,
	    "worker_id")), NAME);
	assert_int_equal(json_integer_value(json_object_get(res, "pid")),
	    fx->pid);
}

/* The entries of /proc/<pid>/environ that set the variable name, as
 * "NAME=value" strings into out (at most max); their count. */
static size_t
environ_entries(pid_t pid, const char *name, char out[][64], size_t max)
{
	char path[64], buf[65536];
	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t len = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[len] = '\0';
	size_t nlen = strlen(name), n = 0;
	for (char *e = buf; e < buf + len; e += strlen(e) + 1) {
		if (strncmp(e, name, nlen) != 0 || e[nlen] != '=')
			continue;
		if (n < max) {
			size_t l = strnlen(e, 63);
			memcpy(out[n], e, l);
			out[n][l] = '\0';
		}
		n++;
	}
	return n;
}

/* Each variable reaches the worker once, the first setting winning:
 * ARBOR_WORKER over worker.env, worker.env over arbord's environment.
 * A duplicate would be read differently by getenv (the first) and by a
 * shell (the last), so a wrapped worker would see the other value. */
static void
test_env_each_name_once(void **state)
{
	struct fx *fx = *state;
	fx->env[0] = "ARBOR_WORKER=impostor";
	fx->env[1] = "ARBOR_TEST_ENV=from-config";
	fx->env[2] = NULL;
	assert_int_equal(setenv("ARBOR_TEST_ENV", "from-arbord", 1), 0);
	assert_int_equal(setenv("ARBOR_MAX_FRAME_BYTES", "7", 1), 0);
	spawn_ready(fx);
	unsetenv("ARBOR_TEST_ENV");
	unsetenv("ARBOR_MAX_FRAME_BYTES");
	char e[4][64];
	assert_int_equal(environ_entries(fx->pid, "ARBOR_WORKER", e, 4), 1);
	assert_string_equal(e[0], "ARBOR_WORKER=" NAME);
	assert_int_equal(environ_entries(fx->pid, "ARBOR_TEST_ENV", e, 4), 1);
	assert_string_equal(e[0], "ARBOR_TEST_ENV=from-config");
	assert_int_equal(environ_entries(fx->pid, "ARBOR_MAX_FRAME_BYTES", e,
	    4), 1);
	assert_string_equal(e[0], "ARBOR_MAX_FRAME_BYTES=1048576");
}

/* An error reply is a reply: counted as an error, the child lives on. */
static void
test_error_reply(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "no_such_command", NULL, 0);
	wait_reply(fx, 0);
	assert_non_null(fx->r[0].reply);
	assert_false(json_is_true(json_object_get(fx->r[0].reply, "success")));
	assert_non_null(reply_str(&fx->r[0], "error"));
	assert_int_equal(child_stats(fx->c)->errors, 1);
	assert_true(child_alive(fx->c));
	assert_int_equal(child_state(fx->c), CS_READY);
}

/* ---- failures ------------------------------------------------------------ */

/* A request past its deadline fails with timeout and the worker is
 * killed (it would otherwise have answered after 2 s). */
static void
test_request_timeout_kills(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "sleep", "{\"ms\": 2000}", 100);
	wait_reply(fx, 0);
	assert_null(fx->r[0].reply);
	assert_int_equal(fx->r[0].err, ERR_TIMEOUT);
	wait_exit(fx);
	assert_true(fx->abnormal_at_exit);
	assert_true(WIFSIGNALED(fx->status_at_exit));
	assert_int_equal(WTERMSIG(fx->status_at_exit), SIGKILL);
	assert_int_equal(fx->r[0].calls, 1);
	assert_group_gone(fx->pid);
}

/* A worker that exits while holding a request: worker_crashed, and the
 * exit status is reported as it was. */
static void
test_crash(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "crash", "{\"code\": 3}", 0);
	wait_reply(fx, 0);
	assert_null(fx->r[0].reply);
	assert_int_equal(fx->r[0].err, ERR_WORKER_CRASHED);
	wait_exit(fx);
	assert_true(WIFEXITED(fx->status_at_exit));
	assert_int_equal(WEXITSTATUS(fx->status_at_exit), 3);
	assert_true(fx->abnormal_at_exit);
	assert_int_equal(WEXITSTATUS(child_exit_status(fx->c)), 3);
	assert_int_equal(fx->state_at_exit, CS_READY);
	assert_int_equal(fx->r[0].calls, 1);
	assert_group_gone(fx->pid);
}

/* Exit status 0 is a normal exit (a transient worker is not restarted),
 * though the request it held still fails. */
static void
test_crash_code_zero(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "crash", "{\"code\": 0}", 0);
	wait_reply(fx, 0);
	assert_int_equal(fx->r[0].err, ERR_WORKER_CRASHED);
	wait_exit(fx);
	assert_true(WIFEXITED(fx->status_at_exit));
	assert_int_equal(WEXITSTATUS(fx->status_at_exit), 0);
	assert_false(fx->abnormal_at_exit);
}

/* Death by a signal is abnormal and reported as such. */
static void
test_crash_signal(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "crash", "{\"signal\": 15}", 0);
	wait_reply(fx, 0);
	assert_int_equal(fx->r[0].err, ERR_WORKER_CRASHED);
	wait_exit(fx);
	assert_true(WIFSIGNALED(fx->status_at_exit));
	assert_int_equal(WTERMSIG(fx->status_at_exit), SIGTERM);
	assert_true(fx->abnormal_at_exit);
}

/* ---- no idle event from a child that is going away ------------------------
 *
 * "idle" tells the owner the child takes requests again; the owner then
 * hands it the next waiting job. A child whose process is dead or being
 * killed must not say so: the job would be failed (worker_crashed) when
 * another worker could have served it. */

struct retry {
	struct fx	*fx;
	int		 rc;		/* child_request from inside the reply */
	bool		 tried;
};

/* A reply callback that, like a router, tries to reuse the child at once
 * when its request finished, as it would on an idle event. */
static void
on_reply_retry(void *arg, const struct child_reply *reply, enum msg_code err,
    const char *why)
{
	struct retry *t = arg;
	on_reply(&t->fx->r[0], reply, err, why);
	t->rc = child_request(t->fx->c, "echo", NULL, 0, NULL, 0, on_reply,
	    &t->fx->r[1]);
	t->tried = true;
}

/* After a request deadline the worker is killed: no idle event, and it
 * takes no new request, even from inside the timed-out request's reply. */
static void
test_timeout_no_idle(void **state)
{
	struct fx *fx = *state;
	static struct retry t;	/* outlives a failed assertion */
	t = (struct retry){ fx, 0, false };
	spawn_ready(fx);
	assert_int_equal(child_request(fx->c, "sleep", "{\"ms\":2000}", 11, NULL,
	    100, on_reply_retry, &t), 0);
	wait_exit(fx);
	assert_true(t.tried);
	assert_int_equal(fx->r[0].err, ERR_TIMEOUT);
	if (fx->nidle != 0 || t.rc != -1)
		fail_msg("a timed-out child being killed: %d idle event(s), "
		    "child_request from the reply returned %d (the request "
		    "then got: %s)", fx->nidle, t.rc, fx->r[1].calls == 0 ?
		    "nothing" : fx->r[1].reply ? "a reply" :
		    msg_code_name(fx->r[1].err));
}

/* The state the child showed when its request's reply came. */
static enum child_state state_at_reply;

static void
on_reply_state(void *arg, const struct child_reply *reply, enum msg_code err,
    const char *why)
{
	struct fx *fx = arg;
	state_at_reply = child_state(fx->c);
	on_reply(&fx->r[0], reply, err, why);
}

/* A child being killed shows stopping from the kill until its exit (SPEC
 * 4 states), never ready: killed for a missed deadline (as its request's
 * reply comes) or by child_kill itself; and it takes no request. */
static void
test_killed_is_stopping(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	state_at_reply = CS_READY;
	assert_int_equal(child_request(fx->c, "sleep", "{\"ms\":2000}", 11, NULL,
	    100, on_reply_state, fx), 0);
	wait_reply(fx, 0);
	assert_int_equal(fx->r[0].err, ERR_TIMEOUT);
	if (state_at_reply != CS_STOPPING)
		fail_msg("killed for its deadline, the child showed %s",
		    child_state_name(state_at_reply));
	wait_exit(fx);

	fx->nexited = 0;
	spawn_ready(fx);
	child_kill(fx->c, "test");
	assert_int_equal(child_state(fx->c), CS_STOPPING);
	assert_false(child_accepts(fx->c));
	assert_int_equal(child_request(fx->c, "echo", NULL, 0, NULL, 0,
	    on_reply, &fx->r[1]), -1);
	wait_exit(fx);
}

static void wait_zombie(pid_t);

/* child_crashing: a live worker is not; one that exited is, before the
 * loop has seen its exit or its pipes close; so is one arbord killed. */
static void
test_crashing_before_reap(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	assert_false(child_crashing(fx->c));
	assert_int_equal(kill(fx->pid, SIGKILL), 0);
	wait_zombie(fx->pid);
	assert_true(child_alive(fx->c));	/* not reaped: the loop has not run */
	assert_true(child_crashing(fx->c));
	wait_exit(fx);
	assert_false(child_crashing(fx->c));

	fx->nexited = 0;
	spawn_ready(fx);
	child_kill(fx->c, "test");
	assert_true(child_crashing(fx->c));
	wait_exit(fx);
}

/* A worker that crashed while busy: no idle event before exited. */
static void
test_crash_no_idle(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "crash", "{\"code\": 3}", 0);
	wait_exit(fx);
	assert_int_equal(fx->r[0].err, ERR_WORKER_CRASHED);
	assert_int_equal(fx->nidle, 0);
}

/* A worker killed for a protocol failure: no idle event either. */
static void
test_garbage_no_idle(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "garbage", NULL, 0);
	wait_exit(fx);
	assert_int_equal(fx->r[0].err, ERR_WORKER_CRASHED);
	assert_int_equal(fx->nidle, 0);
}

/* A frame that is not JSON is a protocol failure: worker_crashed, the
 * worker is killed. */
static void
test_garbage(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "garbage", NULL, 0);
	wait_reply(fx, 0);
	assert_null(fx->r[0].reply);
	assert_int_equal(fx->r[0].err, ERR_WORKER_CRASHED);
	wait_exit(fx);
	assert_true(fx->abnormal_at_exit);
	assert_true(WIFSIGNALED(fx->status_at_exit));
	assert_int_equal(WTERMSIG(fx->status_at_exit), SIGKILL);
	assert_int_equal(fx->r[0].calls, 1);
	assert_group_gone(fx->pid);
}

/* A reply larger than max_frame_bytes is a protocol failure too. */
static void
test_frame_too_large(void **state)
{
	struct fx *fx = *state;
	fx->cfg.worker.max_frame_bytes = 4096;
	spawn_ready(fx);
	request(fx, 0, "big", "{\"bytes\": 100000}", 0);
	wait_reply(fx, 0);
	assert_int_equal(fx->r[0].err, ERR_WORKER_CRASHED);
	wait_exit(fx);
	assert_true(fx->abnormal_at_exit);
}

/* The init ping never answered: killed at init_timeout_ms, never ready. */
static void
test_init_timeout(void **state)
{
	struct fx *fx = *state;
	fx->env[0] = "MOCK_WORKER_NO_INIT=1";
	fx->env[1] = NULL;
	fx->cfg.worker.init_timeout_ms = 200;
	assert_int_equal(child_spawn(fx->c), 0);
	fx->pid = child_pid(fx->c);
	wait_exit(fx);
	assert_int_equal(fx->nready, 0);
	assert_int_equal(fx->state_at_exit, CS_STARTING);
	assert_true(fx->abnormal_at_exit);
	assert_true(WIFSIGNALED(fx->status_at_exit));
	assert_int_equal(WTERMSIG(fx->status_at_exit), SIGKILL);
	assert_group_gone(fx->pid);
}

/* A worker that exits before answering the init ping is reported. */
static void
test_crash_at_start(void **state)
{
	struct fx *fx = *state;
	fx->env[0] = "MOCK_WORKER_CRASH_AT_START=7";
	fx->env[1] = NULL;
	assert_int_equal(child_spawn(fx->c), 0);
	fx->pid = child_pid(fx->c);
	wait_exit(fx);
	assert_int_equal(fx->nready, 0);
	assert_true(WIFEXITED(fx->status_at_exit));
	assert_int_equal(WEXITSTATUS(fx->status_at_exit), 7);
	assert_true(fx->abnormal_at_exit);
}

/* A process that never got ready has not run, however long its init took:
 * its last run is 0, so that a crash loop in init_timeout_ms (even one of
 * 10 s or more) always waits its restart delay. */
static void
test_last_run_never_ready(void **state)
{
	struct fx *fx = *state;
	fx->env[0] = "MOCK_WORKER_NO_INIT=1";
	fx->env[1] = NULL;
	fx->cfg.worker.init_timeout_ms = 200;
	assert_int_equal(child_spawn(fx->c), 0);
	fx->pid = child_pid(fx->c);
	wait_exit(fx);
	assert_int_equal(fx->nready, 0);
	assert_true(child_last_run(fx->c) == 0);
}

/* The last run counts from the ready, not from the spawn: a worker 300 ms
 * or more in its init (the loop held meanwhile, so that the answer is seen
 * that late) then killed ran from its ready to its exit. */
static void
test_last_run_from_ready(void **state)
{
	struct fx *fx = *state;
	assert_int_equal(child_spawn(fx->c), 0);
	fx->pid = child_pid(fx->c);
	ev_tstamp spawned = clock_now();
	/* makes the init long, not a wait for an event */
	struct timespec hold = { 0, 300 * 1000 * 1000 };
	while (nanosleep(&hold, &hold) < 0 && errno == EINTR)
		;
	assert_true(evwait_until(is_ready, fx, BOUND_S, TICK_S));
	assert_true(fx->ready_at - spawned >= 0.3);
	child_kill(fx->c, NULL);
	wait_exit(fx);
	assert_true(child_last_run(fx->c) == fx->exited_at - fx->ready_at);
	assert_true(child_last_run(fx->c) < fx->exited_at - spawned - 0.25);
}

/* ---- stopping ------------------------------------------------------------ */

/* A graceful stop: exited follows, with the state still stopping. */
static void
test_stop(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	child_stop(fx->c, NULL);
	assert_int_equal(child_state(fx->c), CS_STOPPING);
	wait_exit(fx);
	assert_int_equal(fx->state_at_exit, CS_STOPPING);
	/* It answered shutdown and exited 0, or SIGTERM got there first. */
	assert_true((WIFEXITED(fx->status_at_exit) &&
	    WEXITSTATUS(fx->status_at_exit) == 0) ||
	    (WIFSIGNALED(fx->status_at_exit) &&
	    WTERMSIG(fx->status_at_exit) == SIGTERM));
	assert_group_gone(fx->pid);
	/* The owner decides what comes next. */
	child_set_down(fx->c, CS_STOPPED);
	assert_int_equal(child_state(fx->c), CS_STOPPED);
}

/* A stop while a request is in flight: the request gets its one reply. */
static void
test_stop_with_request(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "sleep", "{\"ms\": 60000}", 0);
	child_stop(fx->c, NULL);
	wait_exit(fx);
	assert_int_equal(fx->state_at_exit, CS_STOPPING);
	assert_int_equal(fx->r[0].calls, 1);
	assert_null(fx->r[0].reply);
	assert_int_equal(fx->r[0].err, ERR_WORKER_CRASHED);
}

/* child_abandon: the requests in flight get their one reply at once, with
 * the code given, before the exit; no idle event; the process is killed. */
static void
test_abandon_with_requests(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "sleep", "{\"ms\": 60000}", 0);
	request(fx, 1, "echo", NULL, 0);
	child_abandon(fx->c, ERR_SHUTTING_DOWN, "going down");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(fx->r[i].calls, 1);
		assert_null(fx->r[i].reply);
		assert_int_equal(fx->r[i].err, ERR_SHUTTING_DOWN);
		assert_string_equal(fx->r[i].why, "going down");
	}
	assert_int_equal(fx->nexited, 0);
	wait_exit(fx);
	assert_true(fx->abnormal_at_exit);
	assert_int_equal(fx->nidle, 0);
	assert_int_equal(fx->r[0].calls, 1);
	assert_int_equal(fx->r[1].calls, 1);
}

/* A worker that ignores SIGTERM and never reads shutdown is SIGKILLed
 * after shutdown_timeout_ms. */
static void
test_stop_escalates_to_kill(void **state)
{
	struct fx *fx = *state;
	fx->env[0] = "MOCK_WORKER_IGNORE_TERM=1";
	fx->env[1] = NULL;
	fx->cfg.worker.shutdown_timeout_ms = 300;
	spawn_ready(fx);
	request(fx, 0, "hang", NULL, 0);
	ev_now_update(LOOP);
	ev_tstamp t0 = clock_now();
	child_stop(fx->c, NULL);
	wait_exit(fx);
	assert_int_equal(fx->state_at_exit, CS_STOPPING);
	assert_true(WIFSIGNALED(fx->status_at_exit));
	assert_int_equal(WTERMSIG(fx->status_at_exit), SIGKILL);
	assert_true(fx->exited_at - t0 >= 0.29);
	assert_int_equal(fx->r[0].calls, 1);
	assert_int_equal(fx->r[0].err, ERR_WORKER_CRASHED);
	assert_group_gone(fx->pid);
}

/* A grandchild the worker left in its process group goes with it, even
 * one that holds the worker's stdout open. */
static void
test_group_killed_with_worker(void **state)
{
	struct fx *fx = *state;
	/* Orphans are reparented to us, and reaped by the loop. */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	fx->argv[0] = "/bin/sh";
	fx->argv[1] = "-c";
	fx->argv[2] = "sleep 300 & exec \"$0\"";
	fx->argv[3] = mock_path;
	fx->argv[4] = NULL;
	spawn_ready(fx);
	request(fx, 0, "crash", "{\"code\": 5}", 0);
	wait_reply(fx, 0);
	assert_int_equal(fx->r[0].err, ERR_WORKER_CRASHED);
	wait_exit(fx);
	assert_true(WIFEXITED(fx->status_at_exit));
	assert_int_equal(WEXITSTATUS(fx->status_at_exit), 5);
	assert_group_gone(fx->pid);
}

/* ---- what the owner sees ------------------------------------------------- */

static void
assert_int_field(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		fail_msg("field %s missing or not an integer", key);
}

/* child_put_node's text, parsed: it must be one valid JSON value. */
static json_t *
node_of(const struct child *c)
{
	struct buf b;
	buf_init(&b);
	child_put_node(c, &b);
	json_error_t e;
	json_t *j = json_loadb(buf_head(&b), buf_used(&b), 0, &e);
	if (j == NULL)
		fail_msg("NODE is not JSON (%s): %.*s", e.text, (int)buf_used(&b),
		    buf_head(&b));
	buf_release(&b);
	return j;
}

/* child_put_node writes the worker NODE of SPEC 6. */
static void
test_json(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	json_t *j = node_of(fx->c);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "name")), NAME);
	assert_string_equal(json_string_value(json_object_get(j, "kind")),
	    "worker");
	assert_string_equal(json_string_value(json_object_get(j, "state")),
	    "ready");
	assert_string_equal(json_string_value(json_object_get(j, "health")),
	    "healthy");
	assert_int_field(j, "restarts");
	assert_int_field(j, "uptime_ms");
	assert_int_field(j, "pid");
	assert_int_field(j, "session");
	assert_int_equal(json_integer_value(json_object_get(j, "pid")), fx->pid);
	assert_int_equal(json_integer_value(json_object_get(j, "restarts")), 0);
	assert_true(json_integer_value(json_object_get(j, "uptime_ms")) >= 0);
	json_t *ch = json_object_get(j, "children");
	assert_true(json_is_array(ch));
	assert_int_equal(json_array_size(ch), 0);
	json_t *st = json_object_get(j, "stats");
	assert_true(json_is_object(st));
	static const char *const stat_keys[] = {
		"requests_handled", "errors", "sessions_served", "checkouts",
		"uptime_ms", "last_activity_ms",
	};
	for (size_t i = 0; i < sizeof stat_keys / sizeof stat_keys[0]; i++)
		assert_int_field(st, stat_keys[i]);
	json_decref(j);

	/* Counters show up. */
	size_t bound = 2;
	child_set_sessions(fx->c, &bound);
	request(fx, 0, "echo", "{}", 0);
	j = node_of(fx->c);
	assert_string_equal(json_string_value(json_object_get(j, "state")),
	    "busy");
	json_decref(j);
	wait_reply(fx, 0);
	j = node_of(fx->c);
	assert_int_equal(json_integer_value(json_object_get(j, "session")), 2);
	child_set_sessions(fx->c, NULL);
	st = json_object_get(j, "stats");
	assert_int_equal(json_integer_value(json_object_get(st,
	    "requests_handled")), 1);
	json_decref(j);
}

/* After an exit, the slot can spawn again: same name, a new process,
 * counted in restarts as the restart marked; one marked and then set
 * down (stop NAME in backoff) is not made, and not counted. */
static void
test_respawn(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	pid_t first = fx->pid;
	request(fx, 0, "crash", "{\"code\": 1}", 0);
	wait_exit(fx);
	assert_int_equal(child_request(fx->c, "echo", NULL, 0, NULL, 0, on_reply,
	    &fx->r[1]), -1);
	child_mark_restart(fx->c);
	assert_int_equal(child_restarts(fx->c), 0);	/* counted at the spawn */
	spawn_ready(fx);
	assert_true(fx->pid != first);
	assert_string_equal(child_name(fx->c), NAME);
	assert_int_equal(child_restarts(fx->c), 1);
	request(fx, 2, "echo", "{\"again\": true}", 0);
	wait_reply(fx, 2);
	assert_true(json_is_true(json_object_get(fx->r[2].reply, "success")));
	assert_int_equal(fx->r[1].calls, 0);
	fx->nexited = 0;
	request(fx, 3, "crash", "{\"code\": 1}", 0);
	wait_exit(fx);
	child_mark_restart(fx->c);
	child_set_down(fx->c, CS_STOPPED);
	spawn_ready(fx);
	assert_int_equal(child_restarts(fx->c), 1);
}

/* A worker that answers and then exits: the reply is delivered, and
 * the exit (status 0) is a normal one. */
static void
test_reply_then_exit(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "shutdown", NULL, 0);
	wait_reply(fx, 0);
	assert_non_null(fx->r[0].reply);
	assert_true(json_is_true(json_object_get(fx->r[0].reply, "success")));
	wait_exit(fx);
	assert_true(WIFEXITED(fx->status_at_exit));
	assert_int_equal(WEXITSTATUS(fx->status_at_exit), 0);
	assert_false(fx->abnormal_at_exit);
	assert_int_equal(fx->r[0].calls, 1);
}

/* A reply larger than one read: delivered whole. */
static void
test_big_reply(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "big", "{\"bytes\": 300000}", 0);
	wait_reply(fx, 0);
	assert_non_null(fx->r[0].reply);
	json_t *res = json_object_get(fx->r[0].reply, "result");
	const char *data = json_string_value(json_object_get(res, "data"));
	assert_non_null(data);
	assert_true(strlen(data) > 290000);
	assert_true(child_alive(fx->c));
}

/* Waits (without reaping it, and without running the loop) until the
 * process pid has exited. */
static void
wait_zombie(pid_t pid)
{
	struct timespec step = { 0, 1000000 };
	for (int i = 0; i < (int)(BOUND_S * 1000); i++) {
		siginfo_t si;
		memset(&si, 0, sizeof si);
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
			fail_msg("waitid: %s", strerror(errno));
		if (si.si_pid == pid)
			return;
		nanosleep(&step, NULL);
	}
	fail_msg("pid %d did not exit", (int)pid);
}

/* A worker that writes a whole reply and then exits at once: what it
 * wrote before exiting is still read and delivered; only a request it did
 * not answer fails. The worker (this program in --reply-and-exit mode, see
 * reply_and_exit) makes its stdout pipe large enough to hold the whole
 * reply, so it exits before arbor has read it. */
static void
test_reply_left_in_pipe_at_exit(void **state)
{
	struct fx *fx = *state;
	fx->argv[0] = self_path;
	fx->argv[1] = "--reply-and-exit";
	fx->argv[2] = "200000";
	fx->argv[3] = "3";
	fx->argv[4] = NULL;
	spawn_ready(fx);
	/* SIGCHLD held: the loop cannot reap the worker while it writes the
	 * request, however quickly the worker answers and exits. */
	sigset_t chld, old;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old);
	request(fx, 0, "anything", NULL, 0);
	ev_run(LOOP, EVRUN_NOWAIT);	/* writes the request */
	/* The worker has answered and exited before the loop looks again:
	 * arbor sees the exit and the unread reply in the same iteration. */
	wait_zombie(fx->pid);
	sigprocmask(SIG_SETMASK, &old, NULL);
	wait_exit(fx);
	assert_int_equal(fx->r[0].calls, 1);
	if (fx->r[0].reply == NULL)
		fail_msg("the complete reply was dropped: %s (%s)",
		    msg_code_name(fx->r[0].err), fx->r[0].why ? fx->r[0].why :
		    "");
	json_t *res = json_object_get(fx->r[0].reply, "result");
	const char *data = json_string_value(json_object_get(res, "data"));
	assert_non_null(data);
	assert_int_equal(strlen(data), 200000);
	assert_true(WIFEXITED(fx->status_at_exit));
	assert_int_equal(WEXITSTATUS(fx->status_at_exit), 3);
}

/* The same with mock_worker: a large reply, then (pipelined) a crash. */
static void
test_big_reply_then_crash(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "big", "{\"bytes\": 300000}", 0);
	request(fx, 1, "crash", "{\"code\": 4}", 0);
	wait_exit(fx);
	assert_int_equal(fx->r[1].calls, 1);
	assert_int_equal(fx->r[1].err, ERR_WORKER_CRASHED);
	assert_int_equal(fx->r[0].calls, 1);
	assert_non_null(fx->r[0].reply);
	assert_true(WIFEXITED(fx->status_at_exit));
	assert_int_equal(WEXITSTATUS(fx->status_at_exit), 4);
}

/* Many requests one after the other: ids are reused safely. */
static void
test_many_requests(void **state)
{
	struct fx *fx = *state;
	char args[32];
	spawn_ready(fx);
	for (int i = 0; i < 300; i++) {
		struct reply *r = &fx->r[i % MAX_REPLIES];
		json_decref(r->reply);
		free(r->why);
		memset(r, 0, sizeof *r);
		snprintf(args, sizeof args, "{\"i\": %d}", i);
		request(fx, i % MAX_REPLIES, "echo", args, 10000);
		wait_reply(fx, i % MAX_REPLIES);
		json_t *res = json_object_get(r->reply, "result");
		assert_int_equal(json_integer_value(json_object_get(res, "i")), i);
	}
	assert_int_equal(child_stats(fx->c)->requests_handled, 300);
	assert_int_equal(fx->nidle, 300);
	assert_int_equal(fx->nexited, 0);
}

/* A worker that closes stdout but lives on broke the protocol: killed. */
static void
test_stdout_closed_while_alive(void **state)
{
	struct fx *fx = *state;
	fx->argv[0] = "/bin/sh";
	fx->argv[1] = "-c";
	fx->argv[2] = "exec >&-; exec sleep 300";
	fx->argv[3] = NULL;
	assert_int_equal(child_spawn(fx->c), 0);
	fx->pid = child_pid(fx->c);
	wait_exit(fx);
	assert_int_equal(fx->nready, 0);
	assert_true(fx->abnormal_at_exit);
	assert_true(WIFSIGNALED(fx->status_at_exit));
	assert_int_equal(WTERMSIG(fx->status_at_exit), SIGKILL);
	assert_group_gone(fx->pid);
}

/* A reply whose id nobody asked for is a protocol failure: killed. */
static void
test_unknown_reply_id(void **state)
{
	struct fx *fx = *state;
	fx->argv[0] = "/bin/sh";
	fx->argv[1] = "-c";
	/* One frame: a 4-byte length (10), then {"id": 99}. */
	fx->argv[2] = "printf '\\000\\000\\000\\012{\"id\": 99}'; exec sleep 300";
	fx->argv[3] = NULL;
	assert_int_equal(child_spawn(fx->c), 0);
	fx->pid = child_pid(fx->c);
	wait_exit(fx);
	assert_int_equal(fx->nready, 0);
	assert_true(fx->abnormal_at_exit);
	assert_true(WIFSIGNALED(fx->status_at_exit));
	assert_int_equal(WTERMSIG(fx->status_at_exit), SIGKILL);
}

/* child_backoff waits, then spawns; child_set_down cancels the wait. */
static void
test_backoff(void **state)
{
	struct fx *fx = *state;
	child_backoff(fx->c, 50);
	assert_int_equal(child_state(fx->c), CS_BACKOFF);
	assert_false(child_alive(fx->c));
	assert_true(evwait_until(is_ready, fx, BOUND_S, TICK_S));
	assert_int_equal(child_state(fx->c), CS_READY);
	assert_true(child_alive(fx->c));
	fx->pid = child_pid(fx->c);
}

static void
test_set_down_cancels_backoff(void **state)
{
	struct fx *fx = *state;
	child_backoff(fx->c, 50);
	child_set_down(fx->c, CS_FAILED);
	assert_int_equal(child_state(fx->c), CS_FAILED);
	assert_false(evwait_until(is_ready, fx, 0.5, TICK_S));	/* 10 x the delay */
	assert_false(child_alive(fx->c));
	assert_int_equal(child_state(fx->c), CS_FAILED);
	assert_int_equal(fx->nready, 0);
}

/* Freeing a child with a request in flight fails the request once and
 * takes the process away (no exited event: the owner is freeing it). */
static void
test_free_while_busy(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	request(fx, 0, "sleep", "{\"ms\": 60000}", 0);
	child_free(fx->c);
	fx->c = NULL;
	assert_int_equal(fx->r[0].calls, 1);
	assert_int_equal(fx->r[0].err, ERR_WORKER_CRASHED);
	assert_group_gone(fx->pid);
	assert_int_equal(fx->nexited, 0);
	assert_int_equal(fx->nidle, 0);
	assert_true(evwait_until(reaped, &fx->pid, BOUND_S, TICK_S));
}

/* A notice (cleanup_session) sent to a worker busy with a request whose
 * timeout_ms is beyond request_timeout_ms waits behind that request: its
 * own allowance does not get the worker killed while the request runs. */
static void
test_notice_behind_long_request(void **state)
{
	struct fx *fx = *state;
	fx->cfg.worker.request_timeout_ms = 400;	/* the notice's */
	spawn_ready(fx);
	request(fx, 0, "sleep", "{\"ms\": 1500}", 20000);
	assert_int_equal(child_notify(fx->c, "cleanup_session",
	    json_pack("{s:s}", "session_id", "s1")), 0);
	wait_reply(fx, 0);
	assert_true(json_is_true(json_object_get(fx->r[0].reply, "success")));
	request(fx, 1, "echo", "{}", 0);	/* answered after the notice */
	wait_reply(fx, 1);
	assert_true(json_is_true(json_object_get(fx->r[1].reply, "success")));
	assert_int_equal(fx->nexited, 0);
	assert_int_equal(child_pid(fx->c), fx->pid);
	assert_int_equal(child_stats(fx->c)->requests_handled, 2);
}

/* A notice that is never answered (hang) still gets the worker killed:
 * request_timeout_ms after the requests ahead of it are answered, here
 * the sleep's 200 ms, not before, and without waiting for the sleep's
 * deadline (60 s) once it is answered. */
static void
test_notice_timeout_kills(void **state)
{
	struct fx *fx = *state;
	fx->cfg.worker.request_timeout_ms = 100;	/* the notice's */
	spawn_ready(fx);
	ev_now_update(LOOP);
	ev_tstamp t0 = clock_now();
	request(fx, 0, "sleep", "{\"ms\": 200}", 60000);
	assert_int_equal(child_notify(fx->c, "hang", json_object()), 0);
	wait_reply(fx, 0);
	assert_true(json_is_true(json_object_get(fx->r[0].reply, "success")));
	wait_exit(fx);
	assert_true(fx->exited_at >= t0 + 0.3);
	assert_true(fx->exited_at < t0 + 20);
	assert_true(fx->abnormal_at_exit);
	assert_true(WIFSIGNALED(fx->status_at_exit));
	assert_int_equal(WTERMSIG(fx->status_at_exit), SIGKILL);
	assert_int_equal(fx->r[0].calls, 1);
}

/* Idle workers are pinged every health_interval_ms; pings are not
 * requests: no idle events, no counts, and requests still go through. */
static void
test_health_pings(void **state)
{
	struct fx *fx = *state;
	fx->cfg.worker.health_interval_ms = 20;
	spawn_ready(fx);
	evwait_until(has_exited, fx, 0.5, TICK_S);		/* ~25 pings */
	assert_int_equal(fx->nexited, 0);
	assert_int_equal(fx->nidle, 0);
	assert_int_equal(child_stats(fx->c)->requests_handled, 0);
	json_t *j = node_of(fx->c);
	assert_string_equal(json_string_value(json_object_get(j, "health")),
	    "healthy");
	json_decref(j);
	for (int k = 0; k < 5; k++) {
		request(fx, k, "echo", "{}", 0);
		wait_reply(fx, k);
		assert_true(json_is_true(json_object_get(fx->r[k].reply,
		    "success")));
	}
	assert_int_equal(fx->nidle, 5);
	assert_int_equal(child_stats(fx->c)->requests_handled, 5);
}

/* What the worker writes on stderr is logged line by line under its
 * name. */
struct grep {
	const char	*path;
	const char	*text;
};

static bool
file_has(void *arg)
{
	struct grep *g = arg;
	char buf[8192];
	FILE *f = fopen(g->path, "r");
	if (f == NULL)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, g->text) != NULL;
}

/* arbord's log (our stderr) at level info into the new temp file path
 * (a mkstemp template); returns the stderr to give back to log_restore. */
static int
log_capture(char *path)
{
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	int saved = dup(2);
	assert_true(saved >= 0);
	dup2(fd, 2);
	close(fd);
	log_setup(LOG_INFO, LOG_TEXT);
	return saved;
}

/* Ends log_capture: stderr and the level back, the file removed. */
static void
log_restore(int saved, const char *path)
{
	log_setup(LOG_ERROR, LOG_TEXT);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	unlink(path);
}

static void
test_stderr_logged(void **state)
{
	struct fx *fx = *state;
	char path[] = "/tmp/arbor-child-log-XXXXXX";
	spawn_ready(fx);
	/* Sent now, written when the loop runs: after the redirection. */
	request(fx, 0, "stderr", "{\"line\": \"hello from the worker\"}", 0);
	int saved = log_capture(path);
	struct grep g = { path, NAME ": hello from the worker\n" };
	bool replied = evwait_until(has_reply, &fx->r[0], BOUND_S, TICK_S);
	bool found = replied && evwait_until(file_has, &g, BOUND_S, TICK_S);
	log_restore(saved, path);
	assert_true(replied);
	assert_true(json_is_true(json_object_get(fx->r[0].reply, "success")));
	assert_true(found);
}

/* Whether pid has exited, its exit left for the loop to reap. */
static bool
exited_unreaped(pid_t pid)
{
	siginfo_t si = { .si_pid = 0 };
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	    si.si_pid == pid;
}

/* The SIGKILL timer is due (shutdown_timeout_ms = 0) with the worker
 * already ended by SIGTERM, its SIGCHLD not yet seen by the loop (held
 * back here): it is sent nothing, and no "did not stop" is logged. */
static void
test_stop_exited_no_kill(void **state)
{
	struct fx *fx = *state;
	char path[] = "/tmp/arbor-child-log-XXXXXX";
	fx->cfg.worker.shutdown_timeout_ms = 0;
	spawn_ready(fx);
	int saved = log_capture(path);
	sigset_t chld, old;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old);
	child_stop(fx->c, NULL);
	for (int ms = 0; !exited_unreaped(fx->pid) && ms < BOUND_S * 1000; ms++)
		usleep(1000);	/* polled: no loop may run meanwhile */
	bool exited = exited_unreaped(fx->pid);
	evwait_for(0.1);	/* the timer, due at once, runs */
	sigprocmask(SIG_SETMASK, &old, NULL);
	bool exit_seen = evwait_until(has_exited, fx, BOUND_S, TICK_S);
	struct grep g = { path, "did not stop within" };
	bool killed = file_has(&g);
	log_restore(saved, path);
	assert_true(exited);
	assert_true(exit_seen);
	assert_false(killed);
	assert_int_equal(fx->nexited, 1);
}

/* The NODE without a process; a name that needs escapes comes back whole. */
static void
test_json_stopped(void **state)
{
	struct fx *fx = *state;
	json_t *j = node_of(fx->c);
	assert_string_equal(json_string_value(json_object_get(j, "state")),
	    "stopped");
	assert_int_equal(json_integer_value(json_object_get(j, "pid")), 0);
	assert_int_equal(json_integer_value(json_object_get(j, "uptime_ms")), 0);
	assert_string_equal(json_string_value(json_object_get(j, "kind")),
	    "worker");
	json_decref(j);

	static const char odd[] = "pool/\"w\\\n\x01\xc3\xa9";
	struct child *c = child_new(odd, &fx->cfg, fx->argv, &events, fx);
	j = node_of(c);
	assert_string_equal(json_string_value(json_object_get(j, "name")), odd);
	json_decref(j);
	child_free(c);
}

/* The number of open descriptors of this process. */
static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d))
			n++;
	closedir(d);
	return n;
}

/* Spawning and reaping, again and again, leaks no descriptor. */
static void
test_no_fd_leak(void **state)
{
	struct fx *fx = *state;
	int n0 = count_fds();
	spawn_ready(fx);
	for (int round = 0; round < 3; round++) {
		fx->nexited = 0;
		request(fx, round, "crash", "{\"code\": 2}", 0);
		wait_exit(fx);
		spawn_ready(fx);
	}
	child_stop(fx->c, NULL);
	fx->nexited = 0;
	wait_exit(fx);
	assert_int_equal(count_fds(), n0);
}

/* Workers inherit only their three stdio descriptors. mock_worker moves
 * its own descriptors about, so this program runs in front of it as a
 * probe (see fd_probe) that writes what it inherited to a file first. */
static void
test_inherits_only_stdio(void **state)
{
	struct fx *fx = *state;
	char dir[] = "/tmp/arbor-child-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *out = xasprintf("%s/fds", dir);
	fx->argv[0] = self_path;
	fx->argv[1] = "--fd-probe";
	fx->argv[2] = out;
	fx->argv[3] = mock_path;
	fx->argv[4] = NULL;
	spawn_ready(fx);
	FILE *f = fopen(out, "r");
	char all[256] = "";
	assert_non_null(f);
	size_t n = fread(all, 1, sizeof all - 1, f);
	all[n] = '\0';
	fclose(f);
	unlink(out);
	rmdir(dir);
	free(out);
	assert_string_equal(all, "0 1 2\n");
}

static int
cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Run as a worker: writes the descriptors this process inherited to
 * file, sorted, then becomes mock_worker. */
static int
fd_probe(const char *file, char *mock)
{
	int fds[256], n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	if (d == NULL)
		return 127;
	while ((de = readdir(d)) != NULL && n < 256)
		if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d))
			fds[n++] = atoi(de->d_name);
	closedir(d);
	qsort(fds, (size_t)n, sizeof fds[0], cmp_int);
	char *tmp = xasprintf("%s.tmp", file);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return 127;
	for (int i = 0; i < n; i++)
		fprintf(f, "%s%d", i ? " " : "", fds[i]);
	fprintf(f, "\n");
	if (fclose(f) != 0 || rename(tmp, file) != 0)
		return 127;
	free(tmp);
	char *argv[] = { mock, NULL };
	execv(mock, argv);
	return 127;
}

/* Run as a worker: answers the init ping, then answers the next request
 * with {"data": <bytes x "x">} and exits with code at once. Its stdout
 * pipe is made large enough to take the whole reply without waiting. */
static int
reply_and_exit(size_t bytes, int code)
{
	struct buf in, out;
	const char *payload;
	size_t len;
	buf_init(&in);
	buf_init(&out);
	fcntl(1, F_SETPIPE_SZ, 1 << 20);
	char *data = xmalloc(bytes + 1);
	memset(data, 'x', bytes);
	data[bytes] = '\0';
	for (int k = 0; k < 2; k++) {
		if (frame_read_blocking(0, &in, 1 << 20, &payload, &len) != 1)
			return 126;
		json_t *req = frame_parse(payload, len, NULL);
		frame_done(&in, len);
		json_t *result = k == 0 ? json_pack("{s:b}", "pong", 1) :
		    json_pack("{s:s}", "data", data);
		json_t *rep = msg_worker_ok(json_object_get(req, "id"), result);
		frame_put_json(&out, rep);
		json_decref(rep);
		json_decref(req);
		if (buf_write_fd(&out, 1) < 0)
			return 126;
	}
	_exit(code);
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--fd-probe") == 0)
		return fd_probe(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "--reply-and-exit") == 0)
		return reply_and_exit((size_t)atol(argv[2]), atoi(argv[3]));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_spawn_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_before_ready, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_worker_id, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_env_each_name_once, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_error_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_request_timeout_kills, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_code_zero, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_crash_signal, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout_no_idle, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_killed_is_stopping, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_crashing_before_reap, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_crash_no_idle, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_garbage_no_idle, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frame_too_large, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_init_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_crash_at_start, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_last_run_never_ready, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_last_run_from_ready, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_request, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_abandon_with_requests, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stop_escalates_to_kill,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_killed_with_worker,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_respawn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_then_exit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_big_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_left_in_pipe_at_exit,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_reply_then_crash, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_many_requests, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stdout_closed_while_alive,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_reply_id, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_down_cancels_backoff,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_while_busy, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_notice_behind_long_request,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_notice_timeout_kills, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_health_pings, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stop_exited_no_kill, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stderr_logged, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_json_stopped, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_fd_leak, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inherits_only_stdio, setup,
		    teardown),
	};
	char buf[PATH_MAX], want[PATH_MAX];
	snprintf(want, sizeof want, "%s/mock_worker", getenv("ARBOR_BUILD") ?
	    getenv("ARBOR_BUILD") : "./build");	/* make test sets it */
	if (realpath(want, buf) == NULL) {
		fprintf(stderr, "%s: %s (run from the repository root after "
		    "`make build/mock_worker`)\n", want, strerror(errno));
		return 1;
	}
	mock_path = buf;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0) {
		perror("/proc/self/exe");
		return 1;
	}
	self[n] = '\0';
	self_path = self;
	signal(SIGPIPE, SIG_IGN);	/* as arbord: a dead worker's stdin */
	log_setup(LOG_ERROR, LOG_TEXT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
