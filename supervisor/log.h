/* log: one line per event on stderr: ISO-8601 UTC timestamp, level, tree
 * name, message; or one JSON object per line (log.format = "json"). */
#ifndef ARBOR_LOG_H
#define ARBOR_LOG_H
#include "supervisor/config.h"

void	log_setup(enum cfg_log_level, enum cfg_log_format);
void	log_msg(enum cfg_log_level, const char *name, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* Logs one line a worker wrote on stderr (len bytes, no newline). */
void	log_line(const char *name, const char *line, size_t len);
int	log_enabled(enum cfg_log_level);

/* A noun after a count n, as it reads: one for 1, many otherwise
 * ("%zu %s", n, log_plural(n, "request", "requests")). */
static inline const char *
log_plural(unsigned long long n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

#define log_debug(name, ...)	log_msg(LOG_DEBUG, name, __VA_ARGS__)
#define log_info(name, ...)	log_msg(LOG_INFO, name, __VA_ARGS__)
#define log_warn(name, ...)	log_msg(LOG_WARN, name, __VA_ARGS__)
#define log_error(name, ...)	log_msg(LOG_ERROR, name, __VA_ARGS__)

#endif
