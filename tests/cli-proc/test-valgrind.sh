#!/bin/sh
# test-valgrind.sh - the six commands under valgrind (memcheck, full leak
# check): no invalid access, no uninitialised read, no leak, on the live
# system, on recorded dumps and on error paths. valgrind exits 99 on an error
# so that memkit's own exit statuses (1, 2, 3) stay distinct.
. "$(dirname "$0")/lib.sh"
need valgrind valgrind

VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,possible"

# vg STATUS CMD-ARGS...: memkit ARGS under valgrind exits STATUS.
vg() {
	want=$1
	shift
	run $VG "$MEMKIT" "$@"
	if [ "$rc" = "$want" ]; then
		pass "valgrind memkit $* -> exit $want"
	else
		fail "valgrind memkit $*: exit $rc, expected $want:"
		cat "$TMP/err" >&2
	fi
}

start_target "$HELPERS/proc-target" threads 2
threads=$TARGET_PID
start_target "$HELPERS/proc-target" pages
anon=$(sed -n 's/.*anon=\(0x[0-9a-f]*\).*/\1/p' "$TARGET_OUT")

vg 0 buddy --proc-root "$DATA/numa-fragmented" -J -b
vg 0 slab --proc-root "$DATA/slab" -s c
vg 0 maps "$threads"
vg 0 maps --proc-root "$DATA/swapped" -s -J 3154
vg 0 faults -i 0.05 -- "$HELPERS/proc-target" touch 100
vg 0 pagemap "$TARGET_PID" "$anon+32K"
vg 0 leak -i 0.05 -d 0.3 "$threads"
vg 1 maps "$(no_such_pid)"
vg 1 slab --proc-root "$TMP"
vg 1 pagemap "$TARGET_PID" 0x10
vg 2 maps -o NOSUCHCOLUMN "$threads"
finish
