#!/bin/bash
# bench/checks.sh BUILD [RUNS] - what libmemkit's safety costs, side by side:
#   memkit          the default library (pointer and double-free checks on free)
#   memkit-nocheck  the same without the free-path checks (built only for this)
#   memkit-secure   the hardened build (encoded lists, guards, canaries, shuffling)
# Each workload runs under the three, interleaved, RUNS times (default 5);
# the medians of CPU time (user+sys) and peak RSS are printed as a Markdown
# table with ratios to the default build. Run by `make bench` after run.sh.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
runs=${2:-${BENCH_RUNS:-5}}
here=$(cd "$(dirname "$0")" && pwd)
cmake --build "$build" --target memkit memkit_nocheck memkit_secure >/dev/null
make -s -C "$here" OUT="$build/bench"
libs=(libmemkit.so libmemkit-nocheck.so libmemkit-secure.so)
names=(memkit memkit-nocheck memkit-secure)
workloads=(small tree larson prodcons random)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for w in "${workloads[@]}"; do
	for ((r = 0; r < runs; r++)); do
		for i in "${!libs[@]}"; do
			res="$tmp/$w.$i.$r"
			LD_PRELOAD="$build/${libs[$i]}" "$build/bench/measure" "$res" \
				"$build/bench/wl-$w" >"$tmp/out" 2>&1 || true
			grep -q "checksum=" "$tmp/out" || { echo "FAILED: $w under ${names[$i]}" >&2; cat "$tmp/out" >&2; exit 1; }
		done
	done
done

echo "| workload | allocator | cpu s | RSS MiB | cpu x memkit | RSS x memkit |"
echo "|---|---|---:|---:|---:|---:|"
for w in "${workloads[@]}"; do
	base_cpu="" base_rss=""
	for i in "${!libs[@]}"; do
		cpu=$(for f in "$tmp/$w.$i".*; do sed -E 's/.*user=([0-9.]+) sys=([0-9.]+).*/\1 \2/' "$f" | awk '{print $1+$2}'; done | median)
		rss=$(for f in "$tmp/$w.$i".*; do sed -E 's/.*maxrss_kb=([0-9]+).*/\1/' "$f"; done | median)
		[ -z "$base_cpu" ] && base_cpu=$cpu base_rss=$rss
		awk -v w="$w" -v n="${names[$i]}" -v c="$cpu" -v r="$rss" -v bc="$base_cpu" -v br="$base_rss" \
			'BEGIN { printf "| %s | %s | %.3f | %.1f | %.2f | %.2f |\n", w, n, c, r / 1024, c / bc, r / br }'
	done
done
