/* spawn_fail.so: makes arbord's worker spawns fail on demand, for the
 * tests of a failed spawn (as root, RLIMIT_NPROC does not hold).
 * Preloaded into arbord (LD_PRELOAD, after the ASan runtime under the
 * sanitizers) with ARBOR_SPAWN_FAIL naming a file the test writes: "N"
 * fails the next N calls of vfork (arbord's process creation, child.c)
 * with EAGAIN; "N pipe" fails instead the second pipe2 of the next N
 * spawns with EMFILE (one pipe of the spawn is made by then, so its
 * cleanup is exercised). The file is read at each call and the count
 * left written back, so a test can let spawns succeed, fail the next
 * ones, and let them succeed again; no file, or 0: nothing fails.
 *
 * A vfork that is not failed is made a fork: a vfork child cannot
 * return through this function's frame, which its parent then needs.
 * arbord's child only makes system calls and execs, so a copy serves it
 * as well. The constructor takes both variables out of the environment,
 * so the workers arbord starts are not preloaded. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char	*path;		/* the control file, or NULL */
static int	 pipes;		/* pipe2 calls since the last vfork */

__attribute__((constructor)) static void
take_env(void)
{
	const char *p = getenv("ARBOR_SPAWN_FAIL");
	if (p != NULL && *p != '\0')
		path = strdup(p);
	unsetenv("ARBOR_SPAWN_FAIL");
	unsetenv("LD_PRELOAD");
}

/* True when a failure of kind what ("vfork", "pipe") is due; counts it. */
static bool
due(const char *what)
{
	char buf[64] = "";
	int fd = path ? open(path, O_RDWR | O_CLOEXEC) : -1;
	if (fd < 0)
		return false;
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	long left = n > 0 ? strtol(buf, NULL, 10) : 0;
	bool pipe_mode = n > 0 && strstr(buf, "pipe") != NULL;
	bool hit = left > 0 && pipe_mode == (strcmp(what, "pipe") == 0);
	if (hit) {
		int len = snprintf(buf, sizeof buf, "%ld%s\n", left - 1,
		    pipe_mode ? " pipe" : "");
		if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) < 0)
			hit = false;
	}
	close(fd);
	return hit;
}

pid_t
vfork(void)
{
	pipes = 0;
	if (due("vfork")) {
		errno = EAGAIN;
		return -1;
	}
	return fork();
}

int
pipe2(int fd[2], int flags)
{
	static int (*real)(int[2], int);
	if (real == NULL)
		real = (int (*)(int[2], int))dlsym(RTLD_NEXT, "pipe2");
	if (++pipes == 2 && due("pipe")) {
		pipes = 0;
		errno = EMFILE;
		return -1;
	}
	return real(fd, flags);
}
