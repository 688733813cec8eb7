/* alloc_count.so: counts a process's heap allocations for the benchmark's
 * "allocs/req" column. Preloaded into arbord (LD_PRELOAD) with
 * ARBOR_ALLOC_COUNT naming a file the benchmark created; the count of
 * malloc, calloc, realloc and the aligned allocators is kept in the first
 * eight bytes of that file, mapped shared, so the benchmark reads it
 * around a measured window without stopping arbord. The allocations are
 * glibc's own (__libc_*): only the count is added.
 *
 * The constructor takes both variables out of the environment, so the
 * workers arbord starts are neither preloaded nor counted. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void	*__libc_malloc(size_t);
extern void	*__libc_calloc(size_t, size_t);
extern void	*__libc_realloc(void *, size_t);
extern void	*__libc_memalign(size_t, size_t);
extern void	*__libc_valloc(size_t);
extern void	*__libc_pvalloc(size_t);

static volatile uint64_t *count;

__attribute__((constructor)) static void
open_count(void)
{
	const char *path = getenv("ARBOR_ALLOC_COUNT");
	if (path != NULL && *path != '\0') {
		int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			void *p = mmap(NULL, sizeof *count, PROT_READ |
			    PROT_WRITE, MAP_SHARED, fd, 0);
			if (p != MAP_FAILED)
				count = p;
			close(fd);
		}
	}
	unsetenv("ARBOR_ALLOC_COUNT");
	unsetenv("LD_PRELOAD");
}

static inline void
counted(void)
{
	if (count != NULL)
		(*count)++;
}

void *
malloc(size_t n)
{
	counted();
	return __libc_malloc(n);
}

void *
calloc(size_t k, size_t n)
{
	counted();
	return __libc_calloc(k, n);
}

void *
realloc(void *p, size_t n)
{
	counted();
	return __libc_realloc(p, n);
}

void *
memalign(size_t align, size_t n)
{
	counted();
	return __libc_memalign(align, n);
}

void *
aligned_alloc(size_t align, size_t n)
{
	counted();
	return __libc_memalign(align, n);
}

int
posix_memalign(void **out, size_t align, size_t n)
{
	if (align < sizeof(void *) || (align & (align - 1)) != 0)
		return EINVAL;
	counted();
	void *p = __libc_memalign(align, n);
	if (p == NULL && n != 0)
		return ENOMEM;
	*out = p;
	return 0;
}

void *
valloc(size_t n)
{
	counted();
	return __libc_valloc(n);
}

void *
pvalloc(size_t n)
{
	counted();
	return __libc_pvalloc(n);
}
