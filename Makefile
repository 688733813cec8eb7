# arbor: a supervisor for pools of worker processes.
#   make            build build/arbord, build/arborctl, build/mock_worker
#   make test       unit + integration tests (installs missing packages first)
#   make run        run arbord in the foreground, dev environment
#   make SAN=1 ...  the same with ASan + UBSan
#   make bench      benchmarks (tools/bench)
#   make install    binaries, worker runtime, config (see "make install" below)
#   make uninstall  removes them again (a changed config stays)

CC      ?= cc
BUILD   ?= build
DEBIAN_PKGS := libev-dev libjansson-dev libconfig-dev libcmocka-dev python3 pkg-config

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 $(WARN) -MMD -MP -I. -D_GNU_SOURCE
LDLIBS  := -lev -ljansson -lconfig

ifeq ($(SAN),1)
export ARBOR_SAN := 1
BUILD   := build/san
CFLAGS  += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

PROTO_SRC  := $(wildcard proto/*.c)
REG_SRC    := $(wildcard registry/*.c)
DAEMON_SRC := $(filter-out supervisor/main.c,$(wildcard supervisor/*.c))
WLIB_SRC   := $(wildcard workers/libworker/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
ITEST_SRC  := $(wildcard tests/integration/test_*.c)
ILIB_SRC   := $(filter-out $(ITEST_SRC),$(wildcard tests/integration/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

PROTO_OBJ  := $(call obj,$(PROTO_SRC))
REG_OBJ    := $(call obj,$(REG_SRC))
DAEMON_OBJ := $(call obj,$(DAEMON_SRC))
WLIB_OBJ   := $(call obj,$(WLIB_SRC))
ILIB_OBJ   := $(call obj,$(ILIB_SRC))
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
ITEST_BIN  := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(ITEST_SRC))

BINS := $(BUILD)/arbord $(BUILD)/arborctl $(BUILD)/mock_worker

# Archives: a program links only the objects it uses.
LIBPROTO  := $(BUILD)/libproto.a
LIBDAEMON := $(BUILD)/libarbord.a
LIBWORKER := $(BUILD)/libworker.a

.PHONY: all test unit integration test-python run deps deps-check clean install uninstall install-check bench bench-deps FORCE
all: deps-check $(BINS)

# Headers come from the packages: with -j, nothing compiles before the
# package step has run (the full check for the goals that run things,
# the quick one for a plain build).
ifneq ($(filter test unit integration test-python run,$(MAKECMDGOALS)),)
PKG_STEP := deps
else
PKG_STEP := deps-check
endif

$(BUILD)/obj/%.o: %.c | $(PKG_STEP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIBPROTO): $(PROTO_OBJ)
	rm -f $@ && ar rcs $@ $^
$(LIBDAEMON): $(DAEMON_OBJ) $(REG_OBJ)
	rm -f $@ && ar rcs $@ $^
$(LIBWORKER): $(WLIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/arbord: $(call obj,supervisor/main.c) $(LIBDAEMON) $(LIBPROTO)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# arborctl reads the config file to find the socket: config.o, nothing else
# of the daemon.
$(BUILD)/arborctl: $(call obj,tools/arborctl.c) $(call obj,supervisor/config.c) $(LIBPROTO)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# mock_worker is a static PIE (but under the sanitizers, which need the
# dynamic loader): with no shared libraries to map and relocate, it is
# spawned, started and gone in about 0.75 ms here against 1.1 ms, so a
# restart measures arbord rather than ld.so. It uses jansson only.
ifneq ($(SAN),1)
MOCK_LDFLAGS := -static-pie
endif
$(BUILD)/mock_worker: $(call obj,workers/mock_worker.c) $(LIBWORKER) $(LIBPROTO)
	$(CC) $(LDFLAGS) $(MOCK_LDFLAGS) -o $@ $^ -ljansson

$(BUILD)/tests/test_%: $(call obj,tests/unit/test_%.c) $(call obj,tests/unit/evwait.c) $(LIBDAEMON) $(LIBWORKER) $(LIBPROTO)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# test_allocs counts arbord's allocation calls by wrapping them.
$(BUILD)/tests/test_allocs: private LDFLAGS += -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=vasprintf

$(BUILD)/tests/test_%: $(call obj,tests/integration/test_%.c) $(ILIB_OBJ) $(LIBPROTO)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# Preloaded into arbord by the tests of a failed spawn (tests/shim). Plain
# C without the sanitizers: under SAN=1 the tests preload it after the
# ASan runtime.
SPAWN_SHIM := $(BUILD)/tests/spawn_fail.so
$(SPAWN_SHIM): tests/shim/spawn_fail.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl
# The same for the tests of a step of the wall clock.
CLOCK_SHIM := $(BUILD)/tests/clock_step.so
$(CLOCK_SHIM): tests/shim/clock_step.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl
$(ITEST_BIN): | $(SPAWN_SHIM) $(CLOCK_SHIM)

# Installs what a fresh Debian machine lacks (as root), else says what to run.
deps:
	@missing=""; for p in $(DEBIAN_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else echo "missing packages; run: sudo apt-get install$$missing"; exit 1; fi; fi

deps-check:
	@test -f /usr/include/ev.h -a -f /usr/include/jansson.h -a -f /usr/include/libconfig.h -a -f /usr/include/cmocka.h \
	  || $(MAKE) --no-print-directory deps

unit: deps $(BINS) $(UNIT_BIN)
	@ARBOR_BUILD=$(abspath $(BUILD)) tests/run-unit $(UNIT_BIN)

integration: deps $(BINS) $(ITEST_BIN)
	@ARBOR_BUILD=$(abspath $(BUILD)) tests/run-integration $(ITEST_BIN)

# TEST_MODE=mock_adapter|bridge_mock|full_integration make test runs that
# test layer alone (tests/integration/test_layers.c); unset, everything.
ifeq ($(TEST_MODE),)
test: deps $(BINS) $(UNIT_BIN) $(ITEST_BIN) fuzz-replay
	@ARBOR_BUILD=$(abspath $(BUILD)) tests/run-unit $(UNIT_BIN)
	@ARBOR_BUILD=$(abspath $(BUILD)) tests/run-integration $(ITEST_BIN)
	@$(MAKE) --no-print-directory test-python
	@$(MAKE) --no-print-directory install-check
else
test: deps $(BINS) $(BUILD)/tests/test_layers
	@ARBOR_BUILD=$(abspath $(BUILD)) tests/run-integration $(BUILD)/tests/test_layers
endif

test-python:
	@cd workers/python && python3 -m unittest -q

# make install / uninstall into a temp dir, and the installed arbord run.
install-check: $(BINS)
	@MAKE="$(MAKE)" tests/install-check

run: deps $(BINS)
	$(BUILD)/arbord -c conf/arbor.conf -e dev

# make install [DESTDIR=staging] [PREFIX=/usr/local] [BINDIR=] [LIBDIR=]
# [SYSCONFDIR=/etc] [RUNSTATEDIR=/run]: arbord and arborctl into BINDIR;
# mock_worker and the Python SDK + bridge worker into LIBDIR/arbor (arbord
# finds mock_worker there, see below); the config,
# generated from conf/arbor.conf with the installed worker and a socket in
# RUNSTATEDIR/arbor, into SYSCONFDIR/arbor unless one is there already.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
LIBDIR      ?= $(PREFIX)/lib
SYSCONFDIR  ?= /etc
RUNSTATEDIR ?= /run
PKGLIBDIR   := $(LIBDIR)/arbor
PY_RUNTIME  := workers/python/arbor_worker.py workers/python/bridge_worker.py
INST_CONF   := $(DESTDIR)$(SYSCONFDIR)/arbor/arbor.conf
GEN_CONF    := $(BUILD)/arbor.conf.install

# arbord runs mock_worker from its own directory when it is there (build/),
# else from PKGLIBDIR, compiled in. The value is kept in a file rewritten
# only when it changes, so that main.o is rebuilt then: `make install
# LIBDIR=...` after a plain `make` installs an arbord that looks there.
PKGLIBDIR_STAMP := $(BUILD)/pkglibdir
$(PKGLIBDIR_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(PKGLIBDIR)' | cmp -s - $@ || echo '$(PKGLIBDIR)' > $@
$(call obj,supervisor/main.c): $(PKGLIBDIR_STAMP)
$(call obj,supervisor/main.c): CFLAGS += -DARBOR_PKGLIBDIR='"$(PKGLIBDIR)"'

# The installed config: conf/arbor.conf with the worker command and the
# socket made absolute, checked to have changed both.
define gen_conf
	@mkdir -p $(BUILD)
	sed -e 's|"\.\./workers/python/bridge_worker\.py"|"$(PKGLIBDIR)/python/bridge_worker.py"|' \
	    -e 's|socket = "\.\./run/arbor\.sock"|socket = "$(RUNSTATEDIR)/arbor/arbor.sock"|' \
	    conf/arbor.conf > $(GEN_CONF)
	@grep -q '"$(PKGLIBDIR)/python/bridge_worker.py"' $(GEN_CONF) && \
	  grep -q 'socket = "$(RUNSTATEDIR)/arbor/arbor.sock"' $(GEN_CONF) || \
	  { echo "conf/arbor.conf: worker.command or control.socket not as make install expects"; exit 1; }
endef

install: $(BINS)
	$(gen_conf)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PKGLIBDIR)/python $(dir $(INST_CONF))
	install -m 755 $(BUILD)/arbord $(BUILD)/arborctl $(DESTDIR)$(BINDIR)/
	install -m 755 $(BUILD)/mock_worker $(DESTDIR)$(PKGLIBDIR)/
	install -m 644 $(PY_RUNTIME) $(DESTDIR)$(PKGLIBDIR)/python/
	@if [ ! -e $(INST_CONF) ]; then install -m 644 $(GEN_CONF) $(INST_CONF) && echo "installed $(INST_CONF)"; \
	elif cmp -s $(GEN_CONF) $(INST_CONF); then echo "$(INST_CONF) is up to date"; \
	else echo "kept $(INST_CONF) (it exists and differs; the default is $(abspath $(GEN_CONF)))"; fi

# Removes what install put; the config only if it is still the one install
# writes (a changed one is kept, and named).
uninstall:
	$(gen_conf)
	rm -f $(DESTDIR)$(BINDIR)/arbord $(DESTDIR)$(BINDIR)/arborctl $(DESTDIR)$(PKGLIBDIR)/mock_worker
	rm -f $(addprefix $(DESTDIR)$(PKGLIBDIR)/python/,$(notdir $(PY_RUNTIME)))
	rm -rf $(DESTDIR)$(PKGLIBDIR)/python/__pycache__
	rmdir $(DESTDIR)$(PKGLIBDIR)/python $(DESTDIR)$(PKGLIBDIR) $(DESTDIR)$(RUNSTATEDIR)/arbor 2>/dev/null || true
	@if cmp -s $(GEN_CONF) $(INST_CONF); then rm -f $(INST_CONF); rmdir $(dir $(INST_CONF)) 2>/dev/null; \
	elif [ -e $(INST_CONF) ]; then echo "kept $(INST_CONF) (changed since install)"; fi; true

clean:
	rm -rf build

include tools/bench/bench.mk
include tests/fuzz/fuzz.mk

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
