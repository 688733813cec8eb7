/* slab: free lists by size class for the small, short-lived blocks of the
 * request path (JSON values, jobs). In steady state a request reuses the
 * blocks the previous one freed instead of calling malloc, however many
 * requests are in flight: a freed block always goes back on its list.
 * slab_trim(), called periodically while there is a surplus, gives back to malloc the blocks that
 * stayed free the whole time since the last call (beyond SLAB_KEEP per
 * class), so memory follows the recent peak of use, not the highest ever.
 * Sanitizer builds bypass jansson's use of it, so that ASan still sees
 * every use after free of a JSON value. */
#ifndef ARBOR_SLAB_H
#define ARBOR_SLAB_H
#include <stdbool.h>
#include <stddef.h>

void	*slab_alloc(size_t);		/* never NULL (xmalloc semantics) */
void	 slab_free(void *);		/* NULL ok */
char	*slab_strdup(const char *);
/* Frees the blocks left unused since the last call (see above); true
 * while some class still holds more than SLAB_KEEP free blocks, so that
 * another call later may give more back. */
bool	 slab_trim(void);
/* fn is called when a class first holds more than SLAB_KEEP free blocks,
 * and then not again until slab_trim() has returned false: the caller
 * runs the periodic trim only while there is something to trim, and an
 * idle daemon is not woken for it. */
void	 slab_on_surplus(void (*fn)(void));
/* Frees every block held (at exit, so that leak checkers see none). */
void	 slab_release(void);
/* Free blocks held, all classes together. */
size_t	 slab_cached(void);
/* Routes jansson's allocations through the slab. */
void	 slab_use_for_json(void);

#endif
