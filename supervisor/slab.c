#include "supervisor/slab.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "proto/xmalloc.h"

#define SLAB_KEEP	512	/* free blocks per class slab_trim() leaves */
#define SLAB_HDR	16	/* keeps the user block 16-byte aligned */
#define BIG		0xff	/* class of a block from plain malloc */

static const size_t class_size[] = { 16, 32, 48, 64, 96, 128, 192, 256, 384, 512,
    1024, 2048 };
#define NCLASS	(sizeof class_size / sizeof class_size[0])

struct free_block {
	struct free_block *next;
};

static struct free_block *free_list[NCLASS];
static unsigned nfree[NCLASS];
static unsigned low[NCLASS];	/* fewest free blocks since the last trim */
static void (*surplus_fn)(void);
static bool surplus_told;	/* surplus_fn called, no trim since found none */

static unsigned
class_of(size_t n)
{
	for (unsigned i = 0; i < NCLASS; i++)
		if (n <= class_size[i])
			return i;
	return BIG;
}

void *
slab_alloc(size_t n)
{
	unsigned c = class_of(n);
	unsigned char *p;
	if (c != BIG && free_list[c]) {
		p = (unsigned char *)free_list[c] - SLAB_HDR;
		free_list[c] = free_list[c]->next;
		if (--nfree[c] < low[c])
			low[c] = nfree[c];
	} else {
		p = xmalloc(SLAB_HDR + (c == BIG ? n : class_size[c]));
	}
	p[0] = (unsigned char)c;
	return p + SLAB_HDR;
}

void
slab_free(void *ptr)
{
	if (ptr == NULL)
		return;
	unsigned char *p = (unsigned char *)ptr - SLAB_HDR;
	unsigned c = p[0];
	if (c == BIG) {
		free(p);
		return;
	}
	struct free_block *b = ptr;
	b->next = free_list[c];
	free_list[c] = b;
	if (++nfree[c] > SLAB_KEEP && !surplus_told && surplus_fn != NULL) {
		surplus_told = true;
		surplus_fn();
	}
}

void
slab_on_surplus(void (*fn)(void))
{
	surplus_fn = fn;
}

bool
slab_trim(void)
{
	bool more = false;
	for (unsigned c = 0; c < NCLASS; c++) {
		unsigned idle = low[c];
		if (nfree[c] < SLAB_KEEP + idle)
			idle = nfree[c] > SLAB_KEEP ? nfree[c] - SLAB_KEEP : 0;
		for (; idle > 0; idle--) {
			struct free_block *b = free_list[c];
			free_list[c] = b->next;
			nfree[c]--;
			free((unsigned char *)b - SLAB_HDR);
		}
		low[c] = nfree[c];
		more |= nfree[c] > SLAB_KEEP;
	}
	if (!more)
		surplus_told = false;
	return more;
}

void
slab_release(void)
{
	for (unsigned c = 0; c < NCLASS; c++) {
		struct free_block *b;
		while ((b = free_list[c]) != NULL) {
			free_list[c] = b->next;
			free((unsigned char *)b - SLAB_HDR);
		}
		nfree[c] = low[c] = 0;
	}
	surplus_told = false;
}

size_t
slab_cached(void)
{
	size_t n = 0;
	for (unsigned c = 0; c < NCLASS; c++)
		n += nfree[c];
	return n;
}

char *
slab_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(slab_alloc(n), s, n);
}

void
slab_use_for_json(void)
{
#if !defined(__SANITIZE_ADDRESS__)
	json_set_alloc_funcs(slab_alloc, slab_free);
#endif
}
