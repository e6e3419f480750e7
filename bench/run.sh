#!/bin/sh
# bench/run.sh BUILDDIR - build the benchmark workloads and run the suite
# against glibc, jemalloc, tcmalloc, mimalloc and BUILDDIR/libmemkit.so.
# Writes BENCHMARKS.md and docs/bench-chart.svg; raw runs go to
# BUILDDIR/bench/results.csv. Options are environment variables, listed in
# bench/run.py (BENCH_RUNS, BENCH_QUICK, BENCH_ONLY, BENCH_ALLOCATORS, ...).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
make -s -C "$here" OUT="$build/bench"
exec python3 "$here/run.py" "$build"
