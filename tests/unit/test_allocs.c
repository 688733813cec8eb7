/* The steady-state request path makes no heap allocation. The real
 * listener, ops, pool and children run in-process on libev's default loop
 * (a pool of 2 mock_workers), and a client in the same loop keeps 16
 * `execute echo` requests in flight on 16 connections, as the benchmark
 * does; a second case sends each request in one of 64 sessions (strict
 * affinity), all bound during the warm-up. After a warm-up, the next requests must not call malloc, calloc,
 * realloc, strdup or vasprintf from arbord's code: the calls are counted
 * with the linker's --wrap (see the Makefile), which holds under ASan too.
 * jansson's own allocations count when it allocates through the slab, as
 * in arbord (not in the ASan build, where the slab is not used for it).
 * Allocations inside libev and libc are not seen. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ev.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/xmalloc.h"
#include "registry/registry.h"
#include "supervisor/cond.h"
#include "supervisor/config.h"
#include "supervisor/ctl.h"
#include "supervisor/log.h"
#include "supervisor/ops.h"
#include "supervisor/slab.h"
#include "tests/unit/evwait.h"

#define LOOP		EV_DEFAULT_UC
#define CLIENTS		16
#define WARMUP		3000
#define MEASURED	5000
#define SESSIONS	64
#define BOUND_S		60.0	/* the most any phase may take */

/* ---- counting ------------------------------------------------------------ */

static bool counting;
static unsigned long allocs;

void	*__real_malloc(size_t);
void	*__real_calloc(size_t, size_t);
void	*__real_realloc(void *, size_t);
char	*__real_strdup(const char *);
int	 __real_vasprintf(char **, const char *, va_list);
void	*__wrap_malloc(size_t);
void	*__wrap_calloc(size_t, size_t);
void	*__wrap_realloc(void *, size_t);
char	*__wrap_strdup(const char *);
int	 __wrap_vasprintf(char **, const char *, va_list);

void *
__wrap_malloc(size_t n)
{
	allocs += counting;
	return __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t sz)
{
	allocs += counting;
	return __real_calloc(n, sz);
}

void *
__wrap_realloc(void *p, size_t n)
{
	allocs += counting;
	return __real_realloc(p, n);
}

char *
__wrap_strdup(const char *s)
{
	allocs += counting;
	return __real_strdup(s);
}

int
__wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
	allocs += counting;
	return __real_vasprintf(out, fmt, ap);
}

/* ---- the daemon, in-process ---------------------------------------------- */

static const char config_text[] =
    "bridge = { pooling_enabled = true; adapter = \"bridge_mock\"; };\n"
    "pool = { size = 2; max_overflow = 0; max_waiting = 4096; };\n"
    "worker = { health_interval_ms = 0; };\n"
    "control = { socket = \"ctl.sock\"; };\n"
    "log = { level = \"error\"; };\n"
    "environments = { dev = {}; };\n";

/* 106 bytes, as in the benchmark. */
static const char ARGS[] = "{\"question\":\"What is the capital of France?\","
    "\"context\":\"geography, round 3\",\"max_tokens\":128,\"top_p\":0.75}";

static struct {
	char		 dir[64];
	char		*conf, *sock;
	struct config	*cfg;
	struct registry	*reg;
	struct root	*root;
	struct ops_env	 ops;
	struct ctl	*ctl;
	bool		 stopped;	/* the root stopped (or gave up) */
} d;

static void on_root(struct root *r, void *arg) { d.stopped = true; }
static const struct root_events root_events = { on_root, on_root };
static void stub_shutdown(void *arg) { }

static json_t *
stub_reload(void *arg, char *err, size_t errlen)
{
	snprintf(err, errlen, "no reload here");
	return NULL;
}

static bool
pool_ready(void *arg)
{
	struct sup *s = root_subtree(d.root);
	size_t ready = 0;
	for (size_t i = 0; s && i < sup_nchildren(s); i++)
		ready += child_state(sup_child(s, i)) == CS_READY;
	return ready == 2;
}

/* ---- the client, in the same loop ---------------------------------------- */

struct cconn {
	ev_io		 w;
	struct buf	 in, out;
};

static struct cconn conns[CLIENTS];
static unsigned long sent, replied, bad;
static unsigned long target;	/* requests to send in this phase */
static bool with_sessions;	/* each request in session sent % SESSIONS */
static ev_timer wake;		/* keeps ev_run(EVRUN_ONCE) from blocking long */

static void
send_one(struct cconn *c)
{
	char head[96];
	int n = snprintf(head, sizeof head, "{\"id\":%lu,\"op\":\"execute\","
	    "\"command\":\"echo\",", ++sent);
	if (with_sessions)
		n += snprintf(head + n, sizeof head - (size_t)n,
		    "\"session_id\":\"s%lu\",", sent % SESSIONS);
	n += snprintf(head + n, sizeof head - (size_t)n, "\"args\":");
	size_t at = frame_open(&c->out);
	buf_append(&c->out, head, (size_t)n);
	buf_append(&c->out, ARGS, sizeof ARGS - 1);
	buf_append(&c->out, "}", 1);
	frame_close(&c->out, at);
	if (buf_write_fd(&c->out, c->w.fd) < 0)
		fail_msg("client write: %s", strerror(errno));
}

static void
on_client(struct ev_loop *loop, ev_io *w, int revents)
{
	struct cconn *c = (struct cconn *)w;
	ssize_t n = buf_read_fd(&c->in, w->fd);
	if (n == 0)
		fail_msg("arbord closed a client connection");
	const char *p;
	size_t len;
	while (frame_peek(&c->in, 1u << 20, &p, &len) == FRAME_OK) {
		replied++;
		bad += len < 30 || memmem(p, len, "\"ok\":true", 9) == NULL ||
		    memmem(p, len, "the capital of France?\"", 23) == NULL;
		frame_done(&c->in, len);
		if (sent < target)
			send_one(c);
	}
	buf_settle(&c->in);
}

static void
on_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
}

static void
clients_open(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", d.sock);
	for (int i = 0; i < CLIENTS; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof sa) <
		    0 && errno != EINPROGRESS && errno != EAGAIN))
			fail_msg("connect %s: %s", d.sock, strerror(errno));
		ev_io_init(&conns[i].w, on_client, fd, EV_READ);
		ev_io_start(LOOP, &conns[i].w);
	}
	ev_timer_init(&wake, on_wake, 0.05, 0.05);
	ev_timer_start(LOOP, &wake);
}

static void
clients_close(void)
{
	ev_timer_stop(LOOP, &wake);
	for (int i = 0; i < CLIENTS; i++) {
		ev_io_stop(LOOP, &conns[i].w);
		close(conns[i].w.fd);
		buf_release(&conns[i].in);
		buf_release(&conns[i].out);
	}
}

static bool
phase_done(void *arg)
{
	return replied >= target;
}

/* Sends n more requests, 16 in flight, and waits for their replies. */
static void
phase(unsigned long n)
{
	target = sent + n;
	for (int i = 0; i < CLIENTS && sent < target; i++)
		send_one(&conns[i]);
	assert_true(evwait_until(phase_done, NULL, BOUND_S, 0));
	assert_int_equal(replied, target);
	assert_int_equal(bad, 0);
}

/* ---- the test ------------------------------------------------------------ */

static void
measure(bool sessions)
{
	with_sessions = sessions;
	clients_open();
	phase(WARMUP);
	json_t *st = root_stats(d.root);
	assert_int_equal(json_integer_value(json_object_get(st, "sessions")),
	    sessions ? SESSIONS : 0);
	json_decref(st);
	/* A one-off growth (say, a buffer that takes storage of its own
	 * once, when it is left holding part of a frame: buf_settle) may
	 * fall in the window on a loaded machine; it is not a cost per
	 * request. A window with allocations is measured again, and a
	 * second one with any fails. */
	unsigned long first = 0;
	for (int w = 0; w < 2; w++) {
		allocs = 0;
		counting = true;
		phase(MEASURED);
		counting = false;
		if (allocs == 0 || w == 1)
			break;
		first = allocs;
		fprintf(stderr, "%lu allocations in %d requests: measuring "
		    "again\n", allocs, MEASURED);
	}
	clients_close();
	if (allocs > 0)
		fail_msg("%lu allocations in %d requests (%lu in the window "
		    "before)", allocs, MEASURED, first);
}

static void
test_no_allocation_per_request(void **state)
{
	measure(false);
}

/* Session lookup and binding of known sessions allocate nothing either. */
static void
test_no_allocation_per_session_request(void **state)
{
	measure(true);
}

static int
setup(void **state)
{
	char err[1024];
	memset(&d, 0, sizeof d);
	memset(conns, 0, sizeof conns);
	sent = replied = bad = 0;
	signal(SIGPIPE, SIG_IGN);
	log_setup(LOG_ERROR, LOG_TEXT);
	(void)ev_default_loop(EVFLAG_AUTO);
	snprintf(d.dir, sizeof d.dir, "/tmp/arbor-allocs-XXXXXX");
	if (mkdtemp(d.dir) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
	d.conf = xasprintf("%s/arbor.conf", d.dir);
	d.sock = xasprintf("%s/ctl.sock", d.dir);
	FILE *f = fopen(d.conf, "w");
	assert_non_null(f);
	assert_true(fputs(config_text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	d.cfg = config_load(d.conf, "dev", err, sizeof err);
	if (d.cfg == NULL)
		fail_msg("%s", err);
	slab_use_for_json();
	char build[PATH_MAX];
	const char *b = getenv("ARBOR_BUILD");	/* make test sets it */
	if (realpath(b ? b : "./build", build) == NULL)
		fail_msg("build dir: %s", strerror(errno));
	d.reg = reg_new();
	d.root = root_new(d.cfg, d.reg, build, &root_events, NULL);
	d.ops = (struct ops_env){ .root = d.root, .reg = d.reg,
	    .shutdown = stub_shutdown, .reload = stub_reload };
	d.ctl = ctl_open(d.cfg, ops_handle, &d.ops, err, sizeof err);
	if (d.ctl == NULL)
		fail_msg("%s", err);
	root_start(d.root);
	assert_true(evwait_until(pool_ready, NULL, BOUND_S, 0));
	return 0;
}

static bool
root_stopped(void *arg)
{
	return d.stopped;
}

static int
teardown(void **state)
{
	if (d.root != NULL) {
		root_stop(d.root);
		evwait_until(root_stopped, NULL, BOUND_S, 0);
	}
	ctl_close(d.ctl);
	root_free(d.root);	/* kills what still runs */
	reg_free(d.reg);
	config_free(d.cfg);
	unlink(d.conf);
	rmdir(d.dir);
	free(d.conf);
	free(d.sock);
	slab_release();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_allocation_per_request,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_no_allocation_per_session_request, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
