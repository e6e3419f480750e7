#!/bin/sh
# make run: memkit on this machine. First the kernel's side (free --explain),
# then libmemkit's own side: the bundled demo run on libmemkit with its
# statistics (memkit run --stats).
set -eu
build=${1:-build}
echo "== memkit free --explain"
"$build/memkit" free --explain || echo "(memkit free failed: exit $?)"
echo
echo "== memkit run --stats -- $build/demo"
"$build/memkit" run --stats -- "$build/demo"
