#!/bin/bash
# record.sh DIR - copy the /proc and /sys files memkit reads into DIR, so that
# "memkit --proc-root DIR <command>" replays this machine later.
# Records: meminfo, swaps, vmstat, zoneinfo, buddyinfo, slabinfo (when
# readable), /proc/sys/vm/*, /proc/self/cgroup and that cgroup's memory
# files, and /proc/PID/status of PID 1 and of every process using swap.
set -eu
dest=${1:?usage: record.sh DIR}
mkdir -p "$dest/proc/sys/vm" "$dest/proc/self"

copy() { # copy a file (read through cat: /proc sizes are 0) if readable
	local src=$1
	[ -r "$src" ] || return 0
	mkdir -p "$dest$(dirname "$src")"
	cat "$src" >"$dest$src" 2>/dev/null || rm -f "$dest$src"
}

for f in meminfo swaps vmstat zoneinfo buddyinfo slabinfo; do copy /proc/$f; done
for f in /proc/sys/vm/*; do [ -f "$f" ] && copy "$f"; done
cat /proc/self/cgroup >"$dest/proc/self/cgroup"

# the memory cgroup of this shell, v2 or v1, and its ancestors' limits
while IFS=: read -r _ ctrl path; do
	case ",$ctrl," in
	,,) base=/sys/fs/cgroup; [ -f $base/cgroup.controllers ] || base=/sys/fs/cgroup/unified ;;
	*,memory,*) base=/sys/fs/cgroup/memory ;;
	*) continue ;;
	esac
	[ -f $base/cgroup.controllers ] && copy $base/cgroup.controllers
	d=$base$path
	while :; do
		for f in memory.max memory.current memory.stat memory.limit_in_bytes memory.usage_in_bytes; do
			copy "$d/$f"
		done
		[ "$d" = "$base" ] || [ "$d" = / ] && break
		d=$(dirname "$d")
	done
done </proc/self/cgroup

copy /proc/1/status
for s in /proc/[0-9]*/status; do
	grep -qE '^VmSwap:[[:space:]]+[1-9]' "$s" 2>/dev/null && copy "$s"
done
exit 0
