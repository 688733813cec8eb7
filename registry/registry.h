/* registry: name -> node of the supervision tree ("pool/worker.3" -> the
 * child). O(1) lookup by full name. The registry borrows the objects it
 * maps and knows nothing of processes; their owners add and remove them. */
#ifndef ARBOR_REGISTRY_H
#define ARBOR_REGISTRY_H
#include <stddef.h>

enum reg_kind { REG_ROOT, REG_SUPERVISOR, REG_WORKER };

struct registry;

struct registry *reg_new(void);
void	reg_free(struct registry *);	/* frees the table, not the objects */

/* 0, or -1 if the name is taken (a restarted child keeps its entry). */
int	reg_add(struct registry *, const char *name, enum reg_kind, void *obj);
/* 0, or -1 if the name is not there. */
int	reg_remove(struct registry *, const char *name);
/* The object mapped to name (borrowed) and its kind, or NULL. */
void	*reg_lookup(const struct registry *, const char *name, enum reg_kind *);
size_t	reg_count(const struct registry *);

#endif
