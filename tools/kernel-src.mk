# SPDX-License-Identifier: MIT
#
# Files taken at build time from Debian's linux-source-6.1 package and never
# committed: the kselftest harness headers (used by selftests/ and the
# userlib tests) and checkpatch.pl. Include this file from any Makefile;
# depend on $(KSFT_HARNESS) or $(CHECKPATCH).

kernel_src_saved_goal := $(.DEFAULT_GOAL)
UPALLOC_TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
BUILD ?= $(UPALLOC_TOP)/build
KSRC_TAR ?= /usr/src/linux-source-6.1.tar.xz
KSFT_DIR := $(BUILD)/ksft
KSFT_HARNESS := $(KSFT_DIR)/kselftest_harness.h
CHECKPATCH := $(BUILD)/kernel-scripts/checkpatch.pl

KSRC_CHECK = @test -r $(KSRC_TAR) || { echo "error: $(KSRC_TAR) is missing: apt-get install linux-source-6.1" >&2; exit 1; }

$(KSFT_HARNESS):
	$(KSRC_CHECK)
	@mkdir -p $(KSFT_DIR)
	tar -xJf $(KSRC_TAR) -C $(KSFT_DIR) --strip-components=4 \
		linux-source-6.1/tools/testing/selftests/kselftest.h \
		linux-source-6.1/tools/testing/selftests/kselftest_harness.h
	@touch $@

$(CHECKPATCH):
	$(KSRC_CHECK)
	@mkdir -p $(dir $@)
	tar -xJf $(KSRC_TAR) -C $(dir $@) --strip-components=2 \
		linux-source-6.1/scripts/checkpatch.pl \
		linux-source-6.1/scripts/spelling.txt \
		linux-source-6.1/scripts/const_structs.checkpatch
	@touch $@

# Defining rules here must not change the including Makefile's default goal.
.DEFAULT_GOAL := $(kernel_src_saved_goal)
