#!/bin/bash
# lib.sh - shared by the cli-core-* tests. Sourced with the memkit binary as $1.
#   check_output NAME CMD...   stdout + exit status of CMD must equal
#                              expected/NAME.out (UPDATE_EXPECTED=1 rewrites it)
#   expect_fail RC PATTERN CMD...  CMD must exit RC and print PATTERN on stderr
#   run_unprivileged CMD...    run as nobody (setpriv) when we are root
set -u
MEMKIT=${1:?usage: $0 path/to/memkit}
MEMKIT=$(cd "$(dirname "$MEMKIT")" && pwd)/$(basename "$MEMKIT")
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA=$SRC/../data
EXPECTED=$SRC/expected
TMP=$(mktemp -d /tmp/memkit-cli-core.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export LC_ALL=C
unset MEMKIT_PROC_ROOT COLUMNS
failures=0

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

pass() {
	echo "ok: $*"
}

# A tool the test needs must be there: missing means FAIL, never skip.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "FAIL: '$1' is not installed (Debian package: $2)" >&2
	exit 1
}

check_output() {
	local name=$1
	shift
	local got rc
	got=$("$@" 2>&1)
	rc=$?
	got=$(printf '%s\n[exit %d]' "$got" "$rc")
	if [ "${UPDATE_EXPECTED:-0}" = 1 ]; then
		printf '%s\n' "$got" >"$EXPECTED/$name.out"
	fi
	if [ ! -f "$EXPECTED/$name.out" ]; then
		fail "$name: no expected/$name.out"
	elif diff -u "$EXPECTED/$name.out" <(printf '%s\n' "$got") >"$TMP/diff"; then
		pass "$name"
	else
		fail "$name: output differs from expected/$name.out"
		cat "$TMP/diff" >&2
	fi
}

expect_fail() {
	local want_rc=$1 pattern=$2
	shift 2
	"$@" >"$TMP/out" 2>"$TMP/err"
	local rc=$?
	if [ "$rc" != "$want_rc" ]; then
		fail "'$*' exited $rc, expected $want_rc"
		cat "$TMP/err" >&2
	elif ! grep -qF -- "$pattern" "$TMP/err"; then
		fail "'$*': stderr lacks '$pattern'"
		cat "$TMP/err" >&2
	else
		pass "'$*' -> exit $rc, '$pattern'"
	fi
}

# The build directory may not be readable by nobody: use a private copy.
unprivileged_memkit() {
	if [ ! -x "$TMP/bin/memkit" ]; then
		mkdir -p "$TMP/bin"
		cp "$MEMKIT" "$TMP/bin/memkit"
		chmod 755 "$TMP" "$TMP/bin" "$TMP/bin/memkit"
	fi
	echo "$TMP/bin/memkit"
}

run_unprivileged() {
	if [ "$(id -u)" = 0 ]; then
		need setpriv util-linux
		setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
	else
		"$@"
	fi
}

# A writable copy of a dump, for commands that write sysctls.
dump_copy() {
	rm -rf "$TMP/dump-$1"
	cp -r "$DATA/$1" "$TMP/dump-$1"
	echo "$TMP/dump-$1"
}

finish() {
	if [ "$failures" -gt 0 ]; then
		echo "$failures check(s) failed" >&2
		exit 1
	fi
	echo "all checks passed"
	exit 0
}
