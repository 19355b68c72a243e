#!/usr/bin/env python3
"""Many connections: kvstore whole and split, served with 64, 300 and 1000 client threads.

Run from the repository root:

    .venv/bin/python bench/threads.py                 # 3 rounds
    .venv/bin/python bench/threads.py --quick         # 1 round, fewer requests
    .venv/bin/python bench/threads.py --rounds 5 --total 90000

kvstore gives each connection a thread of its own, so T loadgen threads are T server threads
calling the isolated components at once.  The variants are built as bench/kvstore.py builds
them (mono, isolate-cache, isolate-all); every run sends the same total number of requests
(--total, split evenly over the threads), rounds interleave the variants and thread counts, and
each figure is the median over the rounds:

  rps, errors, p99 latency    per variant and thread count
  ratio to 64 threads         per variant: the rps at T threads over the rps at 64 threads of the
                              same round (median and range).  Monolithic kvstore's own ratio is
                              the floor: what many threads cost the server and the load client on
                              this machine before anything is isolated.

Then faults under the load: the split variants again at 300 and 1000 threads with a fault
injected into kvstore's cache (KVSTORE_CACHE_CRASH_EVERY=10000: every 10000th cache_get of a
process dereferences NULL): the cache crashes and is restarted a few times a run, and every
request must still be answered right (the crashing call is retried, the calls in flight beside
it are re-issued); the crash reports are counted.

Exit status: 0 when every request of every run was answered right, 1 otherwise, 2 when
something could not be built or run.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import statistics
import sys
import tempfile

import kvstore as kv  # bench/kvstore.py: scripts here run with bench/ on sys.path
from machine import cpu_model, run_servers_main

VARIANTS = ("mono", "isolate-cache", "isolate-all")
THREADS = (64, 300, 1000)


def one_run(exe: str, loadgen: str, threads: int, total: int, seconds: float, workdir: str,
            env: dict | None = None) -> dict:
    per_thread = max(1, total // threads)
    load = ["--threads", str(threads), "--requests", str(per_thread), "--seconds", str(seconds)]
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        return kv.serve_and_load(exe, loadgen, load, seconds, workdir)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--total", type=int, default=60000, help="requests per run (default 60000)")
    ap.add_argument("--seconds", type=float, default=120, help="loadgen's time limit per run")
    ap.add_argument("--quick", action="store_true", help="1 round of 30000 requests")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="which builds (default: all three)")
    ap.add_argument("--threads", default=",".join(map(str, THREADS)), help="thread counts; the first is the base")
    ap.add_argument("--no-faults", action="store_true", help="skip the runs with injected faults")
    opts = ap.parse_args()
    variants = tuple(v for v in opts.variants.split(",") if v)
    thread_counts = tuple(int(t) for t in opts.threads.split(","))
    rounds, total = (1, 30000) if opts.quick else (opts.rounds, opts.total)
    os.chdir(kv.REPO)
    bad = []
    with tempfile.TemporaryDirectory(prefix="qpm-threads-") as tmp:
        exes, loadgen, commands = kv.build_all(tmp)
        runs: dict[tuple[str, int], list[dict]] = {(v, t): [] for v in variants for t in thread_counts}
        order = [(v, t) for t in thread_counts for v in variants]
        for r in range(rounds):
            shift = r % len(order)
            for v, t in order[shift:] + order[:shift]:
                res = one_run(exes[v], loadgen, t, total, opts.seconds, tmp)
                res["round"] = r
                runs[(v, t)].append(res)
                for p in kv.problems(res):
                    bad.append(f"{v} {t} threads, round {r + 1}: {p}")
                kv.log(f"  round {r + 1}: {v:<14} {t:>5} threads  {res['rps']:>9.0f} req/s  "
                       f"errors {res['errors']}  p99 {res.get('p99_ms', float('nan')):.1f} ms")
        races = []
        for v in [] if opts.no_faults else [v for v in variants if v != "mono"]:
            for t in thread_counts[1:]:
                reports = os.path.join(tmp, f"faults-{v}-{t}")
                res = one_run(exes[v], loadgen, t, total, opts.seconds, tmp,
                              {"KVSTORE_CACHE_CRASH_EVERY": "10000", "QPM_REPORT_DIR": reports})
                res["faults"] = len(glob.glob(os.path.join(reports, "crash-*.json")))
                races.append((v, t, res))
                if res["errors"] or res["exit"] or res["server_exit"] or not res["faults"]:
                    bad.append(f"faults, {v} {t} threads ({res['faults']} faults): {res['errors']} errors, server exit {res['server_exit']}: "
                               f"{res['stderr'][:300]}")

    print("\nMany connections (bench/threads.py)")
    print(f"command:  .venv/bin/python bench/threads.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine:  {os.cpu_count()} cores, {cpu_model()}, Linux {platform.release()}; load client on the same cores")
    print(f"runs:     {rounds} round(s); {total} requests a run, split over the threads\n")
    print(f"{'variant':<15}{'threads':>8}{'req/s':>10}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}   ratio to {thread_counts[0]} threads (median, range)")
    for v in variants:
        for t in thread_counts:
            rs = runs[(v, t)]
            ratio = ""
            if t != thread_counts[0]:
                base = {x["round"]: x["rps"] for x in runs[(v, thread_counts[0])]}
                ratio = spread([x["rps"] / base[x["round"]] for x in rs])
            print(f"{v:<15}{t:>8}{statistics.median(x['rps'] for x in rs):>10.0f}"
                  f"{sum(x['errors'] for x in rs):>8}{statistics.median(x.get('p50_ms', 0) for x in rs):>9.1f}"
                  f"{statistics.median(x.get('p99_ms', 0) for x in rs):>9.1f}"
                  f"{max(x.get('max_ms', 0) for x in rs):>9.1f}   {ratio}")
    print("\nwith a fault injected into the cache (KVSTORE_CACHE_CRASH_EVERY=10000):")
    print(f"{'variant':<15}{'threads':>8}{'requests':>10}{'errors':>8}{'faults':>8}  server")
    for v, t, res in races:
        print(f"{v:<15}{t:>8}{res['requests']:>10}{res['errors']:>8}{res['faults']:>8}  exit {res['server_exit']}")
    for b in bad:
        print(f"problem: {b}")
    print("outcome: " + ("every request of every run answered right" if not bad else "some requests failed"))
    return 1 if bad else 0


def checked_main() -> int:
    try:
        return main()
    except kv.Failure as e:
        print(f"bench/threads.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    run_servers_main(checked_main)
