#!/usr/bin/env python3
"""Edits that only move lines, on real servers: the merge that moves the previous model's places
(build._moved_lines) against the whole merge of the same facts.

Run from the repository root:

    .venv/bin/python bench/moved_lines.py                  # 60 edits of each server
    .venv/bin/python bench/moved_lines.py --edits 200 --seed 7

The servers are bench/analyze.py's (lighttpd 1.4.69 and nginx 1.22.1, Debian source packages
fetched and configured once into bench/.data/).  Each is copied to a temporary directory and all
its units parsed; then, one at a time, a random unit's file gets a random edit that moves lines (a
blank line or a comment line put in, or a blank line taken out, at a random line that does not
continue a macro) or makes a line longer (a `//` comment at its end: nothing moves but the bytes
after it, and with them the slots of local variables, which name their offsets), the unit is
parsed again, and the program is merged twice: with the previous
merge (build.merge(units, previous), which takes the moved-lines path when the edit only moved
lines) and whole (build.merge(units)).  The two must be equal: the model, its diagnostics, the
merge's own diagnostics per function, the files' components and the frequencies.  The next edit
starts from the merge with the previous one, as a run after an edit does.

Printed per server: how many edits took the moved-lines path, how many were merged whole (the
edit changed more than places: an unnamed struct's type names its place, a local variable's USR
in a struct type ...), the median time of each path and of the whole merge, and every mismatch
(none expected).  Exit status 1 when any merge differs, 0 otherwise (the times are information).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import analyze as bench_analyze  # noqa: E402 (bench/analyze.py: the servers, fetched and configured)

from qtool.analyzer import build, unit  # noqa: E402


def edit(path: str, rng: random.Random) -> str | None:
    """A random edit of the file that moves lines, made; what it was (None: none could be made)."""
    with open(path) as f:
        lines = f.read().split("\n")
    kind = rng.choice(("blank line added", "comment line added", "blank line taken out", "two lines added",
                       "a line made longer"))
    if kind == "a line made longer":
        at = rng.randrange(len(lines))
        if lines[at].rstrip().endswith("\\"):
            return None             # a line a backslash continues: the comment would end it
        lines[at] += " // longer"   # no line moves; what follows on later lines does, in bytes
    elif kind == "blank line taken out":
        blanks = [i for i, line in enumerate(lines) if not line.strip() and
                  not (i > 0 and lines[i - 1].rstrip().endswith("\\"))]
        if not blanks:
            return None
        at = rng.choice(blanks)
        del lines[at]
    else:
        at = rng.randrange(len(lines))
        if at > 0 and lines[at - 1].rstrip().endswith("\\"):
            return None             # inside a macro's continuation lines: that would change it
        lines[at:at] = {"blank line added": [""], "comment line added": ["/* a comment */"],
                        "two lines added": ["", "// and another"]}[kind]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return f"{kind} at line {at + 1}"


def same(a: build.Merge, b: build.Merge) -> bool:
    return (a.model == b.model and a.model.diagnostics == b.model.diagnostics and
            a.function_diagnostics == b.function_diagnostics and a.file_components == b.file_components and
            a.frequencies[1] == b.frequencies[1])


def server_check(server, edits: int, seed: int, tmp: str) -> tuple[dict, list[str]]:
    root, items = bench_analyze.server_copy(server, tmp)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        units = [unit.parse_unit(p, a) for p, a in items]
        previous = build.merge(units)
        rng = random.Random(seed)
        times: dict[str, list[float]] = {"moved": [], "whole merge, with the previous": [], "whole merge": []}
        counts = {"moved lines": 0, "merged whole": 0, "edits": 0}
        bad = []
        while counts["edits"] < edits:
            i = rng.randrange(len(items))
            what = edit(items[i][0], rng)
            if what is None:
                continue
            counts["edits"] += 1
            now = list(previous.units)
            now[i] = unit.parse_unit(*items[i])
            t0 = time.perf_counter()
            again = build.merge(now, previous)
            t1 = time.perf_counter()
            whole = build.merge(now)
            t2 = time.perf_counter()
            took = not build._mostly_changed(now, previous) and build._moved_lines(now, previous) is not None
            counts["moved lines" if took else "merged whole"] += 1
            times["moved" if took else "whole merge, with the previous"].append(t1 - t0)
            times["whole merge"].append(t2 - t1)
            if not same(again, whole):
                bad.append(f"{os.path.relpath(items[i][0], root)}: {what}: "
                           f"{'moved lines' if took else 'merged whole'}, and the two merges differ")
            previous = again
    finally:
        os.chdir(cwd)
    return {**counts, **{k: statistics.median(v) for k, v in times.items() if v}}, bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--edits", type=int, default=60, help="edits of each server (default 60)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    gc.disable()        # as the analysis runs (analyzer.analysis)
    tmp = tempfile.mkdtemp(prefix="qtool-moved-")
    failed = False
    try:
        print(f"edits that only move lines (bench/moved_lines.py): {args.edits} edits a server, seed {args.seed}")
        for server in bench_analyze.fetched_servers():
            found, bad = server_check(server, args.edits, args.seed, tmp)
            ms = {k: f"{v * 1000:.1f} ms" for k, v in found.items() if isinstance(v, float)}
            print(f"  {server.name} {server.version} ({len(server.units)} units): {found['edits']} edits, "
                  f"{found['moved lines']} took the moved-lines path, {found['merged whole']} were merged whole; "
                  f"medians: {', '.join(f'{k} {v}' for k, v in ms.items())}; "
                  f"{'every merge equal to the whole merge' if not bad else f'{len(bad)} MISMATCHES'}")
            for line in bad:
                print(f"    {line}")
            failed = failed or bool(bad)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
