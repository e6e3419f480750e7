#!/bin/sh
# test-leak.sh MODE - memkit leak on one of three small programs, each
# sampled for 2 s every 0.1 s:
#   grow      leak-grow leaks 64 KiB / 20 ms: verdict growing, exit 3
#   steady    leak-steady churns without growing: no leak, exit 0
#   sawtooth  leak-sawtooth grows and frees every 140 ms: no leak, exit 0
. "$(dirname "$0")/lib.sh"

mode=${1:?usage: test-leak.sh grow|steady|sawtooth}
start_target "$HELPERS/leak-$mode" 10
pid=$TARGET_PID

# verdict_of METRIC: the VERDICT cell of that row of the table.
verdict_of() {
	awk -v m="$1" '$1 == m {print $2}' "$TMP/table"
}

run "$MEMKIT" leak -b -i 0.1 -d 2 -o METRIC,VERDICT,R2,GROWTH/NOISE,RATE/MIN,TREND "$pid"
cp "$TMP/out" "$TMP/table"
cat "$TMP/table"
case $mode in
grow)
	[ "$rc" = 3 ] && pass "leaking program: exit 3" || fail "leaking program: exit $rc, expected 3"
	[ "$(verdict_of VmData)" = growing ] && pass "VmData growing" ||
		fail "VmData verdict '$(verdict_of VmData)', expected growing"
	[ "$(verdict_of VmSize)" = growing ] && pass "VmSize growing" ||
		fail "VmSize verdict '$(verdict_of VmSize)', expected growing"
	# 64 KiB per 20 ms is 187.5 MiB a minute; sleeps overrun: allow 64..212 MiB.
	rate=$(awk '$1 == "VmData" {print $5}' "$TMP/table")
	if awk -v r="$rate" 'BEGIN {exit !(r > 64 * 1048576 && r < 212 * 1048576)}'; then
		pass "VmData rate $rate per minute"
	else
		fail "VmData rate '$rate' per minute is implausible"
	fi
	grep -q "memory grows steadily" "$TMP/table" && grep -q "memkit run --leaks" "$TMP/table" &&
		pass "the verdict points to memkit run --leaks" ||
		fail "no verdict line pointing to memkit run --leaks"
	expect_rc 3 "$MEMKIT" leak -q -i 0.1 -d 0.5 "$pid"
	[ -s "$TMP/out" ] && fail "-q printed: $(cat "$TMP/out")" || pass "-q prints nothing"
	;;
steady | sawtooth)
	[ "$rc" = 0 ] && pass "$mode program: exit 0" || fail "$mode program: exit $rc, expected 0"
	for m in VmSize VmData; do
		v=$(verdict_of $m)
		if [ -n "$v" ] && [ "$v" != growing ]; then
			pass "$m: $v"
		else
			fail "$m verdict '$v' for a $mode program"
		fi
	done
	grep -q "memkit run --leaks" "$TMP/table" &&
		fail "a $mode program's verdict points to memkit run --leaks" ||
		pass "no pointer to memkit run --leaks without growth"
	;;
*)
	echo "unknown mode $mode" >&2
	exit 2
	;;
esac
if grep -q '[▁▂▃▄▅▆▇█]' "$TMP/table"; then
	pass "sparkline in a UTF-8 locale"
else
	fail "no sparkline: $(cat "$TMP/table")"
fi
finish
