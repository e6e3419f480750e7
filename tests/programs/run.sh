#!/bin/bash
# run.sh - real programs on the allocator under test, compared with glibc.
#
#   tests/programs/run.sh LIBRARY PROGRAM WORKDIR [BINDIR]
#
# LIBRARY  the allocator to preload (libmemkit.so; any malloc library works)
# PROGRAM  one of the prog_* functions below, without the prefix
# WORKDIR  a scratch directory (emptied first)
# BINDIR   where the test binaries built by CMake are (cxxprog, vgprog)
#
# Every program runs twice, on glibc (the reference) and with
# LD_PRELOAD=LIBRARY, and the outputs must be equal. ld.so silently ignores a
# preload that it cannot load, so each preloaded run also runs with
# LD_DEBUG=files writing one trace per process: there must be at least one,
# and every process that ran with the preload must have mapped LIBRARY.
# Long-lived servers are checked in /proc/PID/maps as well.
set -euo pipefail

LIB=${1:?library}
PROG=${2:?program}
W=${3:?workdir}
BIN=${4:-}
HERE=$(cd "$(dirname "$0")" && pwd)

fail() {
	echo "FAIL $PROG: $*" >&2
	exit 1
}
note() { echo "-- $*" >&2; }

need() {
	for c in "$@"; do
		command -v "$c" >/dev/null || fail "$c is not installed (scripts/deps.sh test installs it)"
	done
}

[ -f "$LIB" ] || fail "no library at $LIB"
LIB=$(realpath "$LIB")
rm -rf "$W"
mkdir -p "$W/ref" "$W/lib" "$W/trace"
W=$(realpath "$W")

# the reference run: glibc, nothing preloaded
ref() { env -u LD_PRELOAD -u LD_DEBUG -u LD_DEBUG_OUTPUT "$@"; }
# the run under test
lib() {
	local rc=0
	env LD_PRELOAD="$LIB" LD_DEBUG=files LD_DEBUG_OUTPUT="$W/trace/ld" "$@" || rc=$?
	# no trace at all: ld.so ignored the preload; stop now (check_loaded
	# checks each process once everything has run)
	compgen -G "$W/trace/ld.*" >/dev/null || fail "no process loaded $LIB (ld.so ignored the preload?)"
	return $rc
}

# Every trace file is one process that started with the preload in its
# environment; each must show the library mapped.
check_loaded() {
	local n=0 bad=0 f
	for f in "$W"/trace/ld.*; do
		[ -e "$f" ] || break
		n=$((n + 1))
		if ! grep -qF "file=$LIB [0];  generating link map" "$f"; then
			bad=$((bad + 1))
			[ $bad -le 3 ] && note "process ${f##*.} ran without $LIB: $(grep -m1 -o 'file=[^ ]*' "$f" || true)"
		fi
	done
	[ $n -gt 0 ] || fail "no process loaded $LIB (ld.so ignored the preload?)"
	[ $bad -eq 0 ] || fail "$bad of $n processes ran without $LIB"
	note "$LIB was loaded by all $n processes started with the preload"
}

# compare FILE in ref/ and lib/
same() {
	if ! cmp -s "$W/ref/$1" "$W/lib/$1"; then
		diff -u "$W/ref/$1" "$W/lib/$1" | head -40 >&2 || true
		fail "$1 differs between glibc and $LIB"
	fi
}

# ------------------------------------------------------------ the programs

prog_python() {
	need /usr/bin/python3
	for side in ref lib; do
		(cd "$W/$side" && $side env PYTHONMALLOC=malloc PYTHONHASHSEED=0 \
			/usr/bin/python3 "$HERE/alloc_heavy.py" >out.txt)
	done
	check_loaded
	same out.txt
	grep -q '^digest ' "$W/lib/out.txt" || fail "no digest line"
}

# Python's own regression tests: a subset of modules given as arguments.
# The run on the library must pass every test that passes on glibc; glibc
# runs only the modules that failed (a machine where a test cannot pass
# must not blame the allocator, and must say so).
# Python's own regression tests: a subset of modules (PYTESTS). LD_DEBUG
# would change what their child processes print and which descriptors they
# inherit (test_subprocess checks both), so here the preload is confirmed in
# /proc/PID/maps of the running interpreter instead. The run on the library
# must pass every test that passes on glibc; glibc runs only the modules that
# failed (a machine where a test cannot pass must not blame the allocator,
# and the test says so).
prog_pytest() {
	need /usr/bin/python3.11
	[ -f /usr/lib/python3.11/test/test_dict.py ] || fail "libpython3.11-testsuite is not installed"
	local rc=0 pid loaded=0 i
	cd "$W/lib"
	# in the background, bash would start it with SIGINT ignored, and
	# test_threading checks that _thread.interrupt_main() raises
	env --default-signal LD_PRELOAD="$LIB" PYTHONMALLOC=malloc /usr/bin/python3.11 -m test -v \
		"${PYTESTS[@]}" >out.txt 2>&1 &
	pid=$!
	# the exe link changes at exec, before ld.so has mapped the preload:
	# look at the maps until the library shows up (or the process ends)
	for i in $(seq 600); do
		if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = /usr/bin/python3.11 ] &&
			grep -qF "$LIB" "/proc/$pid/maps" 2>/dev/null; then
			loaded=1
			break
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	wait "$pid" || rc=$?
	tail -5 out.txt >&2
	[ $loaded = 1 ] || fail "python3.11 (pid $pid) did not map $LIB"
	note "python3.11 (pid $pid) maps $LIB"
	[ $rc -eq 0 ] && grep -q "Tests result: SUCCESS" out.txt && return 0
	# which modules failed? regrtest prints "test_x failed" lines
	mapfile -t failed < <(grep -oE '(test_[a-z0-9_]+) failed' out.txt | cut -d' ' -f1 | sort -u)
	[ ${#failed[@]} -gt 0 ] || fail "python -m test exited $rc with no failed module named"
	note "failed on $LIB: ${failed[*]}; the details, then the same modules on glibc"
	grep -E -A15 '^(FAIL|ERROR):' out.txt | head -80 >&2 || true
	local grc=0
	(cd "$W/ref" && ref env PYTHONMALLOC=malloc /usr/bin/python3.11 -m test -q "${failed[@]}" \
		>out.txt 2>&1) || grc=$?
	[ $grc -ne 0 ] || fail "${failed[*]} pass on glibc but fail on $LIB"
	note "WARNING: ${failed[*]} fail on glibc too on this machine: not the allocator's doing"
}

prog_sqlite() {
	need sqlite3
	for side in ref lib; do
		(cd "$W/$side" && $side sqlite3 test.db <"$HERE/sqlite.sql" >out.txt)
	done
	check_loaded
	same out.txt
	[ "$(sed -n 1p "$W/lib/out.txt")" = ok ] || fail "PRAGMA integrity_check did not say ok"
	# the file written under the library, read back on glibc
	ref sqlite3 "$W/lib/test.db" 'PRAGMA integrity_check;' >"$W/lib/check.txt"
	[ "$(cat "$W/lib/check.txt")" = ok ] || fail "the database written on $LIB is damaged"
	ref sqlite3 "$W/ref/test.db" .dump >"$W/ref/dump.sql"
	ref sqlite3 "$W/lib/test.db" .dump >"$W/lib/dump.sql"
	same dump.sql
}

prog_git() {
	need git
	export GIT_AUTHOR_NAME=memkit GIT_AUTHOR_EMAIL=t@memkit.invalid
	export GIT_COMMITTER_NAME=memkit GIT_COMMITTER_EMAIL=t@memkit.invalid
	export GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z'
	export GIT_CONFIG_NOSYSTEM=1 HOME="$W"
	for side in ref lib; do
		(
			cd "$W/$side"
			$side git init -q -b main repo
			cd repo
			for d in $(seq 0 39); do
				mkdir -p "dir$d"
				seq $((d * 1000)) $((d * 1000 + 2999)) | awk -v d="$d" \
					'{ f = "dir" d "/file" ($1 % 50) ".txt"; print $1 * 7919 % 100003, "line", $1 >> f }'
			done
			$side git add -A
			$side git commit -q -m "first"
			for d in $(seq 0 3 39); do
				sed -i 's/line/LINE/' "dir$d/file7.txt"
				rm -f "dir$d/file3.txt"
			done
			$side git add -A
			$side git commit -q -m "second"
			$side git -c pack.threads=2 gc -q --aggressive
			$side git fsck --strict --no-progress
			{
				$side git rev-parse HEAD HEAD~1
				$side git log --stat --format='%H %s'
				$side git cat-file --batch-all-objects --batch-check
				$side git diff --stat HEAD~1 HEAD
			} >../out.txt
		) || fail "git failed on $side"
	done
	check_loaded
	same out.txt
}

prog_gcc() {
	need gcc g++
	local src
	for side in ref lib; do
		# same path and flags on both sides: the object files must be equal
		for src in tests/lifecycle/lifecycle.c tests/misuse/misuse.c tests/programs/cxxprog.cpp; do
			(cd "$HERE/../.." && $side gcc -O2 -g -Wall -pthread -c "$src" \
				-o "$W/$side/$(basename "$src").o")
		done
	done
	check_loaded
	for src in lifecycle.c misuse.c cxxprog.cpp; do
		same "$src.o"
	done
}

prog_cxx() {
	[ -x "$BIN/cxxprog" ] || fail "no cxxprog in $BIN"
	for side in ref lib; do
		$side "$BIN/cxxprog" >"$W/$side/out.txt"
	done
	check_loaded
	same out.txt
}

prog_perl() {
	need perl
	for side in ref lib; do
		$side env PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0 perl "$HERE/script.pl" >"$W/$side/out.txt"
	done
	check_loaded
	same out.txt
}

prog_lua() {
	need lua5.4
	for side in ref lib; do
		$side lua5.4 "$HERE/script.lua" >"$W/$side/out.txt"
	done
	check_loaded
	same out.txt
}

# a large, partly compressible file, the same every time
make_data() {
	awk 'BEGIN { s = 1; for (i = 0; i < 700000; i++) {
		s = (s * 1103515245 + 12345) % 2147483648
		printf "%08d %s %d %s\n", s % 100000000, substr("abcdefghijklmnopqrstuvwxyz", s % 26 + 1, 9), i, (i % 11 ? "x" : "yyyyyyyyyyyy")
	} }' >"$1"
}

prog_xz() {
	need xz
	make_data "$W/full.txt"
	head -c 3000000 "$W/full.txt" >"$W/data.txt"
	for side in ref lib; do
		$side xz -T2 -6 --block-size=1MiB -c "$W/data.txt" >"$W/$side/data.xz"
		$side xz -d -c "$W/$side/data.xz" >"$W/$side/data.out"
		cmp -s "$W/data.txt" "$W/$side/data.out" || fail "xz round trip differs on $side"
		head -c 500000 "$W/data.txt" | $side xz -T1 -9e -c | $side xz -d |
			cmp -s - <(head -c 500000 "$W/data.txt") ||
			fail "xz -9e round trip differs on $side"
	done
	check_loaded
	same data.xz
}

prog_sort() {
	need sort
	make_data "$W/data.txt"
	cat "$W/data.txt" "$W/data.txt" >"$W/data2.txt"
	for side in ref lib; do
		# a small buffer forces temporary files and merges
		$side env LC_ALL=C sort -S 16M --parallel=2 -T "$W/$side" "$W/data2.txt" >"$W/$side/sorted.txt"
		$side env LC_ALL=C sort -k2,2 -k1,1n -s -S 64M --parallel=2 -T "$W/$side" "$W/data.txt" \
			>"$W/$side/sorted2.txt"
		$side env LC_ALL=C sort -u -S 8M "$W/data2.txt" | wc -l >"$W/$side/uniq.txt"
	done
	check_loaded
	same sorted.txt
	same sorted2.txt
	same uniq.txt
	[ "$(cat "$W/lib/uniq.txt")" -eq 700000 ] || fail "sort -u lost lines"
}

redis_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

redis_side() {
	local side=$1 port pid i
	port=$(redis_port)
	local args=(--bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$W/$side"
		--enable-debug-command yes --daemonize no --logfile "$W/$side/redis.log")
	# started directly (no function, no subshell) so that $! is the server
	if [ "$side" = lib ]; then
		env LD_PRELOAD="$LIB" LD_DEBUG=files LD_DEBUG_OUTPUT="$W/trace/ld" \
			redis-server "${args[@]}" &
	else
		env -u LD_PRELOAD redis-server "${args[@]}" &
	fi
	pid=$!
	for i in $(seq 100); do
		redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG && break
		sleep 0.1
	done
	redis-cli -h 127.0.0.1 -p "$port" ping | grep -q PONG || fail "redis-server did not start on $side"
	if [ "$side" = lib ]; then
		grep -qF "$LIB" "/proc/$pid/maps" || fail "redis-server (pid $pid) has not mapped $LIB"
		note "redis-server pid $pid maps $LIB"
	fi
	local cli=(redis-cli -h 127.0.0.1 -p "$port")
	# deterministic keys: without -r, the benchmark's keys and values are fixed
	redis-benchmark -h 127.0.0.1 -p "$port" -q -n 20000 -c 8 -P 4 -d 200 \
		-t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,zadd,lrange_100,mset >"$W/$side/bench.txt"
	"${cli[@]}" debug populate 200000 key 100 >/dev/null
	head -c 3000000 /dev/zero | tr '\0' 'z' | "${cli[@]}" -x set bigvalue >/dev/null
	for i in $(seq 0 199); do echo "RPUSH biglist $(printf 'v%.0s' $(seq $((i % 50 + 1))))"; done |
		"${cli[@]}" >/dev/null
	"${cli[@]}" debug digest >"$W/$side/digest.txt"
	"${cli[@]}" debug reload >/dev/null
	"${cli[@]}" debug digest >>"$W/$side/digest.txt"
	"${cli[@]}" dbsize >>"$W/$side/digest.txt"
	"${cli[@]}" shutdown nosave >/dev/null 2>&1 || true
	wait "$pid" || fail "redis-server exited with status $? on $side"
}

prog_redis() {
	need redis-server redis-cli redis-benchmark /usr/bin/python3
	redis_side ref
	redis_side lib
	check_loaded
	cat "$W/lib/bench.txt" >&2
	same digest.txt
}

prog_valgrind() {
	need valgrind
	[ -x "$BIN/vgprog" ] || fail "no vgprog in $BIN"
	ref "$BIN/vgprog" >"$W/ref/out.txt"
	# valgrind must not replace the preloaded allocator with its own
	local rc=0
	env LD_PRELOAD="$LIB" valgrind --error-exitcode=99 \
		--soname-synonyms=somalloc=nouserintercepts "$BIN/vgprog" \
		>"$W/lib/out.txt" 2>"$W/lib/valgrind.txt" || rc=$?
	tail -15 "$W/lib/valgrind.txt" >&2
	[ $rc -eq 0 ] || fail "valgrind reports errors in the allocator (exit $rc)"
	grep -qF "malloc from $LIB" "$W/lib/out.txt" ||
		fail "under valgrind, malloc does not come from $LIB: $(head -1 "$W/lib/out.txt")"
	local allocs
	allocs=$(sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' "$W/lib/valgrind.txt" | tr -d ,)
	[ -n "$allocs" ] && [ "$allocs" -lt 1000 ] ||
		fail "valgrind intercepted ${allocs:-?} allocations: it replaced the allocator under test"
	sed -i 's/^malloc from .*//' "$W/ref/out.txt" "$W/lib/out.txt"
	same out.txt
}

# ------------------------------------------------------------ main

# the Python regression-test modules for PROGRAM pytest-*
case "$PROG" in
pytest-a) PYTESTS=(test_subprocess test_threading) ;;
pytest-b) PYTESTS=(test_dict test_list test_set test_json test_re test_unicode test_bytes
	test_collections test_pickle test_gc test_weakref test_decimal test_tuple test_sort
	test_heapq test_itertools test_deque test_array test_struct test_functools test_mmap
	test_zlib test_hashlib test_math test_long) ;;
esac

start=$(date +%s%N)
case "$PROG" in
pytest-*) prog_pytest ;;
*)
	declare -F "prog_$PROG" >/dev/null || fail "unknown program"
	"prog_$PROG"
	;;
esac
ms=$((($(date +%s%N) - start) / 1000000))
printf 'PASS %s on %s (%d.%03d s)\n' "$PROG" "$LIB" $((ms / 1000)) $((ms % 1000))
