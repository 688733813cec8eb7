#include "registry/registry.h"

#include <stdint.h>
#include <string.h>

#include "proto/xmalloc.h"

/* Open addressing with linear probing; tombstones keep probe chains whole. */
struct slot {
	char		*name;		/* NULL: empty; TOMB: deleted */
	enum reg_kind	 kind;
	void		*obj;
};

struct registry {
	struct slot	*slots;
	size_t		 cap;		/* a power of two */
	size_t		 used;		/* live + tombstones */
	size_t		 live;
};

static char tomb_mark;
#define TOMB (&tomb_mark)

static uint64_t
hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

struct registry *
reg_new(void)
{
	struct registry *r = xcalloc(1, sizeof *r);
	r->cap = 16;
	r->slots = xcalloc(r->cap, sizeof *r->slots);
	return r;
}

void
reg_free(struct registry *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->cap; i++)
		if (r->slots[i].name && r->slots[i].name != TOMB)
			free(r->slots[i].name);
	free(r->slots);
	free(r);
}

/* The slot holding name, or NULL. */
static struct slot *
find(const struct registry *r, const char *name)
{
	size_t mask = r->cap - 1;
	for (size_t i = hash(name) & mask;; i = (i + 1) & mask) {
		struct slot *s = &r->slots[i];
		if (s->name == NULL)
			return NULL;
		if (s->name != TOMB && strcmp(s->name, name) == 0)
			return s;
	}
}

static void
insert(struct registry *r, char *name, enum reg_kind kind, void *obj)
{
	size_t mask = r->cap - 1;
	size_t i = hash(name) & mask;
	while (r->slots[i].name != NULL && r->slots[i].name != TOMB)
		i = (i + 1) & mask;
	if (r->slots[i].name == NULL)
		r->used++;
	r->slots[i] = (struct slot){ name, kind, obj };
	r->live++;
}

/* Rehashes into a table twice the live size (drops tombstones). */
static void
grow(struct registry *r)
{
	struct slot *old = r->slots;
	size_t ocap = r->cap;
	while (r->cap < 4 * (r->live + 1))
		r->cap *= 2;
	r->slots = xcalloc(r->cap, sizeof *r->slots);
	r->used = r->live = 0;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].name && old[i].name != TOMB)
			insert(r, old[i].name, old[i].kind, old[i].obj);
	free(old);
}

int
reg_add(struct registry *r, const char *name, enum reg_kind kind, void *obj)
{
	if (find(r, name))
		return -1;
	if (2 * (r->used + 1) > r->cap)
		grow(r);
	insert(r, xstrdup(name), kind, obj);
	return 0;
}

int
reg_remove(struct registry *r, const char *name)
{
	struct slot *s = find(r, name);
	if (s == NULL)
		return -1;
	free(s->name);
	s->name = TOMB;
	s->obj = NULL;
	r->live--;
	return 0;
}

void *
reg_lookup(const struct registry *r, const char *name, enum reg_kind *kind)
{
	struct slot *s = find(r, name);
	if (s == NULL)
		return NULL;
	if (kind)
		*kind = s->kind;
	return s->obj;
}

size_t
reg_count(const struct registry *r)
{
	return r->live;
}
