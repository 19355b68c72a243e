"""IPC cost, side by side in one run: the physical limits against the generated stubs.

    .venv/bin/python bench/ipc.py [--repeat 3] [--quick]
    .venv/bin/python bench/ipc.py --against REV [--rounds 40]

Builds bench/ipc/pingpong.c (hand-written direct call, shared-memory spin and futex ping-pongs,
AF_UNIX socketpair ping-pong, raw 4 KiB in + 8 KiB out transfer) and bench/ipc/prog (a program
whose srv component is isolated by the SCons tool), runs every measurement --repeat times
interleaved, and prints medians and the targets' ratios.  Exits 0 whatever the numbers.

--against REV compares the generated null call of this tree with that of git revision REV (its
qtool and runtime, exported with `git archive`): both builds of bench's program, run in turns
beside a spin ping-pong, --rounds times, once as split.yaml builds it and once with a
call_timeout_ms (the watchdog's per-call work).  On a shared machine the samples spread two-moded
(both threads spinning on two cores, or not), so it prints the best five, the quartiles, how many
runs were fast (within 1.5 times the best of both builds), and a bootstrap interval of the ratio
of the medians.
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


def measure(cmd: list[str]) -> float:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"bench/ipc.py: {' '.join(cmd)} failed: {out.stderr.strip()}")
    return float(out.stdout.split()[1])


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
    stem = "split"
    if plan is not None:
        stem = "given"
        with open(os.path.join(prog, "given.yaml"), "w") as f:
            f.write(plan)
    env = {**os.environ, "PYTHONPATH": tree}
    subprocess.run([SCONS, "-Q", f"ISOLATE={stem}.yaml"], cwd=prog, check=True, stdout=subprocess.DEVNULL, env=env)
    return os.path.join(prog, "build", stem, "ipc")


def median_ratio_interval(new: list[float], old: list[float], draws: int = 2000) -> tuple[float, float]:
    """A 90% bootstrap interval of median(new) / median(old): how far the samples let the ratio
    of the medians move (resampling each build's runs with replacement, fixed seed)."""
    import random
    rng = random.Random(1)
    ratios = sorted(statistics.median(rng.choices(new, k=len(new))) / statistics.median(rng.choices(old, k=len(old)))
                    for _ in range(draws))
    return ratios[int(0.05 * draws)], ratios[int(0.95 * draws) - 1]


def against(rev: str, rounds: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = os.path.join(tmp, "tree")
        os.mkdir(old_tree)
        archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "qtool", "runtime", "clang_attrs"],
                                 capture_output=True)
        if archive.returncode != 0:
            raise SystemExit(f"bench/ipc.py: git archive {rev}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", old_tree], input=archive.stdout, check=True)
        pingpong = os.path.join(tmp, "pingpong")
        subprocess.run(["gcc", "-O2", "-std=c11", os.path.join(HERE, "pingpong.c"), "-o", pingpong], check=True)
        pairs = [("null call", None, "null", "100000"),
                 ("null call, call_timeout_ms 2000", WATCHDOG_PLAN, "null", "100000"),
                 ("4 KiB in + 8 KiB out", None, "bulk", "20000")]
        runs = {"spin ping-pong": [pingpong, "spin", "100000"]}
        progs: dict[tuple[str, bool], str] = {}
        for label, plan, mode, count in pairs:
            for here, tree, side in ((False, old_tree, f"at {rev}"), (True, ROOT, "here")):
                if (plan, here) not in progs:
                    progs[plan, here] = build_prog(tree, tmp, f"{'new' if here else 'old'}-{len(progs)}", plan)
                runs[f"{label} {side}"] = [progs[plan, here], mode, count]
        samples: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(rounds):
            for name, cmd in runs.items():
                samples[name].append(measure(cmd))
    print(f"null call against {rev} (bench/ipc.py)")
    print(f"command:  {' '.join([os.path.relpath(sys.executable, ROOT), 'bench/ipc.py', *sys.argv[1:]])}")
    print(f"machine:  {os.cpu_count()} cores, {cpu_model()}, Linux {platform.release()}")
    print(f"load:     {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min, at the end)")
    print(f"rounds:   {rounds} (interleaved), 100000 calls a run (bulk: 20000)\n")
    spin = statistics.median(sorted(samples["spin ping-pong"])[:5])
    # A run is fast when both threads spun on two cores the whole time: within 1.5 times the best
    # run of either build.  The share of fast runs shows which mode a build falls into.
    print(f"{'measurement':<44}{'median':>9}{'q1':>9}{'q3':>9}  fast  best five (ns/call)")
    for name, v in samples.items():
        q = statistics.quantiles(v, n=4)
        fast = sum(x <= 1.5 * min(v) for x in v) if name == "spin ping-pong" else None
        if name != "spin ping-pong":
            label = name.rsplit(" at ", 1)[0] if f" at {rev}" in name else name[:-len(" here")]
            best = min(min(samples[f"{label} at {rev}"]), min(samples[f"{label} here"]))
            fast = sum(x <= 1.5 * best for x in v)
        best5 = ", ".join(f"{x:.1f}" for x in sorted(v)[:5])
        print(f"{name:<44}{statistics.median(v):>9.1f}{q[0]:>9.1f}{q[2]:>9.1f}  {fast:>4}  {best5}")
    print()
    for label, *_ in pairs:
        old, new = samples[f"{label} at {rev}"], samples[f"{label} here"]
        lo, hi = median_ratio_interval(new, old)
        print(f"{label}: here / {rev}: best five {statistics.median(sorted(new)[:5]) / statistics.median(sorted(old)[:5]):.3f}, "
              f"medians {statistics.median(new) / statistics.median(old):.3f} (90% interval {lo:.3f} to {hi:.3f})")
    old, new = samples[f"null call at {rev}"], samples["null call here"]
    print(f"null / spin, best five: {statistics.median(sorted(new)[:5]) / spin:.2f} here, "
          f"{statistics.median(sorted(old)[:5]) / spin:.2f} at {rev}")
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
