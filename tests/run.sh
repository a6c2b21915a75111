#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run.sh: run every unit-test binary under OUT/tests and every integration test in
# tests/integration/test_*.py against OUT/winnowd; sum their "N passed, N failed"
# lines into one final line. Exit 1 on any failure, or when a suite dies without
# printing its summary (counted as one failure).
# Usage: tests/run.sh OUT   (OUT = build or build/san)
set -u
out=${1:-build}
py=${PYTHON:-/usr/bin/python3}
export WINNOWD=$(cd "$out" && pwd)/winnowd
export WINNOW_CLI=$(cd "$out" && pwd)/winnow
export WINNOW_TEST_SANITIZE=${SANITIZE:-}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
total_pass=0
total_fail=0
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

run_suite() { # name, command...
	local name=$1; shift
	local log=$log_dir/$(echo "$name" | tr '/' '_').log
	local t0=$SECONDS
	"$@" > "$log" 2>&1
	local rc=$?
	local line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -z "$line" ]; then
		echo "FAIL $name: no summary line (exit $rc)"
		tail -n 30 "$log" | sed 's/^/    /'
		total_fail=$((total_fail + 1))
		return
	fi
	local p f
	p=$(echo "$line" | awk '{print $1}')
	f=$(echo "$line" | awk '{print $3}')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # died after its summary (a leak report, a sanitizer abort)
	fi
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	printf '%-44s %4d passed, %d failed (%ds)\n' "$name" "$p" "$f" $((SECONDS - t0))
	if [ "$f" -ne 0 ]; then
		grep -E '^(FAIL|  )' "$log" | head -n 40 | sed 's/^/    /'
		[ "$rc" -ne 0 ] && tail -n 20 "$log" | sed 's/^/    /'
	fi
}

for t in $(find "$out/tests" -type f -perm -u+x -name 'test_*' 2>/dev/null | sort); do
	run_suite "unit/${t#"$out"/tests/}" "$t"
done
for t in tests/integration/test_*.py; do
	[ -f "$t" ] || continue
	run_suite "integration/$(basename "$t")" "$py" "$t"
done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
