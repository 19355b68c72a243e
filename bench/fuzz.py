#!/usr/bin/env python3
"""The transport fuzzer: a hostile domain against a main process built with ASan and UBSan.

    .venv/bin/python bench/fuzz.py                         # until 1,000,000 messages (at most 300 s)
    .venv/bin/python bench/fuzz.py --messages 200000 --seconds 60 --rate 2000 --threads 4

tests/programs/fuzz is built split by its fuzz.yaml, every object of the main program and the
runtime compiled with -fsanitize=address,undefined.  Its domain executable is then replaced by
a hostile one: the same generated domain code and component, linked with
tests/programs/hostile/hostile_transport.c in place of the runtime's transport, which answers
honestly except that --rate messages in a million are lies of 17 kinds (bytes flipped, lengths
off or past the channel, unknown kinds, error codes, answers naming a function, replays, calls
back with function ids and arguments of its choosing, random words over its shared memory, a
thread rewriting the channels while main copies them out (one process in four), stalls past the
watchdog, exits and crashes mid-call, forged crash records, descriptors claimed and never sent,
descriptors sent that no message asks for, a claim to keep to the caller's CPU).  The driver's
threads call every
kind of crossing until the time is up or enough messages went by; each call either returns or
returns -1 (fault_value) with the caller's buffers untouched.

Printed: messages and lies (by kind) per second, calls and faulted calls, restarts (crash
reports), the slowest call against the watchdog, and whether the sanitizers said anything.
Exit status 0 when main survived with every outcome accounted for, 1 otherwise.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
LIES = ("flipped bytes", "length past the channel", "length a little off", "unknown kind", "error code",
        "answer naming a function", "replay", "call back with its own id and arguments",
        "random words over shared memory", "stall past the watchdog", "exit mid-call", "crash mid-call",
        "forged crash record", "turn handed over empty", "descriptors claimed, none sent",
        "descriptors no message asks for", "claims to keep to its caller's CPU")
TIMEOUT_MS = 300      # fuzz.yaml's call_timeout_ms


def build(tmp: str) -> str:
    """Builds the sanitized main program and the hostile domain; returns the program's path."""
    work = os.path.join(tmp, "fuzz")
    shutil.copytree(os.path.join(ROOT, "tests", "programs", "fuzz"), work)
    flags = ", ".join(repr(f) for f in SANITIZE)
    with open(os.path.join(work, "SConstruct"), "w") as f:
        f.write("import qtool.scons\n"
                "env = Environment(tools=['default', qtool.scons.tool],\n"
                f"                  CCFLAGS=['-std=c11', '-D_GNU_SOURCE', '-O1', '-g', {flags}],\n"
                f"                  LINKFLAGS=[{flags}])\n"
                "env.QpmProgram('fuzz', Glob('*.c'))\n")
    subprocess.run([SCONS, "-Q", "ISOLATE=fuzz.yaml"], cwd=work, check=True, capture_output=True)
    out = os.path.join(work, "build", "fuzz")
    runtime = os.path.join(ROOT, "runtime")
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", "-pthread", "-I", runtime,
                    "-I", os.path.join(ROOT, "clang_attrs"), "-I", work,
                    os.path.join(out, "fuzz.qpm", "target_iso.c"), os.path.join(work, "target.c"),
                    os.path.join(ROOT, "tests", "programs", "hostile", "hostile_transport.c"),
                    *(os.path.join(runtime, n) for n in ("process.c", "wire.c", "report.c", "stats.c")),
                    "-o", os.path.join(out, "fuzz-target_iso")], check=True)
    return os.path.join(out, "fuzz")


def campaign(exe: str, tmp: str, seconds: float, threads: int, rate: int) -> dict:
    """One run of the driver against the hostile domain; returns what happened."""
    counter = os.path.join(tmp, "counters")
    with open(counter, "wb") as f:
        f.write(bytes(4096))
    reports = os.path.join(tmp, "reports")
    shutil.rmtree(reports, ignore_errors=True)
    env = {**os.environ, "FUZZ_COUNTER": counter, "FUZZ_RATE": str(rate), "QPM_REPORT_DIR": reports,
           "ASAN_OPTIONS": "detect_leaks=0"}
    start = time.monotonic()
    proc = subprocess.run([exe, str(threads), str(seconds)], capture_output=True, text=True,
                          timeout=seconds + 120, env=env)
    elapsed = time.monotonic() - start
    with open(counter, "rb") as f:
        values = struct.unpack(f"{2 + len(LIES)}Q", f.read(8 * (2 + len(LIES))))
    m = re.search(r"alive calls=(\d+) faulted=(\d+) broken=(\d+) slowest_ms=([\d.]+)", proc.stdout)
    files = glob.glob(os.path.join(reports, "*"))
    crashes = [p for p in files if os.path.basename(p).startswith("crash-")]
    valid = 0
    for p in crashes:
        try:
            valid += json.load(open(p))["schema"] == "qpm.crash/1"
        except (OSError, ValueError, KeyError):
            pass
    sanitizer = [line for line in proc.stderr.splitlines() if "Sanitizer" in line or "runtime error" in line]
    return {"returncode": proc.returncode, "seconds": elapsed, "messages": values[0], "lies": values[1],
            "kinds": values[2:2 + len(LIES)], "alive": bool(m),
            "calls": int(m[1]) if m else 0, "faulted": int(m[2]) if m else 0,
            "broken": int(m[3]) if m else -1, "slowest_ms": float(m[4]) if m else -1.0,
            "restarts": len(crashes), "valid_reports": valid,
            "leftovers": [p for p in files if not p.endswith(".json")],
            "sanitizer": sanitizer, "stderr": proc.stderr[-3000:]}


def verdict(r: dict) -> list[str]:
    """What went wrong, if anything: main must survive with every outcome accounted for."""
    bad = []
    if r["returncode"] != 0 or not r["alive"]:
        bad.append(f"main did not survive (exit {r['returncode']}): {r['stderr'][-1500:]}")
    if r["sanitizer"]:
        bad.append("sanitizer reports: " + "; ".join(r["sanitizer"][:5]))
    if r["broken"]:
        bad.append(f"{r['broken']} faulted calls left the caller's buffer changed")
    if r["slowest_ms"] > TIMEOUT_MS + 1000:
        bad.append(f"a call took {r['slowest_ms']} ms, past the {TIMEOUT_MS} ms watchdog")
    if r["valid_reports"] != r["restarts"] or r["leftovers"]:
        bad.append(f"reports: {r['valid_reports']} valid of {r['restarts']}, leftovers {r['leftovers'][:3]}")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000, help="run until this many messages")
    ap.add_argument("--seconds", type=float, default=300, help="but no longer than this")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--rate", type=int, default=2000, help="lies per million messages (default 2000)")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="qpm-fuzz-") as tmp:
        exe = build(tmp)
        # A short run measures the rate, then one run long enough for the messages asked for.
        probe = campaign(exe, tmp, 5, opts.threads, opts.rate)
        per_s = max(probe["messages"] / max(probe["seconds"], 1e-3), 1.0)
        seconds = min(opts.seconds, max(5.0, opts.messages / per_s * 1.6))
        r = campaign(exe, tmp, seconds, opts.threads, opts.rate)
    bad = verdict(probe) + verdict(r)
    print("Transport fuzzer (bench/fuzz.py)")
    print(f"command:  .venv/bin/python bench/fuzz.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine:  {os.cpu_count()} cores, Linux {platform.release()}; main built with {' '.join(SANITIZE[:1])}")
    print(f"run:      {r['seconds']:.1f} s, {opts.threads} calling threads, {opts.rate} lies per million messages\n")
    print(f"messages          {r['messages']:>12}   {r['messages'] / r['seconds']:>10.0f} per second")
    print(f"lies              {r['lies']:>12}   {r['lies'] / r['seconds']:>10.0f} per second")
    for name, n in zip(LIES, r["kinds"]):
        print(f"  {name:<40}{n:>8}")
    print(f"calls             {r['calls']:>12}   faulted {r['faulted']} ({100 * r['faulted'] / max(r['calls'], 1):.2f}%)")
    print(f"restarts          {r['restarts']:>12}   (crash reports, all valid: {r['valid_reports'] == r['restarts']})")
    print(f"slowest call      {r['slowest_ms']:>12.1f} ms (watchdog {TIMEOUT_MS} ms)")
    print(f"buffers changed by a faulted call: {r['broken']}; sanitizer reports: {len(r['sanitizer'])}")
    print("outcome: " + ("main survived; every outcome accounted for" if not bad else "FAILED"))
    for b in bad:
        print(f"problem: {b}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
