#!/bin/bash
# The dispatcher and the common options of memkit's commands.
. "$(dirname "$0")/lib.sh"

expect_fail 2 "unknown command 'frobnicate'" "$MEMKIT" frobnicate
expect_fail 2 "Usage:" "$MEMKIT"
expect_fail 2 "unknown option '--bogus'" "$MEMKIT" --bogus free
"$MEMKIT" --help | grep -q "^ drop-caches" && pass "--help lists commands" || fail "--help"
"$MEMKIT" -V | grep -qE '^memkit [0-9]+\.[0-9]+' && pass "-V" || fail "-V"
for cmd in free cache drop-caches dirty swap; do
	"$MEMKIT" $cmd --help | grep -q "^Usage:" && pass "$cmd --help" || fail "$cmd --help"
	"$MEMKIT" $cmd --version | grep -q "^memkit " && pass "$cmd --version" || fail "$cmd --version"
	expect_fail 2 "Try 'memkit $cmd --help'" "$MEMKIT" $cmd --no-such-option
done
for cmd in free dirty swap; do
	expect_fail 1 "cannot open /nonexistent/proc/meminfo: No such file or directory" \
		"$MEMKIT" --proc-root /nonexistent $cmd
done
expect_fail 1 "cannot open /nonexistent/proc/meminfo: No such file or directory" \
	env MEMKIT_PROC_ROOT=/nonexistent "$MEMKIT" free
finish
