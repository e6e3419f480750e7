#!/usr/bin/env python3
"""run.py - the memkit benchmark driver (called by bench/run.sh; see
docs/benchmarks.md for the method).

Runs every workload under every allocator, interleaved (A B C D E, A B C D E,
...), BENCH_RUNS times; takes medians of wall time, CPU time (user + sys) and
peak RSS (ru_maxrss from wait4); checks each run's exit status, checksum and
that the preloaded library really was mapped; writes BENCHMARKS.md and
docs/bench-chart.svg.

Environment:
  BENCH_RUNS=N            runs per workload and allocator (default 5)
  BENCH_QUICK=1           a short run: 2 runs, a fifth of the work
  BENCH_ONLY=a,b          only these workloads
  BENCH_ALLOCATORS=a,b    only these allocators (glibc jemalloc tcmalloc mimalloc memkit)
  BENCH_THREADS=N         threads for the workloads (default: online cores)
  BENCH_TIMEOUT=S         seconds before a run is killed and marked FAILED (default 180)
  BENCH_CALLGRIND=0       skip the instructions-per-malloc/free measurement
  BENCH_OUTPUT=FILE       where to write the report (default BENCHMARKS.md)
"""
import csv
import datetime
import math
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEERS = ["glibc", "jemalloc", "tcmalloc", "mimalloc"]
ALL_ALLOCATORS = PEERS + ["memkit"]
PACKAGES = {"glibc": "libc6", "jemalloc": "libjemalloc2",
            "tcmalloc": "libtcmalloc-minimal4", "mimalloc": "libmimalloc2.0"}


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- allocators

def allocators(build):
    """name -> (LD_PRELOAD path or None, the name /proc/PID/maps must show)."""
    table = {
        "glibc": (None, None),
        "jemalloc": (LIBDIR + "/libjemalloc.so.2", "libjemalloc"),
        "tcmalloc": (LIBDIR + "/libtcmalloc_minimal.so.4", "libtcmalloc"),
        "mimalloc": (LIBDIR + "/libmimalloc.so.2", "libmimalloc"),
        "memkit": (os.path.join(build, "libmemkit.so"), "libmemkit"),
    }
    want = os.environ.get("BENCH_ALLOCATORS", "")
    names = [a for a in want.split(",") if a] if want else ALL_ALLOCATORS
    for a in names:
        if a not in table:
            sys.exit("run.py: unknown allocator %s (known: %s)" % (a, " ".join(table)))
    return {a: table[a] for a in names}


def preload_env(alloc):
    path, expect = alloc
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if path:
        env["LD_PRELOAD"] = path
    env["BENCH_EXPECT"] = expect or ""
    return env


# ---------------------------------------------------------------- one run

class Result:
    def __init__(self):
        self.ok = False
        self.error = ""
        self.wall = self.cpu = float("nan")
        self.rss_kb = 0
        self.checksum = None
        self.allocator = ""
        self.metrics = {}


def spawn_measured(cmd, env, stdin_data=None, timeout=180, cwd=None, measure=None):
    """Run cmd under bench/measure; return (status, wall s, rusage-like, stdout,
    stderr). measure (a small C launcher) does the fork and wait4, so that the
    peak RSS is the command's own and not the Python driver's (Linux keeps
    the peak across execve)."""
    class Usage:
        ru_utime = ru_stime = float("nan")
        ru_maxrss = 0
    ru = Usage()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryFile() as inp, tempfile.NamedTemporaryFile() as res:
        if stdin_data is not None:
            inp.write(stdin_data.encode())
            inp.seek(0)
        t0 = time.monotonic()
        proc = subprocess.Popen([measure, res.name] + cmd, env=env, stdin=inp, stdout=out,
                                stderr=err, start_new_session=True, cwd=cwd)
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        proc.wait()
        wall = time.monotonic() - t0
        timer.cancel()
        text = open(res.name).read()
        m = re.match(r"status=(-?\d+) wall=(\S+) user=(\S+) sys=(\S+) maxrss_kb=(\d+)", text)
        if m:
            status, wall = int(m.group(1)), float(m.group(2))
            ru.ru_utime, ru.ru_stime = float(m.group(3)), float(m.group(4))
            ru.ru_maxrss = int(m.group(5))
        else:
            status = signal.SIGKILL if proc.returncode < 0 else proc.returncode << 8
        out.seek(0)
        err.seek(0)
        return status, wall, ru, out.read().decode(errors="replace"), \
            err.read().decode(errors="replace")


def describe_status(status, timeout):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGKILL:
            return "killed (timeout %ds?)" % timeout
        return "crashed: %s" % signal.Signals(sig).name
    code = os.WEXITSTATUS(status)
    if code == 3:
        return "preload not loaded"
    return "exit status %d" % code


def parse_output(res, out):
    for line in out.splitlines():
        m = re.match(r"checksum=(\S+) allocator=(.*)$", line)
        if m:
            res.checksum, res.allocator = m.group(1), m.group(2).strip()
        m = re.match(r"metric (\w+)=(\S+)$", line)
        if m:
            res.metrics[m.group(1)] = float(m.group(2))


def check_common(res, status, err, expect, timeout):
    if "cannot be preloaded" in err:
        res.error = "LD_PRELOAD ignored by ld.so"
    elif status != 0:
        res.error = describe_status(status, timeout)
    elif res.checksum is None:
        res.error = "no checksum printed"
    elif expect and expect not in res.allocator:
        res.error = "preload not loaded (maps: %s)" % res.allocator
    elif not expect and res.allocator not in ("glibc", ""):
        res.error = "unexpected allocator %s" % res.allocator
    else:
        res.ok = True
    if not res.ok and err.strip():
        res.error += ": " + err.strip().splitlines()[-1][:120]


def run_command(wl, alloc, ctx):
    res = Result()
    env = preload_env(alloc)
    env.update(wl.get("env", {}))
    env["BENCH_SCALE"] = str(ctx["scale"] * wl.get("scale", 1.0))
    env["BENCH_THREADS"] = str(wl.get("threads", ctx["threads"]))
    stdin_data = wl["stdin"](ctx) if "stdin" in wl else None
    status, wall, ru, out, err = spawn_measured(wl["cmd"](ctx), env, stdin_data,
                                                ctx["timeout"], ctx["work"], ctx["measure"])
    res.wall, res.cpu, res.rss_kb = wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss
    if "parse" in wl:
        wl["parse"](res, out)
    else:
        parse_output(res, out)
    check_common(res, status, err, alloc[1], ctx["timeout"])
    return res


# ---------------------------------------------------------------- workloads

def c_workload(name, desc, **kw):
    w = {"name": name, "desc": desc, "kind": "C",
         "cmd": lambda ctx, n=name.split("@")[0]: [os.path.join(ctx["bin"], "wl-" + n)]}
    w.update(kw)
    return w


def sqlite_stdin(ctx):
    with open(os.path.join(ROOT, "bench", "real-sqlite-query.sql")) as f:
        q = f.read()
    return q + ('.system grep -m1 -o -E "(libjemalloc|libtcmalloc|libmimalloc|libmemkit)'
                    '[^ ]*" /proc/$PPID/maps\n')


def sqlite_parse(res, out):
    lines = out.strip().splitlines()
    lib = lines[-1] if lines and re.match(r"lib\w+\.so", lines[-1]) else "glibc"
    body = "\n".join(lines[:-1] if lib != "glibc" else lines)
    res.allocator = lib
    res.checksum = "%08x" % (zlib_crc(body))
    if not body:
        res.checksum = None


def zlib_crc(text):
    import zlib
    return zlib.crc32(text.encode())


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def redis_load_script():
    """A deterministic data set; its DEBUG DIGEST is the run's checksum."""
    lines = []
    for i in range(20000):
        lines.append("SET str:%d %s" % (i, "v" * (1 + (i * 37) % 700)))
    for i in range(500):
        lines.append("RPUSH list:%d %s" % (i, " ".join("e%d" % k for k in range(i % 50 + 1))))
        lines.append("HSET hash:%d %s" % (i, " ".join("f%d %d" % (k, k * i) for k in range(20))))
        lines.append("SADD set:%d %s" % (i, " ".join("m%d" % (k * 7) for k in range(30))))
    for i in range(0, 20000, 3):
        lines.append("DEL str:%d" % i)
    return "\r\n".join(lines) + "\r\n"


def run_redis(wl, alloc, ctx):
    res = Result()
    env = preload_env(alloc)
    port = free_port()
    cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
    clean_env = dict(os.environ)
    clean_env.pop("LD_PRELOAD", None)
    server_cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--enable-debug-command", "local",
                  "--dir", ctx["work"], "--logfile", "", "--daemonize", "no"]
    outcome = {}

    def server():
        outcome["r"] = spawn_measured(server_cmd, env, None, ctx["timeout"], ctx["work"],
                                      ctx["measure"])

    th = threading.Thread(target=server)
    th.start()
    maps_lib = None
    try:
        for _ in range(200):
            p = subprocess.run(cli + ["ping"], capture_output=True, text=True, env=clean_env)
            if p.stdout.strip() == "PONG":
                break
            if not th.is_alive():
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not answer")
        pid = subprocess.run(cli + ["info", "server"], capture_output=True, text=True,
                             env=clean_env).stdout
        m = re.search(r"process_id:(\d+)", pid)
        if m:
            with open("/proc/%s/maps" % m.group(1)) as f:
                maps = f.read()
            names = [alloc[1]] if alloc[1] else []
            maps_lib = next((n for n in names if n in maps), None) if names else "none"
        n = str(int(100000 * ctx["scale"]))
        bench = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", n,
                                "-c", "50", "-P", "16", "-r", "100000", "-d", "128", "-q",
                                "-t", "set,get,incr,lpush,lpop,sadd,hset"],
                               capture_output=True, text=True, env=clean_env,
                               timeout=ctx["timeout"])
        dbsize = subprocess.run(cli + ["dbsize"], capture_output=True, text=True,
                                env=clean_env).stdout.strip()
        subprocess.run(cli + ["flushall"], capture_output=True, env=clean_env)
        subprocess.run(cli + ["--pipe"], input=redis_load_script(), capture_output=True,
                       text=True, env=clean_env)
        digest = subprocess.run(cli + ["debug", "digest"], capture_output=True, text=True,
                                env=clean_env).stdout.strip()
        keys = subprocess.run(cli + ["dbsize"], capture_output=True, text=True,
                              env=clean_env).stdout.strip()
        if bench.returncode != 0 or not dbsize.isdigit() or int(dbsize) == 0:
            res.error = "redis-benchmark failed (status %d, dbsize %r)" % (bench.returncode,
                                                                         dbsize)
        res.checksum = "%s/%s" % (digest, keys) if re.match(r"[0-9a-f]{40}$", digest) else None
    except Exception as e:  # report, never hide
        res.error = "redis: %s" % e
    finally:
        subprocess.run(cli + ["shutdown", "nosave"], capture_output=True, env=clean_env)
        th.join()
    status, wall, ru, out, err = outcome["r"]
    res.wall, res.cpu, res.rss_kb = wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss
    res.allocator = maps_lib or "?"
    if res.error:
        return res
    if alloc[1] and maps_lib != alloc[1]:
        res.error = "preload not loaded in redis-server"
    elif "cannot be preloaded" in err:
        res.error = "LD_PRELOAD ignored by ld.so"
    elif status != 0 and not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        res.error = describe_status(status, ctx["timeout"])
    elif res.checksum is None:
        res.error = "no DEBUG DIGEST"
    else:
        res.ok = True
    return res


def workloads(ctx):
    ncpu = ctx["threads"]
    wls = [
        c_workload("small", "small same-thread allocations (8..512 B) replacing a 2048-block "
                   "working set, 30 M malloc/free pairs per thread"),
        c_workload("random", "random sizes 8 B..1 MiB (log-uniform), random lifetimes, pages "
                   "touched, 300 k steps per thread"),
        c_workload("prodcons", "producer/consumer pairs (max(1, threads/2)): 6 M blocks of "
                   "16..1024 B freed by the other thread"),
        c_workload("larson", "server pattern: 1024 connections' buffers (24..4096 B) freed and "
                   "reallocated by any thread, 4 M requests in all"),
        c_workload("larson@4x", "the larson workload with 4 threads per core "
                   "(%d threads)" % (4 * ncpu), threads=4 * ncpu),
        c_workload("realloc", "strings grown by realloc (exact and doubling) to 64 B..256 KiB, "
                   "20 k per thread"),
        c_workload("large", "blocks of 128 KiB..4 MiB replaced in a loop, every page "
                   "touched, 6 k per thread"),
        c_workload("tree", "binary trees (24-byte nodes) built, checked and freed, depth "
                   "4..18, per thread"),
        c_workload("threads", "rounds of 2 x cores threads that allocate 500 blocks, free half "
                   "and exit; main frees the rest; 2000 rounds"),
        c_workload("falseshare", "8-byte objects written 1000 times each by every thread "
                   "(active), then after freeing an object from main (passive)"),
        c_workload("frag", "256 MiB of 16..1024 B blocks, pinned by 64 later blocks, all "
                   "freed: share of the freed RSS returned to the OS after 1 s and 100 k more "
                   "malloc/free pairs (single "
                   "thread)"),
        {"name": "python", "kind": "real",
         "desc": "python3 (PYTHONMALLOC=malloc): dicts, sorting, JSON, strings, bytearrays",
         "cmd": lambda c: ["python3", os.path.join(ROOT, "bench", "real-python.py")],
         "env": {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0"}},
        {"name": "sqlite", "kind": "real",
         "desc": "sqlite3 on a generated 17 MB database (50 k customers, 400 k orders): "
                 "joins, GROUP BY, sorts, a temp index, 64 MiB page cache; output compared",
         "cmd": lambda c: ["sqlite3", "-readonly", c["db"]],
         "stdin": sqlite_stdin, "parse": sqlite_parse},
        {"name": "redis", "kind": "real",
         "desc": "redis-server on 127.0.0.1 driven by redis-benchmark (100 k requests x 7 "
                 "commands, 50 clients, pipeline 16, 128-byte values), then a fixed data "
                 "set loaded and its DEBUG DIGEST compared; time, CPU and RSS are the "
                 "server's", "run": run_redis},
    ]
    only = os.environ.get("BENCH_ONLY", "")
    if only:
        names = [w for w in only.split(",") if w]
        known = {w["name"] for w in wls}
        for n in names:
            if n not in known:
                sys.exit("run.py: unknown workload %s (known: %s)" % (n, " ".join(sorted(known))))
        wls = [w for w in wls if w["name"] in names]
    return wls


# ---------------------------------------------------------------- callgrind

def callgrind_ir(cmd, env):
    with tempfile.NamedTemporaryFile(suffix=".cg") as out:
        p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out.name]
                           + cmd, env=env, capture_output=True, text=True)
    m = re.search(r"Collected : (\d+)", p.stderr)
    ok = p.returncode == 0 and m and "checksum=" in p.stdout
    return int(m.group(1)) if ok else None, p.stdout.strip()


def measure_instructions(allocs, ctx):
    """Instructions per malloc/free pair on the small workload, one thread:
    (Ir of a real run - Ir of the same loop with malloc/free left out) / pairs."""
    steps = 300000
    scale = steps / 30000000.0
    cmd = [os.path.join(ctx["bin"], "wl-small")]
    base = preload_env((None, None))
    base.update({"BENCH_THREADS": "1", "BENCH_SCALE": repr(scale)})
    null_env = dict(base, BENCH_NULL="1")
    null_ir, _ = callgrind_ir(cmd, null_env)
    rows = {}
    if null_ir is None:
        return None, rows
    for name, alloc in allocs.items():
        env = preload_env(alloc)
        env.update({"BENCH_THREADS": "1", "BENCH_SCALE": repr(scale)})
        ir, out = callgrind_ir(cmd, env)
        loaded = alloc[1] is None or (alloc[1] in out)
        if ir is None or not loaded:
            rows[name] = None
        else:
            rows[name] = (ir - null_ir) / steps
        log("callgrind %-9s %s" % (name, "FAILED" if rows[name] is None
                                   else "%.1f instructions per pair" % rows[name]))
    return {"steps": steps, "null_ir": null_ir}, rows


# ---------------------------------------------------------------- report

def median(xs):
    return statistics.median(xs) if xs else float("nan")


def geomean(xs):
    xs = [x for x in xs if x and x > 0 and not math.isnan(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def paired_ratios(runs, peer_runs, ref):
    """Wall time over the fastest peer's, round by round: run i of each
    allocator ran side by side (interleaved), so each ratio shares the
    machine's state of that moment; their spread shows how far a median's
    ratio can be trusted on a shared machine."""
    good = lambda r: r.ok and r.checksum == ref and r.wall > 0
    return sorted(a.wall / b.wall for a, b in zip(runs, peer_runs) if good(a) and good(b))


def summarize(wls, allocs, results):
    """results[(wl, alloc)] = [Result]; returns per-workload summaries."""
    summary = {}
    for w in wls:
        name = w["name"]
        # The reference checksum: glibc's if it ran, else the peers', else anyone's.
        ref = None
        for group in (["glibc"], PEERS, list(allocs)):
            sums = [r.checksum for a in group if a in allocs for r in results[(name, a)]
                    if r.ok]
            if sums:
                ref = statistics.mode(sums)
                break
        rows = {}
        for a in allocs:
            rs = results[(name, a)]
            bad = [r for r in rs if not r.ok]
            wrong = [r for r in rs if r.ok and r.checksum != ref]
            good = [r for r in rs if r.ok and r.checksum == ref]
            err = ""
            if bad:
                err = bad[0].error
            elif wrong:
                err = "checksum %s differs from %s" % (wrong[0].checksum, ref)
            metrics = {}
            for k in {k for r in good for k in r.metrics}:
                metrics[k] = median([r.metrics[k] for r in good if k in r.metrics])
            rows[a] = {
                "ok": not err and bool(good), "error": err, "failed": len(bad) + len(wrong),
                "runs": len(rs), "wall": median([r.wall for r in good]),
                "cpu": median([r.cpu for r in good]),
                "rss": median([r.rss_kb for r in good]) / 1024.0, "metrics": metrics,
                "allocator": good[0].allocator if good else "",
            }
        peers = [a for a in PEERS if a in rows and rows[a]["ok"]]
        fastest = min(peers, key=lambda a: rows[a]["wall"]) if peers else None
        best_wall = min((rows[a]["wall"] for a in peers), default=float("nan"))
        best_rss = min((rows[a]["rss"] for a in peers), default=float("nan"))
        best_cpu = min((rows[a]["cpu"] for a in peers), default=float("nan"))
        for a in allocs:
            r = rows[a]
            r["wall_ratio"] = r["wall"] / best_wall if r["ok"] and peers else float("nan")
            r["rss_ratio"] = r["rss"] / best_rss if r["ok"] and peers else float("nan")
            r["wall_rounds"] = paired_ratios(results[(name, a)], results[(name, fastest)],
                                             ref) if r["ok"] and fastest else []
            r["cpu_ratio"] = (r["cpu"] / best_cpu if r["ok"] and peers and best_cpu > 0
                              else float("nan"))
            glibc = rows.get("glibc")
            r["rss_vs_glibc"] = (r["rss"] / glibc["rss"] if r["ok"] and glibc and glibc["ok"]
                                 else float("nan"))
        summary[name] = rows
    return summary


def rounds_span(ratios):
    return " (rounds %.2f-%.2f)" % (ratios[0], ratios[-1]) if ratios else ""


def fmt(x, spec):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else spec % x


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def machine():
    model = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip()
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    osr = sh(". /etc/os-release && echo $PRETTY_NAME")
    return ("%s, %d online cores (`nproc`), %s RAM; %s; kernel %s" %
            (model, os.cpu_count(), mem, osr, " ".join(platform.uname()[2:5])))


def versions(allocs, build):
    out = []
    for a in allocs:
        if a in PACKAGES:
            v = sh("dpkg-query -W -f='${Version}' %s" % PACKAGES[a])
            out.append("%s %s (Debian package %s)" % (a, v, PACKAGES[a]))
        else:
            lib = os.path.join(build, "libmemkit.so")
            rev = sh("git -C %s describe --always --dirty" % ROOT)
            built = (datetime.datetime.utcfromtimestamp(os.path.getmtime(lib))
                     .strftime("%Y-%m-%d %H:%M UTC") if os.path.exists(lib) else "missing")
            out.append("memkit (`%s/libmemkit.so`, built %s; source tree at git %s when the "
                       "run started)" % (os.path.relpath(build, ROOT), built, rev))
    return out


def write_report(path, wls, allocs, summary, ctx, cg, started, elapsed):
    L = []
    add = L.append
    add("# memkit benchmarks")
    add("")
    add("Generated by `bench/run.sh` (method: [docs/benchmarks.md](docs/benchmarks.md)); "
        "do not edit by hand.")
    add("")
    add("- Date: %s UTC, %.0f s for the whole run" % (started, elapsed))
    add("- Machine: %s" % machine())
    add("- Allocators: " + "; ".join(ctx["versions"]))
    add("- Load average (1 min) at start and end: %s and %s (`/proc/loadavg`; other work "
        "shares this machine; when it exceeds the core count, wall times stretch and the "
        "CPU-time columns are the steadier comparison)" % (ctx["load0"], sh("cut -d' ' -f1 /proc/loadavg")))
    add("- Settings: %d runs per workload and allocator, interleaved; work scale %g; "
        "%d threads (= online cores) unless stated" % (ctx["runs"], ctx["scale"], ctx["threads"]))
    env_bits = " ".join("%s=%s" % (k, os.environ[k]) for k in
                        ("BENCH_RUNS", "BENCH_QUICK", "BENCH_ONLY", "BENCH_ALLOCATORS",
                         "BENCH_THREADS") if os.environ.get(k))
    add("- Reproduce: `%smake bench` (or `%sbench/run.sh build`)" %
        (env_bits + " " if env_bits else "", env_bits + " " if env_bits else ""))
    add("- Figures are medians. *time* is wall-clock seconds, *cpu* user+sys seconds, *RSS* "
        "peak resident set (MiB, `ru_maxrss` from `wait4`); *x best* is the ratio to the best "
        "of the four peers (glibc, jemalloc, tcmalloc, mimalloc) on that workload. A run that "
        "crashed, timed out, printed a wrong checksum or ran without its preload counts as "
        "FAILED and is shown, never dropped.")
    add("")
    add("![time and peak RSS relative to the best peer](docs/bench-chart.svg)")
    add("")

    # geometric means
    add("## Summary: geometric means over workloads")
    add("")
    complete = [w["name"] for w in wls if all(summary[w["name"]][a]["ok"] for a in allocs)]
    add("Over the %d workloads where every allocator succeeded%s." % (
        len(complete), "" if len(complete) == len(wls) else
        " (left out: %s)" % ", ".join(w["name"] for w in wls if w["name"] not in complete)))
    add("")
    add("| allocator | time x best peer | cpu x best peer | RSS x best peer | RSS x glibc "
        "| workloads failed |")
    add("|---|---:|---:|---:|---:|---:|")
    for a in allocs:
        gw = geomean([summary[n][a]["wall_ratio"] for n in complete])
        cpus = [summary[n][a]["cpu_ratio"] for n in complete]
        gr = geomean([summary[n][a]["rss_ratio"] for n in complete])
        gg = geomean([summary[n][a]["rss_vs_glibc"] for n in complete])
        nf = sum(1 for w in wls if not summary[w["name"]][a]["ok"])
        add("| %s | %s | %s | %s | %s | %d |" % (a, fmt(gw, "%.2f"), fmt(geomean(cpus), "%.2f"),
                                              fmt(gr, "%.2f"), fmt(gg, "%.2f"), nf))
    add("")

    if "memkit" in allocs:
        add("## libmemkit against the targets of issue 6")
        add("")
        peers_in = [a for a in PEERS if a in allocs]
        gms = {a: geomean([summary[n][a]["wall_ratio"] for n in complete]) for a in allocs}
        best_peer = min(peers_in, key=lambda a: gms[a]) if peers_in else None
        slow = [(n, summary[n]["memkit"]["wall_ratio"]) for n in summary
                if summary[n]["memkit"]["ok"] and summary[n]["memkit"]["wall_ratio"] > 1.25]
        failed = [n for n in summary if not summary[n]["memkit"]["ok"]]
        gg = geomean([summary[n]["memkit"]["rss_vs_glibc"] for n in complete])
        frag = summary.get("frag", {}).get("memkit", {})
        fr = frag.get("metrics", {}).get("returned_pct") if frag.get("ok") else None
        if best_peer:
            add("- Time: geometric mean %s x best peer, against %s for the best peer overall "
                "(%s): %s." % (fmt(gms["memkit"], "%.2f"), fmt(gms[best_peer], "%.2f"), best_peer,
                               "met" if gms["memkit"] <= gms[best_peer] else "not met"))
        add("- No workload slower than 1.25 x the best peer: %s." % (
            "met" if not slow and not failed else "not met: " + ", ".join(
                ["%s %.2f x%s" % (n, r, rounds_span(summary[n]["memkit"]["wall_rounds"]))
                 for n, r in sorted(slow, key=lambda x: -x[1])] +
                ["%s FAILED" % n for n in failed])))
        near = sorted(((n, summary[n]["memkit"]) for n in summary
                       if summary[n]["memkit"]["ok"] and summary[n]["memkit"]["wall_rounds"]
                       and summary[n]["memkit"]["wall_rounds"][-1] > 1.25),
                      key=lambda x: -x[1]["wall_ratio"])
        if near:
            add("  Round by round (each run against the fastest peer's run beside it), the "
                "workloads with a round over 1.25 x: %s." % ", ".join(
                    "%s %s of %d rounds (%.2f-%.2f)" % (
                        n, sum(1 for x in r["wall_rounds"] if x > 1.25), len(r["wall_rounds"]),
                        r["wall_rounds"][0], r["wall_rounds"][-1]) for n, r in near))
        add("- Peak RSS geometric mean %s x glibc (target <= 1.00): %s." % (
            fmt(gg, "%.2f"), "met" if gg <= 1.0 else "not met"))
        add("- frag: %s of the freed memory returned to the OS (target >= 90 %%): %s." % (
            fmt(fr, "%.1f %%"), "met" if fr is not None and fr >= 90 else "not met"))
        add("")

    if "frag" in summary:
        add("## Memory returned to the OS (frag workload)")
        add("")
        add("| allocator | peak RSS MiB | RSS right after free | RSS 1 s later, after 100 k "
            "malloc/free | returned at once | returned 1 s later |")
        add("|---|---:|---:|---:|---:|---:|")
        for a in allocs:
            r = summary["frag"][a]
            m = r["metrics"]
            if not r["ok"]:
                add("| %s | FAILED: %s | | | | |" % (a, r["error"]))
                continue
            add("| %s | %s | %s | %s | %s %% | %s %% |" % (
                a, fmt(m.get("rss_peak_mib"), "%.1f"), fmt(m.get("rss_after_free_mib"), "%.1f"),
                fmt(m.get("rss_idle_mib"), "%.1f"), fmt(m.get("returned_now_pct"), "%.1f"),
                fmt(m.get("returned_pct"), "%.1f")))
        add("")

    if cg is not None:
        info, rows = cg
        add("## Instructions per malloc/free pair (small workload, one thread)")
        add("")
        if info is None:
            add("FAILED: valgrind could not run the null loop.")
        else:
            add("`valgrind --tool=callgrind` on `wl-small` with BENCH_THREADS=1 and %d steps; "
                "(Ir of the run - Ir of the same loop without malloc/free [BENCH_NULL=1: %d]) "
                "/ steps. Each step is one free and one malloc of 8..512 bytes. "
                "`perf stat -e instructions` reports `<not supported>` on this machine." %
                (info["steps"], info["null_ir"]))
            add("")
            add("| allocator | instructions per pair |")
            add("|---|---:|")
            for a, v in rows.items():
                add("| %s | %s |" % (a, "FAILED" if v is None else "%.1f" % v))
        add("")

    add("## Workloads")
    add("")
    for w in wls:
        n = w["name"]
        add("### %s" % n)
        add("")
        add("%s: %s%s." % ("Real program" if w["kind"] == "real" else "`bench/wl-%s.c`" %
                         n.split("@")[0], w["desc"],
                         "" if ctx["scale"] == 1 else " (counts at scale 1; this run: x%g)" %
                         ctx["scale"]))
        if n == "redis":
            add("For *glibc*, redis-server runs with the jemalloc it is linked against "
                "(Debian builds it with `libjemalloc2`): no preload can bring glibc's malloc in.")
        add("")
        add("| allocator | time s | cpu s | RSS MiB | time x best | cpu x best | RSS x best "
            "| status |")
        add("|---|---:|---:|---:|---:|---:|---:|---|")
        for a in allocs:
            r = summary[n][a]
            status = "ok" if r["ok"] else "FAILED (%d/%d runs): %s" % (r["failed"], r["runs"],
                                                                     r["error"])
            status = status.replace("|", "/")
            add("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                a, fmt(r["wall"], "%.3f"), fmt(r["cpu"], "%.3f"), fmt(r["rss"], "%.1f"),
                fmt(r["wall_ratio"], "%.2f"), fmt(r["cpu_ratio"], "%.2f"),
                fmt(r["rss_ratio"], "%.2f"), status))
        add("")
    extra = ctx.get("extra_md")
    if extra and os.path.exists(extra):
        with open(extra) as f:
            add(f.read().rstrip())
        add("")
    with open(path, "w") as f:
        f.write("\n".join(L))
    log("wrote %s" % path)


def write_chart(svg, wls, allocs, summary, datadir):
    dat = os.path.join(datadir, "chart.dat")
    cap = 4.0
    with open(dat, "w") as f:
        f.write("# workload " + " ".join(allocs) + " " + " ".join(a + "_rss" for a in allocs) + "\n")
        for w in wls:
            n = w["name"]
            vals = [min(cap, summary[n][a]["wall_ratio"]) if summary[n][a]["ok"] else 0
                    for a in allocs]
            rss = [min(cap, summary[n][a]["rss_ratio"]) if summary[n][a]["ok"] else 0
                   for a in allocs]
            f.write("%s %s %s\n" % (n, " ".join("%.3f" % v for v in vals),
                                    " ".join("%.3f" % v for v in rss)))
    render_chart(svg, dat, list(allocs), cap, datadir)


def render_chart(svg, dat, allocs, cap, datadir):
    """Draw the chart from chart.dat (also: python3 -c 'import run;
    run.render_chart(...)' to redraw it without running the suite)."""
    k = len(allocs)
    palette = {"glibc": "#8c8c8c", "jemalloc": "#4477aa", "tcmalloc": "#228833",
               "mimalloc": "#ee9944", "memkit": "#cc3344"}
    colors = "\n".join("set linetype %d lc rgb '%s'" % (i + 1, palette.get(a, "#000000"))
                       for i, a in enumerate(allocs))
    plot_t = ", ".join("'%s' using %d:xtic(1) title '%s'" % (dat, i + 2, a)
                       for i, a in enumerate(allocs))
    plot_r = ", ".join("'%s' using %d:xtic(1) notitle" % (dat, k + i + 2)
                       for i, a in enumerate(allocs))
    script = """set terminal svg size 1100,760 dynamic noenhanced font 'sans,11' background '#ffffff'
set output '%s'
set multiplot layout 2,1
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:%g]
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#000000'
%s
set key outside top center horizontal
set xtics rotate by -30 scale 0
set ylabel 'time / best peer'
set title 'Wall time relative to the best peer on each workload (median; lower is better; capped at %g; 0 = FAILED)'
plot %s
set ylabel 'peak RSS / best peer'
set title 'Peak RSS relative to the best peer (median; lower is better)'
plot %s
unset multiplot
""" % (svg, cap, colors, cap, plot_t, plot_r)
    with open(os.path.join(datadir, "chart.gp"), "w") as f:
        f.write(script)
    p = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    if p.returncode != 0:
        log("gnuplot failed: %s" % p.stderr.strip())
    else:
        log("wrote %s" % svg)


# ---------------------------------------------------------------- main

def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    ctx = {
        "build": build,
        "bin": os.path.join(build, "bench"),
        "measure": os.path.join(build, "bench", "measure"),
        "runs": env_int("BENCH_RUNS", 2 if quick else 5),
        "scale": 0.2 if quick else 1.0,
        "threads": env_int("BENCH_THREADS", os.cpu_count() or 1),
        "timeout": env_int("BENCH_TIMEOUT", 180),
        "work": tempfile.mkdtemp(prefix="memkit-bench-"),
        "extra_md": os.path.join(ROOT, "bench", "notes.md"),
    }
    allocs = allocators(build)
    for a, (path, _) in list(allocs.items()):
        if path and not os.path.exists(path):
            log("run.py: %s: %s not found; its runs will show as FAILED" % (a, path))
    wls = workloads(ctx)
    ctx["db"] = os.path.join(ctx["work"], "bench.db")
    if any(w["name"] == "sqlite" for w in wls):
        with open(os.path.join(ROOT, "bench", "real-sqlite-gen.sql")) as f:
            subprocess.run(["sqlite3", ctx["db"]], stdin=f, check=True, capture_output=True)

    ctx["load0"] = sh("cut -d' ' -f1 /proc/loadavg")
    ctx["versions"] = versions(allocs, build)
    started = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")
    t0 = time.monotonic()
    results = {(w["name"], a): [] for w in wls for a in allocs}
    raw = os.path.join(ctx["bin"], "results.csv")
    with open(raw, "w", newline="") as f:
        rawcsv = csv.writer(f)
        rawcsv.writerow(["workload", "run", "allocator", "ok", "wall_s", "cpu_s", "maxrss_kb",
                         "checksum", "error", "metrics"])
        for w in wls:
            for run in range(ctx["runs"]):
                for a, alloc in allocs.items():  # interleaved: A B C D E, A B C D E ...
                    path = alloc[0]
                    if path and not os.path.exists(path):
                        r = Result()
                        r.error = "%s not found" % path
                    elif "run" in w:
                        r = w["run"](w, alloc, ctx)
                    else:
                        r = run_command(w, alloc, ctx)
                    results[(w["name"], a)].append(r)
                    rawcsv.writerow([w["name"], run, a, int(r.ok), "%.4f" % r.wall,
                                     "%.4f" % r.cpu, r.rss_kb, r.checksum, r.error,
                                     ";".join("%s=%g" % kv for kv in r.metrics.items())])
                    f.flush()
                    log("%-11s run %d %-9s %s" % (w["name"], run + 1, a,
                                                  "%.3f s  %.3f cpu  %6.1f MiB" %
                                                  (r.wall, r.cpu, r.rss_kb / 1024.0)
                                                  if r.ok else "FAILED: " + r.error))
    cg = None
    if os.environ.get("BENCH_CALLGRIND", "1") != "0" and \
            any(w["name"] == "small" for w in wls) and sh("command -v valgrind"):
        cg_allocs = {a: v for a, v in allocs.items()
                     if not v[0] or os.path.exists(v[0])}
        cg = measure_instructions(cg_allocs, ctx)
    elapsed = time.monotonic() - t0
    summary = summarize(wls, allocs, results)
    out = os.environ.get("BENCH_OUTPUT", os.path.join(ROOT, "BENCHMARKS.md"))
    svg = os.environ.get("BENCH_CHART", os.path.join(ROOT, "docs", "bench-chart.svg"))
    os.makedirs(os.path.dirname(svg), exist_ok=True)
    write_chart(svg, wls, allocs, summary, ctx["bin"])
    write_report(out, wls, allocs, summary, ctx, cg, started, elapsed)
    log("raw results: %s" % raw)
    subprocess.run(["rm", "-rf", ctx["work"]])
    failed = sum(1 for n in summary for a in summary[n] if not summary[n][a]["ok"])
    if failed:
        log("%d workload/allocator pairs FAILED; see %s" % (failed, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
