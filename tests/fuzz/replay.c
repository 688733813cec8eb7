/* replay: a main for a fuzz target without libFuzzer. Runs
 * LLVMFuzzerTestOneInput once over every regular file of the directories
 * (or the files) named on the command line, in name order, so a seed corpus
 * is a regression test built with the project's usual compiler and flags.
 * A crash or a failed check ends the run non-zero; -v names each input
 * before it runs, to tell which one it was.
 *
 *   fuzz_replay_<name> [-v] DIR|FILE...
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/xmalloc.h"
#include "tests/fuzz/fuzz.h"

static bool verbose;

/* The whole file in an allocation of exactly its size, so that the
 * sanitizers see a read past the input's end. */
static uint8_t *
slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		FUZZ_DIE("%s: %s", path, strerror(errno));
	size_t cap = 4096, n = 0;
	uint8_t *p = xmalloc(cap);
	size_t r;
	while ((r = fread(p + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap)
			p = xrealloc(p, cap *= 2);
	}
	if (ferror(f))
		FUZZ_DIE("%s: read error", path);
	fclose(f);
	uint8_t *exact = xmalloc(n ? n : 1);
	memcpy(exact, p, n);
	free(p);
	*size = n;
	return exact;
}

static void
run_file(const char *path)
{
	size_t size;
	uint8_t *data = slurp(path, &size);
	if (verbose)
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
	LLVMFuzzerTestOneInput(data, size);
	free(data);
}

static int
not_hidden(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Runs every regular file of dir; returns how many. */
static size_t
run_dir(const char *dir)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, not_hidden, alphasort);
	if (n < 0)
		FUZZ_DIE("%s: %s", dir, strerror(errno));
	size_t ran = 0;
	for (int i = 0; i < n; i++) {
		char *path = xasprintf("%s/%s", dir, ents[i]->d_name);
		struct stat st;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			run_file(path);
			ran++;
		}
		free(path);
		free(ents[i]);
	}
	free(ents);
	return ran;
}

int
main(int argc, char **argv)
{
	size_t total = 0;
	int i = 1;
	if (i < argc && strcmp(argv[i], "-v") == 0) {
		verbose = true;
		i++;
	}
	if (i == argc) {
		fprintf(stderr, "usage: %s [-v] DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0)
			FUZZ_DIE("%s: %s", argv[i], strerror(errno));
		if (S_ISDIR(st.st_mode)) {
			total += run_dir(argv[i]);
		} else {
			run_file(argv[i]);
			total++;
		}
	}
	printf("%s: %zu inputs replayed\n", argv[0], total);
	return total > 0 ? 0 : 1;	/* an empty corpus tests nothing */
}
