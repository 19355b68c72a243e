"""What one crossing costs on this machine: measured once through the real runtime, then cached.

The calibration program (qtool/calibrate) is built split by the SCons tool and times a null call
and a 4 KiB in + 8 KiB out call through the generated stubs; the fixed cost is the null call, the
cost per byte what the bulk call adds per byte copied.  QPM_CROSSING_NS and QPM_CROSSING_NS_PER_BYTE
override the measurement (tests use them to stay fast and exact).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from .analyzer.clang_env import cache_dir
from .atomic import write_text
from .cut import Costs
from .errors import UserError

CALIBRATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calibrate")
BULK_BYTES = 4096 + 8192


def _measure(exe: str, mode: str, rounds: int, reports: str) -> float:
    out = subprocess.run([exe, mode, str(rounds)], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(exe), env={**os.environ, "QPM_REPORT_DIR": reports})
    if out.returncode != 0:
        raise UserError(f"calibration run failed: {exe} {mode}: {out.stderr.strip()}")
    return float(out.stdout.split()[1])


def calibrate() -> Costs:
    scons = os.path.join(os.path.dirname(sys.executable), "scons")
    with tempfile.TemporaryDirectory() as tmp:
        prog = os.path.join(tmp, "calibrate")
        shutil.copytree(CALIBRATE, prog)
        proc = subprocess.run([scons, "-Q", "ISOLATE=split.yaml"], cwd=prog, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(f"building the calibration program failed:\n{proc.stdout}{proc.stderr}")
        exe = os.path.join(prog, "build", "split", "ipc")
        # Its stats reports are the calibration's own: they go with the temporary directory.
        reports = os.path.join(tmp, "reports")
        null = min(_measure(exe, "null", 200_000, reports) for _ in range(3))
        bulk = min(_measure(exe, "bulk", 20_000, reports) for _ in range(3))
    return Costs(null, max(0.0, (bulk - null) / BULK_BYTES), "measured on this machine")


def crossing_costs() -> Costs:
    env_call, env_byte = os.environ.get("QPM_CROSSING_NS"), os.environ.get("QPM_CROSSING_NS_PER_BYTE")
    if env_call:
        return Costs(float(env_call), float(env_byte or 0), "QPM_CROSSING_NS")
    path = os.path.join(cache_dir(), "costs.json")
    try:
        with open(path) as f:
            d = json.load(f)
        return Costs(float(d["ns_per_call"]), float(d["ns_per_byte"]), f"measured, cached in {path}")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    costs = calibrate()
    write_text(path, json.dumps({"ns_per_call": costs.ns_per_call, "ns_per_byte": costs.ns_per_byte}) + "\n")
    return Costs(costs.ns_per_call, costs.ns_per_byte, f"measured now, cached in {path}")
