/* harness: runs a real arbord for an integration test and drives it.
 *
 * A test makes a tree with arb_start() (a temp dir holding arbor.conf, the
 * daemon's stderr in arbord.log, the control socket arbor.sock), talks to
 * it through the control socket or arborctl, waits for tree changes by
 * polling `status` with a bound, and ends with arb_stop(), which also checks
 * that no process of the tree outlived arbord.
 *
 * Failures inside the harness fail the running cmocka test (fail_msg).
 * Register arb_teardown as the teardown of every test that starts a tree:
 * if the test fails half-way it kills what is left and prints the log. An
 * atexit handler does the same for anything still running at exit, and
 * arbord dies with the test process (parent-death signal) in any case.
 *
 * The test process is made a child subreaper, so a worker that arbord
 * leaves behind becomes our child: arb_stop() reports it (and kills it).
 *
 * $ARBOR_BUILD names the directory of arbord, arborctl and mock_worker
 * (default "build"). $ARBOR_KEEP_TMP=1 keeps the temp dirs. */
#ifndef ARBOR_TEST_HARNESS_H
#define ARBOR_TEST_HARNESS_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Bounds for events: generous, they must hold on a loaded 2-core machine. */
#define ARB_START_MS	20000	/* arbord up and answering ping */
#define ARB_EVENT_MS	20000	/* a change in the tree (restart, ready) */
#define ARB_EXIT_MS	30000	/* arbord's exit after SIGTERM */
#define ARB_REPLY_MS	15000	/* one control reply */

#define ARB_SENTINEL	__attribute__((sentinel))

struct arb;		/* one arbord under test (opaque) */
struct arb_conn;	/* one raw control connection (opaque) */

/* ---- lifecycle ---- */

/* Makes the temp dir and writes config_body to <dir>/arbor.conf. A body
 * without a "control" group gets `control = { socket = "arbor.sock"; };`
 * appended; a body with one must set socket = "arbor.sock" itself. Nothing
 * runs yet. Free with arb_stop() or arb_free(). */
struct arb *arb_new(const char *config_body);
/* Replaces <dir>/arbor.conf by config_body (the control group added as
 * by arb_new) in one rename, so that a reload never reads half a file. */
void	arb_rewrite_config(struct arb *, const char *config_body);
/* Starts arbord -c <conf> [-e env] (env may be NULL) with stderr and stdout
 * in <dir>/arbord.log, in its own process group. extra_env: NULL-terminated
 * "KEY=VALUE" strings (may be NULL); ARBOR_ENV, ARBOR_CONF, ARBOR_SOCKET and
 * TEST_MODE are removed from the inherited environment first. Once an
 * arbord has exited (arb_wait_exit), the same arb may be spawned again. */
void	arb_spawn(struct arb *, const char *env, const char *const *extra_env);
/* arb_spawn with one more option (flag may be NULL): "-v", "-q". */
void	arb_spawn_flag(struct arb *, const char *env, const char *flag,
	    const char *const *extra_env);
/* Polls until the socket answers ping: 0, or -1 on timeout or if arbord
 * exited. */
int	arb_wait_ready(struct arb *, int timeout_ms);
/* arb_new + arb_spawn + arb_wait_ready(ARB_START_MS); the variadic part is
 * the extra environment, NULL-terminated. Fails the test (printing the
 * log) if arbord does not come up. */
struct arb *arb_start(const char *config_body, const char *env, ...)
	    ARB_SENTINEL;

int	arb_kill(struct arb *, int sig);	/* to arbord: 0 or -1 */
/* Waits for arbord to exit on its own. Returns its exit code (128 + signal
 * when killed), or -1 on timeout. While it runs, its children are recorded
 * for the leftover check of arb_stop(). */
int	arb_wait_exit(struct arb *, int timeout_ms);
/* Ends the tree: SIGTERM if arbord still runs, ARB_EXIT_MS, then SIGKILL.
 * Returns the exit code. Then fails the test if any worker process seen
 * (in a status reply or as arbord's child) still exists, or if arbord left
 * any process behind; removes the temp dir and frees the arb. */
int	arb_stop(struct arb *);
/* Frees an arb without the checks of arb_stop(): for one whose arbord was
 * never spawned (a running one is killed). */
void	arb_free(struct arb *);
/* cmocka teardown: kills and frees every arb still alive (a test that
 * failed before arb_stop), printing its log. Always returns 0. */
int	arb_teardown(void **state);

/* ---- accessors (borrowed strings, valid until the arb is freed) ---- */
const char *arb_dir(const struct arb *);
const char *arb_conf_path(const struct arb *);
const char *arb_socket_path(const struct arb *);
pid_t	arb_pid(const struct arb *);

/* The repository's root: the current directory (where `make test` runs),
 * else the parent of $ARBOR_BUILD or of its parent; the one holding the
 * file probe (a path relative to the root). Caller frees; fails the test
 * when none does. */
char	*arb_repo_root(const char *probe);

/* ---- the daemon's log ---- */
char	*arb_log(const struct arb *);	/* whole log; caller frees */
bool	arb_log_contains(const struct arb *, const char *needle); /* case-insensitive */
/* True if one line of the log holds every word (case-insensitive); the
 * words are NULL-terminated. */
bool	arb_log_has_line(const struct arb *, ...) ARB_SENTINEL;
/* How many lines hold every word (the same list). */
size_t	arb_log_count_lines(const struct arb *, ...) ARB_SENTINEL;
/* Polls the log until a line holds every word (the same list): true, or
 * false once timeout_ms have passed. */
bool	arb_wait_log_line(const struct arb *, int timeout_ms, ...) ARB_SENTINEL;
void	arb_dump_log(const struct arb *);	/* to stderr, with a header */

/* ---- control requests (one connection per request) ---- */

/* Sends req (steals it), adding "id" unless it has one; returns the reply
 * (new reference), or NULL if arbord could not be reached or did not answer
 * within ARB_REPLY_MS (the reason is printed to stderr). */
json_t	*arb_call(struct arb *, json_t *req);
/* arb_call that fails the test unless the reply has "ok": true. */
json_t	*arb_call_ok(struct arb *, json_t *req);
/* arb_call that fails the test unless the reply is an error with code. */
json_t	*arb_call_err(struct arb *, json_t *req, const char *code);
/* {"op": op} through arb_call_ok. */
json_t	*arb_op_ok(struct arb *, const char *op);
/* The tree at name (NULL: root), new reference; NULL on any failure. */
json_t	*arb_status(struct arb *, const char *name);

/* Reply helpers (all borrow). */
bool	arb_reply_ok(const json_t *reply);
const char *arb_reply_code(const json_t *reply);	/* error.code or NULL */

/* ---- tree helpers (borrow; the returned node lives in the tree) ---- */
json_t	*arb_find(json_t *tree, const char *name);
const char *arb_node_str(const json_t *node, const char *key);	/* NULL if absent */
json_int_t arb_node_int(const json_t *node, const char *key);	/* -1 if absent */
json_int_t arb_node_pid(const json_t *node);		/* 0 if none */
size_t	arb_node_nchildren(const json_t *node);
/* Pids of the worker nodes under node, up to max; returns how many. */
size_t	arb_worker_pids(const json_t *node, json_int_t *out, size_t max);

/* ---- waiting for the tree ---- */

typedef bool arb_pred(json_t *tree, void *ctx);
/* Polls root status until pred holds: returns that tree (new reference),
 * or NULL on timeout or arbord's exit, printing `what` and the last tree. */
json_t	*arb_wait_for(struct arb *, arb_pred *, void *ctx, int timeout_ms,
	    const char *what);
/* Waits until the node at name has state (and, if not_pid > 0, a pid other
 * than not_pid). Returns the node (new reference) or NULL. */
json_t	*arb_wait_node(struct arb *, const char *name, const char *state,
	    json_int_t not_pid, int timeout_ms);
/* arb_wait_node(name, "ready", other_than, ARB_EVENT_MS) for a worker:
 * returns its pid, which is > 0 and not other_than (0: any). Fails the
 * test, naming the worker, if it does not become ready in time (the last
 * tree is printed, the log follows at teardown). */
json_int_t arb_wait_ready_pid(struct arb *, const char *name,
	    json_int_t other_than);
/* arb_wait_node(name, state, 0, ARB_EVENT_MS), failing the test, naming
 * the node, if it does not reach state in time. */
void	arb_await_node(struct arb *, const char *name, const char *state);
/* Waits until the node at parent has exactly n children, all workers in
 * state ready. Returns the root tree (new reference) or NULL. */
json_t	*arb_wait_all_ready(struct arb *, const char *parent, size_t n,
	    int timeout_ms);

/* ---- raw connections, for malformed input and pipelining ---- */
struct arb_conn *arb_conn_open(struct arb *);	/* NULL on failure (errno) */
int	arb_conn_send_raw(struct arb_conn *, const void *, size_t); /* 0 / -1 */
int	arb_conn_send(struct arb_conn *, const json_t *);	/* one frame; borrows */
/* One reply frame parsed as a JSON object (new reference), or NULL on
 * timeout, EOF or a malformed frame. */
json_t	*arb_conn_recv(struct arb_conn *, int timeout_ms);
/* The same frame's payload as it came, NUL-terminated (caller frees), for
 * a reply jansson would not read back as it is. */
char	*arb_conn_recv_text(struct arb_conn *, int timeout_ms);
/* True once the peer has closed the connection (within timeout_ms); any
 * frame arriving first is discarded. */
bool	arb_conn_closed(struct arb_conn *, int timeout_ms);
void	arb_conn_close(struct arb_conn *);

/* ---- running programs ---- */

/* $ARBOR_BUILD/name; caller frees. */
char	*arb_bin_path(const char *name);
/* "LD_PRELOAD=<$ARBOR_BUILD/shim>" for arbord's extra environment, the
 * ASan runtime first under the sanitizers (ARBOR_SAN), as a preloaded
 * shim must come after it; caller frees. */
char	*arb_preload(const char *shim);
/* Runs argv (argv[0] a path) with extra_env (NULL-terminated, may be NULL)
 * and stdin from /dev/null; captures stdout into out and stderr into err
 * (NUL-terminated, truncated; either may be NULL: stderr is then copied to
 * ours). Killed after 30 s. Returns the exit code, 128 + signal, or -1. */
int	arb_run(const char *const argv[], const char *const *extra_env,
	    char *out, size_t outlen, char *err, size_t errlen);
/* Runs arborctl -s <socket> args... (NULL-terminated) and returns its exit
 * code, its stdout in out (may be NULL). */
int	arb_ctl(struct arb *, char *out, size_t outlen, ...) ARB_SENTINEL;

/* ---- /proc ---- */
bool	proc_exists(pid_t);		/* zombies included */
bool	proc_is_zombie(pid_t);
bool	proc_is_stopped(pid_t);	/* by a signal (SIGSTOP) */
pid_t	proc_ppid(pid_t);		/* -1 if no such process */
/* Pids whose parent is ppid, up to max stored in out (may be NULL);
 * returns how many there are. */
size_t	proc_children(pid_t ppid, pid_t *out, size_t max);
/* The same for arbord's children other than its keeper (ARB_KEEPER, a
 * process of arbord's own that no worker forked). */
size_t	arb_children(const struct arb *, pid_t *out, size_t max);
#define ARB_KEEPER	"arbord-keeper"	/* the keeper's command name */
size_t	proc_fd_count(pid_t);		/* open descriptors; 0 if gone */
/* The command name of pid (/proc/PID/comm), "" if gone. */
void	proc_comm(pid_t, char *out, size_t len);
long	proc_rss_kb(pid_t);		/* VmRSS in kB; -1 if unknown */
/* Polls until pid catches signal sig (SigCgt); false on timeout or if pid
 * is gone. */
bool	proc_wait_sig_caught(pid_t, int sig, int timeout_ms);
/* Polls until pid has left /proc (reaped, not a zombie). */
bool	proc_wait_gone(pid_t, int timeout_ms);
/* The same for a process that may have become ours (an orphan, adopted by
 * this subreaper, e.g. a worker's own child): it is reaped here. */
bool	proc_wait_dead(pid_t, int timeout_ms);

/* ---- time ---- */
long long arb_now_ms(void);		/* monotonic */
void	arb_sleep_ms(int ms);		/* a polling interval, never an event wait */

#endif
