/* uring: many writes, each to its own descriptor, in one system call (an
 * io_uring of the process's own, set up on first use), beside buf.h's
 * buf_write_fd. arbord's batch.c writes a loop iteration's replies and
 * requests with it: one system call where there was one per peer, and the
 * peers those writes wake run once it returns, not after each write.
 *
 * Each write is tried once and never blocks (RWF_NOWAIT): done says how
 * many bytes went, and 0 covers every case where none did (a full pipe, a
 * peer gone, a descriptor that cannot take such a write). The caller then
 * writes what is left itself, as it would without the ring, and meets the
 * error, if any, there. Where the kernel has no io_uring or refuses it
 * (seccomp, kernel.io_uring_disabled), nothing is written here and the
 * caller writes everything: the ring is an optimisation, never needed. */
#ifndef ARBOR_URING_H
#define ARBOR_URING_H
#include <stdbool.h>
#include <stddef.h>

struct uring_write {
	int		 fd;
	const void	*buf;
	size_t		 len;
	size_t		 done;		/* out: bytes written (0: none) */
};

/* Writes w[0..n), in order. */
void	uring_writes(struct uring_write *w, size_t n);
/* Whether the ring is in use (false before the first uring_writes, and
 * for good once the kernel refused it). */
bool	uring_active(void);
/* Why the ring is not in use, once the kernel refused it (e.g.
 * "no io_uring: Operation not permitted"); NULL before. */
const char *uring_refused(void);
/* Releases the ring (at exit). */
void	uring_close(void);

#endif
