#include "supervisor/slab.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "proto/xmalloc.h"

#define SLAB_KEEP	512	/* free blocks kept per class */
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
		nfree[c]--;
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
	if (c == BIG || nfree[c] >= SLAB_KEEP) {
		free(p);
		return;
	}
	struct free_block *b = ptr;
	b->next = free_list[c];
	free_list[c] = b;
	nfree[c]++;
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
