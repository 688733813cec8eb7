/* wk: worker processes the benchmark runs itself, without arbord, over
 * pipes: the floor every figure of arbord is compared with. */
#ifndef ARBOR_BENCH_WK_H
#define ARBOR_BENCH_WK_H
#include <sys/types.h>

struct wk {
	pid_t	pid;
	int	rfd;	/* the worker's stdout */
	int	wfd;	/* the worker's stdin */
};

/* Spawns n processes of argv (stderr to /dev/null), writes each its init
 * ping (SPEC 5) as soon as it is forked, and returns once every one has
 * answered it with success. Dies on a failure or after timeout_s. */
void	wk_spawn(char *const argv[], struct wk *w, int n, double timeout_s);
/* SIGKILLs, reaps and closes w[0..n). */
void	wk_stop(struct wk *w, int n);

#endif
