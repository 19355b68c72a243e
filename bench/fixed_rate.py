#!/usr/bin/env python3
"""isolate-cache's latency against its floor at one fixed request rate, round against round.

Run from the repository root:

    .venv/bin/python bench/fixed_rate.py                        # 40,000 requests/s, 24 rounds
    .venv/bin/python bench/fixed_rate.py --rate 30000 --rounds 16 --duration 2
    .venv/bin/python bench/fixed_rate.py --share 0.5 --rounds 40   # issue 13's load: half mono's maximum
    .venv/bin/python bench/fixed_rate.py --share 0.5 --of handoff --rounds 120  # half the floor's

bench/kvstore.py --open-loop judges the p99 at 50% of mono's maximum from a few rounds; where
that load is near the floor's own maximum, every build's p99 there moves by multiples from one
round to the next, and a few rounds cannot tell 10% apart.  This script runs one load for as many
rounds as it is given and says what they can tell.  The builds, made as bench/kvstore.py makes
them:

  isolate-cache  .venv/bin/scons -Q ISOLATE=samples/kvstore/plans/isolate-cache.yaml
  handoff        its floor: the same crossings as bare futex hand-offs on one core
  handoff-again  the handoff executable again, in a directory of its own: the floor against itself
  remote         the cache's calls made in the hand-off's peer process by hand
  mono           with --share only: the build the 1.3 target compares with

The load is --rate requests/s, or with --share S, S times mono's open-loop maximum (with --of
handoff, the floor's), searched first in this run as bench/kvstore.py searches it (the highest
rate kept up with, within 5%).  Where half mono's maximum is past the floor's (on machines where
a switch is cheap and mono is fast), every split build falls behind there and its p99 is a
backlog: how far the run's requests queued by its end, which grows with the run's length and
with the gap between the rate and what the build carries, a gap that turns a few percent of
throughput into tens of percent of p99.  A share of the floor's maximum is a load that every
split build can carry, where a p99 is a latency.  Each round
runs every build once for --duration seconds of paced load (loadgen --rate, 8 connections,
latency from each request's due time, percentiles within 0.7%), a fresh server each run, in a
balanced order (bench/kvstore.py's balanced: over each whole period of rounds, as many as there
are builds or twice that for an odd number, every build runs right after every other one equally
often, where a rotating order always put each build after the same one).

Reported: each build's median p99 over the rounds (with its quartiles), its median p50, server CPU
per request and errors; and, since the machine's neighbours move every build's p99 by multiples
from one round to the next, ratios of runs in the same round: each build's p99 over the floor's,
the median over the rounds with a 90% interval for it that assumes nothing of the ratios'
distribution (order statistics).  Verdicts follow the intervals: "within" 10% of the floor when
the whole interval is at most 1.1, "beyond" when all of it is above, "not resolved" when it
straddles 1.1 (more rounds narrow it); handoff-again's interval is the floor against itself, which
should hold 1.  With --share, also the 1.3 target (isolate-cache's p99 over mono's) and whether
the floor forbids it (handoff's over mono's, the whole interval above 1.3).  The verdicts are
printed, not enforced: the exit status is 0 unless a run failed (a request not answered right, a
server that did not exit cleanly); runs that fell behind the rate (their p99 is a backlog, not a
latency) are counted and said, and then the requests/s each build carried over the floor's, round
against round, with whether isolate-cache carried at least 0.9 of the floor's (the saturation
target's question, which is what a backlog's p99 answers, magnified).
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile

import kvstore as kv  # bench/kvstore.py: its builds, server and load client
from kvstore import log
from machine import autogroup, cpu_model

FLOORED = ("isolate-cache", "handoff", kv.AGAIN, kv.REMOTE)
GUESS = 50000.0         # requests/s: where the search for a maximum starts (it doubles or halves)
WITHIN = 1.1            # "within 10% of the floor"


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def build(tmp: str, builds: tuple[str, ...]) -> tuple[dict[str, str], str]:
    exes = {v: kv.build_variant(v, tmp)[0] for v in ("mono", "isolate-cache") if v in builds}
    exes["handoff"] = kv.build_handoff(tmp)
    exes[kv.AGAIN] = kv.build_again(tmp, exes["handoff"])
    exes[kv.REMOTE] = kv.build_remote(tmp)
    return exes, kv.copy_loadgen(tmp)


def maximum(build: str, exe: str, loadgen: str, threads: int, tmp: str) -> float:
    """A build's open-loop maximum, searched as bench/kvstore.py searches it."""
    log(f"{build}'s open-loop maximum (loadgen --rate R, about 2 s a probe; kept up: achieved >= 97% of R, "
        "p50 <= 1 ms):")
    searches = kv.search_maxima({build: exe}, loadgen, threads, tmp, {build: kv.Search(GUESS)}, [])
    if searches[build].good is None:
        raise kv.Failure(f"{build} kept up with no rate tried")
    return searches[build].good["rate"]


def report_ratio(label: str, values: list[float], question: str | None = None, bound: float = WITHIN,
                 at_least: bool = False) -> None:
    """One ratio's median over the rounds with its 90% interval, and the answer to `question`
    (whether the true median is at most bound, or with at_least at least bound) that the interval
    gives."""
    text = f"  {label:<28} {kv.interval_text(values)}"
    if question:
        text += (f"; {question} (>= {bound:g}): " + kv.at_least(values, bound) if at_least
                 else f"; {question} (<= {bound:g}): " + kv.answer(values, bound))
    log(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--rate", type=float, help="requests/s in all (default 40000)")
    how.add_argument("--share", type=float, help="the load as a share of an open-loop maximum (--of's), searched first")
    ap.add_argument("--of", choices=("mono", "handoff"), default="mono",
                    help="with --share: whose maximum (default mono; handoff: the floor's, a load every "
                    "split build can carry)")
    ap.add_argument("--rounds", type=int, help="rounds (default 24; with --share, 30: whole periods of the "
                    "balanced order)")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds of paced load a run (default 2)")
    ap.add_argument("--threads", type=int, default=8, help="loadgen connections (default 8)")
    args = ap.parse_args()
    if args.share is None and args.rate is None:
        args.rate = 40000.0
    if args.rounds is None:
        args.rounds = 24 if args.share is None else 30
    if (args.rate is not None and not 0 < args.rate < math.inf) or (args.share is not None and not 0 < args.share <= 1) \
            or args.rounds < 1 or not 0 < args.duration < math.inf or args.threads < 1:
        ap.error("--rate, --rounds, --duration and --threads must be positive, --share in (0, 1]")
    if args.of != "mono" and args.share is None:
        ap.error("--of goes with --share")
    builds = (("mono",) if args.share is not None else ()) + FLOORED

    log("isolate-cache against its floor at a fixed rate (bench/fixed_rate.py)")
    log()
    log(f"command:   {shlex.join([kv.PY, 'bench/fixed_rate.py', *sys.argv[1:]])}   (in {kv.REPO})")
    log(f"date:      {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    log(f"machine:   {os.cpu_count()} cores, {cpu_model()}, Linux {platform.release()}, {autogroup()}")
    log(f"sources:   {kv.git_describe()}")
    kv.become_subreaper()   # a domain whose program ended is reaped here
    tmp = tempfile.mkdtemp(prefix="bench-fixed-rate-")
    runs: dict[str, list[dict]] = {b: [] for b in builds}
    failed = []
    fell_behind = {b: 0 for b in builds}
    try:
        exes, loadgen = build(tmp, builds)
        log()
        rate = args.rate
        if args.share is not None:
            top = maximum(args.of, exes[args.of], loadgen, args.threads, tmp)
            rate = args.share * top
            log(f"{args.of}'s maximum {top:.0f}/s; the load, {args.share:g} of it: {rate:.0f}/s")
            log()
        period = kv.balanced_period(len(builds))
        log(f"load:      loadgen --threads {args.threads} --rate {rate:.0f}, {args.duration:g} s a run, "
            f"{args.rounds} rounds of {', '.join(builds)} in a balanced order (balanced over each "
            f"{period} rounds" + ("" if args.rounds % period == 0 else f"; {args.rounds} is not a multiple") + ")")
        for i in range(args.rounds):
            for b in kv.balanced(builds, i):
                r = kv.paced_run(exes[b], loadgen, args.threads, rate, args.duration, tmp)
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
    for b in builds:
        q1, q2, q3 = quartiles([r["p99_ms"] for r in runs[b]])
        p50 = statistics.median(r["p50_ms"] for r in runs[b])
        cpu = kv.per_request(runs[b], "server_cpu") * 1e6
        log(f"{b:<14} {q1:>11.3f} {q2:>8.3f} {q3:>8.3f}   {p50:>7.3f}  {cpu:>14.1f}  {sum(r['errors'] for r in runs[b])}")
    if failed:      # a run that failed answered wrongly or not at all: its figures compare nothing
        log("\nFAILED: " + "; ".join(failed))
        return 1
    log()
    log(f"p99 over p99 in the same round, the median over {args.rounds} rounds with a 90% interval for it "
        "(order statistics):")

    def ratio(a: str, b: str, key: str = "p99_ms") -> list[float]:
        return kv.ratios(runs[a], runs[b], key)
    if args.share is not None:
        # The target is set at half mono's maximum; at a share of the floor's, the same bound says
        # how far a split build's latency is from mono's at a load every build carries.
        report_ratio("isolate-cache / mono", ratio("isolate-cache", "mono"),
                     "the target" if args.of == "mono" else "the target's bound at this load", kv.P99_TARGET)
        forbids = kv.verdict(ratio("handoff", "mono"), kv.P99_TARGET)
        report_ratio("handoff / mono (the floor)", ratio("handoff", "mono"))
        log("    whether the floor forbids " + ("the target: " if args.of == "mono" else "that bound: ") + {
            "beyond": f"it does (its own p99 is above {kv.P99_TARGET} times mono's in the whole interval)",
            "within": f"it does not (its own p99 is at most {kv.P99_TARGET} times mono's in the whole interval)"}.get(
                forbids, f"not resolved (the interval holds {kv.P99_TARGET})"))
    report_ratio("isolate-cache / handoff", ratio("isolate-cache", "handoff"), "within 10% of the floor")
    report_ratio("handoff-again / handoff", ratio(kv.AGAIN, "handoff"), "the floor within 10% of itself")
    report_ratio("remote / handoff", ratio(kv.REMOTE, "handoff"))
    report_ratio("isolate-cache / remote", ratio("isolate-cache", kv.REMOTE))
    if any(fell_behind.values()):
        log("runs that did not keep up with the rate (their p99 is a backlog): "
            + ", ".join(f"{b} {n}" for b, n in fell_behind.items()))
        # Past a build's maximum its p99 is how far the queue grew by the run's end: with the rate
        # R and the build carrying T, about (R/T - 1) of the run.  Two builds' ratio of that turns a
        # few percent of T into tens of percent of p99, and more the nearer R is to the floor's
        # maximum; what compares builds there is what they carried.
        log(f"requests/s over requests/s in the same round, the median over {args.rounds} rounds with its 90% interval:")
        report_ratio("isolate-cache / handoff", ratio("isolate-cache", "handoff", "rps"), "the saturation target",
                     kv.FLOOR_TARGET, at_least=True)
        report_ratio("handoff-again / handoff", ratio(kv.AGAIN, "handoff", "rps"))
        report_ratio("remote / handoff", ratio(kv.REMOTE, "handoff", "rps"))
    log("\noutcome: every request of every run answered correctly; every server exited 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
