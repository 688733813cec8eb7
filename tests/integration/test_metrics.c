/* The metrics op (SPEC 6) read as a Prometheus scraper would: the whole
 * text parsed line by line. Every sample's family has one HELP and one
 * TYPE line before it, no family is declared twice or split, counters end
 * in _total and gauges do not, label values are well escaped; and a
 * worker's set of series stays the same whatever its state (ready, busy,
 * stopped, killed and restarted): only values change. The pool-wide
 * counters never go down, not even across reloads that replace the
 * subtree (pool -> single -> disabled -> pool). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/xmalloc.h"
#include "tests/integration/clients.h"
#include "tests/integration/harness.h"

#define MAX_FAMILIES	64
#define MAX_SERIES	256
#define SLEEP_MS	3000	/* holds a worker busy while we look */

static const char CONF[] =
    "supervisor = { max_restarts = 100; max_seconds = 60; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { restart_delay_ms = 0; };\n"
    "pool = { size = 2; max_overflow = 0; max_restarts = 100; };\n"
    "environments = { dev = { }; };\n";

struct family {
	char	*name;
	char	 type[16];		/* "" until its TYPE line */
	bool	 help;
	bool	 sampled;		/* a sample of it was seen */
};

/* One exposition, parsed. A series is "name{labels}" as written. */
struct expo {
	struct family	 fam[MAX_FAMILIES];
	size_t		 nfam;
	char		*series[MAX_SERIES];
	double		 value[MAX_SERIES];
	size_t		 nseries;
	size_t		 last;		/* the family of the last line */
};

static void
expo_free(struct expo *e)
{
	for (size_t i = 0; i < e->nfam; i++)
		free(e->fam[i].name);
	for (size_t i = 0; i < e->nseries; i++)
		free(e->series[i]);
	free(e);
}

static size_t
find_family(const struct expo *e, const char *name)
{
	for (size_t i = 0; i < e->nfam; i++)
		if (strcmp(e->fam[i].name, name) == 0)
			return i;
	return SIZE_MAX;
}

static bool
is_name_char(char c, bool first)
{
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9');
}

/* The metric name at the start of s, copied (caller frees); *end past it. */
static char *
take_name(const char *s, const char **end, const char *line)
{
	size_t n = 0;
	while (is_name_char(s[n], n == 0))
		n++;
	if (n == 0)
		fail_msg("no metric name in line: %s", line);
	*end = s + n;
	return xasprintf("%.*s", (int)n, s);
}

/* "# HELP name text" or "# TYPE name type": one of each per family, HELP
 * first, both before any other family's line and before its samples. */
static void
parse_comment(struct expo *e, const char *line)
{
	bool help = strncmp(line, "# HELP ", 7) == 0;
	if (!help && strncmp(line, "# TYPE ", 7) != 0)
		fail_msg("unexpected comment: %s", line);
	const char *rest;
	char *name = take_name(line + 7, &rest, line);
	if (*rest != ' ' || rest[1] == '\0')
		fail_msg("HELP or TYPE without text: %s", line);
	size_t f = find_family(e, name);
	if (help) {
		if (f != SIZE_MAX)
			fail_msg("family %s declared twice", name);
		assert_true(e->nfam < MAX_FAMILIES);
		f = e->nfam++;
		e->fam[f].name = name;
		e->fam[f].help = true;
	} else {
		if (f == SIZE_MAX || f != e->last || e->fam[f].type[0] != '\0' ||
		    e->fam[f].sampled)
			fail_msg("TYPE not right after its family's one HELP: %s",
			    line);
		free(name);
		if (strcmp(rest + 1, "counter") != 0 &&
		    strcmp(rest + 1, "gauge") != 0)
			fail_msg("unexpected type: %s", line);
		strcpy(e->fam[f].type, rest + 1);
	}
	e->last = f;
}

/* {k="v",...}: names and values as the format allows them (escapes \\,
 * \" and \n only). Returns the end of the label set. */
static const char *
skip_labels(const char *p, const char *line)
{
	if (*p != '{')
		return p;
	p++;
	while (*p != '}') {
		const char *q;
		free(take_name(p, &q, line));
		if (q[0] != '=' || q[1] != '"')
			fail_msg("bad label in: %s", line);
		for (p = q + 2; *p != '"'; p++) {
			if (*p == '\0' || *p == '\n')
				fail_msg("unterminated label value: %s", line);
			if (*p == '\\' && p[1] != '\\' && p[1] != '"' &&
			    p[1] != 'n')
				fail_msg("bad escape in: %s", line);
			p += *p == '\\';
		}
		p++;
		if (*p == ',')
			p++;
		else if (*p != '}')
			fail_msg("bad label set in: %s", line);
	}
	return p + 1;
}

/* name{labels} value: its family declared just before (HELP and TYPE),
 * the series seen once, the value a number (a counter's not negative). */
static void
parse_sample(struct expo *e, const char *line)
{
	const char *p;
	char *name = take_name(line, &p, line);
	size_t f = find_family(e, name);
	if (f == SIZE_MAX || f != e->last || e->fam[f].type[0] == '\0')
		fail_msg("sample without HELP and TYPE just before its "
		    "family: %s", line);
	free(name);
	p = skip_labels(p, line);
	if (*p != ' ')
		fail_msg("no value in: %s", line);
	char *end;
	double v = strtod(p + 1, &end);
	if (end == p + 1 || *end != '\0')
		fail_msg("bad value in: %s", line);
	bool counter = strcmp(e->fam[f].type, "counter") == 0;
	if (counter && v < 0)
		fail_msg("negative counter: %s", line);
	char *series = xasprintf("%.*s", (int)(p - line), line);
	for (size_t i = 0; i < e->nseries; i++)
		if (strcmp(e->series[i], series) == 0)
			fail_msg("series twice: %s", series);
	assert_true(e->nseries < MAX_SERIES);
	e->value[e->nseries] = v;
	e->series[e->nseries++] = series;
	e->fam[f].sampled = true;
}

/* Counters end in _total, gauges do not. */
static void
check_names(const struct expo *e)
{
	for (size_t i = 0; i < e->nfam; i++) {
		const char *n = e->fam[i].name;
		size_t len = strlen(n);
		bool total = len > 6 && strcmp(n + len - 6, "_total") == 0;
		bool counter = strcmp(e->fam[i].type, "counter") == 0;
		if (e->fam[i].type[0] == '\0')
			fail_msg("family %s has no TYPE", n);
		if (total != counter)
			fail_msg("%s %s: counters, and only they, end in _total",
			    e->fam[i].type, n);
	}
}

/* The metrics text, parsed and checked (free with expo_free). */
static struct expo *
scrape(struct arb *a)
{
	json_t *r = arb_op_ok(a, "metrics");
	const char *text = json_string_value(json_object_get(r, "text"));
	assert_non_null(text);
	size_t len = strlen(text);
	assert_true(len > 0 && text[len - 1] == '\n');
	struct expo *e = xcalloc(1, sizeof *e);
	e->last = SIZE_MAX;
	char *copy = xstrdup(text), *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			parse_comment(e, line);
		else
			parse_sample(e, line);
	}
	free(copy);
	json_decref(r);
	check_names(e);
	return e;
}

/* The value of series, failing the test if absent. */
static double
expo_value(const struct expo *e, const char *series)
{
	for (size_t i = 0; i < e->nseries; i++)
		if (strcmp(e->series[i], series) == 0)
			return e->value[i];
	fail_msg("no series %s", series);
	return -1;
}

/* The series naming worker, in order, joined by newlines (caller frees). */
static char *
worker_series(const struct expo *e, const char *worker)
{
	char *label = xasprintf("worker=\"%s\"", worker);
	char *out = xstrdup("");
	for (size_t i = 0; i < e->nseries; i++) {
		if (strstr(e->series[i], label) == NULL)
			continue;
		char *s = xasprintf("%s%s\n", out, e->series[i]);
		free(out);
		out = s;
	}
	free(label);
	return out;
}

/* Scrapes; the worker's series are those of `want` (when not NULL), it is
 * up (1) or not (0), and its state-set says state. Returns its series. */
static char *
expect_worker(struct arb *a, const char *worker, const char *want, int up,
    const char *state)
{
	static const char *const states[] = { "starting", "ready", "busy",
	    "stopping", "backoff", "stopped", "failed" };
	struct expo *e = scrape(a);
	char *got = worker_series(e, worker);
	if (want != NULL && strcmp(got, want) != 0) {
		fprintf(stderr, "before:\n%s\nnow (%s):\n%s\n", want, state, got);
		fail_msg("%s: its series changed with its state", worker);
	}
	char *s = xasprintf("arbor_worker_up{worker=\"%s\"}", worker);
	assert_int_equal((int)expo_value(e, s), up);
	free(s);
	for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
		s = xasprintf("arbor_worker_state{worker=\"%s\",state=\"%s\"}",
		    worker, states[i]);
		assert_int_equal((int)expo_value(e, s),
		    strcmp(states[i], state) == 0);
		free(s);
	}
	expo_free(e);
	return got;
}

/* The whole text parses; pool-wide families read what `stats` reads. */
static void
test_metrics_well_formed(void **state)
{
	struct arb *a = arb_start(CONF, "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS));
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	struct expo *e = scrape(a);
	assert_int_equal((int)expo_value(e, "arbor_size"), 2);
	assert_int_equal((int)expo_value(e, "arbor_ready"), 2);
	assert_int_equal((int)expo_value(e, "arbor_operations_total"), 1);
	assert_int_equal((int)expo_value(e,
	    "arbor_operations_succeeded_total"), 1);
	double handled = 0;
	for (int i = 1; i <= 2; i++) {
		char *s = xasprintf("arbor_worker_requests_handled_total"
		    "{worker=\"pool/worker.%d\"}", i);
		handled += expo_value(e, s);
		free(s);
	}
	assert_int_equal((int)handled, 1);
	expo_free(e);
	assert_int_equal(arb_stop(a), 0);
}

/* Single mode: the bridge's families and its one worker; mode disabled:
 * no worker, and the text still parses. */
static void
test_metrics_other_modes(void **state)
{
	struct arb *a = arb_start(
	    "bridge = { adapter = \"bridge_mock\"; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	arb_await_node(a, "bridge/worker", "ready");
	struct expo *e = scrape(a);
	assert_int_equal((int)expo_value(e, "arbor_inflight"), 0);
	assert_int_equal((int)expo_value(e,
	    "arbor_worker_up{worker=\"bridge/worker\"}"), 1);
	expo_free(e);
	assert_int_equal(arb_stop(a), 0);

	a = arb_start("bridge = { enabled = false; adapter = \"bridge_mock\"; "
	    "};\nenvironments = { dev = { }; };\n", "dev", NULL);
	e = scrape(a);
	assert_true(e->nseries > 0);
	for (size_t i = 0; i < e->nseries; i++)
		if (strstr(e->series[i], "worker=") != NULL)
			fail_msg("no worker runs, yet: %s", e->series[i]);
	expo_free(e);
	assert_int_equal(arb_stop(a), 0);
}

/* Busy, stopped, killed and restarted: the same series, other values. */
static void
test_metrics_series_stable(void **state)
{
	static const char W[] = "pool/worker.1";
	struct arb *a = arb_start(CONF, "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS));
	char *ready = expect_worker(a, W, NULL, 1, "ready");
	assert_non_null(strstr(ready, "arbor_worker_errors_total"));

	struct cl_conn *c[2];
	for (int i = 0; i < 2; i++)	/* both busy: W among them */
		c[i] = cl_send_held(a, i + 1, "sleep", json_pack("{s:i}", "ms",
		    SLEEP_MS), NULL, "busy", i + 1);
	free(expect_worker(a, W, ready, 1, "busy"));
	for (int i = 0; i < 2; i++) {
		json_decref(cl_recv_ok(c[i], ARB_EVENT_MS, "sleep"));
		cl_close(c[i]);
	}

	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "stop",
	    "name", W)));
	arb_await_node(a, W, "stopped");
	free(expect_worker(a, W, ready, 0, "stopped"));
	json_decref(arb_call_ok(a, json_pack("{s:s,s:s}", "op", "start",
	    "name", W)));
	json_int_t pid = arb_wait_ready_pid(a, W, 0);

	assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
	arb_wait_ready_pid(a, W, pid);
	free(expect_worker(a, W, ready, 1, "ready"));
	free(ready);
	assert_int_equal(arb_stop(a), 0);
}

/* Every pool-wide counter of now is at least what it was in before. */
static void
expect_counters_kept(const struct expo *before, const struct expo *now,
    const char *when)
{
	for (size_t i = 0; i < before->nseries; i++) {
		const char *s = before->series[i];
		size_t len = strlen(s);
		if (strchr(s, '{') != NULL || len < 6 ||
		    strcmp(s + len - 6, "_total") != 0)
			continue;
		double v = expo_value(now, s);
		if (v < before->value[i])
			fail_msg("%s: counter %s went down from %.0f to %.0f",
			    when, s, before->value[i], v);
	}
}

/* A worker restarted, then reloads that replace the subtree each time:
 * no pool-wide counter goes down, arbor_restarts_total included, neither
 * while the replaced subtree winds down nor once it is gone. */
static void
test_metrics_counters_across_reloads(void **state)
{
	static const char *const bodies[] = {
	    "bridge = { adapter = \"bridge_mock\"; };\n"
	    "worker = { restart_delay_ms = 0; };\n"
	    "environments = { dev = { }; };\n",
	    "bridge = { enabled = false; adapter = \"bridge_mock\"; };\n"
	    "environments = { dev = { }; };\n",
	    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
	    "worker = { restart_delay_ms = 0; };\n"
	    "pool = { size = 1; max_overflow = 0; };\n"
	    "environments = { dev = { }; };\n",
	};
	static const char *const modes[] = { "single", "disabled", "pool" };
	struct arb *a = arb_start(CONF, "dev", NULL);
	json_decref(arb_wait_all_ready(a, "pool", 2, ARB_EVENT_MS));
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	json_decref(cl_exec_err(a, "crash", NULL, NULL, "worker_crashed"));
	assert_true(cl_wait_stat(a, "restarts", 1, 1, ARB_EVENT_MS));
	struct expo *before = scrape(a);
	assert_int_equal((int)expo_value(before, "arbor_restarts_total"), 1);
	for (size_t k = 0; k < sizeof bodies / sizeof bodies[0]; k++) {
		arb_rewrite_config(a, bodies[k]);
		json_decref(arb_op_ok(a, "reload"));
		json_t *st = cl_stats(a);
		assert_string_equal(json_string_value(json_object_get(st,
		    "mode")), modes[k]);
		json_decref(st);
		struct expo *now = scrape(a);
		expect_counters_kept(before, now, modes[k]);
		expo_free(now);
		if (k < 2)	/* the replaced subtree gone (none to disabled) */
			assert_true(arb_wait_log_line(a, ARB_EVENT_MS, "root:",
			    "old", k == 0 ? "pool" : "bridge", "stopped", NULL));
		now = scrape(a);
		expect_counters_kept(before, now, modes[k]);
		expo_free(before);
		before = now;
	}
	expo_free(before);
	assert_int_equal(arb_stop(a), 0);
}

/* One worker, none waiting (a second request is overloaded), requests of
 * at most 4096 bytes to the worker; the drain waits up to 5 s. */
static const char COUNT_CONF[] =
    "supervisor = { max_restarts = 100; max_seconds = 60; };\n"
    "bridge = { adapter = \"bridge_mock\"; pooling_enabled = true; };\n"
    "worker = { restart_delay_ms = 0; max_frame_bytes = 4096;\n"
    "  shutdown_timeout_ms = 5000; };\n"
    "pool = { size = 1; max_overflow = 0; max_waiting = 0;\n"
    "  max_restarts = 100; };\n"
    "environments = { dev = { }; };\n";

/* stats and metrics both read total, ok and failed operations, with
 * total = ok + failed. */
static void
expect_operations(struct arb *a, json_int_t total, json_int_t ok,
    json_int_t failed)
{
	json_t *st = cl_stats(a);
	json_int_t t = json_integer_value(json_object_get(st,
	    "total_operations"));
	json_int_t s = json_integer_value(json_object_get(st,
	    "successful_operations"));
	json_int_t f = json_integer_value(json_object_get(st,
	    "failed_operations"));
	json_decref(st);
	if (t != total || s != ok || f != failed)
		fail_msg("stats: total %lld ok %lld failed %lld, expected "
		    "%lld %lld %lld", (long long)t, (long long)s, (long long)f,
		    (long long)total, (long long)ok, (long long)failed);
	struct expo *e = scrape(a);
	assert_int_equal((int)expo_value(e, "arbor_operations_total"), total);
	assert_int_equal((int)expo_value(e,
	    "arbor_operations_succeeded_total"), ok);
	assert_int_equal((int)expo_value(e, "arbor_operations_failed_total"),
	    failed);
	expo_free(e);
}

/* An execute whose params are refused: bad_request. req is stolen. */
static void
refused(struct arb *a, json_t *req)
{
	json_object_set_new(req, "op", json_string("execute"));
	json_decref(arb_call_err(a, req, "bad_request"));
}

/* Every execute that gets a reply counts once in total_operations and
 * once in successful_operations or failed_operations: those the worker
 * answers or fails, and those refused before any worker is asked (bad
 * params, too large for the worker, overloaded, shutting_down). Requests
 * that are no execute (unknown op, status) count in neither. */
static void
test_operations_count_every_execute(void **state)
{
	struct arb *a = arb_start(COUNT_CONF, "dev", NULL);
	json_int_t pid = arb_wait_ready_pid(a, "pool/worker.1", 0);
	json_decref(cl_exec_ok(a, "echo", NULL, NULL));
	json_decref(cl_exec_ok(a, "echo", json_pack("{s:i}", "n", 1), "s1"));
	json_decref(cl_exec_err(a, "no_such_command", NULL, NULL,
	    "worker_error"));
	json_decref(cl_exec_err(a, "crash", json_pack("{s:i}", "code", 3),
	    NULL, "worker_crashed"));
	pid = arb_wait_ready_pid(a, "pool/worker.1", pid);
	json_decref(arb_call_err(a, cl_exec_req(0, "hang", NULL, NULL, 300),
	    "timeout"));
	pid = arb_wait_ready_pid(a, "pool/worker.1", pid);
	expect_operations(a, 5, 2, 3);

	refused(a, json_object());				/* no command */
	refused(a, json_pack("{s:i}", "command", 42));
	refused(a, json_pack("{s:s, s:i}", "command", "echo", "timeout_ms", 0));
	refused(a, json_pack("{s:s, s:[i]}", "command", "echo", "args", 1));
	refused(a, json_pack("{s:s, s:s}", "command", "echo", "session_id", ""));
	char big[5000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	json_decref(cl_exec_err(a, "echo", json_pack("{s:s}", "s", big), NULL,
	    "frame_too_large"));
	json_decref(arb_call_err(a, json_pack("{s:s}", "op", "no_such_op"),
	    "unknown_op"));
	json_t *tree = arb_status(a, NULL);
	assert_non_null(tree);
	json_decref(tree);
	expect_operations(a, 11, 2, 9);

	/* the one worker busy, none may wait: overloaded */
	struct cl_conn *held = cl_send_held(a, 1, "hang", NULL, NULL, "busy", 1);
	json_decref(cl_exec_err(a, "echo", NULL, NULL, "overloaded"));
	expect_operations(a, 12, 2, 10);

	/* draining: shutting_down (the held request is cut after 5 s) */
	assert_int_equal(arb_kill(a, SIGTERM), 0);
	assert_true(arb_wait_log_line(a, ARB_EVENT_MS, "shutting down",
	    NULL));
	json_decref(cl_exec_err(a, "echo", NULL, NULL, "shutting_down"));
	json_decref(arb_call_err(a, json_pack("{s:s, s:i}", "op", "execute",
	    "command", 42), "shutting_down"));	/* before its params */
	expect_operations(a, 14, 2, 12);
	json_t *r = cl_recv(held, ARB_EXIT_MS);
	assert_string_equal(arb_reply_code(r), "shutting_down");
	json_decref(r);
	cl_close(held);
	assert_int_equal(arb_wait_exit(a, ARB_EXIT_MS), 0);
	assert_int_equal(arb_stop(a), 0);
}

/* Mode disabled: refused params count as bridge_disabled does. */
static void
test_operations_count_disabled(void **state)
{
	struct arb *a = arb_start("bridge = { enabled = false; };\n"
	    "environments = { dev = { }; };\n", "dev", NULL);
	json_decref(cl_exec_err(a, "echo", NULL, NULL, "bridge_disabled"));
	refused(a, json_pack("{s:s, s:i}", "command", "echo", "args", 1));
	expect_operations(a, 2, 0, 2);
	assert_int_equal(arb_stop(a), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_metrics_well_formed, arb_teardown),
		cmocka_unit_test_teardown(test_metrics_other_modes, arb_teardown),
		cmocka_unit_test_teardown(test_metrics_series_stable,
		    arb_teardown),
		cmocka_unit_test_teardown(test_metrics_counters_across_reloads,
		    arb_teardown),
		cmocka_unit_test_teardown(test_operations_count_every_execute,
		    arb_teardown),
		cmocka_unit_test_teardown(test_operations_count_disabled,
		    arb_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
