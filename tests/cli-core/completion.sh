#!/bin/bash
# The bash completion script completes commands, options and column names.
. "$(dirname "$0")/lib.sh"
PATH=$(dirname "$MEMKIT"):$PATH
. "$SRC/../../cli/completion/memkit.bash"

complete_words() {
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	_memkit
	echo "${COMPREPLY[*]}"
}

check() {
	local want=$1
	shift
	local got
	got=$(complete_words "$@")
	[ "$got" = "$want" ] && pass "'$*' -> '$got'" || fail "'$*' -> '$got', expected '$want'"
}

check "drop-caches" memkit dr
check "swap" memkit --proc-root /tmp sw
check "slab" memkit drop-caches s
check "RES,PAGES RES,PERCENT" memkit cache -o RES,P
check "dirty_ratio=" memkit dirty --set dirty_r
check "--explain" memkit free --ex
check "--devices" memkit swap --dev
check "--suppressions" memkit run --supp
check "$SRC/../../cli/completion/memkit.bash" memkit run --suppressions "$SRC/../../cli/completion/memkit.b"
finish
