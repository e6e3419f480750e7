#!/usr/bin/env python3
"""scaling.py - thread scaling: the threaded workloads at 1, 2, 4 ... threads
under several allocators, interleaved (A B C, A B C, ... at each thread
count), medians of several runs.

    bench/scaling.py [options] NAME=LIB[,VAR=VALUE...] ...
    e.g. bench/scaling.py --threads 1,2,4,8,16 memkit=build/libmemkit.so glibc=glibc
         bench/scaling.py memkit=build/libmemkit.so leak=build/libmemkit.so,MEMKIT_LEAK=1

LIB is a .so to preload, or glibc; the VAR=VALUE after it are set in that
allocator's runs only (leak tracking beside plain runs, say).

Each workload does a fixed amount of work per thread, so with perfect scaling
its wall time stays flat while threads <= cores; CPU time shows what threads
cost each other (locks, cache lines moving between cores, the kernel's
mmap lock). Prints one Markdown table per workload and writes every run to
--csv. Runs use bench/measure (wait4's rusage), as run.py does.
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_WORKLOADS = "wl-larson,wl-random,wl-prodcons,wl-small,wl-threads,wl-falseshare"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="1,2,4,%d" % (os.cpu_count() or 1))
    ap.add_argument("--workloads", default=DEFAULT_WORKLOADS)
    ap.add_argument("--bench-dir", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--scale", default=os.environ.get("BENCH_SCALE", "1"))
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--csv", default=None)
    ap.add_argument("allocators", nargs="+", metavar="NAME=LIB[,VAR=VALUE...]")
    a = ap.parse_args()
    try:
        a.threads = [int(t) for t in a.threads.split(",") if t]
        a.allocs = [parse_allocator(x) for x in a.allocators]
    except ValueError:
        ap.error("--threads takes numbers separated by commas; "
                 "allocators NAME=LIB[,VAR=VALUE...]")
    if not a.threads or a.runs < 1:
        ap.error("--threads and --runs take positive numbers")
    if not os.access(os.path.join(a.bench_dir, "measure"), os.X_OK):
        ap.error("%s/measure not found: build the workloads first (make -C bench)" % a.bench_dir)
    for name, (lib, _) in a.allocs:
        if lib != "glibc" and not os.path.isfile(lib):
            ap.error("%s: %s not found" % (name, lib))
    return a


def parse_allocator(spec):
    """NAME=LIB[,VAR=VALUE...] -> (NAME, (LIB, {VAR: VALUE}))"""
    name, rest = spec.split("=", 1)
    lib, *assignments = rest.split(",")
    extra = dict(kv.split("=", 1) for kv in assignments)  # ValueError without "="
    if not name or not lib:
        raise ValueError(spec)
    return name, (lib, extra)


def run_once(a, wl, threads, alloc):
    lib, extra = alloc
    env = dict(os.environ, BENCH_THREADS=str(threads), BENCH_SCALE=a.scale, **extra)
    env.pop("LD_PRELOAD", None)
    env.pop("BENCH_EXPECT", None)
    if lib != "glibc":
        env["LD_PRELOAD"] = os.path.abspath(lib)
        # the workload checks that the library it was given is mapped
        env["BENCH_EXPECT"] = os.path.basename(lib).split(".so")[0]
    with tempfile.NamedTemporaryFile("r", delete=True) as res:
        cmd = [os.path.join(a.bench_dir, "measure"), res.name, "timeout", str(a.timeout),
               os.path.join(a.bench_dir, wl)]
        p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
        fields = dict(kv.split("=", 1) for kv in res.read().split())
    if p.returncode != 0 or fields.get("status") != "0":
        sys.stderr.write("scaling.py: %s, %d threads, %s failed: %s\n"
                         % (wl, threads, lib, p.stderr.strip()[-300:]))
        return None
    return (float(fields["wall"]), float(fields["user"]) + float(fields["sys"]),
            int(fields["maxrss_kb"]) / 1024.0)


def main():
    a = parse_args()
    rows = []
    for wl in a.workloads.split(","):
        print("\n### %s (BENCH_SCALE=%s, median of %d)\n" % (wl, a.scale, a.runs))
        names = [n for n, _ in a.allocs]
        print("| threads | " + " | ".join("%s wall s / cpu s / MiB" % n for n in names) + " |")
        print("|---:|" + "---:|" * len(names))
        for t in a.threads:
            got = {n: [] for n in names}
            for r in range(a.runs):
                for n, alloc in a.allocs:
                    m = run_once(a, wl, t, alloc)
                    if m:
                        got[n].append(m)
                        rows.append((wl, t, n, r) + m)
            med = {n: tuple(statistics.median(x[i] for x in got[n]) for i in range(3))
                   for n in names if got[n]}
            best = min((m[0] for m in med.values()), default=0)
            cells = []
            for n in names:
                if n not in med:
                    cells.append("FAILED")
                    continue
                w, c, rss = med[n]
                cells.append("%.3f (%.2fx) / %.2f / %.0f" % (w, w / best if best else 0, c, rss))
            print("| %d | %s |" % (t, " | ".join(cells)), flush=True)
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["workload", "threads", "allocator", "run", "wall_s", "cpu_s", "rss_mib"])
            w.writerows(rows)


if __name__ == "__main__":
    main()
