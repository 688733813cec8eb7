#include "tools/bench/arbord.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/xmalloc.h"
#include "tools/bench/bench.h"
#include "tools/bench/proc.h"

#define STOP_MS		60000	/* a graceful stop of up to 1,024 workers */
#define CALL_TIMEOUT_S	60

struct arbord {
	pid_t		 pid;
	int		 size;
	char		*dir, *conf, *sock, *log;
	int		 errfd;		/* pipe_log: stderr's read end, else -1 */
	struct buf	 errbuf;
	volatile uint64_t *allocs;	/* alloc_count.so's count, or NULL */
	char		*cg_out;	/* callgrind's output file, or NULL */
	int		 cg_dumps;	/* dumps so far: cg_out.1, .2, ... */
};

static int serial;

static void
write_conf(const struct arbord *a, const struct arbord_conf *c)
{
	FILE *f = fopen(a->conf, "w");
	if (f == NULL)
		die("%s: %s", a->conf, strerror(errno));
	char sess[128] = "";
	if (c->affinity != NULL)
		snprintf(sess, sizeof sess, " affinity = \"%s\";", c->affinity);
	if (c->session_ttl_ms > 0)
		snprintf(sess + strlen(sess), sizeof sess - strlen(sess),
		    " session_ttl_ms = %ld;", c->session_ttl_ms);
	const char *policy = c->sched_policy ? c->sched_policy : B.policy;
	char sched[64] = "";
	if (policy != NULL)
		snprintf(sched, sizeof sched, " sched_policy = \"%s\";",
		    policy);
	fprintf(f,
	    "supervisor = { max_restarts = 1000000; max_seconds = 1; };\n"
	    "bridge = { pooling_enabled = true; adapter = \"%s\"; };\n"
	    "pool = { size = %d; max_overflow = 0; max_waiting = 1000000;\n"
	    "  checkout_timeout_ms = 60000; max_restarts = 1000000;"
	    " max_seconds = 1;%s };\n"
	    "control = { socket = \"arbor.sock\"; max_clients = 8192; };\n"
	    "worker = { restart_delay_ms = 0; max_restart_delay_ms = 0;\n"
	    "  health_interval_ms = 0; init_timeout_ms = 60000;%s%s%s%s };\n"
	    "log = { level = \"%s\"; };\n"
	    "environments = { dev = {}; };\n",
	    c->adapter, c->size, sess, c->command ? " command = " : "",
	    c->command ? c->command : "", c->command ? ";" : "", sched,
	    c->log_level);
	if (fclose(f) != 0)
		die("%s: %s", a->conf, strerror(errno));
}

/* stderr: the write end of a pipe we keep reading, or the log file. */
static int
open_log(struct arbord *a, bool pipe_log)
{
	if (!pipe_log) {
		int fd = open(a->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			die("%s: %s", a->log, strerror(errno));
		return fd;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	a->errfd = p[0];
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	return p[1];
}

/* The file alloc_count.so keeps arbord's allocation count in, mapped;
 * NULL (no column) when the shim is not built. */
static volatile uint64_t *
map_allocs(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 4096) < 0)
		die("%s: %s", path, strerror(errno));
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		die("mmap %s: %s", path, strerror(errno));
	return p;
}

/* Spawns arbord with alloc_count.so preloaded, when it is there. */
static pid_t
spawn_counted(struct arbord *a, char *const argv[], int err)
{
	char *shim = xasprintf("%s/alloc_count.so", B.build);
	char *count = xasprintf("%s/allocs", a->dir);
	bool counted = access(shim, R_OK) == 0;
	if (counted) {
		a->allocs = map_allocs(count);
		setenv("LD_PRELOAD", shim, 1);
		setenv("ARBOR_ALLOC_COUNT", count, 1);
	}
	pid_t pid = proc_spawn(argv, -1, -1, err, true);
	unsetenv("LD_PRELOAD");
	unsetenv("ARBOR_ALLOC_COUNT");
	free(shim);
	free(count);
	return pid;
}

struct arbord *
arbord_start(const struct arbord_conf *c)
{
	struct arbord *a = xcalloc(1, sizeof *a);
	a->size = c->size;
	a->errfd = -1;
	a->dir = tmp_dir("arbord", &serial);
	a->conf = xasprintf("%s/arbor.conf", a->dir);
	a->sock = xasprintf("%s/arbor.sock", a->dir);
	a->log = xasprintf("%s/arbord.log", a->dir);
	write_conf(a, c);
	int err = open_log(a, c->pipe_log);
	char *bin = xasprintf("%s/arbord", c->build ? c->build : B.build);
	char *argv[] = { bin, "-c", a->conf, "-e", "dev", NULL };
	if (c->callgrind) {
		a->cg_out = xasprintf("%s/callgrind.out", a->dir);
		char *out = xasprintf("--callgrind-out-file=%s", a->cg_out);
		char *vg[] = { "valgrind", "--tool=callgrind",
		    "--instr-atstart=no", out, bin, "-c", a->conf, "-e",
		    "dev", NULL };
		a->pid = proc_spawn(vg, -1, -1, err, true);
		free(out);
	} else
		a->pid = spawn_counted(a, argv, err);
	close(err);
	free(bin);
	return a;
}

int
arbord_callgrind(struct arbord *a, const char *opt, const char *arg)
{
	char pid[16], out[4096];
	snprintf(pid, sizeof pid, "%d", (int)a->pid);
	char *argv[] = { "callgrind_control", (char *)opt,
	    (char *)(arg ? arg : pid), arg ? pid : NULL, NULL };
	if (proc_capture(argv, out, sizeof out) < 0)
		return -1;
	if (strcmp(opt, "-d") == 0)
		a->cg_dumps++;
	return 0;
}

uint64_t
arbord_callgrind_dumped(const struct arbord *a)
{
	char *path = xasprintf("%s.%d", a->cg_out, a->cg_dumps);
	FILE *f = fopen(path, "r");
	char line[256];
	uint64_t n = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "summary: %" SCNu64, &n) == 1)
			break;
	if (f)
		fclose(f);
	const char *keep = getenv("BENCH_CALLGRIND_KEEP");
	if (keep != NULL && keep[0] != '\0') {
		static int kept;
		char *to = xasprintf("%s.%d", keep, ++kept);
		if (link(path, to) != 0)
			note("callgrind dump not kept as %s: %s", to,
			    strerror(errno));
		free(to);
	}
	free(path);
	return n;
}

pid_t
arbord_pid(const struct arbord *a)
{
	return a->pid;
}

uint64_t
arbord_allocs(const struct arbord *a)
{
	return a->allocs != NULL ? *a->allocs : UINT64_MAX;
}

const char *
arbord_socket(const struct arbord *a)
{
	return a->sock;
}

int
arbord_connect(const struct arbord *a)
{
	int fd = unix_connect(a->sock);
	if (fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = CALL_TIMEOUT_S };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return fd;
}

json_t *
arbord_call(int fd, const char *request)
{
	if (frame_write_blocking(fd, request, strlen(request)) < 0)
		return NULL;
	struct buf in;
	buf_init(&in);
	const char *p;
	size_t len;
	json_t *j = NULL;
	if (frame_read_blocking(fd, &in, 64u << 20, &p, &len) == 1)
		j = frame_parse(p, len, NULL);
	buf_release(&in);
	return j;
}

/* Prints the end of arbord's log file, for a failure. */
static void
show_log(const struct arbord *a)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "tail -n 20 '%s' >&2", a->log);
	if (a->errfd < 0 && system(cmd) != 0)
		note("(no log at %s)", a->log);
}

/* The health op's "ready" count, or -1 (not up yet). */
static int
health_ready(int fd)
{
	json_t *r = arbord_call(fd, "{\"id\":1,\"op\":\"health\"}");
	json_int_t n = json_integer_value(json_object_get(r, "ready"));
	int ok = json_is_true(json_object_get(r, "ok"));
	json_decref(r);
	return ok ? (int)n : -1;
}

int
arbord_wait_ready(struct arbord *a, double timeout_s)
{
	double end = now_s() + timeout_s;
	int fd = -1;
	while (now_s() < end && !proc_interrupted()) {
		if (proc_wait(a->pid, 0) >= 0) {
			note("arbord exited during start-up");
			show_log(a);
			return -1;
		}
		if (fd < 0)
			fd = arbord_connect(a);
		if (fd >= 0 && health_ready(fd) >= a->size) {
			close(fd);
			return 0;
		}
		usleep(1000);
	}
	if (fd >= 0)
		close(fd);
	if (proc_interrupted())
		return -1;
	note("arbord: %d workers not all ready after %.0f s", a->size, timeout_s);
	show_log(a);
	return -1;
}

/* Takes one line out of errbuf into out; 1 if there was a whole one. */
static int
take_line(struct arbord *a, char *out, size_t n)
{
	char *h = buf_head(&a->errbuf);
	char *nl = memchr(h, '\n', buf_used(&a->errbuf));
	if (nl == NULL)
		return 0;
	size_t len = (size_t)(nl - h);
	snprintf(out, n, "%.*s", (int)len, h);
	buf_consume(&a->errbuf, len + 1);
	return 1;
}

int
arbord_log_line(struct arbord *a, char *out, size_t n, int timeout_ms)
{
	for (;;) {
		if (take_line(a, out, n))
			return 1;
		struct pollfd pfd = { .fd = a->errfd, .events = POLLIN };
		int k = poll(&pfd, 1, timeout_ms);
		if (k < 0 && errno == EINTR && !proc_interrupted())
			continue;
		if (k <= 0)
			return k == 0 ? 0 : -1;
		ssize_t got = buf_read_fd(&a->errbuf, a->errfd);
		if (got == 0 || (got < 0 && errno != EAGAIN))
			return -1;
	}
}

/* SIGTERM, draining the log pipe (if any) so arbord never blocks on it. */
static void
term_and_drain(struct arbord *a)
{
	kill(a->pid, SIGTERM);
	double end = now_s() + STOP_MS / 1000.0;
	char line[512];
	while (now_s() < end) {
		if (proc_wait(a->pid, 0) >= 0)
			return;
		if (a->errfd >= 0)
			while (arbord_log_line(a, line, sizeof line, 10) == 1)
				;
		else
			usleep(2000);
	}
	note("arbord %d did not stop within %d ms: SIGKILL", (int)a->pid, STOP_MS);
	proc_kill_wait(a->pid);
}

void
arbord_stop(struct arbord *a)
{
	if (a == NULL)
		return;
	term_and_drain(a);
	if (a->errfd >= 0)
		close(a->errfd);
	buf_release(&a->errbuf);
	if (a->allocs != NULL)
		munmap((void *)a->allocs, 4096);
	free(a->dir);
	free(a->conf);
	free(a->sock);
	free(a->log);
	free(a->cg_out);
	free(a);
}
