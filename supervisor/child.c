#include "supervisor/child.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/frame.h"
#include "proto/jraw.h"
#include "proto/xmalloc.h"
#include "supervisor/batch.h"
#include "supervisor/clock.h"
#include "supervisor/keeper.h"
#include "supervisor/lazytimer.h"
#include "supervisor/log.h"
#include "supervisor/strays.h"

#define LOOP		EV_DEFAULT_UC
#define INIT_ID		1
#define STDERR_LINE_MAX	4096
#define STDERR_DRAIN_MAX	(64 * 1024)	/* read from stderr at the exit */
#define EOF_GRACE_S	0.5	/* stdout EOF -> exit status, at most this */
#define SPAWN_GAP_S	0.1	/* failed spawns are reported this far apart */

extern char **environ;

/* One request in flight; slots are indexed by id & mask. */
struct pend {
	json_int_t	 id;
	child_reply_fn	*fn;		/* NULL: free slot */
	void		*arg;
	ev_tstamp	 deadline;	/* 0: none */
	ev_tstamp	 timeout;	/* its timeout_ms, in s (0: none) */
	bool		 internal;	/* a ping or a notice, not a user request */
};

struct child {
	char			*name;
	const struct config	*cfg;
	char *const		*argv;
	const struct child_events *ev;
	void			*owner, *owner_data, *udata;

	enum child_state	 state;
	enum child_health	 health;
	pid_t			 pid;
	int			 status;	/* wait status of the last exit */
	ev_tstamp		 started, exited_at;
	ev_tstamp		 ready_at;	/* 0: the process never got ready */
	unsigned		 restarts;
	bool			 restart_due;	/* the next spawn is a restart */
	const size_t		*sessions;	/* bound sessions, the router's */
	size_t			 frame_max;	/* worker.max_frame_bytes the
						 * process was told at its spawn */
	struct child_stats	 stats;

	int			 fd_in, fd_out, fd_err;
	struct buf		 in, out, err;	/* worker stdout, to stdin, stderr */
	ev_io			 w_out, w_in, w_err;
	struct batch_item	 batch;		/* stdin writes, once per iteration */
	ev_child		 w_child;
	struct lazytimer	 t_deadline;	/* by the earliest request deadline */
	ev_timer		 t_kill;	/* stop escalation to SIGKILL */
	ev_timer		 t_backoff;
	ev_timer		 t_health;

	struct pend		*pend;
	unsigned		 pend_mask, npend, nuser;
	json_int_t		 next_id;
	bool			 failed;	/* protocol failure: killed */
	bool			 deadline_kill;	/* killed for a request's
						 * passed deadline */
	bool			 reaped;	/* exit seen, closing up */
	bool			 spawn_failed;	/* the last spawn made no process */
	enum msg_code		 held_err;	/* what fails the requests still
						 * in flight at the exit */
	const char		*held_why;
	char			 held_msg[128];	/* held_why, when made up */
	const char		*closed_why;	/* a protocol pipe closed: the
						 * failure if it still runs */
};

static void	on_out(struct ev_loop *, ev_io *, int);
static void	on_in(struct ev_loop *, ev_io *, int);
static void	on_err(struct ev_loop *, ev_io *, int);
static void	on_exit_status(struct ev_loop *, ev_child *, int);
static void	on_deadline(struct ev_loop *, ev_timer *, int);
static void	on_kill_timer(struct ev_loop *, ev_timer *, int);
static bool	exited_unseen(const struct child *);
static void	on_backoff(struct ev_loop *, ev_timer *, int);
static void	on_spawn_failed(struct ev_loop *, ev_timer *, int);
static void	on_health(struct ev_loop *, ev_timer *, int);
static void	on_batch(struct batch_item *);

static const char *const state_names[] = {
	[CS_STARTING] = "starting", [CS_READY] = "ready", [CS_BUSY] = "busy",
	[CS_STOPPING] = "stopping", [CS_BACKOFF] = "backoff",
	[CS_STOPPED] = "stopped", [CS_FAILED] = "failed",
};
static const char *const health_names[] = {
	[CH_INITIALIZING] = "initializing", [CH_HEALTHY] = "healthy",
	[CH_UNHEALTHY] = "unhealthy",
};

const char *
child_state_name(enum child_state s)
{
	return state_names[s];
}

const char *
child_health_name(enum child_health h)
{
	return health_names[h];
}

#define PEND_MIN	4	/* a pool worker: its request, a ping, a notice */

/* Doubles the pending table until every request in flight has its own
 * slot (ids are unique, but two may share id & mask). */
static void
pend_grow(struct child *c)
{
	struct pend *old = c->pend;
	unsigned ocap = old ? c->pend_mask + 1 : 0;
	unsigned cap = ocap ? 2 * ocap : PEND_MIN;
again:
	c->pend = xcalloc(cap, sizeof *c->pend);
	c->pend_mask = cap - 1;
	for (unsigned i = 0; i < ocap; i++) {
		if (old[i].fn == NULL)
			continue;
		struct pend *p = &c->pend[old[i].id & c->pend_mask];
		if (p->fn) {
			free(c->pend);
			cap *= 2;
			goto again;
		}
		*p = old[i];
	}
	free(old);
}

struct child *
child_new(const char *name, const struct config *cfg, char *const *argv,
    const struct child_events *ev, void *owner)
{
	struct child *c = xcalloc(1, sizeof *c);
	c->name = xstrdup(name);
	c->cfg = cfg;
	c->argv = argv;
	c->ev = ev;
	c->owner = owner;
	c->state = CS_STOPPED;
	c->fd_in = c->fd_out = c->fd_err = -1;
	ev_init(&c->t_deadline.t, on_deadline);
	ev_init(&c->t_kill, on_kill_timer);
	ev_init(&c->t_backoff, on_backoff);
	ev_init(&c->t_health, on_health);
	c->t_deadline.t.data = c->t_kill.data = c->t_backoff.data =
	    c->t_health.data = c;
	batch_init(&c->batch, on_batch, &c->fd_in, &c->out);
	pend_grow(c);
	return c;
}

/* Health pings every worker.health_interval_ms while the child is ready
 * (none when 0). */
static void
arm_health(struct child *c)
{
	double iv = c->cfg->worker.health_interval_ms / 1000.0;
	ev_timer_stop(LOOP, &c->t_health);
	if (iv > 0) {
		ev_timer_set(&c->t_health, iv, iv);
		ev_timer_start(LOOP, &c->t_health);
	}
}

void
child_reconfigure(struct child *c, const struct config *cfg, char *const *argv)
{
	int was = c->cfg->worker.health_interval_ms;
	c->cfg = cfg;
	c->argv = argv;
	if (cfg->worker.health_interval_ms != was && c->state == CS_READY &&
	    !c->failed && !c->reaped)
		arm_health(c);	/* a running worker gets the new interval */
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Stops every watcher and closes the pipes: the process part is gone. */
static void
teardown(struct child *c)
{
	ev_io_stop(LOOP, &c->w_out);
	ev_io_stop(LOOP, &c->w_in);
	ev_io_stop(LOOP, &c->w_err);
	ev_timer_stop(LOOP, &c->t_deadline.t);
	ev_timer_stop(LOOP, &c->t_kill);
	ev_timer_stop(LOOP, &c->t_health);
	batch_cancel(&c->batch);
	close_fd(&c->fd_in);
	close_fd(&c->fd_out);
	close_fd(&c->fd_err);
	buf_release(&c->in);
	buf_release(&c->out);
	buf_release(&c->err);
}

static void fail_pending(struct child *, enum msg_code, const char *);

void
child_free(struct child *c)
{
	if (c == NULL)
		return;
	if (c->pid > 0) {
		kill(-c->pid, SIGKILL);
		keeper_del(c->pid);
		ev_child_stop(LOOP, &c->w_child);
	}
	c->state = CS_STOPPED;	/* no idle event while failing what it held */
	c->reaped = true;
	fail_pending(c, ERR_WORKER_CRASHED, "worker removed");
	teardown(c);
	ev_timer_stop(LOOP, &c->t_backoff);
	free(c->pend);
	free(c->name);
	free(c);
}

/* ---- spawning ---------------------------------------------------------- */

/* ARBOR_WORKER=<name> and ARBOR_MAX_FRAME_BYTES (worker.max_frame_bytes,
 * which libworker and the Python SDK read), then the configured variables,
 * then environ, each variable once: the first setting of a name wins and
 * the later ones are left out. A duplicate would not do: getenv takes the
 * first, but a shell (a wrapper script, a "/bin/sh -c" command) the last. */
#define OWN_ENV	2

/* True when env[0..n) sets the variable that the entry e ("NAME=...")
 * sets. */
static bool
env_sets(char *const *env, size_t n, const char *e)
{
	size_t len = strcspn(e, "=");
	for (size_t i = 0; i < n; i++)
		if (strncmp(env[i], e, len) == 0 && env[i][len] == '=')
			return true;
	return false;
}

static char **
make_env(const struct child *c)
{
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	for (char **e = c->cfg->worker.env; e && *e; e++)
		k++;
	char **env = xcalloc(OWN_ENV + k + n + 1, sizeof *env);
	env[0] = xasprintf("ARBOR_WORKER=%s", c->name);
	env[1] = xasprintf("ARBOR_MAX_FRAME_BYTES=%zu", c->frame_max);
	size_t i = OWN_ENV;
	for (char **e = c->cfg->worker.env; e && *e; e++)
		if (!env_sets(env, i, *e))
			env[i++] = *e;
	size_t set = i;		/* environ's own names are unique */
	for (size_t j = 0; j < n; j++)
		if (!env_sets(env, set, environ[j]))
			env[i++] = environ[j];
	return env;
}

static void
free_env(char **env)
{
	for (int i = 0; i < OWN_ENV; i++)
		free(env[i]);
	free(env);
}

/* In the forked process: takes the scheduling policy of worker.sched_policy
 * (none to take for inherit). One it cannot take is written on the
 * worker's stderr, which arbord logs, and the worker runs on without. */
static void
set_sched(enum cfg_sched want)
{
	static const int policy[] = {
		[SCHEDP_OTHER] = SCHED_OTHER, [SCHEDP_BATCH] = SCHED_BATCH,
		[SCHEDP_IDLE] = SCHED_IDLE,
	};
	struct sched_param none = { 0 };
	if (want != SCHEDP_INHERIT &&
	    sched_setscheduler(0, policy[want], &none) < 0)
		dprintf(2, "cannot take scheduling policy %s: %s\n",
		    cfg_sched_name(want), strerror(errno));
}

/* In the forked process: become a clean worker, or _exit(127). */
static void __attribute__((noreturn))
exec_worker(const struct child *c, int p_in[2], int p_out[2], int p_err[2],
    char **env, pid_t parent)
{
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(p_in[0], 0) < 0 || dup2(p_out[1], 1) < 0 || dup2(p_err[1], 2) < 0)
		_exit(127);
	set_sched(c->cfg->worker.sched_policy);
	syscall(SYS_close_range, 3U, ~0U, 0U);
	execvpe(c->argv[0], c->argv, env);
	dprintf(2, "cannot exec %s: %s\n", c->argv[0], strerror(errno));
	_exit(127);
}

static int
make_pipes(int p[3][2])
{
	for (int i = 0; i < 3; i++)
		p[i][0] = p[i][1] = -1;
	for (int i = 0; i < 3; i++)
		if (pipe2(p[i], O_CLOEXEC) < 0)
			return -1;
	return 0;
}

static void
close_pipes(int p[3][2])
{
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 2; j++)
			if (p[i][j] >= 0)
				close(p[i][j]);
}

/* vfork: the child borrows our memory until it execs, so a restart costs
 * no copy of arbord's page tables and no copy-on-write faults afterwards.
 * exec_worker only makes system calls (its environment was built here).
 * All signals are blocked across it, so the child starts with nothing
 * pending from our handlers and none of them runs on our stack. */
static pid_t
fork_worker(struct child *c, int p[3][2])
{
	char **env = make_env(c);
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid_t parent = getpid();
	pid_t pid = vfork();
	if (pid == 0)
		exec_worker(c, p[0], p[1], p[2], env, parent);
	int saved = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	free_env(env);
	errno = saved;
	return pid;
}

/* Takes the parent's ends of the pipes and starts watching them. */
static void
attach(struct child *c, int p[3][2])
{
	c->fd_in = p[0][1];
	c->fd_out = p[1][0];
	c->fd_err = p[2][0];
	p[0][1] = p[1][0] = p[2][0] = -1;
	fcntl(c->fd_in, F_SETFL, O_NONBLOCK);
	fcntl(c->fd_out, F_SETFL, O_NONBLOCK);
	fcntl(c->fd_err, F_SETFL, O_NONBLOCK);
	ev_io_init(&c->w_out, on_out, c->fd_out, EV_READ);
	ev_io_init(&c->w_in, on_in, c->fd_in, EV_WRITE);
	ev_io_init(&c->w_err, on_err, c->fd_err, EV_READ);
	c->w_out.data = c->w_in.data = c->w_err.data = c;
	ev_io_start(LOOP, &c->w_out);
	ev_io_start(LOOP, &c->w_err);
}

static child_reply_fn init_reply;
static int send_request_json(struct child *, const char *, json_t *, int,
    child_reply_fn *, void *);

/* No process came of the spawn (what failed: the call): it is reported
 * as the exit of a process that never ran, from the loop, so that the
 * owner applies its restart rules there and not inside its own call. A
 * child_set_down meanwhile drops the report, as it ends a backoff.
 * Reports (of any child) come SPAWN_GAP_S apart, those of failures
 * made meanwhile together with the next: a supervisor that fails on a
 * failed spawn and is restarted at once by its parent (an intensity of
 * 0) would otherwise try again, and fail, at each loop iteration, for as
 * long as its parent's intensity allows. */
static int
spawn_failed(struct child *c, int p[3][2], const char *what)
{
	static ev_tstamp last = -SPAWN_GAP_S;	/* the last report's due time */
	log_error(c->name, "cannot spawn: %s: %s", what, strerror(errno));
	close_pipes(p);
	c->spawn_failed = true;
	c->failed = false;
	c->ready_at = 0;	/* it never ran: child_last_run is 0 */
	c->exited_at = clock_now();
	c->state = CS_BACKOFF;
	ev_tstamp now = c->exited_at, due = now;
	if (last > now)
		due = last;	/* with the report still to come */
	else if (now < last + SPAWN_GAP_S)
		due = last + SPAWN_GAP_S;
	last = due;
	ev_set_cb(&c->t_backoff, on_spawn_failed);
	ev_timer_set(&c->t_backoff, due - now, 0.);
	ev_timer_start(LOOP, &c->t_backoff);
	return -1;
}

int
child_spawn(struct child *c)
{
	int p[3][2];
	ev_timer_stop(LOOP, &c->t_backoff);
	c->deadline_kill = false;	/* a spawn that fails is no replacement */
	if (make_pipes(p) < 0)
		return spawn_failed(c, p, "pipe");
	c->frame_max = (size_t)c->cfg->worker.max_frame_bytes;
	pid_t pid = fork_worker(c, p);
	if (pid < 0)
		return spawn_failed(c, p, "vfork");
	setpgid(pid, pid);	/* both sides set it: no race with kill(-pid) */
	strays_track(pid);
	keeper_add(pid);
	ev_child_init(&c->w_child, on_exit_status, pid, 0);
	c->w_child.data = c;
	ev_child_start(LOOP, &c->w_child);
	attach(c, p);
	close_pipes(p);
	c->pid = pid;
	c->state = CS_STARTING;
	c->health = CH_INITIALIZING;
	c->started = clock_now();
	c->ready_at = 0;
	c->failed = c->reaped = c->spawn_failed = false;
	if (c->restart_due)
		c->restarts++;
	c->restart_due = false;
	c->closed_why = NULL;
	c->held_err = ERR_WORKER_CRASHED;
	c->held_why = "worker exited";
	c->next_id = INIT_ID;
	memset(&c->stats, 0, sizeof c->stats);
	c->stats.last_activity = c->started;
	log_debug(c->name, "spawned pid %d", pid);
	json_t *args = json_pack("{s:b,s:s}", "initialization", 1, "worker_id",
	    c->name);
	send_request_json(c, "ping", args, c->cfg->worker.init_timeout_ms,
	    init_reply, c);
	return 0;
}

/* ---- requests ---------------------------------------------------------- */

/* Re-arms the deadline timer (a lazytimer: moved per request only to an
 * earlier deadline) at the earliest deadline left, when it fires. The scan
 * is bounded by max_inflight. */
static void
arm_deadline(struct child *c)
{
	ev_tstamp first = 0;
	for (unsigned i = 0; i <= c->pend_mask && c->npend; i++) {
		ev_tstamp d = c->pend[i].fn ? c->pend[i].deadline : 0;
		if (d > 0 && (first == 0 || d < first))
			first = d;
	}
	if (first > 0)
		lazytimer_at(&c->t_deadline, first);
	else
		ev_timer_stop(LOOP, &c->t_deadline.t);
}

/* A free slot for the next id (ids are unique among requests in flight). */
static struct pend *
pend_slot(struct child *c)
{
	if (c->npend > c->pend_mask)
		pend_grow(c);
	while (c->pend[c->next_id & c->pend_mask].fn)
		c->next_id++;
	struct pend *p = &c->pend[c->next_id & c->pend_mask];
	p->id = c->next_id++;
	return p;
}

static struct pend *
pend_find(struct child *c, json_int_t id)
{
	struct pend *p = &c->pend[id & c->pend_mask];
	return p->fn && p->id == id ? p : NULL;
}

/* Removes p and calls its callback; the child may be idle afterwards. */
static void
pend_finish(struct child *c, struct pend *p, const struct child_reply *reply,
    enum msg_code err, const char *why)
{
	child_reply_fn *fn = p->fn;
	void *arg = p->arg;
	bool internal = p->internal;
	p->fn = NULL;
	c->npend--;
	if (!internal)
		c->nuser--;
	fn(arg, reply, err, why);
	if (!internal && c->nuser == 0 && c->state == CS_READY && !c->failed &&
	    !c->reaped && c->ev->idle)
		c->ev->idle(c, c->owner);
}

static void
fail_pending(struct child *c, enum msg_code err, const char *why)
{
	for (unsigned i = 0; i <= c->pend_mask && c->npend; i++)
		if (c->pend[i].fn)
			pend_finish(c, &c->pend[i], NULL, err, why);
}

/* A protocol pipe closed (EOF on stdout, a write error on stdin):
 * usually the process is exiting and its status follows; one still
 * there after EOF_GRACE_S broke the protocol. Either way it takes no
 * new request: one written now would only fail with it. A stopping one
 * has its SIGKILL timer running already. */
static void
pipe_closed(struct child *c, const char *why)
{
	if (c->state == CS_STOPPING || ev_is_active(&c->t_kill))
		return;
	c->closed_why = why;
	log_debug(c->name, "%s: no more requests; %.0f ms to exit", why,
	    EOF_GRACE_S * 1000);
	ev_timer_set(&c->t_kill, EOF_GRACE_S, 0.);
	ev_timer_start(LOOP, &c->t_kill);
}

static void
flush_out(struct child *c)
{
	if (buf_write_fd(&c->out, c->fd_in) < 0) {
		buf_release(&c->out);	/* EPIPE: what it held cannot reach it */
		ev_io_stop(LOOP, &c->w_in);
		pipe_closed(c, "stdin closed while running");
		return;
	}
	if (buf_used(&c->out) == 0)
		ev_io_stop(LOOP, &c->w_in);
	else
		ev_io_start(LOOP, &c->w_in);
}

/* The request frame is written straight into the output buffer: args
 * (JSON text) are copied as they are, never parsed. */
static void
put_request(struct buf *out, json_int_t id, const char *command,
    const char *args, size_t args_len, const char *session)
{
	size_t at = frame_open(out);
	jraw_put(out, "{\"id\":");
	jraw_put_int(out, id);
	jraw_put(out, ",\"command\":");
	jraw_put_str(out, command, strlen(command));
	jraw_put(out, ",\"args\":");
	if (args)
		buf_append(out, args, args_len);
	else
		jraw_put(out, "{}");
	if (session) {
		jraw_put(out, ",\"session_id\":");
		jraw_put_str(out, session, strlen(session));
	}
	jraw_put(out, "}");
	frame_close(out, at);
}

#define LIT(s)		(sizeof(s) - 1)
#define ID_DIGITS	LIT("-9223372036854775808")

size_t
child_request_size(size_t command_size, size_t args_len, size_t session_size)
{
	return LIT("{\"id\":") + ID_DIGITS + LIT(",\"command\":") +
	    command_size + LIT(",\"args\":") + (args_len ? args_len : LIT("{}")) +
	    (session_size ? LIT(",\"session_id\":") + session_size : 0) +
	    LIT("}");
}

/* The deadline timeout_ms from now; 0 (none) when timeout_ms <= 0. */
static ev_tstamp
deadline_in(int timeout_ms)
{
	return timeout_ms > 0 ? clock_now() + timeout_ms / 1000.0 : 0;
}

/* The deadline of a request, notice or init ping sent now. One may go to
 * a busy worker (a notice, or a request pipelined in single mode), which
 * answers in order, so its timeout_ms counts from when the requests ahead
 * of it are done: by the latest of their deadlines (one that passes gets
 * the worker killed anyway), so that a short timeout behind a long
 * request does not kill the worker under it, and from their last answer
 * if that comes sooner (rebase_first). None if one of them has none.
 * With nothing ahead (a pool worker, always) there is no scan; health
 * pings (sent only to an idle worker) do not call it. */
static ev_tstamp
deadline_behind(const struct child *c, int timeout_ms)
{
	ev_tstamp start = clock_now();
	unsigned seen = 0;
	for (unsigned i = 0; i <= c->pend_mask && seen < c->npend; i++) {
		const struct pend *p = &c->pend[i];
		if (p->fn == NULL)
			continue;
		seen++;
		if (p->deadline == 0)
			return 0;
		if (p->deadline > start)
			start = p->deadline;
	}
	return timeout_ms > 0 ? start + timeout_ms / 1000.0 : 0;
}

/* The worker has answered done, and with it (it answers in order) the
 * requests sent before the first one still pending: it works on that one
 * from now on, so its timeout_ms counts from now if that is earlier than
 * the deadline it got behind them. Otherwise a short timeout_ms pipelined
 * behind a request answered at once would wait out that request's whole
 * deadline. A request still gets its timeout_ms from when it was sent,
 * however the worker orders its answers. */
static void
rebase_first(struct child *c, const struct pend *done)
{
	struct pend *first = NULL;
	unsigned seen = 0;
	for (unsigned i = 0; i <= c->pend_mask && seen < c->npend; i++) {
		struct pend *p = &c->pend[i];
		if (p->fn == NULL)
			continue;
		seen++;
		if (p != done && (first == NULL || p->id < first->id))
			first = p;
	}
	if (first == NULL || first->deadline == 0)
		return;
	ev_tstamp d = clock_now() + first->timeout;
	if (d < first->deadline) {
		first->deadline = d;
		lazytimer_by(&c->t_deadline, d);
	}
}

/* Queues a request; deadline is absolute (0: none), timeout_ms its
 * allowance once the worker is on it. */
static int
send_request(struct child *c, const char *command, const char *args,
    size_t args_len, const char *session, ev_tstamp deadline, int timeout_ms,
    child_reply_fn *fn, void *arg, bool internal)
{
	struct pend *p = c->fd_in >= 0 ? pend_slot(c) : NULL;
	if (p == NULL)
		return -1;
	put_request(&c->out, p->id, command, args, args_len, session);
	p->fn = fn;
	p->arg = arg;
	p->internal = internal;
	p->deadline = deadline;
	p->timeout = timeout_ms > 0 ? timeout_ms / 1000.0 : 0;
	c->npend++;
	if (!internal)
		c->nuser++;
	if (p->deadline > 0)
		lazytimer_by(&c->t_deadline, p->deadline);
	batch_queue(&c->batch);
	return 0;
}

/* An internal request with args built by jansson (steals args), due
 * timeout_ms after the requests ahead of it. */
static int
send_request_json(struct child *c, const char *command, json_t *args,
    int timeout_ms, child_reply_fn *fn, void *arg)
{
	char *text = msg_text(args);
	json_decref(args);
	int rc = send_request(c, command, text, text ? strlen(text) : 0, NULL,
	    deadline_behind(c, timeout_ms), timeout_ms, fn, arg, true);
	free(text);
	return rc;
}

static void
on_batch(struct batch_item *it)
{
	struct child *c = batch_owner(it, struct child, batch);
	if (c->fd_in >= 0)
		flush_out(c);
}

bool
child_accepts(const struct child *c)
{
	return c->state == CS_READY && !c->failed && !c->reaped &&
	    c->closed_why == NULL;
}

int
child_request(struct child *c, const char *command, const char *args,
    size_t args_len, const char *session, int timeout_ms, child_reply_fn *fn,
    void *arg)
{
	if (!child_accepts(c))
		return -1;
	return send_request(c, command, args, args_len, session,
	    deadline_behind(c, timeout_ms), timeout_ms, fn, arg, false);
}

/* A notice's answer (arg: its command); only its deadline matters. */
static void
notify_reply(void *arg, const struct child_reply *reply, enum msg_code err,
    const char *why)
{
}

int
child_notify(struct child *c, const char *command, json_t *args)
{
	if (c->pid <= 0 || c->failed || c->reaped || c->state == CS_STOPPING) {
		json_decref(args);
		return -1;
	}
	return send_request_json(c, command, args,
	    c->cfg->worker.request_timeout_ms, notify_reply, (void *)command);
}

/* The init ping's answer makes the child ready; anything else kills it. */
static void
init_reply(void *arg, const struct child_reply *reply, enum msg_code err,
    const char *why)
{
	struct child *c = arg;
	if (reply == NULL) {
		if (err == ERR_TIMEOUT)
			log_warn(c->name, "no answer to the init ping within %d ms",
			    c->cfg->worker.init_timeout_ms);
		return;		/* the timeout path kills; a crash is reported */
	}
	if (c->state != CS_STARTING || c->failed)
		return;		/* stopped or killed while starting */
	if (!reply->success) {
		child_kill(c, "init ping answered with an error");
		return;
	}
	c->state = CS_READY;
	c->health = CH_HEALTHY;
	c->ready_at = clock_now();
	log_info(c->name, "ready (pid %d, %.0f ms)", c->pid,
	    (clock_now() - c->started) * 1000);
	arm_health(c);
	c->ev->ready(c, c->owner);
}

/* ---- reading the worker ------------------------------------------------ */

/* A broken protocol stream: the worker is killed and replaced. */
static void
protocol_failure(struct child *c, const char *why)
{
	if (c->failed)
		return;
	log_warn(c->name, "protocol failure: %s", why);
	child_kill(c, why);
	fail_pending(c, ERR_WORKER_CRASHED, why);
}

/* Whether rest bytes of output, beyond a reply to the last request
 * pending (npend: those pending, that one included), are output no
 * request asked for. Only a stopping worker may answer what is not
 * pending (the shutdown frame). */
static bool
stray_output(const struct child *c, size_t rest, unsigned npend)
{
	return rest > 0 && npend == 0 && c->state != CS_STOPPING && !c->failed &&
	    !c->reaped;
}

/* A worker's reply, decoded. The usual {"id":N,"success":true,
 * "result":...} is scanned in place and its result left as text; anything
 * else goes through jansson, and then json and text hold what r borrows. */
struct decoded {
	json_int_t		 id;
	struct child_reply	 r;
	json_t			*json;
	char			*text;
};

static bool
decode_fast(const char *payload, size_t len, struct decoded *d)
{
	struct jraw_member m[8];
	int k = jraw_object(payload, len, m, 8);
	if (k < 0)
		return false;
	const struct jraw_member *id = jraw_get(m, k, "id");
	const struct jraw_member *ok = jraw_get(m, k, "success");
	const struct jraw_member *res = jraw_get(m, k, "result");
	int64_t v;
	if (id == NULL || !jraw_int(id, &v) || ok == NULL ||
	    ok->type != JRAW_TRUE)
		return false;
	d->id = v;
	d->r.success = true;
	d->r.result = res ? res->val : "null";
	d->r.result_len = res ? res->val_len : 4;
	return true;
}

/* NULL, or why the reply breaks the protocol. */
static const char *
decode(const char *payload, size_t len, struct decoded *d)
{
	memset(d, 0, sizeof *d);
	if (decode_fast(payload, len, d))
		return NULL;
	d->json = frame_parse(payload, len, NULL);
	if (d->json == NULL)
		return "invalid JSON";
	if (!msg_int(d->json, "id", &d->id))
		return "reply without id";
	d->r.success = json_is_true(json_object_get(d->json, "success"));
	d->r.error = msg_str(d->json, "error");
	/* the result as the worker wrote it: jansson would write a real
	 * anew (0.7 as 0.69999999999999996) */
	if (json_object_get(d->json, "result") != NULL &&
	    frame_member_text(payload, len, "result", &d->r.result,
	    &d->r.result_len))
		return NULL;
	json_t *res = json_object_get(d->json, "result");
	d->text = res ? msg_text(res) : NULL;
	d->r.result = d->text ? d->text : "null";
	d->r.result_len = strlen(d->r.result);
	return NULL;
}

static void
decoded_free(struct decoded *d)
{
	json_decref(d->json);
	free(d->text);
}

/* The reply in payload; rest bytes of output follow it. Output after
 * the reply to the last request pending kills the worker before that
 * reply is handed on: its callbacks would give the worker more work,
 * which the stray bytes would then fail (or keep waiting). */
static void
handle_reply(struct child *c, const char *payload, size_t len, size_t rest)
{
	struct decoded d;
	const char *bad = decode(payload, len, &d);
	struct pend *p = bad ? NULL : pend_find(c, d.id);
	if (bad == NULL && p == NULL && c->state != CS_STOPPING)
		bad = "reply with an unknown id";	/* (stopping: shutdown's) */
	if (p == NULL) {
		decoded_free(&d);
		if (bad)
			protocol_failure(c, bad);
		return;
	}
	if (stray_output(c, rest, c->npend - 1)) {
		log_warn(c->name, "protocol failure: %s", "output after the "
		    "last reply");
		child_kill(c, "output after the last reply");
	}
	if (!p->internal) {	/* pings and notices are not work done */
		c->stats.last_activity = clock_now();
		c->stats.requests_handled++;
		c->stats.errors += !d.r.success;
	}
	if (c->npend > 1)
		rebase_first(c, p);
	pend_finish(c, p, &d.r, 0, NULL);
	decoded_free(&d);
}

/* Decodes every whole frame buffered from the worker's stdout; what is
 * left with no request pending is output none asked for. */
static void
drain_frames(struct child *c)
{
	const char *payload;
	size_t len;
	while (!c->failed) {
		enum frame_status st = frame_peek(&c->in,
		    c->frame_max, &payload, &len);
		if (st == FRAME_MORE)
			break;
		if (st == FRAME_TOO_LARGE) {
			protocol_failure(c, "frame larger than max_frame_bytes");
			return;
		}
		handle_reply(c, payload, len,
		    buf_used(&c->in) - FRAME_HDR - len);
		if (c->fd_out >= 0)	/* the callback may have torn us down */
			frame_done(&c->in, len);
	}
	if (c->fd_out >= 0 && stray_output(c, buf_used(&c->in), c->npend))
		protocol_failure(c, "output with no request pending");
}

static void
on_out(struct ev_loop *loop, ev_io *w, int revents)
{
	struct child *c = w->data;
	ssize_t n = buf_read_fd(&c->in, c->fd_out);
	if (n > 0)
		drain_frames(c);
	buf_settle(&c->in);
	if (n > 0 || (n < 0 && errno == EAGAIN))
		return;
	ev_io_stop(loop, w);
	pipe_closed(c, "stdout closed while running");
}

static void
on_in(struct ev_loop *loop, ev_io *w, int revents)
{
	flush_out(w->data);
}

/* n, or less so that s[0..n) does not end inside a UTF-8 sequence: a
 * piece of a long line ends before the character it would cut. */
static size_t
utf8_whole(const char *s, size_t n)
{
	for (size_t k = 1; k <= 3 && k <= n; k++) {
		unsigned char b = (unsigned char)s[n - k];
		if ((b & 0xc0) == 0x80)
			continue;	/* a continuation byte: look further back */
		size_t need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
		return need > k ? n - k : n;
	}
	return n;
}

/* Logs each whole line of stderr; an over-long line is logged in pieces,
 * cut between characters. */
static void
log_stderr(struct child *c, bool final)
{
	for (;;) {
		char *head = buf_head(&c->err);
		size_t used = buf_used(&c->err);
		char *nl = memchr(head, '\n', used);
		size_t len = nl ? (size_t)(nl - head) : used;
		if (!nl && !final && used < STDERR_LINE_MAX)
			return;
		if (used == 0)
			return;
		bool cut = len > STDERR_LINE_MAX || (!nl && !final);
		if (len > STDERR_LINE_MAX)
			len = STDERR_LINE_MAX;
		if (cut)
			len = utf8_whole(head, len);
		log_line(c->name, head, len);
		buf_consume(&c->err, nl && len == (size_t)(nl - head) ? len + 1 : len);
	}
}

static void
on_err(struct ev_loop *loop, ev_io *w, int revents)
{
	struct child *c = w->data;
	ssize_t n = buf_read_fd(&c->err, c->fd_err);
	if (n > 0) {
		log_stderr(c, false);
	} else if (n == 0 || errno != EAGAIN) {
		log_stderr(c, true);
		ev_io_stop(loop, w);
	}
	buf_settle(&c->err);
}

/* ---- timers ------------------------------------------------------------ */

/* A health ping's answer. An error reply is the worker saying it is not
 * healthy: like a missed ping, it is killed and restarted as a crash, so
 * no request reaches it and one that keeps failing escalates. */
static void
health_reply(void *arg, const struct child_reply *reply, enum msg_code err,
    const char *why)
{
	struct child *c = arg;
	if (reply == NULL)
		return;		/* on_deadline or the exit deals with it */
	if (c->failed || c->state != CS_READY)
		return;		/* killed, or stopping: its stop goes on */
	if (!reply->success) {
		char why_kill[256];
		snprintf(why_kill, sizeof why_kill,
		    "unhealthy: ping answered with an error (%.180s)",
		    reply->error ? reply->error : "no message");
		c->health = CH_UNHEALTHY;
		child_kill(c, why_kill);	/* logged at warn */
		return;
	}
	c->health = CH_HEALTHY;
	log_debug(c->name, "health ping answered: %s",
	    child_health_name(c->health));
}

/* Why p's passed deadline kills the child, for the log (a static buffer
 * for a notice, which names its command). */
static const char *
deadline_why(const struct pend *p)
{
	static char buf[128];
	if (!p->internal)
		return "request deadline passed";
	if (p->fn == init_reply)
		return "init ping not answered in time";
	if (p->fn == health_reply)
		return "unhealthy: ping not answered in time";
	snprintf(buf, sizeof buf, "%s notice not answered in time",
	    (const char *)p->arg);
	return buf;
}

/* Kills the child when a request is past its deadline (a user request's
 * reason first in the log); else re-arms at the earliest one left. */
static void
on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct child *c = w->data;
	ev_tstamp now = clock_now();
	const char *why = NULL;
	bool user = false;
	for (unsigned i = 0; i <= c->pend_mask; i++) {
		struct pend *p = &c->pend[i];
		if (p->fn && p->deadline > 0 && p->deadline <= now &&
		    (why == NULL || !p->internal)) {
			why = deadline_why(p);
			user = !p->internal;
		}
	}
	if (why == NULL) {
		arm_deadline(c);
		return;
	}
	/* Killed first, so that no new work is handed to it meanwhile. A
	 * stopping one is not judged by its pings or notices: its stop has
	 * its own SIGKILL timer. */
	if (c->pid > 0 && !c->failed && (user || c->state != CS_STOPPING)) {
		c->deadline_kill = user;
		child_kill(c, why);
	}
	for (unsigned i = 0; i <= c->pend_mask; i++) {
		struct pend *p = &c->pend[i];
		if (p->fn && p->deadline > 0 && p->deadline <= now) {
			if (p->internal && c->health == CH_HEALTHY)
				c->health = CH_UNHEALTHY;
			pend_finish(c, p, NULL, ERR_TIMEOUT, "deadline passed");
		}
	}
	if (!c->failed)
		arm_deadline(c);	/* stopping: those left keep theirs */
	/* A killed child's fail when it is reaped. */
}

/* Pings the child when it is idle; a missed deadline kills it. */
static void
on_health(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct child *c = w->data;
	if (c->state != CS_READY || c->npend > 0)
		return;
	log_debug(c->name, "health ping sent");
	send_request(c, "ping", NULL, 0, NULL,
	    deadline_in(c->cfg->worker.health_timeout_ms),
	    c->cfg->worker.health_timeout_ms, health_reply, c, true);
}

/* The stop escalation's SIGKILL, or the end of the grace after EOF. */
static void
on_kill_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct child *c = w->data;
	if (c->state != CS_STOPPING) {
		protocol_failure(c, c->closed_why);
		return;
	}
	if (exited_unseen(c))
		return;		/* stopped in time: its exit is on its way */
	log_warn(c->name, "did not stop within %d ms: SIGKILL",
	    c->cfg->worker.shutdown_timeout_ms);
	kill(-c->pid, SIGKILL);
}

static void
on_backoff(struct ev_loop *loop, ev_timer *w, int revents)
{
	child_spawn(w->data);	/* a failure is reported as an exit */
}

static void
on_spawn_failed(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct child *c = w->data;
	c->ev->exited(c, c->owner);
}

/* ---- stopping and exit --------------------------------------------------- */

/* What a request still in flight at the exit is told when arbord ended
 * the worker on purpose (what: stopped or killed, and why): it did not
 * crash. The code stays worker_crashed, as the reply still did not come. */
static void
hold_why(struct child *c, const char *what, const char *reason)
{
	if (reason == NULL || c->held_err != ERR_WORKER_CRASHED)
		return;
	snprintf(c->held_msg, sizeof c->held_msg,
	    "worker %s (%s) before it answered", what, reason);
	c->held_why = c->held_msg;
}

void
child_stop(struct child *c, const char *reason)
{
	if (c->pid <= 0 || c->state == CS_STOPPING)
		return;
	if (!c->failed)
		hold_why(c, "stopped", reason);
	c->state = CS_STOPPING;
	ev_timer_stop(LOOP, &c->t_health);
	ev_timer_stop(LOOP, &c->t_kill);
	if (!c->failed && c->fd_in >= 0) {
		json_t *req = msg_worker_request(c->next_id++, "shutdown", NULL, NULL);
		frame_put_json(&c->out, req);
		json_decref(req);
		flush_out(c);
	}
	kill(-c->pid, SIGTERM);
	ev_timer_set(&c->t_kill, c->cfg->worker.shutdown_timeout_ms / 1000.0, 0.);
	ev_timer_start(LOOP, &c->t_kill);
}

void
child_shutdown(struct child *c)
{
	if (c->pid > 0 && !c->failed && c->state != CS_STOPPING) {
		c->held_err = ERR_SHUTTING_DOWN;
		c->held_why = "stopped: arbord is shutting down";
	}
	child_stop(c, NULL);
}

void
child_kill(struct child *c, const char *why)
{
	if (c->pid <= 0)
		return;
	if (why)
		log_warn(c->name, "killing pid %d: %s", c->pid, why);
	if (!c->failed)
		hold_why(c, "killed", why);
	c->failed = true;
	ev_io_stop(LOOP, &c->w_out);
	ev_timer_stop(LOOP, &c->t_health);
	kill(-c->pid, SIGKILL);
}

void
child_abandon(struct child *c, enum msg_code code, const char *why)
{
	child_kill(c, NULL);
	fail_pending(c, code, why);
}

void
child_backoff(struct child *c, int ms)
{
	c->state = CS_BACKOFF;
	ev_timer_stop(LOOP, &c->t_backoff);
	ev_set_cb(&c->t_backoff, on_backoff);
	ev_timer_set(&c->t_backoff, ms / 1000.0, 0.);
	ev_timer_start(LOOP, &c->t_backoff);
}

void
child_set_down(struct child *c, enum child_state s)
{
	ev_timer_stop(LOOP, &c->t_backoff);
	c->restart_due = false;	/* a restart not made is not counted */
	if (c->pid <= 0)
		c->state = s;
}

static void
log_exit(struct child *c)
{
	int st = c->status;
	if (WIFEXITED(st))
		log_msg(WEXITSTATUS(st) || c->state != CS_STOPPING ? LOG_WARN : LOG_INFO,
		    c->name, "pid %d exited with status %d", c->pid, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		log_msg(c->state == CS_STOPPING ? LOG_INFO : LOG_WARN, c->name,
		    "pid %d killed by signal %d (%s)", c->pid, WTERMSIG(st),
		    strsignal(WTERMSIG(st)));
}

/* Reads what the worker wrote before it exited, up to EOF (bounded: a
 * grandchild might hold the pipe open and keep writing). */
static void
drain_stdout(struct child *c)
{
	size_t total = 0, max = 2 * c->frame_max;
	ssize_t n;
	while (!c->failed && c->fd_out >= 0 && total < max &&
	    (n = buf_read_fd(&c->in, c->fd_out)) > 0) {
		total += (size_t)n;
		drain_frames(c);
	}
	buf_settle(&c->in);
}

/* Logs what is left in the worker's stderr pipe, up to EOF or EAGAIN
 * (bounded, as drain_stdout), the last line even without a newline: the
 * exit status can arrive before the pipe is readable in the loop. */
static void
drain_stderr(struct child *c)
{
	size_t total = 0;
	ssize_t n;
	while (c->fd_err >= 0 && total < STDERR_DRAIN_MAX &&
	    (n = buf_read_fd(&c->err, c->fd_err)) > 0) {
		total += (size_t)n;
		log_stderr(c, false);
	}
	log_stderr(c, true);
	buf_settle(&c->err);
}

/* The process is reaped: read what it left, close up, fail what it held,
 * and take down anything it left in its process group. */
static void
on_exit_status(struct ev_loop *loop, ev_child *w, int revents)
{
	struct child *c = w->data;
	ev_child_stop(loop, w);
	c->status = w->rstatus;
	c->reaped = true;
	c->exited_at = clock_now();
	drain_stderr(c);	/* its last words before the exit's line */
	log_exit(c);
	drain_stdout(c);
	kill(-c->pid, SIGKILL);
	keeper_del(c->pid);
	teardown(c);
	c->pid = 0;
	fail_pending(c, c->held_err, c->held_why);
	if (c->health != CH_UNHEALTHY)	/* the verdict stands until a new */
		c->health = CH_INITIALIZING;	/* process answers its init */
	c->ev->exited(c, c->owner);
}

/* ---- accessors ----------------------------------------------------------- */

const char *child_name(const struct child *c) { return c->name; }
pid_t child_pid(const struct child *c) { return c->pid; }
bool child_alive(const struct child *c) { return c->pid > 0; }
bool child_spawn_failed(const struct child *c) { return c->spawn_failed; }
int child_exit_status(const struct child *c) { return c->status; }
unsigned child_inflight(const struct child *c) { return c->nuser; }
unsigned child_restarts(const struct child *c) { return c->restarts; }
void child_mark_restart(struct child *c) { c->restart_due = true; }
struct child_stats *child_stats(struct child *c) { return &c->stats; }

bool
child_recycle_due(const struct child *c)
{
	const struct config *cfg = c->cfg;
	if (cfg->worker.max_requests > 0 && c->stats.requests_handled >=
	    (unsigned long)cfg->worker.max_requests) {
		unsigned long n = c->stats.requests_handled;
		log_info(c->name, "recycling after %lu %s", n,
		    log_plural(n, "request", "requests"));
		return true;
	}
	if (c->stats.errors > (unsigned long)cfg->worker.max_errors) {
		unsigned long n = c->stats.errors;
		log_warn(c->name, "replacing after %lu error %s", n,
		    log_plural(n, "reply", "replies"));
		return true;
	}
	return false;
}
void child_set_sessions(struct child *c, const size_t *n) { c->sessions = n; }
void *child_owner_data(const struct child *c) { return c->owner_data; }
void child_set_owner_data(struct child *c, void *d) { c->owner_data = d; }
void *child_udata(const struct child *c) { return c->udata; }
void child_set_udata(struct child *c, void *d) { c->udata = d; }

/* A child killed (child_kill: a missed deadline, a protocol failure) is
 * stopping until its exit is reaped: it takes no request meanwhile. */
enum child_state
child_state(const struct child *c)
{
	if (c->failed && c->pid > 0)
		return CS_STOPPING;
	if (c->state == CS_READY && c->nuser > 0)
		return CS_BUSY;
	return c->state;
}

/* Whether c's process has exited, its exit not yet seen by on_exit: an
 * exit not reaped yet is peeked at (WNOWAIT leaves it to the child
 * watcher); ECHILD: the loop has reaped it, its watcher not yet run. */
static bool
exited_unseen(const struct child *c)
{
	siginfo_t si = { .si_pid = 0 };
	if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == ECHILD;
	return si.si_pid == c->pid;
}

bool
child_crashing(const struct child *c)
{
	if (c->pid <= 0)
		return false;
	return c->failed || c->closed_why || exited_unseen(c);
}

/* Only the SIGKILL sent for the deadline: a worker that exited on its
 * own before it came crashed. */
bool
child_exit_planned(const struct child *c)
{
	return c->deadline_kill && WIFSIGNALED(c->status) &&
	    WTERMSIG(c->status) == SIGKILL;
}

bool
child_exit_abnormal(const struct child *c)
{
	return c->failed || c->spawn_failed || !WIFEXITED(c->status) ||
	    WEXITSTATUS(c->status) != 0;
}

double
child_uptime(const struct child *c)
{
	return c->pid > 0 ? clock_now() - c->started : 0;
}

/* Counted from ready, not from the spawn: a process that never answered
 * its init ping has not run, however long its init took. */
double
child_last_run(const struct child *c)
{
	return c->ready_at > 0 ? c->exited_at - c->ready_at : 0;
}

void *
child_owner(const struct child *c)
{
	return c->owner;
}

/* Written as text: a status of 1,024 workers built as jansson values took
 * about 20 ms of the loop. The state and health names need no escape. */
void
child_put_node(const struct child *c, struct buf *out)
{
	const struct child_stats *s = &c->stats;
	int64_t up = (int64_t)(child_uptime(c) * 1000);
	int64_t idle = c->pid > 0 ?
	    (int64_t)((clock_now() - s->last_activity) * 1000) : 0;
	jraw_put(out, "{\"name\":");
	jraw_put_str(out, c->name, strlen(c->name));
	jraw_put(out, ",\"kind\":\"worker\",\"state\":\"");
	jraw_put(out, child_state_name(child_state(c)));
	jraw_put(out, "\",\"restarts\":");
	jraw_put_int(out, c->restarts);
	jraw_put(out, ",\"uptime_ms\":");
	jraw_put_int(out, up);
	jraw_put(out, ",\"children\":[],\"pid\":");
	jraw_put_int(out, c->pid);
	jraw_put(out, ",\"health\":\"");
	jraw_put(out, child_health_name(c->health));
	jraw_put(out, "\",\"session\":");
	jraw_put_int(out, c->sessions ? (int64_t)*c->sessions : 0);
	jraw_put(out, ",\"stats\":{\"requests_handled\":");
	jraw_put_int(out, (int64_t)s->requests_handled);
	jraw_put(out, ",\"errors\":");
	jraw_put_int(out, (int64_t)s->errors);
	jraw_put(out, ",\"sessions_served\":");
	jraw_put_int(out, (int64_t)s->sessions_served);
	jraw_put(out, ",\"checkouts\":");
	jraw_put_int(out, (int64_t)s->checkouts);
	jraw_put(out, ",\"uptime_ms\":");
	jraw_put_int(out, up);
	jraw_put(out, ",\"last_activity_ms\":");
	jraw_put_int(out, idle);
	jraw_put(out, "}}");
}
