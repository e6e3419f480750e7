#!/bin/bash
# memkit dirty: values equal to /proc/sys/vm, derived thresholds close to the
# kernel's (/proc/vmstat), --set validation and writes (on a dump copy).
. "$(dirname "$0")/lib.sh"

for f in /proc/sys/vm/dirty*; do
	name=$(basename "$f")
	got=$("$MEMKIT" dirty -r -n -o NAME,VALUE | awk -v n="$name" '$1 == n { print $2 }')
	[ "$got" = "$(cat "$f")" ] && pass "$name = $got" || fail "$name: '$got' vs '$(cat "$f")'"
done

# The derived thresholds leave out the kernel's reserve: allow 10%.
"$MEMKIT" dirty -J -b | python3 -c '
import json, sys
rows = {r["name"]: r for r in json.load(sys.stdin)["thresholds"]}
for name in ("background", "blocking"):
    mine, kern = rows[name]["size"], rows[name]["kernel"]
    ok = abs(mine - kern) <= 0.10 * kern
    print(("ok" if ok else "FAIL") + ": %s threshold %d vs kernel %d" % (name, mine, kern))
    if not ok: sys.exit(1)' || fail "thresholds"

root=$(dump_copy live-vm)
"$MEMKIT" --proc-root "$root" dirty --set vm.dirty_ratio=15 >"$TMP/out" &&
	[ "$(cat "$root/proc/sys/vm/dirty_ratio")" = 15 ] && pass "--set vm.dirty_ratio=15" ||
	fail "--set dirty_ratio"
"$MEMKIT" --proc-root "$root" dirty --set dirty_bytes=512M >/dev/null &&
	[ "$(cat "$root/proc/sys/vm/dirty_bytes")" = 536870912 ] && pass "--set dirty_bytes=512M" ||
	fail "--set dirty_bytes=512M"
# with dirty_bytes set, the blocking threshold is that many bytes
got=$("$MEMKIT" --proc-root "$root" dirty -J -b | python3 -c '
import json, sys
print([r["size"] for r in json.load(sys.stdin)["thresholds"] if r["name"] == "blocking"][0])')
[ "$got" = 536870912 ] && pass "dirty_bytes takes precedence" || fail "blocking threshold $got"
expect_fail 2 "expected a percentage 0..100" "$MEMKIT" --proc-root "$root" dirty --set dirty_ratio=101
expect_fail 2 "at least two pages" "$MEMKIT" --proc-root "$root" dirty --set dirty_bytes=4096
expect_fail 2 "unknown setting: 'swappiness'" "$MEMKIT" --proc-root "$root" dirty --set swappiness=1
expect_fail 2 "--set expects NAME=VALUE" "$MEMKIT" --proc-root "$root" dirty --set dirty_ratio
expect_fail 2 "expected a non-negative integer" "$MEMKIT" --proc-root "$root" dirty --set dirty_expire_centisecs=-1
mk=$(unprivileged_memkit)
expect_fail 1 "setting vm.dirty_ratio needs root (CAP_SYS_ADMIN)" run_unprivileged "$mk" dirty --set dirty_ratio=20
rm "$root/proc/sys/vm/dirty_expire_centisecs"
expect_fail 1 "cannot open $root/proc/sys/vm/dirty_expire_centisecs: No such file or directory" \
	"$MEMKIT" --proc-root "$root" dirty
finish
