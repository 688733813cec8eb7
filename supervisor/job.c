#include "supervisor/job.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/slab.h"

static uint64_t next_seq;

struct job *
job_new(json_t *id, const char *command, json_t *args, const char *session,
    int timeout_ms, job_done_fn *done, void *arg)
{
	struct job *j = slab_alloc(sizeof *j);
	memset(j, 0, sizeof *j);
	j->id = id;
	j->command = slab_strdup(command);
	j->args = args;
	j->session = session ? slab_strdup(session) : NULL;
	j->timeout_ms = timeout_ms;
	j->seq = ++next_seq;
	j->done = done;
	j->arg = arg;
	return j;
}

static void
job_free(struct job *j)
{
	json_decref(j->id);
	json_decref(j->args);
	slab_free(j->command);
	slab_free(j->session);
	slab_free(j);
}

void
job_ok(struct job *j, json_t *result, const char *worker)
{
	json_t *r = msg_ok(j->id);
	json_object_set(r, "result", result ? result : json_null());
	json_object_set_new(r, "worker", json_string(worker));
	if (j->session_reset)
		json_object_set_new(r, "session_reset", json_true());
	j->done(j, r);
	job_free(j);
}

void
job_fail(struct job *j, enum msg_code code, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	json_t *r = msg_error(j->id, code, "%s", text);
	if (j->session_reset)
		json_object_set_new(r, "session_reset", json_true());
	j->done(j, r);
	job_free(j);
}

json_t *
route_stats_json(const struct route_stats *s, const struct route_gauges *g)
{
	return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
	    "s:I,s:I,s:I,s:I}", "mode", g->mode,
	    "size", (json_int_t)g->size, "max_overflow", (json_int_t)g->max_overflow,
	    "ready", (json_int_t)g->ready, "busy", (json_int_t)g->busy,
	    "overflow", (json_int_t)g->overflow, "waiting", (json_int_t)g->waiting,
	    "sessions", (json_int_t)g->sessions,
	    "total_operations", (json_int_t)s->total,
	    "successful_operations", (json_int_t)s->ok,
	    "failed_operations", (json_int_t)s->failed,
	    "pool_timeouts", (json_int_t)s->pool_timeouts,
	    "worker_errors", (json_int_t)s->worker_errors,
	    "total_sessions", (json_int_t)s->total_sessions,
	    "stale_sessions_cleaned", (json_int_t)s->stale_sessions,
	    "restarts", (json_int_t)g->restarts);
}

void
job_from_reply(struct job *j, json_t *reply, enum msg_code err,
    const char *why, const char *worker, struct route_stats *st)
{
	st->total++;
	if (reply == NULL) {
		st->failed++;
		job_fail(j, err, "%s: %s", worker, why);
	} else if (json_is_true(json_object_get(reply, "success"))) {
		st->ok++;
		job_ok(j, json_object_get(reply, "result"), worker);
	} else {
		st->failed++;
		st->worker_errors++;
		const char *e = json_string_value(json_object_get(reply, "error"));
		job_fail(j, ERR_WORKER_ERROR, "%s", e ? e : "worker error");
	}
}
