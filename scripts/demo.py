"""The main job: kvstore built whole and split by each of its plans, driven by the same load.

Run through ./demo.sh, which installs everything first.  For each plan it prints where the
components run, then the load client's outcome; then it turns on a real race in the cache and
shows the monolithic server dying of it while the isolated cache is restarted under the load.
The servers' crash and stats reports are kept in .qpm/demo/ (emptied when the demo starts), where
`qtool report` and `qtool learn` read them afterwards.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLANS = os.path.join("samples", "kvstore", "plans")
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")
LOAD = ["--threads", "8", "--requests", "2000", "--seconds", "30"]
REPORTS = os.path.join(".qpm", "demo")      # below ROOT, where every server runs
# The race's load stops once this many crash reports are in: the isolate-cache plan allows 20
# restarts a minute, and how often the race hits depends on the machine (4 to 12 times a second
# under this load on machines of this project's kind).
RACE_CRASHES = 5


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, **kw)


def children(pid: int) -> list[str]:
    """The domain processes of a program: its children but the crash watcher."""
    names = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for child in f.read().split():
                with open(f"/proc/{child}/comm") as c:
                    if c.read().strip() == "qpm-watcher":
                        continue
                with open(f"/proc/{child}/cmdline") as c:
                    names.append(f"{os.path.basename(c.read().split(chr(0))[0])} (pid {child})")
    return names


def crash_reports(directory: str) -> list[str]:
    return sorted(glob.glob(os.path.join(ROOT, directory, "crash-*.json")))


def run_load(cmd: list[str], reports: str, stop_after: int | None) -> subprocess.CompletedProcess:
    """loadgen, to its end; with stop_after, stopped early (SIGINT: what is in flight is answered
    and counted) once that many crash reports are in `reports`."""
    if stop_after is None:
        return sh(cmd, capture_output=True, text=True, timeout=120)
    print("$ " + " ".join(cmd) + f"   (stopped once {stop_after} crash reports are in)", flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, stopped = time.monotonic() + 120, False
    while True:
        try:
            out, err = proc.communicate(timeout=0.05)
            return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            if not stopped and len(crash_reports(reports)) >= stop_after:
                proc.send_signal(signal.SIGINT)
                stopped = True


def serve_and_load(variant: str, reports: str, env: dict | None = None, load: list[str] = LOAD,
                   stop_after: int | None = None) -> dict:
    """Serves with build/<variant>/kvstore, its reports into `reports` (relative to ROOT); the load
    stops early once `stop_after` crash reports are in."""
    env = {**os.environ, **(env or {}), "QPM_REPORT_DIR": reports}
    server = subprocess.Popen([os.path.join("build", variant, "kvstore"), "--port", "0"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        first = server.stdout.readline().strip()
        port = first.rsplit(":", 1)[1]
        print(f"{first}; main pid {server.pid}; domain processes: {', '.join(children(server.pid)) or 'none'}")
        load = run_load([os.path.join("build", "tools", "loadgen"), "--port", port, *load], reports, stop_after)
        print(load.stdout.strip())
    finally:
        if server.poll() is None:
            server.terminate()
        rest, _ = server.communicate(timeout=20)
    print(rest.strip())
    m = re.search(r"ok=(\d+) errors=(\d+) .*rps=([\d.]+).* not_sent=(\d+)", load.stdout)
    return {"variant": variant, "ok": int(m[1]), "errors": int(m[2]), "rps": float(m[3]), "not_sent": int(m[4]),
            "exit": load.returncode, "server_exit": server.returncode}


def outcome_line(r: dict) -> str:
    """How the server ended and what became of the requests: failed ones, and those never sent
    because the server had gone."""
    code = r["server_exit"]
    ended = (f"server died of {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals()
             else f"server exit {code}")
    line = f"{r['variant']}: {ended}, requests ok {r['ok']}, failed {r['errors']}"
    if r["not_sent"]:
        line += f", not sent {r['not_sent']} ({'server died' if code else 'connection lost'})"
    return line


def reports_in(directory: str, at_least: int = 0) -> list[dict]:
    """The crash reports written so far (waiting, within a limit, for at_least of them)."""
    end = time.monotonic() + 10
    while True:
        files = crash_reports(directory)
        if len(files) >= at_least or time.monotonic() > end:
            return [json.load(open(f)) for f in files]
        time.sleep(0.05)


def containment() -> bool:
    """The real race in the cache, under the same load: whole, then with the cache isolated."""
    step("a real race in the cache (KVSTORE_CACHE_RACE=1): whole, then with the cache isolated")
    race_load = ["--threads", "8", "--requests", "20000", "--seconds", "30"]
    outcome = {}
    for variant in ("mono", "isolate-cache"):
        reports = os.path.join(REPORTS, f"race-{variant}")
        r = serve_and_load(variant, reports, {"KVSTORE_CACHE_RACE": "1", "KVSTORE_CACHE_RACE_US": "60"}, race_load,
                           stop_after=RACE_CRASHES)
        found = reports_in(reports, 1 if r["server_exit"] not in (0,) else 0)
        outcome[variant] = (r, found)
        print(f"{outcome_line(r)}; crash reports {len(found)} in {reports}{os.sep}")
        for rep in found[:3]:
            top = next((f for f in rep["backtrace"] if f.get("component")), None)
            where = f"{top['function']} ({top['file']}:{top['line']}, component {top['component']})" if top else "?"
            print(f"  {rep['signal']} in {where}; {rep['outcome']}"
                  + (f" in {rep['recovery_ms']} ms" if rep["recovery_ms"] is not None else ""))
    mono, iso = outcome["mono"], outcome["isolate-cache"]
    ok = mono[0]["server_exit"] != 0 and iso[0]["server_exit"] == 0 and iso[0]["errors"] == 0
    print("outcome: " + ("the whole server died of the race; with the cache isolated it kept serving, "
                         f"restarted the cache {len(iso[1])} time(s) and no request failed" if ok
                         else "containment did not show as expected"))
    return ok


def main() -> int:
    shutil.rmtree(os.path.join(ROOT, REPORTS), ignore_errors=True)
    step("qtool and libclang")
    sh([sys.executable, "-m", "qtool", "--version"], check=True)
    step("the program model of samples/kvstore (components and the calls between them)")
    if sh([sys.executable, "-m", "qtool", "analyze", "samples/kvstore"]).returncode != 0:
        return 1

    results = []
    for plan in ("mono", "isolate-cache", "isolate-all"):
        step(f"kvstore with plan {plan}.yaml: check, build, serve, load")
        path = os.path.join(PLANS, plan + ".yaml")
        if sh([sys.executable, "-m", "qtool", "check", "--plan", path, "samples/kvstore"]).returncode != 0:
            return 1
        if sh([SCONS, "-Q", f"ISOLATE={path}"], stdout=subprocess.DEVNULL).returncode != 0:
            return 1
        results.append(serve_and_load(plan, os.path.join(REPORTS, plan)))

    step("what happened")
    print(f"{'plan':<15}{'requests ok':>12}{'errors':>8}{'requests/s':>12}{'vs mono':>9}")
    base = results[0]["rps"]
    for r in results:
        print(f"{r['variant']:<15}{r['ok']:>12}{r['errors']:>8}{r['rps']:>12.0f}{r['rps'] / base:>9.2f}")
    failed = [r for r in results if r["errors"] or r["exit"] or r["server_exit"]]
    print("outcome: " + ("every request answered correctly under every plan" if not failed
                         else f"failures under {', '.join(r['variant'] for r in failed)}"))
    contained = containment()
    step("the evidence")
    print(f"the servers' crash and stats reports of this run are in {REPORTS}{os.sep} (emptied at each run); "
          "what they say:")
    print(f"  .venv/bin/qtool report --reports {REPORTS}")
    print(f"  .venv/bin/qtool learn samples/kvstore --reports {REPORTS} --policy optimistic -o plan.yaml")
    return 1 if failed or not contained else 0


if __name__ == "__main__":
    sys.exit(main())
