# SPDX-License-Identifier: MIT
# winnow: non-recursive build. Objects and binaries live under build/ (build/san/ for a
# sanitizer build); automatic header dependencies; -j friendly.
#
#   make deps      install Debian packages, build winnow's FAISS library (build/faiss/lib/);
#                  its AVX2 build goes on in the background (make deps-wait waits for it)
#   make           build build/winnowd
#   make run       start winnowd on 127.0.0.1:8080 (LISTEN=...) with its data in ./var
#   make test      the layer check, unit and integration tests; ends with "N passed, N failed"
#   make test SANITIZE=address,undefined
#   make bench     the benchmarks in bench/ (not part of make test)
#   make test-slurm  deploy/slurm/ on a throw-away single-node Slurm (scripts/slurm-deps.sh, root;
#                  not part of make test)
#   make lint-openapi  Redocly's recommended rules over api/openapi.json (npm, network; not in make test)

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
CFLAGS  ?= -O2 -g
WERROR  ?= 1
SANITIZE ?=
PYTHON  ?= /usr/bin/python3

BUILD := build
ifneq ($(SANITIZE),)
OUT := $(BUILD)/san
else
OUT := $(BUILD)
endif

DEPS_STAMP := $(BUILD)/deps.stamp
# FAISS: one shared library in two builds (scripts/deps.sh): the generic one here and the AVX2
# one in glibc-hwcaps/x86-64-v3/, which glibc's loader maps instead on a CPU that has AVX2.
FAISS_LIB  := $(BUILD)/faiss/lib
FAISS_SO   := $(FAISS_LIB)/libwinnow_faiss.so
FAISS_AVX2 := $(FAISS_LIB)/glibc-hwcaps/x86-64-v3/libwinnow_faiss.so
LIBDIR     ?= $(PREFIX)/lib/winnow

WARN := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -Wformat=2 -Wvla -fno-common
ifeq ($(WERROR),1)
WARN += -Werror
endif
PROJ_CPPFLAGS := -D_GNU_SOURCE -I. -MMD -MP
SAN_FLAGS := $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all)

LIBS_BASE := -lmicrohttpd -lgnutls -ljansson -llmdb -lcurl \
        -L$(FAISS_LIB) -lwinnow_faiss -lopenblas -lgomp -lpthread -lm
# programs run from the tree find the library in build/faiss/lib; installed ones next to them
LIBS := $(LIBS_BASE) -Wl,-rpath,$(abspath $(FAISS_LIB))
INSTALL_LIBS := $(LIBS_BASE) -Wl,-rpath,'$$ORIGIN/../lib/winnow'

# Every module but main.c goes into the library that the daemon, tests and benches link.
# The layers, lowest first (scripts/check-layers reads this line too).
LAYERS  := lib store algo index filters core curate search ingest cluster daemon api cmd
LIB_SRC := $(sort $(wildcard $(addsuffix /*.c,$(filter-out cmd,$(LAYERS)))))
UI_ASSETS := index.html app.js style.css
LIB_OBJ := $(LIB_SRC:%.c=$(OUT)/obj/%.o) $(OUT)/obj/gen/openapi.o \
           $(UI_ASSETS:%=$(OUT)/obj/gen/ui_%.o)
LIB_A   := $(OUT)/libwinnow.a

UNIT_SRC := $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(OUT)/tests/%)
HARNESS_OBJ := $(OUT)/obj/tests/harness.o

BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(OUT)/bench/%)

CLI_BIN := $(OUT)/winnow

.PHONY: all deps deps-wait run test test-slurm unit layers bench fuzz fuzz-build lint lint-openapi format install clean
all: $(OUT)/winnowd $(CLI_BIN)

deps:
	scripts/deps.sh $(BUILD)

# Wait for the AVX2 FAISS build that `make deps` left running (or build it now).
deps-wait:
	scripts/deps.sh $(BUILD) --wait

# Run `make deps` only when its stamp is missing (a fresh machine), or the library is (a
# build/ from before the shared library); once on a fresh machine, where the first makes both.
$(DEPS_STAMP):
	scripts/deps.sh $(BUILD)
$(FAISS_SO): | $(DEPS_STAMP)
	test -f $@ || scripts/deps.sh $(BUILD)

$(OUT)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(PROJ_CPPFLAGS) $(WARN) $(SAN_FLAGS) $(CPPFLAGS) $(CFLAGS) -c $< -o $@
# lib/par's par_team runs on OpenMP teams (the ones FAISS's searches use)
$(OUT)/obj/lib/par.o: PROJ_CPPFLAGS += -fopenmp

# The OpenAPI document is compiled in (served at /v1/openapi.json).
$(OUT)/gen/openapi.c: api/openapi.json scripts/embed.sh
	@mkdir -p $(@D)
	scripts/embed.sh api/openapi.json $@ openapi_json api/openapi.h
$(OUT)/obj/gen/openapi.o: $(OUT)/gen/openapi.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(PROJ_CPPFLAGS) $(WARN) $(SAN_FLAGS) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# So are the dashboard's files (served at /ui/): api/ui/app.js becomes ui_app_js[].
$(OUT)/gen/ui_%.c: api/ui/% api/ui_assets.h scripts/embed.sh
	@mkdir -p $(@D)
	scripts/embed.sh $< $@ ui_$(subst .,_,$*) api/ui_assets.h
$(OUT)/obj/gen/ui_%.o: $(OUT)/gen/ui_%.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(PROJ_CPPFLAGS) $(WARN) $(SAN_FLAGS) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB_A): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# FAISS's code is in the shared library, so where its distance kernels land no longer moves
# with winnow's own code (scripts/deps.sh pads the generic build; docs/performance.md).
$(OUT)/winnowd: $(OUT)/obj/cmd/winnowd.o $(LIB_A) $(FAISS_SO)
	$(CC) $(SAN_FLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LIBS)

$(CLI_BIN): $(OUT)/obj/cmd/winnow.o $(LIB_A) $(FAISS_SO)
	$(CC) $(SAN_FLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LIBS)

# The installed programs: the same link, with the library's RUNPATH beside them.
$(OUT)/install/%: $(OUT)/obj/cmd/%.o $(LIB_A) $(FAISS_SO)
	@mkdir -p $(@D)
	$(CC) $(SAN_FLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(INSTALL_LIBS)

$(OUT)/tests/%: $(OUT)/obj/tests/unit/%.o $(HARNESS_OBJ) $(LIB_A) $(FAISS_SO)
	@mkdir -p $(@D)
	$(CC) $(SAN_FLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(HARNESS_OBJ) $(LIB_A) $(LIBS)

$(OUT)/bench/%: $(OUT)/obj/bench/%.o $(LIB_A) $(FAISS_SO)
	@mkdir -p $(@D)
	$(CC) $(SAN_FLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LIBS)

LISTEN ?= 127.0.0.1:8080
run: $(OUT)/winnowd $(CLI_BIN)
	mkdir -p var
	$(OUT)/winnowd --listen $(LISTEN) --data-dir ./var

unit: $(UNIT_BIN)

# No file includes a header from a layer above its own (LAYERS, lowest first).
layers:
	scripts/check-layers

# The tests run on the AVX2 FAISS build where the CPU has it: wait for it (test_faiss_build).
test: $(OUT)/winnowd $(CLI_BIN) $(UNIT_BIN) layers
	scripts/deps.sh $(BUILD) --wait
	PYTHON=$(PYTHON) SANITIZE=$(SANITIZE) tests/run.sh $(OUT)

# deploy/slurm/ for real: starts its own slurmctld, slurmd and munged in a temp dir.
test-slurm: $(OUT)/winnowd $(CLI_BIN)
	scripts/slurm-deps.sh
	WINNOWD=$(abspath $(OUT)/winnowd) WINNOW_CLI=$(abspath $(CLI_BIN)) WINNOW_TEST_SANITIZE=$(SANITIZE) \
	  $(PYTHON) tests/slurm/test_slurm.py

bench: $(OUT)/winnowd $(BENCH_BIN)
	PYTHON=$(PYTHON) bench/run.sh $(OUT)

# libFuzzer drivers (clang): every parser of untrusted bytes, one program each
# (tests/fuzz/fuzz_*.c), over the whole library built again with clang, ASan and UBSan.
# `make fuzz` runs each for FUZZ_SECONDS (CI: 30) from its committed corpus
# tests/fuzz/corpus/NAME/ (a crash fails the target and leaves the input in build/fuzz/).
FUZZ_SECONDS ?= 60
FUZZ_OUT   := $(BUILD)/fuzz
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -I. -g -O1 -fno-omit-frame-pointer \
              -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_OUT)/obj/%.o) $(FUZZ_OUT)/obj/gen/openapi.o \
                $(UI_ASSETS:%=$(FUZZ_OUT)/obj/gen/ui_%.o)
FUZZ_DRIVERS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_DRIVERS:tests/fuzz/%.c=$(FUZZ_OUT)/%)

$(FUZZ_OUT)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FUZZ_OUT)/obj/gen/openapi.o: $(OUT)/gen/openapi.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	clang $(FUZZ_FLAGS) -c $< -o $@
$(FUZZ_OUT)/obj/gen/ui_%.o: $(OUT)/gen/ui_%.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	clang $(FUZZ_FLAGS) -c $< -o $@
$(FUZZ_OUT)/libwinnow.a: $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^
$(FUZZ_OUT)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OUT)/libwinnow.a $(FAISS_SO)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer $< $(FUZZ_OUT)/libwinnow.a $(LIBS) -o $@

fuzz-build: $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	@set -e; for b in $(FUZZ_BIN); do \
	  name=$${b##*/fuzz_}; corpus=tests/fuzz/corpus/$$name; work=$(FUZZ_OUT)/corpus/$$name; \
	  mkdir -p $$corpus $$work; \
	  echo "fuzz: $$name for $(FUZZ_SECONDS) s"; \
	  (cd $(FUZZ_OUT) && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(abspath tests/fuzz/lsan.supp) ./fuzz_$$name -max_total_time=$(FUZZ_SECONDS) \
	     -print_final_stats=0 -close_fd_mask=3 ../../$$work ../../$$corpus) >$(FUZZ_OUT)/$$name.log 2>&1 || \
	  { tail -n 40 $(FUZZ_OUT)/$$name.log; echo "fuzz: $$name FAILED (log $(FUZZ_OUT)/$$name.log)"; exit 1; }; \
	  grep -E "^#[0-9]+.*DONE" $(FUZZ_OUT)/$$name.log | tail -n 1 | sed "s/^/fuzz: $$name /"; \
	done

lint:
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability \
	  --suppress=missingIncludeSystem -I. $(LAYERS)

# The OpenAPI document under Redocly's `recommended` ruleset; the CLI is installed from npm
# into build/node the first time (so this target needs the network once). One rule is
# skipped: the dashboard really is served at /ui/ (its relative links need the slash).
REDOCLY := $(BUILD)/node/node_modules/.bin/redocly
lint-openapi:
	@test -x $(REDOCLY) || npm install --prefix $(BUILD)/node --no-audit --no-fund @redocly/cli
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true $(REDOCLY) lint --extends=recommended \
	  --skip-rule=no-path-trailing-slash api/openapi.json

format:
	clang-format -i $(wildcard $(addsuffix /*.[ch],$(LAYERS)) tests/*.[ch] tests/unit/*/*.c bench/*.c)

# The programs in PREFIX/bin, the FAISS library in PREFIX/lib/winnow (the AVX2 build too, if
# it is done: `make deps-wait install` waits for it). LIBDIR must stay PREFIX/lib/winnow, the
# programs' RUNPATH ($$ORIGIN/../lib/winnow).
install: $(OUT)/install/winnowd $(OUT)/install/winnow
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/glibc-hwcaps/x86-64-v3
	install -m 755 $^ $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(FAISS_SO) $(DESTDIR)$(LIBDIR)/
	if [ -f $(FAISS_AVX2) ]; then \
	  install -m 644 $(FAISS_AVX2) $(DESTDIR)$(LIBDIR)/glibc-hwcaps/x86-64-v3/; \
	else echo "install: no AVX2 FAISS build yet (make deps-wait); installed the generic one only"; fi

clean:
	rm -rf $(OUT)/obj $(OUT)/tests $(OUT)/bench $(OUT)/san $(OUT)/install $(OUT)/winnowd $(CLI_BIN) $(LIB_A)

.SECONDARY:

-include $(shell find $(OUT)/obj $(FUZZ_OUT)/obj -name '*.d' 2>/dev/null)
