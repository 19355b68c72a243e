"""Predicted against measured: the cut stage's crossings per request for kvstore's plans, against
the runtime's own counts (stats-*.json) under a real load.

    .venv/bin/python bench/predict.py [--requests 5000]

The analyzer's static weights are per run of an entry point; for a server, a run of the request
handler is the unit that matters, so predictions are divided by the static weight of
net -> proto_handle (one call per request).  Measured: calls on each crossing edge divided by the
requests served.  Exits 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from qtool.analyzer import analyze  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")
PLANS = ("isolate-cache", "isolate-all")


def measured(variant: str, requests: int, tmp: str) -> tuple[dict[str, float], int]:
    reports = os.path.join(tmp, variant)
    server = subprocess.Popen([os.path.join(ROOT, "build", variant, "kvstore"), "--port", "0"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "QPM_REPORT_DIR": reports})
    try:
        port = server.stdout.readline().strip().rsplit(":", 1)[1]
        load = subprocess.run([os.path.join(ROOT, "build", "tools", "loadgen"), "--port", port, "--threads", "8",
                               "--requests", str(requests), "--seconds", "60"], capture_output=True, text=True,
                              timeout=120)
    finally:
        server.terminate()
        server.communicate(timeout=20)
    served = int(re.search(r"ok=(\d+)", load.stdout)[1])
    (path,) = glob.glob(os.path.join(reports, "stats-*.json"))
    calls: dict[str, float] = {}
    for e in json.load(open(path))["edges"]:
        calls[e["callee"]] = calls.get(e["callee"], 0) + e["calls"]
    return {k: v / served for k, v in calls.items()}, served


def predicted(variant: str) -> dict[str, float]:
    import yaml
    model = analyze([os.path.join(ROOT, "samples", "kvstore")], progress=False)
    plan = yaml.safe_load(open(os.path.join(ROOT, "samples", "kvstore", "plans", variant + ".yaml")))
    domain = {c: d["domain"] for d in plan["isolate"] for c in d["components"]}
    fmap = model.function_map
    per: dict[str, float] = {}
    handler = 0.0
    for e in model.edges:
        a, b = fmap[e.caller].component, fmap[e.callee].component
        if fmap[e.callee].name == "proto_handle":
            handler += e.weight
        if domain.get(a, "main") != domain.get(b, "main"):
            name = fmap[e.callee].name
            per[name] = per.get(name, 0.0) + e.weight
    return {k: v / handler for k, v in per.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000, help="per loadgen thread (8 threads)")
    opts = ap.parse_args()
    for plan in PLANS:
        subprocess.run([SCONS, "-Q", f"ISOLATE=samples/kvstore/plans/{plan}.yaml"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    print("Predicted against measured crossings per request (bench/predict.py)")
    print(f"command:  {os.path.relpath(sys.executable, ROOT)} bench/predict.py {' '.join(sys.argv[1:])}".rstrip())
    with tempfile.TemporaryDirectory() as tmp:
        for plan in PLANS:
            pred = predicted(plan)
            meas, served = measured(plan, opts.requests, tmp)
            print(f"\n{plan} ({served} requests):")
            print(f"  {'function called across':<22}{'predicted':>10}{'measured':>10}{'error':>9}")
            total_p = total_m = 0.0
            for name in sorted(set(pred) | set(meas)):
                p, m = pred.get(name, 0.0), meas.get(name, 0.0)
                total_p, total_m = total_p + p, total_m + m
                err = f"{(p - m) / m * 100:+.0f}%" if m else "-"
                print(f"  {name:<22}{p:>10.2f}{m:>10.2f}{err:>9}")
            print(f"  {'all crossings':<22}{total_p:>10.2f}{total_m:>10.2f}{(total_p - total_m) / total_m * 100:>+8.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
