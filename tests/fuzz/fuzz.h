/* fuzz: what every fuzz target shares. Each tests/fuzz/fuzz_<name>.c
 * defines LLVMFuzzerTestOneInput and is built twice: with clang
 * -fsanitize=fuzzer, where libFuzzer supplies main (`make fuzz`), and with
 * replay.c as main, which runs the seed corpus as a regression test
 * (`make fuzz-replay`). A target sets itself up on its first input, so
 * both mains work without LLVMFuzzerInitialize. */
#ifndef ARBOR_FUZZ_H
#define ARBOR_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs one input; returns 0 (libFuzzer reserves other values). A broken
 * invariant aborts, which both mains report as a crash. */
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: a failure is a finding. */
#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: %s: check failed: %s\n",	\
		    __FILE__, __LINE__, __func__, #cond);		\
		abort();						\
	}								\
} while (0)

/* The harness itself cannot run (no temp dir, no socket): not a finding
 * about the input, but nothing else can be tested either. */
#define FUZZ_DIE(...) do {						\
	fprintf(stderr, "fuzz: " __VA_ARGS__);				\
	fputc('\n', stderr);						\
	exit(2);							\
} while (0)

#endif
