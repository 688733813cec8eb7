#include "proto/msg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/jraw.h"
#include "proto/xmalloc.h"

static const char *const code_names[ERR__COUNT] = {
	[ERR_BAD_REQUEST] = "bad_request",
	[ERR_UNKNOWN_OP] = "unknown_op",
	[ERR_NOT_FOUND] = "not_found",
	[ERR_PERMISSION_DENIED] = "permission_denied",
	[ERR_FRAME_TOO_LARGE] = "frame_too_large",
	[ERR_BRIDGE_DISABLED] = "bridge_disabled",
	[ERR_POOL_TIMEOUT] = "pool_timeout",
	[ERR_OVERLOADED] = "overloaded",
	[ERR_WORKER_ERROR] = "worker_error",
	[ERR_WORKER_CRASHED] = "worker_crashed",
	[ERR_TIMEOUT] = "timeout",
	[ERR_SHUTTING_DOWN] = "shutting_down",
	[ERR_CONFIG_ERROR] = "config_error",
};

const char *
msg_code_name(enum msg_code c)
{
	return (unsigned)c < ERR__COUNT ? code_names[c] : "unknown";
}

json_t *
msg_worker_request(json_int_t id, const char *command, json_t *args,
    const char *session_id)
{
	json_t *j = json_object();
	json_object_set_new(j, "id", json_integer(id));
	json_object_set_new(j, "command", json_string(command));
	json_object_set_new(j, "args", args ? args : json_object());
	if (session_id)
		json_object_set_new(j, "session_id", json_string(session_id));
	return j;
}

/* text as a JSON string, each byte that starts no valid UTF-8 sequence
 * replaced by U+FFFD: a message naming what it was given (a config value
 * in Latin-1, a text cut short) keeps the rest of what it says. */
static json_t *
string_replacing_invalid(const char *text)
{
	struct buf b;
	buf_init(&b);
	jraw_put_valid_utf8(&b, text, strlen(text));
	json_t *s = json_stringn(buf_head(&b), buf_used(&b));
	buf_release(&b);
	return s;
}

/* A JSON string of the formatted text, whole: a fixed-size buffer would cut
 * long texts, possibly inside a UTF-8 sequence, which json_string refuses. */
static json_t *vformat(const char *, va_list) __attribute__((format(printf, 1, 0)));

static json_t *
vformat(const char *fmt, va_list ap)
{
	char *text;
	if (vasprintf(&text, fmt, ap) < 0)
		text = xstrdup("(message could not be formatted)");
	json_t *s = json_string(text);
	if (s == NULL)
		s = string_replacing_invalid(text);
	free(text);
	return s;
}

static json_t *
with_id(json_t *id)
{
	json_t *j = json_object();
	json_object_set(j, "id", id ? id : json_null());
	return j;
}

json_t *
msg_worker_ok(json_t *id, json_t *result)
{
	json_t *j = with_id(id);
	json_object_set_new(j, "success", json_true());
	json_object_set_new(j, "result", result ? result : json_null());
	return j;
}

json_t *
msg_worker_err(json_t *id, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	json_t *text = vformat(fmt, ap);
	va_end(ap);
	json_t *j = with_id(id);
	json_object_set_new(j, "success", json_false());
	json_object_set_new(j, "error", text);
	return j;
}

json_t *
msg_ok(json_t *id)
{
	json_t *j = with_id(id);
	json_object_set_new(j, "ok", json_true());
	return j;
}

json_t *
msg_error(json_t *id, enum msg_code code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	json_t *text = vformat(fmt, ap);
	va_end(ap);
	json_t *j = with_id(id);
	json_object_set_new(j, "ok", json_false());
	json_object_set_new(j, "error", json_pack("{s:s,s:o}", "code",
	    msg_code_name(code), "message", text));
	return j;
}

char *
msg_text(const json_t *j)
{
	int flags = JSON_COMPACT | JSON_ENCODE_ANY;
	size_t n = json_dumpb(j, NULL, 0, flags);
	char *s = xmalloc(n + 1);
	json_dumpb(j, s, n, flags);
	s[n] = '\0';
	return s;
}

void
msg_put_with_id(struct buf *out, const json_t *reply, const char *id, size_t n)
{
	static const char head[] = "{\"id\":null";
	char *text = msg_text(reply);
	if (strncmp(text, head, strlen(head)) == 0) {
		jraw_put(out, "{\"id\":");
		buf_append(out, id, n);
		jraw_put(out, text + strlen(head));
	} else {
		jraw_put(out, text);	/* not laid out as expected: id null */
	}
	free(text);
}

const char *
msg_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

bool
msg_int(const json_t *obj, const char *key, json_int_t *out)
{
	json_t *v = json_object_get(obj, key);
	if (!json_is_integer(v))
		return false;
	*out = json_integer_value(v);
	return true;
}
