#include "supervisor/log.h"

#include <jansson.h>
#include <stdarg.h>
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

/* Writes one record; text is len bytes and need not be terminated. */
static void
emit(enum cfg_log_level level, const char *name, const char *text, size_t len)
{
	char ts[40];
	timestamp(ts, sizeof ts);
	if (format == LOG_JSON) {
		json_t *j = json_pack("{s:s,s:s,s:s,s:s%}", "ts", ts, "level",
		    cfg_log_level_name(level), "name", name ? name : "arbord",
		    "msg", text, len);
		if (j == NULL)	/* not UTF-8: keep the record, drop the text */
			j = json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "level",
			    cfg_log_level_name(level), "name", name ? name : "arbord",
			    "msg", "(invalid UTF-8)");
		json_dumpf(j, stderr, JSON_COMPACT);	/* no string to free */
		fputc('\n', stderr);
		json_decref(j);
	} else {
		fprintf(stderr, "%s %-5s %s: %.*s\n", ts, cfg_log_level_name(level),
		    name ? name : "arbord", (int)len, text);
	}
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
