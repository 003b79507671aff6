# mk/cross.mk — static binaries for ARM, and their tests under qemu.
#
#   make cross ARCH=arm64|armhf   build/ARCH/mailrepd (static, stripped
#                                 copy in build/ARCH/mailrepd.stripped)
#   make check-cross              both architectures' tests under qemu
#   make cross-smoke              the short arm64 test make check runs
#
# Debian's cross compilers build against the target's own static
# libraries (multiarch packages such as libsqlite3-dev:arm64), which
# scripts/deps installs when run as root.  The binaries run under
# qemu-user-static through build/ARCH/mailrepd-qemu, a wrapper that the
# tests take as their mailrepd.

ARCH		?= arm64
CROSS_ARCHES	= arm64 armhf
TRIPLET_arm64	= aarch64-linux-gnu
TRIPLET_armhf	= arm-linux-gnueabihf
QEMU_arm64	= qemu-aarch64-static
QEMU_armhf	= qemu-arm-static

CROSS_CC	= $(TRIPLET_$(ARCH))-gcc
CROSS_DIR	= build/$(ARCH)
CROSS_OBJS	= $(SRCS:%.c=$(CROSS_DIR)/%.o)

# The integration tests the cross binaries pass: test_cross.py drives an
# ARM binary beside the native one (replication both ways, a store moved
# between architectures); the others take the ARM binary as their
# mailrepd.
CROSS_TESTS	= test_cross.py test_lmtp_delivery.py test_imap_fetch.py \
		  test_tls.py test_replication.py test_drain.py

.PHONY: cross check-cross cross-smoke cross-smoke-run cross-test deps-cross

cross: deps-cross $(CROSS_DIR)/mailrepd.stripped $(CROSS_DIR)/mailrepd-qemu

deps-cross:
	@scripts/deps cross

$(CROSS_DIR)/mailrepd: $(CROSS_OBJS)
	$(CROSS_CC) $(ALL_CFLAGS) -static -o $@ $(CROSS_OBJS) $(LIBS)

$(CROSS_DIR)/mailrepd.stripped: $(CROSS_DIR)/mailrepd
	$(TRIPLET_$(ARCH))-strip -R .comment -o $@ $<

$(CROSS_DIR)/%.o: %.c $(HDRS) | $(CROSS_DIR)
	$(CROSS_CC) $(ALL_CFLAGS) -c -o $@ $<

$(CROSS_DIR)/mailrepd-qemu: | $(CROSS_DIR)
	printf '#!/bin/sh\nexec %s %s "$$@"\n' $(QEMU_$(ARCH)) \
	    $(CURDIR)/$(CROSS_DIR)/mailrepd >$@
	chmod 755 $@

$(CROSS_DIR):
	mkdir -p $@

# test_cross.py, with the asan build as the native side; PYTEST_ARGS
# picks tests (make check's short run: -k smoke).
cross_env = MAILREPD=$(CURDIR)/build/asan/mailrepd \
	    MAILREPD_CROSS=$(CURDIR)/$(CROSS_DIR)/mailrepd-qemu \
	    MAILREPD_CROSS_ARCH=$(ARCH)
PYTEST	= $(PYTHON) -m pytest -q -p no:cacheprovider

# Left out: a latency bound that emulation, many times slower, cannot
# meet; it says nothing about the binary.
CROSS_DESELECT	= test_tls.py::test_handshake_flood_does_not_block_other_clients

cross-test: cross build/asan/mailrepd
	$(cross_env) $(PYTEST) test/integration/test_cross.py
	MAILREPD=$(CURDIR)/$(CROSS_DIR)/mailrepd-qemu $(PYTEST) \
	    $(addprefix --deselect test/integration/,$(CROSS_DESELECT)) \
	    $(addprefix test/integration/,$(filter-out test_cross.py,$(CROSS_TESTS)))

check-cross:
	@set -e; for a in $(CROSS_ARCHES); do \
	    echo "== $$a under qemu"; $(MAKE) -s cross-test ARCH=$$a; done

# make check's part.  As root scripts/deps installs the cross toolchain
# and qemu, so the test is required; otherwise it runs when they are
# there and says why not when they are not.
cross-smoke:
	@if [ "$$(id -u)" -ne 0 ] && ! scripts/deps cross >/dev/null 2>&1; \
	then echo "cross smoke test skipped: not root, and the cross" \
	    "toolchain or qemu is missing (scripts/deps cross names it)"; \
	else $(MAKE) -s cross ARCH=arm64 && \
	    $(MAKE) -s cross-smoke-run ARCH=arm64; fi

cross-smoke-run: build/asan/mailrepd
	$(cross_env) $(PYTEST) -k smoke test/integration/test_cross.py
