# lib.sh - sourced by the cli-proc test scripts: checks that count failures,
# a scratch directory, and target processes that are killed on exit.
# Environment (set by CMakeLists.txt): MEMKIT, HELPERS, DATA, EXPECTED.
# UPDATE_EXPECTED=1 rewrites the expected-output files instead of comparing
# (review the diff by hand before committing it).

set -u
: "${MEMKIT:?MEMKIT must name the memkit binary}"
: "${HELPERS:?}" "${DATA:?}" "${EXPECTED:?}"
unset MEMKIT_PROC_ROOT
export LC_ALL=C.UTF-8

failures=0
TARGETS=""
TMP=$(mktemp -d)

cleanup() {
	for p in $TARGETS; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

pass() {
	echo "ok: $*"
}

# need PROGRAM PACKAGE: a missing tool fails the test, never skips it.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "FAIL: $1 is not installed (Debian package $2)" >&2
	exit 1
}

# need_root: the test compares what root and user nobody may see.
need_root() {
	[ "$(id -u)" = 0 ] && return 0
	echo "FAIL: this test must run as root (it reads /proc/slabinfo and other users'" \
		"processes, and switches to user nobody with setpriv)" >&2
	exit 1
}

# run CMD...: stdout in $TMP/out, stderr in $TMP/err, status in $rc.
run() {
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
}

# expect_rc STATUS CMD...
expect_rc() {
	want=$1
	shift
	run "$@"
	if [ "$rc" = "$want" ]; then
		pass "$* -> exit $want"
	else
		fail "$*: exit $rc, expected $want; stderr: $(cat "$TMP/err")"
	fi
}

# expect_error STATUS MESSAGE CMD...: the status and a stderr line with MESSAGE.
expect_error() {
	want=$1
	msg=$2
	shift 2
	run "$@"
	if [ "$rc" != "$want" ]; then
		fail "$*: exit $rc, expected $want; stderr: $(cat "$TMP/err")"
	elif ! grep -qF -- "$msg" "$TMP/err"; then
		fail "$*: stderr lacks '$msg': $(cat "$TMP/err")"
	else
		pass "$* -> exit $want, '$msg'"
	fi
}

# expect_output NAME CMD...: stdout equals $EXPECTED/NAME and the status is 0.
expect_output() {
	name=$1
	shift
	run "$@"
	if [ "$rc" != 0 ]; then
		fail "$*: exit $rc; stderr: $(cat "$TMP/err")"
	elif [ "${UPDATE_EXPECTED:-0}" = 1 ]; then
		cp "$TMP/out" "$EXPECTED/$name"
		echo "updated $EXPECTED/$name"
	elif diff -u "$EXPECTED/$name" "$TMP/out" >"$TMP/diff"; then
		pass "$* = expected/$name"
	else
		fail "$*: output differs from expected/$name:"
		cat "$TMP/diff" >&2
	fi
}

# start_target CMD...: runs CMD in the background until it prints "ready";
# TARGET_PID is its PID (setpriv execs, so the PID stays the same), and
# TARGET_OUT the file that holds what it printed.
start_target() {
	TARGET_OUT=$TMP/target.$#.$(date +%s%N)
	"$@" >"$TARGET_OUT" 2>&1 &
	TARGET_PID=$!
	TARGETS="$TARGETS $TARGET_PID"
	i=0
	while ! grep -q ready "$TARGET_OUT" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 200 ] || ! kill -0 "$TARGET_PID" 2>/dev/null; then
			echo "FAIL: $* did not start: $(cat "$TARGET_OUT")" >&2
			exit 1
		fi
		sleep 0.05
	done
}

stop_target() {
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# $AS_NOBODY CMD...: runs CMD as user and group nobody (65534). A command,
# not a function, so that start_target gets the PID of CMD itself.
# shellcheck disable=SC2034 # used by the scripts that source this file
AS_NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"

# A process ID that does not exist now: past the kernel's pid_max.
no_such_pid() {
	echo $(($(cat /proc/sys/kernel/pid_max) + 1))
}

finish() {
	if [ "$failures" -gt 0 ]; then
		echo "$failures check(s) failed" >&2
		exit 1
	fi
	echo "all checks passed"
	exit 0
}
