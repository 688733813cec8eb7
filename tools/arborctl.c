/* arborctl: inspects and steers a running arbord through its control socket
 * (SPEC 8). One connection, one request, one reply; the reply is printed as
 * a human view, or as raw JSON with --json.
 *
 * Exit status: 0 ok; 1 arbord answered with an error (or `health` is not
 * healthy); 2 usage (or a config file named by -c or $ARBOR_CONF that
 * cannot be loaded); 3 arbord not reachable (no socket known, cannot
 * connect, no reply in time, or a reply that is not a control frame). */

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/jraw.h"
#include "proto/msg.h"
#include "proto/xmalloc.h"
#include "supervisor/config.h"

enum {
	EXIT_OK = 0,
	EXIT_REPLY_ERROR = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
};

#define DEFAULT_CONF	"/etc/arbor/arbor.conf"
#define REQUEST_ID	1
#define PROBE_ID	2		/* a call's ping, once its bound passed */
#define PROBE_PING	"{\"op\":\"ping\",\"id\":2}"	/* id PROBE_ID */
#define REPLY_WAIT_MS	60000LL		/* any op but call; see reply_wait_ms() */
#define REPLY_MARGIN_MS	5000LL		/* a call: beyond arbord's own deadlines */
#define PROBE_WAIT_MS	5000LL		/* a call's ping: the answer within this */
#define MAX_REPLY_BYTES	((size_t)CONFIG_MAX_REPLY_BYTES)	/* what arbord sends */
#define MAX_TIMEOUT_MS	(24L * 3600 * 1000)

static const char usage_text[] =
"usage: arborctl [-s SOCKET] [-c FILE] [--json] COMMAND [ARGS]\n"
"\n"
"commands:\n"
"  status [NAME]        the supervision tree, or the subtree at NAME\n"
"                       (--json: the raw NODE)\n"
"  health               prints e.g. \"healthy 4/4\"; exit 0 when healthy,\n"
"                       1 when degraded or down\n"
"  stats                pool/bridge counters\n"
"  metrics              the Prometheus text exposition\n"
"  call COMMAND [ARGS_JSON] [--session ID] [--timeout MS]\n"
"                       runs COMMAND on a worker; prints the result JSON\n"
"                       (ARGS_JSON: an object; --json: the whole reply)\n"
"  end-session ID       ends a session binding\n"
"  restart NAME         restarts a child (e.g. pool/worker.1, pool)\n"
"  stop NAME            stops a worker\n"
"  start NAME           starts a stopped worker\n"
"  reload               makes arbord read its config file again\n"
"  shutdown             stops arbord gracefully\n"
"  ping                 checks that arbord answers\n"
"\n"
"options (anywhere on the line; `--` ends them):\n"
"  -s, --socket SOCKET  the control socket; default $ARBOR_SOCKET, else\n"
"                       control.socket of the config file\n"
"  -c, --config FILE    the config file read to find the socket and a\n"
"                       call's timeouts; default $ARBOR_CONF, else\n"
"                       " DEFAULT_CONF "\n"
"                       (environment: $ARBOR_ENV, else default_environment)\n"
"  --json               prints the reply's JSON instead of the human view\n"
"  -h, --help           prints this text\n"
"\n"
"exit status:\n"
"  0  ok\n"
"  1  arbord answered with an error (`arborctl: CODE: MESSAGE` on stderr),\n"
"     or `health` found the tree degraded or down\n"
"  2  usage error, or a config file named by -c (read whatever the\n"
"     command) or $ARBOR_CONF that cannot be loaded\n"
"  3  arbord not reachable: the socket cannot be found (the default\n"
"     config file cannot be loaded and neither -s nor $ARBOR_SOCKET is\n"
"     given), the\n"
"     connection fails, or no valid reply arrives in time: within 60 s,\n"
"     or for call as long as arbord may take to answer: its --timeout\n"
"     (else the config's worker.request_timeout_ms) plus the config's\n"
"     pool.checkout_timeout_ms plus 5 s, then as long as arbord answers\n"
"     a ping on the connection within 5 s, the wait starting over (a\n"
"     call can wait behind others). With -s or $ARBOR_SOCKET, call\n"
"     reads the config only when -c or $ARBOR_CONF names it; without it,\n"
"     call waits --timeout plus 60 s, or with no --timeout until arbord\n"
"     answers or closes the connection\n";

/* The command line, parsed. */
struct opts {
	const char	*socket;	/* -s */
	const char	*conf;		/* -c */
	bool		 json;
	const char	*session;	/* call --session */
	long		 timeout_ms;	/* call --timeout; -1 when not given */
	const char	*cmd;
	const char	*args[2];	/* the command's positional arguments */
	int		 nargs;
};

/* A subcommand: its op, its arity, how its request is built and how its
 * reply is shown. show() returns the exit status. show_raw(), where set,
 * shows a successful reply from its text, without parsing it into values:
 * with --json, or always when raw_view is set. A status of 1,024 workers
 * is a quarter of a megabyte; a call's result is shown as the worker
 * wrote it (jansson would write a real such as 0.1 anew as
 * 0.10000000000000001). show() takes the replies the scanner leaves to
 * jansson. For both, sock names the socket that gave the reply, for an
 * error message. */
struct command {
	const char	*name;
	const char	*op;
	int		 min_args, max_args;
	const char	*arg_key;	/* request key of args[0], or NULL */
	int		(*show)(const struct opts *, const json_t *reply,
			    const char *sock);
	int		(*show_raw)(const struct opts *,
			    const struct jraw_member *m, int k,
			    const char *sock);
	bool		 raw_view;	/* show_raw without --json too */
};

#define RAW_MEMBERS	8

/* Our reply: parsed (json), or, when raw text was asked for and the
 * scanner read it as our successful reply, its text (raw) and top-level
 * members (m[0..k), pointing into raw), with json NULL. */
struct reply {
	bool			 want_raw;
	json_t			*json;
	struct buf		 raw;
	struct jraw_member	 m[RAW_MEMBERS];
	int			 k;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static void __attribute__((format(printf, 1, 2)))
errmsg(const char *fmt, ...)
{
	va_list ap;
	fputs("arborctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Reports a usage error: the reason, then the usage text. */
static int __attribute__((format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("arborctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n\n", stderr);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

/* Prints j (borrowed) on stdout, indented, any JSON value. */
static void
print_json(const json_t *j)
{
	if (j == NULL) {
		puts("null");
		return;
	}
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	putchar('\n');
}

/* The reply without its envelope (id, ok): what --json shows for most
 * commands. New reference. */
static json_t *
reply_payload(const json_t *reply)
{
	json_t *p = json_copy((json_t *)reply);
	json_object_del(p, "id");
	json_object_del(p, "ok");
	return p;
}

static void
print_payload(const json_t *reply)
{
	json_t *p = reply_payload(reply);
	print_json(p);
	json_decref(p);
}

/* The string at key, or "-" when absent or not a string. Borrowed. */
static const char *
str_or_dash(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s != NULL && *s != '\0' ? s : "-";
}

/* Formats the number at key into out, or "-" when absent. */
static const char *
num_or_dash(const json_t *obj, const char *key, char *out, size_t n)
{
	const json_t *v = json_object_get(obj, key);
	if (json_is_integer(v))
		snprintf(out, n, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(out, n, "%.0f", json_real_value(v));
	else
		snprintf(out, n, "-");
	return out;
}

/* The integer at key, or def when absent or not an integer. */
static json_int_t
int_or(const json_t *obj, const char *key, json_int_t def)
{
	json_int_t v;
	return msg_int(obj, key, &v) ? v : def;
}

/* The last component of a tree name: "pool/worker.1" -> "worker.1". */
static const char *
basename_of(const char *name)
{
	const char *slash = strrchr(name, '/');
	return slash != NULL && slash[1] != '\0' ? slash + 1 : name;
}

/* ------------------------------------------------------------------ */
/* Durations and table cells                                           */

/* Formats a duration like "12s", "5m03s", "3h02m", "2d04h". */
static const char *
fmt_duration(json_int_t ms, char *out, size_t n)
{
	long long s = ms / 1000;
	if (ms < 0)
		snprintf(out, n, "-");
	else if (s < 60)
		snprintf(out, n, "%llds", s);
	else if (s < 3600)
		snprintf(out, n, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, n, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(out, n, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
	return out;
}

/* "up 3h02m" from the node's uptime_ms, "up -" when absent. New string. */
static char *
up_cell(const json_t *node)
{
	char d[32];
	return xasprintf("up %s", fmt_duration(int_or(node, "uptime_ms", -1),
	    d, sizeof d));
}

/* "pid 4242", or "pid -" when there is no live process. New string. */
static char *
pid_cell(const json_t *node)
{
	json_int_t pid = int_or(node, "pid", 0);
	return pid > 0 ? xasprintf("pid %lld", (long long)pid) :
	    xstrdup("pid -");
}

/* "<label> <number at key>". New string. */
static char *
num_cell(const char *label, const json_t *obj, const char *key)
{
	char n[32];
	return xasprintf("%s %s", label, num_or_dash(obj, key, n, sizeof n));
}

/* A row of cells; NULL cells are skipped. Cells are separated by two
 * spaces and padded to the column width when a later cell follows. */
#define ROW_CELLS	10
struct row {
	char	*cell[ROW_CELLS];
};

static void
row_free(struct row *r)
{
	for (int i = 0; i < ROW_CELLS; i++)
		free(r->cell[i]);
	memset(r, 0, sizeof *r);
}

static void
row_widths(const struct row *r, size_t *w)
{
	for (int i = 0; i < ROW_CELLS; i++)
		if (r->cell[i] != NULL && strlen(r->cell[i]) > w[i])
			w[i] = strlen(r->cell[i]);
}

/* Prints lead, then the row's cells aligned on w (NULL: no padding). */
static void
row_print(const char *lead, const struct row *r, const size_t *w)
{
	int last = -1;
	for (int i = 0; i < ROW_CELLS; i++)
		if (r->cell[i] != NULL)
			last = i;
	fputs(lead, stdout);
	for (int i = 0; i <= last; i++) {
		if (r->cell[i] == NULL)
			continue;
		int pad = w != NULL && i < last ? (int)w[i] : 0;
		printf("%-*s%s", pad, r->cell[i], i < last ? "  " : "\n");
	}
	if (last < 0)
		putchar('\n');
}

/* ------------------------------------------------------------------ */
/* The status view                                                      */

static bool
is_worker(const json_t *node)
{
	const char *kind = json_string_value(json_object_get(node, "kind"));
	return kind != NULL && strcmp(kind, "worker") == 0;
}

static bool
is_root(const json_t *node)
{
	const char *name = json_string_value(json_object_get(node, "name"));
	return json_object_get(node, "mode") != NULL ||
	    (name != NULL && strcmp(name, "root") == 0);
}

/* The name shown for a node: its full name at the top of the view, its
 * last component below. Borrowed. */
static const char *
shown_name(const json_t *node, bool top)
{
	const char *name = str_or_dash(node, "name");
	return top ? name : basename_of(name);
}

/* worker.1  ready  pid 4250  up 3h02m  healthy  sessions 2  req 1520  err 0
 * (then "restarts N" when N > 0). */
static void
worker_row(const json_t *w, bool top, struct row *r)
{
	const json_t *st = json_object_get(w, "stats");
	json_int_t restarts = int_or(w, "restarts", 0);

	memset(r, 0, sizeof *r);
	r->cell[0] = xstrdup(shown_name(w, top));
	r->cell[1] = xstrdup(str_or_dash(w, "state"));
	r->cell[2] = pid_cell(w);
	r->cell[3] = int_or(w, "pid", 0) > 0 ? up_cell(w) : xstrdup("up -");
	r->cell[4] = xstrdup(str_or_dash(w, "health"));
	r->cell[5] = num_cell("sessions", w, "session");
	r->cell[6] = num_cell("req", st, "requests_handled");
	r->cell[7] = num_cell("err", st, "errors");
	if (restarts > 0)
		r->cell[8] = xasprintf("restarts %lld", (long long)restarts);
}

/* Counts a supervisor's worker children as `health` does: live are the
 * workers of the configured size (pool: worker.1 .. worker.<size>, neither
 * overflow nor retiring after a shrink) that are ready or busy, expected
 * is that size (or, from an arbord that does not say it, every worker
 * but the overflow ones); busy and overflow count every worker, as
 * `stats` does. The pool's NODE carries live as `ready`: a worker still
 * retiring after a shrink, whose name a pool grown back covers again,
 * is known only there. */
struct census {
	int	live, busy, overflow, expected;
};

/* Whether k is one of the configured workers of sup: any worker of a
 * supervisor without a size (the bridge), else worker.<i> with i <= size. */
static bool
is_configured(const json_t *k, json_int_t size)
{
	const char *leaf = basename_of(str_or_dash(k, "name"));
	int i, end = 0;

	if (size < 0)
		return strncmp(leaf, "overflow.", 9) != 0;
	return sscanf(leaf, "worker.%d%n", &i, &end) == 1 &&
	    leaf[end] == '\0' && i >= 1 && i <= size;
}

static void
count_workers(const json_t *sup, struct census *c)
{
	const json_t *kids = json_object_get(sup, "children");
	json_int_t size = int_or(sup, "size", -1);
	size_t i;
	const json_t *k;

	memset(c, 0, sizeof *c);
	json_array_foreach(kids, i, k) {
		if (!is_worker(k))
			continue;
		const char *state = str_or_dash(k, "state");
		bool up = strcmp(state, "busy") == 0 ||
		    strcmp(state, "ready") == 0;
		c->busy += strcmp(state, "busy") == 0;
		c->overflow += strncmp(basename_of(str_or_dash(k, "name")),
		    "overflow.", 9) == 0;
		if (is_configured(k, size)) {
			c->live += up;
			c->expected += size < 0;
		}
	}
	if (size >= 0)
		c->expected = (int)size;
	c->live = (int)int_or(sup, "ready", c->live);
}

/* "overflow K/M", "overflow K" when M is unknown, or NULL when the node
 * is not a pool. New string. */
static char *
overflow_cell(const json_t *sup, const struct census *c)
{
	const char *name = str_or_dash(sup, "name");
	json_int_t max = int_or(sup, "max_overflow", -1);

	if (max >= 0)
		return xasprintf("overflow %d/%lld", c->overflow,
		    (long long)max);
	if (strcmp(basename_of(name), "pool") == 0 || c->overflow > 0)
		return xasprintf("overflow %d", c->overflow);
	return NULL;
}

/* pool  running  one_for_one  4/4 ready  busy 1  overflow 0/2  restarts 1 */
static void
supervisor_row(const json_t *s, bool top, struct row *r)
{
	struct census c;

	count_workers(s, &c);
	memset(r, 0, sizeof *r);
	r->cell[0] = xstrdup(shown_name(s, top));
	r->cell[1] = xstrdup(str_or_dash(s, "state"));
	r->cell[2] = xstrdup(str_or_dash(s, "strategy"));
	r->cell[3] = xasprintf("%d/%d ready", c.live, c.expected);
	r->cell[4] = xasprintf("busy %d", c.busy);
	r->cell[5] = overflow_cell(s, &c);
	r->cell[6] = num_cell("restarts", s, "restarts");
}

/* root  running  env=prod mode=pool adapter=python_pool  pid 4242  up 3h02m */
static void
root_row(const json_t *root, bool top, struct row *r)
{
	memset(r, 0, sizeof *r);
	r->cell[0] = xstrdup(shown_name(root, top));
	r->cell[1] = xstrdup(str_or_dash(root, "state"));
	r->cell[2] = xasprintf("env=%s mode=%s adapter=%s",
	    str_or_dash(root, "env"), str_or_dash(root, "mode"),
	    str_or_dash(root, "adapter"));
	r->cell[3] = pid_cell(root);
	r->cell[4] = up_cell(root);
}

/* The row of any node, by kind. */
static void
node_row(const json_t *node, bool top, struct row *r)
{
	if (is_worker(node))
		worker_row(node, top, r);
	else if (is_root(node))
		root_row(node, top, r);
	else
		supervisor_row(node, top, r);
}

/* Prints the children of node, one line each, their subtrees below them.
 * Sibling workers share column widths. indent is the prefix of the
 * children's lines (the box characters of the levels above). */
static void
view_children(const json_t *node, const char *indent)
{
	const json_t *kids = json_object_get(node, "children");
	size_t n = json_array_size(kids), i;
	size_t w[ROW_CELLS] = { 0 };
	struct row *rows = xcalloc(n, sizeof *rows);
	const json_t *k;

	json_array_foreach(kids, i, k) {
		node_row(k, false, &rows[i]);
		if (is_worker(k))
			row_widths(&rows[i], w);
	}
	json_array_foreach(kids, i, k) {
		bool last = i + 1 == n;
		char *lead = xasprintf("%s%s", indent, last ? "└─ " : "├─ ");
		char *sub = xasprintf("%s%s", indent, last ? "   " : "│  ");
		row_print(lead, &rows[i], is_worker(k) ? w : NULL);
		view_children(k, sub);
		free(lead);
		free(sub);
		row_free(&rows[i]);
	}
	free(rows);
}

/* Prints the tree rooted at node: its own line, then its descendants. */
static void
view_tree(const json_t *node)
{
	struct row r;

	node_row(node, true, &r);
	row_print("", &r, NULL);
	row_free(&r);
	view_children(node, "");
}

/* ------------------------------------------------------------------ */
/* Showing replies                                                      */

static int
show_status(const struct opts *o, const json_t *reply, const char *sock)
{
	const json_t *tree = json_object_get(reply, "tree");
	if (!json_is_object(tree)) {
		errmsg("malformed status reply from arbord on %s", sock);
		return EXIT_UNREACHABLE;
	}
	if (o->json)
		print_json(tree);
	else
		view_tree(tree);
	return EXIT_OK;
}

/* "healthy 4/4"; exit 0 only when healthy. */
static int
show_health(const struct opts *o, const json_t *reply, const char *sock)
{
	const char *health = str_or_dash(reply, "health");
	char ready[32], expected[32];

	if (o->json)
		print_payload(reply);
	else
		printf("%s %s/%s\n", health,
		    num_or_dash(reply, "ready", ready, sizeof ready),
		    num_or_dash(reply, "expected", expected, sizeof expected));
	return strcmp(health, "healthy") == 0 ? EXIT_OK : EXIT_REPLY_ERROR;
}

/* One "key  value" line per counter, keys aligned. */
static int
show_stats(const struct opts *o, const json_t *reply, const char *sock)
{
	const json_t *stats = json_object_get(reply, "stats");
	const char *key;
	const json_t *v;
	int width = 0;

	if (o->json || !json_is_object(stats)) {
		print_json(stats);
		return EXIT_OK;
	}
	json_object_foreach((json_t *)stats, key, v)
		if ((int)strlen(key) > width)
			width = (int)strlen(key);
	json_object_foreach((json_t *)stats, key, v) {
		char *s = json_is_string(v) ? xstrdup(json_string_value(v)) :
		    json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		printf("%-*s  %s\n", width, key, s != NULL ? s : "-");
		free(s);
	}
	return EXIT_OK;
}

static int
show_metrics(const struct opts *o, const json_t *reply, const char *sock)
{
	const char *text = json_string_value(json_object_get(reply, "text"));

	if (o->json)
		print_payload(reply);
	else if (text == NULL)
		puts("-");
	else
		fputs(text, stdout);
	return EXIT_OK;
}

/* The result JSON, a lost session noted on stderr; with --json the whole
 * reply (result, worker, session_reset when set) as other commands do. */
static int
show_call(const struct opts *o, const json_t *reply, const char *sock)
{
	if (o->json) {
		print_payload(reply);
		return EXIT_OK;
	}
	if (json_is_true(json_object_get(reply, "session_reset")))
		errmsg("note: session %s was reset (its worker was lost)",
		    o->session != NULL ? o->session : "-");
	print_json(json_object_get(reply, "result"));
	return EXIT_OK;
}

static int
show_ended(const struct opts *o, const json_t *reply, const char *sock)
{
	if (o->json)
		print_payload(reply);
	else if (json_is_true(json_object_get(reply, "ended")))
		printf("session %s ended\n", o->args[0]);
	else
		printf("session %s: no such session\n", o->args[0]);
	return EXIT_OK;
}

static int
show_restarted(const struct opts *o, const json_t *reply, const char *sock)
{
	if (o->json)
		print_payload(reply);
	else
		printf("restarted %s\n", str_or_dash(reply, "restarted"));
	return EXIT_OK;
}

static int
show_state(const struct opts *o, const json_t *reply, const char *sock)
{
	if (o->json)
		print_payload(reply);
	else
		printf("%s: %s\n", o->args[0], str_or_dash(reply, "state"));
	return EXIT_OK;
}

/* "reloaded: no change" or "reloaded: changed pool.size, log.level". */
static int
show_reload(const struct opts *o, const json_t *reply, const char *sock)
{
	const json_t *changed = json_object_get(reply, "changed");
	size_t i;
	const json_t *k;

	if (o->json) {
		print_payload(reply);
		return EXIT_OK;
	}
	if (json_array_size(changed) == 0) {
		puts("reloaded: no change");
		return EXIT_OK;
	}
	fputs("reloaded: changed", stdout);
	json_array_foreach(changed, i, k)
		printf("%s %s", i > 0 ? "," : "",
		    json_is_string(k) ? json_string_value(k) : "-");
	putchar('\n');
	return EXIT_OK;
}

static int
show_shutdown(const struct opts *o, const json_t *reply, const char *sock)
{
	if (o->json)
		print_payload(reply);
	else
		puts(json_is_true(json_object_get(reply, "stopping")) ?
		    "arbord is stopping" : "arbord: shutdown requested");
	return EXIT_OK;
}

static int
show_ping(const struct opts *o, const json_t *reply, const char *sock)
{
	if (o->json)
		print_payload(reply);
	else
		puts("pong");
	return EXIT_OK;
}

/* An error reply: "arborctl: <code>: <message>" on stderr, exit 1. */
static int
show_error(const json_t *reply)
{
	const json_t *err = json_object_get(reply, "error");

	if (json_is_string(err))	/* lenient: a bare message */
		errmsg("error: %s", json_string_value(err));
	else
		errmsg("%s: %s", str_or_dash(err, "code"),
		    str_or_dash(err, "message"));
	return EXIT_REPLY_ERROR;
}

/* Prints the JSON text p[0..n) on stdout, laid out as print_json() would. */
static void
print_raw(const char *p, size_t n)
{
	struct buf out;
	buf_init(&out);
	jraw_put_indented(&out, p, n, 2);
	jraw_put(&out, "\n");
	fwrite(buf_head(&out), 1, buf_used(&out), stdout);
	buf_release(&out);
}

/* status --json: the tree member, laid out as print_json() would. */
static int
show_status_raw(const struct opts *o, const struct jraw_member *m, int k,
    const char *sock)
{
	const struct jraw_member *tree = jraw_get(m, k, "tree");
	if (tree == NULL) {
		errmsg("malformed status reply from arbord on %s", sock);
		return EXIT_UNREACHABLE;
	}
	print_raw(tree->val, tree->val_len);
	return EXIT_OK;
}

/* call from the reply's text, as show_call() shows it: the result as the
 * worker wrote it, or with --json the reply without id and ok. */
static int
show_call_raw(const struct opts *o, const struct jraw_member *m, int k,
    const char *sock)
{
	const struct jraw_member *res = jraw_get(m, k, "result");
	const struct jraw_member *reset = jraw_get(m, k, "session_reset");
	struct buf in;

	if (!o->json) {
		if (reset != NULL && reset->type == JRAW_TRUE)
			errmsg("note: session %s was reset (its worker was "
			    "lost)", o->session != NULL ? o->session : "-");
		if (res == NULL)
			puts("null");
		else
			print_raw(res->val, res->val_len);
		return EXIT_OK;
	}
	buf_init(&in);
	jraw_put(&in, "{");
	for (int i = 0, n = 0; i < k; i++) {
		if (m[i].key_len == 2 && (memcmp(m[i].key, "id", 2) == 0 ||
		    memcmp(m[i].key, "ok", 2) == 0))
			continue;
		jraw_put(&in, n++ > 0 ? ",\"" : "\"");
		buf_append(&in, m[i].key, m[i].key_len);	/* no escapes */
		jraw_put(&in, "\":");
		buf_append(&in, m[i].val, m[i].val_len);
	}
	jraw_put(&in, "}");
	print_raw(buf_head(&in), buf_used(&in));
	buf_release(&in);
	return EXIT_OK;
}

static const struct command commands[] = {
	{ "status",	 "status",	0, 1, "name",	    show_status,
	  show_status_raw, false },
	{ "health",	 "health",	0, 0, NULL,	    show_health,
	  NULL, false },
	{ "stats",	 "stats",	0, 0, NULL,	    show_stats,
	  NULL, false },
	{ "metrics",	 "metrics",	0, 0, NULL,	    show_metrics,
	  NULL, false },
	{ "call",	 "execute",	1, 2, "command",    show_call,
	  show_call_raw, true },
	{ "end-session", "end_session",	1, 1, "session_id", show_ended,
	  NULL, false },
	{ "restart",	 "restart",	1, 1, "name",	    show_restarted,
	  NULL, false },
	{ "stop",	 "stop",	1, 1, "name",	    show_state,
	  NULL, false },
	{ "start",	 "start",	1, 1, "name",	    show_state,
	  NULL, false },
	{ "reload",	 "reload",	0, 0, NULL,	    show_reload,
	  NULL, false },
	{ "shutdown",	 "shutdown",	0, 0, NULL,	    show_shutdown,
	  NULL, false },
	{ "ping",	 "ping",	0, 0, NULL,	    show_ping,
	  NULL, false },
};

static const struct command *
find_command(const char *name)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The command line                                                     */

/* Matches argv[*i] against an option taking a value, as "-s VALUE",
 * "-sVALUE", "--socket VALUE" or "--socket=VALUE". Returns 1 and sets *val
 * on a match, 0 when argv[*i] is another option, -1 when the value is
 * missing or empty (no option of ours takes an empty one: `-s ''` would
 * name no socket, `-c ''` no file, `--session ''` no session). */
static int
opt_value(int argc, char **argv, int *i, const char *shrt, const char *lng,
    const char **val)
{
	const char *a = argv[*i];
	size_t ln = strlen(lng);
	const char *inline_val = NULL;

	if (shrt != NULL && strncmp(a, shrt, 2) == 0 && a[2] != '\0')
		inline_val = a + 2;
	else if (strncmp(a, lng, ln) == 0 && a[ln] == '=')
		inline_val = a + ln + 1;
	else if ((shrt == NULL || strcmp(a, shrt) != 0) && strcmp(a, lng) != 0)
		return 0;
	if (inline_val == NULL && *i + 1 < argc)
		inline_val = argv[++*i];
	if (inline_val == NULL || *inline_val == '\0')
		return -1;
	*val = inline_val;
	return 1;
}

/* A timeout in milliseconds: a positive decimal integer. */
static int
parse_timeout(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0 ||
	    v > MAX_TIMEOUT_MS)
		return -1;
	*out = v;
	return 0;
}


/* Takes the option at argv[*i] (and its value). Returns 1 when taken, 0
 * when it is no option of ours, -1 after reporting a usage error. */
static int
take_option(int argc, char **argv, int *i, struct opts *o)
{
	const char *a = argv[*i], *timeout = NULL;
	int r;

	if (strcmp(a, "--json") == 0) {
		o->json = true;
		return 1;
	}
	if ((r = opt_value(argc, argv, i, "-s", "--socket", &o->socket)) == 0 &&
	    (r = opt_value(argc, argv, i, "-c", "--config", &o->conf)) == 0 &&
	    (r = opt_value(argc, argv, i, NULL, "--session", &o->session)) == 0)
		r = opt_value(argc, argv, i, NULL, "--timeout", &timeout);
	if (r < 0) {
		usage_error("%s needs a non-empty value", a);
		return -1;
	}
	if (timeout != NULL && parse_timeout(timeout, &o->timeout_ms) < 0) {
		usage_error("--timeout needs a whole number of milliseconds in "
		    "1..%ld", MAX_TIMEOUT_MS);
		return -1;
	}
	return r;
}

/* Takes a positional argument: the command, then its arguments. */
static int
take_arg(struct opts *o, const char *a)
{
	if (o->cmd == NULL)
		o->cmd = a;
	else if (o->nargs < 2)
		o->args[o->nargs++] = a;
	else
		return -1;
	return 0;
}

/* Fills o from the command line. Returns 0 to go on, or -1 with the exit
 * status in *status (a usage error, or 0 after --help). */
static int
parse_args(int argc, char **argv, struct opts *o, int *status)
{
	bool opts_done = false;

	memset(o, 0, sizeof *o);
	o->timeout_ms = -1;
	*status = EXIT_USAGE;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool is_opt = !opts_done && a[0] == '-' && a[1] != '\0';
		int r;

		if (is_opt && strcmp(a, "--") == 0) {
			opts_done = true;
		} else if (is_opt && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
			fputs(usage_text, stdout);
			*status = EXIT_OK;
			return -1;
		} else if (is_opt) {
			if ((r = take_option(argc, argv, &i, o)) <= 0) {
				if (r == 0)
					usage_error("unknown option %s", a);
				return -1;
			}
		} else if (take_arg(o, a) < 0) {
			usage_error("unexpected argument %s", a);
			return -1;
		}
	}
	return 0;
}

/* Checks the command and its arity; *cmd is the command. Returns 0 or a
 * usage error's exit status. */
static int
check_args(const struct opts *o, const struct command **cmd)
{
	const struct command *c;

	if (o->cmd == NULL)
		return usage_error("no command given");
	if ((c = find_command(o->cmd)) == NULL)
		return usage_error("unknown command %s", o->cmd);
	if (o->nargs < c->min_args || o->nargs > c->max_args)
		return usage_error("%s: wrong number of arguments", c->name);
	if (strcmp(c->name, "call") != 0 &&
	    (o->session != NULL || o->timeout_ms >= 0))
		return usage_error("--session and --timeout apply to call only");
	*cmd = c;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The request                                                          */

/* Sets req's member key to the argument s, a string only when it is
 * UTF-8: jansson refuses anything else, and the member would be left out
 * of the request without a word. An empty one names nothing (no node,
 * session or command), as an empty option value does not. Returns -1
 * after a usage error. */
static int
set_arg(json_t *req, const char *key, const char *s, const char *what)
{
	json_t *j;

	if (*s == '\0') {
		usage_error("%s must not be empty", what);
		return -1;
	}
	if ((j = json_string(s)) == NULL) {
		usage_error("%s is not valid UTF-8", what);
		return -1;
	}
	json_object_set_new(req, key, j);
	return 0;
}

/* Adds call's parameters session_id and timeout_ms, after checking
 * ARGS_JSON, which request_text() adds as written. Returns -1 after
 * reporting a usage error. */
static int
add_call_params(json_t *req, const struct opts *o)
{
	json_error_t err;

	if (o->nargs > 1) {
		/* a repeated key, which arbord refuses, is not dropped */
		json_t *args = json_loads(o->args[1], JSON_DECODE_ANY |
		    JSON_REJECT_DUPLICATES, &err);
		if (args == NULL) {
			usage_error("ARGS_JSON is not valid JSON: %s", err.text);
			return -1;
		}
		bool object = json_is_object(args);	/* SPEC 5 */
		json_decref(args);
		if (!object) {
			usage_error("ARGS_JSON must be a JSON object");
			return -1;
		}
	}
	if (o->session != NULL &&
	    set_arg(req, "session_id", o->session, "--session") < 0)
		return -1;
	if (o->timeout_ms > 0)
		json_object_set_new(req, "timeout_ms",
		    json_integer(o->timeout_ms));
	return 0;
}

/* The text of req (borrowed, not empty), with args, when not NULL, added
 * as the member "args" as it is written: parsed and written anew by
 * jansson, a real such as 0.1 would reach the worker as
 * 0.10000000000000001. New string. */
static char *
request_text(const json_t *req, const char *args)
{
	char *s = json_dumps(req, JSON_COMPACT), *t;

	if (args == NULL)
		return s;
	s[strlen(s) - 1] = '\0';	/* its closing brace */
	t = xasprintf("%s,\"args\":%s}", s, args);
	free(s);
	return t;
}

/* {"id": 1, "op": ..., params} as text. New string, or NULL after a
 * usage error. */
static char *
build_request(const struct command *c, const struct opts *o)
{
	json_t *req = json_object();
	bool call = strcmp(c->name, "call") == 0;
	char *text = NULL;

	json_object_set_new(req, "id", json_integer(REQUEST_ID));
	json_object_set_new(req, "op", json_string(c->op));
	if ((c->arg_key == NULL || o->nargs == 0 ||
	    set_arg(req, c->arg_key, o->args[0], c->arg_key) == 0) &&
	    (!call || add_call_params(req, o) == 0))
		text = request_text(req, call && o->nargs > 1 ?
		    o->args[1] : NULL);
	json_decref(req);
	return text;
}

/* ------------------------------------------------------------------ */
/* The socket                                                           */

/* opt when given, else the environment variable var when not empty. */
static const char *
opt_or_env(const char *opt, const char *var)
{
	const char *env = getenv(var);

	if (opt != NULL)
		return opt;
	return env != NULL && *env != '\0' ? env : NULL;
}

/* The config file: read when -c names it (whatever the command and the
 * socket's source: a file given on the command line is never ignored),
 * when the socket comes from it (neither -s nor $ARBOR_SOCKET), and for a
 * call when $ARBOR_CONF names it, as its timeouts bound the wait for the
 * reply. Sets *cfg (config_free; NULL when not read) and returns 0, or
 * reports why it cannot be loaded and returns the exit status: a file
 * named by -c or $ARBOR_CONF is a usage error, as arbord refuses one; the
 * default file, read only to find the socket, leaves it unknown. */
static int
load_config(const struct command *c, const struct opts *o,
    struct config **cfg)
{
	const char *path = opt_or_env(o->conf, "ARBOR_CONF");
	char err[1024];

	*cfg = NULL;
	if (o->conf == NULL && opt_or_env(o->socket, "ARBOR_SOCKET") != NULL &&
	    (strcmp(c->name, "call") != 0 || path == NULL))
		return 0;
	*cfg = config_load(path != NULL ? path : DEFAULT_CONF, NULL, err,
	    sizeof err);
	if (*cfg != NULL)
		return 0;
	if (path == NULL) {
		errmsg("cannot find the socket: %s", err);
		return EXIT_UNREACHABLE;
	}
	errmsg("cannot load the config file: %s", err);
	return EXIT_USAGE;
}

/* The socket path: -s, else $ARBOR_SOCKET, else control.socket of cfg,
 * which load_config() has then loaded. Borrowed. */
static const char *
find_socket(const struct opts *o, const struct config *cfg)
{
	const char *sock = opt_or_env(o->socket, "ARBOR_SOCKET");

	return sock != NULL ? sock : cfg->control.socket;
}

/* How long to wait for the reply before calling arbord unreachable (exit
 * 3): -1 for no bound. A call waits as long as arbord may take to answer
 * it: the request's timeout (--timeout, else worker.request_timeout_ms)
 * starts once a worker takes it, after up to pool.checkout_timeout_ms of
 * waiting for one (in either mode), plus a margin. Without the config,
 * --timeout plus the fixed bound; with no --timeout either, no bound: a
 * call is always answered (SPEC 7) and a dead arbord hangs up. */
static long long
reply_wait_ms(const struct command *c, const struct opts *o,
    const struct config *cfg)
{
	long long t = o->timeout_ms;

	if (strcmp(c->name, "call") != 0)
		return REPLY_WAIT_MS;
	if (cfg == NULL)
		return t > 0 ? t + REPLY_WAIT_MS : -1;
	if (t <= 0)
		t = cfg->worker.request_timeout_ms;
	return t + cfg->pool.checkout_timeout_ms + REPLY_MARGIN_MS;
}

/* Connects to the socket at path: the fd, or -1 (errno). */
static int
ctl_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, e;

	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static long long
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is readable: 1, or 0 when the deadline passed, -1 on
 * error (errno). */
static int
wait_readable(int fd, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r;

		if (left <= 0)
			return 0;
		r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* How reading a reply ended (RX_ALIVE: the probe's ping was answered). */
enum rx { RX_REPLY, RX_TIMEOUT, RX_EOF, RX_ERROR, RX_BAD, RX_ALIVE };

/* The top-level members of p[0..len) into m: the scanner's, or, for the
 * text it leaves to jansson (a result of more than 32 keys, an integer of
 * 19 digits ...), jansson's check and then a split without the scanner's
 * limits. -1 when it is not an object (or has more than RAW_MEMBERS). */
static int
split_reply(const char *p, size_t len, struct jraw_member *m)
{
	int k = jraw_object(p, len, m, RAW_MEMBERS);
	json_t *j;

	if (k >= 0 || (j = frame_parse(p, len, NULL)) == NULL)
		return k;
	json_decref(j);
	return jraw_split(p, len, m, RAW_MEMBERS);
}

/* Keeps p[0..len) in r as text if it is our reply with "ok": true;
 * false (r unchanged) otherwise. */
static bool
take_raw(struct reply *r, const char *p, size_t len)
{
	buf_append(&r->raw, p, len);
	int k = split_reply(buf_head(&r->raw), len, r->m);
	int64_t id;
	const struct jraw_member *ok = k < 0 ? NULL : jraw_get(r->m, k, "ok");
	if (ok != NULL && ok->type == JRAW_TRUE &&
	    jraw_int(jraw_get(r->m, k, "id"), &id) && id == REQUEST_ID) {
		r->k = k;
		return true;
	}
	r->raw.len = r->raw.off;	/* not ours, or not for the scanner */
	return false;
}

/* Reads the next frame into r: as text when r wants it and it is our
 * successful reply, else as a JSON object (r->json, new reference). */
static enum rx
next_frame(int fd, struct buf *in, long long deadline, struct reply *r)
{
	const char *p = NULL;
	size_t len = 0;
	int w;

	for (;;) {
		switch (frame_peek(in, MAX_REPLY_BYTES, &p, &len)) {
		case FRAME_OK:
			if (r->want_raw && take_raw(r, p, len)) {
				frame_done(in, len);
				return RX_REPLY;
			}
			r->json = frame_parse(p, len, NULL);
			frame_done(in, len);
			return r->json != NULL ? RX_REPLY : RX_BAD;
		case FRAME_TOO_LARGE:
			return RX_BAD;
		case FRAME_MORE:
			break;
		}
		if ((w = wait_readable(fd, deadline)) <= 0)
			return w == 0 ? RX_TIMEOUT : RX_ERROR;
		ssize_t n = buf_read_fd(in, fd);
		if (n == 0)
			return RX_EOF;
		if (n < 0 && errno != EAGAIN)
			return RX_ERROR;
	}
}

/* Whether a reply answers our request: its id, or no id on an error (the
 * frame arbord sends when it refuses a connection). */
static bool
is_our_reply(const json_t *reply)
{
	const json_t *id = json_object_get(reply, "id");

	if (json_is_integer(id))
		return json_integer_value(id) == REQUEST_ID;
	return (id == NULL || json_is_null(id)) &&
	    !json_is_true(json_object_get(reply, "ok"));
}

/* Reads frames from in until our reply (into r), or the probe's; others
 * are skipped. */
static enum rx
read_reply(int fd, struct buf *in, long long deadline, struct reply *r)
{
	enum rx rx;

	while ((rx = next_frame(fd, in, deadline, r)) == RX_REPLY &&
	    r->json != NULL && !is_our_reply(r->json)) {
		const json_t *id = json_object_get(r->json, "id");
		bool probe = json_is_integer(id) &&
		    json_integer_value(id) == PROBE_ID;
		json_decref(r->json);
		r->json = NULL;
		if (probe)
			return RX_ALIVE;
	}
	return rx;
}

/* Sends the request text req as one frame: 0, or the errno of the
 * failure. */
static int
send_request(int fd, const char *req)
{
	return frame_write_blocking(fd, req, strlen(req)) < 0 ? errno : 0;
}

/* Says why no reply came (probed: nor to the ping sent after wait_ms);
 * returns EXIT_UNREACHABLE. */
static int
report_no_reply(enum rx rx, int e, const char *sock, long long wait_ms,
    int send_errno, bool probed)
{
	if (send_errno != 0 && rx != RX_BAD)
		errmsg("cannot send to %s: %s", sock, strerror(send_errno));
	else if (rx == RX_TIMEOUT)
		errmsg("no reply from arbord on %s within %lld ms%s", sock,
		    wait_ms, probed ? ", nor to a ping then" : "");
	else if (rx == RX_EOF)
		errmsg("arbord closed the connection on %s without a reply",
		    sock);
	else if (rx == RX_ERROR)
		errmsg("cannot read from %s: %s", sock, strerror(e));
	else
		errmsg("malformed reply from arbord on %s", sock);
	return EXIT_UNREACHABLE;
}

/* Sends req to arbord at sock and waits for the reply (into r) up to
 * wait_ms (-1: no bound). With probe, a reply late past wait_ms is not yet
 * given up: a ping on the same connection asks whether arbord still runs
 * (it answers in any order), and while it answers within PROBE_WAIT_MS
 * the wait starts over; a request may wait longer than its own bounds
 * behind others (single mode's pipeline). Returns 0, or EXIT_UNREACHABLE
 * after reporting why. */
static int
transact(const char *sock, const char *req, long long wait_ms, bool probe,
    struct reply *r)
{
	int fd = ctl_connect(sock), send_errno, e;
	long long deadline;
	bool probing = false;
	struct buf in;
	enum rx rx;

	if (fd < 0) {	/* no socket, or no one listening: not running */
		e = errno;
		errmsg("%scannot connect to %s: %s%s", e == ENOENT ||
		    e == ECONNREFUSED ? "arbord is not running (" : "", sock,
		    strerror(e), e == ENOENT || e == ECONNREFUSED ? ")" : "");
		return EXIT_UNREACHABLE;
	}
	/* A refused connection still carries arbord's error frame: read it
	 * even when the send failed, but do not wait long for it. */
	send_errno = send_request(fd, req);
	deadline = wait_ms < 0 ? LLONG_MAX : now_ms() + wait_ms;
	if (send_errno != 0)
		deadline = now_ms() + 1000;
	buf_init(&in);
	for (;;) {
		rx = read_reply(fd, &in, deadline, r);
		if (rx == RX_ALIVE) {
			probing = false;
			deadline = now_ms() + wait_ms;
		} else if (rx == RX_TIMEOUT && probe && send_errno == 0 &&
		    !probing) {
			send_errno = send_request(fd, PROBE_PING);
			probing = true;
			deadline = now_ms() + PROBE_WAIT_MS;
		} else {
			break;
		}
	}
	e = errno;
	buf_release(&in);
	close(fd);
	return rx == RX_REPLY ? 0 :
	    report_no_reply(rx, e, sock, wait_ms, send_errno, probing);
}

/* ------------------------------------------------------------------ */

/* Talks to arbord and shows the reply. Returns the exit status. */
static int
run(const struct command *c, const struct opts *o, const char *req)
{
	struct config *cfg;
	struct reply r = { .want_raw = c->show_raw != NULL &&
	    (o->json || c->raw_view) };
	int status;

	if ((status = load_config(c, o, &cfg)) != EXIT_OK)
		return status;
	const char *sock = find_socket(o, cfg);
	buf_init(&r.raw);
	status = transact(sock, req, reply_wait_ms(c, o, cfg),
	    strcmp(c->name, "call") == 0, &r);
	if (status == EXIT_OK && r.json == NULL)
		status = c->show_raw(o, r.m, r.k, sock);
	else if (status == EXIT_OK)
		status = json_is_true(json_object_get(r.json, "ok")) ?
		    c->show(o, r.json, sock) : show_error(r.json);
	json_decref(r.json);
	buf_release(&r.raw);
	config_free(cfg);
	return status;
}

/* status, or 1 if what was printed did not all reach stdout (a full disk,
 * a closed pipe): output lost must not pass for success. A reader that
 * went away (EPIPE) needs no message. */
static int
output_written(int status)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return status;
	if (errno != EPIPE)
		errmsg("cannot write the output: %s", strerror(errno));
	return status == EXIT_OK ? EXIT_REPLY_ERROR : status;
}

int
main(int argc, char **argv)
{
	const struct command *c = NULL;
	struct opts o;
	char *req;
	int status;

	if (parse_args(argc, argv, &o, &status) < 0)
		return output_written(status);	/* --help's text too */
	if ((status = check_args(&o, &c)) != 0)
		return status;
	if ((req = build_request(c, &o)) == NULL)
		return EXIT_USAGE;
	signal(SIGPIPE, SIG_IGN);
	status = run(c, &o, req);
	free(req);
	return output_written(status);
}
