#!/bin/sh
# run.sh - build and run the libFuzzer harness for libmemkit's mk_ API.
#
#   tests/fuzz/run.sh BUILDDIR [SECONDS]   build if needed, fuzz SECONDS (300)
#   tests/fuzz/run.sh BUILDDIR --seeds     run the committed seeds once
#   tests/fuzz/run.sh BUILDDIR --build     build only
#
# The harness and the library sources (src/*.c, built with
# MEMKIT_NO_OVERRIDE=1: mk_ names only, no malloc override) are compiled
# here with clang and -fsanitize=fuzzer,address,undefined: libFuzzer needs
# the coverage instrumentation in the allocator's own code, and only clang
# has it; ASan keeps its own malloc for the harness. New inputs go to
# BUILDDIR/tests/fuzz/corpus-work, crashes to BUILDDIR/tests/fuzz/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:?usage: run.sh BUILDDIR [SECONDS|--seeds|--build]}
what=${2:-300}
mkdir -p "$build/tests/fuzz"
out=$(cd "$build/tests/fuzz" && pwd)
bin=$out/fuzz_alloc

cc=$(command -v clang-14 || command -v clang || true)
if [ -z "$cc" ]; then
	echo "run.sh: clang 14 is not installed (scripts/deps.sh test installs clang and libclang-rt-14-dev)" >&2
	exit 1
fi

warn="-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla -Wno-format-nonliteral"
flags="-std=gnu11 -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=all -pthread"

# rebuild when the binary is missing or older than any source
stale=1
if [ -x "$bin" ] && [ -z "$(find "$root/src" "$root/include" "$here/fuzz_alloc.c" -newer "$bin" -print | head -1)" ]; then
	stale=0
fi
if [ $stale = 1 ]; then
	echo "run.sh: building $bin with $cc" >&2
	rm -rf "$out/obj"
	mkdir -p "$out/obj"
	# shellcheck disable=SC2086
	(cd "$out/obj" && "$cc" $flags $warn -fsanitize=fuzzer-no-link,address,undefined \
		-DMEMKIT_BUILD=1 -DMEMKIT_NO_OVERRIDE=1 -I"$root/include" -c "$root"/src/*.c)
	# shellcheck disable=SC2086
	"$cc" $flags $warn -Werror -fsanitize=fuzzer-no-link,address,undefined -I"$root/include" \
		-c "$here/fuzz_alloc.c" -o "$out/obj/fuzz_alloc.o"
	# shellcheck disable=SC2086
	"$cc" $flags -fsanitize=fuzzer,address,undefined "$out"/obj/*.o -o "$bin.tmp"
	mv "$bin.tmp" "$bin"
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
case "$what" in
--build) exit 0 ;;
--seeds) exec "$bin" -runs=0 "$here/corpus" ;;
esac
mkdir -p "$out/corpus-work"
exec "$bin" -max_total_time="$what" -timeout=20 -rss_limit_mb=3072 -max_len=4096 \
	-print_final_stats=1 -artifact_prefix="$out/" "$out/corpus-work" "$here/corpus"
