#!/bin/bash
# bench/compare.sh - one workload under several allocators, interleaved
# (A B C, B C A, C A B, ...), RUNS times; prints the median wall time, CPU time
# (user+sys) and peak RSS of each. For quick A/B checks of a change: build
# the variant, copy its libmemkit.so aside, and compare the two side by side.
#
#   bench/compare.sh RUNS WORKLOAD LIB...     (LIB: a .so to preload, or glibc)
#   e.g. bench/compare.sh 5 wl-larson /tmp/before.so build/libmemkit.so glibc
#
# WORKLOAD is a program of build/bench (BENCH_DIR to change); the workloads'
# own variables (BENCH_SCALE, BENCH_THREADS) pass through.
set -eu
if [ $# -lt 3 ]; then
	echo "usage: bench/compare.sh RUNS WORKLOAD LIB..." >&2
	exit 2
fi
runs=$1 wl=$2
shift 2
bin="${BENCH_DIR:-build/bench}/$wl"
[ -x "$bin" ] || { echo "compare.sh: $bin not found (make bench builds it)" >&2; exit 2; }
# FILE CMD...: runs CMD and writes "wall user sys maxrss-KiB" to FILE, with
# bench/measure.c (wait4's CPU times to the microsecond: time(1) rounds them
# to hundredths, which the differences measured here are a few of)
measure_bin="${BENCH_DIR:-build/bench}/measure"
[ -x "$measure_bin" ] || { echo "compare.sh: $measure_bin not found (make bench builds it)" >&2; exit 2; }
measure() {
	local out=$1 status
	shift
	"$measure_bin" "$out.raw" "$@" >/dev/null 2>&1
	[ -s "$out.raw" ] || return 1
	sed -E 's/.*status=([0-9]+) wall=([^ ]+) user=([^ ]+) sys=([^ ]+) maxrss_kb=([0-9]+).*/\2 \3 \4 \5/' \
		"$out.raw" >>"$out"
	status=$(sed -E 's/^status=([0-9]+).*/\1/' "$out.raw")
	[ "$status" = 0 ]
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
libs=("$@")
count=${#libs[@]}
for i in $(seq 1 "$runs"); do
	# each round starts one library further on (A B C, B C A, ...): a
	# run's place in the round can bias it (bench/leak/ab.sh's second build
	# measured 1-8% slower than itself first: bench/notes.md, thirteenth
	# round)
	for k in $(seq 0 $((count - 1))); do
		n=$(((i + k) % count))
		lib=${libs[$n]}
		pre=$lib
		[ "$lib" = glibc ] && pre=
		measure "$tmp/t" env LD_PRELOAD="$pre" timeout 120 "$bin" ||
			echo "compare.sh: $lib run $i failed" >&2
		tail -n 1 "$tmp/t" >>"$tmp/$n" 2>/dev/null || true
	done
done
n=0
for lib in "$@"; do
	python3 - "$lib" "$tmp/$n" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[2]) if len(l.split()) == 4]
if not rows:
    print("%-32s no successful run" % sys.argv[1]); sys.exit(0)
med = lambda xs: st.median(xs)
print("%-32s wall %.3f s  cpu %.3f s  rss %.1f MiB" % (sys.argv[1],
      med(float(r[0]) for r in rows), med(float(r[1]) + float(r[2]) for r in rows),
      med(float(r[3]) for r in rows) / 1024))
PY
	n=$((n + 1))
done
