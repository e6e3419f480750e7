# bash completion for memkit(1)
_memkit_columns() {
	# the column names from "memkit CMD --help", for -o/--output
	memkit "$1" --help 2>/dev/null | awk '/^Available output columns:/ { on = 1; next } on && NF { print $1 }'
}

_memkit() {
	local cur prev cmd i
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	local commands="free cache drop-caches dirty swap buddy slab maps faults pagemap leak run help"
	local table_opts="--json --raw --noheadings --output --bytes --proc-root --help --version"

	# the command is the first word that is not a global option or its value
	cmd=""
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--proc-root) ((i++)) ;;
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done

	case $prev in
	--proc-root)
		COMPREPLY=($(compgen -d -- "$cur"))
		return
		;;
	--report | --suppressions | --lib)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	-o | --output)
		local cols
		cols=$(_memkit_columns "$cmd")
		COMPREPLY=($(compgen -W "$cols" -- "${cur##*,}"))
		[ "${cur%,*}" != "$cur" ] && COMPREPLY=("${COMPREPLY[@]/#/${cur%,*},}")
		return
		;;
	--set)
		COMPREPLY=($(compgen -S = -W "dirty_background_ratio dirty_background_bytes dirty_ratio dirty_bytes dirty_expire_centisecs dirty_writeback_centisecs dirtytime_expire_seconds" -- "$cur"))
		compopt -o nospace 2>/dev/null
		return
		;;
	-s | --seconds | -c | --count | -N | --top | --swappiness)
		return
		;;
	esac

	if [ -z "$cmd" ]; then
		COMPREPLY=($(compgen -W "$commands --proc-root --help --version" -- "$cur"))
		return
	fi
	case $cmd in
	free)
		COMPREPLY=($(compgen -W "--bytes --kilo --mega --giga --tera --peta --kibi --mebi --gibi --tebi --pebi --human --si --lohi --total --committed --seconds --count --wide --json --explain --proc-root --help --version" -- "$cur"))
		;;
	cache)
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--touch --evict --lock --verbose --no-progress $table_opts" -- "$cur"))
		else
			COMPREPLY=($(compgen -f -- "$cur"))
		fi
		;;
	drop-caches)
		COMPREPLY=($(compgen -W "pagecache slab all $table_opts" -- "$cur"))
		;;
	dirty)
		COMPREPLY=($(compgen -W "--set $table_opts" -- "$cur"))
		;;
	swap)
		COMPREPLY=($(compgen -W "--top --devices --processes --swappiness --flush $table_opts" -- "$cur"))
		;;
	*)
		# the other commands: their options from --help
		COMPREPLY=($(compgen -W "$(memkit "$cmd" --help 2>/dev/null | grep -oE -- '--[a-z][a-z-]*' | sort -u)" -- "$cur"))
		;;
	esac
}
complete -F _memkit memkit
