#!/bin/sh
# bench/leak/run.sh - what leak tracking costs: the same workloads on plain
# libmemkit, on libmemkit with MEMKIT_LEAK=1, and under valgrind memcheck
# (--leak-check=full), and heaptrack when installed. Not part of make test.
#
#   bench/leak/run.sh [BUILD_DIR] [RUNS]     (defaults: build, 3)
#
# Prints a markdown table: the median wall and CPU (user+sys) seconds of RUNS
# runs, and each column's ratio to plain libmemkit. BENCH_SCALE and
# BENCH_THREADS are passed to the workloads (defaults here: 0.1 and 2).
# valgrind and heaptrack runs are stopped after SLOW_LIMIT seconds (default
# 60): the table then says ">60"; they run SLOW_RUNS times (default RUNS).
# PEERS=no leaves them out (their columns say "-"): at BENCH_SCALE=1 they
# would take most of an hour.
# shellcheck disable=SC2046,SC2086 # splitting "wall cpu" pairs and command lines is meant
set -eu
BUILD=${1:-build}
RUNS=${2:-3}
LIB=$(realpath "$BUILD/libmemkit.so")
OUT=$(realpath "$BUILD")/bench-leak
HERE=$(dirname "$0")
export BENCH_SCALE="${BENCH_SCALE:-0.1}" BENCH_THREADS="${BENCH_THREADS:-2}"
# python3 objects through malloc, not pymalloc (set here, not through env(1):
# valgrind would not follow the exec)
export PYTHONMALLOC=malloc
WORKLOADS=${WORKLOADS:-"wl-small wl-tree wl-threads wl-realloc python"}
SLOW_LIMIT=${SLOW_LIMIT:-60}
SLOW_RUNS=${SLOW_RUNS:-$RUNS}
PEERS=${PEERS:-yes}

make -s -C "$HERE/.." OUT="$OUT" >/dev/null

# median of N timings of "$@" (measure N CMD...): prints "wall cpu"
measure() {
	n=$1
	shift
	i=0
	while [ $i -lt "$n" ]; do
		/usr/bin/time -f "%e %U %S" -o "$OUT/time.txt" "$@" >/dev/null 2>&1 || true
		# the last line: time(1) writes a note first when the command failed
		tail -n 1 "$OUT/time.txt" | awk '{ printf "%s %.2f\n", $1, $2 + $3 }'
		i=$((i + 1))
	done | sort -n | awk -v n="$n" 'NR == int((n + 1) / 2) { print }'
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-") print "-"; else if (a ~ /^>/) { sub(">", "", a); printf ">%.0fx", a / b }
		else if (b > 0) printf "%.1fx", a / b; else print "-" }'
}

# a slow tool's median wall time, or ">SLOW_LIMIT" when it was stopped
slow_measure() {
	set -- $(measure "$SLOW_RUNS" timeout "$SLOW_LIMIT" "$@")
	awk -v w="$1" -v l="$SLOW_LIMIT" 'BEGIN { if (w + 0.5 >= l) print ">" l; else print w }'
}

have_heaptrack=no
[ "$PEERS" = yes ] && command -v heaptrack >/dev/null 2>&1 && have_heaptrack=yes

slow_note=""
[ "$PEERS" = yes ] && [ "$SLOW_RUNS" != "$RUNS" ] && slow_note=" ($SLOW_RUNS for valgrind and heaptrack)"
echo "BENCH_SCALE=$BENCH_SCALE BENCH_THREADS=$BENCH_THREADS, median of $RUNS runs$slow_note, $(nproc) CPUs"
echo
printf "| workload | plain wall s | leak wall s (ratio) | valgrind wall s (ratio) | heaptrack wall s (ratio) | plain cpu s | leak cpu s (ratio) |\n"
printf "|---|---|---|---|---|---|---|\n"
for w in $WORKLOADS; do
	if [ "$w" = python ]; then
		# the interpreter itself, not a wrapper script (pyenv's shims are):
		# valgrind does not follow an exec
		py=$(python3 -c 'import sys; print(sys.executable)')
		bin="$py $(realpath "$HERE/../real-python.py")"
	else
		bin="$OUT/$w"
	fi
	set -- $(measure "$RUNS" env LD_PRELOAD="$LIB" $bin)
	pw=$1 pc=$2
	set -- $(measure "$RUNS" env LD_PRELOAD="$LIB" MEMKIT_LEAK=1 MEMKIT_REPORT="$OUT/report.json" $bin)
	lw=$1 lc=$2
	vw=-
	if [ "$PEERS" = yes ]; then
		vw=$(slow_measure valgrind --leak-check=full --log-file=/dev/null $bin)
	fi
	hw=-
	if [ $have_heaptrack = yes ]; then
		hw=$(slow_measure heaptrack -o "$OUT/heaptrack.$w" $bin)
	fi
	printf "| %s | %s | %s (%s) | %s (%s) | %s (%s) | %s | %s (%s) |\n" "$w" "$pw" \
		"$lw" "$(ratio "$lw" "$pw")" "$vw" "$(ratio "$vw" "$pw")" \
		"$hw" "$(ratio "$hw" "$pw")" "$pc" "$lc" "$(ratio "$lc" "$pc")"
done
