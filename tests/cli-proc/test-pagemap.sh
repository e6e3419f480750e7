#!/bin/sh
# test-pagemap.sh - memkit pagemap on a live process with known pages: the
# written pages present, anonymous and exclusive, the others not present, a
# file page of kind file; each raw entry equal to the 8 bytes read from
# /proc/PID/pagemap with dd; PFNs shown to root and hidden from others; and
# the error paths (bad address, unmapped address, permission, no process).
. "$(dirname "$0")/lib.sh"
need_root
need setpriv util-linux
need od coreutils

PAGE=$(getconf PAGESIZE)
start_target "$HELPERS/proc-target" pages
pid=$TARGET_PID
anon=$(sed -n 's/.*anon=\(0x[0-9a-f]*\).*/\1/p' "$TARGET_OUT")
file=$(sed -n 's/.*file=\(0x[0-9a-f]*\).*/\1/p' "$TARGET_OUT")

# Pages 0, 2 and 4 of the 8 were written.
run "$MEMKIT" pagemap -r -n -o PRESENT "$pid" "$anon+$((8 * PAGE))"
got=$(tr '\n' ' ' <"$TMP/out")
if [ "$rc" = 0 ] && [ "$got" = "yes no yes no yes no no no " ]; then
	pass "present bits of 8 pages with 0, 2, 4 written"
else
	fail "present bits: exit $rc, got '$got'; $(cat "$TMP/err")"
fi
run "$MEMKIT" pagemap -r -n -o KIND,EXCLUSIVE,SWAPPED "$pid" "$anon"
if [ "$(cat "$TMP/out")" = "anon yes no" ]; then
	pass "a written private page is anon, exclusive, not swapped"
else
	fail "written page: '$(cat "$TMP/out")', expected 'anon yes no'"
fi
run "$MEMKIT" pagemap -r -n -o PRESENT,KIND "$pid" "$file"
if [ "$(cat "$TMP/out")" = "yes file" ]; then
	pass "a read page of a file mapping is present, kind file"
else
	fail "file page: '$(cat "$TMP/out")', expected 'yes file'"
fi
# A length that is not page-aligned covers the pages it touches.
run "$MEMKIT" pagemap -r -n -o ADDRESS "$pid" "$anon+$((PAGE + 1))"
[ "$(wc -l <"$TMP/out")" = 2 ] && pass "ADDR+(page+1) covers two pages" ||
	fail "ADDR+(page+1): $(wc -l <"$TMP/out") rows"

# Each raw entry equals what dd reads from the pagemap file itself.
entry_via_dd() {
	dd if="/proc/$pid/pagemap" bs=8 skip=$(($1 / PAGE)) count=1 2>/dev/null |
		od -An -tx8 | tr -d ' '
}
for i in 0 1 2; do
	addr=$((anon + i * PAGE))
	want=$(printf '%016x' "0x$(entry_via_dd $addr)")
	got=$("$MEMKIT" pagemap -r -n -o ENTRY "$pid" "$(printf '%x' $addr)")
	if [ "$got" = "$want" ]; then
		pass "page $i: entry $got = dd's"
	else
		fail "page $i: memkit entry '$got', dd '$want'"
	fi
done

# PFNs: root sees one for a present page; nobody, on its own process, not.
run "$MEMKIT" pagemap -r -n -o PFN "$pid" "$anon"
[ -n "$(cat "$TMP/out")" ] && [ "$(cat "$TMP/out")" != 0 ] &&
	pass "root sees the PFN ($(cat "$TMP/out"))" || fail "root sees no PFN: '$(cat "$TMP/out")'"
start_target $AS_NOBODY "$HELPERS/proc-target" pages
nobody_anon=$(sed -n 's/.*anon=\(0x[0-9a-f]*\).*/\1/p' "$TARGET_OUT")
run $AS_NOBODY "$MEMKIT" pagemap -r -n -o PRESENT,PFN "$TARGET_PID" "$nobody_anon"
if [ "$rc" = 0 ] && [ "$(cat "$TMP/out")" = "yes " ]; then
	pass "nobody sees its own page present, PFN empty"
else
	fail "nobody on its own process: exit $rc, '$(cat "$TMP/out")'; $(cat "$TMP/err")"
fi
expect_error 1 "cannot open /proc/$pid/maps: Permission denied (only the process's owner or root may read it)" \
	$AS_NOBODY "$MEMKIT" pagemap "$pid" "$anon"

expect_error 1 "address 0x0 is not mapped in process $pid" "$MEMKIT" pagemap "$pid" 0x10
expect_error 2 "invalid address: 'zz'" "$MEMKIT" pagemap "$pid" zz
expect_error 2 "invalid address: '-5'" "$MEMKIT" pagemap "$pid" -- -5
expect_error 2 "invalid length: '0'" "$MEMKIT" pagemap "$pid" "$anon+0"
expect_error 2 "invalid length: 'lots'" "$MEMKIT" pagemap "$pid" "$anon+lots"
expect_error 2 "wraps around" "$MEMKIT" pagemap "$pid" "ffffffffffffffff+8K"
nopid=$(no_such_pid)
expect_error 1 "memkit: pagemap: No such process: $nopid" "$MEMKIT" pagemap "$nopid" "$anon"
expect_error 2 "invalid PID: 'me'" "$MEMKIT" pagemap me "$anon"
expect_error 2 "expected a process ID and an address" "$MEMKIT" pagemap "$pid"
expect_error 2 "too many arguments" "$MEMKIT" pagemap "$pid" "$anon" 1
expect_rc 0 "$MEMKIT" pagemap --help
finish
