#include "supervisor/keeper.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/log.h"
#include "supervisor/pidset.h"
#include "supervisor/strays.h"

#define LOOP		EV_DEFAULT_UC
#define RESTART_S	1.0	/* a keeper gone is replaced after this */
#define FINISH_S	2.0	/* keeper_finish waits this long for its exit */
#define KEEPER_FD	3	/* the pipe's read end, in the keeper */
#define KEEPER_NAME	"arbord-keeper"	/* its comm and command line */

/* The pipe carries one int32_t per change: pgid added, -pgid removed.
 * Writes of that size are atomic. */

static bool started;		/* from keeper_start to keeper_finish */
static char **args;		/* main's argv, for retitle */
static struct pidset groups;	/* workers' groups alive, as last told */
static pid_t keeper;		/* its pid; 0 while none runs */
static int wfd = -1;		/* the pipe to it */
static bool failing;		/* the last start failed (logged once) */
static ev_child w_exit;
static ev_timer t_restart;

/* ---- the keeper process ---- */

/* None of arbord's handlers. The signals that stop a service (an init
 * system's SIGTERM to every process of it, a terminal's) are ignored:
 * the end of arbord, which the keeper waits for, follows them. */
static void
keeper_signals(void)
{
	static const int ignored[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT,
	    SIGPIPE };
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	for (size_t i = 0; i < sizeof ignored / sizeof *ignored; i++)
		signal(ignored[i], SIG_IGN);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Reads changes until arbord's end closes the pipe. */
static void
follow(int fd)
{
	int32_t rec[1024];
	size_t have = 0;	/* bytes in rec */
	for (;;) {
		ssize_t n = read(fd, (char *)rec + have, sizeof rec - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		have += (size_t)n;
		size_t k = have / sizeof *rec;
		for (size_t i = 0; i < k; i++)
			if (rec[i] > 0)
				pidset_add(&groups, rec[i]);
			else
				pidset_del(&groups, -rec[i]);
		have -= k * sizeof *rec;
		memmove(rec, rec + k, have);
	}
}

/* A process's command line, as ps and pidof read it, is the memory its
 * argv strings were in: the keeper's copy says what it is, as far as
 * those strings reach (the rest zeroed). */
static void
retitle(void)
{
	if (args == NULL || args[0] == NULL)
		return;
	char *start = args[0], *end = start + strlen(start) + 1;
	for (int i = 1; args[i] != NULL && args[i] == end; i++)
		end += strlen(args[i]) + 1;
	size_t n = (size_t)(end - start);
	memset(start, 0, n);
	memcpy(start, KEEPER_NAME, n - 1 < sizeof KEEPER_NAME - 1 ? n - 1 :
	    sizeof KEEPER_NAME - 1);
}

/* In the forked process, with arbord's memory: groups is arbord's set
 * as it was at the fork. */
static void __attribute__((noreturn))
keeper_main(int rfd, pid_t arbord)
{
	setsid();
	prctl(PR_SET_NAME, KEEPER_NAME);
	retitle();
	keeper_signals();
	if (dup2(rfd, KEEPER_FD) < 0)
		_exit(1);
	syscall(SYS_close_range, KEEPER_FD + 1U, ~0U, 0U);
	follow(KEEPER_FD);
	size_t killed = 0;
	for (size_t i = 0; i < groups.n; i++)
		killed += kill(-groups.v[i], SIGKILL) == 0;
	if (killed > 0)
		log_warn("arbord", "keeper: arbord (pid %d) is gone: killed the "
		    "process groups of %zu %s it left", (int)arbord, killed,
		    log_plural(killed, "worker", "workers"));
	_exit(0);
}

/* ---- arbord's side ---- */

static void
start_timer(void)
{
	ev_timer_set(&t_restart, RESTART_S, 0.);
	ev_timer_start(LOOP, &t_restart);
	ev_unref(LOOP);		/* does not keep the loop alive */
}

static void
cannot(const char *what)
{
	if (!failing)
		log_warn("arbord", "cannot start the keeper (%s: %s): a killed "
		    "arbord leaves what its workers forked running; trying "
		    "again every %.0f s", what, strerror(errno), RESTART_S);
	failing = true;
	start_timer();
}

/* Forks a keeper that knows the groups of now. All signals are blocked
 * across the fork: none of arbord's handlers runs in the keeper. */
static void
spawn_keeper(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		cannot("pipe");
		return;
	}
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid_t arbord = getpid(), pid = fork();
	if (pid == 0)
		keeper_main(p[0], arbord);
	int saved = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		errno = saved;
		cannot("fork");
		return;
	}
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	wfd = p[1];
	keeper = pid;
	strays_track(pid);	/* a child of arbord's, not a stray */
	ev_child_set(&w_exit, pid, 0);
	ev_child_start(LOOP, &w_exit);
	ev_unref(LOOP);
	if (failing)
		log_info("arbord", "keeper started (pid %d)", (int)pid);
	else
		log_debug("arbord", "keeper started (pid %d)", (int)pid);
	failing = false;
}

static void
on_restart(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_ref(loop);		/* the timer stopped itself */
	spawn_keeper();
}

static void
on_keeper_exit(struct ev_loop *loop, ev_child *w, int revents)
{
	int st = w->rstatus;
	ev_ref(loop);
	ev_child_stop(loop, w);
	if (wfd >= 0)
		close(wfd);
	wfd = -1;
	keeper = 0;
	if (WIFSIGNALED(st))
		log_warn("arbord", "keeper (pid %d) killed by signal %d (%s): "
		    "another in %.0f s", (int)w->rpid, WTERMSIG(st),
		    strsignal(WTERMSIG(st)), RESTART_S);
	else
		log_warn("arbord", "keeper (pid %d) exited with status %d: "
		    "another in %.0f s", (int)w->rpid, WEXITSTATUS(st),
		    RESTART_S);
	start_timer();
}

/* One change to the keeper. A keeper that no longer reads (the pipe full)
 * is killed: its replacement is forked knowing every group. */
static void
tell(int32_t rec)
{
	if (wfd < 0)
		return;
	ssize_t n;
	do
		n = write(wfd, &rec, sizeof rec);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof rec)
		return;
	if (n < 0 && errno == EAGAIN) {
		log_warn("arbord", "keeper (pid %d) reads no more: killed",
		    (int)keeper);
		kill(keeper, SIGKILL);
	}
	close(wfd);		/* EPIPE: it is gone; its reap replaces it */
	wfd = -1;
}

void
keeper_add(pid_t pgid)
{
	if (!started)
		return;
	pidset_add(&groups, pgid);
	tell((int32_t)pgid);
}

void
keeper_del(pid_t pgid)
{
	if (started && pidset_del(&groups, pgid))
		tell(-(int32_t)pgid);
}

void
keeper_start(char **argv)
{
	if (started)
		return;
	started = true;
	args = argv;
	ev_child_init(&w_exit, on_keeper_exit, 0, 0);
	ev_init(&t_restart, on_restart);
	spawn_keeper();
}

/* Closing the pipe lets it go: it kills the groups still listed (none,
 * when every worker was reaped) and exits. */
void
keeper_finish(void)
{
	if (!started)
		return;
	started = false;
	if (ev_is_active(&t_restart)) {
		ev_ref(LOOP);
		ev_timer_stop(LOOP, &t_restart);
	}
	if (keeper > 0) {
		ev_ref(LOOP);
		ev_child_stop(LOOP, &w_exit);
		if (wfd >= 0)
			close(wfd);
		wfd = -1;
		double until = ev_time() + FINISH_S;
		while (waitpid(keeper, NULL, WNOHANG) == 0) {
			if (ev_time() > until) {
				kill(keeper, SIGKILL);
				waitpid(keeper, NULL, 0);
				break;
			}
			usleep(1000);
		}
		keeper = 0;
	}
	pidset_clear(&groups);
}
