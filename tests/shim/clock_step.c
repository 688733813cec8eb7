/* clock_step.so: steps arbord's wall clock on demand, as NTP or an
 * operator's `date -s` steps a machine's, for the tests of what arbord
 * measures (tests/integration/test_clockstep.c). Preloaded into arbord
 * (LD_PRELOAD, after the ASan runtime under the sanitizers) with
 * ARBOR_CLOCK_STEP naming a file the test writes: a number of seconds
 * (negative: back) added to every reading of the wall clock
 * (CLOCK_REALTIME and its coarse form, which libev reads, and
 * gettimeofday). The file is read at each reading; no file, or 0: the
 * true time. The monotonic clock is left alone, as a step leaves it. The
 * constructor takes both variables out of the environment, so the
 * workers arbord starts are not preloaded. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char	*path;		/* the control file, or NULL */

__attribute__((constructor)) static void
take_env(void)
{
	const char *p = getenv("ARBOR_CLOCK_STEP");
	if (p != NULL && *p != '\0')
		path = strdup(p);
	unsetenv("ARBOR_CLOCK_STEP");
	unsetenv("LD_PRELOAD");
}

/* The step the file asks for, in seconds. */
static long
step(void)
{
	char buf[32] = "";
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0)
		return 0;
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : 0;
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	if (real == NULL)
		real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT,
		    "clock_gettime");
	int r = real(id, ts);
	if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		ts->tv_sec += step();
	return r;
}

int
gettimeofday(struct timeval *tv, void *tz)
{
	static int (*real)(struct timeval *, void *);
	if (real == NULL)
		real = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT,
		    "gettimeofday");
	int r = real(tv, tz);
	if (r == 0)
		tv->tv_sec += step();
	return r;
}
