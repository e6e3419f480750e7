#!/bin/bash
# memkit drop-caches: writes 1/2/3 (checked on a dump copy), refuses without
# root, rejects bad arguments. It never drops the live machine's caches here.
. "$(dirname "$0")/lib.sh"

root=$(dump_copy live-vm)
for kind in pagecache:1 slab:2 all:3; do
	: >"$root/proc/sys/vm/drop_caches"
	"$MEMKIT" --proc-root "$root" drop-caches "${kind%:*}" >"$TMP/out" || fail "drop-caches ${kind%:*}"
	[ "$(cat "$root/proc/sys/vm/drop_caches")" = "${kind#*:}" ] && pass "${kind%:*} writes ${kind#*:}" ||
		fail "${kind%:*} wrote '$(cat "$root/proc/sys/vm/drop_caches")'"
done
grep -q '^buff/cache ' "$TMP/out" && pass "reports buff/cache" || fail "no buff/cache row"
: >"$root/proc/sys/vm/drop_caches"
"$MEMKIT" --proc-root "$root" drop-caches >/dev/null && [ "$(cat "$root/proc/sys/vm/drop_caches")" = 1 ] &&
	pass "default is pagecache" || fail "default"
"$MEMKIT" --proc-root "$root" drop-caches -J -b all | python3 -c '
import json, sys
rows = json.load(sys.stdin)["drop-caches"]
assert all(isinstance(r["before"], int) and isinstance(r["freed"], int) for r in rows)' &&
	pass "JSON numbers" || fail "JSON"
expect_fail 2 "unknown cache kind: 'everything'" "$MEMKIT" drop-caches everything
expect_fail 2 "unexpected argument" "$MEMKIT" drop-caches all slab
mk=$(unprivileged_memkit)
expect_fail 1 "drop-caches needs root (CAP_SYS_ADMIN)" run_unprivileged "$mk" drop-caches
rm "$root/proc/sys/vm/drop_caches"
expect_fail 1 "cannot open $root/proc/sys/vm/drop_caches: No such file or directory" \
	"$MEMKIT" --proc-root "$root" drop-caches
finish
