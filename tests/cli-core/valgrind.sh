#!/bin/bash
# A few commands under valgrind: no memory errors, no definite leaks.
. "$(dirname "$0")/lib.sh"
need valgrind valgrind

vg() {
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
		"$MEMKIT" "$@" >/dev/null 2>"$TMP/vg"
	local rc=$?
	if [ $rc = 99 ]; then
		fail "valgrind: memkit $*"
		cat "$TMP/vg" >&2
	else
		pass "valgrind clean: memkit $* (exit $rc)"
	fi
}

head -c 100000 /dev/urandom >"$TMP/f"
vg free -w -t -l -v --explain
vg --proc-root "$DATA/container-v2" free -J
vg --proc-root "$DATA/swap-in-use" swap -J
vg --proc-root "$DATA/swap-in-use" swap
vg --proc-root "$DATA/swap-in-use" dirty
vg dirty -J -b
vg cache -v "$TMP/f" "$TMP/missing"
vg cache --touch -o +PERCENT "$TMP"
vg free -x
finish
