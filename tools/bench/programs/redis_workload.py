#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""redis workload: redis-server under the allocator, driven by redis-benchmark.

Starts /usr/bin/redis-server (no persistence, a unix socket in a private
directory) with the LD_PRELOAD this script was started with (or
BENCH_SERVER_PRELOAD, as the runner passes it; the script itself runs on
the C library's malloc), loads keys of
mixed sizes (16 B..16 KiB) and lists itself, runs /usr/bin/redis-benchmark
(without the preload: only the server's allocator is measured) with small
and large values, rewrites a third of its own keys with new sizes, then
reads every key and list back and compares. Exits 1 on any mismatch.

Debian's redis-server links jemalloc itself. An LD_PRELOADed malloc takes
precedence over it; for glibc (nothing preloaded) this script preloads the
C library into the server so that glibc's malloc does. It checks that the
allocator meant served the server: the preloaded library must be mapped in
the server, and jemalloc's own statistics (INFO memory allocator_allocated)
must show jemalloc holding almost nothing unless jemalloc is meant.

Usage: redis_workload.py [SCALE]   (SCALE 1 = full, the runner's --quick 0.03)
Last line: result workload=redis allocator=WHO checksum=HEX ...
"""
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
SERVER = "/usr/bin/redis-server"
BENCH = "/usr/bin/redis-benchmark"


def fail(msg):
    sys.stdout.flush()
    sys.stderr.write("bench: FAIL redis: %s\n" % msg)
    sys.exit(1)


class Lcg:
    def __init__(self, seed):
        self.state = seed

    def below(self, n):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        return (self.state >> 33) % n


class Resp:
    """A minimal RESP2 client: enough for SET/GET/RPUSH/LRANGE/INFO."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                fail("the server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.s.recv(65536)
            if not chunk:
                fail("the server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            fail("server error: %s" % rest.decode("utf-8", "replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            return [self.reply() for _ in range(int(rest))]
        fail("bad reply %r" % line[:40])

    def call(self, *args):
        self.send(*args)
        return self.reply()

    def pipeline(self, cmds):
        for c in cmds:
            self.send(*c)
        return [self.reply() for _ in cmds]


def value(rng, i, gen):
    size = 16 + rng.below(1009) if rng.below(10) < 9 else 1025 + rng.below(15360)
    head = ("%d:%d:" % (i, gen)).encode()
    return (head * (size // len(head) + 1))[:size]


def detect(pid, preload):
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read()
    except OSError as e:
        fail("cannot read the server's maps: %s" % e)
    lib = os.path.realpath(preload)
    if lib not in maps and preload not in maps:
        fail("%s is not mapped in the server" % preload)
    base = os.path.basename(lib)
    for name in ("upalloc", "mimalloc", "tcmalloc", "jemalloc"):
        if name in base:
            if name == "upalloc":
                return "upalloc-device" if "/dev/upalloc" in maps else "upalloc-mmap"
            return name
    return "glibc" if base.startswith("libc") else "unknown:" + base


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
    for p in (SERVER, BENCH):
        if not os.path.exists(p):
            fail("%s missing (apt-get install redis-server redis-tools)" % p)
    nkeys = max(200, int(20000 * scale))
    requests = max(2000, int(60000 * scale))
    preload = os.environ["BENCH_SERVER_PRELOAD"] or LIBC
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    # A unix socket path has at most 107 bytes: the system's temporary
    # directory first, the build tree when that is not writable.
    try:
        d = tempfile.mkdtemp(prefix="upalloc-redis.")
    except OSError:
        tmpbase = os.path.join(top, "build", "bench", "tmp")
        os.makedirs(tmpbase, exist_ok=True)
        d = tempfile.mkdtemp(prefix="redis.", dir=tmpbase)
    sock = os.path.join(d, "redis.sock")
    cenv = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "BENCH_SERVER_PRELOAD")}
    senv = dict(cenv, LD_PRELOAD=preload)
    log = open(os.path.join(d, "server.log"), "wb")
    server = subprocess.Popen([SERVER, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
                               "--save", "", "--appendonly", "no", "--dir", d, "--daemonize", "no",
                               "--databases", "1"],
                              env=senv, stdout=log, stderr=subprocess.STDOUT, cwd=d)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(sock):
            if server.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(d, "server.log"), "rb") as f:
                    tail = (f.read().decode("utf-8", "replace").strip().splitlines() or [""])[-1]
                fail("redis-server did not start (exit %s): %s" % (server.poll(), tail[:200]))
            time.sleep(0.02)
        r = Resp(sock)
        if r.call("PING") != b"PONG":
            fail("no PONG")
        who = detect(server.pid, preload)
        rng = Lcg(21)
        expect = {}
        h = hashlib.sha256()
        cmds = []
        for i in range(nkeys):
            v = value(rng, i, 0)
            expect[b"bench:%d" % i] = v
            cmds.append(("SET", b"bench:%d" % i, v))
        lists = {}
        for j in range(nkeys // 10):
            key = b"benchlist:%d" % j
            items = [value(rng, j, k)[:64] for k in range(1 + rng.below(20))]
            lists[key] = items
            cmds.append(["RPUSH", key] + items)
        for k in range(0, len(cmds), 500):
            r.pipeline(cmds[k:k + 500])
        for d_size in ("32", "2000"):
            b = subprocess.run([BENCH, "-s", sock, "-n", str(requests // 2), "-r", "50000", "-d", d_size,
                                "-c", "8", "-P", "8", "-q", "-t", "set,get,incr,lpush,lpop,sadd,hset,mset"],
                               env=cenv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=600)
            if b.returncode != 0:
                fail("redis-benchmark -d %s exited %d: %s" % (d_size, b.returncode, b.stdout[-300:]))
        # Rewrite a third of our keys with new sizes: frees and reallocs.
        cmds = []
        for i in range(0, nkeys, 3):
            v = value(rng, i, 1)
            expect[b"bench:%d" % i] = v
            cmds.append(("SET", b"bench:%d" % i, v))
        for k in range(0, len(cmds), 500):
            r.pipeline(cmds[k:k + 500])
        keys = sorted(expect)
        for k in range(0, len(keys), 500):
            got = r.pipeline([("GET", key) for key in keys[k:k + 500]])
            for key, g in zip(keys[k:k + 500], got):
                if g != expect[key]:
                    fail("GET %s returned %r..., SET %r..." % (key.decode(), (g or b"")[:20], expect[key][:20]))
                h.update(key + b"=" + g)
        for key in sorted(lists):
            got = r.call("LRANGE", key, 0, -1)
            if got != lists[key]:
                fail("LRANGE %s differs from what was pushed" % key.decode())
            h.update(b"".join(got))
        info = r.call("INFO", "memory").decode()
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        used = int(fields.get("used_memory", "0"))
        jealloc = int(fields.get("allocator_allocated", "0"))
        if who == "jemalloc":
            # jemalloc's statistics lag its allocations (they refresh per
            # epoch): seen at a third of used_memory. The others leave it a
            # tenth at most, so a tenth tells the two cases apart.
            if jealloc <= used // 10:
                fail("jemalloc holds %d bytes of %d used" % (jealloc, used))
        elif "allocator_allocated" in fields and jealloc > used // 10:
            fail("the server's own jemalloc holds %d of %d bytes: the preload did not take" % (jealloc, used))
        r.send("SHUTDOWN", "NOSAVE")  # no reply: the server exits
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("redis-server did not shut down")
        if server.returncode != 0:
            fail("redis-server exited %d" % server.returncode)
        print("result workload=redis allocator=%s checksum=%s keys=%d requests=%d used_memory_kb=%d" % (
            who, h.hexdigest()[:16], nkeys, requests, used // 1024))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
