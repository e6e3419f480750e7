#!/bin/bash
# memkit free against procps free -b on the running machine. Values that
# the kernel changes between the two reads (used, free, buff/cache,
# available) may differ by a tolerance; totals and layout must match exactly.
. "$(dirname "$0")/lib.sh"
need free procps

# Column by column: exact for totals, within 64 MiB for moving values. Up
# to three tries: the tests running beside this one map and unmap hundreds
# of MiB (Committed_AS moved 100 MiB between the two reads once), while a
# wrong formula differs on every try.
rows_match() {
	local flags=$1
	free $flags >"$TMP/procps"
	# a Cgroup row (in a limited container) is memkit's own addition
	"$MEMKIT" free $flags | grep -v "^Cgroup:" >"$TMP/memkit"
	if ! diff <(head -1 "$TMP/procps") <(head -1 "$TMP/memkit") >/dev/null; then
		echo "free $flags: header differs"
		return 1
	fi
	if ! diff <(cut -c1-8 "$TMP/procps") <(cut -c1-8 "$TMP/memkit") >/dev/null; then
		echo "free $flags: rows differ"
		return 1
	fi
	awk -v flags="$flags" '
		NR == FNR { for (i = 2; i <= NF; i++) p[FNR, i] = $i; n[FNR] = NF; next }
		FNR == 1 { next }
		{
			if (NF != n[FNR]) { print "free " flags ": field count differs in " $1; bad = 1; next }
			for (i = 2; i <= NF; i++) {
				exact = (i == 2 || $1 == "Swap:" || $1 == "High:")
				d = $i - p[FNR, i]; if (d < 0) d = -d
				tol = exact ? 0 : tolerance
				if (d > tol) { print "free " flags ": " $1 " field " i ": " p[FNR, i] " vs " $i; bad = 1 }
			}
		}
		END { exit bad }' tolerance="$2" "$TMP/procps" "$TMP/memkit"
}

compare_rows() {
	local try
	for try in 1 2 3; do
		if rows_match "$1" "$2" >"$TMP/why"; then
			pass "free $1 matches procps (tolerance $2)"
			return
		fi
		sleep 0.2
	done
	cat "$TMP/why" >&2
	fail "free $1"
}

compare_rows "-b" $((64 << 20))
compare_rows "-k" $((64 << 10))
compare_rows "-m" 64
compare_rows "-b -w -t -l -v" $((64 << 20))
compare_rows "--si" $((64 << 10))

# Human forms: layout, totals and swap exactly as procps prints them.
for flags in "-h" "-h --si" "-g" "--giga" "--tebi" "-h -w -l -t"; do
	if diff <(free $flags | grep -vE '^(Mem|Low|Total):') \
		<("$MEMKIT" free $flags | grep -vE '^(Mem|Low|Total|Cgroup):') >"$TMP/d"; then
		pass "free $flags: header and swap rows identical"
	else
		fail "free $flags"
		cat "$TMP/d" >&2
	fi
	t1=$(free $flags | awk '/^Mem:/ { print $2 }')
	t2=$("$MEMKIT" free $flags | awk '/^Mem:/ { print $2 }')
	[ "$t1" = "$t2" ] && pass "free $flags: total $t1" || fail "free $flags: total $t1 vs $t2"
done

# MemTotal and SwapTotal straight from /proc/meminfo, in bytes.
mt=$(awk '/^MemTotal:/ { printf "%.0f\n", $2 * 1024 }' /proc/meminfo)
st=$(awk '/^SwapTotal:/ { printf "%.0f\n", $2 * 1024 }' /proc/meminfo)
[ "$("$MEMKIT" free -b | awk '/^Mem:/ { print $2 }')" = "$mt" ] && pass "MemTotal" || fail "MemTotal"
[ "$("$MEMKIT" free -b | awk '/^Swap:/ { print $2 }')" = "$st" ] && pass "SwapTotal" || fail "SwapTotal"

# -s/-c: two reports separated by one blank line, like procps.
n=$("$MEMKIT" free -c 2 -s 0.1 | grep -c '^Mem:')
b=$("$MEMKIT" free -c 2 -s 0.1 | grep -c '^$')
[ "$n" = 2 ] && [ "$b" = 1 ] && pass "-c 2 -s 0.1" || fail "-c 2 -s 0.1: $n reports, $b blank lines"

# --explain uses this machine's numbers: its total is MemTotal.
"$MEMKIT" free --explain >"$TMP/explain" || fail "--explain exit status"
grep -q "total .*RAM the kernel manages" "$TMP/explain" && pass "--explain" || fail "--explain text"

expect_fail 2 "invalid option" "$MEMKIT" free -x
expect_fail 2 "multiple unit options" "$MEMKIT" free -b -m
expect_fail 2 "count must be at least 1" "$MEMKIT" free -c 0
expect_fail 2 "seconds must be a positive number" "$MEMKIT" free -s -1
expect_fail 2 "unexpected argument" "$MEMKIT" free extra
finish
