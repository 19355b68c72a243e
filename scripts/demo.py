"""The main job: analyse the kvstore sample, check its plans, then build it and drive load.

Run through ./demo.sh, which installs everything first.  Until the split build exists, the
server is built and run as one ordinary program (gcc, no toolchain involvement).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KVSTORE = os.path.join(ROOT, "samples", "kvstore")
LOADGEN = os.path.join(ROOT, "samples", "loadgen", "loadgen.c")
QTOOL = [sys.executable, "-m", "qtool"]
CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-O2", "-pthread", "-Wall", "-Wextra", "-Werror",
          "-I", os.path.join(ROOT, "clang_attrs")]


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("$ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, **kw)


def main() -> int:
    step("qtool and libclang")
    run(QTOOL + ["--version"], check=True)

    step("the program model of samples/kvstore")
    if run(QTOOL + ["analyze", KVSTORE]).returncode != 0:
        return 1

    step("its plans, checked against the sources")
    for plan in sorted(os.listdir(os.path.join(KVSTORE, "plans"))):
        if run(QTOOL + ["check", "--plan", os.path.join(KVSTORE, "plans", plan), KVSTORE]).returncode != 0:
            return 1

    step("kvstore built with gcc and driven by the load client")
    with tempfile.TemporaryDirectory() as tmp:
        server, client = os.path.join(tmp, "kvstore"), os.path.join(tmp, "loadgen")
        sources = sorted(os.path.join(KVSTORE, f) for f in os.listdir(KVSTORE) if f.endswith(".c"))
        run(["gcc", *CFLAGS, *sources, "-o", server], check=True)
        run(["gcc", *CFLAGS, LOADGEN, "-o", client], check=True)
        proc = subprocess.Popen([server, "--port", "0"], stdout=subprocess.PIPE, text=True)
        try:
            first = proc.stdout.readline().strip()
            print(first)
            port = first.rsplit(":", 1)[1]
            load = run([client, "--port", port, "--threads", "8", "--requests", "2000", "--seconds", "20"])
        finally:
            proc.terminate()
            rest, _ = proc.communicate(timeout=10)
        print(rest.strip())
    print(f"\noutcome: load client exit {load.returncode}, server exit {proc.returncode}")
    return 0 if load.returncode == 0 and proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
