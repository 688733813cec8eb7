#include "registry/registry.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/xmalloc.h"

/* Open addressing with linear probing; tombstones keep probe chains whole.
 * A slot keeps its name's hash: a probe compares names only when the
 * hashes match, and growing does not hash again. */
struct slot {
	char		*name;		/* NULL: empty; TOMB: deleted */
	uint64_t	 hash;
	enum reg_kind	 kind;
	void		*obj;
};

struct registry {
	uint64_t	 seed;		/* names may come from clients */
	struct slot	*slots;
	size_t		 cap;		/* a power of two */
	size_t		 used;		/* live + tombstones */
	size_t		 live;
};

static char tomb_mark;
#define TOMB (&tomb_mark)

static uint64_t
load64(const char *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
	return w;
}

static uint64_t
load32(const char *p)
{
	uint32_t w;
	memcpy(&w, p, 4);
	return w;
}

/* Eight bytes a step (names are short: "pool/worker.3", session ids),
 * the last step reading the last eight bytes (overlapping the one before;
 * the length is hashed too, so the words still tell names apart); the
 * finalizer carries every byte into the low bits, which pick the slot. */
static uint64_t
hash(const struct registry *r, const char *s)
{
	const uint64_t k = 0x9e3779b97f4a7c15ULL;
	size_t n = strlen(s);
	uint64_t h = r->seed ^ n * k, w;
	if (n > 8) {
		for (size_t i = 0; i < n - 8; i += 8) {
			h = (h ^ load64(s + i)) * k;
			h ^= h >> 32;
		}
		w = load64(s + n - 8);
	} else if (n >= 4) {
		w = load32(s) | load32(s + n - 4) << 32;
	} else {
		w = n == 0 ? 0 : (uint64_t)(unsigned char)s[0] |
		    (uint64_t)(unsigned char)s[n / 2] << 8 |
		    (uint64_t)(unsigned char)s[n - 1] << 16;
	}
	h = (h ^ w) * k;
	h ^= h >> 33;			/* murmur3's finalizer */
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 33);
}

struct registry *
reg_new(void)
{
	struct registry *r = xcalloc(1, sizeof *r);
	r->seed = ((uint64_t)arc4random() << 32) | arc4random();
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
find(const struct registry *r, const char *name, uint64_t h)
{
	size_t mask = r->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct slot *s = &r->slots[i];
		if (s->name == NULL)
			return NULL;
		if (s->hash == h && s->name != TOMB &&
		    strcmp(s->name, name) == 0)
			return s;
	}
}

static void
insert(struct registry *r, char *name, uint64_t h, enum reg_kind kind,
    void *obj)
{
	size_t mask = r->cap - 1;
	size_t i = h & mask;
	while (r->slots[i].name != NULL && r->slots[i].name != TOMB)
		i = (i + 1) & mask;
	if (r->slots[i].name == NULL)
		r->used++;
	r->slots[i] = (struct slot){ name, h, kind, obj };
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
			insert(r, old[i].name, old[i].hash, old[i].kind,
			    old[i].obj);
	free(old);
}

int
reg_add(struct registry *r, const char *name, enum reg_kind kind, void *obj)
{
	uint64_t h = hash(r, name);
	if (find(r, name, h))
		return -1;
	if (2 * (r->used + 1) > r->cap)
		grow(r);
	insert(r, xstrdup(name), h, kind, obj);
	return 0;
}

int
reg_remove(struct registry *r, const char *name)
{
	struct slot *s = find(r, name, hash(r, name));
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
	struct slot *s = find(r, name, hash(r, name));
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
