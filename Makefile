# mailrepd — build, run and test.
#
#   make            static ./mailrepd (make STATIC=0 for a dynamic one)
#   make run        build, then start a ready server on ./var (see README)
#   make check      build, then run every unit and integration test
#   make asan       ASan+UBSan build in build/asan/ (the tests use it)
#   make fuzz       run each libFuzzer target FUZZ_SECONDS (clang)
#   make lint       cppcheck and clang-tidy
#   make clean
#
# Missing Debian packages are installed when run as root (scripts/deps).

CC	?= cc
STATIC	?= 1
PYTHON	?= /usr/bin/python3

# Every module; mailrepd.c alone holds main(), so unit tests link the rest.
MODULES	= settings.c log.c buf.c crypto.c auth.c store.c store_blob.c store_restore.c mime.c spool.c net.c proto.c \
	  lmtp.c admin.c mailio.c imap_parse.c imap.c imap_mailbox.c \
	  imap_message.c imap_list.c imap_fetch.c imap_search.c \
	  tls.c transport.c penalty.c sync.c sync_chan.c sync_master.c sync_replica.c \
	  sync_reconcile.c sync_status.c control.c store_repl.c guard.c \
	  record.c json.c utf8.c daemon.c
# The command-line tools (dev, messages, wait, conflicts, quarantine, backup,
# restore); only main() calls them.
TOOLS	= dev.c messages.c conflicts.c quarantine.c backup.c
SRCS	= mailrepd.c $(TOOLS) $(MODULES)
HDRS	= $(wildcard *.h)

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
UNIT_BINS = $(UNIT_SRCS:test/unit/%.c=build/asan/%)

.PHONY: all run check asan unit integration split-brain jepsen clean \
	deps-build \
	deps-check \
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

build/asan/test_%: test/unit/test_%.c $(ASAN_LIB) $(HDRS) | build/asan
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -I. -o $@ $< $(ASAN_LIB) \
	    $(LIBS) -lcmocka

build/rel build/asan:
	mkdir -p $@

run: all
	@scripts/run

# Static analysis, unit tests (fast, exact), then the real binary with
# real clients.
check: deps-check mailrepd build/asan/mailrepd $(UNIT_BINS)
	@$(MAKE) -s lint
	@$(MAKE) -s fuzz-check
	@test/valgrind.sh
	@$(MAKE) -s unit
	@$(MAKE) -s integration

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: build/asan/mailrepd
	MAILREPD=$(CURDIR)/build/asan/mailrepd $(PYTHON) -m pytest -q \
	    -p no:cacheprovider test/integration

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
ROUNDS ?= 50
jepsen: build/asan/mailrepd
	@seed=$(or $(SEED),$$(date +%s)); \
	echo "make jepsen: SEED=$$seed ROUNDS=$(ROUNDS)"; \
	JEPSEN_SEED=$$seed JEPSEN_ROUNDS=$(ROUNDS) \
	    MAILREPD=$(CURDIR)/build/asan/mailrepd $(PYTHON) -m pytest -q -s \
	    -p no:cacheprovider test/integration/test_jepsen.py

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

lint: deps-lint
	cppcheck --enable=warning,performance,portability --std=c11 \
	    -D_GNU_SOURCE --inline-suppr --error-exitcode=1 --quiet -I. $(SRCS)
	clang-tidy --quiet --warnings-as-errors='*' -checks='$(TIDY_CHECKS)' \
	    $(SRCS) -- -std=c11 -D_GNU_SOURCE -I.

# libFuzzer targets (clang), each run FUZZ_SECONDS on its seed corpus;
# what they find is kept in build/fuzz/TARGET-crash-*.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS = imap_parse mime lmtp imap settings sync
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

fuzz-check: deps-fuzz $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@set -e; for t in $(FUZZ_TARGETS); do \
	    echo "== fuzz_$$t: seeds and $(FUZZ_CHECK_RUNS) runs from seed 1"; \
	    mkdir -p build/fuzz/check-$$t; rm -f build/fuzz/check-$$t/*; \
	    build/fuzz/fuzz_$$t -seed=1 -runs=$(FUZZ_CHECK_RUNS) $(fuzz_quiet) \
	        -artifact_prefix=build/fuzz/$$t- build/fuzz/check-$$t \
	        test/fuzz/corpus/$$t >build/fuzz/$$t-check.log 2>&1 || \
	        { tail -40 build/fuzz/$$t-check.log; exit 1; }; \
	done

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

deps-lint:
	@scripts/deps lint

build/fuzz/%.o: %.c $(HDRS) | build/fuzz
	clang $(ALL_CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/fuzz_%: test/fuzz/fuzz_%.c $(FUZZ_OBJS) $(HDRS) | build/fuzz
	clang $(ALL_CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer -I. -o $@ $< \
	    $(FUZZ_OBJS) $(LIBS)

build/fuzz:
	mkdir -p $@

clean:
	rm -rf build mailrepd
