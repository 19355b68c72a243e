#!/usr/bin/env python3
"""The merge and what follows it (the checks and the text output), on real programs: this tree
against another revision, side by side.

Run from the repository root:

    .venv/bin/python bench/merge.py --against REV              # 5 rounds
    .venv/bin/python bench/merge.py --against REV --instructions

The programs are bench/analyze.py's: sqlite3.c and zstd.c alone, lighttpd 1.4.69 (79 units) and
nginx 1.22.1 (169 units), fetched into bench/.data/ once.  Each program's units are parsed once, by
this tree, and their facts saved; then each revision (this tree, and REV as `git archive` gives it)
merges the same facts in a process of its own, the two alternating round by round, the order
switching each round.  A process merges its program once untimed, then `--merges` times, and
reports the fastest merge, and the fastest `qtool analyze` checks and text output of a model merged
anew (the checks with an empty cache of earlier findings: as a cold run does them).

With --instructions each revision's merge is also counted under valgrind's callgrind: the
instructions of two merges less those of one, the same count on every run of the same code and
facts (a figure the machine's noise does not move, where the times above move by 10% between
rounds).

Printed per program: its units and functions, each revision's median over the rounds, and their
ratio.  Both revisions must make the same model (its text and JSON output compared by digest):
exit status 1 when they do not, 0 otherwise (the times are information).  REV must read the facts
this tree's parse writes (the unit.UnitFacts of the same fields).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import analyze as bench_analyze  # noqa: E402 (bench/analyze.py: the programs, fetched and configured)
from loop import checkout  # noqa: E402 (bench/loop.py: qtool as it was at a revision)

# Run by each revision, in a process of its own (its qtool first on sys.path): merges the facts
# in argv[1], argv[2] times after one untimed merge, then checks and prints a model merged anew.
CHILD = r"""
import gc, hashlib, json, os, pickle, shutil, sys, tempfile, time
gc.disable()
cache = tempfile.mkdtemp(prefix="qtool-merge-cache-")
os.environ["QPM_CACHE_DIR"] = cache
from qtool import output
from qtool.analyzer import build
from qtool.commands import analyze
facts_file, merges = sys.argv[1], int(sys.argv[2])
with open(facts_file, "rb") as f:
    units = pickle.load(f)
build.merge(units)
best = {"merge": [], "checks": [], "text": []}
for _ in range(max(1, merges)):
    shutil.rmtree(cache, ignore_errors=True)
    t0 = time.perf_counter()
    model = build.merge(units).model
    t1 = time.perf_counter()
    checked = analyze.diagnose(model)
    t2 = time.perf_counter()
    text = output.model_text(checked, "/")
    t3 = time.perf_counter()
    for k, dt in zip(best, (t1 - t0, t2 - t1, t3 - t2)):
        best[k].append(dt)
    del model
digest = hashlib.sha256((text + output.model_json(checked, "/", False, {})).encode()).hexdigest()
shutil.rmtree(cache, ignore_errors=True)
print(json.dumps({**{k: min(v) for k, v in best.items()}, "digest": digest,
                  "functions": len(checked.functions)}))
"""

# The same merges counted by callgrind: argv[2] merges of the facts, nothing else timed.
COUNTED = r"""
import gc, pickle, sys
gc.disable()
from qtool.analyzer import build
with open(sys.argv[1], "rb") as f:
    units = pickle.load(f)
for _ in range(int(sys.argv[2])):
    build.merge(units)
"""


def _parse(item):
    from qtool.analyzer import unit
    return pickle.dumps(unit.parse_unit(*item), protocol=pickle.HIGHEST_PROTOCOL)


def programs() -> list[tuple[str, list[tuple[str, tuple[str, ...]]]]]:
    """(name, [(unit, its flags)]) of each program measured."""
    bench_analyze.fetch()
    out = [("sqlite3.c", [(bench_analyze.SQLITE_C, tuple(bench_analyze.sqlean_flags(bench_analyze.SQLEAN)))]),
           ("zstd.c", [(bench_analyze.ZSTD_C, tuple(bench_analyze.zstd_flags()))])]
    for server in bench_analyze.fetched_servers():
        out.append((f"{server.name} {server.version}", [(u, tuple(server.flags[u])) for u in server.units]))
    return out


def save_facts(items: list[tuple[str, tuple[str, ...]]], path: str) -> None:
    """The units parsed (two at a time, as the analyzer's workers do), their facts saved."""
    from qtool.analyzer import clang_env
    clang_env.walker()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        facts = [pickle.loads(b) for b in pool.map(_parse, items)]
    with open(path, "wb") as f:
        pickle.dump(facts, f, protocol=pickle.HIGHEST_PROTOCOL)


def child_env(tree: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=tree, PYTHONDONTWRITEBYTECODE="")


def run_child(tree: str, facts: str, merges: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, facts, str(merges)], env=child_env(tree), cwd=tree,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        sys.exit(f"merging in {tree} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def instructions(tree: str, facts: str) -> int:
    """The instructions of one merge: callgrind's count of two merges less that of one."""
    counts = []
    for n in (1, 2):
        proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                               sys.executable, "-c", COUNTED, facts, str(n)],
                              env=child_env(tree), cwd=tree, capture_output=True, text=True, timeout=1800)
        found = [line for line in proc.stderr.splitlines() if "Collected" in line]
        if proc.returncode != 0 or not found:
            sys.exit(f"callgrind in {tree} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        counts.append(int(found[-1].split()[-1]))
    return counts[1] - counts[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", required=True, metavar="REV", help="the revision to compare this tree with")
    ap.add_argument("--rounds", type=int, default=5, help="rounds, each revision once a round (default 5)")
    ap.add_argument("--merges", type=int, default=3, help="timed merges in each process, the fastest kept")
    ap.add_argument("--instructions", action="store_true", help="also count each merge's instructions (callgrind)")
    args = ap.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        sys.exit("--instructions needs valgrind")
    tmp = tempfile.mkdtemp(prefix="qtool-merge-")
    failed = False
    try:
        trees = {"this tree": REPO, f"at {args.against}": checkout(args.against, os.path.join(tmp, "against"))}
        for tree in trees.values():     # each tree's modules compiled once, not in every process
            subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(tree, "qtool")],
                           capture_output=True, timeout=300)
        rows = []
        for name, items in programs():
            facts = os.path.join(tmp, f"facts-{len(rows)}.pickle")
            print(f"  parsing {name} ({len(items)} units) ...", file=sys.stderr)
            save_facts(items, facts)
            got: dict[str, list[dict]] = {label: [] for label in trees}
            for r in range(args.rounds):
                order = list(trees) if r % 2 == 0 else list(reversed(trees))
                for label in order:
                    got[label].append(run_child(trees[label], facts, args.merges))
            counted = {label: instructions(tree, facts) for label, tree in trees.items()} if args.instructions else {}
            rows.append((name, len(items), got, counted))
            os.unlink(facts)
        this, other = list(trees)
        print(f"merge, checks and text output (bench/merge.py): this tree against {args.against}, "
              f"median of {args.rounds} rounds, each the fastest of {args.merges} merges, ms")
        header = f"{'program':22} {'units':>5} {'functions':>9}  {'stage':7} {this:>10} {other:>14} {'ratio':>6}"
        print(header)
        for name, units, got, counted in rows:
            digests = {g["digest"] for label in got for g in got[label]}
            same = len(digests) == 1
            failed = failed or not same
            for k, stage in enumerate(("merge", "checks", "text")):
                a = statistics.median(g[stage] for g in got[this]) * 1000
                b = statistics.median(g[stage] for g in got[other]) * 1000
                print(f"{name if k == 0 else '':22} {units if k == 0 else '':>5} "
                      f"{got[this][0]['functions'] if k == 0 else '':>9}  {stage:7} {a:10.1f} {b:14.1f} "
                      f"{a / b if b else float('nan'):6.3f}")
            if counted:
                a, b = counted[this], counted[other]
                print(f"{'':22} {'':>5} {'':>9}  {'instr.':7} {a / 1e6:9.1f}M {b / 1e6:13.1f}M {a / b:6.3f}")
            if not same:
                print(f"{'':22} the two revisions' models DIFFER (text and JSON)")
        print("same model from both revisions: " + ("no" if failed else "yes, every program"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
