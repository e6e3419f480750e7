#!/bin/sh
# test-buddy.sh - memkit buddy: recorded dumps against expected output, the
# live /proc/buddyinfo against an independent awk computation of the
# unusable free space index, and the error paths.
. "$(dirname "$0")/lib.sh"

NUMA=$DATA/numa-fragmented
expect_output buddy-numa.txt "$MEMKIT" buddy --proc-root "$NUMA"
expect_output buddy-numa.json "$MEMKIT" buddy --proc-root "$NUMA" -J -b
expect_output buddy-node1-normal.txt "$MEMKIT" buddy --proc-root "$NUMA" -N 1 -z normal \
	-r -o ORDER,PAGES,BLOCKS,USABLE,UNUSABLE -b

# The index as mm/vmstat.c computes it, from the counts alone:
# (free - free in blocks of order >= j) * 1000 / free, rounded down.
awk_buddy() {
	awk -v ps="$(getconf PAGESIZE)" '{
		node = $2; sub(",", "", node); zone = $4; n = NF - 4
		free = 0
		for (k = 0; k < n; k++) free += $(k + 5) * 2 ^ k
		for (j = 0; j < n; j++) {
			usable = 0
			for (k = j; k < n; k++) usable += $(k + 5) * 2 ^ k
			idx = free ? int((free - usable) * 1000 / free) / 1000 : 0
			printf "%s %s %d %.0f %.0f %.3f\n", node, zone, j, $(j + 5), $(j + 5) * 2 ^ j * ps, idx
		}
	}' "$1"
}

check_against_awk() {
	root=$1
	awk_buddy "$root/proc/buddyinfo" >"$TMP/awk"
	run "$MEMKIT" buddy --proc-root "$root" -r -n -b -o NODE,ZONE,ORDER,BLOCKS,FREE,UNUSABLE
	if [ "$rc" = 0 ] && diff -u "$TMP/awk" "$TMP/out" >"$TMP/diff"; then
		pass "buddy on $root agrees with awk"
	else
		fail "buddy on $root differs from awk (exit $rc):"
		cat "$TMP/diff" "$TMP/err" >&2
	fi
}

check_against_awk "$NUMA"
# The live counts change by the millisecond: both read the same snapshot.
mkdir -p "$TMP/live/proc"
cat /proc/buddyinfo >"$TMP/live/proc/buddyinfo"
check_against_awk "$TMP/live"
# And the live file itself parses and has 11 orders per zone or more.
run "$MEMKIT" buddy -r -n -o ORDER
if [ "$rc" = 0 ] && [ "$(wc -l <"$TMP/out")" -ge 11 ]; then
	pass "buddy reads the live /proc/buddyinfo"
else
	fail "buddy on the live system: exit $rc, $(wc -l <"$TMP/out") rows"
fi

expect_error 1 "cannot open $TMP/proc/buddyinfo: No such file or directory" \
	"$MEMKIT" buddy --proc-root "$TMP"
mkdir -p "$TMP/bad/proc"
echo "garbage line" >"$TMP/bad/proc/buddyinfo"
expect_error 1 "unexpected line: garbage line" "$MEMKIT" buddy --proc-root "$TMP/bad"
expect_error 1 "no zone matches" "$MEMKIT" buddy --proc-root "$NUMA" -z HighMem
expect_error 2 "Try 'memkit buddy --help'" "$MEMKIT" buddy --bogus
expect_error 2 "invalid node" "$MEMKIT" buddy -N x
expect_error 2 "Try 'memkit buddy --help'" "$MEMKIT" buddy -o NOSUCHCOLUMN
expect_error 2 "unexpected argument" "$MEMKIT" buddy extra
expect_rc 0 "$MEMKIT" buddy --help
finish
