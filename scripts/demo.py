"""The main job: kvstore built whole and split by each of its plans, driven by the same load.

Run through ./demo.sh, which installs everything first.  For each plan it prints where the
components run, then the load client's outcome.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLANS = os.path.join("samples", "kvstore", "plans")
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")
LOAD = ["--threads", "8", "--requests", "2000", "--seconds", "30"]


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, **kw)


def children(pid: int) -> list[str]:
    names = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for child in f.read().split():
                with open(f"/proc/{child}/cmdline") as c:
                    names.append(f"{os.path.basename(c.read().split(chr(0))[0])} (pid {child})")
    return names


def serve_and_load(variant: str) -> dict:
    server = subprocess.Popen([os.path.join("build", variant, "kvstore"), "--port", "0"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline().strip()
        port = first.rsplit(":", 1)[1]
        print(f"{first}; main pid {server.pid}; domain processes: {', '.join(children(server.pid)) or 'none'}")
        load = sh([os.path.join("build", "tools", "loadgen"), "--port", port, *LOAD],
                  capture_output=True, text=True, timeout=120)
        print(load.stdout.strip())
    finally:
        server.terminate()
        rest, _ = server.communicate(timeout=20)
    print(rest.strip())
    m = re.search(r"ok=(\d+) errors=(\d+) .*rps=([\d.]+)", load.stdout)
    return {"variant": variant, "ok": int(m[1]), "errors": int(m[2]), "rps": float(m[3]),
            "exit": load.returncode, "server_exit": server.returncode}


def main() -> int:
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
        results.append(serve_and_load(plan))

    step("what happened")
    print(f"{'plan':<15}{'requests ok':>12}{'errors':>8}{'requests/s':>12}{'vs mono':>9}")
    base = results[0]["rps"]
    for r in results:
        print(f"{r['variant']:<15}{r['ok']:>12}{r['errors']:>8}{r['rps']:>12.0f}{r['rps'] / base:>9.2f}")
    failed = [r for r in results if r["errors"] or r["exit"] or r["server_exit"]]
    print("outcome: " + ("every request answered correctly under every plan" if not failed
                         else f"failures under {', '.join(r['variant'] for r in failed)}"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
