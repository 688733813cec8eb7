#include "supervisor/cond.h"

#include <ev.h>
#include <unistd.h>

#include "proto/xmalloc.h"
#include "supervisor/intensity.h"
#include "supervisor/log.h"
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
	struct sup		*sub;
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
static struct sup *
make_subtree(struct root *r)
{
	const struct config *c = r->cfg;
	if (c->mode == MODE_DISABLED || c->adapter == ADAPTER_MOCK)
		return NULL;
	if (c->mode == MODE_SINGLE) {
		struct sup *s = sup_new("bridge", c->bridge.max_restarts,
		    c->bridge.max_seconds, c, worker_argv(r), r->reg,
		    &sub_events, r);
		sup_add_worker(s, "worker");
		return s;
	}
	struct sup *s = sup_new("pool", c->pool.max_restarts,
	    c->pool.max_seconds, c, worker_argv(r), r->reg, &sub_events, r);
	for (int i = 1; i <= c->pool.size; i++) {
		char leaf[32];
		snprintf(leaf, sizeof leaf, "worker.%d", i);
		sup_add_worker(s, leaf);
	}
	return s;
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
	r->sub = make_subtree(r);
	return r;
}

void
root_free(struct root *r)
{
	if (r == NULL)
		return;
	sup_free(r->sub);
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
const struct config *root_config(const struct root *r) { return r->cfg; }

json_t *
root_json(const struct root *r)
{
	json_t *kids = json_array();
	if (r->sub)
		json_array_append_new(kids, sup_json(r->sub));
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
