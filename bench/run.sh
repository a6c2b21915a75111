#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run.sh: run every benchmark binary in OUT/bench against OUT/winnowd (ingest first), each
# with `--daemon OUT/winnowd` plus any extra arguments given here. Each bench starts its own
# daemon on a free port with a temporary data directory and prints one parseable line per
# measurement. Exit 1 when a bench fails to run (a missed target is printed as MISS, not
# counted as a failure).
# Usage: bench/run.sh OUT [ARGS...]   (OUT = build; e.g. bench/run.sh build --records 50000)
set -u
out=${1:-build}
shift || true
daemon=$out/winnowd
if [ ! -x "$daemon" ]; then
	echo "run.sh: $daemon not built (make build/winnowd)" >&2
	exit 1
fi
fail=0
benches=()
[ -x "$out/bench/ingest" ] && benches+=("$out/bench/ingest")
for b in "$out"/bench/*; do
	[ -f "$b" ] && [ -x "$b" ] || continue
	[ "$b" = "$out/bench/ingest" ] && continue
	benches+=("$b")
done
# Script benches (the reference is in-process Python: FAISS, numpy) run from the source tree.
for b in bench/*.py; do
	[ -f "$b" ] && benches+=("$b")
done
if [ ${#benches[@]} -eq 0 ]; then
	echo "run.sh: no benchmark binaries in $out/bench (make bench builds them)" >&2
	exit 1
fi
for b in "${benches[@]}"; do
	echo "== $(basename "$b")"
	run=("$b")
	case "$b" in *.py) run=("${PYTHON:-/usr/bin/python3}" "$b") ;; esac
	if ! "${run[@]}" --daemon "$daemon" "$@"; then
		echo "run.sh: $(basename "$b") failed" >&2
		fail=1
	fi
done
exit $fail
