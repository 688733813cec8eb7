/* Section 1b: the cost of session affinity. Section 1's throughput run at
 * 16 clients, depth 1, on pools of 2 and 8 mock_workers, with every request
 * in one of 10,000 live sessions (strict affinity; each client cycles
 * through its own share of the sessions, all of them bound before anything
 * is measured), next to the same load without sessions on a second arbord
 * with the same config. The runs of the two are interleaved, so both see
 * the same machine; "vs floor" is with sessions / without. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "tools/bench/bench.h"
#include "tools/bench/proc.h"
#include "tools/bench/run.h"
#include "tools/bench/sections.h"

#define SESSIONS	10000
#define CLIENTS		16
#define TTL_MS		(24L * 3600 * 1000)	/* none expires during the run */

static struct arbord *
start(int size)
{
	struct arbord_conf c = {
		.size = size, .adapter = "bridge_mock", .log_level = "warn",
		.affinity = "strict", .session_ttl_ms = TTL_MS,
	};
	struct arbord *a = arbord_start(&c);
	if (arbord_wait_ready(a, 120) < 0)
		die("arbord did not bring up %d mock_workers", size);
	return a;
}

/* The number of bound sessions in arbord's `stats`, or -1. */
static long
bound_sessions(const struct arbord *a)
{
	int fd = arbord_connect(a);
	if (fd < 0)
		return -1;
	json_t *r = arbord_call(fd, "{\"id\":1,\"op\":\"stats\"}");
	json_t *n = json_object_get(json_object_get(r, "stats"), "sessions");
	long v = json_is_integer(n) ? (long)json_integer_value(n) : -1;
	json_decref(r);
	close(fd);
	return v;
}

void
bind_sessions(const struct arbord *a, int nsess)
{
	int fd = arbord_connect(a);
	if (fd < 0)
		die("connect to arbord failed");
	char sid[32], req[512];
	for (int k = 0; k < nsess; k++) {
		load_session_id(sid, sizeof sid, k);
		snprintf(req, sizeof req, "{\"id\":%d,\"op\":\"execute\","
		    "\"command\":\"echo\",\"session_id\":\"%s\",\"args\":%s}",
		    k + 1, sid, BENCH_ARGS);
		json_t *r = arbord_call(fd, req);
		bool ok = json_is_true(json_object_get(r, "ok"));
		json_decref(r);
		if (!ok)
			die("the first request of session %s failed", sid);
	}
	close(fd);
	long n = bound_sessions(a);
	if (n != nsess)
		die("%ld sessions bound after binding %d", n, nsess);
}

static void
pool_of(int size)
{
	struct arbord *plain = start(size), *sess = start(size);
	note("affinity, pool of %d: binding %d sessions", size, SESSIONS);
	bind_sessions(sess, SESSIONS);
	struct load_ep *pep = clients_open(plain, CLIENTS);
	struct load_ep *sep = clients_open(sess, CLIENTS);
	struct series without = { 0 }, with = { 0 };
	for (int r = 0; r < B.runs; r++) {
		note("affinity, pool of %d: run %d/%d", size, r + 1, B.runs);
		run_load(pep, CLIENTS, LOAD_CONTROL, "echo", 1,
		    plain, &without);
		run_load_sessions(sep, CLIENTS, "echo", SESSIONS,
		    sess, &with);
	}
	double rss_plain = (double)proc_rss_kib(arbord_pid(plain));
	double rss_sess = (double)proc_rss_kib(arbord_pid(sess));
	long n = bound_sessions(sess);
	if (n != SESSIONS)
		note("affinity, pool of %d: %ld sessions bound after the runs, "
		    "not %d", size, n, SESSIONS);
	clients_close(pep, CLIENTS);
	clients_close(sep, CLIENTS);

	char label[200];
	snprintf(label, sizeof label, "arbord: %d × mock_worker, %d clients, "
	    "depth 1, no sessions (strict affinity configured)", size, CLIENTS);
	series_row_rss(SEC_AFFINITY, label, &without, NULL, rss_plain);
	double cw = series_median(&with).cpu_us;
	double co = series_median(&without).cpu_us;
	snprintf(label, sizeof label, "arbord: %d × mock_worker, %d clients, "
	    "depth 1, every request in one of %d,%03d live sessions, strict "
	    "(floor: no sessions; CPU/req %.2f× of it)", size, CLIENTS,
	    SESSIONS / 1000, SESSIONS % 1000, cw / co);
	series_row_rss(SEC_AFFINITY, label, &with, &without, rss_sess);
	arbord_stop(plain);
	arbord_stop(sess);
}

void
bench_affinity(void)
{
	pool_of(2);
	pool_of(8);
}
