#!/bin/sh
# bench/pools/run.sh [BUILD_DIR] [N ROUNDS REPS] - build and run the pools
# benchmark against BUILD_DIR/libmemkit_api.a (the mk_ API without the malloc
# override, so "glibc malloc" really is glibc's). Not part of `make test`.
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
here=$(dirname "$0")
root=$here/../..
cmake --build "$build" --target memkit_api >/dev/null
out=$build/bench_pools
${CC:-cc} -std=gnu11 -O2 -Wall -Wextra -Werror -I"$root/include" "$here/bench_pools.c" \
	"$build/libmemkit_api.a" -lpthread -o "$out"
exec "$out" "$@"
