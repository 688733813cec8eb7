/* slab: free lists by size class for the small, short-lived blocks of the
 * request path (JSON values, jobs). In steady state a request reuses the
 * blocks the previous one freed instead of calling malloc. Each class keeps
 * at most SLAB_KEEP free blocks, so idle memory stays bounded. Sanitizer
 * builds bypass it, so that ASan still sees every use after free. */
#ifndef ARBOR_SLAB_H
#define ARBOR_SLAB_H
#include <stddef.h>

void	*slab_alloc(size_t);		/* never NULL (xmalloc semantics) */
void	 slab_free(void *);		/* NULL ok */
char	*slab_strdup(const char *);
/* Routes jansson's allocations through the slab. */
void	 slab_use_for_json(void);

#endif
