#!/bin/sh
# test-maps.sh - memkit maps: totals against pmap -x on a live process with
# threads, its thread stacks found, replayed dumps (one with swap in use)
# against expected output and against the pmap -x recorded with them, and
# the error paths (no such process, bad PID, permission).
. "$(dirname "$0")/lib.sh"
need pmap procps
need_root
need setpriv util-linux

# "total kB  SIZE RSS DIRTY" of pmap -x, and the same from memkit's total row.
pmap_totals() {
	awk '$1 == "total" {print $3, $4, $5}' "$1"
}
memkit_totals() {
	"$MEMKIT" maps "$@" -b -r -n -o CLASS,SIZE,RSS,DIRTY |
		awk '$1 == "total" {print $2 / 1024, $3 / 1024, $4 / 1024}'
}

check_equal() {
	if [ "$2" = "$3" ]; then
		pass "$1: $2"
	else
		fail "$1: memkit '$2' but expected '$3'"
	fi
}

# ---- live, against pmap -x on the same process (it sleeps: nothing moves)
start_target "$HELPERS/proc-target" threads 3
pid=$TARGET_PID
pmap -x "$pid" >"$TMP/pmap"
check_equal "live totals (kB size, RSS, dirty) = pmap -x" \
	"$(memkit_totals "$pid")" "$(pmap_totals "$TMP/pmap")"

# One stack per thread: [stack] and three found from the threads' saved
# stack pointers, each tagged with its thread's ID.
"$MEMKIT" maps -r -n -o CLASS,TID "$pid" | awk '$1 == "stack" {print $2}' | sort >"$TMP/tids"
ls "/proc/$pid/task" | sort >"$TMP/tasks"
if diff -u "$TMP/tasks" "$TMP/tids" >"$TMP/diff"; then
	pass "one stack row per thread, tagged with its TID"
else
	fail "stack rows do not match the threads:"
	cat "$TMP/diff" >&2
fi
run "$MEMKIT" maps -s -r -n -o CLASS "$pid"
for class in stack guard lib mmap heap data rodata text vdso total; do
	if grep -qx "$class" "$TMP/out"; then
		pass "summary has class $class"
	else
		fail "summary lacks class $class: $(tr '\n' ' ' <"$TMP/out")"
	fi
done
# Rows run from high to low addresses.
"$MEMKIT" maps -r -n -o START "$pid" | grep . >"$TMP/starts"
if sort -r "$TMP/starts" | diff -q - "$TMP/starts" >/dev/null; then
	pass "rows from high to low addresses"
else
	fail "rows are not sorted from high to low"
fi
# The page of its own executable mapped with mmap is a file mapping, not text.
exe=$(readlink "/proc/$pid/exe")
run "$MEMKIT" maps -r -n -o CLASS,MAPPING "$pid"
if grep -qx "file $exe" "$TMP/out" && grep -qx "text $exe" "$TMP/out"; then
	pass "program image is text/data/rodata; another mapping of the file is 'file'"
else
	fail "program image classes wrong: $(grep -F "$exe" "$TMP/out")"
fi

# A thread on a CPU has no saved stack pointer; its stack is still found
# (by TID when it happened to be off the CPU, else by its guard page).
start_target "$HELPERS/proc-target" threads 2 spin
stacks=$("$MEMKIT" maps -r -n -o CLASS "$TARGET_PID" | grep -cx stack)
tasks=$(ls "/proc/$TARGET_PID/task" | wc -l)
check_equal "stacks of a process with a spinning thread = its threads" "$stacks" "$tasks"
stop_target "$TARGET_PID"

# ---- the same as nobody: a process of one's own may be read, root's not.
start_target $AS_NOBODY "$HELPERS/proc-target" threads 1
expect_rc 0 $AS_NOBODY "$MEMKIT" maps "$TARGET_PID"
expect_error 1 "cannot open /proc/$pid/smaps: Permission denied (only the process's owner or root may read it)" \
	$AS_NOBODY "$MEMKIT" maps "$pid"

# ---- recorded dumps
THREADS=$DATA/threads
expect_output maps-threads.txt "$MEMKIT" maps --proc-root "$THREADS" 3154
expect_output maps-threads-summary.txt "$MEMKIT" maps --proc-root "$THREADS" -s 3154
expect_output maps-swapped-summary.txt "$MEMKIT" maps --proc-root "$DATA/swapped" -s -b 3154
expect_output maps-swapped.json "$MEMKIT" maps --proc-root "$DATA/swapped" -J -b \
	-o START,END,SIZE,RSS,SWAP,CLASS,TID,MAPPING 3154
check_equal "recorded totals = the pmap -x recorded with them" \
	"$(memkit_totals --proc-root "$THREADS" 3154)" "$(pmap_totals "$THREADS/pmap-x.txt")"
# The PSS total is smaps_rollup's (1247 kB), not the sum of rounded rows.
check_equal "recorded PSS total = smaps_rollup's" \
	"$("$MEMKIT" maps --proc-root "$THREADS" -b -r -n -o CLASS,PSS 3154 |
		awk '$1 == "total" {print $2 / 1024}')" \
	"$(awk '$1 == "Pss:" {print $2}' "$THREADS/proc/3154/smaps_rollup")"
# Swap moved 768 kB out of RSS: totals say so.
check_equal "swapped dump: RSS total" \
	"$("$MEMKIT" maps --proc-root "$DATA/swapped" -b -r -n -o CLASS,RSS,SWAP 3154 |
		awk '$1 == "total" {print $2 / 1024, $3 / 1024}')" "1792 768"

# ---- errors
nopid=$(no_such_pid)
expect_error 1 "memkit: maps: No such process: $nopid" "$MEMKIT" maps "$nopid"
expect_error 1 "No such process: 3155" "$MEMKIT" maps --proc-root "$THREADS" 3155
expect_error 2 "invalid PID: 'abc'" "$MEMKIT" maps abc
expect_error 2 "invalid PID: '0'" "$MEMKIT" maps 0
expect_error 2 "no process ID given" "$MEMKIT" maps
expect_error 2 "too many arguments" "$MEMKIT" maps 1 2
expect_error 2 "Try 'memkit maps --help'" "$MEMKIT" maps --bogus 1
expect_rc 0 "$MEMKIT" maps --help
finish
