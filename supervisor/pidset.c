#include "supervisor/pidset.h"

#include <stdlib.h>
#include <string.h>

#include "proto/xmalloc.h"

/* Where pid is, or would be inserted, in s. */
static size_t
find(const struct pidset *s, pid_t pid)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->v[mid] < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool
pidset_has(const struct pidset *s, pid_t pid)
{
	size_t i = find(s, pid);
	return i < s->n && s->v[i] == pid;
}

void
pidset_add(struct pidset *s, pid_t pid)
{
	size_t i = find(s, pid);
	if (i < s->n && s->v[i] == pid)
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->v = xrealloc(s->v, s->cap * sizeof *s->v);
	}
	memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof *s->v);
	s->v[i] = pid;
	s->n++;
}

bool
pidset_del(struct pidset *s, pid_t pid)
{
	size_t i = find(s, pid);
	if (i == s->n || s->v[i] != pid)
		return false;
	memmove(s->v + i, s->v + i + 1, (s->n - i - 1) * sizeof *s->v);
	s->n--;
	return true;
}

void
pidset_clear(struct pidset *s)
{
	free(s->v);
	*s = (struct pidset){ 0 };
}
