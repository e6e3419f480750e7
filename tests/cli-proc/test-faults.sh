#!/bin/sh
# test-faults.sh - memkit faults: a program that touches N pages shows at
# least N minor faults (run by memkit and watched by PID), the counts equal
# /proc/PID/stat, sampling, the command's exit status passed on, a recorded
# dump against expected output, and the error paths.
. "$(dirname "$0")/lib.sh"
need_root
need setpriv util-linux

N=2000
# at_least NAME VALUE MIN
at_least() {
	if [ -n "$2" ] && [ "$2" -ge "$3" ]; then
		pass "$1: $2 >= $3"
	else
		fail "$1: '$2', expected at least $3"
	fi
}

run "$MEMKIT" faults -r -n -o MINFLT -- "$HELPERS/proc-target" touch $N
[ "$rc" = 0 ] || fail "faults -- proc-target touch: exit $rc: $(cat "$TMP/err")"
at_least "minor faults of a command touching $N pages" "$(cat "$TMP/out")" $N

# While it runs, with samples: the last row is the wait4 total.
run "$MEMKIT" faults -i 0.05 -r -n -o TIME,MINFLT -- "$HELPERS/proc-target" touch $N
[ "$rc" = 0 ] || fail "faults -i -- CMD: exit $rc: $(cat "$TMP/err")"
at_least "sampled command, last row" "$(tail -n 1 "$TMP/out" | awk '{print $2}')" $N

start_target "$HELPERS/proc-target" wait-touch $N
pid=$TARGET_PID
run "$MEMKIT" faults -r -n -o MINFLT,MAJFLT "$pid"
at_least "minor faults of process $pid" "$(awk '{print $1}' "$TMP/out")" $N
# It sleeps now: its counters do not move, so they must equal stat's.
stat_counts=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $8, $10}')
if [ "$(cat "$TMP/out")" = "$stat_counts" ]; then
	pass "counts equal /proc/$pid/stat fields 10 and 12 ($stat_counts)"
else
	fail "faults says '$(cat "$TMP/out")', /proc/$pid/stat says '$stat_counts'"
fi
run "$MEMKIT" faults -i 0.05 -c 3 -r -n -o TIME,MINFLT,MINFLT/S "$pid"
rows=$(wc -l <"$TMP/out")
if [ "$rc" = 0 ] && [ "$rows" = 3 ] && awk 'NR > 1 && $1 <= t {exit 1} {t = $1}' "$TMP/out"; then
	pass "-i 0.05 -c 3: three samples, time increasing"
else
	fail "-i 0.05 -c 3: exit $rc, rows $rows: $(cat "$TMP/out")"
fi
# /proc/PID/stat is world-readable: nobody may count root's faults.
expect_rc 0 $AS_NOBODY "$MEMKIT" faults "$pid"

# The command's exit status is memkit's (as time(1)).
expect_rc 7 "$MEMKIT" faults -- sh -c 'exit 7'
expect_error 127 "cannot run /nonexistent/cmd: No such file or directory" \
	"$MEMKIT" faults -- /nonexistent/cmd
expect_error 126 "cannot run $TMP: Permission denied" "$MEMKIT" faults -- "$TMP"

expect_output faults-threads.txt "$MEMKIT" faults --proc-root "$DATA/threads" 3154

nopid=$(no_such_pid)
expect_error 1 "memkit: faults: No such process: $nopid" "$MEMKIT" faults "$nopid"
expect_error 2 "invalid PID: 'x1'" "$MEMKIT" faults x1
expect_error 2 "invalid interval: '0'" "$MEMKIT" faults -i 0 1
expect_error 2 "invalid interval: 'fast'" "$MEMKIT" faults -i fast 1
expect_error 2 "invalid count: '-1'" "$MEMKIT" faults -c -1 1
expect_error 2 "no process ID or command given" "$MEMKIT" faults
expect_error 2 "too many arguments" "$MEMKIT" faults 1 2
expect_error 2 "Try 'memkit faults --help'" "$MEMKIT" faults --bogus
expect_rc 0 "$MEMKIT" faults --help
finish
