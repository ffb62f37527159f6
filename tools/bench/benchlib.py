# SPDX-License-Identifier: MIT
"""Shared code of tools/bench/run and tools/bench/smoke.

Knows the allocators, the workloads, how to build and generate their inputs,
and how to run one workload under one allocator (LD_PRELOAD) while measuring
wall time and peak RSS (wait4's ru_maxrss) and checking the workload's own
verdict and checksum.
"""
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH_DIR = os.path.join(TOP, "tools", "bench")
OUT = os.path.join(TOP, "build", "bench")
LIBDIR = "/usr/lib/x86_64-linux-gnu"
BENCHEXEC = os.path.join(OUT, "benchexec")
UPALLOC_SO = os.path.join(TOP, "build", "userlib", "libupalloc.so")


class Allocator:
    def __init__(self, name, preload, package, detect):
        self.name = name
        self.preload = preload      # None: the C library's own malloc
        self.package = package      # Debian package, for the version
        self.detect = detect        # what a C workload reports (prefix)

    def available(self):
        return self.preload is None or os.path.exists(self.preload)

    def missing_reason(self):
        if self.name == "upalloc":
            return "%s not built (make -C userlib)" % os.path.relpath(self.preload, TOP)
        return "%s missing (apt-get install %s)" % (self.preload, self.package)


ALLOCATORS = [
    Allocator("glibc", None, "libc6", "glibc"),
    Allocator("jemalloc", LIBDIR + "/libjemalloc.so.2", "libjemalloc2", "jemalloc"),
    Allocator("tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4", "libtcmalloc-minimal4", "tcmalloc"),
    Allocator("mimalloc", LIBDIR + "/libmimalloc.so.2", "libmimalloc2.0", "mimalloc"),
    Allocator("upalloc", UPALLOC_SO, None, "upalloc"),
]
ALLOCATOR_NAMES = [a.name for a in ALLOCATORS]


def allocator(name):
    for a in ALLOCATORS:
        if a.name == name:
            return a
    raise KeyError(name)


class Workload:
    """kind: "micro" (our C programs) or "program" (a Debian package's)."""

    def __init__(self, name, kind, what, argv, stdin=None, env=None,
                 checksum="result", output=None, requires=(), server=False):
        self.name = name
        self.kind = kind
        self.what = what
        self.argv = argv            # function(quick) -> argv list
        self.stdin = stdin          # function(quick) -> path, or None
        self.env = env or {}
        self.checksum = checksum    # "result" line, "stdout" or "output" file
        self.output = output        # function(quick) -> path of the output file
        self.requires = requires    # ((path, Debian package), ...) it needs
        # A driver script that starts a server: the allocator goes to the
        # server only (BENCH_SERVER_PRELOAD), the driver runs on glibc.
        self.server = server

    def missing_reason(self):
        """None when everything the workload needs is installed."""
        missing = [(p, pkg) for p, pkg in self.requires if not os.path.exists(p)]
        if not missing:
            return None
        return "%s missing (apt-get install %s)" % (
            ", ".join(p for p, _ in missing), " ".join(sorted({pkg for _, pkg in missing})))


def _micro(name, what, extra=()):
    return Workload(name, "micro", what,
                    lambda quick: [os.path.join(OUT, name)] + list(extra) +
                    (["--quick"] if quick else []))


def _input(name, quick):
    return os.path.join(OUT, "inputs", ("quick-" if quick else "") + name)


WORKLOADS = [
    _micro("churn", "single thread, size-class churn over a live set of 20000 blocks (8 B..256 KiB)"),
    _micro("larson", "larson-style server: 4 threads replace blocks, arrays handed to new threads every round"),
    _micro("prodcons", "2 producer/consumer pairs, every message (16 B..2 KiB) freed by the other thread"),
    _micro("realloc_grow", "64 strings built by realloc to the exact length, 1..48 bytes at a time"),
    _micro("calloc_blocks", "calloc of small blocks (1..512 B) over a live set, then of 64 KiB..1 MiB blocks"),
    _micro("fragment", "allocate 300k small blocks, free every other, allocate larger; RSS per phase"),
    _micro("pairloop", "malloc+free pair loop, 16..256 bytes (the single-block callgrind loop)"),
    _micro("liveloop", "64 live blocks of 16..47 B, one freed and replaced at random (callgrind's live-block loop)"),
    _micro("xmalloc", "xmalloc-test shape: 2 threads allocate 8..512 B, 2 others free, through one shared queue"),
    _micro("cache_scratch", "cache-scratch shape: threads free a block the main thread gave them, then write own 8 B blocks"),
    _micro("cache_thrash", "cache-thrash shape: threads allocate, write and free 8 B blocks at once (false sharing)"),
    _micro("mstress", "mstress shape: 8 threads per round, short-lived 16 B..64 KiB blocks, some handed across threads"),
    _micro("glibc_simple", "bench-malloc-simple shape: n blocks of 8..4096 B allocated then freed; alone, in a thread, after a thread"),
    _micro("glibc_thread", "bench-malloc-thread shape: 4 threads, 1024-slot working set, 4 B..32 KiB (1/size^2)"),
    _micro("reclaim", "allocate a burst 8x the live set, free most of it, sleep 1.5 s: time until RSS is within 10 % of live"),
    Workload("python", "program", "python3 building dicts/objects, sorting, JSON (PYTHONMALLOC=malloc)",
             lambda quick: ["/usr/bin/python3", os.path.join(BENCH_DIR, "programs", "py_workload.py")] +
             (["0.03"] if quick else []),
             env={"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0",
                  "PYTHONDONTWRITEBYTECODE": "1"}),
    Workload("sqlite", "program", "sqlite3 :memory: running a generated SQL file (inserts, indexes, queries)",
             lambda quick: ["/usr/bin/sqlite3", ":memory:"],
             stdin=lambda quick: _input("bench.sql", quick), checksum="stdout"),
    Workload("gcc", "program", "gcc -O2 -c of a generated C file (the object must be identical)",
             lambda quick: ["/usr/bin/gcc", "-O2", "-c", _input("bench_gen.c", quick),
                            "-o", _input("bench_gen.o", quick)],
             checksum="output", output=lambda quick: _input("bench_gen.o", quick)),
    Workload("redis", "program", "redis-server under the allocator, driven by redis-benchmark; every key read back",
             lambda quick: ["/usr/bin/python3", os.path.join(BENCH_DIR, "programs", "redis_workload.py")] +
             (["0.03"] if quick else []),
             env={"PYTHONDONTWRITEBYTECODE": "1"},
             requires=(("/usr/bin/redis-server", "redis-server"), ("/usr/bin/redis-benchmark", "redis-tools")),
             server=True),
    Workload("db_bench", "program", "RocksDB db_bench: fill, random reads (all found), overwrite, scans",
             lambda quick: ["/usr/bin/python3", os.path.join(BENCH_DIR, "programs", "db_bench_workload.py")] +
             (["0.03"] if quick else []),
             env={"PYTHONDONTWRITEBYTECODE": "1"},
             requires=(("/usr/bin/db_bench", "rocksdb-tools"),), server=True),
    Workload("perl", "program", "perl building hashes of arrays, regexes, sort and join",
             lambda quick: ["/usr/bin/perl", os.path.join(BENCH_DIR, "programs", "perl_workload.pl")] +
             (["0.03"] if quick else [])),
]
WORKLOAD_NAMES = [w.name for w in WORKLOADS]


def workload(name):
    for w in WORKLOADS:
        if w.name == name:
            return w
    raise KeyError(name)


def build(quiet=True):
    """make -C tools/bench; returns (ok, output)."""
    proc = subprocess.run(["make", "-C", BENCH_DIR], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if not quiet:
        sys.stdout.write(proc.stdout)
    return proc.returncode == 0, proc.stdout


class Lcg:
    """The generators' own PRNG, so inputs never change with Python versions."""

    def __init__(self, seed):
        self.state = seed

    def next(self):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        return self.state >> 33

    def below(self, n):
        return self.next() % n


def _write_if_changed(path, text):
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def gen_sql(rows):
    rng = Lcg(8)
    out = ["CREATE TABLE item(id INTEGER PRIMARY KEY, k INTEGER, name TEXT, v REAL, note TEXT);",
           "BEGIN;"]
    for i in range(rows):
        k = rng.below(1000000)
        out.append("INSERT INTO item(k, name, v, note) VALUES(%d, 'name-%x-%d', %d.%02d, '%s');"
                   % (k, k, i % 977, k % 1000, i % 100, "n" * (k % 40)))
    out += [
        "COMMIT;",
        "CREATE INDEX item_k ON item(k);",
        "CREATE INDEX item_name ON item(name);",
        "SELECT count(*), sum(k), printf('%.2f', total(v)) FROM item;",
        "SELECT k % 100 AS g, count(*), max(name), min(length(note)) FROM item GROUP BY g ORDER BY g LIMIT 10;",
        "UPDATE item SET name = name || '-updated', note = upper(note) WHERE k % 7 = 0;",
        "DELETE FROM item WHERE k % 11 = 0;",
        "SELECT count(*), sum(length(name)), sum(length(note)) FROM item;",
        "SELECT name FROM item ORDER BY name DESC LIMIT 5;",
        "SELECT a.k, count(*) FROM item a JOIN item b ON a.k / 1000 = b.k / 1000 "
        "WHERE a.id < 2000 GROUP BY a.k ORDER BY 2 DESC, 1 LIMIT 5;",
        "SELECT length(group_concat(name, ',')) FROM (SELECT name FROM item ORDER BY k LIMIT 5000);",
        "CREATE TABLE summary AS SELECT substr(name, 1, 8) AS p, count(*) AS c, avg(v) AS a "
        "FROM item GROUP BY p;",
        "SELECT count(*), sum(c) FROM summary;",
        "",
    ]
    return "\n".join(out)


def gen_c(functions):
    """A C file with many small structs and functions for gcc -O2 to chew."""
    rng = Lcg(9)
    ops = ["acc += p->b * i;", "acc ^= p->a << (i & 7);", "acc -= p->name[i & 15];",
           "p->b += acc;", "acc += helper_%d(p, i & 3);", "if (p->next) acc += p->next->a;",
           "acc = acc * 31 + (int)p->c;", "p->name[(acc & 15)] = (char)i;"]
    out = ["/* generated by tools/bench/benchlib.py: gcc workload input */",
           "#include <stddef.h>", ""]
    for f in range(functions):
        out.append("struct s%d { int a; long b; double c; char name[16]; struct s%d *next; };" % (f, f))
        out.append("static int helper_%d(struct s%d *p, int n)" % (f, f))
        out.append("{\n\tint acc = n;\n\tfor (int i = 0; i < n + 8; i++) {\n\t\tswitch ((i * %d + p->a) & 7) {"
                   % (rng.below(97) + 1))
        for case in range(8):
            op = ops[rng.below(len(ops))]
            if "%d" in op:
                op = op % max(0, f - 1) if f > 0 else "acc += 1;"
            out.append("\t\tcase %d: %s break;" % (case, op))
        out.append("\t\t}\n\t}\n\treturn acc;\n}")
        out.append("int func_%d(int x)\n{\n\tstruct s%d v = { x, x * 3L, x / 2.0, \"f%d\", NULL };" % (f, f, f))
        out.append("\tstruct s%d w = v;\n\tw.next = &v;" % f)
        out.append("\treturn helper_%d(&w, x & 31) + helper_%d(&v, (x >> 3) & 15);\n}" % (f, f))
        out.append("")
    return "\n".join(out)


def gen_inputs(quick):
    """Write the program inputs (only when their content changes)."""
    _write_if_changed(_input("bench.sql", quick), gen_sql(800 if quick else 20000))
    _write_if_changed(_input("bench_gen.c", quick), gen_c(6 if quick else 120))


def env_for(alloc, backend):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("BENCH_PRELOAD", None)
    if alloc.preload:
        env["BENCH_PRELOAD"] = alloc.preload  # benchexec sets LD_PRELOAD
    if alloc.name == "upalloc" and backend != "auto":
        env["UPALLOC_BACKEND"] = backend
    return env


RESULT_RE = re.compile(r"^result (.*)$", re.M)


def parse_result(stdout):
    """The key=value pairs of the last `result` line, or None."""
    found = RESULT_RE.findall(stdout)
    if not found:
        return None
    fields = {}
    for tok in found[-1].split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            fields[k] = v
    return fields


def _file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def run_one(w, alloc, quick, backend="auto", timeout=300):
    """Run workload w under allocator alloc once.

    Returns a dict: ok, error (when not ok), wall_s, maxrss_kb, checksum,
    fields (the result line), detected (allocator the workload saw).
    """
    argv = w.argv(quick)
    env = env_for(alloc, backend)
    env.update(w.env)
    if w.server:
        env["BENCH_SERVER_PRELOAD"] = env.pop("BENCH_PRELOAD", "")
    if w.output:
        try:
            os.unlink(w.output(quick))
        except FileNotFoundError:
            pass
    stdin = open(w.stdin(quick), "rb") if w.stdin else subprocess.DEVNULL
    out_path = os.path.join(OUT, "tmp", "%s.%s.out" % (w.name, alloc.name))
    err_path = out_path[:-4] + ".err"
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    report_path = out_path[:-4] + ".rusage"
    res = {"workload": w.name, "allocator": alloc.name, "ok": False}
    with open(out_path, "w+b") as out, open(err_path, "w+b") as err:
        proc = subprocess.Popen([BENCHEXEC, report_path] + argv, stdin=stdin, stdout=out,
                                stderr=err, env=env, cwd=TOP, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        if w.stdin:
            stdin.close()
        out.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    tail = (stderr.strip().splitlines() or [""])[-1][:300]
    if timed_out:
        res["error"] = "timed out after %ds" % timeout
        return res
    try:
        with open(report_path) as f:
            wall_ns, maxrss, utime, stime, status = (int(x) for x in f.read().split())
    except (OSError, ValueError) as e:
        res["error"] = "benchexec failed (%s): %s" % (e, tail)
        return res
    res["wall_s"] = wall_ns / 1e9
    res["maxrss_kb"] = maxrss
    res["user_s"] = utime / 1e6
    res["sys_s"] = stime / 1e6
    if os.WIFSIGNALED(status):
        res["error"] = "killed by signal %d: %s" % (os.WTERMSIG(status), tail)
        return res
    if os.WEXITSTATUS(status) != 0:
        res["error"] = "exit status %d: %s" % (os.WEXITSTATUS(status), tail)
        return res
    if w.checksum == "result":
        fields = parse_result(stdout)
        if fields is None or "checksum" not in fields:
            res["error"] = "no result line in the output: %s" % tail
            return res
        res["fields"] = fields
        res["checksum"] = fields["checksum"]
        detected = fields.get("allocator")
        if detected is not None:
            res["detected"] = detected
            if not detected.startswith(alloc.detect):
                res["error"] = "malloc is served by %s, not %s (LD_PRELOAD ignored?)" % (
                    detected, alloc.name)
                return res
            if alloc.name == "upalloc" and backend != "auto" and detected != "upalloc-" + backend:
                res["error"] = "upalloc runs on %s, not the %s backend" % (detected, backend)
                return res
    elif w.checksum == "stdout":
        res["checksum"] = hashlib.sha256(stdout.encode()).hexdigest()[:16]
        if not stdout.strip():
            res["error"] = "no output"
            return res
    elif w.checksum == "output":
        try:
            res["checksum"] = _file_digest(w.output(quick))
        except OSError as e:
            res["error"] = "no output file: %s" % e
            return res
    res["ok"] = True
    return res


def dpkg_version(package):
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return out.stdout.strip() or None
    except OSError:
        return None


def upalloc_version():
    """The git commit of the tree the library was built from, and whether
    userlib/ had uncommitted changes."""
    def git(*args):
        try:
            return subprocess.run(["git", "-C", TOP] + list(args), stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True).stdout.strip()
        except OSError:
            return ""
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "userlib")
    lib = allocator("upalloc").preload
    built = ""
    if os.path.exists(lib):
        built = time.strftime(" built %Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(lib)))
        built += ", sha256 %s" % _file_digest(lib)
        if lib != UPALLOC_SO:
            built += ", from %s" % os.path.relpath(lib, TOP)
    return "git %s%s%s" % (head, " +uncommitted userlib changes" if dirty else "", built)


def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    u = os.uname()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem_kb / 1048576, 1),
        "kernel": "%s %s" % (u.sysname, u.release),
        "guest": os.environ.get("UPALLOC_GUEST") == "1",
        "hostname": u.nodename,
    }


def allocator_versions():
    v = {}
    for a in ALLOCATORS:
        if a.name == "upalloc":
            v[a.name] = upalloc_version()
        else:
            v[a.name] = "%s %s" % (a.package, dpkg_version(a.package) or "not installed")
    return v


def program_versions():
    return {p: "%s %s" % (p, dpkg_version(p) or "?")
            for p in ("python3", "sqlite3", "gcc", "perl", "valgrind", "redis-server", "rocksdb-tools")}


def which_valgrind():
    return shutil.which("valgrind")
