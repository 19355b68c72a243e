"""What one crossing costs on this machine: measured through the real runtime, then cached.

The calibration program (qtool/calibrate) is built split by the SCons tool and times a null call
and a 4 KiB in + 8 KiB out call through the generated stubs, RUNS times each; the fixed cost is
the median null call (its minimum and maximum are kept as the spread), the cost per byte what the
median bulk call adds per byte copied.

The figure is cached in costs.json in the cache directory (~/.cache/qtool, or $QPM_CACHE_DIR)
with the date, the machine (CPU model, cores), the compiler's version and a digest of the code
that makes a crossing (runtime, annotations, stub generator, calibration program).  It is used
again while all three match, measured again when any of them changes or on request.

QPM_CROSSING_NS and QPM_CROSSING_NS_PER_BYTE override the measurement (tests use them to stay
fast and exact); QPM_CALIBRATE_ROUNDS sets the null calls timed per run (default 200000, bulk
calls a tenth of that).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

from .analyzer.clang_env import cache_dir
from .atomic import write_text
from .cut import Costs
from .errors import UserError

CALIBRATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calibrate")
BULK_BYTES = 4096 + 8192
RUNS = 5
ROUNDS = 200_000
SCHEMA = "qpm.costs/2"


def _compiler() -> str:
    """The first line of `gcc --version` (the compiler the SCons tool uses by default)."""
    cc = os.environ.get("CC") or "gcc"
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0].strip() if out.returncode == 0 and out.stdout else f"{cc} (unknown version)"
    except (OSError, subprocess.SubprocessError):
        return f"{cc} (not found)"


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> dict:
    return {"cpu": _cpu(), "cores": os.cpu_count() or 1, "arch": platform.machine()}


def code_id() -> str:
    """A digest of everything a crossing's cost depends on in this toolchain: the runtime, the
    annotation header, the stub generator and the calibration program itself."""
    from . import scons
    here = os.path.dirname(os.path.abspath(__file__))
    files = [os.path.join(scons.RUNTIME, f) for f in sorted(os.listdir(scons.RUNTIME)) if f.endswith((".c", ".h"))]
    files += [os.path.join(CALIBRATE, f) for f in sorted(os.listdir(CALIBRATE))
              if os.path.isfile(os.path.join(CALIBRATE, f))]
    files += [os.path.join(scons.CLANG_ATTRS, "qpm.h")]
    files += [os.path.join(here, f) for f in ("stubgen.py", "marshal.py", "scons.py")]
    h = hashlib.sha256()
    for path in files:
        h.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def _rounds() -> int:
    text = os.environ.get("QPM_CALIBRATE_ROUNDS")
    if not text:
        return ROUNDS
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 10:
        raise UserError(f"QPM_CALIBRATE_ROUNDS must be a whole number of at least 10, not '{text}'")
    return n


def _measure(exe: str, mode: str, rounds: int, reports: str) -> float:
    out = subprocess.run([exe, mode, str(rounds)], capture_output=True, text=True, timeout=300,
                         cwd=os.path.dirname(exe), env={**os.environ, "QPM_REPORT_DIR": reports})
    if out.returncode != 0:
        raise UserError(f"calibration run failed: {exe} {mode}: {out.stderr.strip()}")
    return float(out.stdout.split()[1])


def calibrate(runs: int = RUNS) -> dict:
    """Builds the calibration program and times it: the record costs.json holds."""
    scons = os.path.join(os.path.dirname(sys.executable), "scons")
    if not os.path.exists(scons):
        scons = shutil.which("scons") or scons
    rounds = _rounds()
    with tempfile.TemporaryDirectory(prefix="qtool-calibrate-") as tmp:
        prog = os.path.join(tmp, "calibrate")
        shutil.copytree(CALIBRATE, prog)
        proc = subprocess.run([scons, "-Q", "ISOLATE=split.yaml"], cwd=prog, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(f"building the calibration program failed:\n{proc.stdout}{proc.stderr}")
        exe = os.path.join(prog, "build", "split", "ipc")
        # Its stats reports are the calibration's own: they go with the temporary directory.
        reports = os.path.join(tmp, "reports")
        null = [_measure(exe, "null", rounds, reports) for _ in range(runs)]
        bulk = [_measure(exe, "bulk", max(1, rounds // 10), reports) for _ in range(runs)]
    ns_call = statistics.median(null)
    return {
        "schema": SCHEMA,
        "ns_per_call": ns_call, "ns_per_call_min": min(null), "ns_per_call_max": max(null),
        "ns_per_byte": max(0.0, (statistics.median(bulk) - ns_call) / BULK_BYTES),
        "null_ns": null, "bulk_ns": bulk, "runs": runs, "rounds": rounds,
        "measured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(), "compiler": _compiler(), "code_id": code_id(),
    }


def _stale(record: dict, now: dict) -> str | None:
    """Why a cached record no longer describes this machine and toolchain, or None."""
    if record.get("schema") != SCHEMA:
        return "the cached figure is of an older format"
    if record.get("code_id") != now["code_id"]:
        return "the runtime or the stub generator changed"
    if record.get("compiler") != now["compiler"]:
        return "the compiler changed"
    if record.get("machine") != now["machine"]:
        return "the machine changed"
    return None


def _home(path: str) -> str:
    home = os.path.expanduser("~")
    return "~" + path[len(home):] if home not in ("", "/") and path.startswith(home + os.sep) else path


def _source(record: dict, path: str, why: str | None) -> str:
    m = record["machine"]
    text = (f"median of {record['runs']}, {record['ns_per_call_min']:.0f}–{record['ns_per_call_max']:.0f} ns; "
            f"measured {record['measured'][:10]} on {m['cpu']}, {m['cores']} core{'s' * (m['cores'] != 1)}, "
            f"{record['compiler']}; cached in {_home(path)}")
    return text + (f"; measured now: {why}" if why else "")


def crossing_costs(recalibrate: bool = False) -> Costs:
    """The crossing cost to weigh a cut with: the environment's, the cached one while it still
    describes this machine and toolchain, else a new measurement (cached)."""
    env_call, env_byte = os.environ.get("QPM_CROSSING_NS"), os.environ.get("QPM_CROSSING_NS_PER_BYTE")
    if env_call:
        try:
            return Costs(float(env_call), float(env_byte or 0), "QPM_CROSSING_NS from the environment")
        except ValueError:
            raise UserError(f"QPM_CROSSING_NS and QPM_CROSSING_NS_PER_BYTE must be numbers, not "
                            f"'{env_call}' and '{env_byte or ''}'") from None
    path = os.path.join(cache_dir(), "costs.json")
    now = {"machine": machine(), "compiler": _compiler(), "code_id": code_id()}
    why = "--recalibrate" if recalibrate else None
    if not why:
        try:
            with open(path) as f:
                record = json.load(f)
            why = _stale(record, now)
            if not why:
                return Costs(float(record["ns_per_call"]), float(record["ns_per_byte"]), _source(record, path, None))
        except FileNotFoundError:
            why = "no calibration yet"
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            why = "the cached figure was unreadable"
    record = calibrate()
    write_text(path, json.dumps(record, indent=2) + "\n")
    return Costs(record["ns_per_call"], record["ns_per_byte"], _source(record, path, why))


def describe(costs: Costs) -> str:
    """The one line cut and learn print on stderr: which figure they weigh crossings with."""
    return f"crossing cost {costs.ns_per_call:.0f} ns + {costs.ns_per_byte:.3f} ns/byte ({costs.source})"
