/* beam: the BEAM port pool of the reference figure, run beside
 * arbord (tools/bench/beam_pool.escript): a pool process holding Erlang
 * ports of mock_worker, each client an Erlang process that checks a port
 * out, makes one call and checks it back in, as the seed system does.
 * The clients are either processes of the same VM (beam_run) or the
 * benchmark's own over a Unix socket, a VM process per connection passing
 * its frames to the pool (beam_path: the worker protocol, as through
 * the relay). Needs escript (Debian: erlang-base). */
#ifndef ARBOR_BENCH_BEAM_H
#define ARBOR_BENCH_BEAM_H
#include <stdbool.h>
#include <sys/types.h>

#include "tools/bench/run.h"

struct beam;

/* True if escript runs here; says once why not otherwise. */
bool	beam_available(void);
/* Starts the VM with n ports of argv[0]; returns once they answered their
 * init pings and it listens. */
struct beam *beam_start(char *const argv[], int n);
pid_t	beam_pid(const struct beam *);
/* Its Unix socket. */
const char *beam_path(const struct beam *);
/* One run of `clients` client processes calling `command` (the warm-up and
 * window of every throughput run); its figures are added to s, its CPU per
 * request the whole VM's, clients included. */
void	beam_run(struct beam *, int clients, const char *command,
	    struct series *s);
/* Ends the VM and its workers, and frees. NULL is fine. */
void	beam_stop(struct beam *);
#endif
