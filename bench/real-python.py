"""real-python.py - an allocation-heavy python3 workload for the memkit bench.

Run with PYTHONMALLOC=malloc so that every object goes through the malloc
under test (with the default pymalloc, objects up to 512 bytes never reach it).
Fixed work: dicts of strings, lists of tuples, sorting, JSON round trips,
string building and a churn of short-lived objects. Prints the same
"checksum=... allocator=..." line as the C workloads, and checks
/proc/self/maps for the library named in BENCH_EXPECT.
"""
import json
import os
import sys
import zlib

SCALE = float(os.environ.get("BENCH_SCALE", "1"))


def n(x):
    return max(1, int(x * SCALE))


def allocator():
    for name in ("libjemalloc", "libtcmalloc", "libmimalloc", "libmemkit"):
        with open("/proc/self/maps") as f:
            for line in f:
                if name in line and "/" in line:
                    return line[line.index("/"):].strip()
    return "glibc"


def main():
    crc = 0
    for rnd in range(n(4)):
        table = {}
        for i in range(60000):
            key = "key-%d-%d" % (rnd, i)
            table[key] = [i, str(i) * (i % 7 + 1), (i, key)]
        rows = sorted(table.items(), key=lambda kv: kv[1][1])
        text = json.dumps(rows[:20000])
        back = json.loads(text)
        crc = zlib.crc32(text.encode(), crc)
        crc = zlib.crc32(str(len(back)).encode(), crc)
        parts = []
        for i in range(100000):
            parts.append("x" * (i % 300))
            if len(parts) > 500:
                parts = parts[250:]
        crc = zlib.crc32("".join(parts).encode(), crc)
        churn = [bytearray(64 + (i * 37) % 4000) for i in range(50000)]
        crc = zlib.crc32(str(sum(len(b) for b in churn)).encode(), crc)
        del table, rows, back, churn
    lib = allocator()
    print("checksum=%d allocator=%s" % (crc, lib))
    want = os.environ.get("BENCH_EXPECT", "")
    if want and want not in lib:
        print("bench: expected %s to be loaded, found %s" % (want, lib), file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
