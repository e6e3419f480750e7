#!/bin/sh
# Install the Debian packages a target needs, once. As root it installs them;
# otherwise it only names what is missing.
#   scripts/deps.sh build|test|bench
set -eu
want_build="cmake make gcc g++ pkg-config libsmartcols-dev libproc2-dev"
want_test="$want_build procps util-linux valgrind clang libclang-rt-14-dev python3 sqlite3 git perl lua5.4 xz-utils redis-server redis-tools libpython3.11-testsuite binutils"
want_bench="$want_build libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 gnuplot-nox python3 sqlite3 redis-server redis-tools valgrind heaptrack"

case "${1:-build}" in
build) want=$want_build ;;
test) want=$want_test ;;
bench) want=$want_bench ;;
*) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "memkit: missing Debian packages:$missing" >&2
	echo "memkit: install them with: sudo apt-get install$missing" >&2
	exit 1
fi
echo "memkit: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
