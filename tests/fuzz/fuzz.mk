# Fuzzing (SPEC 7: bad input never crashes arbord). Included by the Makefile
# after its own variables (it uses WARN, LDLIBS, BUILD, obj, the *_SRC lists
# and the archives).
#
#   make fuzz [FUZZ_TIME=60]  each target under libFuzzer with ASan and
#                             UBSan for FUZZ_TIME seconds, on a copy of its
#                             seed corpus in build/fuzz/corpus/<name>
#   make fuzz-replay          the seed corpora through the targets built with
#                             the usual compiler and flags (SAN=1 works too)
#
# Targets: tests/fuzz/fuzz_<name>.c; seeds: tests/fuzz/corpus/<name>/.

FUZZ_TARGETS := frame ctl config jraw worker
FUZZ_TIME    ?= 60
FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -std=gnu11 $(filter-out -Werror,$(WARN)) -MMD -MP -I. -D_GNU_SOURCE

fuzz_obj = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(1))

FUZZ_LIBPROTO  := $(FUZZ_BUILD)/libproto.a
FUZZ_LIBDAEMON := $(FUZZ_BUILD)/libarbord.a
FUZZ_LIBWORKER := $(FUZZ_BUILD)/libworker.a
FUZZ_BINS      := $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_TARGETS))
FUZZ_REPLAY    := $(patsubst %,$(BUILD)/tests/fuzz_replay_%,$(FUZZ_TARGETS))

FUZZ_MAIN_SRC  := $(patsubst %,tests/fuzz/fuzz_%.c,$(FUZZ_TARGETS))

.PHONY: fuzz fuzz-build fuzz-replay
# The targets' objects are built by pattern: keep them between runs.
.SECONDARY: $(call fuzz_obj,$(FUZZ_MAIN_SRC)) $(call obj,$(FUZZ_MAIN_SRC) tests/fuzz/replay.c)

# ---- libFuzzer builds ------------------------------------------------------

$(FUZZ_BUILD)/obj/%.o: %.c | deps-check
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_LIBPROTO): $(call fuzz_obj,$(PROTO_SRC))
	rm -f $@ && ar rcs $@ $^
$(FUZZ_LIBDAEMON): $(call fuzz_obj,$(DAEMON_SRC) $(REG_SRC))
	rm -f $@ && ar rcs $@ $^
$(FUZZ_LIBWORKER): $(call fuzz_obj,$(WLIB_SRC))
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(call fuzz_obj,tests/fuzz/fuzz_%.c) $(FUZZ_LIBDAEMON) $(FUZZ_LIBWORKER) $(FUZZ_LIBPROTO)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ $(LDLIBS)

fuzz-build: deps-check $(FUZZ_BINS)

fuzz: fuzz-build
	@tests/fuzz/run-fuzz $(FUZZ_BUILD) $(FUZZ_TIME) $(FUZZ_TARGETS)

# ---- corpus replay (make test) ---------------------------------------------

$(BUILD)/tests/fuzz_replay_%: $(call obj,tests/fuzz/fuzz_%.c tests/fuzz/replay.c) $(LIBDAEMON) $(LIBWORKER) $(LIBPROTO)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

fuzz-replay: deps-check $(FUZZ_REPLAY)
	@fail=0; for t in $(FUZZ_TARGETS); do \
	  LSAN_OPTIONS=suppressions=tests/fuzz/lsan.supp \
	  $(BUILD)/tests/fuzz_replay_$$t tests/fuzz/corpus/$$t || { \
	    echo "FAILED: fuzz corpus $$t (name the input: $(BUILD)/tests/fuzz_replay_$$t -v tests/fuzz/corpus/$$t)"; \
	    fail=1; }; \
	done; exit $$fail
