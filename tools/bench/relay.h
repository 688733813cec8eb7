/* relay: the least any broker has to do, run as a floor for arbord's own
 * rows. Clients connect to a Unix socket; each request frame goes,
 * unchanged, to an idle worker (waiting first come, first served) and the
 * worker's reply, unchanged, back to that client; reads and writes are
 * batched per loop iteration as arbord does (the writes in one system
 * call: proto/uring.h). No JSON, ids, sessions,
 * timeouts or restarts: the load speaks the worker protocol through it.
 * A reply goes to the connection by its descriptor, so clients are meant
 * to stay connected for the relay's life (a closed one's replies are
 * dropped, and a new connection could reuse its number). */
#ifndef ARBOR_BENCH_RELAY_H
#define ARBOR_BENCH_RELAY_H
#include <sys/types.h>

struct relay;

/* Forks the relay with n workers of argv; returns once it listens. */
struct relay *relay_start(char *const argv[], int n);
pid_t	relay_pid(const struct relay *);
/* Its Unix socket. */
const char *relay_path(const struct relay *);
/* Kills it (its workers go with it) and frees. NULL is fine. */
void	relay_stop(struct relay *);
#endif
