#include "supervisor/log.h"

#include "proto/buf.h"
#include "proto/jraw.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum cfg_log_level  min_level = LOG_INFO;
static enum cfg_log_format format = LOG_TEXT;

void
log_setup(enum cfg_log_level level, enum cfg_log_format fmt)
{
	min_level = level;
	format = fmt;
}

int
log_enabled(enum cfg_log_level level)
{
	return level >= min_level;
}

static void
timestamp(char *out, size_t n)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Whether byte c may not reach a text log as it is: a control character
 * other than tab (a NUL would end the line there). */
static bool
is_control(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* text with each control character written as \xNN, into b. */
static void
escape_controls(struct buf *b, const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char x[5];
		if (!is_control((unsigned char)text[i]))
			buf_append(b, &text[i], 1);
		else
			buf_append(b, x, (size_t)snprintf(x, sizeof x, "\\x%02x",
			    (unsigned char)text[i]));
	}
}

static void
emit_json(const char *ts, enum cfg_log_level level, const char *name,
    const char *text, size_t len)
{
	struct buf clean;
	buf_init(&clean);
	json_t *j = json_pack("{s:s,s:s,s:s,s:s%}", "ts", ts, "level",
	    cfg_log_level_name(level), "name", name, "msg", text, len);
	if (j == NULL) {	/* not UTF-8: keep the text, mark what was not */
		jraw_put_valid_utf8(&clean, text, len);
		j = json_pack("{s:s,s:s,s:s,s:s%}", "ts", ts, "level",
		    cfg_log_level_name(level), "name", name, "msg",
		    clean.data, buf_used(&clean));
	}
	buf_release(&clean);
	if (j == NULL)
		return;
	json_dumpf(j, stderr, JSON_COMPACT);	/* no string to free */
	fputc('\n', stderr);
	json_decref(j);
}

static void
emit_text(const char *ts, enum cfg_log_level level, const char *name,
    const char *text, size_t len)
{
	struct buf clean;
	buf_init(&clean);
	for (size_t i = 0; i < len; i++)
		if (is_control((unsigned char)text[i])) {
			escape_controls(&clean, text, len);
			text = clean.data;
			len = buf_used(&clean);
			break;
		}
	fprintf(stderr, "%s %-5s %s: %.*s\n", ts, cfg_log_level_name(level),
	    name, (int)len, text);
	buf_release(&clean);
}

/* Writes one record; text is len bytes and need not be terminated. */
static void
emit(enum cfg_log_level level, const char *name, const char *text, size_t len)
{
	char ts[40];
	timestamp(ts, sizeof ts);
	if (format == LOG_JSON)
		emit_json(ts, level, name ? name : "arbord", text, len);
	else
		emit_text(ts, level, name ? name : "arbord", text, len);
}

void
log_msg(enum cfg_log_level level, const char *name, const char *fmt, ...)
{
	if (level < min_level)
		return;
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	emit(level, name, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}

void
log_line(const char *name, const char *line, size_t len)
{
	if (log_enabled(LOG_INFO))
		emit(LOG_INFO, name, line, len);
}
