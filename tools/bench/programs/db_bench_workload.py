#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""db_bench workload: RocksDB's db_bench (rocksdb-tools) under the allocator.

Runs /usr/bin/db_bench with the LD_PRELOAD this script was started with (or
BENCH_SERVER_PRELOAD, as the runner passes it; the script itself runs on
the C library's malloc) on a fresh database (on /dev/shm when it exists,
so that the disk does not decide): fillseq, readrandom, overwrite,
readrandom, readseq, with block checksums verified on every read
(--verify_checksum=1) and fixed seeds. Self-checks: every readrandom must
find every key it looks for ("(N of N found)"), readseq must visit every
key, db_bench must exit 0, and the preloaded library must be mapped in the
db_bench process. The checksum covers the found counts and the key counts,
which depend only on the work done.

Usage: db_bench_workload.py [SCALE]   (SCALE 1 = full, the runner's --quick 0.03)
Last line: result workload=db_bench allocator=WHO checksum=HEX ...
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

DB_BENCH = "/usr/bin/db_bench"


def fail(msg):
    sys.stdout.flush()
    sys.stderr.write("bench: FAIL db_bench: %s\n" % msg)
    sys.exit(1)


def who_from_maps(maps, preload):
    if not preload:
        for name in ("libupalloc", "libmimalloc", "libtcmalloc", "libjemalloc"):
            if name in maps:
                return "unknown:" + name
        return "glibc"
    lib = os.path.realpath(preload)
    if lib not in maps and preload not in maps:
        return None
    base = os.path.basename(lib)
    for name in ("upalloc", "mimalloc", "tcmalloc", "jemalloc"):
        if name in base:
            if name == "upalloc":
                return "upalloc-device" if "/dev/upalloc" in maps else "upalloc-mmap"
            return name
    return "unknown:" + base


def drop_own_preload():
    """Run the driver itself on the C library's malloc, not the allocator
    under test (which only the server gets): re-executes this script once
    without LD_PRELOAD, handing the preload on in BENCH_SERVER_PRELOAD."""
    if "BENCH_SERVER_PRELOAD" not in os.environ:
        env = dict(os.environ, BENCH_SERVER_PRELOAD=os.environ.get("LD_PRELOAD", ""))
        env.pop("LD_PRELOAD", None)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def main(argv):
    drop_own_preload()
    scale = float(argv[0]) if argv else 1.0
    if not os.path.exists(DB_BENCH):
        fail("%s missing (apt-get install rocksdb-tools)" % DB_BENCH)
    num = max(5000, int(100000 * scale))
    preload = os.environ["BENCH_SERVER_PRELOAD"]
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else \
        os.path.join(top, "build", "bench", "tmp")
    os.makedirs(base, exist_ok=True)
    d = tempfile.mkdtemp(prefix="upalloc-db_bench.", dir=base)
    cmd = [DB_BENCH, "--db=" + os.path.join(d, "db"), "--wal_dir=" + os.path.join(d, "wal"),
           "--benchmarks=fillseq,readrandom,overwrite,readrandom,readseq",
           "--num=%d" % num, "--reads=%d" % num, "--value_size=200", "--key_size=16",
           "--compression_type=none", "--verify_checksum=1", "--seed=1", "--threads=1",
           "--use_existing_db=0", "--histogram=0", "--statistics=0",
           "--write_buffer_size=%d" % (4 << 20), "--cache_size=%d" % (8 << 20)]
    who = None
    try:
        out = open(os.path.join(d, "out"), "w+")
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "BENCH_SERVER_PRELOAD")}
        if preload:
            env["LD_PRELOAD"] = preload
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=d, env=env)
        # The process's maps once the loader is done (librocksdb mapped):
        # the preloaded library must be among them.
        while p.poll() is None and who is None:
            try:
                with open("/proc/%d/maps" % p.pid) as f:
                    maps = f.read()
                if "librocksdb" in maps:
                    who = who_from_maps(maps, preload) or "missing"
            except OSError:
                pass
            time.sleep(0.005)
        p.wait()
        out.seek(0)
        text = out.read()
        out.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if p.returncode != 0:
        fail("db_bench exited %d: %s" % (p.returncode, text.strip()[-300:]))
    if who is None:
        fail("db_bench ended before its maps could be read")
    if who == "missing":
        fail("%s is not mapped in db_bench" % preload)
    h = hashlib.sha256()
    found = re.findall(r"^readrandom\s*:.*\((\d+) of (\d+) found\)", text, re.M)
    if len(found) != 2:
        fail("expected 2 readrandom results, got %d" % len(found))
    for f, n in found:
        if f != n or int(n) != num:
            fail("readrandom found %s of %s keys (%d written)" % (f, n, num))
        h.update(("%s/%s;" % (f, n)).encode())
    for bench in ("fillseq", "overwrite", "readseq"):
        m = re.search(r"^%s\s*:.*?(\d+) operations" % bench, text, re.M)
        if not m:
            fail("no %s result" % bench)
        ops = int(m.group(1))
        if ops != num:
            fail("%s did %d operations, not %d" % (bench, ops, num))
        h.update(("%s %d;" % (bench, ops)).encode())
    print("result workload=db_bench allocator=%s checksum=%s num=%d" % (who, h.hexdigest()[:16], num))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
