# casestream: one non-recursive Makefile for the library, the programs and the tests.
#
#   make            build everything into build/
#   make test       bring the local stack up, build, migrate, unit tests, 10 s of each fuzz
#                   target, integration tests, a short chaos run
#   make run        bring the stack up and run the demo pipeline
#   make chaos      the chaos campaign on a stack of three Kafka brokers (scripts/chaos.sh)
#   make asan       unit tests under address + undefined behaviour sanitizers
#   make valgrind   unit tests under valgrind
#   make fuzz       libFuzzer targets (clang) for FUZZ_SECONDS each (default 20); fails on a crash
#   make format-check
#   make install    programs, manual pages, migrations, C API (pkg-config casestream), systemd
#                   units into PREFIX (default /usr/local) under DESTDIR; make install-check
#
# librdkafka: by default every program and test links against the one
# scripts/librdkafka.sh builds from Debian's source package into
# .stack/librdkafka/<version> (built on first use, as root; rpath set).
# `make SYSTEM_RDKAFKA=1` uses the distribution's librdkafka-dev instead.
#
# hiredis: the same way, scripts/hiredis.sh builds hiredis and libhiredis_ssl (rediss://)
# from Debian's source package into .stack/hiredis/<version>. `make SYSTEM_HIREDIS=1` uses
# the distribution's libhiredis-dev: with TLS when it has hiredis_ssl (1.0 or later, Debian
# 13), without on Debian 12 (0.14: a rediss:// URL is then refused, exit 78).

CC      ?= cc
BUILD   ?= build
PKGS    := libpq jansson libcurl libmicrohttpd libcrypto
ifeq ($(SYSTEM_RDKAFKA),)
RDKAFKA_PREFIX := $(shell scripts/librdkafka.sh prefix)
RDKAFKA_BUILT  := $(RDKAFKA_PREFIX)/.built
# -isystem: its header has a qualifier on a return type that -Wextra reports.
RDKAFKA_CFLAGS := -isystem $(RDKAFKA_PREFIX)/include
RDKAFKA_LIBS   := -L$(RDKAFKA_PREFIX)/lib -Wl,-rpath,$(RDKAFKA_PREFIX)/lib -lrdkafka
else
RDKAFKA_BUILT  :=
RDKAFKA_CFLAGS := $(shell pkg-config --cflags rdkafka 2>/dev/null)
RDKAFKA_LIBS   := $(shell pkg-config --libs rdkafka 2>/dev/null)
endif
ifeq ($(SYSTEM_HIREDIS),)
HIREDIS_PREFIX := $(shell scripts/hiredis.sh prefix)
HIREDIS_BUILT  := $(HIREDIS_PREFIX)/.built
HIREDIS_CFLAGS := -isystem $(HIREDIS_PREFIX)/include -DCS_HAVE_REDIS_TLS
HIREDIS_LIBS   := -L$(HIREDIS_PREFIX)/lib -Wl,-rpath,$(HIREDIS_PREFIX)/lib -lhiredis_ssl -lhiredis \
                  $(shell pkg-config --libs libssl 2>/dev/null)
HIREDIS_PKGS   := hiredis_ssl hiredis libssl
else
HIREDIS_BUILT  :=
HIREDIS_PKGS   := $(if $(shell pkg-config --exists hiredis_ssl 2>/dev/null && echo y),hiredis_ssl \
                  hiredis libssl,hiredis)
HIREDIS_CFLAGS := $(shell pkg-config --cflags $(HIREDIS_PKGS) 2>/dev/null) \
                  $(if $(filter hiredis_ssl,$(HIREDIS_PKGS)),-DCS_HAVE_REDIS_TLS)
HIREDIS_LIBS   := $(shell pkg-config --libs $(HIREDIS_PKGS) 2>/dev/null)
endif
PKG_CFLAGS := $(RDKAFKA_CFLAGS) $(HIREDIS_CFLAGS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(RDKAFKA_LIBS) $(HIREDIS_LIBS) $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
        -Wundef -Wpointer-arith -Wwrite-strings
ifneq ($(CI),)
WARN += -Werror
endif
ifneq ($(WERROR),)
WARN += -Werror
endif

# The version the programs print (--version) and export (casestream_build_info):
# `git describe`, or the fallback outside a git checkout.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-unknown)

OPT     ?= -O2
CFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g $(OPT) $(WARN) \
           -MMD -MP -Ilib $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS := $(EXTRA_LDFLAGS)
LDLIBS  := $(PKG_LIBS) -lpthread -lm

LIB_SRC     := $(sort $(wildcard lib/*.c))
PRODUCER_SRC := $(sort $(wildcard producer/*.c))
WORKER_SRC  := $(sort $(wildcard worker/*.c))
INDEXER_SRC := $(sort $(wildcard indexer/*.c))
ADMIN_SRC   := $(sort $(wildcard admin/*.c))
API_SRC     := $(sort $(wildcard api/*.c))
UNIT_SRC    := $(sort $(wildcard tests/check_*.c)) tests/unit_main.c tests/runner.c tests/logfmt.c \
               tests/fixture.c tests/ccd_contract.c
IT_SRC      := $(sort $(wildcard tests/it_*.c)) tests/integration_main.c tests/runner.c tests/logfmt.c \
               tests/ccd_contract.c

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
# Program logic (everything but main.c) is linked into the tests too.
logic = $(call obj,$(filter-out %/main.c,$(1)))

LIB_A     := $(BUILD)/libcasestream.a
PROGRAMS  := $(BUILD)/casestream-produce $(BUILD)/casestream-worker \
             $(BUILD)/casestream-indexer $(BUILD)/casestream $(BUILD)/casestream-api
APP_LOGIC := $(call logic,$(PRODUCER_SRC) $(WORKER_SRC) $(INDEXER_SRC) $(ADMIN_SRC) $(API_SRC))
UNIT_BIN  := $(BUILD)/check_unit
IT_BIN    := $(BUILD)/check_integration
BENCH_HELPERS := $(BUILD)/bench/es_watch $(BUILD)/bench/topic_delete

STACK := scripts/stack.sh

.PHONY: librdkafka hiredis all ready test unit integration stack run stop asan valgrind \
        format format-check clean bench bench-helpers chaos fuzz fuzz-build man install install-check FORCE
all: $(PROGRAMS) $(UNIT_BIN) $(IT_BIN) $(BENCH_HELPERS)

# librdkafka from Debian's source package (a no-op once built).
librdkafka:
	scripts/librdkafka.sh build

# hiredis from Debian's source package (a no-op once built).
hiredis:
	scripts/hiredis.sh build

# lib/version.o is rebuilt only when the version changes.
$(BUILD)/version.stamp: FORCE
	@mkdir -p $(dir $@)
	@echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
$(BUILD)/lib/version.o: $(BUILD)/version.stamp
$(BUILD)/lib/version.o: CFLAGS += -DCS_VERSION='"$(VERSION)"'

# Every object waits for librdkafka's and hiredis's headers, and is compiled again
# when they are new (another version is another prefix, built anew).
$(BUILD)/%.o: %.c $(RDKAFKA_BUILT) $(HIREDIS_BUILT)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

ifneq ($(RDKAFKA_BUILT),)
$(RDKAFKA_BUILT):
	scripts/librdkafka.sh build
endif
ifneq ($(HIREDIS_BUILT),)
$(HIREDIS_BUILT):
	scripts/hiredis.sh build
endif

# Test argv vectors are built from string literals.
$(BUILD)/tests/%.o: CFLAGS += $(CHECK_CFLAGS) -Wno-write-strings

$(LIB_A): $(call obj,$(LIB_SRC))
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/casestream-produce: $(call obj,$(PRODUCER_SRC)) $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/casestream-worker: $(call obj,$(WORKER_SRC)) $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/casestream-indexer: $(call obj,$(INDEXER_SRC)) $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/casestream: $(call obj,$(ADMIN_SRC)) $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/casestream-api: $(call obj,$(API_SRC)) $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(UNIT_BIN): $(call obj,$(UNIT_SRC)) $(APP_LOGIC) $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)
$(IT_BIN): $(call obj,$(IT_SRC)) $(APP_LOGIC) $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

# --- the local stack (real services, no Docker) -----------------------------
stack:
	$(STACK) up

unit: $(UNIT_BIN)
	$(UNIT_BIN)

integration: $(IT_BIN) $(PROGRAMS)
	$(STACK_ENV) $(IT_BIN)

# Programs find the stack through the CASESTREAM_* variables it prints, so a
# stack on other ports (CASESTREAM_PG_PORT=…, see README) works the same.
STACK_ENV = eval "$$($(STACK) env)" &&

# Services up, build, schema, topics: what every target below starts with.
ready:
	$(STACK) up $(STACK_UP_ARGS)
	$(MAKE) all
	$(STACK_ENV) $(BUILD)/casestream migrate
	$(STACK_ENV) $(BUILD)/casestream topics create

# The README's test command: everything up, then every test.
test: ready
	$(UNIT_BIN)
	$(STACK_ENV) scripts/install-check.sh
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_TEST_SECONDS)
	$(STACK_ENV) $(IT_BIN)
	scripts/chaos.sh --short

run: ready
	scripts/demo.sh run

stop:
	scripts/demo.sh stop
	$(STACK) down

# The bench's C helpers, built with the programs' flags and librdkafka.
$(BENCH_HELPERS): $(BUILD)/bench/%: $(BUILD)/bench/%.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
bench-helpers: $(BENCH_HELPERS)

bench: ready bench-helpers
	bench/run.sh

# Three brokers, so the campaign includes its broker-failure phase.
chaos: STACK_UP_ARGS = --kafka-brokers 3
chaos: ready
	scripts/chaos.sh

# --- checks on the unit tests ------------------------------------------------
asan:
	$(MAKE) BUILD=build/asan OPT=-O1 \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined" build/asan/check_unit
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build/asan/check_unit

valgrind: $(UNIT_BIN)
	CK_FORK=no valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --error-exitcode=99 --quiet $(UNIT_BIN)

# --- fuzzing -----------------------------------------------------------------
# libFuzzer targets (tests/fuzz/fuzz_<name>.c) built with Debian's clang into
# build/fuzz, with the library and program logic instrumented for coverage
# and under address + undefined behaviour sanitizers. Each runs for
# FUZZ_SECONDS from its seeds (tests/fuzz/corpus/<name>) plus what earlier runs
# found (build/fuzz/corpus/<name>); a crash, leak, timeout or failed property
# fails the target and leaves the input in build/fuzz/artifacts/.
FUZZ_TARGETS      ?= submission merge_patch jsondump change bulk jwt ccd_event
FUZZ_SECONDS      ?= 20
FUZZ_TEST_SECONDS ?= 10
FUZZ_CC           ?= clang
FUZZ_BUILD        := build/fuzz
FUZZ_SAN          := -fsanitize=address,undefined -fno-sanitize-recover=all

# Kept between builds, not deleted as intermediates of the pattern rule.
.SECONDARY: $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/fuzz_%.o) $(BUILD)/tests/fuzz/fuzz.o
$(BUILD)/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/fuzz.o $(APP_LOGIC) $(LIB_A)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-build:
	@command -v $(FUZZ_CC) >/dev/null || $(STACK) packages
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) OPT=-O1 \
	    EXTRA_CFLAGS="-fsanitize=fuzzer-no-link $(FUZZ_SAN) -fno-omit-frame-pointer" \
	    EXTRA_LDFLAGS="$(FUZZ_SAN)" $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

fuzz: fuzz-build
	@mkdir -p $(FUZZ_BUILD)/artifacts
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	    log=$(FUZZ_BUILD)/fuzz_$$t.log; \
	    echo "fuzz_$$t: $(FUZZ_SECONDS) s (log $$log)"; \
	    if ! $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	            -print_final_stats=1 -dict=tests/fuzz/json.dict \
	            -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- \
	            $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t >$$log 2>&1; then \
	        tail -n 60 $$log | cat -v; echo "fuzz_$$t FAILED"; exit 1; \
	    fi; \
	    grep -aE 'DONE|Done [0-9]+ runs|stat::number_of_executed_units' $$log | sed 's/^/  /'; \
	done

# --- installation ------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=]: the programs, their manual pages (generated
# from the option table: <program> --man), the migrations where `casestream migrate` finds
# them without --sql-dir, the C producer API (headers under include/casestream, the library,
# casestream.pc) and systemd units.
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     := $(PREFIX)/bin
MANDIR     := $(PREFIX)/share/man
SQLDIR     := $(PREFIX)/share/casestream/sql
INCLUDEDIR := $(PREFIX)/include/casestream
LIBDIR     := $(PREFIX)/lib
UNITDIR    ?= $(PREFIX)/lib/systemd/system
MAN_PAGES  := $(PROGRAMS:$(BUILD)/%=$(BUILD)/man/%.1)
UNITS      := $(patsubst scripts/systemd/%.in,$(BUILD)/systemd/%,$(wildcard scripts/systemd/*.in))
PUBLIC_HEADERS := lib/producer.h lib/config.h lib/outcome.h lib/err.h

$(BUILD)/man/%.1: $(BUILD)/%
	@mkdir -p $(dir $@)
	$< --man > $@
man: $(MAN_PAGES)

# Files that name install paths depend on the PREFIX they were made for.
$(BUILD)/prefix.stamp: FORCE
	@mkdir -p $(dir $@)
	@echo '$(PREFIX)' | cmp -s - $@ || echo '$(PREFIX)' > $@
$(BUILD)/casestream.pc: scripts/casestream.pc.in $(BUILD)/prefix.stamp $(BUILD)/version.stamp
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' -e 's|@REQUIRES@|rdkafka $(HIREDIS_PKGS) $(PKGS)|g' $< > $@
$(BUILD)/systemd/%: scripts/systemd/%.in $(BUILD)/prefix.stamp
	@mkdir -p $(dir $@)
	sed -e 's|@BINDIR@|$(BINDIR)|g' $< > $@

install: $(PROGRAMS) $(LIB_A) $(MAN_PAGES) $(BUILD)/casestream.pc $(UNITS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(SQLDIR) \
	    $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(UNITDIR)
	install -m 755 $(PROGRAMS) $(DESTDIR)$(BINDIR)
	install -m 644 $(MAN_PAGES) $(DESTDIR)$(MANDIR)/man1
	install -m 644 sql/*.sql $(DESTDIR)$(SQLDIR)
	install -m 644 $(PUBLIC_HEADERS) $(DESTDIR)$(INCLUDEDIR)
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)
	install -m 644 $(BUILD)/casestream.pc $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 $(UNITS) $(DESTDIR)$(UNITDIR)

# Installs into a scratch DESTDIR and uses the tree as a user would (scripts/install-check.sh).
install-check:
	scripts/install-check.sh

FORMAT_FILES = $(wildcard lib/*.[ch] producer/*.[ch] worker/*.[ch] indexer/*.[ch] \
                 admin/*.[ch] api/*.[ch] tests/*.[ch] tests/fuzz/*.[ch] bench/*.[ch])
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
