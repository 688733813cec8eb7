#include "tools/bench/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/xmalloc.h"
#include "tools/bench/bench.h"

#define TERM_WAIT_MS	15000	/* a daemon's graceful stop, at cleanup */

struct tracked {
	pid_t	pid;
	bool	daemon;
};

static struct tracked	*tr;
static size_t		 ntr, captr;
static volatile sig_atomic_t interrupted;
static pid_t		 main_pid;	/* exit handlers run only here */

/* Blocks (or unblocks) the stop signals around changes of the table, which
 * the signal handler reads. */
static void
guard(bool on)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGHUP);
	sigprocmask(on ? SIG_BLOCK : SIG_UNBLOCK, &s, NULL);
}

static void
track(pid_t pid, bool daemon)
{
	guard(true);
	if (ntr == captr) {
		captr = captr ? captr * 2 : 64;
		tr = xrealloc(tr, captr * sizeof *tr);
	}
	tr[ntr].pid = pid;
	tr[ntr].daemon = daemon;
	ntr++;
	guard(false);
}

static void
untrack(pid_t pid)
{
	guard(true);
	for (size_t i = 0; i < ntr; i++)
		if (tr[i].pid == pid) {
			tr[i] = tr[--ntr];
			break;
		}
	guard(false);
}

/* Async-signal-safe: asks every tracked process to go; the main code then
 * sees its peers vanish and dies through the ordinary path. */
static void
on_signal(int sig)
{
	interrupted = sig;
	for (size_t i = 0; i < ntr; i++)
		kill(tr[i].pid, tr[i].daemon ? SIGTERM : SIGKILL);
}

static void
at_exit(void)
{
	if (getpid() == main_pid)
		proc_cleanup();
}

void
proc_init(void)
{
	struct sigaction sa;
	main_pid = getpid();
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atexit(at_exit);
}

long
proc_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		getrlimit(RLIMIT_NOFILE, &rl);
	return (long)rl.rlim_cur;
}

/* In the forked process: stdio in place, clean signals, then exec. */
static void __attribute__((noreturn))
child_exec(char *const argv[], int in, int out, int err, int deathsig,
    pid_t parent)
{
	int null = open("/dev/null", O_RDWR);
	int want[3] = { in, out, err };
	for (int i = 0; i < 3; i++)
		if (dup2(want[i] >= 0 ? want[i] : null, i) < 0)
			_exit(127);
	prctl(PR_SET_PDEATHSIG, deathsig);
	if (getppid() != parent)
		_exit(127);	/* the parent died before prctl */
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execvp(argv[0], argv);
	_exit(127);
}

pid_t
proc_spawn(char *const argv[], int in, int out, int err, bool daemon)
{
	pid_t parent = getpid();
	guard(true);
	pid_t pid = fork();
	if (pid == 0)
		child_exec(argv, in, out, err, daemon ? SIGTERM : SIGKILL, parent);
	guard(false);
	if (pid < 0)
		die("fork: %s", strerror(errno));
	track(pid, daemon);
	return pid;
}

pid_t
proc_fork(void)
{
	pid_t parent = getpid();
	guard(true);
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		ntr = 0;
	}
	guard(false);
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid > 0)
		track(pid, false);
	return pid;
}

int
proc_wait(pid_t pid, int timeout_ms)
{
	int st;
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		pid_t r = waitpid(pid, &st, timeout_ms < 0 ? 0 : WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD)) {
			untrack(pid);
			return r == pid ? st : 0;
		}
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_ns() >= end)
			return -1;
		usleep(1000);
	}
}

void
proc_kill_wait(pid_t pid)
{
	kill(pid, SIGKILL);
	proc_wait(pid, -1);
}

int
proc_term_wait(pid_t pid, int timeout_ms)
{
	kill(pid, SIGTERM);
	int st = proc_wait(pid, timeout_ms);
	if (st >= 0)
		return st;
	note("pid %d ignored SIGTERM for %d ms: SIGKILL", (int)pid, timeout_ms);
	kill(pid, SIGKILL);
	return proc_wait(pid, -1);
}

void
proc_cleanup(void)
{
	guard(true);
	for (size_t i = 0; i < ntr; i++)
		kill(tr[i].pid, tr[i].daemon ? SIGTERM : SIGKILL);
	guard(false);
	while (ntr > 0) {
		struct tracked t = tr[ntr - 1];
		if (proc_wait(t.pid, t.daemon ? TERM_WAIT_MS : -1) < 0) {
			kill(t.pid, SIGKILL);
			proc_wait(t.pid, -1);
		}
	}
}

bool
proc_interrupted(void)
{
	return interrupted != 0;
}

double
proc_cpu_s(pid_t pid)
{
	char path[64], line[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(line, 1, sizeof line - 1, f);
	fclose(f);
	line[n] = '\0';
	/* Fields after the command name, which may hold spaces: from ") ". */
	char *p = strrchr(line, ')');
	unsigned long ut, st;
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	    "%*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

long
proc_rss_kib(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	long kib = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

double
proc_self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int
proc_capture(char *const argv[], char *out, size_t n)
{
	int p[2];
	if (n == 0 || pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = proc_spawn(argv, -1, p[1], -1, false);
	close(p[1]);
	size_t got = 0;
	ssize_t r;
	while (got < n - 1 && (r = read(p[0], out + got, n - 1 - got)) > 0)
		got += (size_t)r;
	close(p[0]);
	out[got] = '\0';
	int st = proc_wait(pid, -1);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}
