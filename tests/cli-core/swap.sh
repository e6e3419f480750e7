#!/bin/bash
# memkit swap: the live machine against /proc/swaps and swapon, --swappiness
# and --flush (refusal with the numbers, root), written to dump copies.
. "$(dirname "$0")/lib.sh"
need python3 python3

# Devices: the same names and sizes as /proc/swaps, in bytes.
want=$(awk 'NR > 1 { printf "%s %.0f %.0f\n", $1, $3 * 1024, $4 * 1024 }' /proc/swaps)
got=$("$MEMKIT" swap -D -r -n -b -o NAME,SIZE,USED)
[ "$want" = "$got" ] && pass "devices match /proc/swaps" || fail "devices: '$want' vs '$got'"
sw=$(cat /proc/sys/vm/swappiness)
js=$("$MEMKIT" swap -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["swappiness"])')
[ "$js" = "$sw" ] && pass "swappiness $sw" || fail "swappiness $js vs $sw"

# Processes by VmSwap in the dump: sorted, zero-swap ones left out.
got=$("$MEMKIT" --proc-root "$DATA/swap-in-use" swap -J -b | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join("%s:%d" % (p["command"], p["swap"]) for p in d["processes"]))')
[ "$got" = "postgres:805306368 java:536870912 sshd:1048576" ] && pass "processes by VmSwap" ||
	fail "processes: $got"

root=$(dump_copy swap-in-use)
"$MEMKIT" --proc-root "$root" swap --swappiness 10 >/dev/null && [ "$(cat "$root/proc/sys/vm/swappiness")" = 10 ] &&
	pass "--swappiness writes" || fail "--swappiness did not write 10"
expect_fail 2 "swappiness must be 0..200" "$MEMKIT" --proc-root "$root" swap --swappiness 201
expect_fail 2 "invalid swappiness" "$MEMKIT" --proc-root "$root" swap --swappiness ten
expect_fail 1 "refusing to flush swap: 1.4G would come back into RAM but only 1G is available" \
	"$MEMKIT" --proc-root "$root" swap --flush
mk=$(unprivileged_memkit)
expect_fail 1 "setting vm.swappiness needs root (CAP_SYS_ADMIN)" run_unprivileged "$mk" swap --swappiness 60
if [ "$(awk 'NR > 1' /proc/swaps | wc -l)" -gt 0 ]; then
	expect_fail 1 "swap --flush needs root (CAP_SYS_ADMIN)" run_unprivileged "$mk" swap --flush
else
	"$MEMKIT" swap --flush | grep -q "nothing to flush" && pass "--flush without swap" || fail "--flush without swap"
fi
finish
