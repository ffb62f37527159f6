# SPDX-License-Identifier: MIT
"""A fixed Python workload for the allocator benchmark.

Run as `python3 py_workload.py [SCALE]` with PYTHONMALLOC=malloc (the runner
sets it), so that CPython's objects come from malloc() and not from its own
small-object pool, which would hide the allocator under test. It builds and
drops dicts, lists, tuples, strings and small objects, sorts, formats and
parses JSON, the allocation mix of ordinary Python programs, and prints a
checksum of everything computed (the same under every allocator).
"""
import json
import sys


class Lcg:
    """Own PRNG: results must not depend on the random module's version."""

    def __init__(self, seed):
        self.state = seed

    def next(self):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        return self.state >> 33


class Record:
    __slots__ = ("key", "name", "tags", "value")

    def __init__(self, key, name, tags, value):
        self.key = key
        self.name = name
        self.tags = tags
        self.value = value


def one_round(rng, n):
    records = {}
    for i in range(n):
        k = rng.next()
        name = "rec-%d-%x" % (i, k & 0xFFFF)
        tags = [("t%d" % (k >> s & 31)) for s in range(0, 15, 5)]
        records[name] = Record(k, name, tags, {"a": i, "b": k % 97, "c": [i, k % 13]})
    by_tag = {}
    for rec in records.values():
        for t in rec.tags:
            by_tag.setdefault(t, []).append(rec.key)
    ordered = sorted(records.values(), key=lambda r: (r.value["b"], r.name))
    text = json.dumps([{"n": r.name, "v": r.value} for r in ordered[: n // 4]])
    back = json.loads(text)
    words = " ".join(r.name for r in ordered).split(" ")
    joined = "".join(w[::-1] for w in words[: n // 2])
    acc = len(text) + len(back) + len(joined)
    for t in sorted(by_tag):
        acc = (acc * 31 + sum(by_tag[t]) + len(by_tag[t])) & (2**64 - 1)
    return acc


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rounds = max(1, int(9 * scale))
    # Below one round's worth, the rounds get smaller instead.
    records = 20000 if 9 * scale >= 1 else max(500, int(20000 * 9 * scale))
    rng = Lcg(6)
    checksum = 0
    for _ in range(rounds):
        checksum = (checksum * 1000003 ^ one_round(rng, records)) & (2**64 - 1)
    print("result workload=python checksum=%016x rounds=%d records=%d" % (checksum, rounds, records))


main()
