# SPDX-License-Identifier: MIT
#
# upalloc top-level Makefile.
#
#   make            build the module (every installed Debian 6.1/6.12 kernel),
#                   the library, the selftests and the tools
#   make demo       boot a guest (KERNEL=6.1 or 6.12), insert the module, run
#                   python3 and sqlite3 on libupalloc, show /proc/upalloc/*
#   make check      build, run the host suites, then boot one guest per kernel
#                   (KERNELS="6.1 6.12") for the guest suites; prints
#                   "N passed, N failed, N skipped" last, fails if any failed
#   make deps       install the Debian packages needed (tools/install-deps)
#   make checkpatch checkpatch.pl --strict on the module sources
#   make stress-long STRESS_SECONDS=3600   the library stress test for hours
#   make fuzz-long FUZZ_SECONDS=3600       the library fuzzer for hours
#   make check-debug  the module under a debug 6.12 kernel (KASAN, kmemleak,
#                   lockdep, fault injection...), built once and cached in
#                   /var/cache/upalloc/debug-kernel (tools/debug-kernel/)
#   make check-race the race suites in a guest with a host thread per CPU
#   make devfuzz-long  the device fuzzer for FUZZ_SECONDS (3600) on KERNEL;
#                   DEBUG=1: on the debug kernel with fault injection
#   make clean      remove build/
#
# Where kernel code runs: natively when this machine runs Debian's 6.1 or
# 6.12 and can load modules (root, headers for uname -r), else in
# tools/upalloc-vm (qemu TCG); tools/native decides, and demo and check say
# which mode and why.  Results of make check: build/results/.

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD := $(TOP)/build
RESULTS := $(BUILD)/results
VM := $(TOP)/tools/upalloc-vm
KERNELS ?= 6.1 6.12
KERNEL ?= 6.1
export KERNELS

# Every part is required; a missing one is named rather than skipped.
need = @test -f $(TOP)/$(1) || { echo "error: $(1) is missing from this tree" >&2; exit 1; }
TOOL_MAKEFILES := $(wildcard $(TOP)/tools/Makefile $(TOP)/tools/*/Makefile)

.PHONY: all module userlib selftests tools checkpatch check check-host \
	check-guest check-debug check-race demo deps clean stress-long fuzz-long \
	devfuzz-long

all: module userlib selftests tools

# Kernel releases the KERNELS names resolve to (newest installed of each).
kernel_releases = $(foreach k,$(KERNELS),$(shell $(VM) --resolve --kernel $(k) 2>/dev/null))

module:
	$(call need,kmod/Makefile)
	@for k in $(KERNELS); do $(VM) --resolve --kernel $$k >/dev/null || exit 1; done
	@for k in $(kernel_releases); do \
		$(MAKE) -C $(TOP)/kmod KVER=$$k || exit 1; \
	done

userlib:
	$(call need,userlib/Makefile)
	$(MAKE) -C $(TOP)/userlib

selftests:
	$(call need,selftests/Makefile)
	$(MAKE) -C $(TOP)/selftests

tools:
	@for mk in $(TOOL_MAKEFILES); do \
		$(MAKE) -C $$(dirname $$mk) || exit 1; \
	done

checkpatch:
	$(call need,kmod/Makefile)
	$(MAKE) -C $(TOP)/kmod checkpatch

# Build once on the host, run the host suites, then one guest per kernel
# (or, in native mode, the guest suites here with the module inserted);
# a failing suite must not stop the others, so only the final count decides.
check: all
	@rm -rf $(RESULTS)
	@mkdir -p $(RESULTS)/host
	@start=$$(date +%s); \
	mode=$$($(TOP)/tools/native detect); native=$$?; \
	[ $$native -le 1 ] || exit 2; \
	echo "make check: $$mode"; \
	$(TOP)/tools/guest/run-suites host $(RESULTS)/host; \
	if [ $$native = 0 ]; then \
		$(TOP)/tools/native check $(RESULTS)/$$(uname -r); \
	else for k in $(KERNELS); do \
		$(TOP)/tools/guest/check-kernel $$k $(RESULTS); \
		$(TOP)/tools/guest/check-race $$k $(RESULTS); \
	done; fi; \
	echo "make check: results in $(RESULTS) ($$(( $$(date +%s) - start ))s)"; \
	$(TOP)/tools/ktap-count $(RESULTS)/*/*.tap

# Only the host part, or only the guest part (no rebuild), for quick loops.
check-host:
	@rm -rf $(RESULTS)/host && mkdir -p $(RESULTS)/host
	@$(TOP)/tools/guest/run-suites host $(RESULTS)/host; \
	$(TOP)/tools/ktap-count $(RESULTS)/host/*.tap

check-guest:
	@for k in $(KERNELS); do $(TOP)/tools/guest/check-kernel $$k $(RESULTS); \
		$(TOP)/tools/guest/check-race $$k $(RESULTS); done; \
	$(TOP)/tools/ktap-count $(foreach r,$(kernel_releases),$(RESULTS)/$(r)/*.tap $(RESULTS)/$(r)-race/*.tap)

# The race suites alone (a guest per kernel, one host thread per guest CPU).
check-race: module selftests userlib
	@$(MAKE) -s -C $(TOP)/userlib/tests all
	@for k in $(KERNELS); do $(TOP)/tools/guest/check-race $$k $(RESULTS); done; \
	$(TOP)/tools/ktap-count $(foreach r,$(kernel_releases),$(RESULTS)/$(r)-race/*.tap)

# The module under the debug kernel: selftests, the library's stress tests,
# the fuzzer (plain and with fault injection), kmemleak; then the harness
# test that it fails on a planted use-after-free and a planted leak.
check-debug: selftests userlib tools
	@$(MAKE) -s -C $(TOP)/userlib/tests all
	@start=$$(date +%s); \
	$(TOP)/tools/debug-kernel/check-debug $(RESULTS)/debug; \
	$(TOP)/tools/debug-kernel/plant-test >$(RESULTS)/debug/plant-test.tap; \
	cat $(RESULTS)/debug/plant-test.tap | grep -E '^(not )?ok'; \
	echo "make check-debug: $$(( $$(date +%s) - start ))s"; \
	$(TOP)/tools/ktap-count $(RESULTS)/debug/*.tap

devfuzz-long: tools
	$(TOP)/tools/devfuzz/long-run --kernel $(KERNEL) $(if $(DEBUG),--debug) \
		$(if $(FUZZ_SECONDS),--seconds $(FUZZ_SECONDS))

# The randomized stress test of the library for as long as asked, on the
# host (mmap backend): make stress-long STRESS_SECONDS=3600 [STRESS_THREADS=8]
STRESS_SECONDS ?= 3600
STRESS_THREADS ?= 4
stress-long: userlib
	$(MAKE) -C $(TOP)/userlib/tests stress-long \
		STRESS_SECONDS=$(STRESS_SECONDS) STRESS_THREADS=$(STRESS_THREADS)

# Coverage-guided fuzzing of the library for as long as asked:
# make fuzz-long FUZZ_SECONDS=3600 [FUZZ_JOBS=2]
FUZZ_SECONDS ?= 3600
FUZZ_JOBS ?= 1
fuzz-long:
	$(MAKE) -C $(TOP)/userlib/fuzz fuzz-long \
		FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS)

demo:
	@mode=$$(UPALLOC_WANT_KERNEL=$(if $(filter command line environment,$(origin KERNEL)),$(KERNEL)) \
		$(TOP)/tools/native detect); native=$$?; \
	[ $$native -le 1 ] || exit 2; \
	echo "demo: $$mode"; \
	if [ $$native = 0 ]; then \
		$(MAKE) --no-print-directory userlib || exit 1; \
		exec $(TOP)/tools/native run tools/guest/demo; \
	fi; \
	rel=$$($(VM) --resolve --kernel $(KERNEL)) || exit 2; \
	$(MAKE) --no-print-directory KERNELS=$(KERNEL) module userlib || exit 1; \
	mod=$(BUILD)/kmod/$$rel/upalloc.ko; \
	if [ -f $$mod ]; then modarg="--module $$mod"; else \
		echo "demo: $$mod was not built (kmod/ missing?)" >&2; exit 1; fi; \
	$(VM) --kernel $$rel $$modarg --timeout 900 -- tools/guest/demo

deps:
	$(TOP)/tools/install-deps

clean:
	-@for d in kmod userlib selftests; do \
		[ ! -f $(TOP)/$$d/Makefile ] || $(MAKE) -C $(TOP)/$$d clean; \
	done
	rm -rf $(BUILD)

-include $(TOP)/tools/install.mk
