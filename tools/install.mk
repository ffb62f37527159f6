# SPDX-License-Identifier: MIT
#
# install, uninstall, dkms-install, dkms-uninstall for upalloc.
# Included by the top-level Makefile; also usable alone:
#   make -f tools/install.mk install DESTDIR=/tmp/root PREFIX=/usr \
#       KVER=$(tools/upalloc-vm --resolve --kernel 6.1)
#
# PREFIX (default /usr/local) places the libraries, headers, pkg-config
# file, tools and man pages; DESTDIR is prepended to every path (staging,
# packaging) and then depmod, ldconfig, udev reload and dkms are not run,
# because they would act on this machine rather than on DESTDIR.
# KVER is the kernel release (or a list of them) the module is built and
# installed for; default: the running kernel (RUNNING_KVER, 'uname -r').
#
# Without KVER, on a machine with no headers for the running kernel (a
# container, a host running a non-Debian kernel), 'make install' installs
# everything but the module and then says so, with the command that
# installs it.  'make install-user' installs everything but the module
# anywhere.  With KVER given, missing headers are an error.

# Keep the including Makefile's default goal: nothing here is a default.
upalloc_saved_default_goal := $(.DEFAULT_GOAL)

UPALLOC_TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
UPALLOC_VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' $(UPALLOC_TOP)/dkms.conf)
UPALLOC_SOVERSION := 0

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
UDEVRULESDIR ?= /etc/udev/rules.d
DKMS_SRCDIR ?= /usr/src/upalloc-$(UPALLOC_VERSION)
# Libraries a static link of libupalloc.a needs besides libc.
UPALLOC_LIBS_PRIVATE ?= -pthread

INSTALL ?= install
DEPMOD ?= depmod
LDCONFIG ?= ldconfig
DKMS ?= dkms

RUNNING_KVER ?= $(shell uname -r)
upalloc_kvers = $(or $(KVER),$(RUNNING_KVER))
upalloc_headers = $(wildcard /lib/modules/$(1)/build/Makefile \
	/usr/src/linux-headers-$(1)/Makefile)
# Releases that have headers here: what the message below can offer.
upalloc_header_kvers = $(sort $(patsubst /lib/modules/%/build/Makefile,%,\
	$(wildcard /lib/modules/*/build/Makefile)))
upalloc_build := $(UPALLOC_TOP)/build
upalloc_libfile := libupalloc.so.$(UPALLOC_VERSION)
upalloc_tools := upastat upalloc-run heapviz
# Every tool in upalloc_tools has its page here (tools/tests/run-host
# checks the installed tree).
upalloc_man1 := $(addsuffix .1,$(upalloc_tools))
upalloc_man3 := upalloc.3
upalloc_man4 := upalloc.4

.PHONY: install install-user uninstall install-lib install-headers \
	install-pkgconfig install-tools install-man install-udev install-module \
	install-module-unavailable build-module-for-install uninstall-module \
	dkms-install dkms-uninstall install-dkms-source

# Decided when the makefile is read, so that 'make -n install' shows it.
ifneq ($(KVER),)
upalloc_module_goal := install-module
else ifneq ($(call upalloc_headers,$(RUNNING_KVER)),)
upalloc_module_goal := install-module
else
upalloc_module_goal := install-module-unavailable
endif

install: install-user $(upalloc_module_goal)

install-user: install-lib install-headers install-pkgconfig install-tools \
	install-man install-udev

install-module-unavailable: install-user
	@echo "install: upalloc.ko was NOT installed: no kernel headers for the running kernel $(RUNNING_KVER)" >&2
	@echo "install: the library, headers, pkg-config file, tools and man pages are installed" >&2
	@echo "install: to install the module, for a kernel whose headers are installed:" >&2
	@echo "    make install-module KVER=<release>   (or 'make dkms-install KVER=<release>' to rebuild it on kernel upgrades)" >&2
	@echo "install: kernels with headers here: $(or $(upalloc_header_kvers),none (apt-get install linux-headers-amd64))" >&2

install-lib:
	$(MAKE) -C $(UPALLOC_TOP)/userlib
	$(INSTALL) -d $(DESTDIR)$(LIBDIR)
	$(INSTALL) -m 0755 $(upalloc_build)/userlib/libupalloc.so \
		$(DESTDIR)$(LIBDIR)/$(upalloc_libfile)
	ln -sf $(upalloc_libfile) $(DESTDIR)$(LIBDIR)/libupalloc.so.$(UPALLOC_SOVERSION)
	ln -sf libupalloc.so.$(UPALLOC_SOVERSION) $(DESTDIR)$(LIBDIR)/libupalloc.so
	$(INSTALL) -m 0644 $(upalloc_build)/userlib/libupalloc.a \
		$(upalloc_build)/userlib/libupalloc-prefix.a $(DESTDIR)$(LIBDIR)/
	$(if $(DESTDIR),,-$(LDCONFIG))

# <upalloc.h> is the library's API; <linux/upalloc.h> the device's ABI,
# where a kernel that shipped the driver would put it.
install-headers:
	$(INSTALL) -D -m 0644 $(UPALLOC_TOP)/userlib/include/upalloc.h \
		$(DESTDIR)$(INCLUDEDIR)/upalloc.h
	$(INSTALL) -D -m 0644 $(UPALLOC_TOP)/kmod/uapi/upalloc.h \
		$(DESTDIR)$(INCLUDEDIR)/linux/upalloc.h

install-pkgconfig:
	$(INSTALL) -d $(DESTDIR)$(PKGCONFIGDIR)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
		-e 's|@VERSION@|$(UPALLOC_VERSION)|g' \
		-e 's|@LIBS_PRIVATE@|$(UPALLOC_LIBS_PRIVATE)|g' \
		$(UPALLOC_TOP)/tools/upalloc.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/upalloc.pc

# upalloc-run learns where the library went; upalloc-run imports upastat
# from its own directory, so the tools stay together in BINDIR. Its exit
# hook goes to LIBDIR/upalloc/.
install-tools:
	$(MAKE) -C $(UPALLOC_TOP)/tools/upalloc-run-stats
	$(INSTALL) -D -m 0755 $(upalloc_build)/tools/upalloc-run-stats.so \
		$(DESTDIR)$(LIBDIR)/upalloc/upalloc-run-stats.so
	$(INSTALL) -d $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 0755 $(UPALLOC_TOP)/tools/upastat $(UPALLOC_TOP)/tools/heapviz \
		$(DESTDIR)$(BINDIR)/
	sed -e 's|^INSTALLED_LIBDIR = "@LIBDIR@"|INSTALLED_LIBDIR = "$(LIBDIR)"|' \
		$(UPALLOC_TOP)/tools/upalloc-run > $(DESTDIR)$(BINDIR)/upalloc-run
	chmod 0755 $(DESTDIR)$(BINDIR)/upalloc-run

install-man:
	$(INSTALL) -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man4
	$(INSTALL) -m 0644 $(addprefix $(UPALLOC_TOP)/tools/man/,$(upalloc_man1)) $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 0644 $(addprefix $(UPALLOC_TOP)/tools/man/,$(upalloc_man3)) $(DESTDIR)$(MANDIR)/man3/
	$(INSTALL) -m 0644 $(addprefix $(UPALLOC_TOP)/tools/man/,$(upalloc_man4)) $(DESTDIR)$(MANDIR)/man4/

install-udev:
	$(INSTALL) -D -m 0644 $(UPALLOC_TOP)/tools/99-upalloc.rules \
		$(DESTDIR)$(UDEVRULESDIR)/99-upalloc.rules
	$(if $(DESTDIR),,-udevadm control --reload-rules 2>/dev/null)

# One module per kernel release in KVER, built against its headers. The
# build is a recipe of its own: 'make -n' runs lines that use $(MAKE), and
# must not run the install lines with them.
install-module: build-module-for-install
	@for k in $(upalloc_kvers); do \
		$(INSTALL) -D -m 0644 $(upalloc_build)/kmod/$$k/upalloc.ko \
			$(DESTDIR)/lib/modules/$$k/updates/upalloc.ko || exit 1; \
		$(if $(DESTDIR),true,$(DEPMOD) -a $$k) || exit 1; \
	done

build-module-for-install:
	@for k in $(upalloc_kvers); do \
		if [ ! -d /lib/modules/$$k/build ] && [ ! -d /usr/src/linux-headers-$$k ]; then \
			echo "install-module: no kernel headers for $$k (apt-get install linux-headers-$$k)," \
			     "or set KVER=<release>; kernels with headers here: $(or $(upalloc_header_kvers),none)" >&2; \
			exit 1; \
		fi; \
		$(MAKE) -C $(UPALLOC_TOP)/kmod KVER=$$k || exit 1; \
	done

uninstall-module:
	@for k in $(upalloc_kvers); do \
		rm -f $(DESTDIR)/lib/modules/$$k/updates/upalloc.ko; \
		$(if $(DESTDIR),true,[ ! -d /lib/modules/$$k/kernel ] || $(DEPMOD) -a $$k); \
	done

uninstall: uninstall-module
	rm -f $(DESTDIR)$(LIBDIR)/$(upalloc_libfile) \
		$(DESTDIR)$(LIBDIR)/libupalloc.so.$(UPALLOC_SOVERSION) \
		$(DESTDIR)$(LIBDIR)/libupalloc.so $(DESTDIR)$(LIBDIR)/libupalloc.a \
		$(DESTDIR)$(LIBDIR)/libupalloc-prefix.a \
		$(DESTDIR)$(INCLUDEDIR)/upalloc.h $(DESTDIR)$(INCLUDEDIR)/linux/upalloc.h \
		$(DESTDIR)$(PKGCONFIGDIR)/upalloc.pc \
		$(DESTDIR)$(LIBDIR)/upalloc/upalloc-run-stats.so \
		$(addprefix $(DESTDIR)$(BINDIR)/,$(upalloc_tools)) \
		$(addprefix $(DESTDIR)$(MANDIR)/man1/,$(upalloc_man1)) \
		$(addprefix $(DESTDIR)$(MANDIR)/man3/,$(upalloc_man3)) \
		$(addprefix $(DESTDIR)$(MANDIR)/man4/,$(upalloc_man4)) \
		$(DESTDIR)$(UDEVRULESDIR)/99-upalloc.rules
	-rmdir $(DESTDIR)$(LIBDIR)/upalloc 2>/dev/null
	$(if $(DESTDIR),,-$(LDCONFIG))

# The module's source as DKMS wants it: dkms.conf at the top, the Kbuild
# that descends into kmod/, and kmod/'s sources (no build products).
install-dkms-source:
	rm -rf $(DESTDIR)$(DKMS_SRCDIR)
	$(INSTALL) -d $(DESTDIR)$(DKMS_SRCDIR)/kmod/uapi
	$(INSTALL) -m 0644 $(UPALLOC_TOP)/dkms.conf $(UPALLOC_TOP)/Kbuild $(DESTDIR)$(DKMS_SRCDIR)/
	cd $(UPALLOC_TOP)/kmod && for f in Kbuild Makefile *.c *.h uapi/*.h; do \
		[ ! -e "$$f" ] || $(INSTALL) -m 0644 "$$f" $(DESTDIR)$(DKMS_SRCDIR)/kmod/$$f || exit 1; \
	done

# Without DESTDIR: register with DKMS, then build and install for KVER (if
# given) or the running kernel; DKMS rebuilds it on kernel upgrades.
dkms-install: install-dkms-source
	@if [ -n "$(DESTDIR)" ]; then \
		echo "dkms-install: DESTDIR is set: only installed the source into $(DESTDIR)$(DKMS_SRCDIR)"; \
	else \
		if ! $(DKMS) status -m upalloc -v $(UPALLOC_VERSION) | grep -q upalloc; then \
			echo "$(DKMS) add -m upalloc -v $(UPALLOC_VERSION)"; \
			$(DKMS) add -m upalloc -v $(UPALLOC_VERSION) || exit 1; \
		fi; \
		for k in $(upalloc_kvers); do \
			echo "$(DKMS) install -m upalloc -v $(UPALLOC_VERSION) -k $$k"; \
			$(DKMS) install -m upalloc -v $(UPALLOC_VERSION) -k $$k || exit 1; \
		done; \
	fi

dkms-uninstall:
	$(if $(DESTDIR),,-$(DKMS) remove -m upalloc -v $(UPALLOC_VERSION) --all)
	rm -rf $(DESTDIR)$(DKMS_SRCDIR)

.DEFAULT_GOAL := $(upalloc_saved_default_goal)
