/* mock_worker: a worker in C with no Python, for tests and for the
 * bridge_mock adapter (SPEC 3, SPEC 5). It handles one request at a time.
 *
 * Usage: mock_worker [--crash-at-start CODE] [--no-init] [--ignore-term]
 *                    [--stderr-at-start TEXT]
 *
 * Knobs, as environment variables or the flags above (a flag wins):
 *   MOCK_WORKER_STDERR_AT_START=TEXT  write TEXT and a newline to stderr
 *                                     first thing
 *   MOCK_WORKER_IGNORE_TERM=1         ignore SIGTERM (only SIGKILL stops it)
 *   MOCK_WORKER_CRASH_AT_START=CODE   exit with CODE before reading anything
 *   MOCK_WORKER_NO_INIT=1             read and discard stdin, never answer
 *                                     anything (not even the init ping);
 *                                     exit 0 at EOF
 *   MOCK_WORKER_SICK=1                sick from the start: as after
 *                                     `sicken` (the init ping still succeeds)
 * They apply in that order. A boolean knob is on unless empty or "0".
 * ARBOR_MAX_FRAME_BYTES bounds request frames (see libworker).
 *
 * Test commands:
 *   ping                      {"pong": true, "worker_id": <init ping's>,
 *                              "pid": <pid>}
 *   echo ARGS                 ARGS
 *   sleep {"ms", "until_usr1"?}  sleeps, then {"slept": ms}; with
 *                             until_usr1 true, ends early too when the
 *                             worker gets SIGUSR1, then {"slept": ms
 *                             waited, "woken": whether SIGUSR1 ended it}.
 *                             SIGUSR1 is caught (SigCgt in /proc/<pid>/
 *                             status) only during such a sleep, so one
 *                             sent then is never lost nor fatal; at any
 *                             other time it keeps its default action
 *                             (the worker dies)
 *   crash {"code"?, "signal"?, "line"?}  exits at once with code (default
 *                             1), or dies of the signal number when given;
 *                             writes line + "\n" to stderr just before;
 *                             no reply
 *   hang                      never answers (a default SIGTERM still kills)
 *   deafen                    {"deaf": true}, then never answers again
 *                             (health pings time out)
 *   sicken                    {"sick": true}; from then on every ping but
 *                             an init ping gets the error reply "sick"
 *                             (health pings fail); other commands work
 *   garbage                   a whole frame whose payload is not JSON
 *   big {"bytes"}             a reply whose JSON payload is exactly that
 *                             many bytes (when bytes exceeds the ~50 bytes
 *                             of the reply's own shape): {"data": "xx..."};
 *                             sent even beyond the maximum frame size, to
 *                             test the reader's limit
 *   stderr {"line"}           writes line + "\n" to stderr, {"written": true}
 *   shutdown                  {"shutting_down": true}, then exit 0
 *
 * Hostile commands, for the daemon's defences (SPEC 5, SPEC 7):
 *   flood_stderr {"bytes"}    writes exactly that many bytes to stderr as
 *                             fast as it can: first lines of 100 bytes
 *                             ("flood_stderr line <n> xxx...\n", n from 1),
 *                             about half of them, then one long line of
 *                             'y' with no newline; then {"written": bytes,
 *                             "lines": n}
 *   partial                   writes the first half of a valid reply frame,
 *                             then stalls forever without replying
 *   stray {"ms", "later_ms"?} sleeps ms, then writes its reply {"stray":
 *                             true} followed by the first half of a second
 *                             such frame: in the same write, or later_ms
 *                             after the reply when given; then serves on
 *   close_stdout              closes every descriptor of its protocol
 *                             output and sleeps forever; no reply
 *   close_stdin               closes every descriptor of its protocol
 *                             input, then {"closed": true}, and sleeps
 *                             forever (its stdout stays open)
 *   fork {"n", "setsid"?}     forks n children (at most 64) that sleep
 *                             forever in its process group, holding its
 *                             descriptors; {"forked": [pids]}; with setsid
 *                             true each leaves the group (setsid) and
 *                             ends itself after ESCAPE_MAX_S at the latest
 *   ignore_term               ignores SIGTERM from now on (as
 *                             MOCK_WORKER_IGNORE_TERM); {"ignoring_term": true}
 *
 * Bridge commands (SPEC 5 table), the same as the Python bridge worker's:
 *   create_program {"program_id"?, "signature"?}  {"program_id"}
 *   execute_program {"program_id", "inputs"}      {"program_id", "outputs"}
 *   list_programs                                 {"programs": [ids]}
 *   delete_program {"program_id"}                 {"deleted": true}
 *   get_program_info {"program_id"}   {"program_id", "signature",
 *                                      "executions", "inputs", "outputs"}
 *   get_stats        {"programs_count", "command_count", "error_count",
 *                     "uptime_ms", "sessions_count"}
 *   cleanup_session {"session_id"}    {"cleaned": n} (default: the
 *                                      request's own session_id)
 *   reset_state      {"reset": true}: drops every program of every space
 *                    and zeroes the counters
 *
 * Programs live in memory, per session_id; requests without one share an
 * anonymous space, and the same program_id may exist in several spaces.
 * A program created without a program_id gets "prog_<n>", n counting up
 * per process (skipping ids taken in the space). command_count counts the
 * requests received (the get_stats being answered included), error_count
 * the error replies sent; programs_count and sessions_count cover all
 * sessions. Errors: "program not found: <id>", "program already exists:
 * <id>", "invalid signature: ...", "missing input: <field>", and argument
 * type errors.
 *
 * The mock model: a signature is "in1, in2 -> out1, out2" (default
 * "question -> answer"): comma-separated distinct names, at least one on
 * each side. execute_program needs every input field (extra ones are
 * ignored) and sets every output field to
 *
 *	"<output field>: " + the input values in signature order, joined by
 *	single spaces
 *
 * a value that is not a string being written as compact JSON with sorted
 * keys and ASCII escapes. So "question -> answer" with {"question": "hi"}
 * gives {"answer": "answer: hi"}, and "a, b -> c, d" with {"a": "x", "b": 1}
 * gives {"c": "c: x 1", "d": "d: x 1"}.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/buf.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/xmalloc.h"
#include "workers/libworker/worker.h"

#define EXIT_USAGE	64
#define BIG_MAX_BYTES	(256 * 1024 * 1024)
#define DEFAULT_SIGNATURE	"question -> answer"
#define FLOOD_MAX_BYTES	(1024 * 1024 * 1024)
#define FLOOD_LINE	100	/* bytes per flood_stderr line, newline included */
#define FLOOD_CHUNK	(64 * 1024)
#define FORK_MAX	64
#define ESCAPE_MAX_S	120	/* a child forked with setsid ends by then */
#define SLEEP_MAX_MS	(24 * 3600 * 1000)	/* a day */

struct mock {
	json_t		*sessions;	/* session_id -> space */
	json_t		*anonymous;	/* the space of requests without one */
	unsigned long	 next_program;	/* the next "prog_<n>" to try */
	struct timespec	 started;
	struct stat	 proto_in;	/* fd 0 at start: the protocol input */
	struct stat	 proto_out;	/* fd 1 at start: the protocol output */
	bool		 sick;		/* pings fail (sicken, MOCK_WORKER_SICK) */
};

/* A space maps program_id -> {"inputs": [..], "outputs": [..],
 * "executions"}. */

struct opts {
	const char	*stderr_line;
	bool		 ignore_term;
	bool		 sick;
	bool		 crash;
	int		 crash_code;
	bool		 no_init;
};

static struct mock *
mock_of(struct worker *w)
{
	return worker_data(w);
}

/* The space of a session (NULL: the anonymous one); created on demand when
 * create is set, else NULL when the session has none yet. Borrowed. */
static json_t *
space_of(struct worker *w, const char *session_id, bool create)
{
	struct mock *m = mock_of(w);
	if (session_id == NULL)
		return m->anonymous;
	json_t *space = json_object_get(m->sessions, session_id);
	if (space == NULL && create) {
		space = json_object();
		json_object_set_new(m->sessions, session_id, space);
	}
	return space;
}

/* The program named by args.program_id in the session's space (borrowed),
 * or NULL after worker_fail(). */
static json_t *
find_program(struct worker *w, json_t *args, const char *session_id)
{
	const char *id = msg_str(args, "program_id");
	if (id == NULL || *id == '\0')
		return worker_fail(w, "program_id is required (a non-empty string)");
	json_t *prog = json_object_get(space_of(w, session_id, false), id);
	if (prog == NULL)
		return worker_fail(w, "program not found: %s", id);
	return prog;
}

/* A name as a signature field: letters, digits, '_' (and any non-ASCII
 * byte), not starting with a digit. */
static bool
is_name(const char *s, size_t n)
{
	if (n == 0 || isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '_' && c < 0x80)
			return false;
	}
	return true;
}

/* Appends the field in s[0..n), trimmed, to fields; false if it is not a
 * name. */
static bool
add_field(json_t *fields, const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)*s))
		s++, n--;
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (!is_name(s, n))
		return false;
	json_array_append_new(fields, json_stringn(s, n));
	return true;
}

/* Whether a field appears twice in fields. */
static bool
has_repeat(const json_t *fields)
{
	size_t n = json_array_size(fields);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (json_equal(json_array_get(fields, i),
			    json_array_get(fields, j)))
				return true;
	return false;
}

/* Parses "a, b" in s[0..n) onto the end of fields; false if a field is not
 * a name. */
static bool
parse_fields(json_t *fields, const char *s, size_t n)
{
	const char *end = s + n;
	for (;;) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *stop = comma ? comma : end;
		if (!add_field(fields, s, (size_t)(stop - s)))
			return false;
		if (comma == NULL)
			return true;
		s = comma + 1;
	}
}

/* "a, b -> c" -> a new program {"inputs", "outputs", "executions": 0}
 * (new reference), or NULL after worker_fail(). */
static json_t *
parse_signature(struct worker *w, const char *sig)
{
	const char *arrow = strstr(sig, "->");
	if (arrow == NULL || strstr(arrow + 2, "->") != NULL)
		return worker_fail(w, "invalid signature: '%s' needs exactly"
		    " one '->'", sig);
	json_t *all = json_array();
	bool good = parse_fields(all, sig, (size_t)(arrow - sig));
	size_t nin = json_array_size(all);
	good = good && parse_fields(all, arrow + 2, strlen(arrow + 2));
	if (!good || has_repeat(all)) {
		json_decref(all);
		return worker_fail(w, good ? "invalid signature: '%s' repeats a"
		    " field" : "invalid signature: '%s': fields must be"
		    " comma-separated names", sig);
	}
	json_t *in = json_array();
	for (size_t i = 0; i < nin; i++) {
		json_array_append(in, json_array_get(all, 0));
		json_array_remove(all, 0);
	}
	return json_pack("{s:o,s:o,s:i}", "inputs", in, "outputs", all,
	    "executions", 0);
}

/* A program's signature, normalised: "a, b -> c" (caller frees). */
static char *
signature_of(const json_t *prog)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL)
		abort();
	static const char *const sides[] = { "inputs", "outputs" };
	for (size_t s = 0; s < 2; s++) {
		size_t i;
		const json_t *name;
		json_array_foreach(json_object_get(prog, sides[s]), i, name)
			fprintf(f, "%s%s", i ? ", " : "", json_string_value(name));
		if (s == 0)
			fputs(" -> ", f);
	}
	fclose(f);
	return text;
}

/* A fresh "prog_<n>" id not used in space (caller frees). */
static char *
new_program_id(struct worker *w, const json_t *space)
{
	struct mock *m = mock_of(w);
	for (;;) {
		char *id = xasprintf("prog_%lu", m->next_program++);
		if (json_object_get(space, id) == NULL)
			return id;
		free(id);
	}
}

/* The program to create from args (new reference), or NULL after
 * worker_fail(). */
static json_t *
program_from_args(struct worker *w, json_t *args)
{
	json_t *sig = json_object_get(args, "signature");
	if (sig == NULL)
		return parse_signature(w, DEFAULT_SIGNATURE);
	if (!json_is_string(sig))
		return worker_fail(w, "invalid signature: must be a string like"
		    " '%s'", DEFAULT_SIGNATURE);
	return parse_signature(w, json_string_value(sig));
}

static json_t *
on_create_program(struct worker *w, json_t *args, const char *session_id)
{
	json_t *prog = program_from_args(w, args);
	if (prog == NULL)
		return NULL;
	json_t *given = json_object_get(args, "program_id");
	const char *name = json_string_value(given);
	if (given != NULL && (name == NULL || *name == '\0')) {
		json_decref(prog);
		return worker_fail(w, "program_id must be a non-empty string");
	}
	json_t *space = space_of(w, session_id, true);
	if (name != NULL && json_object_get(space, name) != NULL) {
		json_decref(prog);
		return worker_fail(w, "program already exists: %s", name);
	}
	char *id = name ? xstrdup(name) : new_program_id(w, space);
	json_object_set_new(space, id, prog);
	json_t *result = json_pack("{s:s}", "program_id", id);
	free(id);
	return result;
}

/* Lowercases the hex digits of the \uXXXX escapes in JSON text s, as
 * Python's json.dumps writes them (so both bridges say the same). */
static void
lower_escapes(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s != '\\' || s[1] == '\0')
			continue;
		s++;
		for (int i = 1; *s == 'u' && i <= 4 && s[i] != '\0'; i++)
			s[i] = (char)tolower((unsigned char)s[i]);
	}
}

/* Appends one input value to the mock model's text. */
static void
put_value(FILE *f, const json_t *v)
{
	if (json_is_string(v)) {
		fwrite(json_string_value(v), 1, json_string_length(v), f);
		return;
	}
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
	    JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	if (s != NULL)
		lower_escapes(s);
	fputs(s ? s : "null", f);
	free(s);
}

/* The input values joined by spaces (see the top of the file); NULL after
 * worker_fail() when an input is missing. Caller frees. */
static char *
joined_inputs(struct worker *w, const json_t *prog, const json_t *inputs)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL)
		abort();
	size_t i;
	const json_t *field;
	json_array_foreach(json_object_get(prog, "inputs"), i, field) {
		const char *name = json_string_value(field);
		const json_t *v = json_object_get(inputs, name);
		if (v == NULL) {
			fclose(f);
			free(text);
			worker_fail(w, "missing input: %s", name);
			return NULL;
		}
		if (i > 0)
			fputc(' ', f);
		put_value(f, v);
	}
	fclose(f);
	return text;
}

/* The mock model: every output field from the joined inputs. */
static json_t *
model_outputs(const json_t *prog, const char *joined)
{
	json_t *outputs = json_object();
	size_t i;
	const json_t *field;
	json_array_foreach(json_object_get(prog, "outputs"), i, field) {
		const char *name = json_string_value(field);
		json_object_set_new(outputs, name,
		    json_sprintf("%s: %s", name, joined));
	}
	return outputs;
}

static json_t *
on_execute_program(struct worker *w, json_t *args, const char *session_id)
{
	json_t *prog = find_program(w, args, session_id);
	if (prog == NULL)
		return NULL;
	json_t *inputs = json_object_get(args, "inputs");
	if (inputs != NULL && !json_is_object(inputs))
		return worker_fail(w, "inputs must be an object");
	char *joined = joined_inputs(w, prog, inputs);
	if (joined == NULL)
		return NULL;
	json_t *outputs = model_outputs(prog, joined);
	free(joined);
	json_int_t n = json_integer_value(json_object_get(prog, "executions"));
	json_object_set_new(prog, "executions", json_integer(n + 1));
	return json_pack("{s:O,s:o}", "program_id",
	    json_object_get(args, "program_id"), "outputs", outputs);
}

static json_t *
on_list_programs(struct worker *w, json_t *args, const char *session_id)
{
	json_t *ids = json_array();
	const char *id;
	json_t *prog;
	json_object_foreach(space_of(w, session_id, false), id, prog)
		json_array_append_new(ids, json_string(id));
	return json_pack("{s:o}", "programs", ids);
}

/* Deletes the program; a session's space goes with its last program. */
static json_t *
on_delete_program(struct worker *w, json_t *args, const char *session_id)
{
	if (find_program(w, args, session_id) == NULL)
		return NULL;
	json_t *space = space_of(w, session_id, false);
	json_object_del(space, msg_str(args, "program_id"));
	if (session_id != NULL && json_object_size(space) == 0)
		json_object_del(mock_of(w)->sessions, session_id);
	return json_pack("{s:b}", "deleted", 1);
}

static json_t *
on_get_program_info(struct worker *w, json_t *args, const char *session_id)
{
	json_t *prog = find_program(w, args, session_id);
	if (prog == NULL)
		return NULL;
	char *sig = signature_of(prog);
	json_t *info = json_pack("{s:O,s:s,s:O,s:O,s:O}", "program_id",
	    json_object_get(args, "program_id"), "signature", sig,
	    "executions", json_object_get(prog, "executions"),
	    "inputs", json_object_get(prog, "inputs"),
	    "outputs", json_object_get(prog, "outputs"));
	free(sig);
	return info;
}

/* Milliseconds since start (monotonic). */
static json_int_t
uptime_ms(const struct mock *m)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (json_int_t)(now.tv_sec - m->started.tv_sec) * 1000 +
	    (now.tv_nsec - m->started.tv_nsec) / 1000000;
}

/* Programs in every space. */
static size_t
programs_count(const struct mock *m)
{
	size_t n = json_object_size(m->anonymous);
	const char *sid;
	json_t *space;
	json_object_foreach(m->sessions, sid, space)
		n += json_object_size(space);
	return n;
}

static json_t *
on_get_stats(struct worker *w, json_t *args, const char *session_id)
{
	struct mock *m = mock_of(w);
	unsigned long requests, errors;
	worker_counts(w, &requests, &errors);
	return json_pack("{s:I,s:I,s:I,s:I,s:I}",
	    "programs_count", (json_int_t)programs_count(m),
	    "command_count", (json_int_t)requests,
	    "error_count", (json_int_t)errors,
	    "uptime_ms", uptime_ms(m),
	    "sessions_count", (json_int_t)json_object_size(m->sessions));
}

static json_t *
on_cleanup_session(struct worker *w, json_t *args, const char *session_id)
{
	json_t *given = json_object_get(args, "session_id");
	const char *sid = given ? json_string_value(given) : session_id;
	if (sid == NULL || *sid == '\0')
		return worker_fail(w, "session_id is required (a non-empty string)");
	struct mock *m = mock_of(w);
	size_t n = json_object_size(json_object_get(m->sessions, sid));
	json_object_del(m->sessions, sid);
	return json_pack("{s:I}", "cleaned", (json_int_t)n);
}

static json_t *
on_reset_state(struct worker *w, json_t *args, const char *session_id)
{
	struct mock *m = mock_of(w);
	json_object_clear(m->sessions);
	json_object_clear(m->anonymous);
	m->next_program = 1;
	worker_reset_counts(w);
	return json_pack("{s:b}", "reset", 1);
}

/* Raw: the args' text is the result's (the benchmarks' command, so it
 * costs what arbord's worker protocol costs and little more). */
static int
on_echo(struct worker *w, const char *args, size_t len,
    const char *session_id, const char **result, size_t *result_len)
{
	*result = args;
	*result_len = len;
	return 0;
}

/* A non-negative integer argument; false after worker_fail(). */
static bool
arg_count(struct worker *w, json_t *args, const char *key, json_int_t max,
    json_int_t *out)
{
	if (!msg_int(args, key, out)) {
		worker_fail(w, "%s must be an integer", key);
		return false;
	}
	if (*out < 0 || *out > max) {
		worker_fail(w, "%s out of range 0..%" JSON_INTEGER_FORMAT, key,
		    max);
		return false;
	}
	return true;
}

/* Sleeps for the milliseconds (at most a day) of args' key, stored in
 * *ms; false after worker_fail(). */
static bool
sleep_arg(struct worker *w, json_t *args, const char *key, json_int_t *ms)
{
	if (!arg_count(w, args, key, SLEEP_MAX_MS, ms))
		return false;
	struct timespec t = { *ms / 1000, (long)(*ms % 1000) * 1000000 };
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
	return true;
}

static long long
mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Does nothing: set only around wait_usr1's wait, it marks the wait in
 * /proc/<pid>/status (SigCgt) for a test to see before it signals. */
static void
on_usr1(int sig)
{
}

/* Waits up to ms for a SIGUSR1, blocked meanwhile so that one sent at any
 * moment of the wait is taken here, never lost nor fatal; the mask and the
 * action are restored after. Returns the milliseconds waited, -1 if none
 * came. */
static long long
wait_usr1(json_int_t ms)
{
	sigset_t usr1, old;
	struct sigaction mark = { .sa_handler = on_usr1 }, was;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	sigaction(SIGUSR1, &mark, &was);	/* caught only once blocked */
	long long t0 = mono_ms(), left;
	int got = -1;
	while (got != SIGUSR1 && (left = t0 + ms - mono_ms()) > 0) {
		struct timespec t = { left / 1000, left % 1000 * 1000000 };
		got = sigtimedwait(&usr1, NULL, &t);
		if (got < 0 && errno != EINTR)
			break;	/* EAGAIN: the bound ran out */
	}
	sigprocmask(SIG_SETMASK, &old, NULL);	/* one late: caught, dropped */
	sigaction(SIGUSR1, &was, NULL);
	return got == SIGUSR1 ? mono_ms() - t0 : -1;
}

/* sleep {"ms", "until_usr1"?}: with until_usr1, a test ends the sleep
 * when it chooses (SIGUSR1), ms still bounding it. */
static json_t *
on_sleep(struct worker *w, json_t *args, const char *session_id)
{
	json_int_t ms;
	json_t *until = json_object_get(args, "until_usr1");
	if (until != NULL && !json_is_boolean(until))
		return worker_fail(w, "until_usr1 must be a boolean");
	if (!json_is_true(until)) {
		if (!sleep_arg(w, args, "ms", &ms))
			return NULL;
		return json_pack("{s:I}", "slept", ms);
	}
	if (!arg_count(w, args, "ms", SLEEP_MAX_MS, &ms))
		return NULL;
	long long woken = wait_usr1(ms);
	return json_pack("{s:I,s:b}", "slept", woken < 0 ? ms :
	    (json_int_t)woken, "woken", woken >= 0);
}

static json_t *
on_crash(struct worker *w, json_t *args, const char *session_id)
{
	json_int_t code = 1, sig;
	const char *line = msg_str(args, "line");
	msg_int(args, "code", &code);
	if (line != NULL) {	/* one write, right before the exit */
		char *s = xasprintf("%s\n", line);
		ssize_t n = write(STDERR_FILENO, s, strlen(s));
		(void)n;	/* exiting anyway */
		free(s);
	}
	if (msg_int(args, "signal", &sig) && sig > 0 && sig < NSIG) {
		signal((int)sig, SIG_DFL);
		raise((int)sig);
	}
	_exit((int)code);
}

static json_t *
on_hang(struct worker *w, json_t *args, const char *session_id)
{
	for (;;)
		pause();
	return worker_no_reply(w);	/* not reached */
}

/* Answers this request, then nothing more (health pings go unanswered). */
static json_t *
on_deafen(struct worker *w, json_t *args, const char *session_id)
{
	json_t *reply = msg_worker_ok(worker_request_id(w),
	    json_pack("{s:b}", "deaf", 1));
	worker_write_json(w, reply);
	json_decref(reply);
	for (;;)
		pause();
	return worker_no_reply(w);	/* not reached */
}

/* ping: the library's reply, or an error once sick (not to an init ping,
 * so that a sick worker still starts). */
static json_t *
on_ping(struct worker *w, json_t *args, const char *session_id)
{
	if (mock_of(w)->sick &&
	    !json_is_true(json_object_get(args, "initialization")))
		return worker_fail(w, "sick");
	const char *id = worker_id(w);
	return json_pack("{s:b,s:o,s:I}", "pong", 1, "worker_id",
	    id ? json_string(id) : json_null(), "pid", (json_int_t)getpid());
}

/* Makes later pings fail: a worker reporting itself unhealthy. */
static json_t *
on_sicken(struct worker *w, json_t *args, const char *session_id)
{
	mock_of(w)->sick = true;
	return json_pack("{s:b}", "sick", 1);
}

static json_t *
on_garbage(struct worker *w, json_t *args, const char *session_id)
{
	static const char junk[] = "this is {not JSON";
	worker_write_frame(w, junk, sizeof junk - 1);
	return worker_no_reply(w);
}

/* The payload size of the reply to this request with result
 * {"data": ""}: what big's data must fill up to the size asked for. */
static size_t
big_overhead(struct worker *w)
{
	json_t *r = msg_worker_ok(worker_request_id(w),
	    json_pack("{s:s}", "data", ""));
	size_t n = json_dumpb(r, NULL, 0, JSON_COMPACT);
	json_decref(r);
	return n;
}

static json_t *
on_big(struct worker *w, json_t *args, const char *session_id)
{
	json_int_t bytes;
	if (!arg_count(w, args, "bytes", BIG_MAX_BYTES, &bytes))
		return NULL;
	size_t overhead = big_overhead(w);
	size_t n = (size_t)bytes > overhead ? (size_t)bytes - overhead : 0;
	char *data = xmalloc(n);
	memset(data, 'x', n);
	json_t *r = msg_worker_ok(worker_request_id(w),
	    json_pack("{s:o}", "data", json_stringn_nocheck(data, n)));
	free(data);
	/* Written here, not returned: the library would refuse a reply over
	 * the maximum frame size, and testing that limit is the point. */
	if (worker_write_json(w, r) < 0)
		fprintf(stderr, "mock_worker: big: %s\n", strerror(errno));
	json_decref(r);
	return worker_no_reply(w);
}

static json_t *
on_stderr(struct worker *w, json_t *args, const char *session_id)
{
	const char *line = msg_str(args, "line");
	if (line == NULL)
		return worker_fail(w, "line must be a string");
	char *s = xasprintf("%s\n", line);
	ssize_t n = write(STDERR_FILENO, s, strlen(s));
	free(s);
	if (n < 0)
		return worker_fail(w, "writing to stderr: %s", strerror(errno));
	return json_pack("{s:b}", "written", 1);
}

/* ---- hostile commands ---- */

/* Writes all of p[0..n) to fd; false on an error. */
static bool
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

/* flood_stderr's lines: "flood_stderr line <i> xx...\n", FLOOD_LINE bytes
 * each, written a chunk at a time. */
static bool
flood_lines(size_t nlines)
{
	char chunk[FLOOD_CHUNK];
	size_t used = 0;
	for (size_t i = 1; i <= nlines; i++) {
		if (used + FLOOD_LINE > sizeof chunk) {
			if (!write_all(STDERR_FILENO, chunk, used))
				return false;
			used = 0;
		}
		int k = snprintf(chunk + used, FLOOD_LINE, "flood_stderr line %zu ",
		    i);
		memset(chunk + used + k, 'x', (size_t)(FLOOD_LINE - 1 - k));
		chunk[used + FLOOD_LINE - 1] = '\n';
		used += FLOOD_LINE;
	}
	return write_all(STDERR_FILENO, chunk, used);
}

/* flood_stderr's last line: n bytes of 'y' and no newline. */
static bool
flood_long_line(size_t n)
{
	char chunk[FLOOD_CHUNK];
	memset(chunk, 'y', sizeof chunk);
	while (n > 0) {
		size_t k = n < sizeof chunk ? n : sizeof chunk;
		if (!write_all(STDERR_FILENO, chunk, k))
			return false;
		n -= k;
	}
	return true;
}

static json_t *
on_flood_stderr(struct worker *w, json_t *args, const char *session_id)
{
	json_int_t bytes;
	if (!arg_count(w, args, "bytes", FLOOD_MAX_BYTES, &bytes))
		return NULL;
	size_t nlines = (size_t)bytes / 2 / FLOOD_LINE;
	if (!flood_lines(nlines) ||
	    !flood_long_line((size_t)bytes - nlines * FLOOD_LINE))
		return worker_fail(w, "writing to stderr: %s", strerror(errno));
	return json_pack("{s:I,s:I}", "written", bytes, "lines",
	    (json_int_t)nlines);
}

/* Stalls until killed (a default SIGTERM still kills). */
static void __attribute__((noreturn))
sleep_forever(void)
{
	for (;;)
		pause();
}

/* Appends the frame of this request's success reply with result
 * {key: true}; returns the frame's size. */
static size_t
put_reply(struct worker *w, struct buf *out, const char *key)
{
	size_t at = buf_used(out);
	json_t *r = msg_worker_ok(worker_request_id(w),
	    json_pack("{s:b}", key, 1));
	frame_put_json(out, r);
	json_decref(r);
	return buf_used(out) - at;
}

static json_t *
on_partial(struct worker *w, json_t *args, const char *session_id)
{
	struct buf frame;
	buf_init(&frame);
	size_t n = put_reply(w, &frame, "partial");
	if (worker_write_raw(w, buf_head(&frame), n / 2) < 0)
		fprintf(stderr, "mock_worker: partial: %s\n", strerror(errno));
	buf_release(&frame);
	sleep_forever();
}

/* The reply, then the first half of another frame: output that no
 * request asked for. In the same write, so that arbord reads it with the
 * reply; or later_ms after it, while nothing is pending. */
static json_t *
on_stray(struct worker *w, json_t *args, const char *session_id)
{
	json_int_t ms;
	if (!sleep_arg(w, args, "ms", &ms))
		return NULL;
	struct buf out;
	buf_init(&out);
	size_t n = put_reply(w, &out, "stray");
	if (json_object_get(args, "later_ms") != NULL) {
		if (worker_write_raw(w, buf_head(&out), n) < 0 ||
		    !sleep_arg(w, args, "later_ms", &ms))
			fprintf(stderr, "mock_worker: stray: no reply or no "
			    "later_ms\n");
		buf_consume(&out, n);
	}
	n = put_reply(w, &out, "stray");
	if (worker_write_raw(w, buf_head(&out), buf_used(&out) - n / 2) < 0)
		fprintf(stderr, "mock_worker: stray: %s\n", strerror(errno));
	buf_release(&out);
	return worker_no_reply(w);
}

/* Closes every descriptor above stderr open on the protocol pipe out
 * (the library keeps private copies of the original fds 0 and 1). */
static void
close_protocol_pipe(const struct stat *out)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		int fd = atoi(e->d_name);
		if (isdigit((unsigned char)e->d_name[0]) && fd > STDERR_FILENO &&
		    fd != dirfd(d) && fstat(fd, &st) == 0 &&
		    st.st_dev == out->st_dev && st.st_ino == out->st_ino)
			close(fd);
	}
	closedir(d);
}

static json_t *
on_close_stdout(struct worker *w, json_t *args, const char *session_id)
{
	close_protocol_pipe(&mock_of(w)->proto_out);
	sleep_forever();
}

/* Its protocol input closed, then its reply, and on it runs. Closed
 * first: a request arbord writes once it has the reply meets the closed
 * pipe (EPIPE), never a pipe still open that no one will read. */
static json_t *
on_close_stdin(struct worker *w, json_t *args, const char *session_id)
{
	struct buf out;
	close_protocol_pipe(&mock_of(w)->proto_in);
	buf_init(&out);
	put_reply(w, &out, "closed");
	if (worker_write_raw(w, buf_head(&out), buf_used(&out)) < 0)
		fprintf(stderr, "mock_worker: close_stdin: %s\n", strerror(errno));
	buf_release(&out);
	sleep_forever();
}

/* A child forked with "setsid": out of the worker's process group and
 * session, beyond the group kill; bounded, so that a failed test does
 * not leave it running for long. */
static void __attribute__((noreturn))
escape(void)
{
	setsid();
	alarm(ESCAPE_MAX_S);
	sleep_forever();
}

static json_t *
on_fork(struct worker *w, json_t *args, const char *session_id)
{
	json_int_t n;
	if (!arg_count(w, args, "n", FORK_MAX, &n))
		return NULL;
	json_t *out = json_object_get(args, "setsid");
	if (out != NULL && !json_is_boolean(out))
		return worker_fail(w, "setsid must be a boolean");
	json_t *pids = json_array();
	for (json_int_t i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0 && json_is_true(out))
			escape();
		if (pid == 0)
			sleep_forever();
		if (pid < 0) {
			json_decref(pids);
			return worker_fail(w, "fork: %s", strerror(errno));
		}
		json_array_append_new(pids, json_integer(pid));
	}
	return json_pack("{s:o}", "forked", pids);
}

static json_t *
on_ignore_term(struct worker *w, json_t *args, const char *session_id)
{
	signal(SIGTERM, SIG_IGN);
	return json_pack("{s:b}", "ignoring_term", 1);
}

static const struct {
	const char	*command;
	worker_fn	 fn;
} commands[] = {
	{ "sleep", on_sleep },
	{ "crash", on_crash },
	{ "hang", on_hang },
	{ "deafen", on_deafen },
	{ "ping", on_ping },
	{ "sicken", on_sicken },
	{ "garbage", on_garbage },
	{ "big", on_big },
	{ "stderr", on_stderr },
	{ "flood_stderr", on_flood_stderr },
	{ "partial", on_partial },
	{ "stray", on_stray },
	{ "close_stdout", on_close_stdout },
	{ "close_stdin", on_close_stdin },
	{ "fork", on_fork },
	{ "ignore_term", on_ignore_term },
	{ "create_program", on_create_program },
	{ "execute_program", on_execute_program },
	{ "list_programs", on_list_programs },
	{ "delete_program", on_delete_program },
	{ "get_program_info", on_get_program_info },
	{ "get_stats", on_get_stats },
	{ "cleanup_session", on_cleanup_session },
	{ "reset_state", on_reset_state },
};

/* Serves requests until EOF or shutdown; returns the exit status. */
static int
serve(bool sick)
{
	struct mock m = { .sessions = json_object(),
	    .anonymous = json_object(), .next_program = 1, .sick = sick };
	clock_gettime(CLOCK_MONOTONIC, &m.started);
	fstat(STDIN_FILENO, &m.proto_in);	/* before the library moves them */
	fstat(STDOUT_FILENO, &m.proto_out);
	struct worker *w = worker_new();
	worker_set_data(w, &m);
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		worker_on(w, commands[i].command, commands[i].fn);
	worker_on_raw(w, "echo", on_echo);
	int rc = worker_run(w);
	worker_free(w);
	json_decref(m.sessions);
	json_decref(m.anonymous);
	return rc;
}

/* MOCK_WORKER_NO_INIT: reads stdin to its end and answers nothing. */
static int
swallow_input(void)
{
	char b[4096];
	ssize_t n;
	while ((n = read(STDIN_FILENO, b, sizeof b)) > 0 ||
	    (n < 0 && errno == EINTR))
		;
	return 0;
}

static bool
env_flag(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

/* An exit code 0..255 from s; false if s is not one. */
static bool
parse_code(const char *s, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 255)
		return false;
	*out = (int)v;
	return true;
}

/* Prints the usage line: on stdout and exit 0 when asked for, else on
 * stderr and exit 64. */
static void
usage(bool asked)
{
	fprintf(asked ? stdout : stderr, "usage: mock_worker"
	    " [--crash-at-start CODE] [--no-init] [--ignore-term]"
	    " [--stderr-at-start TEXT]\n");
	exit(asked ? 0 : EXIT_USAGE);
}

/* The environment's knobs. */
static void
opts_from_env(struct opts *o)
{
	o->stderr_line = getenv("MOCK_WORKER_STDERR_AT_START");
	o->ignore_term = env_flag("MOCK_WORKER_IGNORE_TERM");
	o->no_init = env_flag("MOCK_WORKER_NO_INIT");
	o->sick = env_flag("MOCK_WORKER_SICK");
	const char *code = getenv("MOCK_WORKER_CRASH_AT_START");
	if (code != NULL && *code != '\0') {
		o->crash = true;
		if (!parse_code(code, &o->crash_code)) {
			fprintf(stderr, "mock_worker: MOCK_WORKER_CRASH_AT_START:"
			    " not an exit code: %s\n", code);
			exit(EXIT_USAGE);
		}
	}
}

/* The flags, over the environment's knobs. */
static void
opts_from_argv(struct opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "crash-at-start", required_argument, NULL, 'c' },
		{ "no-init", no_argument, NULL, 'n' },
		{ "ignore-term", no_argument, NULL, 'i' },
		{ "stderr-at-start", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->crash = true;
			if (!parse_code(optarg, &o->crash_code))
				usage(false);
			break;
		case 'n': o->no_init = true; break;
		case 'i': o->ignore_term = true; break;
		case 's': o->stderr_line = optarg; break;
		case 'h': usage(true); break;
		default: usage(false);
		}
	}
	if (optind < argc)
		usage(false);
}

#ifdef __SANITIZE_ADDRESS__
/* In a sanitizer build the leak check at exit would fork a helper task
 * into the worker's process group just as arbord stops it; the mock's own
 * leaks at exit do not matter, arbord's do. */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "detect_leaks=0";
}
#endif

int
main(int argc, char **argv)
{
	struct opts o = { 0 };
	opts_from_env(&o);
	opts_from_argv(&o, argc, argv);
	if (o.stderr_line != NULL)
		fprintf(stderr, "%s\n", o.stderr_line);
	if (o.ignore_term)
		signal(SIGTERM, SIG_IGN);
	if (o.crash)
		return o.crash_code;
	if (o.no_init)
		return swallow_input();
	return serve(o.sick);
}
