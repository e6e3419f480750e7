#!/bin/sh
# bench/leak/unwinder.sh - what the stack caches of src/leak.c save: CPU time
# (user+sys, median of RUNS) of plain libmemkit, of leak tracking, and of leak
# tracking with MEMKIT_LEAK_FAST=0 (learnt frame sizes off: every stack not in
# the per-thread cache is walked by libgcc's DWARF unwinder). Not in make test.
#
#   bench/leak/unwinder.sh [BUILD_DIR] [RUNS]     (defaults: build, 3)
# shellcheck disable=SC2046,SC2086 # splitting "wall cpu" pairs and command lines is meant
set -eu
BUILD=${1:-build}
RUNS=${2:-3}
LIB=$(realpath "$BUILD/libmemkit.so")
OUT=$(realpath "$BUILD")/bench-leak
export BENCH_SCALE="${BENCH_SCALE:-0.1}" BENCH_THREADS="${BENCH_THREADS:-1}"
WORKLOADS=${WORKLOADS:-"wl-small wl-tree"}

make -s -C "$(dirname "$0")/.." OUT="$OUT" >/dev/null

cpu() {
	i=0
	while [ $i -lt "$RUNS" ]; do
		/usr/bin/time -f "%U %S" -o "$OUT/time.txt" env "$@" >/dev/null 2>&1 || true
		awk '{ printf "%.2f\n", $1 + $2 }' "$OUT/time.txt"
		i=$((i + 1))
	done | sort -n | awk -v n="$RUNS" 'NR == int((n + 1) / 2) { print }'
}

echo "BENCH_SCALE=$BENCH_SCALE BENCH_THREADS=$BENCH_THREADS, CPU seconds, median of $RUNS runs"
echo
echo "| workload | plain | leak | leak, MEMKIT_LEAK_FAST=0 |"
echo "|---|---|---|---|"
for w in $WORKLOADS; do
	p=$(cpu LD_PRELOAD="$LIB" "$OUT/$w")
	l=$(cpu LD_PRELOAD="$LIB" MEMKIT_LEAK=1 MEMKIT_REPORT="$OUT/r.json" "$OUT/$w")
	f=$(cpu LD_PRELOAD="$LIB" MEMKIT_LEAK=1 MEMKIT_LEAK_FAST=0 MEMKIT_REPORT="$OUT/r.json" "$OUT/$w")
	echo "| $w | $p | $l | $f |"
done
