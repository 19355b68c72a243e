"""The closed loop on kvstore with its real cache race: run, crash, learn, rebuild, run again.

    .venv/bin/python scripts/closed_loop.py [--requests 20000]

Optimistic: round 1 runs the monolithic build under load with the race on; it crashes and
writes a report; `qtool learn --policy optimistic` turns the reports into a plan; round 2 runs
that plan under the same load.  Pessimistic: round 1 runs every component isolated; `qtool learn
--policy pessimistic`, over every report so far, merges the components that served enough calls
without a fault; round 2 runs the result.  Each round prints throughput, failed requests and restarts.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")
WORK = os.path.join(ROOT, "build", "loop")
QTOOL = [sys.executable, "-m", "qtool"]
RACE = {"KVSTORE_CACHE_RACE": "1", "KVSTORE_CACHE_RACE_US": "30"}


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, **kw)


def build(plan: str) -> str:
    proc = sh([SCONS, "-Q", f"ISOLATE={plan}", "SAMPLE=kvstore"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"build with {plan} failed:\n{proc.stdout}{proc.stderr}")
    return os.path.join(ROOT, "build", os.path.splitext(os.path.basename(plan))[0], "kvstore")


def run_round(label: str, plan: str, reports: str, requests: int) -> dict:
    exe = build(plan)
    os.makedirs(reports, exist_ok=True)
    env = {**os.environ, **RACE, "QPM_REPORT_DIR": reports}
    server = subprocess.Popen([exe, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, env=env)
    try:
        port = server.stdout.readline().strip().rsplit(":", 1)[1]
        load = sh([os.path.join(ROOT, "build", "tools", "loadgen"), "--port", port, "--threads", "8",
                   "--requests", str(requests), "--seconds", "60"], capture_output=True, text=True, timeout=180)
    finally:
        if server.poll() is None:
            server.terminate()
        server.communicate(timeout=20)
    m = re.search(r"ok=(\d+) errors=(\d+) seconds=([\d.]+)", load.stdout)
    ok = int(m[1])
    planned = 8 * requests
    end = time.monotonic() + 5
    while server.returncode not in (0,) and not glob.glob(os.path.join(reports, "crash-*.json")) \
            and time.monotonic() < end:
        time.sleep(0.05)    # the monolithic build's watcher writes its report just after the death
    crashes = [json.load(open(f)) for f in glob.glob(os.path.join(reports, "crash-*.json"))]
    result = {"round": label, "plan": os.path.relpath(plan, ROOT), "answered": ok, "failed": planned - ok,
              "rps": ok / float(m[3]) if float(m[3]) else 0.0, "restarts": sum(c["outcome"] == "restarted"
                                                                               for c in crashes),
              "died": server.returncode != 0, "availability": ok / planned}
    print(f"{label:<28} {result['plan']:<44} rps {result['rps']:>8.0f}  failed {result['failed']:>6}  "
          f"restarts {result['restarts']:>3}  {'server died' if result['died'] else 'server up'}", flush=True)
    return result


def learn(policy: str, reports: list[str], out: str, current: str | None = None, extra: list[str] = ()) -> None:
    cmd = QTOOL + ["learn", "samples/kvstore", "--policy", policy, "--reports", *reports,
                   "--db", os.path.join(WORK, f"{policy}.sqlite"), "-o", out, *extra]
    if current:
        cmd += ["--current", current]
    proc = sh(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"qtool learn failed:\n{proc.stderr}")
    for line in proc.stdout.splitlines():
        if line.startswith(("  ", "plan:")):
            print(f"    {line.strip()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20000, help="per loadgen thread (8 threads)")
    opts = ap.parse_args()
    if os.path.isdir(WORK):
        for f in glob.glob(os.path.join(WORK, "**", "*.json"), recursive=True) + glob.glob(os.path.join(WORK, "*.sqlite")):
            os.unlink(f)
    os.makedirs(WORK, exist_ok=True)
    sh([SCONS, "-Q", "build/tools/loadgen"], check=True, stdout=subprocess.DEVNULL)
    plans = os.path.join(ROOT, "samples", "kvstore", "plans")

    print("optimistic: start together, isolate what crashes")
    r1 = run_round("round 1 (together)", os.path.join(plans, "mono.yaml"), os.path.join(WORK, "opt1"), opts.requests)
    learned = os.path.join(WORK, "optimistic-2.yaml")
    learn("optimistic", [os.path.join(WORK, "opt1")], learned)
    r2 = run_round("round 2 (learned)", learned, os.path.join(WORK, "opt2"), opts.requests)

    print("\npessimistic: start with everything isolated, merge what proves trustworthy")
    everything = os.path.join(plans, "isolate-all.yaml")
    p1 = run_round("round 1 (everything isolated)", everything, os.path.join(WORK, "pes1"), opts.requests)
    # The learner pools every report it has (as it would across a fleet): the cache's crash in the
    # optimistic rounds counts here too, even if this round's run did not hit the race.
    learned_p = os.path.join(WORK, "pessimistic-2.yaml")
    learn("pessimistic", [os.path.join(WORK, d) for d in ("opt1", "opt2", "pes1")], learned_p,
          current=everything, extra=["--trust-calls", "10000"])
    p2 = run_round("round 2 (learned)", learned_p, os.path.join(WORK, "pes2"), opts.requests)

    print("\noutcome:")
    for name, before, after in (("optimistic", r1, r2), ("pessimistic", p1, p2)):
        print(f"  {name}: availability {before['availability']:.3f} -> {after['availability']:.3f}, "
              f"rps {before['rps']:.0f} -> {after['rps']:.0f}, restarts in round 2: {after['restarts']}")
    return 0 if r2["failed"] == 0 and p2["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
