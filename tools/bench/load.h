/* load: a closed-loop load generator on one thread (epoll).
 *
 * Each endpoint is one connection: a control socket of arbord (rfd == wfd)
 * or the stdout/stdin pipes of a worker. Every endpoint keeps `depth`
 * requests in flight and sends the next one as soon as a reply comes
 * back; reads and writes are batched per endpoint and wake-up. After a
 * warm-up, replies are counted and their latencies (send to receipt) kept
 * for `secs`; then no new request is sent and the ones in flight drain. */
#ifndef ARBOR_BENCH_LOAD_H
#define ARBOR_BENCH_LOAD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum load_proto {
	LOAD_CONTROL,	/* {"id","op":"execute","command","args"} -> "ok" */
	LOAD_WORKER,	/* {"id","command","args"} -> "success" (SPEC 5) */
};

struct load_ep {
	int	rfd, wfd;	/* set non-blocking by load_run; not closed */
};

struct load_spec {
	enum load_proto proto;
	const char *command;	/* e.g. "echo" */
	const char *args;	/* a JSON object; echo must return it */
	int	 depth;		/* requests in flight per endpoint, 1..1000 */
	double	 warmup, secs;
	bool	 tolerate_errors; /* error replies and lost peers are counted */
	/* LOAD_CONTROL: when > 0, every request carries a session_id, endpoint
	 * i of n cycling through sessions i, i + n, i + 2n, ... below this
	 * (each named as load_session_id gives). */
	int	 sessions;
	/* Called as the measured window opens (phase 0) and closes (1). */
	void	(*mark)(void *arg, int phase);
	void	*mark_arg;
};

struct load_result {
	uint64_t n;		/* replies in the measured window */
	uint64_t errors;	/* error replies among them */
	double	 secs;		/* the window's length */
	double	 rps;
	double	 p50, p99, p999;	/* latency, microseconds */
	double	 client_cpu;	/* our CPU time / window (1.0 = one core) */
};

/* 0, or -1 after printing why (a protocol error, a lost endpoint, or a
 * reply that is not what echo should give). */
int	load_run(const struct load_ep *ep, int n, const struct load_spec *,
	    struct load_result *);

/* The session_id of session k: "bench-<k>". */
int	load_session_id(char *out, size_t n, int k);

/* Finds the top-level "id" and the boolean okkey of a reply without
 * building a JSON tree (nested values are skipped). 0, or -1 if p[0..n)
 * is not such an object. */
int	load_scan_reply(const char *p, size_t n, const char *okkey,
	    uint64_t *id, bool *ok);

#endif
