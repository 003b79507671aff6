# mailrepd — build, run and test.
#
#   make            static ./mailrepd (make STATIC=0 for a dynamic one)
#   make run        build, then start a ready server on ./var (see README)
#   make check      build, then run every unit and integration test, and
#                   the arm64 binary's smoke test under qemu
#   make asan       ASan+UBSan build in build/asan/ (the tests use it)
#   make crash      power-loss test at length (ROUNDS=N crash points)
#   make faults     I/O and allocation fault loops at every N
#   make fuzz       run each libFuzzer target FUZZ_SECONDS (clang)
#   make lint       cppcheck, clang-tidy, and the documents match settings.c
#   make docs       README's settings table, man page, example config
#   make install    PREFIX=/usr/local: binary, man page, example config
#   make cross      ARCH=arm64|armhf: a static binary for that CPU
#   make check-cross  the cross binaries' tests under qemu (mk/cross.mk)
#   make deb        Debian packages for amd64, arm64, armhf (mk/deb.mk)
#   make imaptest IMAPTEST=path   Dovecot's imaptest suite, per test group
#   make coverage   unit and integration suites on a --coverage build:
#                   line and branch coverage per file, against a floor
#   make clean
#
# Missing Debian packages are installed when run as root (scripts/deps).

CC	?= cc
STATIC	?= 1
PYTHON	?= /usr/bin/python3

# Every module; mailrepd.c alone holds main(), so unit tests link the rest.
MODULES	= settings.c log.c buf.c crypto.c auth.c store.c store_schema.c store_blob.c store_stage.c store_user.c store_mailbox.c store_copy.c store_restore.c store_check.c durable.c mime.c mime_decode.c mime_text.c mime_part.c spool.c net.c proto.c \
	  lmtp.c admin.c mailio.c imap_parse.c imap.c imap_auth.c imap_caps.c \
	  imap_idle.c imap_append.c imap_catenate.c imap_mailbox.c \
	  imap_message.c imap_list.c imap_fetch.c imap_fetch_parse.c \
	  imap_search.c \
	  imap_search_index.c store_fts.c imap_context.c \
	  imap_search_compile.c imap_esearch.c imap_qresync.c imap_view.c \
	  imap_sort.c imap_thread.c imap_order.c imap_quota.c \
	  tls.c transport.c penalty.c sync.c sync_chan.c sync_master.c sync_replica.c \
	  sync_reconcile.c sync_recon_replica.c sync_renumber.c sync_status.c \
	  control.c store_repl.c store_apply.c store_conflict.c store_purge.c \
	  store_wal.c store_room.c guard.c record.c json.c utf8.c daemon.c \
	  http.c web.c web_api.c web_auth.c web_events.c web_page.c \
	  web_html.c web_message.c web_headers.c store_web.c charset.c
# The command-line tools (dev, messages, wait, conflicts, quarantine, backup,
# restore); only main() calls them.
TOOLS	= dev.c messages.c conflicts.c quarantine.c backup.c
SRCS	= mailrepd.c $(TOOLS) $(MODULES)
HDRS	= $(wildcard *.h)
# The web page's files, made into C arrays (build/gen/web_assets.inc),
# which web_page.c includes; its objects' rule is after mk/cross.mk.
WEB_ASSETS = web/index.html web/app.css web/app.js web/live.js

WARN	= -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	  -Wmissing-prototypes -Wpointer-arith -Wformat=2
CFLAGS	?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS)
LIBS	= -lsqlite3 -lmbedtls -lmbedx509 -lmbedcrypto -lz -lm -lpthread -ldl
ifeq ($(STATIC),1)
LDSTATIC = -static
endif

ASAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	     -fno-sanitize-recover=undefined

REL_OBJS  = $(SRCS:%.c=build/rel/%.o)
ASAN_OBJS = $(SRCS:%.c=build/asan/%.o)
ASAN_LIB  = $(MODULES:%.c=build/asan/%.o)
UNIT_SRCS = $(wildcard test/unit/test_*.c)
# What the unit tests share, linked into each of them.
UNIT_HELPERS = test/unit/unit_mime.c test/unit/unit_mime.h \
	       test/unit/unit_faults.c test/unit/unit_faults.h
UNIT_BINS = $(UNIT_SRCS:test/unit/%.c=build/asan/%)

.PHONY: all run check check-deps check-build check-static asan unit \
	valgrind integration split-brain jepsen imaptest \
	crash faults clean deps-build docs docs-check install \
	deps-check \
	coverage deps-coverage \
	fuzz fuzz-check fuzz-seeds deps-fuzz lint deps-lint

all: deps-build mailrepd

deps-build:
	@scripts/deps build

deps-check:
	@scripts/deps check

mailrepd: $(REL_OBJS)
	$(CC) $(ALL_CFLAGS) $(LDSTATIC) -o $@ $(REL_OBJS) $(LIBS)

build/rel/%.o: %.c $(HDRS) | build/rel
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

asan: deps-build build/asan/mailrepd

build/asan/mailrepd: $(ASAN_OBJS)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -o $@ $(ASAN_OBJS) $(LIBS)

build/asan/%.o: %.c $(HDRS) | build/asan
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -c -o $@ $<

build/asan/test_%: test/unit/test_%.c $(UNIT_HELPERS) $(ASAN_LIB) $(HDRS) \
	| build/asan
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -I. -o $@ $< \
	    $(filter %.c,$(UNIT_HELPERS)) $(ASAN_LIB) \
	    $(LIBS) -lcmocka

build/rel build/asan build/crash build/valgrind build/gen:
	mkdir -p $@

# Each web asset as `static const unsigned char web_NAME_EXT[]`, with od
# and sed (coreutils, no build dependency of its own).
build/gen/web_assets.inc: $(WEB_ASSETS) | build/gen
	@set -e; for f in $(WEB_ASSETS); do \
	    echo "static const unsigned char $$(echo $$f | \
	        tr -c 'a-z0-9\n' _)[] = {"; \
	    od -An -v -tx1 $$f | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	    echo "};"; \
	done >$@.tmp; mv $@.tmp $@

# The test build: the ASan objects, test/testvfs.c, a VFS that cuts
# the power and injects I/O faults when its environment asks
# (test_power_loss.py, test_io_faults.py), and test/testalloc.c, which
# fails allocations when asked (test_alloc_faults.py): the link sends
# every allocation the objects make through it, and test/teststep.c,
# which holds a COPY in steps midway when asked (test_imap_copy_steps.py):
# the link sends the server's calls of store_copy_step() through it.
# Nothing else links them.
ALLOC_WRAP = malloc calloc realloc reallocarray strdup strndup asprintf \
	     vasprintf ppoll deflateInit_ deflateInit2_ inflateInit_ \
	     inflateInit2_ compress2 uncompress store_copy_step
build/crash/mailrepd: $(ASAN_OBJS) build/crash/testvfs.o \
	build/crash/testalloc.o build/crash/teststep.o
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -o $@ $(ASAN_OBJS) \
	    build/crash/testvfs.o build/crash/testalloc.o \
	    build/crash/teststep.o $(ALLOC_WRAP:%=-Wl,--wrap=%) $(LIBS)

# The VFS's own allocations call the real allocator: they are the test's,
# not the server's, and never fail.
build/crash/testvfs.o: test/testvfs.c | build/crash
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -c -o $@.tmp $<
	objcopy $(foreach f,malloc calloc realloc,--redefine-sym $(f)=__real_$(f)) \
	    $@.tmp $@
	rm -f $@.tmp

build/crash/testalloc.o: test/testalloc.c | build/crash
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -c -o $@ $<

build/crash/teststep.o: test/teststep.c store.h | build/crash
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -I. -c -o $@ $<

run: all
	@scripts/run

# make check, in three steps, each with as many jobs as there are cores
# (CI runs a plain `make check`): every binary it needs; then static
# analysis, the fuzz targets' short run, valgrind, the unit tests and the
# ARM smoke test side by side, each one's output printed whole when it
# ends; then the real binary with real clients (whose summary line ends
# the output).  The packages come first, one install at a time.
CHECK_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# True when make check runs the arm64 smoke test (see cross-smoke).
cross_wanted = { [ "$$(id -u)" -eq 0 ] || scripts/deps cross >/dev/null 2>&1; }

check: check-deps
	@$(MAKE) -s -j$(CHECK_JOBS) check-build \
	    CHECK_CROSS=$$($(cross_wanted) && echo arm64)
	@$(MAKE) -s -j$(CHECK_JOBS) --output-sync=target check-static
	@$(MAKE) -s integration

check-deps:
	@set -e; for d in check lint fuzz; do scripts/deps $$d; done; \
	if [ "$$(id -u)" -eq 0 ]; then scripts/deps cross; fi

check-build: mailrepd build/asan/mailrepd build/crash/mailrepd $(UNIT_BINS) \
	build/valgrind/mailrepd build/settings_doc \
	$(FUZZ_TARGETS:%=build/fuzz/fuzz_%) \
	$(if $(CHECK_CROSS),build/$(CHECK_CROSS)/mailrepd.stripped \
	    build/$(CHECK_CROSS)/mailrepd-qemu)

check-static: lint fuzz-check valgrind unit cross-smoke

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# One short session under valgrind memcheck (test/valgrind.sh), on the
# release objects linked dynamically: valgrind replaces malloc only in
# a dynamic binary.
valgrind: build/valgrind/mailrepd
	@test/valgrind.sh build/valgrind/mailrepd

build/valgrind/mailrepd: $(REL_OBJS) | build/valgrind
	$(CC) $(ALL_CFLAGS) -o $@ $(REL_OBJS) $(LIBS)

# The integration tests run on TEST_JOBS pytest-xdist workers at once
# (twice the cores: most of a test's time is spent waiting on a server);
# the tests marked serial then run alone (test/integration/
# serial_last.py).  Without pytest-xdist, or with TEST_JOBS=1, one by one.
TEST_JOBS ?= $(shell echo $$((2 * $$(nproc 2>/dev/null || echo 1))))
pytest_jobs = $(shell [ "$(TEST_JOBS)" -gt 1 ] && \
	$(PYTHON) -c 'import xdist' 2>/dev/null && \
	echo "--numprocesses=$(TEST_JOBS) --dist=loadgroup")

integration: build/asan/mailrepd build/crash/mailrepd mailrepd
	MAILREPD=$(CURDIR)/build/asan/mailrepd $(PYTHON) -m pytest -q \
	    -p no:cacheprovider $(pytest_jobs) test/integration

# The randomized split-brain test at length (make check runs 3 rounds):
# make split-brain SPLIT_ROUNDS=200 SPLIT_SEED=42
SPLIT_ROUNDS ?= 50
split-brain: build/asan/mailrepd
	SPLIT_ROUNDS=$(SPLIT_ROUNDS) $(if $(SPLIT_SEED),SPLIT_SEED=$(SPLIT_SEED)) \
	    MAILREPD=$(CURDIR)/build/asan/mailrepd $(PYTHON) -m pytest -q \
	    -p no:cacheprovider test/integration/test_split_brain.py

# The randomized fault test at length (make check runs a few rounds of
# fixed seeds): make jepsen ROUNDS=500 SEED=42.  Without SEED, one is
# drawn from the clock and printed; a failure prints what replays it.
# The test's other JEPSEN_* settings (JEPSEN_FIRST_LIFE, JEPSEN_KEEP_GOING,
# ...) pass through from the command line or the environment.
ROUNDS ?= 50
jepsen: build/asan/mailrepd
	@seed=$(or $(SEED),$$(date +%s)); \
	echo "make jepsen: SEED=$$seed ROUNDS=$(ROUNDS)"; \
	JEPSEN_SEED=$$seed JEPSEN_ROUNDS=$(ROUNDS) \
	    MAILREPD=$(CURDIR)/build/asan/mailrepd $(PYTHON) -m pytest -q -s \
	    -p no:cacheprovider test/integration/test_jepsen.py

# Dovecot's imaptest scripted suite against a fresh server, one line per
# test group (PASS, FAIL, SKIP) and the counts: make imaptest
# IMAPTEST=/path/to/imaptest [IMAPTEST_TESTS=dir].  imaptest is not
# packaged; README "IMAP compliance" says how to build it.
imaptest: mailrepd
	@test -n "$(IMAPTEST)" || { echo "make imaptest: set IMAPTEST=path" \
	    "to an imaptest binary" >&2; exit 2; }
	@bench/imaptest.sh $(IMAPTEST) $(IMAPTEST_TESTS)

# Power loss at length (make check cuts the power at 200 points):
# make crash ROUNDS=10000 SEED=7.  A failure names the seed of its run.
crash: build/crash/mailrepd build/asan/mailrepd mailrepd
	@seed=$(or $(SEED),$$(date +%s)); \
	echo "make crash: SEED=$$seed ROUNDS=$(ROUNDS)"; \
	POWER_LOSS_SEED=$$seed POWER_LOSS_POINTS=$(ROUNDS) \
	    MAILREPD=$(CURDIR)/build/asan/mailrepd $(PYTHON) -m pytest -q -s \
	    -p no:cacheprovider test/integration/test_power_loss.py

# I/O and allocation fault injection at every N until each scenario
# completes (make check stops each I/O loop at N = 30 and runs 24 N of
# each allocation loop): make faults
faults: build/crash/mailrepd build/asan/mailrepd mailrepd \
	build/asan/test_store_faults
	MAILREPD_FAULTS_LONG=1 build/asan/test_store_faults
	IO_FAULT_MAX=0 ALLOC_FAULT_MAX=0 \
	    MAILREPD=$(CURDIR)/build/asan/mailrepd $(PYTHON) -m \
	    pytest -q -s -p no:cacheprovider test/integration/test_io_faults.py \
	    test/integration/test_recon_io_faults.py \
	    test/integration/test_alloc_faults.py

# Static analysis; both must be silent.  Left out: implicit-widening
# (it fires on config.h constants that cannot overflow) and
# valist.Uninitialized (clang 14 reports vsnprintf right after va_start
# or va_copy, in log.c and buf.c, as uninitialised).
TIDY_CHECKS = -*,bugprone-*,clang-analyzer-*,\
	-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,\
	-bugprone-narrowing-conversions,\
	-bugprone-implicit-widening-of-multiplication-result,\
	-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling,\
	-clang-analyzer-valist.Uninitialized

# clang-tidy runs once per file (lint-tidy/FILE), so that make -j spreads
# the files over the cores; cppcheck uses them all itself.
LINT_SRCS = $(SRCS) $(DOC_SRCS) test/testvfs.c test/testalloc.c
LINT_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
TIDY_RUNS = $(LINT_SRCS:%=lint-tidy/%)
.PHONY: lint-cppcheck $(TIDY_RUNS)

lint: deps-lint docs-check lint-cppcheck $(TIDY_RUNS)

lint-cppcheck: deps-lint build/gen/web_assets.inc
	cppcheck --enable=warning,performance,portability --std=c11 \
	    -D_GNU_SOURCE --inline-suppr --error-exitcode=1 --quiet -I. \
	    -j $(LINT_JOBS) $(LINT_SRCS)

$(TIDY_RUNS): lint-tidy/%: deps-lint build/gen/web_assets.inc
	clang-tidy --quiet --warnings-as-errors='*' -checks='$(TIDY_CHECKS)' \
	    $* -- -std=c11 -D_GNU_SOURCE -I.

# The README's configuration table, the man page and the example config
# are made from the settings table: after adding or changing a setting,
# `make docs` and commit what it rewrote.
DOC_SRCS = doc/settings_doc.c

docs: build/settings_doc
	@scripts/docs write build/settings_doc

docs-check: build/settings_doc
	@scripts/docs check build/settings_doc

build/settings_doc: $(DOC_SRCS) build/rel/settings.o $(HDRS)
	$(CC) $(ALL_CFLAGS) -I. -o $@ $(DOC_SRCS) build/rel/settings.o

# For people who build from source; DESTDIR for staging.  An existing
# config file is kept.
PREFIX	?= /usr/local
SYSCONFDIR ?= $(PREFIX)/etc
install: mailrepd
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man8 \
	    $(DESTDIR)$(SYSCONFDIR)/mailrepd
	install -m 755 mailrepd $(DESTDIR)$(PREFIX)/bin/mailrepd
	install -m 644 doc/mailrepd.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	test -e $(DESTDIR)$(SYSCONFDIR)/mailrepd/mailrepd.conf || \
	    install -m 644 contrib/mailrepd.conf $(DESTDIR)$(SYSCONFDIR)/mailrepd/

# libFuzzer targets (clang), each run FUZZ_SECONDS on its seed corpus;
# what they find is kept in build/fuzz/TARGET-crash-*.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS = imap_parse mime lmtp imap settings sync http web_html charset
# Targets whose code reports to stderr on every refused input; their
# stderr is closed (libFuzzer keeps its own and the sanitizers' reports).
FUZZ_QUIET = settings
FUZZ_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	     -fno-sanitize-recover=undefined
FUZZ_OBJS  = $(MODULES:%.c=build/fuzz/%.o)
.SECONDARY: $(FUZZ_OBJS)

fuzz: deps-fuzz $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p build/fuzz/corpus-$$t; \
	    echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	    build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) $(fuzz_quiet) \
	        -artifact_prefix=build/fuzz/$$t- -print_final_stats=1 \
	        build/fuzz/corpus-$$t test/fuzz/corpus/$$t 2>&1 | \
	        grep -E "^stat::(number_of_executed_units|peak_rss)|#[0-9]+.*DONE|ERROR|SUMMARY"; \
	done

# The short form that make check runs: every seed input, then
# FUZZ_CHECK_RUNS mutations from a fixed seed, per target, under ASan and
# UBSan.  Fixed runs from a fixed seed do the same work on every machine,
# so a check never fails on a new random finding; `make fuzz` searches.
FUZZ_CHECK_RUNS ?= 2000

# One target per fuzz target (fuzz-check/NAME), so that make -j runs
# them side by side.
FUZZ_CHECKS = $(FUZZ_TARGETS:%=fuzz-check/%)
.PHONY: $(FUZZ_CHECKS)

fuzz-check: $(FUZZ_CHECKS)

$(FUZZ_CHECKS): fuzz-check/%: deps-fuzz build/fuzz/fuzz_%
	@t=$*; \
	echo "== fuzz_$$t: seeds and $(FUZZ_CHECK_RUNS) runs from seed 1"; \
	mkdir -p build/fuzz/check-$$t; rm -f build/fuzz/check-$$t/*; \
	build/fuzz/fuzz_$$t -seed=1 -runs=$(FUZZ_CHECK_RUNS) $(fuzz_quiet) \
	    -artifact_prefix=build/fuzz/$$t- build/fuzz/check-$$t \
	    test/fuzz/corpus/$$t >build/fuzz/$$t-check.log 2>&1 || \
	    { tail -40 build/fuzz/$$t-check.log; exit 1; }

# Shell text: -close_fd_mask=2 when target $$t is one of FUZZ_QUIET.
fuzz_quiet = $$(case " $(FUZZ_QUIET) " in *" $$t "*) echo -close_fd_mask=2;; esac)

# fuzz_sync's seeds are records a real store logged; regenerate them
# after a change of the record encoding, then commit them.
fuzz-seeds: build/asan/seed_sync
	rm -f test/fuzz/corpus/sync/rec-* test/fuzz/corpus/sync/frame-*
	mkdir -p test/fuzz/corpus/sync
	build/asan/seed_sync test/fuzz/corpus/sync

build/asan/seed_sync: test/fuzz/seed_sync.c $(ASAN_LIB) $(HDRS) | build/asan
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -I. -o $@ $< $(ASAN_LIB) $(LIBS)

deps-fuzz:
	@scripts/deps fuzz

deps-coverage:
	@scripts/deps coverage

deps-lint:
	@scripts/deps lint

build/fuzz/%.o: %.c $(HDRS) | build/fuzz
	clang $(ALL_CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/fuzz_%: test/fuzz/fuzz_%.c $(FUZZ_OBJS) $(HDRS) | build/fuzz
	clang $(ALL_CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer -I. -o $@ $< \
	    $(FUZZ_OBJS) $(LIBS)

build/fuzz:
	mkdir -p $@

# Coverage (gcc --coverage, gcovr): the unit tests and the integration
# tests on an unoptimised build in build/cov/ (the fault-injection and
# power-loss tests on its test build, build/cov/crash/, which shares its
# objects), then branch and line coverage of every source file, and the
# totals against the floor: the figures last measured (README, "Tests":
# 90.8% and 79.4%) less 0.1, as paths that depend on timing come and go.
# Raise the floor when coverage rises; a change that lowers it fails.
# Long (about 45 minutes on two busy cores): run it alone.
COV_FLOOR_LINES    = 91.2
COV_FLOOR_BRANCHES = 80.1
COV_FLAGS = -O0 -g --coverage
COV_OBJS  = $(SRCS:%.c=build/cov/%.o)
COV_LIB   = $(MODULES:%.c=build/cov/%.o)
COV_UNIT  = $(UNIT_SRCS:test/unit/%.c=build/cov/%)
GCOVR     = gcovr -r . --object-directory build/cov -e 'test/.*'

coverage: deps-coverage build/cov/mailrepd build/cov/crash/mailrepd \
	$(COV_UNIT)
	@find build/cov -name '*.gcda' -delete
	@set -e; for t in $(COV_UNIT); do $$t >build/cov/unit.log 2>&1 || \
	    { tail -40 build/cov/unit.log; exit 1; }; done
	@status=0; MAILREPD=$(CURDIR)/build/cov/mailrepd \
	    MAILREPD_CRASH=$(CURDIR)/build/cov/crash/mailrepd \
	    MAILREPD_RELEASE=$(CURDIR)/build/cov/mailrepd $(PYTHON) -m pytest \
	    -q -p no:cacheprovider test/integration || status=$$?; \
	$(GCOVR) --txt -b; \
	$(GCOVR) --txt --print-summary \
	    --fail-under-line $(COV_FLOOR_LINES) \
	    --fail-under-branch $(COV_FLOOR_BRANCHES) || \
	    { echo "coverage below the floor: lines $(COV_FLOOR_LINES)%," \
	    "branches $(COV_FLOOR_BRANCHES)%"; exit 1; }; \
	exit $$status

build/cov/mailrepd: $(COV_OBJS)
	$(CC) $(ALL_CFLAGS) $(COV_FLAGS) -o $@ $(COV_OBJS) $(LIBS)

# The fault-injection and power-loss tests' build, on the same objects,
# linked as build/crash/mailrepd is: what the I/O and allocation faults
# reach counts too.
build/cov/crash/mailrepd: $(COV_OBJS) build/cov/crash/testvfs.o \
	build/cov/crash/testalloc.o build/cov/crash/teststep.o
	$(CC) $(ALL_CFLAGS) $(COV_FLAGS) -o $@ $(COV_OBJS) \
	    build/cov/crash/testvfs.o build/cov/crash/testalloc.o \
	    build/cov/crash/teststep.o $(ALLOC_WRAP:%=-Wl,--wrap=%) $(LIBS)

build/cov/crash/testvfs.o: test/testvfs.c | build/cov/crash
	$(CC) $(ALL_CFLAGS) -c -o $@.tmp $<
	objcopy $(foreach f,malloc calloc realloc,--redefine-sym $(f)=__real_$(f)) \
	    $@.tmp $@
	rm -f $@.tmp

build/cov/crash/testalloc.o: test/testalloc.c | build/cov/crash
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/cov/crash/teststep.o: test/teststep.c store.h | build/cov/crash
	$(CC) $(ALL_CFLAGS) -I. -c -o $@ $<

build/cov/%.o: %.c $(HDRS) | build/cov
	$(CC) $(ALL_CFLAGS) $(COV_FLAGS) -c -o $@ $<

build/cov/test_%: test/unit/test_%.c $(UNIT_HELPERS) $(COV_LIB) $(HDRS) \
	| build/cov
	$(CC) $(ALL_CFLAGS) $(COV_FLAGS) -I. -o $@ $< \
	    $(filter %.c,$(UNIT_HELPERS)) $(COV_LIB) \
	    $(LIBS) -lcmocka

build/cov build/cov/crash:
	mkdir -p $@

clean:
	rm -rf build mailrepd

include mk/cross.mk mk/deb.mk

# Every build's web_page.o includes the page's files.
$(foreach d,rel asan fuzz cov $(ARCH),build/$(d)/web_page.o): \
	build/gen/web_assets.inc
# charset.c includes its tables (scripts/charset-tables writes them).
$(foreach d,rel asan fuzz cov $(ARCH),build/$(d)/charset.o): \
	charset_tables.inc
