#!/usr/bin/env python3
"""isolate-cache's latency against its floor at one fixed request rate, round against round.

Run from the repository root:

    .venv/bin/python bench/fixed_rate.py                        # 40,000 requests/s, 24 rounds
    .venv/bin/python bench/fixed_rate.py --rate 30000 --rounds 16 --duration 2

bench/kvstore.py --open-loop judges the p99 at 50% of mono's maximum, which on a 2-core machine is
0.9 or more of the floor's own maximum: there every build's p99 is a backlog, and the floor
measured against itself spans a factor of ten a round. This script measures where the floor keeps
up with room, so that what separates isolate-cache from the floor is the runtime's and not the
queue's. Four builds, made as bench/kvstore.py makes them:

  isolate-cache  .venv/bin/scons -Q ISOLATE=samples/kvstore/plans/isolate-cache.yaml
  handoff        its floor: the same crossings as bare futex hand-offs on one core
  handoff-again  the handoff executable again, in a directory of its own: the floor against itself
  remote         the cache's calls made in the hand-off's peer process by hand

Each round runs every build once for --duration seconds of paced load (loadgen --rate, 8
connections, latency from each request's due time), the order rotating by one each round, a fresh
server each run. Reported: each build's median p99 over the rounds (with its quartiles), its median
p50, server CPU per request and errors; and, since the machine's neighbours move every build's p99
by multiples from one round to the next, the ratios that compare runs of the same round: each
build's p99 over the floor's, the median over the rounds and the quartiles of those ratios.
handoff-again's is the resolution of the others. Judges nothing; exits 0 unless a run failed (a
request not answered right, a server that did not exit cleanly); runs that fell behind the rate
(their p99 is a backlog, not a latency) are counted and said.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile

import kvstore as kv  # bench/kvstore.py: its builds, server and load client
from kvstore import log
from machine import cpu_model

BUILDS = ("isolate-cache", "handoff", kv.AGAIN, kv.REMOTE)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def build(tmp: str) -> tuple[dict[str, str], str]:
    exes = {"isolate-cache": kv.build_variant("isolate-cache", tmp)[0], "handoff": kv.build_handoff(tmp)}
    exes[kv.AGAIN] = kv.build_again(tmp, exes["handoff"])
    exes[kv.REMOTE] = kv.build_remote(tmp)
    return exes, kv.copy_loadgen(tmp)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=40000.0, help="requests/s in all (default 40000)")
    ap.add_argument("--rounds", type=int, default=24, help="rounds (default 24)")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds of paced load a run (default 2)")
    ap.add_argument("--threads", type=int, default=8, help="loadgen connections (default 8)")
    args = ap.parse_args()
    if args.rate <= 0 or args.rounds < 1 or args.duration <= 0 or args.threads < 1:
        ap.error("--rate, --rounds, --duration and --threads must be positive")

    log("isolate-cache against its floor at a fixed rate (bench/fixed_rate.py)")
    log()
    log(f"command:   {shlex.join([kv.PY, 'bench/fixed_rate.py', *sys.argv[1:]])}   (in {kv.REPO})")
    log(f"date:      {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    log(f"machine:   {os.cpu_count()} cores, {cpu_model()}, Linux {platform.release()}")
    log(f"sources:   {kv.git_describe()}")
    log(f"load:      loadgen --threads {args.threads} --rate {args.rate:.0f}, {args.duration:g} s a run, "
        f"{args.rounds} rounds, the order of {', '.join(BUILDS)} rotating")
    kv.become_subreaper()   # a domain whose program ended is reaped here
    tmp = tempfile.mkdtemp(prefix="bench-fixed-rate-")
    runs: dict[str, list[dict]] = {b: [] for b in BUILDS}
    failed = []
    fell_behind = {b: 0 for b in BUILDS}
    try:
        exes, loadgen = build(tmp)
        log()
        for i in range(args.rounds):
            for b in kv.rotated(BUILDS, i):
                r = kv.paced_run(exes[b], loadgen, args.threads, args.rate, args.duration, tmp)
                runs[b].append(r)
                bad = kv.problems(r)
                if bad:
                    failed.append(f"{b}, round {i + 1}: {'; '.join(bad)}")
                behind = kv.keeps_up(r)
                if behind:
                    fell_behind[b] += 1
                log(f"  round {i + 1:>2}/{args.rounds}  {b:<14} p50 {r['p50_ms']:7.3f}  p99 {r['p99_ms']:8.3f} ms"
                    f"  {r['rps']:>7.0f} req/s  errors {r['errors']}"
                    f"  server cpu {1e6 * r['server_cpu'] / r['requests']:5.1f} us/req"
                    + (f"  ({behind})" if behind else ""))
    except kv.Failure as e:
        log(f"\nFAILED: {e}")
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    log()
    log(f"{'build':<14} {'p99 ms: q1':>11} {'median':>8} {'q3':>8}   {'p50 ms':>7}  {'srv cpu us/req':>14}  errors")
    for b in BUILDS:
        q1, q2, q3 = quartiles([r["p99_ms"] for r in runs[b]])
        p50 = statistics.median(r["p50_ms"] for r in runs[b])
        cpu = kv.per_request(runs[b], "server_cpu") * 1e6
        log(f"{b:<14} {q1:>11.3f} {q2:>8.3f} {q3:>8.3f}   {p50:>7.3f}  {cpu:>14.1f}  {sum(r['errors'] for r in runs[b])}")
    log()
    log("p99 over handoff's p99 in the same round (the median over the rounds; quartiles):")
    for b in BUILDS:
        if b == "handoff":
            continue
        q1, q2, q3 = quartiles(kv.ratios(runs[b], runs["handoff"], "p99_ms"))
        log(f"  {b:<14} {q2:.2f}  ({q1:.2f} to {q3:.2f})")
    q1, q2, q3 = quartiles(kv.ratios(runs["isolate-cache"], runs[kv.REMOTE], "p99_ms"))
    log(f"  isolate-cache over remote: {q2:.2f}  ({q1:.2f} to {q3:.2f})")
    if any(fell_behind.values()):
        log("runs that did not keep up with the rate (their p99 is a backlog): "
            + ", ".join(f"{b} {n}" for b, n in fell_behind.items()))
    if failed:
        log("\nFAILED: " + "; ".join(failed))
        return 1
    log("\noutcome: every request of every run answered correctly; every server exited 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
