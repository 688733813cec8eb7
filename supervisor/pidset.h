/* pidset: a set of pids, kept sorted (a binary search to find one). For
 * the few sets of processes arbord keeps beside its tree: what strays
 * and the keeper must tell apart, off the request path. */
#ifndef ARBOR_PIDSET_H
#define ARBOR_PIDSET_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct pidset {
	pid_t	*v;
	size_t	 n, cap;
};

bool	pidset_has(const struct pidset *, pid_t);
void	pidset_add(struct pidset *, pid_t);
/* Removes pid; true if it was there. */
bool	pidset_del(struct pidset *, pid_t);
/* Frees what the set holds; it is empty (and usable) afterwards. */
void	pidset_clear(struct pidset *);

#endif
