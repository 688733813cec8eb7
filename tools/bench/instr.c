/* Section 1c: arbord's user-space instructions per request, counted by
 * callgrind. Unlike every other figure here it does not depend on what
 * else the machine is doing, so it can judge a change to the request path
 * that the wall clock cannot tell from noise (with BENCH_VS, against the
 * other build's arbord under the same load).
 *
 * arbord runs under callgrind with instrumentation off while it starts,
 * on from before the warm-up; the counters are zeroed as the measured
 * window opens and dumped as it closes, and the count is divided by the
 * replies in the window. The load is section 1's (16 clients on 2
 * mock_workers, at depth 1 and 8), only slower, and section 1b's (every
 * request in one of 10,000 sessions bound before, strict affinity). */
#include <math.h>
#include <stdio.h>

#include "tools/bench/bench.h"
#include "tools/bench/proc.h"
#include "tools/bench/run.h"
#include "tools/bench/sections.h"
#include "tools/bench/table.h"

#define POOL		2
#define CLIENTS		16
#define WARMUP_S	1.0	/* callgrind translates code as it first runs */
#define SESSIONS	10000
#define TTL_MS		(24L * 3600 * 1000)	/* none expires during the run */

static void
on_mark(void *arg, int phase)
{
	if (arbord_callgrind(arg, phase == 0 ? "-z" : "-d", NULL) < 0)
		die("callgrind_control %s failed", phase == 0 ? "-z" : "-d");
}

/* Instructions per request of the arbord in build at depth; with sessions,
 * every request is in one of them (strict affinity, all bound first). */
static double
per_request(const char *build, int depth, int sessions)
{
	struct arbord_conf c = {
		.size = POOL, .adapter = "bridge_mock", .log_level = "warn",
		.build = build, .callgrind = true,
		.affinity = sessions ? "strict" : NULL,
		.session_ttl_ms = sessions ? TTL_MS : 0,
	};
	struct arbord *a = arbord_start(&c);
	if (arbord_wait_ready(a, 120) < 0)
		die("arbord under callgrind did not bring up %d workers", POOL);
	if (sessions)
		bind_sessions(a, sessions);
	if (arbord_callgrind(a, "-i", "on") < 0)
		die("callgrind_control -i on failed");
	struct load_ep *ep = clients_open(a, CLIENTS);
	struct load_spec spec = {
		.proto = LOAD_CONTROL, .command = "echo", .args = BENCH_ARGS,
		.depth = depth, .warmup = B.warmup > WARMUP_S ? B.warmup :
		WARMUP_S, .secs = B.secs, .mark = on_mark, .mark_arg = a,
		.sessions = sessions,
	};
	struct load_result r;
	if (load_run(ep, CLIENTS, &spec, &r) < 0)
		die("load run under callgrind failed (depth %d)", depth);
	uint64_t n = arbord_callgrind_dumped(a);
	clients_close(ep, CLIENTS);
	arbord_stop(a);
	if (n == 0 || r.n == 0)
		die("no instruction count from callgrind (depth %d)", depth);
	return (double)n / (double)r.n;
}

/* ratio: this build's count over this one's (the BENCH_VS row), or NaN. */
static void
row(const char *who, int depth, int sessions, double count, double ratio)
{
	char label[256], vs[64] = "", sess[96] = "";
	if (!isnan(ratio))
		snprintf(vs, sizeof vs, " (this build: %s of it)",
		    fmt_ratio(ratio));
	if (sessions)
		snprintf(sess, sizeof sess, ", every request in one of "
		    "%d,%03d sessions, strict", sessions / 1000,
		    sessions % 1000);
	snprintf(label, sizeof label, "%s: %d × mock_worker, %d clients, "
	    "depth %d%s: %s instructions per request in user space%s", who,
	    POOL, CLIENTS, depth, sess, fmt_rate(count), vs);
	struct trow t = { .cell = { [COL_CASE] = label } };
	table_add(SEC_INSTR, section_name(SEC_INSTR), &t);
}

void
bench_instructions(void)
{
	char out[256];
	char *probe[] = { "valgrind", "--version", NULL };
	if (proc_capture(probe, out, sizeof out) < 0) {
		note("instructions: no valgrind here, section left out");
		return;
	}
	static const struct { int depth, sessions; } runs[] = {
		{ 1, 0 }, { 8, 0 }, { 1, SESSIONS },
	};
	for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
		int d = runs[i].depth, s = runs[i].sessions;
		note("instructions: depth %d%s under callgrind", d,
		    s ? ", sessions" : "");
		double n = per_request(NULL, d, s);
		double vs = B.vs ? per_request(B.vs, d, s) : NAN;
		row("arbord", d, s, n, NAN);
		if (B.vs)
			row("arbord of BENCH_VS", d, s, vs, n / vs);
	}
}
