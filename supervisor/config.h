/* config: the libconfig file (SPEC 3) -> one immutable struct config.
 * The selected environment overlays the top-level settings key by key;
 * mode and adapter are resolved (SPEC 3, including TEST_MODE in the test
 * environment); relative paths are made absolute against the file's
 * directory. A reload builds a new struct and swaps it in whole. */
#ifndef ARBOR_CONFIG_H
#define ARBOR_CONFIG_H
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

/* Upper bounds beyond the type's: an intensity keeps max_restarts + 1
 * timestamps, and a pool names its overflow workers from a 64-bit set. */
#define CONFIG_MAX_RESTARTS	1000000
#define CONFIG_MAX_OVERFLOW	64

/* The largest worker.max_frame_bytes and control.max_frame_bytes. */
#define CONFIG_MAX_FRAME_BYTES	(1L << 30)
/* The largest control reply arbord sends for a client's execute (with a
 * short id, as arborctl's): a worker's result or error, which fits in
 * CONFIG_MAX_FRAME_BYTES, in the reply's envelope ("id", "ok", "worker",
 * "session_reset"; "error", "code"), with room to spare. arborctl reads
 * replies up to this. */
#define CONFIG_MAX_REPLY_BYTES	(CONFIG_MAX_FRAME_BYTES + 65536L)

/* The least worker.max_frame_bytes: arbord's own frames to a worker and the
 * Python SDK's and mock_worker's answers to them fit, with room to spare
 * (the longest, a health ping's reply with a 19-digit id, the name
 * pool/worker.2147483647 and a 10-digit pid, is 118 bytes). At 64 not even
 * the init ping (84 bytes for bridge/worker) reached a worker. */
#define CONFIG_MIN_WORKER_FRAME	256

enum cfg_mode { MODE_DISABLED, MODE_SINGLE, MODE_POOL };
enum cfg_adapter {
	ADAPTER_AUTO, ADAPTER_PYTHON_PORT, ADAPTER_PYTHON_POOL,
	ADAPTER_BRIDGE_MOCK, ADAPTER_MOCK
};
enum cfg_restart { RESTART_PERMANENT, RESTART_TRANSIENT, RESTART_TEMPORARY };
/* The CPU scheduling policy a worker is started with (sched(7)). */
enum cfg_sched {
	SCHEDP_INHERIT, SCHEDP_OTHER, SCHEDP_BATCH, SCHEDP_IDLE
};
enum cfg_strategy { STRATEGY_FIFO, STRATEGY_LIFO };
enum cfg_affinity { AFFINITY_STRICT, AFFINITY_PREFER, AFFINITY_NONE };
enum cfg_log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum cfg_log_format { LOG_TEXT, LOG_JSON };

struct config {
	char	*path;		/* absolute path of the file */
	char	*env;		/* the selected environment */
	enum cfg_mode	 mode;		/* resolved */
	enum cfg_adapter adapter;	/* resolved: AUTO only in MODE_DISABLED */
	char	*test_mode;	/* TEST_MODE applied, or NULL */

	struct {
		int	max_restarts, max_seconds;
	} supervisor;
	struct {
		bool	enabled, pooling_enabled;
		enum cfg_adapter adapter;	/* as written (may be AUTO) */
		int	max_restarts, max_seconds;
	} bridge;
	struct {
		char	**argv;		/* NULL-terminated; an element holding
					   a '/' that is neither absolute nor
					   an option ("-x") is made absolute;
					   "python3" stays as written */
		char	**env;		/* NULL-terminated "KEY=VALUE"; an
					   environment's worker.env overlays
					   variable by variable */
		enum cfg_restart restart;
		int	init_timeout_ms, request_timeout_ms;
		int	health_interval_ms, health_timeout_ms;
		int	shutdown_timeout_ms;
		long	max_requests, max_errors;
		long	max_frame_bytes;
		int	restart_delay_ms, max_restart_delay_ms;
		int	max_inflight;
		enum cfg_sched sched_policy;
	} worker;
	struct {
		int	size;		/* resolved: 0 became 2 x online CPUs */
		int	max_overflow, overflow_idle_ms;
		enum cfg_strategy strategy;
		bool	lazy;
		int	checkout_timeout_ms, max_waiting;
		enum cfg_affinity affinity;
		long	session_ttl_ms;
		int	max_restarts, max_seconds;
	} pool;
	struct {
		char	*socket;	/* absolute */
		mode_t	 mode;
		int	 max_clients;
		long	 max_frame_bytes;
	} control;
	struct {
		enum cfg_log_level  level;
		enum cfg_log_format format;
	} log;
	unsigned holds;	/* config_hold()s not yet released */
};

/* Loads path for environment env (NULL: $ARBOR_ENV, else the file's
 * default_environment, else "dev"). On error returns NULL and writes
 * "file:line: key: reason" (or "file: reason") into err. The caller owns
 * the result and frees it with config_free(). */
struct config *config_load(const char *path, const char *env, char *err,
	    size_t errlen);
void	config_free(struct config *);
/* One more holder of c (a subtree a reload replaced, winding down under
 * the config it was built with): c is freed once config_free and every
 * config_release of a hold have been called. */
const struct config *config_hold(const struct config *);
void	config_release(const struct config *);

/* Prints the resolved settings, one "key = value" per line (arbord -t):
 * config (the file), environment, mode, adapter, test_mode (when set),
 * then every key of SPEC 3 in dotted form. Strings are printed bare,
 * worker.command as a JSON list, worker.env as a JSON object. */
void	config_print(const struct config *, FILE *);

/* The dotted keys whose values differ between a and b, as a NULL-terminated
 * array of static strings (free the array only). */
const char **config_diff(const struct config *a, const struct config *b);

const char *cfg_mode_name(enum cfg_mode);
const char *cfg_adapter_name(enum cfg_adapter);
const char *cfg_restart_name(enum cfg_restart);
const char *cfg_sched_name(enum cfg_sched);
const char *cfg_strategy_name(enum cfg_strategy);
const char *cfg_affinity_name(enum cfg_affinity);
const char *cfg_log_level_name(enum cfg_log_level);
const char *cfg_log_format_name(enum cfg_log_format);

#endif
