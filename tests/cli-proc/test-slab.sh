#!/bin/sh
# test-slab.sh - memkit slab: a recorded /proc/slabinfo against expected
# output for several sort keys, the sort order checked independently with
# sort(1), the live file as root, and the error paths (not root, missing
# file, bad sort key).
. "$(dirname "$0")/lib.sh"
need_root
need setpriv util-linux

SLAB=$DATA/slab
expect_output slab-top10.txt "$MEMKIT" slab --proc-root "$SLAB" -t 10
expect_output slab-cachesize.txt "$MEMKIT" slab --proc-root "$SLAB" -s c -t 10
expect_output slab-name-raw.txt "$MEMKIT" slab --proc-root "$SLAB" --sort name -r -b
expect_output slab-objsize.json "$MEMKIT" slab --proc-root "$SLAB" -s size -t 3 -J -b

# Every cache of the file is listed, and -s objects orders by num_objs
# (column 3 of /proc/slabinfo) as sort(1) does, names breaking ties.
tail -n +3 "$SLAB/proc/slabinfo" | awk '{print $3, $1}' | sort -k1,1nr -k2,2 >"$TMP/want"
run "$MEMKIT" slab --proc-root "$SLAB" -s objects -r -n -o OBJS,NAME
if [ "$rc" = 0 ] && diff -u "$TMP/want" "$TMP/out" >"$TMP/diff"; then
	pass "slab -s objects lists every cache in sort(1)'s order"
else
	fail "slab -s objects differs from sort(1) (exit $rc):"
	cat "$TMP/diff" >&2
fi
# CACHESIZE = num_slabs * pagesperslab * page size.
tail -n +3 "$SLAB/proc/slabinfo" |
	awk -v ps="$(getconf PAGESIZE)" '{printf "%s %.0f\n", $1, $15 * $6 * ps}' |
	sort >"$TMP/want"
run "$MEMKIT" slab --proc-root "$SLAB" -r -n -b -o NAME,CACHESIZE
sort "$TMP/out" >"$TMP/got"
if [ "$rc" = 0 ] && diff -u "$TMP/want" "$TMP/got" >"$TMP/diff"; then
	pass "slab CACHESIZE = slabs x pages per slab x page size"
else
	fail "slab CACHESIZE wrong (exit $rc):"
	cat "$TMP/diff" >&2
fi

# Live: root reads it and gets a row per cache.
run "$MEMKIT" slab -r -n -o NAME
caches=$(($(wc -l </proc/slabinfo) - 2))
rows=$(wc -l <"$TMP/out")
# Caches come and go between the two reads; a few rows' difference is fine.
if [ "$rc" = 0 ] && [ "$rows" -gt $((caches - 5)) ] && [ "$rows" -lt $((caches + 5)) ]; then
	pass "slab reads the live /proc/slabinfo ($rows caches)"
else
	fail "slab live: exit $rc, $rows rows for $caches caches; $(cat "$TMP/err")"
fi

expect_error 1 "memkit: slab: /proc/slabinfo is readable by root only" $AS_NOBODY "$MEMKIT" slab
expect_error 1 "cannot open $TMP/proc/slabinfo: No such file or directory" \
	"$MEMKIT" slab --proc-root "$TMP"
mkdir -p "$TMP/v1/proc"
printf 'slabinfo - version: 1.1\nkmalloc-8 1 1 8\n' >"$TMP/v1/proc/slabinfo"
expect_error 1 "unsupported format" "$MEMKIT" slab --proc-root "$TMP/v1"
expect_error 2 "unknown sort key: 'weight'" "$MEMKIT" slab --proc-root "$SLAB" -s weight
expect_error 2 "invalid number of caches" "$MEMKIT" slab -t -3
expect_error 2 "Try 'memkit slab --help'" "$MEMKIT" slab --bogus
expect_rc 0 "$MEMKIT" slab --help
finish
