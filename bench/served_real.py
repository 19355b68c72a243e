#!/usr/bin/env python3
"""Served against alone on real servers: `qtool analyze` run by `qtool serve` after each of a
series of random edits prints what a cold `qtool analyze` alone prints.

Run from the repository root:

    .venv/bin/python bench/served_real.py                    # lighttpd and nginx, 12 edits each
    .venv/bin/python bench/served_real.py --edits 30 --server lighttpd --seed 7

Each server is a copy of bench/analyze.py's (a Debian source package, fetched and configured
once), analysed with a compile_commands.json of its units.  A server is started for the copy; an
edit is one of: a blank line put in or taken out at a random line of a unit (in its directives at
the top, or in its code), a comment put at the end of a random line, a blank line added to a
random header of the copy; the unit is one of two chosen at random for the run, 7 times in 10
(an editor's few files), else any; after
each, the served `analyze` (text, then JSON) is compared with a cold run alone (an empty cache,
QPM_NO_SERVER=1).  Prints each edit, the files that differ (none expected), and the keeper's
count of units parsed again from a kept parse.  Exit status 1 when an output differed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import loop  # noqa: E402  (bench/loop.py: the servers' copies, the command as the qtool script runs it)


def walker_cache(into: str, warm: str) -> str:
    os.makedirs(into, exist_ok=True)
    for name in os.listdir(warm):
        if name.startswith("walker-"):
            shutil.copy(os.path.join(warm, name), into)
    return into


def edit(rng: random.Random, root: str, units: list[str], headers: list[str]) -> str:
    """One random edit of the copy: what it was.  Most edits are of the first units given (an
    editor's few files: the keeper parses them again from its kept parses)."""
    kind = rng.choice(["blank in", "blank out", "comment", "comment", "header"])
    path = rng.choice(headers if kind == "header" else units[:2] if rng.random() < 0.7 else units)
    with open(path) as f:
        lines = f.read().split("\n")
    top = next((i for i, line in enumerate(lines) if line and not line.startswith(("#", "/", " *", "*"))), 1)
    at = rng.randrange(max(1, top)) if rng.random() < 0.3 else rng.randrange(len(lines))
    if kind == "blank in" or kind == "header":
        lines.insert(at, "")
    elif kind == "blank out":
        blanks = [i for i, line in enumerate(lines) if not line.strip()]
        if blanks:
            at = rng.choice(blanks)
            del lines[at]
    else:
        if lines[at].rstrip().endswith("\\") or "//" in lines[at] or "/*" in lines[at]:
            lines.insert(at, "")
        else:
            lines[at] += " /* edited */"
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return f"{kind} {os.path.relpath(path, root)}:{at + 1}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=sorted(loop.SERVER_FILES), action="append")
    ap.add_argument("--edits", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="qtool-served-")
    differed = 0
    try:
        warm = os.path.join(tmp, "warm")
        env0 = dict(os.environ, QPM_CACHE_DIR=warm)
        subprocess.run([sys.executable, "-c", "from qtool.analyzer import clang_env; clang_env.walker()"],
                       env=env0, check=True, timeout=300)
        for name in args.server or sorted(loop.SERVER_FILES):
            root, _, _ = loop.server_program(name, os.path.join(tmp, name))
            with open(os.path.join(root, "compile_commands.json")) as f:
                units = [e["file"] for e in json.load(f)]
            rng.shuffle(units)
            headers = sorted(os.path.join(d, n) for d, _, names in os.walk(root) for n in names
                             if n.endswith(".h") and not n.startswith("config"))
            env = dict(os.environ, QPM_CACHE_DIR=walker_cache(os.path.join(tmp, f"{name}-served"), warm))
            env.pop("QPM_NO_SERVER", None)
            server = loop.start_server(root, env)
            try:
                for k in range(args.edits + 1):
                    what = edit(rng, root, units, headers) if k else "none"
                    for fmt in ("text", "json"):
                        out = {}
                        for how in ("served", "alone"):
                            run_env = env if how == "served" else dict(
                                os.environ, QPM_NO_SERVER="1",
                                QPM_CACHE_DIR=walker_cache(os.path.join(tmp, f"{name}-alone-{k}-{fmt}"), warm))
                            target = os.path.join(tmp, f"{how}.out")
                            p = subprocess.run([sys.executable, "-c", loop.LAUNCH, "analyze", "--format", fmt,
                                                "-o", target, "-p", "compile_commands.json"], cwd=root, env=run_env,
                                               capture_output=True, text=True, timeout=900)
                            with open(target) as f:
                                out[how] = (p.returncode, p.stdout, p.stderr, f.read())
                        same = out["served"] == out["alone"]
                        differed += not same
                        print(f"{name:9} {k:3} {fmt:4} {'same' if same else 'DIFFERENT':9} {what}", flush=True)
            finally:
                server.terminate()
                _, said = server.communicate(timeout=60)
                print(f"{name}: {said.strip().splitlines()[-1]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{differed} outputs differed")
    return 1 if differed else 0


if __name__ == "__main__":
    sys.exit(main())
