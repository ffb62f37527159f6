# SPDX-License-Identifier: MIT
#
# Collects test results from several sources (kselftest-harness binaries,
# shell checks) into ONE KTAP stream with a single plan, so that the suite
# is counted like any other: `ok N name`, `not ok N name`, `ok N # SKIP why`.
# Source it from bash, call ktap_* and end with `ktap_finish` (prints the
# stream, returns 0 when nothing failed).
#
# The whole stream is buffered and printed at the end because the plan must
# come first and the number of results is only known afterwards.

KTAP_BUF=$(mktemp "${TMPDIR:-/tmp}/upa-ktap.XXXXXX")
KTAP_N=0
KTAP_FAILED=0

# ktap_diag TEXT...: a diagnostic line.
ktap_diag() {
	printf '# %s\n' "$*" >>"$KTAP_BUF"
}

# ktap_ok NAME / ktap_fail NAME [WHY] / ktap_skip NAME WHY
ktap_ok() {
	KTAP_N=$((KTAP_N + 1))
	printf 'ok %d %s\n' "$KTAP_N" "$1" >>"$KTAP_BUF"
}

ktap_fail() {
	KTAP_N=$((KTAP_N + 1))
	KTAP_FAILED=$((KTAP_FAILED + 1))
	[ -n "$2" ] && ktap_diag "$1: $2"
	printf 'not ok %d %s\n' "$KTAP_N" "$1" >>"$KTAP_BUF"
}

ktap_skip() {
	KTAP_N=$((KTAP_N + 1))
	printf 'ok %d %s # SKIP %s\n' "$KTAP_N" "$1" "$2" >>"$KTAP_BUF"
}

# ktap_run_binary NAME TIMEOUT CMD...: run a kselftest-harness binary and
# re-number its results into the stream. Its own header and plan are
# dropped; every other line becomes a diagnostic. A binary that dies, hangs
# or reports fewer results than it planned adds one failed result NAME, so
# a crash is never silently counted as fewer tests.
ktap_run_binary() {
	local name=$1 tmo=$2 out rc line plan=-1 seen=0
	shift 2
	out=$(mktemp "${TMPDIR:-/tmp}/upa-bin.XXXXXX")
	SECONDS=0
	timeout -k 5 "$tmo" "$@" >"$out" 2>&1 </dev/null
	rc=$?
	ktap_diag "$name: ${SECONDS}s"
	while IFS= read -r line; do
		case $line in
		"TAP version"*|"KTAP version"*)
			;;
		1..*)
			plan=${line#1..}
			plan=${plan%% *}
			;;
		"ok "[0-9]*|"not ok "[0-9]*)
			[[ $line =~ ^(not\ ok|ok)\ [0-9]+(.*)$ ]]
			local status=${BASH_REMATCH[1]} rest=${BASH_REMATCH[2]}
			KTAP_N=$((KTAP_N + 1))
			[ "$status" = "not ok" ] && KTAP_FAILED=$((KTAP_FAILED + 1))
			printf '%s %d%s\n' "$status" "$KTAP_N" "$rest" >>"$KTAP_BUF"
			seen=$((seen + 1))
			;;
		"# Totals:"*|"# PASSED:"*|"# FAILED:"*)
			# per-binary summaries would be miscounted as results
			;;
		"#"*)
			printf '%s\n' "$line" >>"$KTAP_BUF"
			;;
		*)
			printf '# %s\n' "$line" >>"$KTAP_BUF"
			;;
		esac
	done <"$out"
	rm -f "$out"
	if [ "$seen" -eq 0 ] && { [ "$rc" -eq 4 ] || [ "$rc" -eq 77 ]; }; then
		# KSFT_SKIP, or 77 from a non-harness test: the whole binary
		ktap_skip "$name" "the program skipped itself (exit $rc)"
	elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		ktap_fail "$name" "timed out after ${tmo}s ($seen of $plan results)"
	elif [ "$plan" -lt 0 ] || [ "$seen" -lt "$plan" ]; then
		ktap_fail "$name" "exited with status $rc after $seen of $plan results"
	elif [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
		# kselftest binaries exit 0 (all passed) or 1 (some failed)
		ktap_fail "$name" "exited with status $rc"
	fi
}

# ktap_finish: print the stream; status 0 when nothing failed.
ktap_finish() {
	printf 'TAP version 13\n1..%d\n' "$KTAP_N"
	cat "$KTAP_BUF"
	rm -f "$KTAP_BUF"
	[ "$KTAP_FAILED" -eq 0 ]
}
