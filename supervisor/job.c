#include "supervisor/job.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "proto/jraw.h"
#include "supervisor/child.h"
#include "supervisor/clock.h"
#include "supervisor/session.h"
#include "supervisor/slab.h"

static uint64_t next_seq;

static char *
put_span(char **at, const char *p, size_t n)
{
	char *s = *at;
	memcpy(s, p, n);
	s[n] = '\0';
	*at += n + 1;
	return s;
}

/* One block: the job, then its strings. */
struct job *
job_new(const struct job_req *r, job_done_fn *done, void *arg)
{
	const char *id = r->id ? r->id : "null";
	size_t id_len = r->id ? r->id_len : 4;
	const char *args = r->args ? r->args : "{}";
	size_t args_len = r->args ? r->args_len : 2;
	size_t n = sizeof(struct job) + id_len + r->command_len + args_len +
	    (r->session ? r->session_len + 1 : 0) + 3;
	struct job *j = slab_alloc(n);
	memset(j, 0, sizeof *j);
	char *at = (char *)(j + 1);
	j->id = put_span(&at, id, id_len);
	j->id_len = id_len;
	j->command = put_span(&at, r->command, r->command_len);
	j->args = put_span(&at, args, args_len);
	j->args_len = args_len;
	if (r->session)
		j->session = put_span(&at, r->session, r->session_len);
	j->timeout_ms = r->timeout_ms;
	j->seq = ++next_seq;
	j->done = done;
	j->arg = arg;
	return j;
}

struct job *
job_new_json(const char *id, size_t id_len, const char *command, json_t *args,
    const char *session, int timeout_ms, job_done_fn *done, void *arg)
{
	char *argt = args ? msg_text(args) : NULL;
	struct job_req r = {
		.id = id, .id_len = id_len,
		.command = command, .command_len = strlen(command),
		.args = argt, .args_len = argt ? strlen(argt) : 0,
		.session = session, .session_len = session ? strlen(session) : 0,
		.timeout_ms = timeout_ms,
	};
	struct job *j = job_new(&r, done, arg);
	free(argt);
	return j;
}

/* Replies are built in one buffer, reused: no allocation per reply. Each
 * starts at the buffer's end (at), so a reply made from inside a done
 * callback (which copies its own first) goes after the one being
 * delivered. A buffer grown by a big reply is given back. */
#define OUT_KEEP	65536
static struct buf out;

static void
finish(struct job *j, size_t at)
{
	if (j->session_reset)
		jraw_put(&out, ",\"session_reset\":true");
	jraw_put(&out, "}");
	j->done(j, buf_head(&out) + at, buf_used(&out) - at);
	out.len = out.off + at;
	if (at == 0 && out.cap > OUT_KEEP)
		buf_release(&out);
	slab_free(j);
}

void
job_ok(struct job *j, const char *result, size_t len, const char *worker)
{
	size_t at = buf_used(&out);
	jraw_put(&out, "{\"id\":");
	buf_append(&out, j->id, j->id_len);
	jraw_put(&out, ",\"ok\":true,\"result\":");
	if (result)
		buf_append(&out, result, len);
	else
		jraw_put(&out, "null");
	jraw_put(&out, ",\"worker\":");
	jraw_put_str(&out, worker, strlen(worker));
	finish(j, at);
}

/* The message is whole, however long: a worker's error text is passed on
 * as it is (a cut could also split a UTF-8 sequence). */
void
job_fail(struct job *j, enum msg_code code, const char *fmt, ...)
{
	char *text;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	json_t *r = msg_error(NULL, code, "%s",
	    text ? text : "(message could not be formatted)");
	free(text);
	size_t at = buf_used(&out);
	msg_put_with_id(&out, r, j->id, j->id_len);	/* as job_ok: the text */
	json_decref(r);
	out.len--;	/* its closing brace: finish() closes it */
	finish(j, at);
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
job_from_reply(struct job *j, const struct child_reply *reply,
    enum msg_code err, const char *why, const char *worker,
    struct route_stats *st)
{
	st->total++;
	if (reply == NULL) {
		st->failed++;
		job_fail(j, err, "%s: %s", worker, why);
	} else if (reply->success) {
		st->ok++;
		job_ok(j, reply->result, reply->result_len, worker);
	} else {
		st->failed++;
		st->worker_errors++;
		job_fail(j, ERR_WORKER_ERROR, "%s",
		    reply->error ? reply->error : "worker error");
	}
}

void
job_unhold(struct job *job, struct sessions *s)
{
	if (job->session_held)
		sess_finish(s, job->session, job->session_gen,
		    clock_now());
	job->session_held = false;
	job->session_gen = 0;	/* (gens are per table: it may move on) */
}

bool
job_take_reset(struct job *job, struct sessions *s)
{
	struct job *t = sess_take_teller(s, job->session, job->session_gen);
	if (t && t != job) {
		t->session_reset = false;
		job->session_reset = true;
	}
	return job->session_reset;
}

void
job_tell_reset(struct job *job, struct sessions *s, size_t *resets)
{
	if (*resets > 0)
		*resets -= job_take_reset(job, s);
	if (sess_take_due(s, job->session, job->session_gen))
		job->session_reset = true;
}
