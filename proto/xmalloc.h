/* xmalloc: allocation that cannot fail (it aborts the process on ENOMEM). */
#ifndef ARBOR_XMALLOC_H
#define ARBOR_XMALLOC_H
#include <stddef.h>
#include <stdlib.h>

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
char	*xstrdup(const char *);
char	*xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));

#endif
