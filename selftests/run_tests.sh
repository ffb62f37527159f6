#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the upalloc selftest binaries one after the other and print a single
# KTAP stream: every TEST result of every binary is renumbered into one
# sequence, named <fixture>.<test> (fixtures are named after their binary),
# followed by a trailing plan "1..N" and a "# Totals:" line.
#
# Besides the harness results, each binary gets one "<binary>.kernel_log_clean"
# result when the kernel log is readable (no BUG/WARNING/Oops/"Bad page state"
# etc. appeared while it ran), and the run ends with
# "final.module_params_restored" (every module parameter has its value from
# before the run; put back after each binary) and "final.no_pages_or_regions_left"
# (pages_live and regions_live are 0 once every test has exited) when the
# module is loaded.
#
# A binary that dies, hangs (killed after --timeout seconds) or prints fewer
# results than its plan announced gets a "not ok" line per missing result.
# Exit status: 0 when nothing failed, 1 otherwise.

set -u

timeout_s=180
if [ "${1:-}" = "--timeout" ]; then
	timeout_s=$2
	shift 2
fi

n=0 passed=0 failed=0 skipped=0

result() { # status name [directive]
	n=$((n + 1))
	case "$1" in
	ok) passed=$((passed + 1)); echo "ok $n $2" ;;
	skip) skipped=$((skipped + 1)); echo "ok $n $2 # SKIP ${3:-}" ;;
	*) failed=$((failed + 1)); echo "not ok $n $2${3:+ # $3}" ;;
	esac
}

kernel_log_lines() {
	dmesg 2>/dev/null | wc -l
}

bad_kernel_log='BUG:|WARNING:|Oops|general protection|Bad page state|Bad rss-counter|Huh VM_FAULT_OOM|blocked for more than|hung_task|refcount_t:|list_(add|del) corruption'

can_read_kernel_log=0
dmesg >/dev/null 2>&1 && can_read_kernel_log=1

# Module parameters as they were: tests that change them restore them, and
# a test that dies before its teardown must not leave its limits behind.
params=/sys/module/upalloc/parameters
declare -A saved_params=()
if [ -d "$params" ]; then
	for f in "$params"/*; do
		[ -r "$f" ] && saved_params[$f]=$(cat "$f")
	done
fi

# Put back what a binary left changed (one killed at its timeout skips its
# teardown), before the next binary runs: its limits must not make other
# binaries fail. What was left is reported by final.module_params_restored.
params_left=""
restore_params() { # binary
	local f now
	for f in "${!saved_params[@]}"; do
		now=$(cat "$f" 2>/dev/null)
		if [ "$now" != "${saved_params[$f]}" ]; then
			params_left="$params_left $1:$(basename "$f")=$now"
			echo "${saved_params[$f]}" >"$f" 2>/dev/null
		fi
	done
}

outfile=$(mktemp "${TMPDIR:-/tmp}/upalloc-selftest.XXXXXX") || exit 1
trap 'rm -f "$outfile"' EXIT

echo "TAP version 13"
for bin in "$@"; do
	base=$(basename "$bin")
	echo "# ===== $base"
	log_before=0
	[ $can_read_kernel_log = 1 ] && log_before=$(kernel_log_lines)

	# Output goes to a file, not a pipe: a test process stuck in the kernel
	# after the timeout must not keep the runner waiting for end-of-file.
	timeout -k 10 "$timeout_s" "$bin" >"$outfile" 2>&1 </dev/null
	exit_code=$?

	plan=-1 seen=0 current=""
	while IFS= read -r line; do
		if [[ $line =~ ^#\ +RUN\ +([^ ]+)\ \.\.\.$ ]]; then
			current=${BASH_REMATCH[1]}
			echo "$line"
		elif [[ $line =~ ^1\.\.([0-9]+) ]]; then
			plan=${BASH_REMATCH[1]}
		elif [[ $line =~ ^(not\ )?ok\ [0-9]+\ ?(.*)$ ]]; then
			seen=$((seen + 1))
			rest=${BASH_REMATCH[2]}
			name=${current:-$base.test_$seen}
			if [[ $rest =~ ^#\ SKIP\ ?(.*)$ ]]; then
				# 6.1 harness: "ok N # SKIP reason", no name
				result skip "$name" "${BASH_REMATCH[1]}"
			elif [[ $rest =~ ^([^ ]+)\ #\ SKIP\ ?(.*)$ ]]; then
				result skip "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
			else
				rest=${rest%% *}
				if [[ $line =~ ^not ]]; then
					result fail "${rest:-$name}"
				else
					result ok "${rest:-$name}"
				fi
			fi
			current=""
		elif [[ $line =~ ^TAP\ version ]]; then
			:
		elif [[ $line =~ ^#\ Totals:(.*)$ ]]; then
			# Only the run's own Totals line may start like this.
			echo "# $base totals:${BASH_REMATCH[1]}"
		elif [[ $line =~ ^# ]]; then
			echo "$line"
		else
			echo "# $line"
		fi
	done <"$outfile"

	why="exit status $exit_code"
	case "$exit_code" in
	124 | 137) why="killed after the ${timeout_s}s timeout" ;;
	esac
	if [ "$plan" -lt 0 ] && [ "$seen" -eq 0 ]; then
		result fail "$base.startup" "no KTAP output, $why"
	fi
	missing=$((plan - seen))
	complete=0
	[ "$plan" -ge 0 ] && [ "$missing" -eq 0 ] && complete=1
	while [ "$missing" -gt 0 ]; do
		result fail "${current:-$base.result_$((seen + 1))}" "no result, $why"
		current=""
		seen=$((seen + 1))
		missing=$((missing - 1))
	done
	case "$exit_code" in
	0 | 1 | 4) ;;
	*) # every result was there, yet the binary died or hung at the end
		[ "$complete" = 1 ] && result fail "$base.exit_status" "$why" ;;
	esac

	restore_params "$base"

	if [ $can_read_kernel_log = 1 ]; then
		bad=$(dmesg 2>/dev/null | tail -n +"$((log_before + 1))" |
			grep -E "$bad_kernel_log")
		if [ -n "$bad" ]; then
			printf '%s\n' "$bad" | sed 's/^/# kernel: /'
			result fail "$base.kernel_log_clean"
		else
			result ok "$base.kernel_log_clean"
		fi
	fi
done

if [ ${#saved_params[@]} -gt 0 ]; then
	if [ -z "$params_left" ]; then
		result ok final.module_params_restored
	else
		echo "# left changed (restored after each binary):$params_left"
		result fail final.module_params_restored
	fi
fi

# Everything above has exited: the module must hold no page and no region.
if [ -r /proc/upalloc/stats ]; then
	live=$(awk '$1 == "pages_live" || $1 == "regions_live" { printf "%s=%s ", $1, $2 }' \
		/proc/upalloc/stats)
	echo "# after all tests: $live"
	if [ "$live" = "regions_live=0 pages_live=0 " ]; then
		result ok final.no_pages_or_regions_left
	else
		result fail final.no_pages_or_regions_left
	fi
else
	result skip final.no_pages_or_regions_left "/proc/upalloc/stats missing"
fi

echo "1..$n"
echo "# Totals: pass:$passed fail:$failed xfail:0 xpass:0 skip:$skipped error:0"
[ "$failed" -eq 0 ]
