/* Sections 1 and 4: throughput and latency through arbord against the
 * direct-pipe floor, with mock_worker pools of 1, 2 and 8 and with the
 * Python bridge worker. Each arbord and its floor run side by side, their
 * runs interleaved, so both see the same machine. */
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proto/xmalloc.h"
#include "tools/bench/bench.h"
#include "tools/bench/proc.h"
#include "tools/bench/run.h"
#include "tools/bench/sections.h"

struct shape {
	int	clients, depth;
};

static const struct shape mock_shapes[] = {
	{ 1, 1 }, { 1, 8 }, { 16, 1 }, { 16, 8 }, { 64, 1 }, { 64, 8 },
};
static const struct shape python_shapes[] = {
	{ 1, 1 }, { 16, 1 }, { 16, 8 },
};
#define NSHAPES(a)	((int)(sizeof a / sizeof a[0]))
#define MAX_SHAPES	8

/* One pool of size workers under arbord and the same number direct. */
struct bed {
	enum section	 sec;
	const char	*what;		/* "mock_worker" or "python" */
	const char	*command;	/* the request's command */
	int		 size;
	const struct shape *shapes;
	int		 nshapes;
};

/* BENCH_SHAPES ("16x1,1x8": clients x depth) and BENCH_POOLS ("2,8")
 * narrow section 1 while working on one case. */
static bool
picked(const char *env, const char *item)
{
	const char *v = getenv(env);
	if (v == NULL || *v == '\0')
		return true;
	size_t n = strlen(item);
	for (const char *p = v; (p = strstr(p, item)) != NULL; p += n)
		if ((p == v || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

static bool
shape_picked(const struct shape *sh)
{
	char item[32];
	snprintf(item, sizeof item, "%dx%d", sh->clients, sh->depth);
	return picked("BENCH_SHAPES", item);
}

/* The floor of a shape: as many requests in flight directly on the
 * workers' pipes as the shape can have on them through arbord, one per
 * worker: a single client at depth 1 is set against one worker answering
 * one request at a time, more against the whole pool. */
static int
floor_k(const struct bed *b, const struct shape *sh)
{
	int k = sh->clients * sh->depth;
	return k < b->size ? k : b->size;
}

static bool
floor_needed(const struct bed *b, int k)
{
	for (int i = 0; i < b->nshapes; i++)
		if (shape_picked(&b->shapes[i]) && floor_k(b, &b->shapes[i]) == k)
			return true;
	return false;
}

static void
rows(const struct bed *b, const struct series *direct, const struct series *s)
{
	char label[160];
	for (int k = 1; k <= b->size; k++) {
		if (direct[k].n == 0)
			continue;
		snprintf(label, sizeof label, "direct: %d × %s over pipes, "
		    "depth 1", k, b->what);
		series_row(b->sec, label, &direct[k], NULL);
	}
	for (int k = 0; k < b->nshapes; k++) {
		if (!shape_picked(&b->shapes[k]))
			continue;
		int nc = b->shapes[k].clients;
		snprintf(label, sizeof label, "arbord: %d × %s, %d client%s, "
		    "depth %d", b->size, b->what, nc, nc == 1 ? "" : "s",
		    b->shapes[k].depth);
		series_row(b->sec, label, &s[k], &direct[floor_k(b, &b->shapes[k])]);
	}
}

static void
run_bed(const struct bed *b, struct arbord *a, const struct wk *w)
{
	struct series s[MAX_SHAPES] = { { 0 } };
	struct series *direct = xcalloc((size_t)b->size + 1, sizeof *direct);
	int maxc = 0;
	for (int k = 0; k < b->nshapes; k++)
		maxc = b->shapes[k].clients > maxc ? b->shapes[k].clients : maxc;
	struct load_ep *wep = workers_eps(w, b->size);
	struct load_ep *cep = clients_open(a, maxc);
	for (int r = 0; r < B.runs; r++) {
		note("%s pool of %d: run %d/%d", b->what, b->size, r + 1, B.runs);
		for (int k = 1; k <= b->size; k++)
			if (k == b->size || floor_needed(b, k))
				run_load(wep, k, LOAD_WORKER, b->command, 1, NULL,
				    &direct[k]);
		for (int k = 0; k < b->nshapes; k++)
			if (shape_picked(&b->shapes[k]))
				run_load(cep, b->shapes[k].clients, LOAD_CONTROL,
			    b->command, b->shapes[k].depth, a, &s[k]);
	}
	clients_close(cep, maxc);
	free(wep);
	rows(b, direct, s);
	free(direct);
}

static void
bed(const struct bed *b, const struct arbord_conf *conf, char **argv)
{
	struct arbord *a = arbord_start(conf);
	if (arbord_wait_ready(a, 120) < 0)
		die("arbord did not bring up %d %s workers", b->size, b->what);
	struct wk *w = calloc((size_t)b->size, sizeof *w);
	wk_spawn(argv, w, b->size, 120);
	run_bed(b, a, w);
	wk_stop(w, b->size);
	free(w);
	arbord_stop(a);
}

void
bench_throughput(void)
{
	static const int sizes[] = { 1, 2, 8 };
	for (int i = 0; i < 3; i++) {
		char item[16];
		snprintf(item, sizeof item, "%d", sizes[i]);
		if (!picked("BENCH_POOLS", item))
			continue;
		struct bed b = {
			.sec = SEC_TPUT, .what = "mock_worker", .command = "echo",
			.size = sizes[i], .shapes = mock_shapes,
			.nshapes = NSHAPES(mock_shapes),
		};
		struct arbord_conf c = {
			.size = sizes[i], .adapter = "bridge_mock",
			.log_level = "warn",
		};
		bed(&b, &c, mock_argv());
	}
}

void
bench_python(void)
{
	struct bed b = {
		.sec = SEC_PYTHON, .what = "Python bridge_worker", .command = "ping",
		.size = 2, .shapes = python_shapes,
		.nshapes = NSHAPES(python_shapes),
	};
	char **argv = python_argv();
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "[\"%s\", \"%s\"]", argv[0], argv[1]);
	struct arbord_conf c = {
		.size = 2, .adapter = "python_pool", .command = cmd,
		.log_level = "warn",
	};
	bed(&b, &c, argv);
}
