# mk/deb.mk — Debian packages for amd64, arm64 and armhf.
#
#   make deb       build/deb/mailrepd_VERSION_ARCH.deb for each, lintian
#                  on each (clean, or the override explains why), then
#                  test_deb.py: each package unpacked into a throw-away
#                  root, its binary started with its config, a message
#                  delivered and read (ARM ones under qemu)
#
# scripts/deb lays out and builds one package (dpkg-deb, no network).
#
#   make deb DEB_MAINTAINER='Name <address>'   who the packages name as
#                  their maintainer (and in their changelog); by default
#                  DEBFULLNAME and DEBEMAIL, as Debian's own tools read
#                  them, else a placeholder that names no one

DEB_ARCHES	= amd64 arm64 armhf
ifneq ($(DEBEMAIL),)
DEB_MAINTAINER	?= $(or $(DEBFULLNAME),mailrepd packager) <$(DEBEMAIL)>
else
DEB_MAINTAINER	?= mailrepd packager <mailrepd@example.org>
endif

.PHONY: deb deps-deb

deb: deps-deb mailrepd build/asan/mailrepd
	@mkdir -p build/deb build/amd64
	strip -R .comment -o build/amd64/mailrepd.stripped mailrepd
	@set -e; for a in $(filter-out amd64,$(DEB_ARCHES)); do \
	    $(MAKE) -s cross ARCH=$$a; done
	@set -e; for a in $(DEB_ARCHES); do \
	    deb=$$(scripts/deb $$a build/$$a/mailrepd.stripped build/deb \
	    '$(subst ','\'',$(DEB_MAINTAINER))'); \
	    echo "== $$deb"; \
	    lintian --fail-on error,warning $$deb; \
	done
	MAILREPD=$(CURDIR)/build/asan/mailrepd MAILREPD_DEBS=$(CURDIR)/build/deb \
	    $(PYTHON) -m pytest -q -p no:cacheprovider test/integration/test_deb.py

deps-deb:
	@scripts/deps deb
