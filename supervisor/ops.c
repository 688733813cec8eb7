#include "supervisor/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"
#include "proto/jraw.h"
#include "proto/msg.h"
#include "supervisor/child.h"
#include "supervisor/job.h"
#include "supervisor/log.h"
#include "supervisor/tree.h"

/* A request's id as the client wrote it: the JSON text of its value
 * (borrowed, "null" when it has none). Replies carry this text, not
 * jansson's reading of it, which need not keep a number or a string's
 * escapes as written (SPEC 6: the reply carries the request's id). */
struct req_id {
	const char	*text;
	size_t		 n;
	const char	*payload;	/* the whole request, as read */
	size_t		 len;
};

/* An op gets the request (borrowed) and its id; it returns the reply (new
 * reference) made with a NULL id, which dispatch replaces by the id's
 * text, or NULL when it will reply later itself. */
typedef json_t *op_fn(struct ops_env *, struct ctl_conn *, json_t *req,
    const struct req_id *id);

/* Queues reply (steals it), made with a NULL id, with the id's text in
 * its place (msg_put_with_id). */
static void
reply_with_id_text(struct ctl_conn *cn, json_t *reply,
    const struct req_id *id)
{
	struct buf out;
	buf_init(&out);
	msg_put_with_id(&out, reply, id->text, id->n);
	json_decref(reply);
	ctl_reply_raw(cn, buf_head(&out), buf_used(&out));
	buf_release(&out);
}

static json_t *
op_ping(struct ops_env *env, struct ctl_conn *cn, json_t *req,
    const struct req_id *id)
{
	json_t *r = msg_ok(NULL);
	json_object_set_new(r, "pong", json_true());
	return r;
}

/* Appends `{"id":ID,"ok":true`. */
static void
put_ok(struct buf *out, const struct req_id *id)
{
	jraw_put(out, "{\"id\":");
	buf_append(out, id->text, id->n);
	jraw_put(out, ",\"ok\":true");
}

/* The bad_request for a param key that is not a non-empty string, saying
 * which it is (missing, not a string, empty); NULL if it is one, or if it
 * is absent or null and optional. */
static json_t *
check_str_param(const json_t *req, const char *key, bool optional)
{
	const json_t *v = json_object_get(req, key);
	if (v == NULL || json_is_null(v))
		return optional ? NULL : msg_error(NULL, ERR_BAD_REQUEST,
		    "missing string param '%s'", key);
	if (!json_is_string(v))
		return msg_error(NULL, ERR_BAD_REQUEST,
		    "param '%s' must be a string", key);
	if (json_string_length(v) == 0)
		return msg_error(NULL, ERR_BAD_REQUEST, "param '%s' is empty",
		    key);
	return NULL;
}

/* The tree is written as text straight into the reply (see child_put_node). */
static json_t *
op_status(struct ops_env *env, struct ctl_conn *cn, json_t *req,
    const struct req_id *id)
{
	json_t *err = check_str_param(req, "name", true);
	if (err)
		return err;
	const char *name = msg_str(req, "name") ? msg_str(req, "name") : "root";
	enum reg_kind kind;
	void *obj = reg_lookup(env->reg, name, &kind);
	if (obj == NULL)
		return msg_error(NULL, ERR_NOT_FOUND, "no node named '%s'",
		    name);
	struct buf out;
	buf_init(&out);
	put_ok(&out, id);
	jraw_put(&out, ",\"tree\":");
	switch (kind) {
	case REG_ROOT:
		root_put_node(obj, &out);
		break;
	case REG_SUPERVISOR:
		root_put_sup(env->root, obj, &out);
		break;
	case REG_WORKER:
		child_put_node(obj, &out);
		break;
	}
	jraw_put(&out, "}");
	ctl_reply_raw(cn, buf_head(&out), buf_used(&out));
	buf_release(&out);
	return NULL;
}

/* Counts workers ready or busy against the configured size. */
static json_t *
op_health(struct ops_env *env, struct ctl_conn *cn, json_t *req,
    const struct req_id *id)
{
	int ready, expected;
	root_health(env->root, &ready, &expected);
	const char *h = ready >= expected ? "healthy" : ready == 0 ? "down" :
	    "degraded";
	json_t *r = msg_ok(NULL);
	json_object_set_new(r, "health", json_string(h));
	json_object_set_new(r, "ready", json_integer(ready));
	json_object_set_new(r, "expected", json_integer(expected));
	return r;
}

/* Looks up params.name; on failure *err is the reply to send. */
static void *
lookup_name(struct ops_env *env, json_t *req, enum reg_kind *kind,
    json_t **err)
{
	if ((*err = check_str_param(req, "name", false)) != NULL)
		return NULL;
	const char *name = msg_str(req, "name");
	void *obj = reg_lookup(env->reg, name, kind);
	if (obj == NULL)
		*err = msg_error(NULL, ERR_NOT_FOUND, "no node named '%s'",
		    name);
	return obj;
}

/* A worker leaving the pool (beyond a smaller pool.size, or an idle
 * overflow worker) is not started again: it is as good as gone. */
static json_t *
refuse_leaving(const struct child *c, const char *what)
{
	if (!sup_child_leaving(c))
		return NULL;
	return msg_error(NULL, ERR_NOT_FOUND, "%s is leaving the pool: no %s",
	    child_name(c), what);
}

/* Once shutdown has begun nothing is started again: a restart, start or
 * reload then would bring up what the shutdown waits to see go down. */
static json_t *
refuse_draining(const struct ops_env *env, const char *what)
{
	if (!env->draining)
		return NULL;
	return msg_error(NULL, ERR_SHUTTING_DOWN,
	    "arbord is shutting down: no %s", what);
}

static json_t *
op_restart(struct ops_env *env, struct ctl_conn *cn, json_t *req,
    const struct req_id *id)
{
	enum reg_kind kind;
	json_t *err = refuse_draining(env, "restart");
	if (err)
		return err;
	void *obj = lookup_name(env, req, &kind, &err);
	if (obj == NULL)
		return err;
	if (kind == REG_WORKER && (err = refuse_leaving(obj, "restart")))
		return err;
	if (kind == REG_ROOT)
		root_restart(obj);
	else if (kind == REG_SUPERVISOR)
		sup_restart(obj);
	else
		sup_restart_child(child_owner(obj), obj, "restart");
	log_info("ops", "restart %s", msg_str(req, "name"));
	json_t *r = msg_ok(NULL);
	json_object_set_new(r, "restarted", json_string(msg_str(req, "name")));
	return r;
}

/* stop and start: a worker's wanted state. */
static json_t *
want(struct ops_env *env, json_t *req, bool up)
{
	enum reg_kind kind;
	json_t *err = up ? refuse_draining(env, "start") : NULL;
	if (err)
		return err;
	struct child *c = lookup_name(env, req, &kind, &err);
	if (c == NULL)
		return err;
	if (kind != REG_WORKER)
		return msg_error(NULL, ERR_BAD_REQUEST, "%s takes a worker name",
		    up ? "start" : "stop");
	if (up && (err = refuse_leaving(c, "start")))
		return err;
	log_info("ops", "%s %s", up ? "start" : "stop", child_name(c));
	if (up)
		sup_start_child(child_owner(c), c);
	else
		sup_stop_child(child_owner(c), c, "stop");
	json_t *r = msg_ok(NULL);
	json_object_set_new(r, "state",
	    json_string(child_state_name(child_state(c))));
	return r;
}

static json_t *
op_stop(struct ops_env *env, struct ctl_conn *cn, json_t *req,
    const struct req_id *id)
{
	return want(env, req, false);
}

static json_t *
op_start(struct ops_env *env, struct ctl_conn *cn, json_t *req,
    const struct req_id *id)
{
	return want(env, req, true);
}

static json_t *
op_shutdown(struct ops_env *env, struct ctl_conn *cn, json_t *req,
    const struct req_id *id)
{
	json_t *r = msg_ok(NULL);
	json_object_set_new(r, "stopping", json_true());
	reply_with_id_text(cn, r, id);	/* before the socket goes away */
	env->shutdown(env->arg);
	return NULL;
}

/* A job's reply goes back on the connection that asked. */
static void
job_done(struct job *job, const char *reply, size_t len)
{
	struct ctl_conn *cn = job->arg;
	ctl_reply_raw(cn, reply, len);
	ctl_release(cn);
}

#define TIMEOUT_MAX_MS	86400000	/* a request's timeout_ms: one day */

/* Checks execute's params; NULL when fine, else the error reply. */
static json_t *
check_execute(json_t *req, int *timeout_ms)
{
	json_t *tmo = json_object_get(req, "timeout_ms");
	json_t *args = json_object_get(req, "args");
	json_t *err = check_str_param(req, "command", false);
	if (err)
		return err;
	if (args && !json_is_object(args) && !json_is_null(args))
		return msg_error(NULL, ERR_BAD_REQUEST,
		    "args must be an object");
	if ((err = check_str_param(req, "session_id", true)) != NULL)
		return err;
	if (tmo && !json_is_null(tmo) &&
	    (!json_is_integer(tmo) || json_integer_value(tmo) <= 0 ||
	    json_integer_value(tmo) > TIMEOUT_MAX_MS))
		return msg_error(NULL, ERR_BAD_REQUEST,
		    "timeout_ms must be an integer in 1..86400000");
	if (json_is_integer(tmo))
		*timeout_ms = (int)json_integer_value(tmo);
	return NULL;
}

/* A request whose frame to the worker could exceed worker.max_frame_bytes
 * is refused here: the worker would take it for a protocol failure. The
 * sizes are those of command and session_id as JSON strings. */
static void
submit(struct ops_env *env, struct job *job, size_t command_size,
    size_t session_size)
{
	size_t max = (size_t)root_config(env->root)->worker.max_frame_bytes;
	size_t n = child_request_size(command_size, job->args_len, session_size);
	if (n > max) {
		root_count_refused(env->root);
		job_fail(job, ERR_FRAME_TOO_LARGE, "request frame of up to %zu "
		    "bytes exceeds worker.max_frame_bytes (%zu)", n, max);
	} else
		root_submit(env->root, job);
}

/* A string's size as jraw_put_str writes it (0 for NULL). */
static size_t
str_size(const char *s)
{
	return s ? jraw_str_size(s, strlen(s)) : 0;
}

static json_t *
op_execute(struct ops_env *env, struct ctl_conn *cn, json_t *req,
    const struct req_id *id)
{
	int timeout_ms = root_config(env->root)->worker.request_timeout_ms;
	json_t *err = env->draining ? msg_error(NULL, ERR_SHUTTING_DOWN,
	    "arbord is shutting down") : check_execute(req, &timeout_ms);
	if (err) {	/* an execute answered: counted as routed ones are */
		root_count_refused(env->root);
		return err;
	}
	const char *cmd = msg_str(req, "command"), *sess = msg_str(req,
	    "session_id");
	struct job_req r = {
		.id = id->text, .id_len = id->n,
		.command = cmd, .command_len = strlen(cmd),
		.session = sess, .session_len = sess ? strlen(sess) : 0,
		.timeout_ms = timeout_ms,
	};
	/* args as the client wrote it: jansson would write a real anew */
	json_t *args = json_object_get(req, "args");
	bool as_written = !json_is_object(args) ||
	    frame_member_text(id->payload, id->len, "args", &r.args,
	    &r.args_len);
	ctl_hold(cn);
	struct job *job = as_written ? job_new(&r, job_done, cn) :
	    job_new_json(id->text, id->n, cmd, args, sess, timeout_ms,
	    job_done, cn);
	submit(env, job, str_size(job->command), str_size(job->session));
	return NULL;
}

/* The usual execute, read in place: every member well-formed, no escapes
 * in command or session_id. false leaves the request to the jansson path,
 * which also gives every error reply. */
static bool
fast_execute(struct ops_env *env, struct ctl_conn *cn, const char *payload,
    size_t len)
{
	struct jraw_member m[16];
	int k = jraw_object(payload, len, m, 16);
	const char *op;
	size_t n;
	if (k < 0 || env->draining || !jraw_str(jraw_get(m, k, "op"), &op, &n) ||
	    n != 7 || memcmp(op, "execute", 7) != 0)
		return false;
	struct job_req r = {
		.timeout_ms = root_config(env->root)->worker.request_timeout_ms,
	};
	const struct jraw_member *id = jraw_get(m, k, "id");
	const struct jraw_member *args = jraw_get(m, k, "args");
	const struct jraw_member *sess = jraw_get(m, k, "session_id");
	const struct jraw_member *tmo = jraw_get(m, k, "timeout_ms");
	if (!jraw_str(jraw_get(m, k, "command"), &r.command, &r.command_len) ||
	    r.command_len == 0)
		return false;
	if (sess && sess->type != JRAW_NULL &&
	    (!jraw_str(sess, &r.session, &r.session_len) || r.session_len == 0))
		return false;
	if (tmo && tmo->type != JRAW_NULL) {
		int64_t t;
		if (!jraw_int(tmo, &t) || t <= 0 || t > TIMEOUT_MAX_MS)
			return false;
		r.timeout_ms = (int)t;
	}
	if (args && args->type != JRAW_NULL && args->type != JRAW_OBJECT)
		return false;
	if (id) {
		r.id = id->val;
		r.id_len = id->val_len;
	}
	if (args && args->type != JRAW_NULL) {
		r.args = args->val;
		r.args_len = args->val_len;
	}
	ctl_hold(cn);
	/* plain strings (no escapes): their size is their length + 2 */
	submit(env, job_new(&r, job_done, cn), r.command_len + 2,
	    r.session ? r.session_len + 2 : 0);
	return true;
}

static json_t *
op_end_session(struct ops_env *env, struct ctl_conn *cn, json_t *req,
    const struct req_id *id)
{
	json_t *err = check_str_param(req, "session_id", false);
	if (err)
		return err;
	const char *sid = msg_str(req, "session_id");
	json_t *r = msg_ok(NULL);
	json_object_set_new(r, "ended",
	    json_boolean(root_end_session(env->root, sid)));
	return r;
}

static json_t *
op_stats(struct ops_env *env, struct ctl_conn *cn, json_t *req,
    const struct req_id *id)
{
	json_t *r = msg_ok(NULL);
	json_object_set_new(r, "stats", root_stats(env->root));
	return r;
}

/* Prometheus text exposition (SPEC 6 `metrics`), written straight into a
 * buffer. Every family gets one HELP and one TYPE line before its samples;
 * counters end in _total. Pool-wide families are named after `stats`,
 * per-worker ones start with arbor_worker_ and carry a worker label. */
struct family {
	const char	*key;		/* in `stats` */
	const char	*name;
	bool		 counter;
	const char	*help;
};

static const struct family pool_families[] = {
	{ "size", "arbor_size", false, "Workers the configuration asks for." },
	{ "max_overflow", "arbor_max_overflow", false,
	    "Overflow workers allowed beyond size." },
	{ "ready", "arbor_ready", false, "Workers ready and idle." },
	{ "busy", "arbor_busy", false, "Workers serving a request." },
	{ "overflow", "arbor_overflow", false, "Overflow workers running." },
	{ "waiting", "arbor_waiting", false,
	    "Requests waiting for a worker." },
	{ "sessions", "arbor_sessions", false,
	    "Sessions live now: bound to a worker, or unbound with their "
	    "reset due (the worker exited, or a reload handed them on)." },
	{ "inflight", "arbor_inflight", false,
	    "Requests at the single-mode worker." },
	{ "total_operations", "arbor_operations_total", true,
	    "Execute requests answered." },
	{ "successful_operations", "arbor_operations_succeeded_total", true,
	    "Execute requests answered with success." },
	{ "failed_operations", "arbor_operations_failed_total", true,
	    "Execute requests answered with an error." },
	{ "pool_timeouts", "arbor_operations_pool_timeout_total", true,
	    "Execute requests that got pool_timeout." },
	{ "worker_errors", "arbor_operations_worker_error_total", true,
	    "Execute requests that got worker_error." },
	{ "total_sessions", "arbor_sessions_started_total", true,
	    "Sessions started (counted at their first served request)." },
	{ "stale_sessions_cleaned", "arbor_sessions_expired_total", true,
	    "Sessions ended after session_ttl_ms idle." },
	{ "restarts", "arbor_restarts_total", true,
	    "Restarts of workers and their supervisor." },
};

static void
put_family_head(struct buf *out, const char *name, const char *type,
    const char *help)
{
	jraw_put(out, "# HELP ");
	jraw_put(out, name);
	jraw_put(out, " ");
	jraw_put(out, help);
	jraw_put(out, "\n# TYPE ");
	jraw_put(out, name);
	jraw_put(out, " ");
	jraw_put(out, type);
	jraw_put(out, "\n");
}

/* A label value as the text format wants it: \\, \" and \n escaped. */
static void
put_label_value(struct buf *out, const char *s)
{
	for (const char *p = s; *p; p++) {
		const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" :
		    *p == '\n' ? "\\n" : NULL;
		if (esc)
			jraw_put(out, esc);
		else
			buf_append(out, p, 1);
	}
}

/* name{worker="W"[,state="S"]} */
static void
put_worker_series(struct buf *out, const char *name, const char *worker,
    const char *state)
{
	jraw_put(out, name);
	jraw_put(out, "{worker=\"");
	put_label_value(out, worker);
	if (state) {
		jraw_put(out, "\",state=\"");
		jraw_put(out, state);
	}
	jraw_put(out, "\"} ");
}

static void
metrics_stats(struct buf *out, json_t *stats)
{
	for (size_t i = 0; i < sizeof pool_families / sizeof pool_families[0];
	    i++) {
		const struct family *f = &pool_families[i];
		json_t *v = json_object_get(stats, f->key);
		if (!json_is_integer(v))
			continue;
		put_family_head(out, f->name, f->counter ? "counter" : "gauge",
		    f->help);
		jraw_put(out, f->name);
		jraw_put(out, " ");
		jraw_put_int(out, json_integer_value(v));
		jraw_put(out, "\n");
	}
}

static const struct family worker_families[] = {
	{ "requests_handled", "arbor_worker_requests_handled_total", true,
	    "Requests the worker's current process answered." },
	{ "errors", "arbor_worker_errors_total", true,
	    "Error replies from the worker's current process." },
	{ "checkouts", "arbor_worker_checkouts_total", true,
	    "Checkouts of the worker's current process." },
	{ "sessions_served", "arbor_worker_sessions_served_total", true,
	    "Sessions the worker's current process served." },
};

static unsigned long
worker_stat(const struct child_stats *cs, size_t k)
{
	const unsigned long v[] = { cs->requests_handled, cs->errors,
	    cs->checkouts, cs->sessions_served };
	return v[k];
}

static void
metrics_workers(struct buf *out, struct sup *s)
{
	size_t n = s ? sup_nchildren(s) : 0;
	for (size_t k = 0; k < sizeof worker_families /
	    sizeof worker_families[0]; k++) {
		const struct family *f = &worker_families[k];
		put_family_head(out, f->name, "counter", f->help);
		for (size_t i = 0; i < n; i++) {
			struct child *c = sup_child(s, i);
			put_worker_series(out, f->name, child_name(c), NULL);
			jraw_put_int(out, (int64_t)worker_stat(child_stats(c), k));
			jraw_put(out, "\n");
		}
	}
	put_family_head(out, "arbor_worker_up", "gauge",
	    "1 when the worker is ready or busy, else 0.");
	for (size_t i = 0; i < n; i++) {
		enum child_state st = child_state(sup_child(s, i));
		put_worker_series(out, "arbor_worker_up",
		    child_name(sup_child(s, i)), NULL);
		jraw_put(out, st == CS_READY || st == CS_BUSY ? "1\n" : "0\n");
	}
	put_family_head(out, "arbor_worker_state", "gauge",
	    "1 for the worker's current state, 0 for the others.");
	for (size_t i = 0; i < n; i++) {
		enum child_state st = child_state(sup_child(s, i));
		for (int j = CS_STARTING; j <= CS_FAILED; j++) {
			put_worker_series(out, "arbor_worker_state",
			    child_name(sup_child(s, i)), child_state_name(j));
			jraw_put(out, (int)st == j ? "1\n" : "0\n");
		}
	}
}

static json_t *
op_metrics(struct ops_env *env, struct ctl_conn *cn, json_t *req,
    const struct req_id *id)
{
	struct buf out;
	buf_init(&out);
	json_t *stats = root_stats(env->root);
	metrics_stats(&out, stats);
	json_decref(stats);
	metrics_workers(&out, root_subtree(env->root));
	json_t *r = msg_ok(NULL);
	json_object_set_new(r, "text", json_stringn(buf_head(&out),
	    buf_used(&out)));
	buf_release(&out);
	return r;
}

static json_t *
op_reload(struct ops_env *env, struct ctl_conn *cn, json_t *req,
    const struct req_id *id)
{
	char err[1024];
	json_t *refused = refuse_draining(env, "reload");
	if (refused)
		return refused;
	json_t *changed = env->reload(env->arg, err, sizeof err);
	if (changed == NULL)
		return msg_error(NULL, ERR_CONFIG_ERROR, "%s", err);
	json_t *r = msg_ok(NULL);
	json_object_set_new(r, "changed", changed);
	return r;
}

static const struct op {
	const char	*name;
	op_fn		*fn;
} ops[] = {
	{ "ping", op_ping },
	{ "status", op_status },
	{ "health", op_health },
	{ "stats", op_stats },
	{ "execute", op_execute },
	{ "end_session", op_end_session },
	{ "restart", op_restart },
	{ "stop", op_stop },
	{ "start", op_start },
	{ "shutdown", op_shutdown },
	{ "reload", op_reload },
	{ "metrics", op_metrics },
};

/* The op named name (NULL: none), or NULL. */
static const struct op *
find_op(const char *name)
{
	for (size_t i = 0; name && i < sizeof ops / sizeof ops[0]; i++)
		if (strcmp(ops[i].name, name) == 0)
			return &ops[i];
	return NULL;
}

static void
dispatch(struct ops_env *env, struct ctl_conn *cn, json_t *req,
    const struct req_id *id)
{
	const char *name = msg_str(req, "op");
	const struct op *op = find_op(name);
	json_t *r = op ? op->fn(env, cn, req, id) : name == NULL ?
	    msg_error(NULL, ERR_BAD_REQUEST, "missing string field 'op'") :
	    msg_error(NULL, ERR_UNKNOWN_OP, "unknown op '%s'", name);
	if (r)
		reply_with_id_text(cn, r, id);
}

/* The id of a payload jansson reads (leniently: frame_parse_id), as its
 * text; "null" when it has none. */
static struct req_id
request_id(const char *payload, size_t len)
{
	struct req_id id = { .payload = payload, .len = len };
	if (!frame_id_text(payload, len, &id.text, &id.n)) {
		id.text = "null";
		id.n = 4;
	}
	return id;
}

/* bad_request for a payload jansson refuses, with its id read leniently
 * (frame_parse_id), which decides whether it has one a client can read
 * back; it goes back as the client wrote it: read past an integer beyond
 * 64 bits, a number is a double, which may not hold it. */
static void
reply_invalid(struct ctl_conn *cn, const char *payload, size_t len,
    const char *why)
{
	json_t *id = frame_parse_id(payload, len);
	struct req_id text = id ? request_id(payload, len) :
	    (struct req_id){ "null", 4, payload, len };
	json_decref(id);
	reply_with_id_text(cn, msg_error(NULL, ERR_BAD_REQUEST,
	    "invalid JSON: %s", why), &text);
}

void
ops_handle(struct ctl_conn *cn, const char *payload, size_t len, void *arg)
{
	struct ops_env *env = arg;
	if (fast_execute(env, cn, payload, len))
		return;
	json_error_t e;
	json_t *req = frame_parse(payload, len, &e);
	if (req == NULL) {
		reply_invalid(cn, payload, len, e.text);
		return;
	}
	struct req_id id = request_id(payload, len);
	dispatch(env, cn, req, &id);
	json_decref(req);
}
