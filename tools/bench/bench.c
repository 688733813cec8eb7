/* bench: arbor's benchmark (`make bench`). Runs arbord and mock_worker (and
 * the Python bridge worker) from the build directory, each in a temp dir,
 * next to floors measured the same way without arbord, and prints one
 * Markdown table of medians with the machine and the commit.
 *
 * Environment:
 *   BENCH_QUICK=1     one short run of everything (about a minute)
 *   BENCH_RUNS=N      runs per figure (default 3; the median is shown)
 *   BENCH_SECS=S      measured seconds per throughput run (default 2)
 *   BENCH_KILLS=N     restart samples (default 200)
 *   BENCH_ONLY=LIST   some of: throughput,affinity,instructions,restart,
 *                     scale,python
 *   BENCH_ROOT=DIR    the source tree (default: the build dir's parent)
 *   BENCH_POOLS=LIST  section 1 pool sizes only, e.g. "2,8"
 *   BENCH_SHAPES=LIST section 1 clients x depth only, e.g. "16x1,1x8"
 *   BENCH_VS=DIR      sections 1, 1c and 4 also run the arbord of the
 *                     build in DIR (another commit's build/), its runs
 *                     alternated with this build's, against the same
 *                     floors
 *   BENCH_POLICY=P    worker.sched_policy of every arbord started (default:
 *                     the key left out, workers under arbord's policy)
 *   BENCH_VS_POLICY=P sections 1 and 4 also run an arbord whose workers
 *                     run under P (with BENCH_VS, that build's), alternated
 *                     with this build's as BENCH_VS is
 *   BENCH_RELAY=0     section 1 without its relay rows (tools/bench/relay.h:
 *                     the least a broker does, for arbord to be set against)
 *   BENCH_BEAM=0      section 1 without its BEAM port pool rows
 *                     (tools/bench/beam.h; they need escript: erlang-base)
 *   BENCH_CALLGRIND_KEEP=PREFIX  section 1c keeps each callgrind dump as
 *                     PREFIX.1, PREFIX.2, ... (same file system as the
 *                     temp dir), for callgrind_annotate
 * Usage: bench [BUILD_DIR]   (default: the directory of this program) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "proto/xmalloc.h"
#include "tools/bench/bench.h"
#include "tools/bench/proc.h"
#include "tools/bench/sections.h"
#include "tools/bench/table.h"

struct bench_opts B;

/* 106 bytes. */
const char BENCH_ARGS[] = "{\"question\":\"What is the capital of France?\","
    "\"context\":\"geography, round 3\",\"max_tokens\":128,\"top_p\":0.75}";

static pid_t main_pid;

char *
tmp_dir(const char *name, int *serial)
{
	char *dir = xasprintf("%s/%s.%d", B.tmp, name, ++*serial);
	if (mkdir(dir, 0700) < 0)
		die("%s: %s", dir, strerror(errno));
	return dir;
}

int
unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

void
note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void
die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	if (proc_interrupted())
		fputs("bench: interrupted\n", stderr);
	if (getpid() != main_pid)
		_exit(1);	/* a forked load generator */
	exit(1);
}

/* ---- settings ---- */

static double
env_num(const char *name, double def)
{
	const char *v = getenv(name);
	char *end;
	if (v == NULL || *v == '\0')
		return def;
	double d = strtod(v, &end);
	if (*end != '\0' || d <= 0)
		die("%s=%s: not a positive number", name, v);
	return d;
}

static void
settings(int argc, char **argv)
{
	const char *q = getenv("BENCH_QUICK");
	B.quick = q != NULL && *q != '\0' && strcmp(q, "0") != 0;
	B.runs = (int)env_num("BENCH_RUNS", B.quick ? 1 : 3);
	if (B.runs > 16)
		B.runs = 16;
	B.secs = env_num("BENCH_SECS", B.quick ? 0.3 : 2.0);
	B.warmup = B.quick ? 0.1 : 0.3;
	B.kills = (int)env_num("BENCH_KILLS", B.quick ? 20 : 200);
	B.only = getenv("BENCH_ONLY");
	const char *rl = getenv("BENCH_RELAY");
	B.relay = rl == NULL || strcmp(rl, "0") != 0;
	const char *bm = getenv("BENCH_BEAM");
	B.beam = bm == NULL || strcmp(bm, "0") != 0;
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n < 0)
		die("/proc/self/exe: %s", strerror(errno));
	self[n] = '\0';
	B.build = realpath(argc > 1 ? argv[1] : dirname(self), NULL);
	if (B.build == NULL)
		die("build dir: %s", strerror(errno));
	const char *root = getenv("BENCH_ROOT");
	char *tmp = xstrdup(B.build);
	B.root = realpath(root ? root : dirname(tmp), NULL);
	free(tmp);
	if (B.root == NULL)
		die("source tree: %s", strerror(errno));
	const char *vs = getenv("BENCH_VS");
	if (vs != NULL && *vs != '\0') {
		B.vs = realpath(vs, NULL);
		char *bin = xasprintf("%s/arbord", B.vs ? B.vs : vs);
		if (B.vs == NULL || access(bin, X_OK) != 0)
			die("BENCH_VS=%s: no arbord there", vs);
		free(bin);
	}
	const char *policy = getenv("BENCH_POLICY");
	B.policy = policy && *policy ? policy : NULL;
	policy = getenv("BENCH_VS_POLICY");
	B.vs_policy = policy && *policy ? policy : NULL;
	if (B.vs || B.vs_policy)
		B.vs_name = xasprintf("arbord%s%s%s", B.vs ? " of BENCH_VS" :
		    "", B.vs_policy ? ", worker.sched_policy = " : "",
		    B.vs_policy ? B.vs_policy : "");
}

static bool
wanted(const char *section)
{
	return B.only == NULL || strstr(B.only, section) != NULL;
}

/* ---- the temp dir ---- */

static void
rm_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char *p = xasprintf("%s/%s", path, e->d_name);
		if (e->d_type == DT_DIR)
			rm_tree(p);
		else
			unlink(p);
		free(p);
	}
	if (d)
		closedir(d);
	rmdir(path);
}

static void
rm_tmp(void)
{
	if (getpid() == main_pid && B.tmp != NULL)
		rm_tree(B.tmp);
}

static void
make_tmp(void)
{
	char tmpl[] = "/tmp/arbor-bench.XXXXXX";
	if (mkdtemp(tmpl) == NULL)
		die("mkdtemp: %s", strerror(errno));
	B.tmp = xstrdup(tmpl);
}

/* ---- the machine ---- */

static void
cpu_model(char *out, size_t n)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	snprintf(out, n, "unknown CPU");
	while (f && fgets(line, sizeof line, f)) {
		char *c = strchr(line, ':');
		if (strncmp(line, "model name", 10) == 0 && c != NULL) {
			snprintf(out, n, "%s", c + 2);
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);
}

static void
commit(char *out, size_t n)
{
	char *rev[] = { "git", "-C", B.root, "rev-parse", "--short", "HEAD", NULL };
	char *st[] = { "git", "-C", B.root, "status", "--porcelain",
	    "--untracked-files=no", NULL };
	char changes[64];
	if (proc_capture(rev, out, n) < 0) {
		snprintf(out, n, "unknown");
		return;
	}
	out[strcspn(out, "\n")] = '\0';
	if (proc_capture(st, changes, sizeof changes) == 0 && changes[0])
		strncat(out, " + uncommitted changes", n - strlen(out) - 1);
}

static void
print_header(void)
{
	char cpu[256], rev[128];
	struct utsname u;
	cpu_model(cpu, sizeof cpu);
	commit(rev, sizeof rev);
	uname(&u);
	printf("arbor benchmark: commit %s; %ld CPUs (nproc), %s; %s %s\n\n",
	    rev, sysconf(_SC_NPROCESSORS_ONLN), cpu, u.sysname, u.release);
	printf("Medians of %d run%s (%.1f s measured per throughput run), "
	    "%d restart samples%s.\n\n", B.runs, B.runs > 1 ? "s" : "",
	    B.secs, B.kills, B.quick ? "; BENCH_QUICK=1" : "");
	if (B.policy)
		printf("Every arbord runs its workers with worker.sched_policy "
		    "= \"%s\" (BENCH_POLICY).\n\n", B.policy);
}

static void
print_notes(void)
{
	printf("\n"
	    "- Requests are `execute echo` with a %zu-byte JSON args object "
	    "(`ping` for Python), sent by closed-loop clients on one epoll "
	    "thread; depth = requests in flight per connection.\n"
	    "- floor: the same load generator talking to the workers "
	    "directly over their pipes, one request at a time per worker, "
	    "with as many workers as the arbord case can keep busy "
	    "(clients × depth, at most the pool size: one client at depth 1 "
	    "is set against one worker); vs floor = arbord / floor.\n"
	    "- relay: the same clients through a bare relay "
	    "(tools/bench/relay.c), the least any broker does: each request "
	    "frame passed unchanged to an idle worker, first come first "
	    "served, the reply passed back, reads and writes batched per "
	    "loop iteration as in arbord (an iteration's writes in one "
	    "io_uring system call), no JSON; its CPU/req column is the "
	    "relay's own. Its runs are rotated with arbord's.\n"
	    "- beam: the BEAM port pool the issue's reference figure was "
	    "measured on, in this run (tools/bench/beam_pool.escript, OTP's "
	    "default VM flags): a pool process holding Erlang ports of "
	    "mock_worker; a caller checks a port out (the pool connects the "
	    "port to it), sends one request, receives the reply, connects the "
	    "port back and checks it in, as the seed system does. Clients in "
	    "the VM: the callers are Erlang processes of the same VM, the "
	    "load generator being the VM itself (p50 and p99 from checkout to "
	    "reply); clients over a socket: the same load generator as "
	    "arbord's over a Unix socket, each connection served by a VM "
	    "process that passes its frames unchanged to the pool, one at a "
	    "time, as the relay does. Depth-1 shapes only; its CPU/req column "
	    "is the whole VM's (in-VM clients included). Its runs are rotated "
	    "with arbord's.\n"
	    "- worker pairs: the issue's reference floor, each pair a process "
	    "of the benchmark making blocking round trips (one write, one "
	    "read) with a mock_worker of its own, all pairs at once "
	    "(tools/bench/pairs.c).\n"
	    "- Affinity: the 16-client, depth-1 run of section 1 with "
	    "every request carrying a session_id (10,000 sessions, each "
	    "client cycling through its own 625, all bound before the runs; "
	    "pool.affinity = \"strict\"), next to the same run without "
	    "sessions on a second arbord, runs interleaved; there floor = "
	    "the run without sessions, vs floor = with / without; arbord "
	    "RSS after the runs.\n"
	    "- Instructions: arbord's own user-space instructions (its code "
	    "and the libraries it calls, not the kernel's) counted by "
	    "valgrind's callgrind over the measured window of section 1's "
	    "load / requests, one run each; it does not depend on the "
	    "machine's load, so it judges changes to the request path "
	    "(with BENCH_VS, the other build's count is set against it).\n"
	    "- Restart: from `kill -9` to the replacement's \"ready\" log "
	    "line; its floor is the benchmark doing kill -9, waitpid, "
	    "fork+exec and the init ping itself; p99.9 of fewer than 1,000 "
	    "samples is their maximum.\n"
	    "- Bring-up: arbord start to all workers ready (`health` polled "
	    "every ms); floor: fork+exec of as many mock_workers and each "
	    "answering its init ping.\n"
	    "- arbord CPU/req: arbord's utime+stime (/proc/PID/stat) over "
	    "the measured window / requests; client CPU: the load "
	    "generator's own CPU over the window (100 %% = one core).\n"
	    "- arbord allocs/req: malloc, calloc, realloc and the aligned "
	    "allocators called in arbord over the measured window / "
	    "requests, counted by build/alloc_count.so preloaded into it "
	    "(\"-\" without it); 0 means not one in the window.\n"
	    "- Reproduce: `make bench` (`BENCH_QUICK=1 make bench` for a "
	    "short run).\n", strlen(BENCH_ARGS));
}

int
main(int argc, char **argv)
{
	main_pid = getpid();
	settings(argc, argv);
	make_tmp();
	atexit(rm_tmp);		/* runs after proc's handler: processes first */
	proc_init();
	long nofile = proc_raise_nofile();
	if (nofile < 4 * 1024 + 3 * 1024)
		note("RLIMIT_NOFILE is %ld: the 1,024-worker figures may fail",
		    nofile);
	unsetenv("ARBOR_ENV");
	unsetenv("ARBOR_CONF");
	unsetenv("ARBOR_SOCKET");
	unsetenv("TEST_MODE");
	if (wanted("restart"))
		bench_restart();
	if (wanted("scale"))
		bench_scale();
	if (wanted("throughput"))
		bench_throughput();
	if (wanted("affinity"))
		bench_affinity();
	if (wanted("instructions"))
		bench_instructions();
	if (wanted("python"))
		bench_python();
	print_header();
	table_print();
	print_notes();
	return 0;
}
