/* io_uring_probe: for the tests of the writes that go out together
 * (proto/uring.c): whether this process may set up an io_uring at all,
 * and a seccomp filter that makes io_uring_setup fail with EPERM, as a
 * container's default profile may, in this process and all it starts
 * from then on (filters cannot be removed). Shared by test_uring,
 * test_batch and test_writes. */
#ifndef ARBOR_TESTS_IO_URING_PROBE_H
#define ARBOR_TESTS_IO_URING_PROBE_H
#include <errno.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline bool
io_uring_allowed(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int fd = (int)syscall(SYS_io_uring_setup, 4, &p);
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

/* 0, or -1 (errno) if the filter could not be set. */
static inline int
io_uring_refuse(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

#endif
