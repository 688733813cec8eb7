#include "supervisor/cond.h"

#include <ev.h>
#include <unistd.h>

#include "proto/xmalloc.h"
#include "supervisor/bridge.h"
#include "supervisor/intensity.h"
#include "supervisor/log.h"
#include "supervisor/pool.h"
#include "supervisor/version.h"

#define LOOP	EV_DEFAULT_UC

struct root {
	const struct config	*cfg;
	struct registry		*reg;
	const struct root_events *ev;
	void			*arg;
	char			*mock_argv[2];	/* bridge_mock: mock_worker */

	enum sup_state		 state;
	struct intensity	 window;
	unsigned		 restarts;
	ev_tstamp		 started;
	struct sup		*sub;		/* the pool's or the bridge's */
	struct pool		*pool;		/* mode pool */
	struct bridge		*bridge;	/* mode single */
	struct route_stats	 st;		/* adapter mock, mode disabled */
};

static void on_sub_failed(struct sup *, void *);
static void on_sub_stopped(struct sup *, void *);
static const struct sup_events sub_events = {
	.failed = on_sub_failed, .stopped = on_sub_stopped,
};

/* The command every worker runs under the resolved adapter. */
static char *const *
worker_argv(const struct root *r)
{
	return r->cfg->adapter == ADAPTER_BRIDGE_MOCK ? r->mock_argv :
	    r->cfg->worker.argv;
}

/* Builds the subtree the mode calls for (none for disabled and mock). */
static void
make_subtree(struct root *r)
{
	const struct config *c = r->cfg;
	if (c->mode == MODE_DISABLED || c->adapter == ADAPTER_MOCK)
		return;
	if (c->mode == MODE_SINGLE) {
		r->bridge = bridge_new(c, worker_argv(r), r->reg, &sub_events, r);
		r->sub = bridge_sup(r->bridge);
	} else {
		r->pool = pool_new(c, worker_argv(r), r->reg, &sub_events, r);
		r->sub = pool_sup(r->pool);
	}
}

struct root *
root_new(const struct config *cfg, struct registry *reg, const char *self_dir,
    const struct root_events *ev, void *arg)
{
	struct root *r = xcalloc(1, sizeof *r);
	r->cfg = cfg;
	r->reg = reg;
	r->ev = ev;
	r->arg = arg;
	r->mock_argv[0] = xasprintf("%s/mock_worker", self_dir);
	r->state = SS_STOPPED;
	intensity_init(&r->window, cfg->supervisor.max_restarts,
	    cfg->supervisor.max_seconds);
	reg_add(reg, "root", REG_ROOT, r);
	make_subtree(r);
	return r;
}

void
root_free(struct root *r)
{
	if (r == NULL)
		return;
	pool_free(r->pool);
	bridge_free(r->bridge);
	reg_remove(r->reg, "root");
	intensity_release(&r->window);
	free(r->mock_argv[0]);
	free(r);
}

void
root_start(struct root *r)
{
	r->state = SS_RUNNING;
	r->started = ev_now(LOOP);
	log_info("root", "env=%s mode=%s adapter=%s", r->cfg->env,
	    cfg_mode_name(r->cfg->mode), cfg_adapter_name(r->cfg->adapter));
	if (r->sub)
		sup_start(r->sub);
}

void
root_stop(struct root *r)
{
	r->state = SS_STOPPING;
	if (r->sub)
		sup_stop(r->sub);
	else
		on_sub_stopped(NULL, r);
}

void
root_kill(struct root *r)
{
	if (r->sub)
		sup_kill(r->sub);
}

void
root_restart(struct root *r)
{
	if (r->sub)
		sup_restart(r->sub);
}

/* The subtree failed: restart it, or give up when that is too often. */
static void
on_sub_failed(struct sup *s, void *arg)
{
	struct root *r = arg;
	if (r->state != SS_RUNNING)
		return;
	if (intensity_add(&r->window, ev_now(LOOP))) {
		log_error("root", "%s failed more than %d times within %d s: "
		    "giving up", sup_name(s), r->cfg->supervisor.max_restarts,
		    r->cfg->supervisor.max_seconds);
		r->state = SS_FAILED;
		r->ev->gave_up(r, r->arg);
		return;
	}
	log_warn("root", "%s failed: restarting it", sup_name(s));
	sup_count_restart(s);
	sup_start(s);
}

static void
on_sub_stopped(struct sup *s, void *arg)
{
	struct root *r = arg;
	if (r->state != SS_STOPPING)
		return;
	r->state = SS_STOPPED;
	r->ev->stopped(r, r->arg);
}

struct sup *root_subtree(const struct root *r) { return r->sub; }

json_t *
root_node(const struct root *r, const struct sup *s)
{
	json_t *node = sup_json(s);
	if (r->pool && s == r->sub)
		pool_node_extra(r->pool, node);
	return node;
}

/* Adapter mock: arbord answers itself (SPEC 3). */
static void
mock_answer(struct root *r, struct job *job)
{
	json_t *res = json_pack("{s:b,s:s,s:O}", "mock", 1, "command",
	    job->command, "args", job->args);
	r->st.total++;
	r->st.ok++;
	job_ok(job, res, "mock");
	json_decref(res);
}

void
root_submit(struct root *r, struct job *job)
{
	if (r->pool)
		pool_submit(r->pool, job);
	else if (r->bridge)
		bridge_submit(r->bridge, job);
	else if (r->cfg->mode != MODE_DISABLED)
		mock_answer(r, job);
	else {
		r->st.total++;
		r->st.failed++;
		job_fail(job, ERR_BRIDGE_DISABLED, "the bridge is disabled "
		    "(environment %s)", r->cfg->env);
	}
}

bool
root_end_session(struct root *r, const char *id)
{
	return r->pool ? pool_end_session(r->pool, id) :
	    r->bridge ? bridge_end_session(r->bridge, id) : false;
}

size_t
root_inflight(const struct root *r)
{
	return r->pool ? pool_inflight(r->pool) :
	    r->bridge ? bridge_inflight(r->bridge) : 0;
}

json_t *
root_stats(const struct root *r)
{
	if (r->pool)
		return pool_stats(r->pool);
	if (r->bridge)
		return bridge_stats(r->bridge);
	const struct route_stats *st = &r->st;
	return json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:i,"
	    "s:I,s:i,s:i,s:i}", "mode", cfg_mode_name(r->cfg->mode),
	    "size", 0, "max_overflow", 0, "ready", 0, "busy", 0, "overflow", 0,
	    "waiting", 0, "sessions", 0, "total_operations", (json_int_t)st->total,
	    "successful_operations", (json_int_t)st->ok,
	    "failed_operations", (json_int_t)st->failed, "pool_timeouts", 0,
	    "worker_errors", (json_int_t)st->worker_errors, "total_sessions", 0,
	    "stale_sessions_cleaned", 0, "restarts", 0);
}
const struct config *root_config(const struct root *r) { return r->cfg; }

json_t *
root_json(const struct root *r)
{
	json_t *kids = json_array();
	if (r->sub)
		json_array_append_new(kids, root_node(r, r->sub));
	json_int_t up = (json_int_t)((ev_now(LOOP) - r->started) * 1000);
	return json_pack("{s:s,s:s,s:s,s:I,s:I,s:o,s:s,s:i,s:i,"
	    "s:I,s:s,s:s,s:s,s:s}",
	    "name", "root", "kind", "supervisor", "state",
	    sup_state_name(r->state), "restarts", (json_int_t)r->restarts,
	    "uptime_ms", up, "children", kids, "strategy", "one_for_one",
	    "max_restarts", r->cfg->supervisor.max_restarts,
	    "max_seconds", r->cfg->supervisor.max_seconds,
	    "pid", (json_int_t)getpid(), "env", r->cfg->env,
	    "mode", cfg_mode_name(r->cfg->mode),
	    "adapter", cfg_adapter_name(r->cfg->adapter),
	    "version", ARBOR_VERSION);
}
