#!/bin/sh
# test-leak-errors.sh - memkit leak: JSON output, a process that ends while
# watched, a process without user memory, ASCII sparkline outside UTF-8, and
# the usage errors.
. "$(dirname "$0")/lib.sh"
need python3 python3

start_target "$HELPERS/proc-target" wait-touch 10
sleeper=$TARGET_PID
run "$MEMKIT" leak -J -b -i 0.05 -d 0.3 "$sleeper"
if [ "$rc" = 0 ] && python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))["leak"]
assert [r["metric"] for r in rows] == ["VmSize", "VmRSS", "VmData"], rows
assert all(isinstance(r["first"], int) and isinstance(r["r2"], float) for r in rows), rows
assert all(r["verdict"] == "stable" for r in rows), rows
' "$TMP/out"; then
	pass "JSON: three metrics, numbers as numbers, a sleeping process is stable"
else
	fail "JSON output (exit $rc): $(cat "$TMP/out" "$TMP/err")"
fi
run env LC_ALL=C "$MEMKIT" leak -n -o TREND -i 0.05 -d 0.2 "$sleeper"
if [ "$rc" = 0 ] && grep -qx '_\{5\}' "$TMP/out"; then
	pass "ASCII sparkline in the C locale"
else
	fail "C locale sparkline (exit $rc): $(cat "$TMP/out")"
fi

# A process that exits while watched: judged from what was sampled.
start_target sh -c 'echo ready; exec sleep 0.6'
expect_error 0 "ended after" "$MEMKIT" leak -i 0.1 -d 5 "$TARGET_PID"

# A process without VmSize (a kernel thread), from a made-up dump.
mkdir -p "$TMP/k/proc/77"
echo "77 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0" >"$TMP/k/proc/77/stat"
printf 'Name:\tkthreadd\nState:\tS (sleeping)\nPid:\t77\n' >"$TMP/k/proc/77/status"
expect_error 1 "cannot read VmSize, VmRSS and VmData of process 77" \
	"$MEMKIT" leak --proc-root "$TMP/k" -i 0.05 -d 0.1 77

nopid=$(no_such_pid)
expect_error 1 "memkit: leak: No such process: $nopid" "$MEMKIT" leak "$nopid"
expect_error 1 "only 1 samples" "$MEMKIT" leak -i 5 -d 1 "$sleeper"
expect_error 2 "invalid interval: '0'" "$MEMKIT" leak -i 0 1
expect_error 2 "invalid duration: '-3'" "$MEMKIT" leak -d -3 1
expect_error 2 "invalid duration: 'long'" "$MEMKIT" leak -d long 1
expect_error 2 "invalid PID: 'x'" "$MEMKIT" leak x
expect_error 2 "no process ID given" "$MEMKIT" leak
expect_error 2 "too many arguments" "$MEMKIT" leak 1 2
expect_error 2 "Try 'memkit leak --help'" "$MEMKIT" leak --bogus
expect_rc 0 "$MEMKIT" leak --help
finish
