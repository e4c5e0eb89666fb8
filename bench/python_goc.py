#!/usr/bin/env python3
"""Get-or-create hits through the Python binding against the same call in C.

    python_goc.py --c-loop build/bindings/python/bench_python_goc [--pg CONNINFO]

One client, one connection, PostgreSQL: a table of --keys rows under a unique
index, then --rounds rounds of --seconds each, Python and C taking turns, every
call a hit on a random key. Prints calls/s of each (median of the rounds) and
the ratio Python/C (the target is >= 0.8). Without --pg it starts a throwaway
cluster (scripts/pgcluster.sh) and always stops it; `cmake --build build
--target bench_python` runs it so, with the build's module and C loop.
"""
import argparse
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import nodup

TABLE = "bench_python_goc"


def python_round(conn, keys, seconds):
    goc = conn.get_or_create
    rnd = random.Random(1).randrange
    calls = 0
    start = time.perf_counter()
    end = start + seconds
    while True:
        # 64 calls between clock reads, as cheap as the C loop's per call.
        for _ in range(64):
            _, created = goc(TABLE, {"k": f"k{rnd(keys)}"})
            if created:
                sys.exit("python_goc.py: a miss where every call should hit")
        calls += 64
        if time.perf_counter() >= end:
            return calls / (time.perf_counter() - start)


def c_round(args):
    out = subprocess.run([args.c_loop, args.pg, TABLE, str(args.keys), str(args.seconds)],
                         check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]) / float(out[1])


@contextlib.contextmanager
def throwaway_cluster():
    """A PostgreSQL cluster in a new directory, stopped and removed at the end."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts",
                          "pgcluster.sh")
    with tempfile.TemporaryDirectory(prefix="nodup-pybench.", dir="/tmp") as base:
        os.chmod(base, 0o755)  # as root the server runs as another user: it must get in
        sock = os.path.join(base, "pg", "sock")
        subprocess.run([script, "start", sock], check=True)
        try:
            yield f"host={sock} user=postgres dbname=postgres"
        finally:
            subprocess.run([script, "stop", sock], check=False)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pg", help="libpq conninfo or URL (default: a throwaway cluster)")
    p.add_argument("--c-loop", required=True, help="the bench_python_goc program")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--keys", type=int, default=10000)
    args = p.parse_args()
    if args.pg:
        return run(args)
    with throwaway_cluster() as args.pg:
        return run(args)


def run(args):
    with nodup.connect(args.pg) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{TABLE}"; CREATE TABLE "{TABLE}" '
                     '(id bigserial PRIMARY KEY, k text UNIQUE, v text)')
        for i in range(args.keys):
            conn.get_or_create(TABLE, {"k": f"k{i}"}, {"v": "x"})
        conn.execute(f'VACUUM ANALYZE "{TABLE}"')
        python_round(conn, args.keys, 0.5)  # warm-up: the key learns it hits
        py, c = [], []
        for r in range(args.rounds):
            py.append(python_round(conn, args.keys, args.seconds))
            c.append(c_round(args))
            print(f"round {r + 1}: python {py[-1]:,.0f} calls/s, C {c[-1]:,.0f} calls/s",
                  file=sys.stderr)
    py_m, c_m = statistics.median(py), statistics.median(c)
    print("| get_or_create hit, PostgreSQL, 1 client | calls/s |")
    print("|---|---:|")
    print(f"| C (nodup_get_or_create) | {c_m:,.0f} |")
    print(f"| Python (Connection.get_or_create) | {py_m:,.0f} |")
    print(f"| ratio Python / C | {py_m / c_m:.2f}x |")


if __name__ == "__main__":
    main()
