#!/bin/sh
# bench/leak/ab.sh - two builds' leak tracking side by side, runs alternated
# (A, B, B, A, A, B, ...) so that a noisy machine's load falls on both alike.
#
#   bench/leak/ab.sh BUILD_A BUILD_B [RUNS]     (default 7)
#
# For each workload, RUNS runs with MEMKIT_LEAK=1 of each library, then a
# markdown table of the median CPU seconds (user+sys) of each and B / A.
# Plain runs (no tracking) are alternated too, for the ratios to plain
# libmemkit. WORKLOADS, BENCH_SCALE (default 1), BENCH_THREADS (default 2)
# as for run.sh; the workloads are built under BUILD_A/bench-leak.
# shellcheck disable=SC2086 # splitting command lines is meant
set -eu
A=$(realpath "$1/libmemkit.so")
B=$(realpath "$2/libmemkit.so")
RUNS=${3:-7}
OUT=$(realpath "$1")/bench-leak
HERE=$(dirname "$0")
export BENCH_SCALE="${BENCH_SCALE:-1}" BENCH_THREADS="${BENCH_THREADS:-2}"
export PYTHONMALLOC=malloc
WORKLOADS=${WORKLOADS:-"wl-small wl-tree wl-threads wl-realloc python"}
make -s -C "$HERE/.." OUT="$OUT" >/dev/null

# CPU seconds of one run of "$@"
cpu() {
	/usr/bin/time -f "%U %S" -o "$OUT/ab-time.txt" "$@" >/dev/null 2>&1 || true
	tail -n 1 "$OUT/ab-time.txt" | awk '{ printf "%.2f\n", $1 + $2 }'
}

median() {
	sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

echo "BENCH_SCALE=$BENCH_SCALE BENCH_THREADS=$BENCH_THREADS, median CPU s of $RUNS alternated runs"
echo "A=$A"
echo "B=$B"
echo
echo "| workload | A plain | A leak (ratio) | B plain | B leak (ratio) | B leak / A leak |"
echo "|---|---|---|---|---|---|"
for w in $WORKLOADS; do
	if [ "$w" = python ]; then
		bin="$(python3 -c 'import sys; print(sys.executable)') $(realpath "$HERE/../real-python.py")"
	else
		bin="$OUT/$w"
	fi
	: >"$OUT/ab-pa" && : >"$OUT/ab-pb" && : >"$OUT/ab-la" && : >"$OUT/ab-lb"
	i=0
	while [ $i -lt "$RUNS" ]; do
		# every other round B first: with A always first, the second build
		# measured 1-8% slower than itself run first (bench/notes.md,
		# thirteenth round)
		if [ $((i % 2)) -eq 0 ]; then order="a b"; else order="b a"; fi
		for x in $order; do
			if [ $x = a ]; then lib=$A; else lib=$B; fi
			cpu env LD_PRELOAD="$lib" $bin >>"$OUT/ab-p$x"
		done
		for x in $order; do
			if [ $x = a ]; then lib=$A; else lib=$B; fi
			cpu env LD_PRELOAD="$lib" MEMKIT_LEAK=1 MEMKIT_REPORT="$OUT/ab-report.json" \
				$bin >>"$OUT/ab-l$x"
		done
		i=$((i + 1))
	done
	pa=$(median <"$OUT/ab-pa") pb=$(median <"$OUT/ab-pb")
	la=$(median <"$OUT/ab-la") lb=$(median <"$OUT/ab-lb")
	awk -v w="$w" -v pa="$pa" -v pb="$pb" -v la="$la" -v lb="$lb" 'BEGIN {
		printf "| %s | %.2f | %.2f (%.1fx) | %.2f | %.2f (%.1fx) | %.2f |\n",
			w, pa, la, la / pa, pb, lb, lb / pb, lb / la }'
done
