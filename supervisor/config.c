/* config: the libconfig file (SPEC 3) -> one immutable struct config.
 *
 * Every setting below a group is described once, in keys[]: its dotted name,
 * its kind, where it lives in struct config, its range and its default.
 * Loading, validation, config_print and config_diff all walk that table. */
#include "supervisor/config.h"
#include "proto/xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define KEYMAX		256	/* a dotted key longer than this is truncated */
#define DEFAULT_ENV	"dev"
#define DEFAULT_SOCKET	"../run/arbor.sock"

static const char *const default_command[] = {
	"python3", "../workers/python/bridge_worker.py", NULL
};
static const char *const default_worker_env[] = { "PYTHONUNBUFFERED=1", NULL };

static const char *const mode_words[] = { "disabled", "single", "pool", NULL };
static const char *const adapter_words[] = {
	"auto", "python_port", "python_pool", "bridge_mock", "mock", NULL
};
static const char *const restart_words[] = {
	"permanent", "transient", "temporary", NULL
};
static const char *const sched_words[] = {
	"inherit", "other", "batch", "idle", NULL
};
static const char *const strategy_words[] = { "fifo", "lifo", NULL };
static const char *const affinity_words[] = {
	"strict", "prefer", "none", NULL
};
static const char *const level_words[] = {
	"debug", "info", "warn", "error", NULL
};
static const char *const format_words[] = { "text", "json", NULL };

/* Enum fields are stored through an int *. */
_Static_assert(sizeof(enum cfg_adapter) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_restart) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_sched) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_strategy) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_affinity) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_log_format) == sizeof(int), "enum size");

enum kkind {
	KK_INT,		/* int, an integer in [min, max] */
	KK_LONG,	/* long, an integer in [min, max] */
	KK_BOOL,	/* bool, true or false */
	KK_ENUM,	/* an enum, one of words[] */
	KK_MODE,	/* mode_t, an octal string such as "0600" */
	KK_PATH,	/* char *, made absolute */
	KK_ARGV,	/* char **, a non-empty list of strings */
	KK_ENV		/* char ** of "K=V", a group of strings */
};

struct kdesc {
	const char	*name;		/* dotted: "pool.size" */
	enum kkind	 kind;
	size_t		 off;		/* into struct config */
	long long	 min, max, def;	/* numeric kinds */
	const char *const *words;	/* KK_ENUM */
};

#define O(f)			offsetof(struct config, f)
#define INT(n, f, lo, d)	{ n, KK_INT, O(f), lo, INT_MAX, d, NULL }
#define INTR(n, f, lo, hi, d)	{ n, KK_INT, O(f), lo, hi, d, NULL }
#define LONG(n, f, lo, hi, d)	{ n, KK_LONG, O(f), lo, hi, d, NULL }
#define BOOL(n, f, d)		{ n, KK_BOOL, O(f), 0, 1, d, NULL }
#define ENUM(n, f, w, d)	{ n, KK_ENUM, O(f), 0, 0, d, w }
#define OTHER(n, k, f, d)	{ n, k, O(f), 0, 07777, d, NULL }

static const struct kdesc keys[] = {
	INTR("supervisor.max_restarts", supervisor.max_restarts, 0,
	    CONFIG_MAX_RESTARTS, 3),
	INT("supervisor.max_seconds", supervisor.max_seconds, 1, 5),

	BOOL("bridge.enabled", bridge.enabled, 1),
	BOOL("bridge.pooling_enabled", bridge.pooling_enabled, 0),
	ENUM("bridge.adapter", bridge.adapter, adapter_words, ADAPTER_AUTO),
	INTR("bridge.max_restarts", bridge.max_restarts, 0,
	    CONFIG_MAX_RESTARTS, 5),
	INT("bridge.max_seconds", bridge.max_seconds, 1, 60),

	OTHER("worker.command", KK_ARGV, worker.argv, 0),
	OTHER("worker.env", KK_ENV, worker.env, 0),
	ENUM("worker.restart", worker.restart, restart_words,
	    RESTART_PERMANENT),
	INT("worker.init_timeout_ms", worker.init_timeout_ms, 1, 5000),
	INT("worker.request_timeout_ms", worker.request_timeout_ms, 1, 30000),
	INT("worker.health_interval_ms", worker.health_interval_ms, 0, 30000),
	INT("worker.health_timeout_ms", worker.health_timeout_ms, 1, 1000),
	INT("worker.shutdown_timeout_ms", worker.shutdown_timeout_ms, 0, 5000),
	LONG("worker.max_requests", worker.max_requests, 0, LONG_MAX, 0),
	LONG("worker.max_errors", worker.max_errors, 0, LONG_MAX, 10),
	LONG("worker.max_frame_bytes", worker.max_frame_bytes,
	    CONFIG_MIN_WORKER_FRAME, CONFIG_MAX_FRAME_BYTES, 16777216),
	INT("worker.restart_delay_ms", worker.restart_delay_ms, 0, 100),
	INT("worker.max_restart_delay_ms", worker.max_restart_delay_ms, 0,
	    5000),
	INT("worker.max_inflight", worker.max_inflight, 1, 64),
	ENUM("worker.sched_policy", worker.sched_policy, sched_words,
	    SCHEDP_INHERIT),

	INT("pool.size", pool.size, 0, 0),
	INTR("pool.max_overflow", pool.max_overflow, 0, CONFIG_MAX_OVERFLOW, 2),
	INT("pool.overflow_idle_ms", pool.overflow_idle_ms, 0, 10000),
	ENUM("pool.strategy", pool.strategy, strategy_words, STRATEGY_FIFO),
	BOOL("pool.lazy", pool.lazy, 0),
	INT("pool.checkout_timeout_ms", pool.checkout_timeout_ms, 0, 5000),
	INT("pool.max_waiting", pool.max_waiting, 0, 1024),
	ENUM("pool.affinity", pool.affinity, affinity_words, AFFINITY_STRICT),
	LONG("pool.session_ttl_ms", pool.session_ttl_ms, 0, LONG_MAX, 3600000),
	INTR("pool.max_restarts", pool.max_restarts, 0, CONFIG_MAX_RESTARTS,
	    5),
	INT("pool.max_seconds", pool.max_seconds, 1, 60),

	OTHER("control.socket", KK_PATH, control.socket, 0),
	OTHER("control.mode", KK_MODE, control.mode, 0600),
	INT("control.max_clients", control.max_clients, 1, 1024),
	LONG("control.max_frame_bytes", control.max_frame_bytes, 64,
	    CONFIG_MAX_FRAME_BYTES, 1048576),

	ENUM("log.level", log.level, level_words, LOG_INFO),
	ENUM("log.format", log.format, format_words, LOG_TEXT),
};
#define NKEYS	(sizeof keys / sizeof keys[0])

typedef char *str_t;	/* for CFIELD: const str_t * is char *const * */
typedef char **strv_t;

#define FIELD(c, k, T)	((T *)(void *)((char *)(c) + (k)->off))
#define CFIELD(c, k, T)	\
	((const T *)(const void *)((const char *)(c) + (k)->off))

/* What a load needs to report errors and resolve paths. */
struct ld {
	char	*file;		/* absolute path of the file */
	char	*dir;		/* its directory, a realpath */
	char	*err;
	size_t	 errlen;
	bool	 overlay;	/* applying an environment */
	char	*text_of;	/* the file whose text is read (int_as_written) */
	char	*text;		/* its text, or NULL */
	const char *scan;	/* a token of text, where int_as_written */
	unsigned scan_line;	/*   goes on from, and its line; or NULL */
};

/* ---- names ---- */

/* words[i], or "?" for a value outside the table. */
static const char *
word_at(const char *const *words, int i)
{
	for (int j = 0; words[j] != NULL; j++)
		if (j == i)
			return words[j];
	return "?";
}

const char *
cfg_mode_name(enum cfg_mode v)
{
	return word_at(mode_words, (int)v);
}

const char *
cfg_adapter_name(enum cfg_adapter v)
{
	return word_at(adapter_words, (int)v);
}

const char *
cfg_restart_name(enum cfg_restart v)
{
	return word_at(restart_words, (int)v);
}

const char *
cfg_sched_name(enum cfg_sched v)
{
	return word_at(sched_words, (int)v);
}

const char *
cfg_strategy_name(enum cfg_strategy v)
{
	return word_at(strategy_words, (int)v);
}

const char *
cfg_affinity_name(enum cfg_affinity v)
{
	return word_at(affinity_words, (int)v);
}

const char *
cfg_log_level_name(enum cfg_log_level v)
{
	return word_at(level_words, (int)v);
}

const char *
cfg_log_format_name(enum cfg_log_format v)
{
	return word_at(format_words, (int)v);
}

/* "a | b | c" for error messages. */
static void
join_words(const char *const *words, char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int i = 0; words[i] != NULL && n < len; i++) {
		int w = snprintf(buf + n, len - n, "%s%s", i ? " | " : "",
		    words[i]);
		n += w > 0 ? (size_t)w : 0;
	}
}

/* ---- errors ---- */

static int __attribute__((format(printf, 2, 3)))
seterr(struct ld *ld, const char *fmt, ...)
{
	va_list ap;
	if (ld->err == NULL || ld->errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ld->err, ld->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* The file libconfig names (an @include is named as written, relative to
 * the include directory, ld->dir) as an absolute path in buf. */
static const char *
abs_file(const struct ld *ld, const char *file, char *buf, size_t len)
{
	if (file == NULL)
		file = ld->file;
	if (file[0] == '/')
		return file;
	snprintf(buf, len, "%s/%s", ld->dir, file);
	return buf;
}

/* "file:line: key: reason" for the setting s (or "file: key: reason"). */
static int __attribute__((format(printf, 4, 5)))
fail(struct ld *ld, const config_setting_t *s, const char *key,
    const char *fmt, ...)
{
	char reason[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	if (s == NULL)
		return seterr(ld, "%s: %s: %s", ld->file, key, reason);
	char file[PATH_MAX];
	return seterr(ld, "%s:%u: %s: %s",
	    abs_file(ld, config_setting_source_file(s), file, sizeof file),
	    config_setting_source_line(s), key, reason);
}

/* ---- string vectors ---- */

static void
strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

static size_t
strv_len(char *const *v)
{
	size_t n = 0;
	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

static bool
strv_eq(char *const *a, char *const *b)
{
	size_t n = strv_len(a);
	if (n != strv_len(b))
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/* The same "K=V" vectors in any order (each NAME is there once). */
static bool
env_eq(char *const *a, char *const *b)
{
	size_t n = strv_len(a), i, j;
	if (n != strv_len(b))
		return false;
	for (i = 0; i < n; i++) {
		for (j = 0; j < n && strcmp(a[i], b[j]) != 0; j++)
			;
		if (j == n)
			return false;
	}
	return true;
}

/* Sets NAME=value in the "K=V" vector *vp, replacing an earlier NAME. */
static void
env_put(char ***vp, const char *name, const char *value)
{
	size_t n = strv_len(*vp), len = strlen(name);
	char *kv = xasprintf("%s=%s", name, value);
	for (size_t i = 0; i < n; i++) {
		if (strncmp((*vp)[i], name, len) == 0 && (*vp)[i][len] == '=') {
			free((*vp)[i]);
			(*vp)[i] = kv;
			return;
		}
	}
	*vp = xrealloc(*vp, (n + 2) * sizeof **vp);
	(*vp)[n] = kv;
	(*vp)[n + 1] = NULL;
}

/* ---- paths ---- */

/* p made absolute against dir. dir is a realpath (no symbolic links), so
 * leading "./" and "../" can be folded into it textually. */
static char *
resolve_path(const char *dir, const char *p)
{
	if (p[0] == '/')
		return xstrdup(p);
	char *base = xstrdup(dir);
	for (;;) {
		if (strncmp(p, "./", 2) == 0) {
			p += 2;
		} else if (strncmp(p, "../", 3) == 0) {
			char *sl = strrchr(base, '/');
			sl[sl == base ? 1 : 0] = '\0';
			p += 3;
		} else if (p[0] == '/') {
			p++;
		} else {
			break;
		}
	}
	char *r = xasprintf("%s/%s", strcmp(base, "/") ? base : "", p);
	free(base);
	return r;
}

/* Whitespace, and the characters a POSIX shell needs quoted to take them
 * as themselves: an element holding one is a script or an argument made
 * for a shell ("printf x; exec ./w" after sh -c), not a file name. */
#define NOT_IN_PATHS	" \t\n\v\f\r|&;<>()$`\\\"'"

/* A command element names a file relative to the config file when it holds
 * a '/', is neither absolute nor an option ("--x=a/b"), and holds none of
 * NOT_IN_PATHS. */
static char *
resolve_arg(const char *dir, const char *arg)
{
	if (strchr(arg, '/') == NULL || arg[0] == '/' || arg[0] == '-' ||
	    arg[strcspn(arg, NOT_IN_PATHS)] != '\0')
		return xstrdup(arg);
	return resolve_path(dir, arg);
}

static char **
argv_resolved(const char *dir, const char *const *argv, size_t n)
{
	char **v = xcalloc(n + 1, sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = resolve_arg(dir, argv[i]);
	return v;
}

/* ---- the table: numbers, defaults ---- */

/* The i-th member of a group or list. */
static const config_setting_t *
elem(const config_setting_t *s, int i)
{
	return config_setting_get_elem(s, (unsigned)i);
}

static const struct kdesc *
find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* True when name is a group of keys[] ("pool"). */
static bool
is_group_name(const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < NKEYS; i++)
		if (strncmp(keys[i].name, name, len) == 0 &&
		    keys[i].name[len] == '.')
			return true;
	return false;
}

static void
set_number(const struct kdesc *k, struct config *c, long long v)
{
	switch (k->kind) {
	case KK_INT:	*FIELD(c, k, int) = (int)v; break;
	case KK_LONG:	*FIELD(c, k, long) = (long)v; break;
	case KK_BOOL:	*FIELD(c, k, bool) = v != 0; break;
	case KK_ENUM:	*FIELD(c, k, int) = (int)v; break;
	case KK_MODE:	*FIELD(c, k, mode_t) = (mode_t)v; break;
	default:	break;
	}
}

static long long
get_number(const struct kdesc *k, const struct config *c)
{
	switch (k->kind) {
	case KK_INT:	return *CFIELD(c, k, int);
	case KK_LONG:	return *CFIELD(c, k, long);
	case KK_BOOL:	return *CFIELD(c, k, bool);
	case KK_ENUM:	return *CFIELD(c, k, int);
	case KK_MODE:	return *CFIELD(c, k, mode_t);
	default:	return 0;
	}
}

static bool
is_number_kind(enum kkind kind)
{
	return kind != KK_PATH && kind != KK_ARGV && kind != KK_ENV;
}

/* A struct holding the defaults of SPEC 3, paths resolved against ld->dir. */
static struct config *
config_defaults(const struct ld *ld)
{
	struct config *c = xcalloc(1, sizeof *c);
	for (size_t i = 0; i < NKEYS; i++)
		set_number(&keys[i], c, keys[i].def);
	c->path = xstrdup(ld->file);
	c->control.socket = resolve_path(ld->dir, DEFAULT_SOCKET);
	c->worker.argv = argv_resolved(ld->dir, default_command,
	    sizeof default_command / sizeof default_command[0] - 1);
	for (size_t i = 0; default_worker_env[i] != NULL; i++) {
		const char *kv = default_worker_env[i];
		char *name = xstrdup(kv);
		*strchr(name, '=') = '\0';
		env_put(&c->worker.env, name, strchr(kv, '=') + 1);
		free(name);
	}
	return c;
}

/* ---- integer literals as written ---- */

/* The whole text of path (a NUL byte is refused before parsing: one C
 * string), or NULL. */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t cap = 0;
	if (f == NULL)
		return NULL;
	if (getdelim(&text, &cap, '\0', f) < 0) {
		free(text);
		text = NULL;
	}
	fclose(f);
	return text;
}

/* The newlines in p[0..n). */
static unsigned
count_nl(const char *p, size_t n)
{
	unsigned k = 0;
	for (const char *q = p; (q = memchr(q, '\n', n - (size_t)(q - p)));
	    q++)
		k++;
	return k;
}

/* p past blanks and comments (#, //, slash-star), *line past the
 * newlines they hold. */
static const char *
skip_blank(const char *p, unsigned *line)
{
	const char *q;
	for (;;) {
		size_t n = strspn(p, " \t\r\n\f\v");
		*line += count_nl(p, n);
		p += n;
		if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			p += strcspn(p, "\n");
		} else if (p[0] == '/' && p[1] == '*') {
			q = strstr(p + 2, "*/");
			q = q != NULL ? q + 2 : p + strlen(p);
			*line += count_nl(p, (size_t)(q - p));
			p = q;
		} else {
			return p;
		}
	}
}

#define PUNCT	"=:;,{}[]()"

/* The next token at p, as libconfig's scanner splits the text, past
 * blanks and comments: a string literal (its escapes in it), one of
 * PUNCT, or a run of other bytes (a name, a number). *line is set to the
 * token's line, *len to its length; NULL at the end of the text. */
static const char *
next_token(const char *p, unsigned *line, size_t *len)
{
	const char *q;
	p = q = skip_blank(p, line);
	if (*p == '\0')
		return NULL;
	if (*q == '"') {
		for (q++; *q != '\0' && *q != '"'; q++)
			q += q[0] == '\\' && q[1] != '\0';
		q += *q == '"';
	} else if (strchr(PUNCT, *q) != NULL) {
		q++;
	} else {
		while (*q != '\0' && strchr(" \t\r\n\f\v\"#" PUNCT, *q) == NULL &&
		    !(q[0] == '/' && (q[1] == '/' || q[1] == '*')))
			q++;
	}
	*len = (size_t)(q - p);
	return p;
}

/* The integer literal at p as written (an L suffix allowed) into *v: 1,
 * or 2 when it is beyond 64 bits (*v LLONG_MAX or LLONG_MIN by its sign:
 * libconfig saturates such a literal, or keeps a hex one's low bits), or
 * 0 when p holds none. */
static int
read_literal(const char *p, long long *v)
{
	char *end;
	bool over;
	errno = 0;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		unsigned long long u = strtoull(p, &end, 16);
		over = errno == ERANGE || u > LLONG_MAX;
		*v = over ? LLONG_MAX : (long long)u;
	} else if (p[0] != '\0' && strchr("+-0123456789", p[0]) != NULL) {
		*v = strtoll(p, &end, 10);
		over = errno == ERANGE;
	} else {
		return 0;
	}
	if (end == p || (*end != '\0' && strchr(".eE", *end) != NULL))
		return 0;
	return over ? 2 : 1;
}

/* The text of path, read once per load (an @include'd file in turn). */
static const char *
file_text(struct ld *ld, const char *path)
{
	if (ld->text_of == NULL || strcmp(ld->text_of, path) != 0) {
		free(ld->text_of);
		free(ld->text);
		ld->text_of = xstrdup(path);
		ld->text = slurp(path);
		ld->scan = NULL;
	}
	return ld->text;
}

/* Whether a and b were read from the same line of the same file. */
static bool
same_line(const config_setting_t *a, const config_setting_t *b)
{
	const char *fa = config_setting_source_file(a);
	const char *fb = config_setting_source_file(b);
	return config_setting_source_line(a) == config_setting_source_line(b) &&
	    (fa == fb || (fa != NULL && fb != NULL && strcmp(fa, fb) == 0));
}

/* Walks t in file order up to s, counting into *n the settings of s's
 * name on s's line; true once s is reached. */
static bool
count_before(const config_setting_t *t, const config_setting_t *s,
    unsigned *n)
{
	for (int i = 0; i < config_setting_length(t); i++) {
		const config_setting_t *e = elem(t, i);
		const char *name = config_setting_name(e);
		if (e == s)
			return true;
		if (name != NULL && strcmp(name, config_setting_name(s)) == 0 &&
		    same_line(e, s))
			(*n)++;
		if (config_setting_is_aggregate(e) && count_before(e, s, n))
			return true;
	}
	return false;
}

/* How many settings of s's name come before s on its line: one line may
 * hold "a = { x = 0; }; b = { x = 4294967296; };". */
static unsigned
rank_on_line(const config_setting_t *s)
{
	const config_setting_t *root = s;
	unsigned n = 0;
	while (config_setting_parent(root) != NULL)
		root = config_setting_parent(root);
	return count_before(root, s, &n) ? n : 0;
}

/* Whether v, read from the text, is the value libconfig holds for s: an
 * int wraps (libconfig 1.5 reads an unsuffixed literal into an int). */
static bool
holds(const config_setting_t *s, long long v, long long got)
{
	if (config_setting_type(s) == CONFIG_TYPE_INT)
		return (int32_t)(uint32_t)(unsigned long long)v == got;
	return v == got;
}

/* The integer setting s as written in its file, *over set when it is
 * beyond 64 bits. libconfig 1.5 reads a literal without the L suffix into
 * an int, wrapping (4294967296 arrives as 0), and one beyond 64 bits as
 * the nearest bound: the literal after s's name on its line (its rank-th
 * "name =" there, as the scanner reads the text: a name in a comment or
 * a string is none), when libconfig's value is read from it, is what the
 * file means. Else libconfig's value. */
static long long
int_as_written(struct ld *ld, const config_setting_t *s, bool *over)
{
	char buf[PATH_MAX];
	long long got = config_setting_get_int64(s), v;
	const char *name = config_setting_name(s), *p, *tok, *eq;
	const char *text = file_text(ld, abs_file(ld,
	    config_setting_source_file(s), buf, sizeof buf));
	unsigned want = config_setting_source_line(s), line = 1, at;
	size_t len, nlen = name != NULL ? strlen(name) : 0, n;
	unsigned skip = nlen > 0 ? rank_on_line(s) : 0;
	*over = false;
	p = text;
	if (ld->scan != NULL && ld->scan_line < want) {
		p = ld->scan;	/* settings come mostly in file order */
		line = ld->scan_line;
	}
	for (; nlen > 0 && p != NULL && line <= want; p = tok + len) {
		if ((tok = next_token(p, &line, &len)) == NULL || line > want)
			break;
		at = line;
		if (at < want) {
			ld->scan = tok;
			ld->scan_line = at;
		}
		line += count_nl(tok, len);	/* a string may span lines */
		if (at != want || len != nlen || memcmp(tok, name, nlen) != 0)
			continue;
		eq = next_token(tok + len, &at, &n);
		if (eq == NULL || (*eq != '=' && *eq != ':') || skip-- > 0)
			continue;
		int r = read_literal(skip_blank(eq + 1, &at), &v);
		if (r == 2 || (r == 1 && holds(s, v, got))) {
			got = v;
			*over = r == 2;
		}
		break;
	}
	return got;
}

/* ---- one setting ---- */

static int
apply_number(struct ld *ld, const struct kdesc *k, const config_setting_t *s,
    const char *key, struct config *c)
{
	int t = config_setting_type(s);
	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
		return fail(ld, s, key, "must be an integer");
	bool over;
	long long v = int_as_written(ld, s, &over);
	if (v < k->min || (over && v < 0))
		return fail(ld, s, key, "must be >= %lld", k->min);
	if (v > k->max || over)
		return fail(ld, s, key, "must be <= %lld", k->max);
	set_number(k, c, v);
	return 0;
}

static int
apply_bool(struct ld *ld, const struct kdesc *k, const config_setting_t *s,
    const char *key, struct config *c)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return fail(ld, s, key, "must be true or false");
	set_number(k, c, config_setting_get_bool(s));
	return 0;
}

static int
apply_enum(struct ld *ld, const struct kdesc *k, const config_setting_t *s,
    const char *key, struct config *c)
{
	char list[128];
	const char *v = config_setting_get_string(s);
	join_words(k->words, list, sizeof list);
	if (v == NULL)
		return fail(ld, s, key, "must be a string, one of %s", list);
	for (int i = 0; k->words[i] != NULL; i++) {
		if (strcmp(k->words[i], v) == 0) {
			set_number(k, c, i);
			return 0;
		}
	}
	return fail(ld, s, key, "must be one of %s, not \"%s\"", list, v);
}

/* "0600", "755": three or four octal digits. */
static int
apply_mode(struct ld *ld, const struct kdesc *k, const config_setting_t *s,
    const char *key, struct config *c)
{
	const char *v = config_setting_get_string(s);
	size_t n = v ? strlen(v) : 0;
	if (n < 3 || n > 4 || strspn(v, "01234567") != n)
		return fail(ld, s, key,
		    "must be an octal string such as \"0600\"");
	set_number(k, c, strtoll(v, NULL, 8));
	return 0;
}

/* A unix socket path must fit sun_path. */
static int
check_socket_len(struct ld *ld, const config_setting_t *s, const char *key,
    const char *p)
{
	size_t max = sizeof ((struct sockaddr_un *)0)->sun_path - 1;
	if (strlen(p) > max)
		return fail(ld, s, key, "%s: too long for a unix socket "
		    "(%zu > %zu bytes)", p, strlen(p), max);
	return 0;
}

static int
apply_path(struct ld *ld, const struct kdesc *k, const config_setting_t *s,
    const char *key, struct config *c)
{
	const char *v = config_setting_get_string(s);
	if (v == NULL || v[0] == '\0')
		return fail(ld, s, key, "must be a non-empty string");
	char *p = resolve_path(ld->dir, v);
	if (check_socket_len(ld, s, key, p) < 0) {
		free(p);
		return -1;
	}
	free(*FIELD(c, k, char *));
	*FIELD(c, k, char *) = p;
	return 0;
}

static int
apply_argv(struct ld *ld, const struct kdesc *k, const config_setting_t *s,
    const char *key, struct config *c)
{
	const char *bad = "must be a non-empty list of strings";
	bool list = config_setting_is_list(s) || config_setting_is_array(s);
	int n = list ? config_setting_length(s) : 0;
	if (n == 0)
		return fail(ld, s, key, "%s", bad);
	const char **argv = xcalloc((size_t)n + 1, sizeof *argv);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = elem(s, i);
		argv[i] = config_setting_get_string(e);
		if (argv[i] == NULL || (i == 0 && argv[0][0] == '\0')) {
			const char *why = argv[i] ? "empty" : "not a string";
			free(argv);
			return fail(ld, e, key, "%s (element %d is %s)", bad,
			    i + 1, why);
		}
	}
	strv_free(*FIELD(c, k, char **));
	*FIELD(c, k, char **) = argv_resolved(ld->dir, argv, (size_t)n);
	free(argv);
	return 0;
}

/* worker.env replaces the default; an environment's worker.env overlays
 * the base variable by variable, like every other group. */
static int
apply_env(struct ld *ld, const struct kdesc *k, const config_setting_t *s,
    const char *key, struct config *c)
{
	char sub[KEYMAX];
	if (!config_setting_is_group(s))
		return fail(ld, s, key, "must be a group of NAME = \"value\"");
	if (!ld->overlay) {
		strv_free(*FIELD(c, k, char **));
		*FIELD(c, k, char **) = xcalloc(1, sizeof(char *));
	}
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = elem(s, i);
		const char *v = config_setting_get_string(e);
		snprintf(sub, sizeof sub, "%s.%s", key, config_setting_name(e));
		if (v == NULL)
			return fail(ld, e, sub, "must be a string");
		env_put(FIELD(c, k, char **), config_setting_name(e), v);
	}
	return 0;
}

typedef int (*apply_fn)(struct ld *, const struct kdesc *,
    const config_setting_t *, const char *, struct config *);

static const apply_fn appliers[] = {
	[KK_INT] = apply_number,
	[KK_LONG] = apply_number,
	[KK_BOOL] = apply_bool,
	[KK_ENUM] = apply_enum,
	[KK_MODE] = apply_mode,
	[KK_PATH] = apply_path,
	[KK_ARGV] = apply_argv,
	[KK_ENV] = apply_env,
};

/* ---- groups, environments ---- */

/* The settings of group s ("pool"), reported under gkey
 * ("environments.test.pool"), written into c. */
static int
apply_group(struct ld *ld, const config_setting_t *s, const char *gname,
    const char *gkey, struct config *c)
{
	char local[KEYMAX], full[2 * KEYMAX];
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = elem(s, i);
		const char *name = config_setting_name(e);
		snprintf(local, sizeof local, "%s.%s", gname, name);
		snprintf(full, sizeof full, "%s.%s", gkey, name);
		const struct kdesc *k = find_key(local);
		if (k == NULL)
			return fail(ld, e, full, "unknown key");
		if (appliers[k->kind](ld, k, e, full, c) < 0)
			return -1;
	}
	return 0;
}

/* The groups of the root (top) or of an environment overlay, under prefix. */
static int
apply_groups(struct ld *ld, const config_setting_t *root, const char *prefix,
    bool top, struct config *c)
{
	char key[KEYMAX];
	for (int i = 0; i < config_setting_length(root); i++) {
		const config_setting_t *s = elem(root, i);
		const char *name = config_setting_name(s);
		snprintf(key, sizeof key, "%s%s", prefix, name);
		if (top && (strcmp(name, "default_environment") == 0 ||
		    strcmp(name, "environments") == 0))
			continue;	/* checked on their own */
		if (!is_group_name(name))
			return fail(ld, s, key, "unknown key");
		if (!config_setting_is_group(s))
			return fail(ld, s, key, "must be a group");
		if (apply_group(ld, s, name, key, c) < 0)
			return -1;
	}
	return 0;
}

/* default_environment, when the file names one. */
static int
read_default_env(struct ld *ld, const config_setting_t *root, const char **out)
{
	const config_setting_t *s;
	s = config_setting_get_member(root, "default_environment");
	if (s == NULL)
		return 0;
	*out = config_setting_get_string(s);
	if (*out == NULL || (*out)[0] == '\0')
		return fail(ld, s, "default_environment",
		    "must be a non-empty string");
	return 0;
}

/* Every environment is checked, not only the selected one: each overlays a
 * scratch copy of the defaults. */
static int
check_environments(struct ld *ld, const config_setting_t *root)
{
	char key[KEYMAX];
	const config_setting_t *envs = config_setting_get_member(root,
	    "environments");
	if (envs == NULL)
		return 0;
	if (!config_setting_is_group(envs))
		return fail(ld, envs, "environments", "must be a group");
	for (int i = 0; i < config_setting_length(envs); i++) {
		const config_setting_t *e = elem(envs, i);
		snprintf(key, sizeof key, "environments.%s",
		    config_setting_name(e));
		if (!config_setting_is_group(e))
			return fail(ld, e, key, "must be a group");
		strncat(key, ".", sizeof key - strlen(key) - 1);
		struct config *scratch = config_defaults(ld);
		ld->overlay = true;
		int rc = apply_groups(ld, e, key, false, scratch);
		ld->overlay = false;
		config_free(scratch);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* An unset or empty string is no choice. */
static const char *
nonempty(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

/* The environment's name (arg, $ARBOR_ENV, default_environment, "dev") and
 * its overlay group. */
static int
select_env(struct ld *ld, const config_setting_t *root, const char *arg,
    const char *defenv, struct config *c, const config_setting_t **overlay)
{
	const char *name = nonempty(arg);
	const char *from = "-e";
	if (name == NULL) {
		name = nonempty(getenv("ARBOR_ENV"));
		from = "$ARBOR_ENV";
	}
	if (name == NULL) {
		name = defenv ? defenv : DEFAULT_ENV;
		from = defenv ? "default_environment" : "the default";
	}
	const config_setting_t *envs = config_setting_get_member(root,
	    "environments");
	*overlay = envs ? config_setting_get_member(envs, name) : NULL;
	if (*overlay != NULL) {
		c->env = xstrdup(name);
		return 0;
	}
	/* The file's own choice is named at its line; a choice from outside
	 * at the environments group, or at no line when there is none. */
	const config_setting_t *at = envs;
	const char *key = "environments";
	if (strcmp(from, "default_environment") == 0) {
		at = config_setting_get_member(root, "default_environment");
		key = "default_environment";
	}
	return fail(ld, at, key, "environment '%s' (from %s) is not defined%s",
	    name, from, envs ? "" : ": the file has no environments group");
}

/* ---- resolution ---- */

static const struct {
	const char	*name;
	enum cfg_adapter adapter;
	bool		 pool;
} test_modes[] = {
	{ "mock_adapter", ADAPTER_MOCK, false },
	{ "bridge_mock", ADAPTER_BRIDGE_MOCK, false },
	{ "full_integration", ADAPTER_PYTHON_POOL, true },
};

/* TEST_MODE, honoured in the "test" environment only. */
static int
apply_test_mode(struct ld *ld, struct config *c)
{
	const char *tm = nonempty(getenv("TEST_MODE"));
	if (tm == NULL || strcmp(c->env, "test") != 0)
		return 0;
	for (size_t i = 0; i < sizeof test_modes / sizeof test_modes[0]; i++) {
		if (strcmp(test_modes[i].name, tm) != 0)
			continue;
		if (test_modes[i].pool) {
			c->bridge.enabled = c->bridge.pooling_enabled = true;
			c->mode = MODE_POOL;
		}
		c->adapter = test_modes[i].adapter;
		c->test_mode = xstrdup(tm);
		return 0;
	}
	return fail(ld, NULL, "TEST_MODE", "unknown value '%s' (expected "
	    "mock_adapter | bridge_mock | full_integration)", tm);
}

/* Mode, adapter, TEST_MODE and pool.size, after the overlay (SPEC 3). */
static int
resolve(struct ld *ld, struct config *c)
{
	if (!c->bridge.enabled)
		c->mode = MODE_DISABLED;
	else
		c->mode = c->bridge.pooling_enabled ? MODE_POOL : MODE_SINGLE;
	/* auto is what the mode runs; mode disabled runs nothing, and shows
	 * the adapter as configured, auto included. */
	c->adapter = c->bridge.adapter;
	if (c->adapter == ADAPTER_AUTO && c->mode != MODE_DISABLED)
		c->adapter = c->mode == MODE_POOL ? ADAPTER_PYTHON_POOL :
		    ADAPTER_PYTHON_PORT;
	if (apply_test_mode(ld, c) < 0 ||
	    check_socket_len(ld, NULL, "control.socket", c->control.socket) < 0)
		return -1;
	if (c->pool.size == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c->pool.size = 2 * (n > 0 && n < 4096 ? (int)n : 1);
	}
	return 0;
}

/* ---- loading ---- */

/* ld->file and ld->dir from path; the file must be a readable regular
 * file: a FIFO would block the open (O_NONBLOCK here) and every read, a
 * device such as /dev/zero would be read without end. */
static int
locate(struct ld *ld, const char *path)
{
	struct stat st;
	int fd;
	if ((ld->file = realpath(path, NULL)) == NULL ||
	    (fd = open(ld->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
		return seterr(ld, "%s: cannot open: %s", path, strerror(errno));
	int rc = fstat(fd, &st);
	close(fd);
	if (rc == 0 && S_ISDIR(st.st_mode))
		return seterr(ld, "%s: cannot open: %s", path,
		    strerror(EISDIR));
	if (rc == 0 && !S_ISREG(st.st_mode))
		return seterr(ld, "%s: cannot open: not a regular file", path);
	ld->dir = xstrdup(ld->file);
	char *sl = strrchr(ld->dir, '/');
	sl[sl == ld->dir ? 1 : 0] = '\0';
	return 0;
}

#define INCLUDE_DEPTH	10	/* libconfig's own limit */

/* The whole of file, NUL-terminated, with its length (NUL bytes in it
 * counted) in *len; NULL when it cannot be read. */
static char *
read_all(const char *file, size_t *len)
{
	FILE *f = fopen(file, "r");
	char *buf = NULL;
	size_t cap = 0, got;
	*len = 0;
	if (f == NULL)
		return NULL;
	do {
		if (cap - *len < 4096)
			buf = xrealloc(buf, cap = 2 * cap + 4096);
		got = fread(buf + *len, 1, cap - *len - 1, f);
		*len += got;
	} while (got > 0);
	fclose(f);
	buf[*len] = '\0';
	return buf;
}

/* The number of the line of text that p is on. */
static int
line_at(const char *text, const char *p)
{
	int n = 1;
	for (; text < p; text++)
		n += *text == '\n';
	return n;
}

/* Whether the token tok[0..n) of text is "@include" at the start of its
 * line (blanks before it), as libconfig's scanner takes a directive: not
 * in a comment or a string, which next_token skips whole. */
static bool
directive_at(const char *text, const char *tok, size_t n)
{
	const char *bol = tok;
	if (n != 8 || strncmp(tok, "@include", 8) != 0)
		return false;
	while (bol > text && bol[-1] != '\n')
		bol--;
	return strspn(bol, " \t") >= (size_t)(tok - bol);
}

/* At p, a line (or its first token): the name of an `@include "name"`
 * there, read as libconfig 1.5's scanner reads it (`^[ \t]*@include[ \t]+"`, then
 * `\\` and `\"` stand for `\` and `"`, and the name runs to the next other
 * `"`, across lines). 1 with the name, 0 when the line is no include (or
 * one left open at the end of the file: the scanner opens nothing), -1
 * for another backslash (the scanner drops it and names another file
 * than the one written), -2 for a name too long. */
static int
include_at(const char *p, char *name, size_t size)
{
	size_t n = 0;
	p += strspn(p, " \t");
	if (strncmp(p, "@include", 8) != 0 || strspn(p + 8, " \t") == 0)
		return 0;
	p += 8 + strspn(p + 8, " \t");
	if (*p != '"')
		return 0;
	for (p++; *p != '"'; p++) {
		if (*p == '\0')
			return 0;
		if (*p == '\\' && p[1] != '\\' && p[1] != '"')
			return -1;
		p += *p == '\\';
		if (n + 1 >= size)
			return -2;
		name[n++] = *p;
	}
	name[n] = '\0';
	return 1;
}

static int check_includes(struct ld *, const char *, int);

/* The include named at line of file: it must be a regular file, read as
 * libconfig 1.5 reads it (the name, even an absolute one, after the
 * include directory, ld->dir), and its own includes too. */
static int
check_include(struct ld *ld, const char *file, int line, const char *name,
    int depth)
{
	char path[2 * PATH_MAX];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", ld->dir, name);
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return seterr(ld, "%s:%d: @include: \"%s\" is not a readable "
		    "file%s%s%s", file, line, name,
		    name[0] == '/' ? " (every name is read from the directory "
		    "of the config file: " : "", name[0] == '/' ? path : "",
		    name[0] == '/' ? ")" : "");
	if (depth >= INCLUDE_DEPTH)
		return seterr(ld, "%s:%d: @include: nested too deep", file,
		    line);
	return check_includes(ld, path, depth + 1);
}

/* libconfig 1.5 exits the process when an @include names something it
 * cannot scan (a directory): every @include target, nested ones too, must
 * be a regular file before libconfig sees the file. A NUL byte anywhere
 * is refused too: it would end the text for this check while the scanner
 * reads past it (`@include "\0"` names the directory itself), and a
 * config file has no use for one. */
static int
check_includes(struct ld *ld, const char *file, int depth)
{
	char name[PATH_MAX];
	size_t len;
	int rc = 0;
	char *text = read_all(file, &len);
	if (text == NULL)
		return 0;	/* libconfig reports it, with the line */
	const char *nul = memchr(text, '\0', len);
	if (nul != NULL)
		rc = seterr(ld, "%s:%d: a NUL byte: not a text file", file,
		    line_at(text, nul));
	unsigned line = 1;
	size_t n;
	for (const char *tok = text; rc == 0 &&
	    (tok = next_token(tok, &line, &n)) != NULL; tok += n) {
		int got = directive_at(text, tok, n) ?
		    include_at(tok, name, sizeof name) : 0;
		if (got == -1)
			rc = seterr(ld, "%s:%u: @include: a backslash in the "
			    "name escapes neither \\ nor \"", file, line);
		else if (got == -2)
			rc = seterr(ld, "%s:%u: @include: the name is too "
			    "long", file, line);
		else if (got == 1)
			rc = check_include(ld, file, (int)line, name, depth);
		line += count_nl(tok, n);	/* a string may span lines */
	}
	free(text);
	return rc;
}

/* ---- the key of a duplicate setting ---- */

#define DUP_DEPTH	64	/* groups open at once that are followed */

/* The settings seen in the groups open at a point of the text (all files
 * as libconfig reads them, an @include's in its place), to name the first
 * setting that repeats a name of its group: libconfig's error for it
 * gives only the line. */
struct dups {
	struct dup_name { char *name; int depth; } *seen; /* innermost last */
	size_t		 n, cap;
	const char	*group[DUP_DEPTH + 1];	/* each open group's (or
						   list's) name, or NULL:
						   a list's element */
	int		 depth;
	const char	*named;		/* the setting a '=' just named */
};

/* Leaves the innermost open group (or list, or array). */
static void
dups_close(struct dups *d)
{
	while (d->n > 0 && d->seen[d->n - 1].depth == d->depth)
		free(d->seen[--d->n].name);
	if (d->depth > 0)
		d->depth--;
}

/* The setting name[0..n) in the innermost group: true when the group has
 * one of that name already. */
static bool
dups_add(struct dups *d, const char *name, size_t n)
{
	for (size_t i = d->n; i > 0 && d->seen[i - 1].depth == d->depth; i--)
		if (strlen(d->seen[i - 1].name) == n &&
		    memcmp(d->seen[i - 1].name, name, n) == 0)
			return true;
	if (d->n == d->cap)
		d->seen = xrealloc(d->seen, (d->cap = 2 * d->cap + 16) *
		    sizeof *d->seen);
	char *copy = xmalloc(n + 1);
	memcpy(copy, name, n);
	copy[n] = '\0';
	d->seen[d->n].name = copy;
	d->seen[d->n++].depth = d->depth;
	return false;
}

/* The dotted key of name[0..n) in the innermost group, into key. */
static void
dups_key(const struct dups *d, const char *name, size_t n, char *key,
    size_t size)
{
	size_t at = 0;
	key[0] = '\0';
	for (int i = 1; i <= d->depth; i++)
		if (d->group[i] != NULL && at < size)
			at += (size_t)snprintf(key + at, size - at, "%s.",
			    d->group[i]);
	if (at < size)
		snprintf(key + at, size - at, "%.*s", (int)n, name);
}

static int dups_scan(struct ld *, struct dups *, const char *, int, char *,
    size_t);

/* The token tok[0..n), after prev (a name, or NULL) and after a '=' or
 * ':' when eq: 1 with the key in key when it repeats a setting of its
 * group, -1 when the groups nest too deep to follow, else 0. */
static int
dups_token(struct dups *d, const char *tok, size_t n, const char *prev,
    size_t plen, bool eq, char *key, size_t size)
{
	switch (*tok) {
	case '=': case ':':
		d->named = NULL;
		if (prev == NULL)
			return 0;
		if (dups_add(d, prev, plen)) {
			dups_key(d, prev, plen, key, size);
			return 1;
		}
		d->named = d->seen[d->n - 1].name;
		return 0;
	case '{': case '(': case '[':
		if (d->depth == DUP_DEPTH)
			return -1;
		d->group[++d->depth] = eq ? d->named : NULL;
		return 0;
	case '}': case ')': case ']':
		dups_close(d);
		return 0;
	}
	return 0;
}

/* Follows the settings of file (an @include's to its own file, depth
 * deep) up to the first that repeats a name of its group: 1 with its
 * dotted key in key, else 0 (or -1: nested too deep to follow). */
static int
dups_scan(struct ld *ld, struct dups *d, const char *file, int depth,
    char *key, size_t size)
{
	char name[PATH_MAX], path[2 * PATH_MAX];
	size_t len, n, plen = 0;
	unsigned line = 1;	/* next_token counts lines; unused here */
	int rc = 0;
	bool eq = false;
	const char *tok, *prev = NULL;
	char *text = read_all(file, &len);
	if (text == NULL)
		return 0;
	for (tok = text; rc == 0 && (tok = next_token(tok, &line, &n)) != NULL;
	    tok += n) {
		if (directive_at(text, tok, n) && depth < INCLUDE_DEPTH &&
		    include_at(tok, name, sizeof name) == 1) {
			snprintf(path, sizeof path, "%s/%s", ld->dir, name);
			rc = dups_scan(ld, d, path, depth + 1, key, size);
			if ((tok = next_token(tok + n, &line, &n)) == NULL)
				break;	/* the name, a string token */
			prev = NULL;
			eq = false;
			continue;
		}
		rc = dups_token(d, tok, n, prev, plen, eq, key, size);
		eq = *tok == '=' || *tok == ':';
		prev = strchr("\"" PUNCT, *tok) == NULL ? tok : NULL;
		plen = n;
	}
	free(text);
	return rc;
}

/* libconfig's error for a setting that repeats a name of its group, with
 * the setting's key when it can be found. */
static int
duplicate_error(struct ld *ld, const char *file, int line)
{
	char key[KEYMAX];
	struct dups d = { .n = 0 };
	int found = dups_scan(ld, &d, ld->file, 0, key, sizeof key);
	while (d.n > 0)
		free(d.seen[--d.n].name);
	free(d.seen);
	if (found == 1)
		return seterr(ld, "%s:%d: %s: duplicate setting (already set "
		    "in its group)", file, line, key);
	return seterr(ld, "%s:%d: syntax: duplicate setting name", file, line);
}

static int
parse(struct ld *ld, config_t *lc)
{
	if (check_includes(ld, ld->file, 0) < 0)
		return -1;
	config_set_include_dir(lc, ld->dir);
	if (config_read_file(lc, ld->file))
		return 0;
	char buf[PATH_MAX];
	const char *file = abs_file(ld, config_error_file(lc), buf, sizeof buf);
	if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
		return seterr(ld, "%s: cannot open: %s", file,
		    config_error_text(lc));
	if (strcmp(config_error_text(lc), "duplicate setting name") == 0)
		return duplicate_error(ld, file, config_error_line(lc));
	return seterr(ld, "%s:%d: syntax: %s", file, config_error_line(lc),
	    config_error_text(lc));
}

/* The struct for the parsed tree: defaults, top-level settings, the
 * environment's overlay, then resolution. */
static struct config *
build(struct ld *ld, const config_setting_t *root, const char *env)
{
	const char *defenv = NULL;
	const config_setting_t *overlay;
	char prefix[KEYMAX];
	if (read_default_env(ld, root, &defenv) < 0 ||
	    check_environments(ld, root) < 0)
		return NULL;
	struct config *c = config_defaults(ld);
	if (apply_groups(ld, root, "", true, c) < 0 ||
	    select_env(ld, root, env, defenv, c, &overlay) < 0)
		goto err;
	snprintf(prefix, sizeof prefix, "environments.%s.", c->env);
	ld->overlay = true;
	if (apply_groups(ld, overlay, prefix, false, c) < 0 ||
	    resolve(ld, c) < 0)
		goto err;
	return c;
err:
	config_free(c);
	return NULL;
}

struct config *
config_load(const char *path, const char *env, char *err, size_t errlen)
{
	struct ld ld = { .err = err, .errlen = errlen };
	struct config *c = NULL;
	config_t lc;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (locate(&ld, path) < 0)
		goto out;
	config_init(&lc);
	if (parse(&ld, &lc) == 0)
		c = build(&ld, config_root_setting(&lc), env);
	config_destroy(&lc);
out:
	free(ld.file);
	free(ld.dir);
	free(ld.text_of);
	free(ld.text);
	return c;
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	if (c->holds > 0) {
		c->holds--;
		return;
	}
	free(c->path);
	free(c->env);
	free(c->test_mode);
	strv_free(c->worker.argv);
	strv_free(c->worker.env);
	free(c->control.socket);
	free(c);
}

const struct config *
config_hold(const struct config *c)
{
	((struct config *)c)->holds++;	/* the count alone changes */
	return c;
}

void
config_release(const struct config *c)
{
	config_free((struct config *)c);
}

/* ---- printing, diffing ---- */

static void
print_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* ["a", "b"], or {"K": "V"} for a vector of "K=V". */
static void
print_strv(FILE *f, char *const *v, bool kv)
{
	fputc(kv ? '{' : '[', f);
	for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
		fputs(i ? ", " : "", f);
		const char *eq = kv ? strchr(v[i], '=') : NULL;
		if (eq == NULL) {
			print_json_string(f, v[i]);
			continue;
		}
		char *name = xasprintf("%.*s", (int)(eq - v[i]), v[i]);
		print_json_string(f, name);
		fputs(": ", f);
		print_json_string(f, eq + 1);
		free(name);
	}
	fputc(kv ? '}' : ']', f);
}

static void
print_value(const struct kdesc *k, const struct config *c, FILE *f)
{
	long long v = get_number(k, c);
	switch (k->kind) {
	case KK_INT:
	case KK_LONG:	fprintf(f, "%lld", v); break;
	case KK_BOOL:	fputs(v ? "true" : "false", f); break;
	case KK_ENUM:	fputs(word_at(k->words, (int)v), f); break;
	case KK_MODE:	fprintf(f, "%04llo", v); break;
	case KK_PATH:	fputs(*CFIELD(c, k, str_t), f); break;
	case KK_ARGV:	print_strv(f, *CFIELD(c, k, strv_t), false); break;
	case KK_ENV:	print_strv(f, *CFIELD(c, k, strv_t), true); break;
	}
}

void
config_print(const struct config *c, FILE *f)
{
	fprintf(f, "config = %s\n", c->path);
	fprintf(f, "environment = %s\n", c->env);
	fprintf(f, "mode = %s\n", cfg_mode_name(c->mode));
	fprintf(f, "adapter = %s\n", cfg_adapter_name(c->adapter));
	if (c->test_mode != NULL)
		fprintf(f, "test_mode = %s\n", c->test_mode);
	for (size_t i = 0; i < NKEYS; i++) {
		fprintf(f, "%s = ", keys[i].name);
		print_value(&keys[i], c, f);
		fputc('\n', f);
	}
}

static bool
value_eq(const struct kdesc *k, const struct config *a, const struct config *b)
{
	if (is_number_kind(k->kind))
		return get_number(k, a) == get_number(k, b);
	if (k->kind == KK_PATH)
		return strcmp(*CFIELD(a, k, str_t), *CFIELD(b, k, str_t)) == 0;
	if (k->kind == KK_ENV)
		return env_eq(*CFIELD(a, k, strv_t), *CFIELD(b, k, strv_t));
	return strv_eq(*CFIELD(a, k, strv_t), *CFIELD(b, k, strv_t));
}

static bool
str_eq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

const char **
config_diff(const struct config *a, const struct config *b)
{
	const char **out = xcalloc(NKEYS + 5, sizeof *out);
	size_t n = 0;
	if (!str_eq(a->env, b->env))
		out[n++] = "environment";
	if (a->mode != b->mode)
		out[n++] = "mode";
	if (a->adapter != b->adapter)
		out[n++] = "adapter";
	if (!str_eq(a->test_mode, b->test_mode))
		out[n++] = "test_mode";
	for (size_t i = 0; i < NKEYS; i++)
		if (!value_eq(&keys[i], a, b))
			out[n++] = keys[i].name;
	return out;
}
