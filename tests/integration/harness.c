/* harness: a real arbord per test, its control socket, its processes. */
#include "tests/integration/harness.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/xmalloc.h"

#define POLL_MS		25		/* interval of every polling loop */
#define RUN_MS		30000		/* bound on a program run by arb_run */
#define REPLY_MAX	(64u << 20)	/* largest reply frame accepted */
#define LOG_TAIL	32768		/* bytes of the log printed on failure */
#define MAX_ARGS	32

/* A worker process seen alive; starttime tells a reused pid apart. */
struct seen {
	pid_t	pid;
	unsigned long long start;
};

struct arb {
	char	*dir, *conf, *sock, *log;
	pid_t	 pid;		/* arbord; 0 until spawned */
	bool	 reaped;	/* its exit status is in wstatus */
	int	 wstatus;
	bool	 signalled;	/* some arbord of it died of a signal: its
				 * keeper outlives it for a moment */
	json_int_t next_id;
	struct seen *seen;
	size_t	 nseen, seencap;
	struct arb *next;	/* list of arbs not yet freed */
};

struct arb_conn {
	int	fd;
	bool	eof;
	struct buf in;
};

static struct arb *live;

static void cleanup_all(void);

/* ARBOR_TEST_FILTER=PATTERN runs only the tests whose names match it
 * (cmocka's wildcards, `*` and `?`): set before main runs the group. */
__attribute__((constructor)) static void
set_test_filter(void)
{
	const char *f = getenv("ARBOR_TEST_FILTER");
	if (f != NULL && *f != '\0')
		cmocka_set_test_filter(f);
}

/* ---- time ---- */

long long
arb_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void
arb_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- /proc ---- */

/* Reads state, ppid and starttime from /proc/<pid>/stat; -1 if gone. */
static int
proc_stat(pid_t pid, char *state, pid_t *ppid, unsigned long long *start)
{
	char path[64], line[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return -1;
	size_t n = fread(line, 1, sizeof line - 1, f);
	fclose(f);
	line[n] = '\0';
	char *p = strrchr(line, ')');	/* comm may hold spaces and parens */
	int pp;
	if (p == NULL || sscanf(p + 1, " %c %d %*d %*d %*d %*d %*u %*u %*u %*u"
	    " %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", state, &pp, start) != 3)
		return -1;
	*ppid = pp;
	return 0;
}

bool
proc_exists(pid_t pid)
{
	char st;
	pid_t pp;
	unsigned long long t;
	return pid > 0 && proc_stat(pid, &st, &pp, &t) == 0;
}

bool
proc_is_zombie(pid_t pid)
{
	char st;
	pid_t pp;
	unsigned long long t;
	return pid > 0 && proc_stat(pid, &st, &pp, &t) == 0 && st == 'Z';
}

bool
proc_is_stopped(pid_t pid)
{
	char st;
	pid_t pp;
	unsigned long long t;
	return pid > 0 && proc_stat(pid, &st, &pp, &t) == 0 && st == 'T';
}

pid_t
proc_ppid(pid_t pid)
{
	char st;
	pid_t pp;
	unsigned long long t;
	return pid > 0 && proc_stat(pid, &st, &pp, &t) == 0 ? pp : -1;
}

size_t
proc_children(pid_t ppid, pid_t *out, size_t max)
{
	DIR *d = opendir("/proc");
	if (d == NULL)
		return 0;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		pid_t pid = (pid_t)atoi(e->d_name);
		if (proc_ppid(pid) != ppid)
			continue;
		if (out != NULL && n < max)
			out[n] = pid;
		n++;
	}
	closedir(d);
	return n;
}

size_t
arb_children(const struct arb *a, pid_t *out, size_t max)
{
	pid_t kids[4096];
	size_t n = proc_children(a->pid, kids, 4096), k = 0;
	for (size_t i = 0; i < n && i < 4096; i++) {
		char comm[32];
		proc_comm(kids[i], comm, sizeof comm);
		if (strcmp(comm, ARB_KEEPER) == 0)
			continue;
		if (out != NULL && k < max)
			out[k] = kids[i];
		k++;
	}
	return k;
}

size_t
proc_fd_count(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	size_t n = 0;
	if (d == NULL)
		return 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

long
proc_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Whether pid catches sig (SigCgt in /proc/<pid>/status). */
static bool
proc_sig_caught(pid_t pid, int sig)
{
	char path[64], line[256];
	unsigned long long mask = 0;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return false;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "SigCgt: %llx", &mask) == 1)
			break;
	fclose(f);
	return (mask >> (sig - 1)) & 1;
}

bool
proc_wait_sig_caught(pid_t pid, int sig, int timeout_ms)
{
	long long end = arb_now_ms() + timeout_ms;
	while (!proc_sig_caught(pid, sig)) {
		if (arb_now_ms() >= end || !proc_exists(pid))
			return false;
		arb_sleep_ms(POLL_MS);
	}
	return true;
}

bool
proc_wait_gone(pid_t pid, int timeout_ms)
{
	long long end = arb_now_ms() + timeout_ms;
	while (proc_exists(pid)) {
		if (arb_now_ms() >= end)
			return false;
		arb_sleep_ms(POLL_MS);
	}
	return true;
}

bool
proc_wait_dead(pid_t pid, int timeout_ms)
{
	long long end = arb_now_ms() + timeout_ms;
	while (proc_exists(pid)) {
		if (proc_ppid(pid) == getpid())
			waitpid(pid, NULL, WNOHANG);
		if (!proc_exists(pid))
			break;
		if (arb_now_ms() >= end)
			return false;
		arb_sleep_ms(POLL_MS);
	}
	return true;
}

void
proc_comm(pid_t pid, char *out, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "re");
	out[0] = '\0';
	if (f != NULL) {
		if (fgets(out, (int)len, f) != NULL)
			out[strcspn(out, "\n")] = '\0';
		fclose(f);
	}
}

/* ---- the processes of a tree ---- */

/* Remembers pid as a process of the tree (once per incarnation). */
static void
seen_add(struct arb *a, pid_t pid)
{
	char st;
	pid_t pp;
	unsigned long long start;
	if (pid <= 0 || pid == a->pid || proc_stat(pid, &st, &pp, &start) < 0)
		return;
	for (size_t i = 0; i < a->nseen; i++)
		if (a->seen[i].pid == pid && a->seen[i].start == start)
			return;
	if (a->nseen == a->seencap) {
		a->seencap = a->seencap ? 2 * a->seencap : 32;
		a->seen = xrealloc(a->seen, a->seencap * sizeof *a->seen);
	}
	a->seen[a->nseen++] = (struct seen){ pid, start };
}

/* Records every worker pid of a status tree. */
static void
seen_tree(struct arb *a, const json_t *node)
{
	seen_add(a, (pid_t)arb_node_pid(node));
	size_t i;
	json_t *kid;
	json_array_foreach(json_object_get(node, "children"), i, kid)
		seen_tree(a, kid);
}

/* Records arbord's current children (workers not yet in any status). */
static void
seen_children(struct arb *a)
{
	pid_t kids[512];
	if (a->pid <= 0 || a->reaped)
		return;
	size_t n = arb_children(a, kids, 512);
	for (size_t i = 0; i < n && i < 512; i++)
		seen_add(a, kids[i]);
}

/* True if the recorded incarnation still exists. */
static bool
seen_alive(const struct seen *s)
{
	char st;
	pid_t pp;
	unsigned long long start;
	return proc_stat(s->pid, &st, &pp, &start) == 0 && start == s->start;
}

/* True if pid is the arbord of some arb not yet reaped. */
static bool
is_live_arbord(pid_t pid)
{
	for (struct arb *a = live; a != NULL; a = a->next)
		if (a->pid == pid && !a->reaped)
			return true;
	return false;
}

/* Kills what the tree left behind: our own children other than a running
 * arbord (orphans handed to us as subreaper; the keeper of an arbord of
 * a's that a signal killed is one until it has done its work: any other
 * is a leftover, as arbord reaps its keeper before it exits), then seen
 * workers still alive elsewhere. Describes each into report (may be
 * NULL). */
static void
kill_leftovers(struct arb *a, FILE *report)
{
	pid_t kids[256];
	size_t n = proc_children(getpid(), kids, 256);
	for (size_t i = 0; i < n && i < 256; i++) {
		char comm[64];
		if (is_live_arbord(kids[i]))
			continue;
		proc_comm(kids[i], comm, sizeof comm);
		if (a->signalled && strcmp(comm, ARB_KEEPER) == 0 &&
		    proc_wait_dead(kids[i], ARB_EVENT_MS))
			continue;	/* a killed arbord's: it ends by itself */
		if (report != NULL)
			fprintf(report, "process %d (%s%s) was left behind by "
			    "arbord\n", (int)kids[i], comm,
			    proc_is_zombie(kids[i]) ? ", zombie" : "");
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
	for (size_t i = 0; i < a->nseen; i++) {
		const struct seen *s = &a->seen[i];
		if (!seen_alive(s))
			continue;
		if (report != NULL)
			fprintf(report, "worker pid %d still exists after "
			    "arbord's exit (%s, ppid %d)\n", (int)s->pid,
			    proc_is_zombie(s->pid) ? "zombie" : "alive",
			    (int)proc_ppid(s->pid));
		kill(s->pid, SIGKILL);
	}
}

/* ---- spawning ---- */

/* What a spawned child gets: its argv, environment additions and stdio. */
struct spawn {
	const char *const *argv;
	const char *const *env;
	int	out, err;	/* fds for stdout and stderr */
	bool	own_group;
};

/* In the child: a clean signal state, stdio, environment; then exec. */
static void __attribute__((noreturn))
spawn_child(const struct spawn *sp, pid_t parent)
{
	static const int sigs[] = { SIGPIPE, SIGCHLD, SIGTERM, SIGINT, SIGHUP };
	if (sp->own_group)
		setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);	/* never outlive the test */
	if (getppid() != parent)
		_exit(127);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		signal(sigs[i], SIG_DFL);
	int null = open("/dev/null", O_RDONLY);
	if (null < 0 || dup2(null, 0) < 0 || dup2(sp->out, 1) < 0 ||
	    dup2(sp->err, 2) < 0)
		_exit(127);
	static const char *const strip[] = { "ARBOR_ENV", "ARBOR_CONF",
	    "ARBOR_SOCKET", "TEST_MODE" };
	for (size_t i = 0; i < sizeof strip / sizeof strip[0]; i++)
		unsetenv(strip[i]);
	for (size_t i = 0; sp->env != NULL && sp->env[i] != NULL; i++)
		putenv((char *)sp->env[i]);
	execv(sp->argv[0], (char *const *)sp->argv);
	fprintf(stderr, "exec %s: %s\n", sp->argv[0], strerror(errno));
	_exit(127);
}

/* Forks and execs sp; the pid, or -1. */
static pid_t
spawn(const struct spawn *sp)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0)
		spawn_child(sp, parent);
	if (pid > 0 && sp->own_group)
		setpgid(pid, pid);	/* in both: no race with a group kill */
	return pid;
}

/* A waitpid status as a shell would show it. */
static int
exit_code(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return -1;
}

char *
arb_bin_path(const char *name)
{
	const char *dir = getenv("ARBOR_BUILD");
	return xasprintf("%s/%s", dir != NULL && *dir ? dir : "build", name);
}

/* ---- arb_run ---- */

/* Copies a captured stream out as a C string. */
static void
copy_out(char *dst, size_t len, const struct buf *b)
{
	if (dst == NULL || len == 0)
		return;
	size_t n = buf_used(b) < len - 1 ? buf_used(b) : len - 1;
	memcpy(dst, buf_head(b), n);
	dst[n] = '\0';
}

/* Reads fds[0..1] into bufs until both reach EOF; false on timeout. */
static bool
drain(int fds[2], struct buf bufs[2], long long end)
{
	int open_fds = 2;
	while (open_fds > 0) {
		struct pollfd p[2] = { { fds[0], POLLIN, 0 }, { fds[1], POLLIN, 0 } };
		long long left = end - arb_now_ms();
		if (left <= 0)
			return false;
		if (poll(p, 2, (int)left) < 0 && errno != EINTR)
			return false;
		for (int i = 0; i < 2; i++) {
			if (fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			if (buf_read_fd(&bufs[i], fds[i]) <= 0) {
				close(fds[i]);
				fds[i] = -1;
				open_fds--;
			}
		}
	}
	return true;
}

int
arb_run(const char *const argv[], const char *const *extra_env, char *out,
    size_t outlen, char *err, size_t errlen)
{
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(pe, O_CLOEXEC) < 0) {
		close(po[0]), close(po[1]);
		return -1;
	}
	struct spawn sp = { argv, extra_env, po[1], pe[1], false };
	pid_t pid = spawn(&sp);
	close(po[1]);
	close(pe[1]);
	int fds[2] = { po[0], pe[0] };
	struct buf bufs[2];
	buf_init(&bufs[0]);
	buf_init(&bufs[1]);
	if (pid > 0 && !drain(fds, bufs, arb_now_ms() + RUN_MS)) {
		fprintf(stderr, "%s: still running after %d ms, killed\n",
		    argv[0], RUN_MS);
		kill(pid, SIGKILL);
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	int st = 0;
	if (pid > 0)
		waitpid(pid, &st, 0);
	copy_out(out, outlen, &bufs[0]);
	if (err != NULL)
		copy_out(err, errlen, &bufs[1]);
	else if (buf_used(&bufs[1]) > 0)
		fprintf(stderr, "%.*s", (int)buf_used(&bufs[1]), buf_head(&bufs[1]));
	buf_release(&bufs[0]);
	buf_release(&bufs[1]);
	return pid > 0 ? exit_code(st) : -1;
}

int
arb_ctl(struct arb *a, char *out, size_t outlen, ...)
{
	const char *argv[MAX_ARGS];
	size_t n = 0;
	char *bin = arb_bin_path("arborctl");
	argv[n++] = bin;
	argv[n++] = "-s";
	argv[n++] = a->sock;
	va_list ap;
	va_start(ap, outlen);
	const char *s;
	while ((s = va_arg(ap, const char *)) != NULL && n < MAX_ARGS - 1)
		argv[n++] = s;
	va_end(ap);
	argv[n] = NULL;
	char err[4096] = "";
	int code = arb_run(argv, NULL, out, outlen, err, sizeof err);
	if (err[0] != '\0')	/* its first line, for the test's output */
		fprintf(stderr, "arborctl (exit %d): %.*s\n", code,
		    (int)strcspn(err, "\n"), err);
	free(bin);
	return code;
}

/* ---- lifecycle ---- */

/* Once per process: orphans come to us; leftovers die at exit. */
static void
harness_init(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		fprintf(stderr, "harness: PR_SET_CHILD_SUBREAPER: %s\n",
		    strerror(errno));
	atexit(cleanup_all);
}

/* A fresh temp dir, short enough for a socket path inside it. */
static char *
make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	if (base == NULL || *base == '\0' || strlen(base) > 60)
		base = "/tmp";
	char *dir = xasprintf("%s/arbor-it.XXXXXX", base);
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "mkdtemp %s: %s\n", dir, strerror(errno));
		free(dir);
		fail_msg("cannot make a temp dir");
	}
	return dir;
}

/* Writes the config file, adding the control socket when the body has no
 * control group. */
static void
write_config(const char *path, const char *body)
{
	FILE *f = fopen(path, "we");
	if (f == NULL)
		fail_msg("cannot write %s: %s", path, strerror(errno));
	fputs(body, f);
	if (strstr(body, "control") == NULL)
		fputs("\ncontrol = { socket = \"arbor.sock\"; };\n", f);
	if (fclose(f) != 0)
		fail_msg("cannot write %s: %s", path, strerror(errno));
}

void
arb_rewrite_config(struct arb *a, const char *config_body)
{
	char *tmp = xasprintf("%s.new", a->conf);
	write_config(tmp, config_body);
	if (rename(tmp, a->conf) != 0)
		fail_msg("cannot rename %s: %s", tmp, strerror(errno));
	free(tmp);
}

struct arb *
arb_new(const char *config_body)
{
	harness_init();
	struct arb *a = xcalloc(1, sizeof *a);
	a->dir = make_tmpdir();
	a->conf = xasprintf("%s/arbor.conf", a->dir);
	a->sock = xasprintf("%s/arbor.sock", a->dir);
	a->log = xasprintf("%s/arbord.log", a->dir);
	a->next_id = 1;
	a->next = live;
	live = a;
	write_config(a->conf, config_body);
	return a;
}

void
arb_spawn(struct arb *a, const char *env, const char *const *extra_env)
{
	arb_spawn_flag(a, env, NULL, extra_env);
}

void
arb_spawn_flag(struct arb *a, const char *env, const char *flag,
    const char *const *extra_env)
{
	if (a->pid > 0 && !a->reaped)
		fail_msg("arb_spawn: arbord pid %d still runs", (int)a->pid);
	a->reaped = false;
	char *bin = arb_bin_path("arbord");
	const char *argv[7] = { bin, "-c", a->conf };
	size_t n = 3;
	if (flag != NULL)
		argv[n++] = flag;
	if (env != NULL) {
		argv[n++] = "-e";
		argv[n++] = env;
	}
	int log = open(a->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log < 0)
		fail_msg("cannot open %s: %s", a->log, strerror(errno));
	struct spawn sp = { argv, extra_env, log, log, true };
	a->pid = spawn(&sp);
	close(log);
	free(bin);
	if (a->pid < 0)
		fail_msg("fork: %s", strerror(errno));
}

/* Collects arbord's exit status once it has exited; true from then on. */
static bool
reap(struct arb *a)
{
	int st;
	if (a->reaped || a->pid <= 0)
		return a->reaped;
	seen_children(a);
	if (waitpid(a->pid, &st, WNOHANG) == a->pid) {
		a->wstatus = st;
		a->reaped = true;
		a->signalled |= WIFSIGNALED(st);
	}
	return a->reaped;
}

static json_t *call(struct arb *, json_t *, int timeout_ms, bool loud);

int
arb_wait_ready(struct arb *a, int timeout_ms)
{
	long long end = arb_now_ms() + timeout_ms;
	for (;;) {
		if (reap(a))
			return -1;
		json_t *r = call(a, json_pack("{s:s}", "op", "ping"), 2000, false);
		bool up = arb_reply_ok(r);
		json_decref(r);
		if (up)
			return 0;
		if (arb_now_ms() >= end)
			return -1;
		arb_sleep_ms(POLL_MS);
	}
}

struct arb *
arb_start(const char *config_body, const char *env, ...)
{
	const char *extra[MAX_ARGS];
	size_t n = 0;
	va_list ap;
	va_start(ap, env);
	const char *s;
	while ((s = va_arg(ap, const char *)) != NULL && n < MAX_ARGS - 1)
		extra[n++] = s;
	va_end(ap);
	extra[n] = NULL;
	struct arb *a = arb_new(config_body);
	arb_spawn(a, env, extra);
	if (arb_wait_ready(a, ARB_START_MS) < 0) {
		if (a->reaped)
			fail_msg("arbord exited with %d before answering ping",
			    exit_code(a->wstatus));
		fail_msg("arbord did not answer ping within %d ms",
		    ARB_START_MS);
	}
	return a;
}

int
arb_kill(struct arb *a, int sig)
{
	if (a->pid <= 0 || a->reaped)
		return -1;
	return kill(a->pid, sig);
}

int
arb_wait_exit(struct arb *a, int timeout_ms)
{
	long long end = arb_now_ms() + timeout_ms;
	while (!reap(a)) {
		if (a->pid <= 0 || arb_now_ms() >= end)
			return -1;
		arb_sleep_ms(POLL_MS / 5);
	}
	return exit_code(a->wstatus);
}

/* Kills arbord and its process group and reaps it. */
static void
kill_arbord(struct arb *a)
{
	if (a->pid <= 0 || a->reaped)
		return;
	seen_children(a);
	kill(-a->pid, SIGKILL);
	kill(a->pid, SIGKILL);
	if (waitpid(a->pid, &a->wstatus, 0) == a->pid)
		a->reaped = true;
	a->signalled = true;
}

/* SIGTERM, a bounded wait, then SIGKILL: the exit code. */
static int
terminate(struct arb *a)
{
	if (a->pid <= 0)
		return -1;
	if (!a->reaped)
		arb_kill(a, SIGTERM);
	int code = arb_wait_exit(a, ARB_EXIT_MS);
	if (code >= 0)
		return code;
	fprintf(stderr, "arbord (pid %d) still running %d ms after SIGTERM: "
	    "SIGKILL\n", (int)a->pid, ARB_EXIT_MS);
	kill_arbord(a);
	return exit_code(a->wstatus);
}

/* Removes one entry of the temp dir (nftw callback). */
static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

void
arb_free(struct arb *a)
{
	if (a == NULL)
		return;
	kill_arbord(a);		/* a no-op unless the test forgot it */
	for (struct arb **p = &live; *p != NULL; p = &(*p)->next)
		if (*p == a) {
			*p = a->next;
			break;
		}
	const char *keep = getenv("ARBOR_KEEP_TMP");
	if (keep == NULL || strcmp(keep, "1") != 0)
		nftw(a->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(a->dir);
	free(a->conf);
	free(a->sock);
	free(a->log);
	free(a->seen);
	free(a);
}

int
arb_stop(struct arb *a)
{
	int code = terminate(a);
	char *report = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&report, &len);
	kill_leftovers(a, f);
	fclose(f);
	if (len > 0)
		arb_dump_log(a);
	arb_free(a);
	if (len > 0) {
		fprintf(stderr, "%s", report);
		free(report);
		fail_msg("processes of the tree outlived arbord (see above)");
	}
	free(report);
	return code;
}

/* Kills and frees every arb still alive; prints the log of the running. */
static void
cleanup_all(void)
{
	while (live != NULL) {
		struct arb *a = live;
		if (a->pid > 0) {
			fprintf(stderr, "teardown: arbord pid %d (%s) was left "
			    "to the teardown (did the test fail?)\n",
			    (int)a->pid, a->dir);
			arb_dump_log(a);
		}
		kill_arbord(a);
		kill_leftovers(a, NULL);
		arb_free(a);
	}
}

int
arb_teardown(void **state)
{
	(void)state;
	cleanup_all();
	return 0;
}

const char *arb_dir(const struct arb *a) { return a->dir; }
const char *arb_conf_path(const struct arb *a) { return a->conf; }
const char *arb_socket_path(const struct arb *a) { return a->sock; }
pid_t arb_pid(const struct arb *a) { return a->pid; }

/* ---- the log ---- */

char *
arb_log(const struct arb *a)
{
	struct buf b;
	buf_init(&b);
	int fd = open(a->log, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		while (buf_read_fd(&b, fd) > 0)
			;
		close(fd);
	}
	buf_append(&b, "", 1);
	char *s = xstrdup(buf_head(&b));
	buf_release(&b);
	return s;
}

bool
arb_log_contains(const struct arb *a, const char *needle)
{
	char *log = arb_log(a);
	bool found = strcasestr(log, needle) != NULL;
	free(log);
	return found;
}

/* True if line (up to its newline) holds every word of the list. */
static bool
line_has_all(const char *line, const char *const *words)
{
	size_t len = strcspn(line, "\n");
	char *copy = xasprintf("%.*s", (int)len, line);
	bool all = true;
	for (size_t i = 0; all && words[i] != NULL; i++)
		all = strcasestr(copy, words[i]) != NULL;
	free(copy);
	return all;
}

/* The lines of the log holding every word of words. */
static size_t
count_lines(const struct arb *a, const char *const *words)
{
	char *log = arb_log(a);
	size_t n = 0;
	for (const char *p = log; *p != '\0'; ) {
		n += line_has_all(p, words);
		p += strcspn(p, "\n");
		p += *p == '\n';
	}
	free(log);
	return n;
}

/* The NULL-terminated word list of a variadic call after a. */
#define WORDS(a, words)	do {						\
	size_t n_ = 0;							\
	va_list ap_;							\
	va_start(ap_, a);						\
	const char *s_;							\
	while ((s_ = va_arg(ap_, const char *)) != NULL && n_ < MAX_ARGS - 1) \
		(words)[n_++] = s_;					\
	va_end(ap_);							\
	(words)[n_] = NULL;						\
} while (0)

bool
arb_log_has_line(const struct arb *a, ...)
{
	const char *words[MAX_ARGS];
	WORDS(a, words);
	return count_lines(a, words) > 0;
}

size_t
arb_log_count_lines(const struct arb *a, ...)
{
	const char *words[MAX_ARGS];
	WORDS(a, words);
	return count_lines(a, words);
}

/* The ASan runtime this test runs with (it must come first in arbord's
 * LD_PRELOAD), from our own mappings; NULL without the sanitizers. */
static char *
asan_runtime(void)
{
	if (getenv("ARBOR_SAN") == NULL)
		return NULL;
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096], *found = NULL;
	while (f && !found && fgets(line, sizeof line, f)) {
		char *path = strchr(line, '/');
		if (path && strstr(path, "/libasan.so")) {
			path[strcspn(path, "\n")] = '\0';
			found = xstrdup(path);
		}
	}
	if (f)
		fclose(f);
	if (found == NULL)
		fail_msg("ARBOR_SAN is set but no libasan is mapped");
	return found;
}

char *
arb_preload(const char *shim)
{
	char *path = arb_bin_path(shim), *asan = asan_runtime();
	char *env = asan ? xasprintf("LD_PRELOAD=%s:%s", asan, path) :
	    xasprintf("LD_PRELOAD=%s", path);
	free(path);
	free(asan);
	return env;
}

char *
arb_repo_root(const char *probe)
{
	const char *build = getenv("ARBOR_BUILD");
	char cand[3][PATH_MAX];
	snprintf(cand[0], sizeof cand[0], ".");
	snprintf(cand[1], sizeof cand[1], "%s/..", build ? build : ".");
	snprintf(cand[2], sizeof cand[2], "%s/../..", build ? build : ".");
	for (int i = 0; i < 3; i++) {
		char *root = realpath(cand[i], NULL);
		char path[PATH_MAX + 64];
		snprintf(path, sizeof path, "%s/%s", root ? root : "", probe);
		if (root != NULL && access(path, R_OK) == 0)
			return root;
		free(root);
	}
	fail_msg("cannot find %s from the current directory", probe);
	return NULL;
}

bool
arb_wait_log_line(const struct arb *a, int timeout_ms, ...)
{
	const char *words[MAX_ARGS];
	WORDS(timeout_ms, words);
	long long end = arb_now_ms() + timeout_ms;
	for (;;) {
		if (count_lines(a, words) > 0)
			return true;
		if (arb_now_ms() >= end)
			return false;
		arb_sleep_ms(POLL_MS);
	}
}

void
arb_dump_log(const struct arb *a)
{
	char *log = arb_log(a);
	size_t n = strlen(log);
	const char *from = n > LOG_TAIL ? log + n - LOG_TAIL : log;
	fprintf(stderr, "---- %s%s ----\n%s%s---- end of log ----\n", a->log,
	    from != log ? " (tail)" : "", from,
	    n > 0 && log[n - 1] != '\n' ? "\n" : "");
	free(log);
}

/* ---- connections ---- */

struct arb_conn *
arb_conn_open(struct arb *a)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(a->sock) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	strcpy(sa.sun_path, a->sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	struct arb_conn *c = xcalloc(1, sizeof *c);
	c->fd = fd;
	buf_init(&c->in);
	return c;
}

int
arb_conn_send_raw(struct arb_conn *c, const void *p, size_t n)
{
	const char *s = p;
	while (n > 0) {
		ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int
arb_conn_send(struct arb_conn *c, const json_t *j)
{
	struct buf out;
	buf_init(&out);
	frame_put_json(&out, j);
	int r = arb_conn_send_raw(c, buf_head(&out), buf_used(&out));
	buf_release(&out);
	return r;
}

/* Waits for bytes until end: 1 read some, 0 timeout, -1 EOF or error. */
static int
conn_fill(struct arb_conn *c, long long end)
{
	if (c->eof)
		return -1;
	struct pollfd p = { c->fd, POLLIN, 0 };
	long long left = end - arb_now_ms();
	if (left <= 0)
		return 0;
	int r = poll(&p, 1, (int)left);
	if (r < 0 && errno == EINTR)
		return 1;	/* nothing read: the caller loops */
	if (r <= 0)
		return r;
	ssize_t n = buf_read_fd(&c->in, c->fd);
	if (n > 0 || (n < 0 && errno == EAGAIN))
		return 1;
	c->eof = true;
	return -1;
}

/* Waits for one whole reply frame: true with its payload (in c->in, until
 * frame_done), false on timeout, EOF or an oversized frame. */
static bool
conn_frame(struct arb_conn *c, int timeout_ms, const char **payload,
    size_t *len)
{
	long long end = arb_now_ms() + timeout_ms;
	for (;;) {
		enum frame_status st = frame_peek(&c->in, REPLY_MAX, payload,
		    len);
		if (st == FRAME_TOO_LARGE)
			return false;
		if (st == FRAME_OK)
			return true;
		if (conn_fill(c, end) <= 0)
			return false;
	}
}

char *
arb_conn_recv_text(struct arb_conn *c, int timeout_ms)
{
	const char *payload;
	size_t len;
	if (!conn_frame(c, timeout_ms, &payload, &len))
		return NULL;
	char *text = xmalloc(len + 1);
	memcpy(text, payload, len);
	text[len] = '\0';
	frame_done(&c->in, len);
	return text;
}

json_t *
arb_conn_recv(struct arb_conn *c, int timeout_ms)
{
	const char *payload;
	size_t len;
	if (!conn_frame(c, timeout_ms, &payload, &len))
		return NULL;
	json_error_t err;
	json_t *j = frame_parse(payload, len, &err);
	if (j == NULL)
		fprintf(stderr, "reply is not a JSON object: %s: %.*s\n",
		    err.text, (int)(len < 200 ? len : 200), payload);
	frame_done(&c->in, len);
	return j;
}

bool
arb_conn_closed(struct arb_conn *c, int timeout_ms)
{
	long long end = arb_now_ms() + timeout_ms;
	for (;;) {
		int r = conn_fill(c, end);
		if (r < 0)
			return true;
		if (r == 0)
			return false;
		buf_consume(&c->in, buf_used(&c->in));
	}
}

void
arb_conn_close(struct arb_conn *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	buf_release(&c->in);
	free(c);
}

/* ---- control requests ---- */

/* The op of a request, for messages. */
static const char *
req_op(const json_t *req)
{
	const char *op = json_string_value(json_object_get(req, "op"));
	return op != NULL ? op : "(no op)";
}

/* One request on a fresh connection; steals req. Records worker pids of
 * any tree in the reply. */
static json_t *
call(struct arb *a, json_t *req, int timeout_ms, bool loud)
{
	const char *op = req_op(req);
	json_t *reply = NULL;
	if (json_object_get(req, "id") == NULL)
		json_object_set_new(req, "id", json_integer(a->next_id++));
	struct arb_conn *c = arb_conn_open(a);
	if (c == NULL) {
		if (loud)
			fprintf(stderr, "%s: connect %s: %s\n", op, a->sock,
			    strerror(errno));
	} else if (arb_conn_send(c, req) < 0) {
		if (loud)
			fprintf(stderr, "%s: send: %s\n", op, strerror(errno));
	} else if ((reply = arb_conn_recv(c, timeout_ms)) == NULL && loud) {
		fprintf(stderr, "%s: no reply within %d ms%s\n", op,
		    timeout_ms, c->eof ? " (connection closed)" : "");
	}
	arb_conn_close(c);
	if (json_is_object(json_object_get(reply, "tree")))
		seen_tree(a, json_object_get(reply, "tree"));
	json_decref(req);
	return reply;
}

json_t *
arb_call(struct arb *a, json_t *req)
{
	return call(a, req, ARB_REPLY_MS, true);
}

/* Prints a reply (or its absence) before an assertion fails on it. */
static void
show_reply(const char *op, const json_t *reply)
{
	char *s = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	fprintf(stderr, "%s: reply %s\n", op, s ? s : "(none)");
	free(s);
}

json_t *
arb_call_ok(struct arb *a, json_t *req)
{
	char *op = xstrdup(req_op(req));
	json_t *reply = arb_call(a, req);
	if (!arb_reply_ok(reply)) {
		show_reply(op, reply);
		free(op);
		fail_msg("request failed, expected ok");
	}
	free(op);
	return reply;
}

json_t *
arb_call_err(struct arb *a, json_t *req, const char *code)
{
	char *op = xstrdup(req_op(req));
	json_t *reply = arb_call(a, req);
	const char *got = arb_reply_code(reply);
	if (reply == NULL || arb_reply_ok(reply) || got == NULL ||
	    strcmp(got, code) != 0) {
		show_reply(op, reply);
		free(op);
		fail_msg("expected an error reply with code %s", code);
	}
	free(op);
	return reply;
}

json_t *
arb_op_ok(struct arb *a, const char *op)
{
	return arb_call_ok(a, json_pack("{s:s}", "op", op));
}

/* Status without noise: used by every polling loop. */
static json_t *
status_quiet(struct arb *a, const char *name, bool loud)
{
	json_t *req = json_pack("{s:s}", "op", "status");
	if (name != NULL)
		json_object_set_new(req, "name", json_string(name));
	json_t *reply = call(a, req, ARB_REPLY_MS, loud);
	json_t *tree = json_object_get(reply, "tree");
	if (arb_reply_ok(reply) && json_is_object(tree))
		json_incref(tree);
	else
		tree = NULL;
	json_decref(reply);
	return tree;
}

json_t *
arb_status(struct arb *a, const char *name)
{
	return status_quiet(a, name, true);
}

bool
arb_reply_ok(const json_t *reply)
{
	return json_is_true(json_object_get(reply, "ok"));
}

const char *
arb_reply_code(const json_t *reply)
{
	return json_string_value(json_object_get(json_object_get(reply,
	    "error"), "code"));
}

/* ---- tree helpers ---- */

json_t *
arb_find(json_t *tree, const char *name)
{
	const char *n = arb_node_str(tree, "name");
	if (n != NULL && strcmp(n, name) == 0)
		return tree;
	size_t i;
	json_t *kid, *found;
	json_array_foreach(json_object_get(tree, "children"), i, kid)
		if ((found = arb_find(kid, name)) != NULL)
			return found;
	return NULL;
}

const char *
arb_node_str(const json_t *node, const char *key)
{
	return json_string_value(json_object_get(node, key));
}

json_int_t
arb_node_int(const json_t *node, const char *key)
{
	const json_t *v = json_object_get(node, key);
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

json_int_t
arb_node_pid(const json_t *node)
{
	if (strcmp(arb_node_str(node, "kind") ? arb_node_str(node, "kind") : "",
	    "worker") != 0)
		return 0;
	json_int_t pid = arb_node_int(node, "pid");
	return pid > 0 ? pid : 0;
}

size_t
arb_node_nchildren(const json_t *node)
{
	return json_array_size(json_object_get(node, "children"));
}

size_t
arb_worker_pids(const json_t *node, json_int_t *out, size_t max)
{
	size_t n = 0;
	json_int_t pid = arb_node_pid(node);
	if (pid > 0 && n < max)
		out[n++] = pid;
	size_t i;
	json_t *kid;
	json_array_foreach(json_object_get(node, "children"), i, kid)
		n += arb_worker_pids(kid, out + n, max - n);
	return n;
}

/* ---- waiting ---- */

/* Prints why a wait failed, with the last tree seen (the log follows at
 * teardown). */
static void
report_wait(struct arb *a, const char *what, int timeout_ms, json_t *last)
{
	char *s = last ? json_dumps(last, JSON_INDENT(1)) : NULL;
	if (a->reaped)
		fprintf(stderr, "arbord exited (%d) while waiting for %s\n",
		    exit_code(a->wstatus), what);
	else
		fprintf(stderr, "timed out after %d ms waiting for %s\n",
		    timeout_ms, what);
	fprintf(stderr, "last status: %s\n", s ? s : "(none)");
	free(s);
}

json_t *
arb_wait_for(struct arb *a, arb_pred *pred, void *ctx, int timeout_ms,
    const char *what)
{
	long long end = arb_now_ms() + timeout_ms;
	json_t *last = NULL;
	for (;;) {
		json_t *tree = status_quiet(a, NULL, false);
		if (tree != NULL && pred(tree, ctx)) {
			json_decref(last);
			return tree;
		}
		if (tree != NULL) {
			json_decref(last);
			last = tree;
		}
		if (reap(a) || arb_now_ms() >= end)
			break;
		arb_sleep_ms(POLL_MS);
	}
	report_wait(a, what, timeout_ms, last);
	json_decref(last);
	return NULL;
}

struct want_node {
	const char *name, *state;
	json_int_t not_pid;
};

/* arb_wait_node's predicate. */
static bool
node_matches(json_t *tree, void *ctx)
{
	const struct want_node *w = ctx;
	json_t *node = arb_find(tree, w->name);
	const char *st = arb_node_str(node, "state");
	if (st == NULL || strcmp(st, w->state) != 0)
		return false;
	if (w->not_pid <= 0)
		return true;
	json_int_t pid = arb_node_pid(node);
	return pid > 0 && pid != w->not_pid;
}

json_t *
arb_wait_node(struct arb *a, const char *name, const char *state,
    json_int_t not_pid, int timeout_ms)
{
	struct want_node w = { name, state, not_pid };
	char what[256];
	snprintf(what, sizeof what, "%s in state %s (pid other than %lld)",
	    name, state, (long long)not_pid);
	json_t *tree = arb_wait_for(a, node_matches, &w, timeout_ms, what);
	if (tree == NULL)
		return NULL;
	json_t *node = json_incref(arb_find(tree, name));
	json_decref(tree);
	return node;
}

json_int_t
arb_wait_ready_pid(struct arb *a, const char *name, json_int_t other_than)
{
	json_t *node = arb_wait_node(a, name, "ready", other_than,
	    ARB_EVENT_MS);
	if (node == NULL)
		fail_msg("%s did not become ready (pid other than %lld) "
		    "within %d ms", name, (long long)other_than, ARB_EVENT_MS);
	json_int_t pid = arb_node_pid(node);
	json_decref(node);
	if (pid <= 0 || pid == other_than)
		fail_msg("%s is ready with pid %lld, expected one other than "
		    "%lld", name, (long long)pid, (long long)other_than);
	return pid;
}

void
arb_await_node(struct arb *a, const char *name, const char *state)
{
	json_t *node = arb_wait_node(a, name, state, 0, ARB_EVENT_MS);
	if (node == NULL)
		fail_msg("%s did not become %s within %d ms", name, state,
		    ARB_EVENT_MS);
	json_decref(node);
}

struct want_ready {
	const char *parent;
	size_t	n;
};

/* arb_wait_all_ready's predicate. */
static bool
all_ready(json_t *tree, void *ctx)
{
	const struct want_ready *w = ctx;
	json_t *kids = json_object_get(arb_find(tree, w->parent), "children");
	if (json_array_size(kids) != w->n)
		return false;
	size_t i;
	json_t *kid;
	json_array_foreach(kids, i, kid) {
		const char *st = arb_node_str(kid, "state");
		if (st == NULL || strcmp(st, "ready") != 0)
			return false;
	}
	return true;
}

json_t *
arb_wait_all_ready(struct arb *a, const char *parent, size_t n, int timeout_ms)
{
	struct want_ready w = { parent, n };
	char what[256];
	snprintf(what, sizeof what, "%zu ready workers under %s", n, parent);
	return arb_wait_for(a, all_ready, &w, timeout_ms, what);
}
