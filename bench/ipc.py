"""IPC cost, side by side in one run: the physical limits against the generated stubs.

    .venv/bin/python bench/ipc.py [--repeat 3] [--quick]
    .venv/bin/python bench/ipc.py --against REV [--rounds 40]

Builds bench/ipc/pingpong.c (hand-written direct call, shared-memory spin and futex ping-pongs,
AF_UNIX socketpair ping-pong, raw 4 KiB in + 8 KiB out transfer) and bench/ipc/prog (a program
whose srv component is isolated by the SCons tool), runs every measurement --repeat times
interleaved, and prints medians and the targets' ratios.  Exits 0 whatever the numbers.

--against REV compares the generated null call of this tree with that of git revision REV (its
qtool and runtime, exported with `git archive`), both built from this tree's calibration driver,
run in turns, --rounds times, once as split.yaml builds it and once with a call_timeout_ms (the
watchdog's per-call work), plus the bulk call.  Calls are timed in the steady state: each run
calls for 50 ms first, then times 15 windows of 10,000 calls (bulk: 1,000).  On a shared virtual machine a
run's speed depends on where the host runs its two cores at the time (the same run of the same
program takes 120 ns a call or 450), so what compares the code is each run's fastest window: the
median of the ratios of runs made one after the other, and the same for the rounds where both
runs were fast (or both slow), with how often each build's runs were fast.  The median windows
spread with the host and are shown beside them.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

from machine import cpu_model  # bench/machine.py: scripts here run with bench/ on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "bench", "ipc")
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")


def run_driver(cmd: list[str]) -> list[float]:
    """The numbers a driver run prints after its mode's name."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"bench/ipc.py: {' '.join(cmd)} failed: {out.stderr.strip()}")
    return [float(x) for x in out.stdout.split()[1:]]


def measure(cmd: list[str]) -> float:
    return run_driver(cmd)[0]


WATCHDOG_PLAN = """version: 1
isolate:
  - domain: srv_iso
    components: [srv]
    call_timeout_ms: 2000
"""


def build_prog(tree: str, tmp: str, name: str, plan: str | None = None) -> str:
    """qtool/calibrate of `tree` (a checkout holding qtool/ and runtime/) built split in tmp/name,
    by its own split.yaml or by the plan text given."""
    prog = os.path.join(tmp, name)
    shutil.copytree(os.path.join(tree, "qtool", "calibrate"), prog)
    # This tree's driver for every build: the same program, so only the generated code and the
    # runtime differ (the driver is not part of what a revision ships across the boundary).
    shutil.copy(os.path.join(ROOT, "qtool", "calibrate", "driver.c"), os.path.join(prog, "driver.c"))
    stem = "split"
    if plan is not None:
        stem = "given"
        with open(os.path.join(prog, "given.yaml"), "w") as f:
            f.write(plan)
    env = {**os.environ, "PYTHONPATH": tree}
    subprocess.run([SCONS, "-Q", f"ISOLATE={stem}.yaml"], cwd=prog, check=True, stdout=subprocess.DEVNULL, env=env)
    return os.path.join(prog, "build", stem, "ipc")


def paired_interval(ratios: list[float], draws: int = 2000) -> tuple[float, float]:
    """A 90% bootstrap interval of the median of paired ratios (fixed seed)."""
    import random
    rng = random.Random(1)
    meds = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(draws))
    return meds[int(0.05 * draws)], meds[int(0.95 * draws) - 1]


def against(rev: str, rounds: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = os.path.join(tmp, "tree")
        os.mkdir(old_tree)
        archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "qtool", "runtime", "clang_attrs"],
                                 capture_output=True)
        if archive.returncode != 0:
            raise SystemExit(f"bench/ipc.py: git archive {rev}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", old_tree], input=archive.stdout, check=True)
        # (label, plan, driver arguments): every call timed in windows of the steady state.
        pairs = [("null call", None, ["null-windows", "10000"]),
                 ("null call, call_timeout_ms 2000", WATCHDOG_PLAN, ["null-windows", "10000"]),
                 ("4 KiB in + 8 KiB out", None, ["bulk-windows", "1000"])]
        sides = ((False, old_tree, f"at {rev}"), (True, ROOT, "here"))
        progs: dict[tuple[str | None, bool], str] = {}
        runs: dict[str, list[str]] = {}
        for label, plan, args in pairs:
            for here, tree, side in sides:
                if (plan, here) not in progs:
                    progs[plan, here] = build_prog(tree, tmp, f"{'new' if here else 'old'}-{len(progs)}", plan)
                runs[f"{label} {side}"] = [progs[plan, here], *args]
        best: dict[str, list[float]] = {k: [] for k in runs}      # each run's fastest window
        typical: dict[str, list[float]] = {k: [] for k in runs}   # each run's median window
        for r in range(rounds):
            for label, _, args in pairs:
                # Each pair's two builds run one after the other, in turns first.
                for _, _, side in (sides if r % 2 == 0 else sides[::-1]):
                    name = f"{label} {side}"
                    out = run_driver(runs[name])
                    typical[name].append(out[0])
                    best[name].append(out[1])
    print(f"null call against {rev} (bench/ipc.py)")
    print(f"command:  {' '.join([os.path.relpath(sys.executable, ROOT), 'bench/ipc.py', *sys.argv[1:]])}")
    print(f"machine:  {os.cpu_count()} cores, {cpu_model()}, Linux {platform.release()}")
    print(f"load:     {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min, at the end)")
    print(f"rounds:   {rounds} (interleaved); a run: 50 ms of calls, then 15 windows of 10,000 calls "
          f"(bulk: 1,000)\n")
    print(f"{'ns per call, fastest window of a run':<44}{'min':>8}{'q1':>8}{'median':>8}{'q3':>8}"
          f"   median window: q1, median, q3")
    for name in runs:
        b, t = best[name], typical[name]
        qb, qt = statistics.quantiles(b, n=4), statistics.quantiles(t, n=4)
        mid = f"{qt[0]:8.1f}{statistics.median(t):8.1f}{qt[2]:8.1f}"
        print(f"{name:<44}{min(b):>8.1f}{qb[0]:>8.1f}{statistics.median(b):>8.1f}{qb[2]:>8.1f}   {mid}")
    print()
    for label, _, _ in pairs:
        old, new = best[f"{label} at {rev}"], best[f"{label} here"]
        paired = [n / o for n, o in zip(new, old)]
        lo, hi = paired_interval(paired)
        print(f"{label}: here / {rev}, fastest windows: paired median {statistics.median(paired):.3f} "
              f"(90% interval {lo:.3f} to {hi:.3f}), here faster in {sum(x < 1 for x in paired)} of {len(paired)}")
        # The host's two modes apart: a run is fast when its best window is within 1.2 times the
        # best of both builds.  Rounds where both runs were fast, or both slow, compare like with
        # like; how often each build was fast says whether one of them drops out of the fast mode.
        floor = min(min(old), min(new))
        fast = [(o, n) for o, n in zip(old, new) if max(o, n) <= 1.2 * floor]
        slow = [(o, n) for o, n in zip(old, new) if min(o, n) > 1.2 * floor]
        for mode, ps in (("both fast", fast), ("both slow", slow)):
            if ps:
                print(f"    {mode:<10} {len(ps):>3} rounds: medians {statistics.median(o for o, _ in ps):.1f} at {rev}, "
                      f"{statistics.median(n for _, n in ps):.1f} here, paired {statistics.median(n / o for o, n in ps):.3f}")
        print(f"    fast runs: {sum(o <= 1.2 * floor for o in old)} at {rev}, {sum(n <= 1.2 * floor for n in new)} here, "
              f"of {len(old)}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one repetition, fewer rounds")
    ap.add_argument("--against", metavar="REV", help="compare the null call with git revision REV's")
    ap.add_argument("--rounds", type=int, default=40, help="rounds of the comparison with --against")
    opts = ap.parse_args()
    if opts.against:
        return against(opts.against, opts.rounds)
    repeat = 1 if opts.quick else opts.repeat
    scale = 5 if opts.quick else 1

    with tempfile.TemporaryDirectory() as tmp:
        pingpong = os.path.join(tmp, "pingpong")
        subprocess.run(["gcc", "-O2", "-std=c11", os.path.join(HERE, "pingpong.c"), "-o", pingpong], check=True)
        ipc = build_prog(ROOT, tmp, "prog")

        runs = {
            "direct call": [pingpong, "direct", str(10_000_000 // scale)],
            "shm spin ping-pong": [pingpong, "spin", str(1_000_000 // scale)],
            "futex ping-pong": [pingpong, "futex", str(100_000 // scale)],
            "socketpair ping-pong": [pingpong, "socketpair", str(100_000 // scale)],
            "raw 4 KiB in + 8 KiB out": [pingpong, "bulk", str(200_000 // scale)],
            "stub null call": [ipc, "null", str(1_000_000 // scale)],
            "stub 4 KiB in + 8 KiB out": [ipc, "bulk", str(200_000 // scale)],
            "stub 8 threads (calls/s)": [ipc, "threads", str(100_000 // scale), "8"],
        }
        samples: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(repeat):
            for name, cmd in runs.items():
                samples[name].append(measure(cmd))
    med = {k: statistics.median(v) for k, v in samples.items()}

    print("IPC benchmark (bench/ipc.py)")
    print(f"command:  {' '.join([os.path.relpath(sys.executable, ROOT), 'bench/ipc.py', *sys.argv[1:]])}")
    print(f"machine:  {os.cpu_count()} cores, {cpu_model()}, Linux {platform.release()}")
    print(f"repeats:  {repeat} (median; measurements interleaved)\n")
    print(f"{'measurement':<30}{'median':>14}  samples")
    for name, v in med.items():
        unit = "calls/s" if "calls/s" in name else "ns/call"
        print(f"{name:<30}{v:>10.1f} {unit:<8} " + ", ".join(f"{x:.1f}" for x in samples[name]))

    futex_rate = 1e9 / med["futex ping-pong"]
    checks = [
        ("null call / spin ping-pong", med["stub null call"] / med["shm spin ping-pong"], "<= 2.0",
         med["stub null call"] / med["shm spin ping-pong"] <= 2.0),
        ("bulk call / raw transfer", med["stub 4 KiB in + 8 KiB out"] / med["raw 4 KiB in + 8 KiB out"], "<= 1.5",
         med["stub 4 KiB in + 8 KiB out"] / med["raw 4 KiB in + 8 KiB out"] <= 1.5),
        ("8-thread calls/s / futex ping-pong calls/s", med["stub 8 threads (calls/s)"] / futex_rate, ">= 1.0",
         med["stub 8 threads (calls/s)"] / futex_rate >= 1.0),
        ("socketpair / stub null call", med["socketpair ping-pong"] / med["stub null call"], "(context)", None),
    ]
    print(f"\n{'ratio':<46}{'value':>8}  target  result")
    for name, value, target, ok in checks:
        result = "" if ok is None else ("PASS" if ok else "MISS")
        print(f"{name:<46}{value:>8.2f}  {target:<7} {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
