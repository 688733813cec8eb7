/* Unit tests for supervisor/child.c with real processes: build/mock_worker
 * run as the worker (SPEC 5). Each test spawns a worker and runs the
 * default libev loop until the event it waits for has happened, bounded by
 * a generous deadline (never a fixed sleep), so the tests hold on a loaded
 * machine. Teardown kills and reaps whatever is left.
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
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/msg.h"
#include "proto/xmalloc.h"
#include "supervisor/child.h"
#include "supervisor/config.h"
#include "supervisor/log.h"

#define LOOP		EV_DEFAULT
#define BOUND_S		20.0	/* the most any wait may take */
#define TICK_S		0.01	/* how often waits re-check their condition */
#define NAME		"pool/worker.1"
#define MOCK_PATH	"./build/mock_worker"
#define MAX_REPLIES	16

static char *mock_path;		/* absolute path of mock_worker */

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
	enum child_state state_at_exit;
	int		 status_at_exit;
	bool		 abnormal_at_exit;
	bool		 alive_at_exit;
	pid_t		 pid;		/* the last process spawned */
	ev_tstamp	 exited_at;
	struct reply	 r[MAX_REPLIES];
};

/* ---- events ------------------------------------------------------------ */

static void
on_ready(struct child *c, void *owner)
{
	struct fx *fx = owner;
	assert_ptr_equal(c, fx->c);
	fx->nready++;
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
	fx->exited_at = ev_now(LOOP);
	ev_break(LOOP, EVBREAK_ALL);
}

static const struct child_events events = {
	.ready = on_ready, .idle = on_idle, .exited = on_exited,
};

static void
on_reply(void *arg, json_t *reply, enum msg_code err, const char *why)
{
	struct reply *r = arg;
	r->calls++;
	if (r->calls > 1)
		return;		/* asserted by the test: exactly one call */
	r->reply = json_incref(reply);	/* borrowed: keep our own */
	r->err = err;
	r->why = why ? xstrdup(why) : NULL;
	ev_break(LOOP, EVBREAK_ALL);
}

/* ---- running the loop until something happened ------------------------ */

static bool timed_out;

static void
on_bound(struct ev_loop *loop, ev_timer *w, int revents)
{
	timed_out = true;
	ev_break(loop, EVBREAK_ALL);
}

static void
on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

/* Runs the default loop until done(arg) or bound_s seconds passed;
 * done is checked at least every TICK_S. Returns done(arg). */
static bool
run_until(bool (*done)(void *), void *arg, double bound_s)
{
	ev_timer bound, tick;
	ev_now_update(LOOP);
	ev_timer_init(&bound, on_bound, bound_s, 0.);
	ev_timer_init(&tick, on_tick, TICK_S, TICK_S);
	timed_out = false;
	ev_timer_start(LOOP, &bound);
	ev_timer_start(LOOP, &tick);
	while (!done(arg) && !timed_out)
		ev_run(LOOP, EVRUN_ONCE);
	ev_timer_stop(LOOP, &bound);
	ev_timer_stop(LOOP, &tick);
	return done(arg);
}

static bool
is_ready(void *arg)
{
	struct fx *fx = arg;
	return fx->nready > 0;
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
	pid_t pid = child_pid(fx->c);
	if (pid > 0) {
		fx->nexited = 0;
		child_kill(fx->c, NULL);
		run_until(has_exited, fx, BOUND_S);
	}
	child_free(fx->c);		/* kills it if it is still there */
	if (pid > 0) {
		kill(-pid, SIGKILL);
		run_until(reaped, &pid, BOUND_S);
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
	assert_int_equal(child_spawn(fx->c), 0);
	fx->pid = child_pid(fx->c);
	assert_true(fx->pid > 0);
	assert_true(run_until(is_ready, fx, BOUND_S));
	assert_int_equal(fx->nready, before + 1);
	assert_int_equal(child_state(fx->c), CS_READY);
}

/* Sends command with args (a JSON text, or NULL) into fx->r[k]. */
static void
request(struct fx *fx, int k, const char *command, const char *args,
    int timeout_ms)
{
	json_t *a = args ? json_loads(args, 0, NULL) : NULL;
	assert_true(args == NULL || a != NULL);
	assert_int_equal(child_request(fx->c, command, a, NULL, timeout_ms,
	    on_reply, &fx->r[k]), 0);
}

static void
wait_reply(struct fx *fx, int k)
{
	assert_true(run_until(has_reply, &fx->r[k], BOUND_S));
	assert_int_equal(fx->r[k].calls, 1);
}

static void
wait_exit(struct fx *fx)
{
	assert_true(run_until(has_exited, fx, BOUND_S));
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
	assert_true(run_until(group_gone, &pgid, BOUND_S));
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
	assert_true(run_until(is_ready, fx, BOUND_S));
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
	json_t *args = json_pack("{s:i}", "x", 1);
	assert_int_equal(child_request(fx->c, "echo", args, NULL, 0, on_reply,
	    &fx->r[0]), -1);	/* no process at all; args stolen anyway */
	assert_int_equal(child_spawn(fx->c), 0);
	fx->pid = child_pid(fx->c);
	args = json_pack("{s:i}", "x", 2);
	assert_int_equal(child_request(fx->c, "echo", args, NULL, 0, on_reply,
	    &fx->r[0]), -1);
	assert_true(run_until(is_ready, fx, BOUND_S));
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

/* ---- stopping ------------------------------------------------------------ */

/* A graceful stop: exited follows, with the state still stopping. */
static void
test_stop(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	child_stop(fx->c);
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
	child_stop(fx->c);
	wait_exit(fx);
	assert_int_equal(fx->state_at_exit, CS_STOPPING);
	assert_int_equal(fx->r[0].calls, 1);
	assert_null(fx->r[0].reply);
	assert_int_equal(fx->r[0].err, ERR_WORKER_CRASHED);
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
	ev_tstamp t0 = ev_now(LOOP);
	child_stop(fx->c);
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

/* child_json is the worker NODE of SPEC 6. */
static void
test_json(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	json_t *j = child_json(fx->c);
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
	child_count_restart(fx->c);
	child_set_sessions(fx->c, &bound);
	request(fx, 0, "echo", "{}", 0);
	j = child_json(fx->c);
	assert_string_equal(json_string_value(json_object_get(j, "state")),
	    "busy");
	json_decref(j);
	wait_reply(fx, 0);
	j = child_json(fx->c);
	assert_int_equal(json_integer_value(json_object_get(j, "restarts")), 1);
	assert_int_equal(json_integer_value(json_object_get(j, "session")), 2);
	child_set_sessions(fx->c, NULL);
	st = json_object_get(j, "stats");
	assert_int_equal(json_integer_value(json_object_get(st,
	    "requests_handled")), 1);
	json_decref(j);
}

/* After an exit, the slot can spawn again: same name, a new process. */
static void
test_respawn(void **state)
{
	struct fx *fx = *state;
	spawn_ready(fx);
	pid_t first = fx->pid;
	request(fx, 0, "crash", "{\"code\": 1}", 0);
	wait_exit(fx);
	assert_int_equal(child_request(fx->c, "echo", NULL, NULL, 0, on_reply,
	    &fx->r[1]), -1);
	child_count_restart(fx->c);
	spawn_ready(fx);
	assert_true(fx->pid != first);
	assert_string_equal(child_name(fx->c), NAME);
	assert_int_equal(child_restarts(fx->c), 1);
	request(fx, 2, "echo", "{\"again\": true}", 0);
	wait_reply(fx, 2);
	assert_true(json_is_true(json_object_get(fx->r[2].reply, "success")));
	assert_int_equal(fx->r[1].calls, 0);
}

/* The numbered entries of /proc/<pid>/fd, as a bit set of fds < 64,
 * with *count the number of entries (all of them). */
static uint64_t
open_fds(const char *dir, int *count)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t set = 0;
	*count = 0;
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		int fd = atoi(de->d_name);
		if (fd != dirfd(d)) {
			(*count)++;
			if (fd < 64)
				set |= 1ULL << fd;
		}
	}
	closedir(d);
	return set;
}

/* Workers inherit only their three stdio descriptors, and spawning and
 * reaping leaks no descriptor in the parent. */
static void
test_fds(void **state)
{
	struct fx *fx = *state;
	int n0, n1, n;
	char path[64];
	open_fds("/proc/self/fd", &n0);
	spawn_ready(fx);
	snprintf(path, sizeof path, "/proc/%d/fd", (int)fx->pid);
	uint64_t set = open_fds(path, &n);
	{ char cmd[128]; snprintf(cmd, sizeof cmd, "ls -l /proc/%d/fd >&2; cat /proc/%d/cmdline >&2", (int)fx->pid, (int)fx->pid); system(cmd); }
	assert_int_equal(n, 3);
	assert_true(set == 0x7);
	for (int round = 0; round < 3; round++) {
		fx->nexited = 0;
		fx->r[round].calls = 0;
		request(fx, round, "crash", "{\"code\": 2}", 0);
		wait_exit(fx);
		spawn_ready(fx);
	}
	child_stop(fx->c);
	fx->nexited = 0;
	wait_exit(fx);
	open_fds("/proc/self/fd", &n1);
	assert_int_equal(n1, n0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_spawn_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_before_ready, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ping_worker_id, setup,
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
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frame_too_large, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_init_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_crash_at_start, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_request, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stop_escalates_to_kill,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_killed_with_worker,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_respawn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fds, setup, teardown),
	};
	char buf[PATH_MAX];
	if (realpath(MOCK_PATH, buf) == NULL) {
		fprintf(stderr, "%s: %s (run from the repository root after "
		    "`make build/mock_worker`)\n", MOCK_PATH, strerror(errno));
		return 1;
	}
	mock_path = buf;
	signal(SIGPIPE, SIG_IGN);	/* as arbord: a dead worker's stdin */
	log_setup(LOG_ERROR, LOG_TEXT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
