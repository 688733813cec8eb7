# The benchmark (tools/bench): `make bench` builds build/bench and runs it.
# Included by the top-level Makefile after its variables (BUILD, obj,
# LIBPROTO, BINS, CC, LDFLAGS, LDLIBS) are defined.
#   BENCH_QUICK=1 make bench     one short run of everything
# See tools/bench/bench.c for the other BENCH_* settings.

BENCH_SRC := $(wildcard tools/bench/*.c)
BENCH_OBJ := $(call obj,$(BENCH_SRC))

$(BUILD)/bench: $(BENCH_OBJ) $(LIBPROTO)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lm

bench: deps-check bench-deps $(BINS) $(BUILD)/bench $(BUILD)/alloc_count.so
	@$(BUILD)/bench $(BUILD)

# What only the benchmark uses: valgrind (section 1c) and escript (the
# BEAM port pool of section 1). Installed as the test packages are; where
# they cannot be, the benchmark leaves those rows out and says so.
BENCH_PKGS := valgrind erlang-base
bench-deps:
	@$(MAKE) --no-print-directory deps DEBIAN_PKGS="$(BENCH_PKGS)" \
	  || echo "bench: going on without:$(BENCH_PKGS)"

# Preloaded into the arbords the benchmark starts, to count their heap
# allocations (the "arbord allocs/req" column).
$(BUILD)/alloc_count.so: tools/bench/shim/alloc_count.c
	$(CC) -O2 -g -Wall -Wextra -Werror -fPIC -shared -o $@ $<
