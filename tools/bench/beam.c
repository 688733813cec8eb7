#include "tools/bench/beam.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/xmalloc.h"
#include "tools/bench/bench.h"
#include "tools/bench/proc.h"

#define START_S		120
#define LINE_MAX_	256

struct beam {
	pid_t	pid;
	char	*dir, *sock;
	int	wfd, rfd;	/* its stdin and stdout */
	char	line[LINE_MAX_];
};

bool
beam_available(void)
{
	static int known = -1;
	if (known < 0) {
		char out[256];
		char *probe[] = { "erl", "-noshell", "-eval", "halt().", NULL };
		known = proc_capture(probe, out, sizeof out) == 0;
		if (!known)
			note("beam: no escript here (Debian: erlang-base), "
			    "its rows left out");
	}
	return known;
}

/* The next line the VM prints, within timeout_s; dies if it ends first. */
static const char *
read_line(struct beam *b, double timeout_s)
{
	size_t n = 0;
	double end = now_s() + timeout_s;
	while (n == 0 || b->line[n - 1] != '\n') {
		struct pollfd p = { .fd = b->rfd, .events = POLLIN };
		int left = (int)((end - now_s()) * 1000);
		if (left <= 0 || proc_interrupted())
			die("beam: no answer within %.0f s", timeout_s);
		if (poll(&p, 1, left) <= 0)
			continue;
		ssize_t got = read(b->rfd, b->line + n, 1);
		if (got <= 0)
			die("beam: the VM ended (%s)", got < 0 ?
			    strerror(errno) : "end of file");
		if (++n == sizeof b->line)
			die("beam: line too long");
	}
	b->line[n - 1] = '\0';
	return b->line;
}

struct beam *
beam_start(char *const argv[], int n)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	static int serial;
	struct beam *b = xcalloc(1, sizeof *b);
	b->dir = tmp_dir("beam", &serial);
	b->sock = xasprintf("%s/beam.sock", b->dir);
	char *script = xasprintf("%s/tools/bench/beam_pool.escript", B.root);
	char *count = xasprintf("%d", n);
	char *av[] = { "escript", script, argv[0], count, b->sock, NULL };
	b->pid = proc_spawn(av, in[0], out[1], 2, false);
	close(in[0]);
	close(out[1]);
	b->wfd = in[1];
	b->rfd = out[0];
	free(script);
	free(count);
	if (strcmp(read_line(b, START_S), "ready") != 0)
		die("beam: unexpected first line: %s", b->line);
	return b;
}

pid_t
beam_pid(const struct beam *b)
{
	return b->pid;
}

const char *
beam_path(const struct beam *b)
{
	return b->sock;
}

void
beam_run(struct beam *b, int clients, const char *command, struct series *s)
{
	char *cmd = xasprintf("run %d %.0f %.0f {\"id\":1,\"command\":\"%s\","
	    "\"args\":%s}\n", clients, B.warmup * 1e3, B.secs * 1e3, command,
	    BENCH_ARGS);
	size_t len = strlen(cmd);
	if (write(b->wfd, cmd, len) != (ssize_t)len)
		die("beam: write: %s", strerror(errno));
	free(cmd);
	unsigned long long count, p50, p99, p999, ticks;
	const char *l = read_line(b, B.warmup + B.secs + 60);
	if (sscanf(l, "%llu %llu %llu %llu %llu", &count, &p50, &p99, &p999,
	    &ticks) != 5)
		die("beam: bad result line: %s", l);
	if (s->n >= MAX_RUNS)
		return;
	int i = s->n++;
	s->rps[i] = (double)count / B.secs;
	s->p50[i] = (double)p50 / 1e3;
	s->p99[i] = (double)p99 / 1e3;
	s->p999[i] = (double)p999 / 1e3;
	s->cpu_us[i] = count ? (double)ticks / (double)sysconf(_SC_CLK_TCK) /
	    (double)count * 1e6 : NAN;
	s->allocs[i] = s->client[i] = NAN;
}

void
beam_stop(struct beam *b)
{
	if (b == NULL)
		return;
	close(b->wfd);		/* end of input: it halts, its ports close */
	if (proc_wait(b->pid, 10000) < 0)
		proc_kill_wait(b->pid);
	close(b->rfd);
	unlink(b->sock);
	rmdir(b->dir);
	free(b->sock);
	free(b->dir);
	free(b);
}
