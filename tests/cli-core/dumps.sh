#!/bin/bash
# Recorded and synthesized dumps (tests/data/) replayed through --proc-root,
# compared with the expected output files in expected/.
. "$(dirname "$0")/lib.sh"

for d in live-vm swap-in-use container-v2; do
	root=$DATA/$d
	check_output "$d-free" "$MEMKIT" --proc-root "$root" free
	check_output "$d-free-h-wltv" "$MEMKIT" --proc-root "$root" free -h -w -l -t -v
	check_output "$d-free-json" "$MEMKIT" --proc-root "$root" free -J -l -v
	check_output "$d-free-explain" "$MEMKIT" free --proc-root "$root" --explain
	check_output "$d-dirty" "$MEMKIT" --proc-root "$root" dirty
	check_output "$d-dirty-json" "$MEMKIT" --proc-root "$root" dirty -J -b
	check_output "$d-swap" "$MEMKIT" --proc-root "$root" swap
	check_output "$d-swap-json" "$MEMKIT" --proc-root "$root" swap -J -b
done
# the environment variable is the same as --proc-root
check_output "swap-in-use-swap-env" env MEMKIT_PROC_ROOT="$DATA/swap-in-use" "$MEMKIT" swap -r -n -N 2
check_output "swap-in-use-swap-columns" "$MEMKIT" --proc-root "$DATA/swap-in-use" swap -o NAME,USED -b
finish
