"""IPC cost, side by side in one run: the physical limits against the generated stubs.

    .venv/bin/python bench/ipc.py [--repeat 3] [--quick]

Builds bench/ipc/pingpong.c (hand-written direct call, shared-memory spin and futex ping-pongs,
AF_UNIX socketpair ping-pong, raw 4 KiB in + 8 KiB out transfer) and bench/ipc/prog (a program
whose srv component is isolated by the SCons tool), runs every measurement --repeat times
interleaved, and prints medians and the targets' ratios.  Exits 0 whatever the numbers.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one repetition, fewer rounds")
    opts = ap.parse_args()
    repeat = 1 if opts.quick else opts.repeat
    scale = 5 if opts.quick else 1

    with tempfile.TemporaryDirectory() as tmp:
        pingpong = os.path.join(tmp, "pingpong")
        subprocess.run(["gcc", "-O2", "-std=c11", os.path.join(HERE, "pingpong.c"), "-o", pingpong], check=True)
        prog = os.path.join(tmp, "prog")
        shutil.copytree(os.path.join(ROOT, "qtool", "calibrate"), prog)
        subprocess.run([SCONS, "-Q", "ISOLATE=split.yaml"], cwd=prog, check=True, stdout=subprocess.DEVNULL)
        ipc = os.path.join(prog, "build", "split", "ipc")

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
