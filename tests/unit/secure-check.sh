#!/bin/sh
# secure-check.sh LIB PROGRAM CASE EXPECTED-STATUS [STDERR-REGEX]
# Runs PROGRAM CASE with LIB preloaded; passes if it exits with
# EXPECTED-STATUS (134 = SIGABRT, 139 = SIGSEGV) and stderr matches.
lib=$1 prog=$2 case=$3 want=$4 regex=${5:-}
err=$(LD_PRELOAD="$lib" "$prog" "$case" 2>&1 >/dev/null)
status=$?
if [ "$status" != "$want" ]; then
	echo "FAIL: $case exited $status, expected $want; stderr: $err"
	exit 1
fi
if [ -n "$regex" ] && ! printf '%s\n' "$err" | grep -Eq "$regex"; then
	echo "FAIL: $case: stderr does not match /$regex/: $err"
	exit 1
fi
echo "ok: $case -> $status ${err:+($err)}"
