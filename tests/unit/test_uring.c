/* Unit tests for supervisor/uring.c against real pipes and sockets: many
 * writes in one call (more than one ring's worth), a full pipe and a
 * short write, a reader gone, a bad descriptor; and, in a child whose
 * io_uring_setup a seccomp filter refuses, that nothing is written and
 * the callers are left to write (the fallback); in one out of
 * descriptors, that the set-up is tried again later. Where this kernel has no
 * io_uring at all, only the fallback's expectations hold, and the tests
 * check those. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/uring.h"
#include "tests/io_uring_probe.h"

#define NPIPES	150	/* more than one ring (64 entries) takes */

static bool kernel_has_ring;

/* What a write should report: all of it, or nothing where the caller is
 * to write it itself. */
static size_t
expect(size_t len)
{
	return kernel_has_ring ? len : 0;
}

static void
make_pipe(int p[2])
{
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
}

static void
read_back(int fd, const char *want, size_t len)
{
	char got[4096];
	assert_true(len <= sizeof got);
	assert_int_equal(read(fd, got, sizeof got), (ssize_t)len);
	assert_memory_equal(got, want, len);
}

static void
test_many(void **state)
{
	static int p[NPIPES][2];
	static char text[NPIPES][32];
	static struct uring_write w[NPIPES];
	for (int i = 0; i < NPIPES; i++) {
		make_pipe(p[i]);
		int n = snprintf(text[i], sizeof text[i], "frame %d of pipe %d",
		    i * 7, i);
		w[i] = (struct uring_write){ .fd = p[i][1], .buf = text[i],
		    .len = (size_t)n };
	}
	uring_writes(w, NPIPES);
	assert_int_equal(uring_active(), kernel_has_ring);
	assert_int_equal(uring_refused() == NULL, kernel_has_ring);
	for (int i = 0; i < NPIPES; i++) {
		assert_int_equal(w[i].done, expect(w[i].len));
		if (w[i].done > 0)
			read_back(p[i][0], text[i], w[i].len);
		close(p[i][0]);
		close(p[i][1]);
	}
}

/* A full pipe takes nothing and a nearly full one what fits, without
 * blocking; the write beside them goes whole. */
static void
test_full_and_short(void **state)
{
	int full[2], small[2], ok[2];
	make_pipe(full);
	make_pipe(small);
	make_pipe(ok);
	static char fill[65536];
	while (write(full[1], fill, sizeof fill) > 0)
		;
	assert_int_equal(errno, EAGAIN);
	int cap = fcntl(small[1], F_SETPIPE_SZ, 4096);
	assert_int_equal(cap, 4096);
	static char big[10000];
	memset(big, 'b', sizeof big);
	struct uring_write w[] = {
		{ .fd = full[1], .buf = "x", .len = 1 },
		{ .fd = small[1], .buf = big, .len = sizeof big },
		{ .fd = ok[1], .buf = "whole", .len = 5 },
	};
	uring_writes(w, 3);
	assert_int_equal(w[0].done, 0);
	assert_int_equal(w[1].done, expect(4096));
	assert_int_equal(w[2].done, expect(5));
	if (kernel_has_ring)
		read_back(ok[0], "whole", 5);
	for (int i = 0; i < 2; i++) {
		close(full[i]);
		close(small[i]);
		close(ok[i]);
	}
}

/* A reader gone and a closed descriptor: nothing written, so the caller's
 * own write meets EPIPE or EBADF; the ring stays in use. */
static void
test_errors_leave_it_to_the_caller(void **state)
{
	int gone[2], ok[2], bad[2];
	make_pipe(gone);
	make_pipe(ok);
	make_pipe(bad);
	close(gone[0]);
	close(bad[1]);
	struct uring_write w[] = {
		{ .fd = gone[1], .buf = "lost", .len = 4 },
		{ .fd = ok[1], .buf = "kept", .len = 4 },
		{ .fd = bad[1], .buf = "none", .len = 4 },
	};
	uring_writes(w, 3);
	assert_int_equal(w[0].done, 0);
	assert_int_equal(w[1].done, expect(4));
	assert_int_equal(w[2].done, 0);
	assert_int_equal(uring_active(), kernel_has_ring);
	assert_int_equal(write(gone[1], "lost", 4), -1);
	assert_int_equal(errno, EPIPE);
	close(gone[1]);
	close(ok[0]);
	close(ok[1]);
	close(bad[0]);
}

static void
test_socket(void **state)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv), 0);
	struct uring_write w[] = {
		{ .fd = sv[0], .buf = "\0\0\0\2{}", .len = 6 },
		{ .fd = sv[1], .buf = "reply", .len = 5 },
	};
	uring_writes(w, 2);
	assert_int_equal(w[0].done, expect(6));
	assert_int_equal(w[1].done, expect(5));
	if (kernel_has_ring) {
		read_back(sv[1], "\0\0\0\2{}", 6);
		read_back(sv[0], "reply", 5);
	}
	close(sv[0]);
	close(sv[1]);
}

/* Closed, the ring is set up again by the next call. */
static void
test_close_and_again(void **state)
{
	int p[2];
	make_pipe(p);
	uring_close();
	assert_false(uring_active());
	struct uring_write w = { .fd = p[1], .buf = "again", .len = 5 };
	uring_writes(&w, 1);
	assert_int_equal(w.done, expect(5));
	assert_int_equal(uring_active(), kernel_has_ring);
	close(p[0]);
	close(p[1]);
}

/* In the child: every write reports nothing done, again and again, and
 * the data is still the caller's to write. Exit 0 if so. */
static int
child_refused(void)
{
	uring_close();
	if (io_uring_refuse() < 0)
		return 10;
	int p[2];
	if (pipe2(p, O_NONBLOCK) < 0)
		return 11;
	for (int round = 0; round < 3; round++) {
		struct uring_write w[2] = {
			{ .fd = p[1], .buf = "ab", .len = 2 },
			{ .fd = p[1], .buf = "cd", .len = 2 },
		};
		uring_writes(w, 2);
		if (w[0].done != 0 || w[1].done != 0 || uring_active())
			return 12;
	}
	char c;
	if (read(p[0], &c, 1) != -1 || errno != EAGAIN)
		return 13;	/* the ring wrote after all */
	const char *why = uring_refused();
	if (why == NULL || strstr(why, strerror(EPERM)) == NULL)
		return 14;	/* arbord's debug line says why */
	return 0;
}

/* In the child: out of descriptors, the set-up fails but is not given
 * up; once descriptors are free again, the ring comes. Exit 0 if so. */
static int
child_out_of_fds(void)
{
	uring_close();
	int p[2];
	if (pipe2(p, O_NONBLOCK) < 0)
		return 20;
	struct rlimit was, none = { 0, 0 };
	getrlimit(RLIMIT_NOFILE, &was);
	none.rlim_max = was.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &none) < 0)
		return 21;
	struct uring_write w[2] = {
		{ .fd = p[1], .buf = "ab", .len = 2 },
		{ .fd = p[1], .buf = "cd", .len = 2 },
	};
	uring_writes(w, 2);
	if (w[0].done != 0 || uring_active() || uring_refused() != NULL)
		return 22;	/* given up for good, or written */
	setrlimit(RLIMIT_NOFILE, &was);
	uring_writes(w, 2);
	if (w[0].done != 2 || w[1].done != 2 || !uring_active())
		return 23;
	return 0;
}

/* Runs fn in a child (its limits and filters stay there); fails the test
 * unless it exits 0. */
static void
in_child(int (*fn)(void))
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void
test_out_of_fds_tried_again(void **state)
{
	if (!kernel_has_ring)
		return;		/* the fallback is test_refused_falls_back's */
	in_child(child_out_of_fds);
}

static void
test_refused_falls_back(void **state)
{
	in_child(child_refused);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);	/* as arbord does */
	kernel_has_ring = io_uring_allowed();
	if (!kernel_has_ring)
		fprintf(stderr, "uring: this kernel refuses io_uring: the "
		    "tests check the fallback only\n");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_full_and_short),
		cmocka_unit_test(test_errors_leave_it_to_the_caller),
		cmocka_unit_test(test_socket),
		cmocka_unit_test(test_close_and_again),
		cmocka_unit_test(test_out_of_fds_tried_again),
		cmocka_unit_test(test_refused_falls_back),
	};
	int rc = cmocka_run_group_tests_name("uring", tests, NULL, NULL);
	uring_close();
	return rc;
}
