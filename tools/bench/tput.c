/* Sections 1 and 4: throughput and latency through arbord against the
 * direct-pipe floor, with mock_worker pools of 1, 2 and 8 and with the
 * Python bridge worker. Each arbord and its floor run side by side, their
 * runs interleaved, so both see the same machine. */
#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proto/xmalloc.h"
#include "tools/bench/beam.h"
#include "tools/bench/bench.h"
#include "tools/bench/proc.h"
#include "tools/bench/relay.h"
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

/* The brokers of one bed: this build's arbord, the other one (BENCH_VS's
 * or with BENCH_VS_POLICY) or NULL, and
 * the relay and the BEAM port pool (mock_worker beds) or NULL. */
struct pair {
	struct arbord	*a[2];
	struct relay	*relay;
	struct beam	*beam;
};
#define NBROKERS	5

/* What a bed measures: per shape, each broker's runs. */
struct runs {
	struct series	 s[MAX_SHAPES], vs[MAX_SHAPES], relay[MAX_SHAPES],
			 beam[MAX_SHAPES], beam_sock[MAX_SHAPES];
};

/* The row of another broker (BENCH_VS's arbord, or the relay) for shape
 * k, after this build's, saying how this build's arbord compares with it. */
static void
other_row(const struct bed *b, int k, const char *who, const char *ours,
    const struct series *s, const struct series *other,
    const struct series *floor)
{
	char label[320];
	int nc = b->shapes[k].clients;
	snprintf(label, sizeof label, "%s: %d × %s, %d client%s, depth %d "
	    "(%s: %.2f× of it)", who, b->size, b->what, nc, nc == 1 ? "" : "s",
	    b->shapes[k].depth, ours, series_median(s).rps /
	    series_median(other).rps);
	series_row(b->sec, label, other, floor);
}

static void
rows(const struct bed *b, const struct series *direct, const struct runs *rr)
{
	const struct series *s = rr->s, *vs = rr->vs;
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
		const struct series *floor = &direct[floor_k(b, &b->shapes[k])];
		series_row(b->sec, label, &s[k], floor);
		if (vs[k].n > 0)
			other_row(b, k, B.vs_name, "this build",
			    &s[k], &vs[k], floor);
		if (rr->relay[k].n > 0)
			other_row(b, k, "relay", "arbord", &s[k],
			    &rr->relay[k], floor);
		if (rr->beam_sock[k].n > 0)
			other_row(b, k, "beam, clients over a socket", "arbord",
			    &s[k], &rr->beam_sock[k], floor);
		if (rr->beam[k].n > 0)
			other_row(b, k, "beam, clients in the VM", "arbord",
			    &s[k], &rr->beam[k], floor);
	}
}

/* Run r of every picked shape on each broker of p (arbord, BENCH_VS's,
 * the relay, the BEAM pool at depth 1 with clients over its socket and in
 * its VM: those not NULL), which goes first rotating with r. */
static void
run_shapes(const struct bed *b, const struct pair *p,
    struct load_ep *const cep[4], int r, struct runs *rr)
{
	for (int k = 0; k < b->nshapes; k++) {
		const struct shape *sh = &b->shapes[k];
		if (!shape_picked(sh))
			continue;
		for (int i = 0; i < NBROKERS; i++) {
			int which = (i + r) % NBROKERS;
			bool beam = p->beam != NULL && sh->depth == 1;
			if (which == 4 && beam)
				beam_run(p->beam, sh->clients, b->command,
				    &rr->beam[k]);
			else if (which == 3 && beam)
				run_load_via(cep[3], sh->clients, b->command,
				    1, beam_pid(p->beam), &rr->beam_sock[k]);
			else if (which == 2 && p->relay != NULL)
				run_load_via(cep[2], sh->clients, b->command,
				    sh->depth, relay_pid(p->relay), &rr->relay[k]);
			else if (which < 2 && p->a[which] != NULL)
				run_load(cep[which], sh->clients, LOAD_CONTROL,
				    b->command, sh->depth, p->a[which],
				    which == 0 ? &rr->s[k] : &rr->vs[k]);
		}
	}
}

/* n connections to the Unix socket at path, of the relay or the BEAM
 * pool (who), or NULL if path is. */
static struct load_ep *
socket_eps(const char *who, const char *path, int n)
{
	if (path == NULL)
		return NULL;
	struct load_ep *ep = xcalloc((size_t)n, sizeof *ep);
	for (int i = 0; i < n; i++) {
		int fd = unix_connect(path);
		if (fd < 0)
			die("connect #%d to the %s: %s", i + 1, who,
			    strerror(errno));
		ep[i].rfd = ep[i].wfd = fd;
	}
	return ep;
}

static void
run_bed(const struct bed *b, const struct pair *p, const struct wk *w)
{
	struct runs *rr = xcalloc(1, sizeof *rr);
	struct series *direct = xcalloc((size_t)b->size + 1, sizeof *direct);
	int maxc = 0;
	for (int k = 0; k < b->nshapes; k++)
		maxc = b->shapes[k].clients > maxc ? b->shapes[k].clients : maxc;
	struct load_ep *wep = workers_eps(w, b->size);
	struct load_ep *cep[4] = { clients_open(p->a[0], maxc),
	    p->a[1] ? clients_open(p->a[1], maxc) : NULL,
	    socket_eps("relay", p->relay ? relay_path(p->relay) : NULL, maxc),
	    socket_eps("BEAM pool", p->beam ? beam_path(p->beam) : NULL,
	    maxc) };
	for (int r = 0; r < B.runs; r++) {
		note("%s pool of %d: run %d/%d", b->what, b->size, r + 1, B.runs);
		for (int k = 1; k <= b->size; k++)
			if (k == b->size || floor_needed(b, k))
				run_load(wep, k, LOAD_WORKER, b->command, 1, NULL,
				    &direct[k]);
		run_shapes(b, p, cep, r, rr);
	}
	for (int i = 0; i < 4; i++)
		if (cep[i] != NULL)
			clients_close(cep[i], maxc);
	free(wep);
	rows(b, direct, rr);
	free(direct);
	free(rr);
}

/* Starts an arbord of the build in dir (NULL: this one), its workers
 * under policy (NULL: B.policy). */
static struct arbord *
start_ready(const struct bed *b, const struct arbord_conf *conf,
    const char *dir, const char *policy)
{
	struct arbord_conf c = *conf;
	c.build = dir;
	c.sched_policy = policy;
	struct arbord *a = arbord_start(&c);
	if (arbord_wait_ready(a, 120) < 0)
		die("arbord%s%s did not bring up %d %s workers", dir ? " of " :
		    "", dir ? dir : "", b->size, b->what);
	return a;
}

static void
bed(const struct bed *b, const struct arbord_conf *conf, char **argv)
{
	bool mock = b->sec == SEC_TPUT;
	struct pair p = { { start_ready(b, conf, NULL, NULL),
	    B.vs_name ? start_ready(b, conf, B.vs, B.vs_policy) : NULL },
	    mock && B.relay ? relay_start(argv, b->size) : NULL,
	    mock && B.beam && beam_available() ? beam_start(argv, b->size) :
	    NULL };
	struct wk *w = calloc((size_t)b->size, sizeof *w);
	wk_spawn(argv, w, b->size, 120);
	run_bed(b, &p, w);
	wk_stop(w, b->size);
	free(w);
	arbord_stop(p.a[0]);
	arbord_stop(p.a[1]);
	relay_stop(p.relay);
	beam_stop(p.beam);
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
		if (sizes[i] == 2)
			bench_pairs(2, " (where the issue's targets were set: "
			    "about 235,000/s at a p50 of 7.6 µs)");
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
