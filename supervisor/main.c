/* arbord: the arbor daemon. CLI, config, the event loop, exit codes. */
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/msg.h"
#include "proto/uring.h"
#include "proto/xmalloc.h"
#include "registry/registry.h"
#include "supervisor/batch.h"
#include "supervisor/cond.h"
#include "supervisor/config.h"
#include "supervisor/ctl.h"
#include "supervisor/keeper.h"
#include "supervisor/log.h"
#include "supervisor/ops.h"
#include "supervisor/slab.h"
#include "supervisor/strays.h"
#include "supervisor/version.h"

#define EXIT_GAVE_UP	1
#define EXIT_USAGE	64
#define EXIT_CONFIG	78
#define SLAB_TRIM_S	2.0

struct daemon {
	struct config	*cfg;
	struct registry	*reg;
	struct root	*root;
	struct ctl	*ctl;
	struct ops_env	 ops;
	ev_signal	 sig_hup;
	ev_async	 w_stop;	/* SIGTERM/SIGINT came (on_stop_signal) */
	sig_atomic_t	 stops_seen;	/* of stops_caught, those acted on */
	ev_prepare	 w_drain;	/* shutting down: waits for pending jobs */
	ev_timer	 t_drain;	/* ... up to worker.shutdown_timeout_ms */
	ev_prepare	 w_flush;	/* the tree is down: waits for the last
					 * replies to be written ... */
	ev_timer	 t_flush;	/* ... up to worker.shutdown_timeout_ms */
	ev_timer	 t_trim;	/* slab_trim(), every SLAB_TRIM_S while
					 * the slab holds a surplus */
	const char	*conf_path, *env_arg;	/* as given: reload reads them again */
	char		**argv;		/* main's: the keeper retitles its copy */
	int		 verbosity;
	int		 exit_code;
	bool		 stopping;
	bool		 signalled;	/* a SIGTERM or SIGINT has come: the
					 * next one kills the workers */
	bool		 forced;	/* a second one came: no waiting for
					 * replies unread either */
	bool		 finished;	/* stopped: later signals do nothing */
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: arbord [-c FILE] [-e ENV] [-t] [-v|-q] [--version] [-h]\n"
	    "  -c FILE    config file (default $ARBOR_CONF, else /etc/arbor/arbor.conf)\n"
	    "  -e ENV     environment (default $ARBOR_ENV, else default_environment, else dev)\n"
	    "  -t         check the config, print the resolved settings and exit\n"
	    "  -v / -q    more (debug) / less (warnings and errors) logging\n"
	    "  --version  print the version and exit\n"
	    "  -h         print this help and exit (also --help)\n");
}

/* What -t, -h or --version printed reached stdout: 0, or a message and
 * 1 (settings lost on a full disk are no checked config). */
static int
flush_stdout(void)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	fprintf(stderr, "arbord: cannot write to stdout: %s\n",
	    strerror(errno));
	return EXIT_GAVE_UP;
}

struct args {
	const char	*conf, *env;
	bool		 test;
	int		 verbosity;	/* -1 quiet, 0, 1 verbose */
};

/* -v or -q: one or the other ([-v|-q]); both say nothing clear. */
static void
set_verbosity(struct args *a, int v)
{
	if (a->verbosity != 0 && a->verbosity != v) {
		fprintf(stderr, "arbord: -v and -q exclude each other\n");
		usage(stderr);
		exit(EXIT_USAGE);
	}
	a->verbosity = v;
}

/* Parses argv into a; exits 0 for -h/--version and 64 on misuse. */
static void
parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:e:tvqh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': a->conf = optarg; break;
		case 'e': a->env = optarg; break;
		case 't': a->test = true; break;
		case 'v':
		case 'q':
			set_verbosity(a, ch == 'v' ? 1 : -1);
			break;
		case 'V':
			printf("arbord %s\n", ARBOR_VERSION);
			exit(flush_stdout());
		case 'h': usage(stdout); exit(flush_stdout());
		default: usage(stderr); exit(EXIT_USAGE);
		}
		if ((ch == 'c' || ch == 'e') && optarg[0] == '\0') {
			/* names nothing: not a fall back to the defaults */
			fprintf(stderr, "arbord: -%c: empty value\n", ch);
			usage(stderr);
			exit(EXIT_USAGE);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "arbord: unexpected argument '%s'\n",
		    argv[optind]);
		usage(stderr);
		exit(EXIT_USAGE);
	}
	if (a->conf == NULL) {
		const char *env = getenv("ARBOR_CONF");	/* empty: unset */
		a->conf = env != NULL && env[0] != '\0' ? env :
		    "/etc/arbor/arbor.conf";
	}
}

/* The directory of mock_worker (adapter bridge_mock): beside this
 * executable, as in build/, else ARBOR_PKGLIBDIR, where `make install` puts
 * it (LIBDIR/arbor, compiled in by the Makefile). */
static char *
mock_dir(void)
{
	char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
	if (n < 0)
		return xstrdup(ARBOR_PKGLIBDIR);
	path[n] = '\0';
	char *dir = xstrdup(dirname(path));
	char *mock = xasprintf("%s/mock_worker", dir);
	bool beside = access(mock, X_OK) == 0;
	free(mock);
	if (beside)
		return dir;
	free(dir);
	return xstrdup(ARBOR_PKGLIBDIR);
}

/* The tree is down and every reply written (or given up on): exit. */
static void
finish(struct daemon *d)
{
	ev_prepare_stop(EV_DEFAULT_UC, &d->w_flush);
	ev_timer_stop(EV_DEFAULT_UC, &d->t_flush);
	ctl_close(d->ctl);
	d->ctl = NULL;
	d->finished = true;
	log_info("arbord", "stopped");
	ev_break(EV_DEFAULT_UC, EVBREAK_ALL);
}

static void
on_flush_check(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct daemon *d = w->data;
	batch_flush();
	if (ctl_unsent(d->ctl) == 0)
		finish(d);
}

static void
on_flush_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	size_t n = ctl_unsent(d->ctl);
	log_warn("arbord", "%zu reply %s still unread after %d ms: closing "
	    "anyway", n, log_plural(n, "byte", "bytes"),
	    d->cfg->worker.shutdown_timeout_ms);
	finish(d);
}

/* A second signal forces the stop: the replies still queued are not
 * waited for either. */
static void
finish_forced(struct daemon *d)
{
	size_t n = ctl_unsent(d->ctl);
	log_warn("arbord", "second signal: closing with %zu reply %s "
	    "still unread", n, log_plural(n, "byte", "bytes"));
	finish(d);
}

/* The last replies (worker_crashed ...) go out before the connections
 * close: a client still reading one (a large reply) gets it whole, up to
 * worker.shutdown_timeout_ms. */
static void
on_root_stopped(struct root *r, void *arg)
{
	struct daemon *d = arg;
	batch_flush();
	if (ctl_unsent(d->ctl) == 0) {
		finish(d);
		return;
	}
	if (d->forced) {
		finish_forced(d);
		return;
	}
	ev_prepare_init(&d->w_flush, on_flush_check);
	ev_timer_init(&d->t_flush, on_flush_timeout,
	    d->cfg->worker.shutdown_timeout_ms / 1000.0, 0.);
	d->w_flush.data = d->t_flush.data = d;
	ev_prepare_start(EV_DEFAULT_UC, &d->w_flush);
	ev_timer_start(EV_DEFAULT_UC, &d->t_flush);
}

/* Ends a drain in progress without stopping the tree. */
static void
stop_drain(struct daemon *d)
{
	ev_prepare_stop(EV_DEFAULT_UC, &d->w_drain);
	ev_timer_stop(EV_DEFAULT_UC, &d->t_drain);
}

/* Every request still held gets its one reply now (waiting ones, and any
 * in flight on a subtree a reload replaced, whose workers are killed);
 * on_root_stopped follows once every worker is reaped. */
static void
on_gave_up(struct root *r, void *arg)
{
	struct daemon *d = arg;
	d->exit_code = EXIT_GAVE_UP;
	log_error("arbord", "the root supervisor gave up: exiting 1");
	d->stopping = true;
	d->ops.draining = true;
	stop_drain(d);
	root_abandon(r, ERR_SHUTTING_DOWN,
	    "arbord is stopping: the root supervisor gave up");
	batch_flush();
	root_stop(r);
}

/* The drain is over (no job pending, or its time is up): stop the tree. */
static void
end_drain(struct daemon *d)
{
	if (!ev_is_active(&d->w_drain))
		return;
	stop_drain(d);
	root_fail_waiting(d->root, ERR_SHUTTING_DOWN, "arbord is shutting down");
	log_info("arbord", "stopping the tree");
	root_stop(d->root);
}

/* Runs after each iteration's callbacks, before the loop blocks. */
static void
on_drain_check(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct daemon *d = w->data;
	if (root_pending(d->root) == 0)
		end_drain(d);
	batch_flush();	/* replies made here must not wait for a wake-up */
}

static void
on_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	size_t n = root_pending(d->root);
	log_warn("arbord", "%zu %s still pending after %d ms: stopping anyway",
	    n, log_plural(n, "request", "requests"),
	    d->cfg->worker.shutdown_timeout_ms);
	end_drain(d);
}

/* Graceful stop (SPEC 7): refuse new requests, let pending ones finish,
 * then stop the tree. Asked again (the op repeated, or the first signal
 * after the op) it changes nothing: only a second signal forces. */
static void
begin_shutdown(void *arg)
{
	struct daemon *d = arg;
	struct ev_loop *loop = EV_DEFAULT_UC;
	if (d->stopping) {
		log_info("arbord", "already stopping: only a second signal "
		    "kills the workers");
		return;
	}
	d->stopping = true;
	d->ops.draining = true;
	size_t n = root_pending(d->root);
	log_info("arbord", "shutting down: draining %zu pending %s", n,
	    log_plural(n, "request", "requests"));
	ev_prepare_init(&d->w_drain, on_drain_check);
	ev_timer_init(&d->t_drain, on_drain_timeout,
	    d->cfg->worker.shutdown_timeout_ms / 1000.0, 0.);
	d->w_drain.data = d->t_drain.data = d;
	ev_prepare_start(loop, &d->w_drain);
	ev_timer_start(loop, &d->t_drain);
}

static void
apply_log_level(const struct config *cfg, int verbosity)
{
	enum cfg_log_level lv = cfg->log.level;
	if (verbosity > 0)
		lv = LOG_DEBUG;
	else if (verbosity < 0 && lv < LOG_WARN)
		lv = LOG_WARN;
	log_setup(lv, cfg->log.format);
}

/* Reads the config again; applies it if valid (SPEC 7). Returns the
 * changed keys, or NULL with the error (nothing changed then). */
static json_t *
reload(void *arg, char *err, size_t errlen)
{
	struct daemon *d = arg;
	struct config *cfg = config_load(d->conf_path, d->env_arg, err, errlen);
	if (cfg == NULL) {
		log_error("arbord", "reload: %s (keeping the running config)", err);
		return NULL;
	}
	const char **keys = config_diff(d->cfg, cfg);
	json_t *changed = json_array();
	for (const char **k = keys; *k; k++)
		json_array_append_new(changed, json_string(*k));
	free(keys);
	apply_log_level(cfg, d->verbosity);
	root_reload(d->root, cfg);
	ctl_reconfigure(d->ctl, cfg);
	config_free(d->cfg);
	d->cfg = cfg;
	char *text = msg_text(changed);	/* every key */
	log_info("arbord", "reloaded: changed %s", text);
	free(text);
	return changed;
}

/* SIGTERM and SIGINT, each delivery counted: libev merges the signals
 * that come before its loop sees the first (at start-up, or during a long
 * callback), and a second one, which forces the stop, was lost then. The
 * handler only counts and wakes the loop (ev_async_send is safe there). */
static volatile sig_atomic_t stops_caught;
static ev_async *stop_async;

static void
on_stop_signal(int signum)
{
	stops_caught++;
	ev_async_send(EV_DEFAULT_UC, stop_async);
}

/* One SIGTERM or SIGINT: the first drains, the second kills the workers;
 * those after it, or after arbord has stopped, have nothing left to do. */
static void
stop_signal(struct daemon *d)
{
	if (d->forced || d->finished)
		return;
	if (d->signalled) {
		d->forced = true;
		if (ev_is_active(&d->w_flush)) {	/* the tree is down */
			finish_forced(d);
			return;
		}
		log_warn("arbord", "second signal: killing workers now");
		end_drain(d);
		root_abandon(d->root, ERR_SHUTTING_DOWN,
		    "arbord is shutting down: a second signal killed the workers");
		batch_flush();
		return;
	}
	d->signalled = true;
	begin_shutdown(d);
}

static void
on_stop(struct ev_loop *loop, ev_async *w, int revents)
{
	struct daemon *d = w->data;
	while (d->stops_seen != stops_caught) {
		d->stops_seen++;
		stop_signal(d);
	}
}

static void
on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	char err[1024];
	if (d->stopping) {
		log_warn("arbord", "SIGHUP: shutting down, not reloading");
		return;
	}
	log_info("arbord", "SIGHUP: reloading %s", d->conf_path);
	json_decref(reload(d, err, sizeof err));
}

static void
watch_signals(struct daemon *d)
{
	struct ev_loop *loop = EV_DEFAULT_UC;
	struct sigaction sa = { .sa_handler = on_stop_signal,
	    .sa_flags = SA_RESTART };
	signal(SIGPIPE, SIG_IGN);
	ev_async_init(&d->w_stop, on_stop);
	ev_signal_init(&d->sig_hup, on_hup, SIGHUP);
	d->w_stop.data = d->sig_hup.data = d;
	ev_async_start(loop, &d->w_stop);
	ev_signal_start(loop, &d->sig_hup);
	stop_async = &d->w_stop;
	sigfillset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

static ev_timer *trim_timer;

/* Stops once nothing is left to trim; it never keeps the loop running. */
static void
on_trim(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (slab_trim())
		return;
	ev_ref(loop);
	ev_timer_stop(loop, w);
}

static void
on_surplus(void)
{
	struct ev_loop *loop = EV_DEFAULT_UC;
	if (ev_is_active(trim_timer))
		return;
	ev_timer_again(loop, trim_timer);
	ev_unref(loop);
}

/* The slab's trim, run every SLAB_TRIM_S while there is a surplus. */
static void
watch_slab(struct daemon *d)
{
	ev_init(&d->t_trim, on_trim);
	d->t_trim.repeat = SLAB_TRIM_S;
	trim_timer = &d->t_trim;
	slab_on_surplus(on_surplus);
}

static const struct root_events root_events = { on_gave_up, on_root_stopped };

static int
run(struct daemon *d)
{
	char err[1024];
	slab_use_for_json();
	if (ev_default_loop(EVFLAG_AUTO) == NULL) {
		fprintf(stderr, "arbord: cannot start the event loop\n");
		return EXIT_GAVE_UP;
	}
	watch_signals(d);
	watch_slab(d);
	strays_enable();
	d->reg = reg_new();
	d->ops = (struct ops_env){ .reg = d->reg, .shutdown = begin_shutdown,
	    .reload = reload, .arg = d };
	d->ctl = ctl_open(d->cfg, ops_handle, &d->ops, err, sizeof err);
	if (d->ctl == NULL) {
		log_error("arbord", "%s", err);
		reg_free(d->reg);
		return EXIT_GAVE_UP;
	}
	char *dir = mock_dir();
	d->root = root_new(d->cfg, d->reg, dir, &root_events, d);
	free(dir);
	d->ops.root = d->root;
	log_info("arbord", "arbord %s starting (pid %d, config %s)",
	    ARBOR_VERSION, getpid(), d->cfg->path);
	keeper_start(d->argv);	/* past the early returns: it is reaped below */
	root_start(d->root);
	ev_run(EV_DEFAULT_UC, 0);
	keeper_finish();
	strays_finish();
	uring_close();
	ctl_close(d->ctl);
	root_free(d->root);
	reg_free(d->reg);
	slab_release();
	return d->exit_code;
}

int
main(int argc, char **argv)
{
	struct args a = { 0 };
	char err[1024];
	parse_args(argc, argv, &a);
	struct daemon d = { 0 };
	d.cfg = config_load(a.conf, a.env, err, sizeof err);
	if (d.cfg == NULL) {
		fprintf(stderr, "arbord: %s\n", err);
		return EXIT_CONFIG;
	}
	if (a.test) {
		config_print(d.cfg, stdout);
		config_free(d.cfg);
		return flush_stdout();
	}
	d.argv = argv;
	d.conf_path = a.conf;
	d.env_arg = a.env;
	d.verbosity = a.verbosity;
	apply_log_level(d.cfg, d.verbosity);
	int rc = run(&d);
	config_free(d.cfg);
	return rc;
}
