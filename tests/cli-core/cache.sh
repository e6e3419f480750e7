#!/bin/bash
# memkit cache against util-linux fincore on the same files, and its
# --touch / --evict / --lock actions, directories, missing files.
. "$(dirname "$0")/lib.sh"
need fincore util-linux
need python3 python3

d=$TMP/files
mkdir -p "$d/sub/deeper"
head -c $((8 << 20)) /dev/urandom >"$d/big"
head -c 5000 /dev/urandom >"$d/sub/small"
head -c $((1 << 20)) /dev/urandom >"$d/sub/deeper/mid"
: >"$d/empty"
sync "$d/big" "$d/sub/small" "$d/sub/deeper/mid"
ps=$(getconf PAGESIZE)

# Make residency partial: evict everything, read back a few pieces.
"$MEMKIT" cache --evict "$d" >/dev/null || fail "--evict on a directory"
dd if="$d/big" of=/dev/null bs=$ps count=100 skip=50 iflag=direct 2>/dev/null
dd if="$d/big" of=/dev/null bs=$ps count=10 skip=1000 2>/dev/null

files=("$d/big" "$d/sub/small" "$d/sub/deeper/mid" "$d/empty")
if diff <(fincore -b --raw "${files[@]}") <("$MEMKIT" cache -b --raw "${files[@]}") >"$TMP/d"; then
	pass "same RES PAGES SIZE FILE as fincore -b --raw"
else
	fail "differs from fincore"
	cat "$TMP/d" >&2
fi
if diff <(fincore -J -b "${files[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["fincore"])') \
	<("$MEMKIT" cache -J -b "${files[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"])') >"$TMP/d"; then
	pass "same JSON values as fincore -J -b"
else
	fail "JSON differs from fincore"
	cat "$TMP/d" >&2
fi

pages_of() { "$MEMKIT" cache -r -n -o PAGES "$1"; }
all_pages=$(((8 << 20) / ps))

"$MEMKIT" cache --evict "$d/big" >/dev/null
[ "$(pages_of "$d/big")" = 0 ] && pass "--evict leaves 0 pages" || fail "--evict: $(pages_of "$d/big") pages"
out=$("$MEMKIT" cache --touch -r -n -o PAGES "$d/big")
[ "$out" = "$all_pages" ] && pass "--touch: all $all_pages pages resident" || fail "--touch reported $out"
[ "$(fincore -r -n -o PAGES "$d/big")" = "$all_pages" ] && pass "fincore agrees after --touch" ||
	fail "fincore after --touch: $(fincore -r -n -o PAGES "$d/big")"

# Directories are walked: every regular file once.
n=$("$MEMKIT" cache -r -n -o FILE "$d" | sort | tr '\n' ' ')
want=$(printf '%s\n' "${files[@]}" | sort | tr '\n' ' ')
[ "$n" = "$want" ] && pass "directory walked recursively" || fail "walk: $n"

# A missing file: a message, the other files still shown, exit 1.
"$MEMKIT" cache -r -n -o FILE "$d/nope" "$d/empty" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc = 1 ] && grep -qF "cannot open $d/nope: No such file or directory" "$TMP/err" &&
	grep -qF "$d/empty" "$TMP/out" && pass "missing file: warned, went on, exit 1" ||
	fail "missing file: rc=$rc $(cat "$TMP/err")"
chmod 000 "$d/sub/small"
mk=$(unprivileged_memkit)
chmod 755 "$TMP" "$d" "$d/sub"
expect_fail 1 "cannot open $d/sub/small: Permission denied" run_unprivileged "$mk" cache "$d/sub/small"
chmod 644 "$d/sub/small"

# --cachestat columns are numbers in JSON where the kernel has cachestat(2).
"$MEMKIT" cache -v -J "$d/big" | python3 -c '
import json, sys
f = json.load(sys.stdin)["files"][0]
assert f["dirty"] is None or isinstance(f["dirty"], int), f' && pass "-v JSON" || fail "-v JSON"

# --lock: the pages stay resident while memkit waits; Ctrl-C ends it.
"$MEMKIT" cache --evict "$d/sub/deeper/mid" >/dev/null
"$MEMKIT" cache --lock "$d/sub/deeper/mid" >"$TMP/lock.out" 2>"$TMP/lock.err" &
pid=$!
for _ in $(seq 50); do grep -q "press Ctrl-C" "$TMP/lock.err" && break; sleep 0.1; done
[ "$(fincore -r -n -o PAGES "$d/sub/deeper/mid")" = $(((1 << 20) / ps)) ] &&
	pass "--lock: file resident" || fail "--lock: $(fincore -r -n -o PAGES "$d/sub/deeper/mid") pages"
kill -INT $pid
wait $pid && pass "--lock ends on SIGINT with exit 0" || fail "--lock exit status"

expect_fail 2 "mutually exclusive" "$MEMKIT" cache --touch --evict "$d/big"
expect_fail 2 "no file specified" "$MEMKIT" cache
expect_fail 2 "unknown column: BOGUS" "$MEMKIT" cache -o BOGUS "$d/big"
finish
