"""Recovery, side by side in one run: a component's restart against a whole server's.

    .venv/bin/python bench/recovery.py [--repeat 15] [--quick]

1. Component restart: tests/programs/faults split by error.yaml; each run dereferences NULL in
   the isolated component once; the crash report's recovery_ms is the time from the fault (the
   dying thread's clock reading) to the fresh process serving (QPM_INIT re-run included).
2. Whole-server restart: kvstore built monolithic; the time from exec to the first request
   answered (what restarting the whole server costs at the least, before any state is rebuilt).
3. Under load: bench/recovery (200 threads calling an isolated component in a loop while the main
   thread crashes it every 20 ms, on_fault: error): per fault, the time from the crash (the dying
   thread's clock reading) to the fresh process serving (recovery_ms), the part of it spent until
   the main process saw the process gone (detect_ms: the kernel tearing down a process of 200
   threads), and the crashing call's round trip; p50 and p99, and wrong answers (innocent calls
   re-issued must all come back right).
4. The kvstore demo with its real cache race (KVSTORE_CACHE_RACE=1): the same load against the
   monolithic server and against isolate-cache; requests answered and failed, faults seen.

Exits 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from machine import cpu_model  # bench/machine.py: scripts here run with bench/ on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")


def build(tmp: str) -> tuple[str, str]:
    faults = os.path.join(tmp, "faults")
    shutil.copytree(os.path.join(ROOT, "tests", "programs", "faults"), faults)
    subprocess.run([SCONS, "-Q", "ISOLATE=error.yaml"], cwd=faults, check=True, stdout=subprocess.DEVNULL)
    loaded = os.path.join(tmp, "loaded")
    shutil.copytree(os.path.join(ROOT, "bench", "recovery"), loaded, ignore=shutil.ignore_patterns("build", ".sconsign*"))
    subprocess.run([SCONS, "-Q", "ISOLATE=plan.yaml"], cwd=loaded, check=True, stdout=subprocess.DEVNULL)
    for plan in ("mono.yaml", "isolate-cache.yaml"):
        subprocess.run([SCONS, "-Q", f"ISOLATE=samples/kvstore/plans/{plan}"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    return os.path.join(faults, "build", "error", "faults"), os.path.join(ROOT, "build")


def component_restart(exe: str, reports: str) -> float:
    proc = subprocess.run([exe, "null"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "QPM_REPORT_DIR": reports})
    if proc.returncode != 0 or "result -7" not in proc.stdout:
        raise SystemExit(f"bench/recovery.py: the faults program did not recover: {proc.stderr}")
    (path,) = glob.glob(os.path.join(reports, "crash-*.json"))
    value = json.load(open(path))["recovery_ms"]
    os.unlink(path)
    return value


def percentile(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def under_load(exe: str, reports: str, threads: int, faults: int) -> dict:
    """bench/recovery: `threads` callers busy while the domain is crashed `faults` times."""
    proc = subprocess.run([exe, str(threads), str(faults)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "QPM_REPORT_DIR": reports})
    if proc.returncode != 0:
        raise SystemExit(f"bench/recovery.py: the loaded run failed: {proc.stderr[-2000:]}")
    trips = [float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("fault ")]
    normal = [float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("normal ")]
    wrong, calls = (int(x) for x in proc.stdout.splitlines()[-1].split()[1::2])
    docs = [json.load(open(p)) for p in glob.glob(os.path.join(reports, "crash-*.json"))]
    return {"recovery": [d["recovery_ms"] for d in docs], "detect": [d["detect_ms"] for d in docs],
            "trip": trips, "normal": normal, "wrong": wrong, "calls": calls, "faults": len(docs)}


def whole_restart(exe: str) -> float:
    """Milliseconds from exec of the monolithic server to its first answered request."""
    start = time.perf_counter()
    server = subprocess.Popen([exe, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET warm\n")
            reply = s.recv(64)
        elapsed = (time.perf_counter() - start) * 1000
        if not reply.startswith(b"NOT_FOUND"):
            raise SystemExit(f"bench/recovery.py: unexpected reply {reply!r}")
        return elapsed
    finally:
        server.terminate()
        server.communicate(timeout=10)


def race_run(variant: str, reports: str) -> dict:
    env = {**os.environ, "KVSTORE_CACHE_RACE": "1", "KVSTORE_CACHE_RACE_US": "30", "QPM_REPORT_DIR": reports}
    server = subprocess.Popen([os.path.join(ROOT, "build", variant, "kvstore"), "--port", "0"],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        port = server.stdout.readline().strip().rsplit(":", 1)[1]
        load = subprocess.run([os.path.join(ROOT, "build", "tools", "loadgen"), "--port", port,
                               "--threads", "8", "--requests", "20000", "--seconds", "60"],
                              capture_output=True, text=True, timeout=120)
    finally:
        if server.poll() is None:
            server.terminate()
        server.communicate(timeout=20)
    m = re.search(r"requests=(\d+) ok=(\d+) errors=(\d+)", load.stdout)
    sent, ok, errors = (int(x) for x in m.groups())
    time.sleep(0.2)     # the monolithic build's watcher writes its report just after the death
    crashes = len(glob.glob(os.path.join(reports, "crash-*.json")))
    return {"variant": variant, "planned": 8 * 20000, "answered": ok, "failed": 8 * 20000 - ok,
            "faults": crashes, "server_exit": server.returncode}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--quick", action="store_true")
    opts = ap.parse_args()
    repeat = 5 if opts.quick else opts.repeat
    with tempfile.TemporaryDirectory() as tmp:
        faults, build_dir = build(tmp)
        loaded = under_load(os.path.join(tmp, "loaded", "build", "plan", "recovery"), os.path.join(tmp, "loaded-r"),
                            200, 20 if opts.quick else 100)
        reports = os.path.join(tmp, "reports")
        os.makedirs(reports)
        component, whole = [], []
        for _ in range(repeat):     # interleaved, to share the machine's noise
            component.append(component_restart(faults, reports))
            whole.append(whole_restart(os.path.join(build_dir, "mono", "kvstore")))
        races = [race_run(v, os.path.join(tmp, v)) for v in ("mono", "isolate-cache")]

    c, w = statistics.median(component), statistics.median(whole)
    print("Recovery benchmark (bench/recovery.py)")
    print(f"command:  {os.path.relpath(sys.executable, ROOT)} bench/recovery.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine:  {os.cpu_count()} cores, {cpu_model()}, Linux {platform.release()}")
    print(f"repeats:  {repeat} (median; the two measurements interleaved)\n")
    print(f"component restart, fault to serving again:       {c:7.3f} ms  "
          f"(min {min(component):.3f}, max {max(component):.3f})")
    print(f"whole-server restart, exec to first answer:      {w:7.3f} ms  "
          f"(min {min(whole):.3f}, max {max(whole):.3f})")
    print(f"\n{'target':<44}{'value':>9}  result")
    print(f"{'component restart <= 2 ms':<44}{c:>9.3f}  {'PASS' if c <= 2 else 'MISS'}")
    print(f"{'whole restart / component restart >= 20':<44}{w / c:>9.2f}  {'PASS' if w / c >= 20 else 'MISS'}")
    print(f"\nunder load: 200 threads calling the isolated component, {loaded['faults']} faults, "
          f"{loaded['calls']} calls, {loaded['wrong']} wrong answers")
    print(f"{'':<44}{'p50':>9}{'p99':>9}{'max':>9}")
    for name, key in (("fault to serving again (recovery_ms)", "recovery"),
                      ("  of which: process gone (detect_ms)", "detect"),
                      ("crashing call's round trip", "trip"),
                      ("a call that does not fault, round trip", "normal")):
        v = loaded[key]
        print(f"{name:<44}{percentile(v, 0.5):>9.3f}{percentile(v, 0.99):>9.3f}{max(v):>9.3f}")
    print("\nkvstore with its cache race, 8 threads x 20000 requests planned:")
    print(f"{'variant':<15}{'answered':>10}{'failed':>9}{'faults':>8}  server")
    for r in races:
        print(f"{r['variant']:<15}{r['answered']:>10}{r['failed']:>9}{r['faults']:>8}  "
              f"{'exit ' + str(r['server_exit']) if r['server_exit'] >= 0 else 'killed by signal ' + str(-r['server_exit'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
