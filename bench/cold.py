#!/usr/bin/env python3
"""Cold analyses, this tree against another revision, side by side: `qtool analyze` with an empty
cache of each tree in turn, and `gcc -fsyntax-only` over the same files, round after round.

Run from the repository root:

    .venv/bin/python bench/cold.py --against REV                    # sqlite3.c, zstd.c, lighttpd
    .venv/bin/python bench/cold.py --against REV --rounds 9 sqlite3.c zstd.c both nginx

The programs are bench/analyze.py's, fetched into bench/.data/ once: sqlite3.c and zstd.c alone,
`both` (the two as one program, parsed by two workers), and the servers lighttpd and nginx.  REV
is qtool as `git archive` gives it (bench/loop.py's checkout).  Each round runs gcc, then the two
trees in an order that switches each round; every qtool run starts from a cache that holds only
its tree's compiled walker, and its cache writers are waited for (untimed) before the next run.

Printed per program: the median wall time of each, its spread, each tree's median over gcc's,
and the median of the rounds' ratios this tree / REV (paired: the rounds' noise mostly cancels);
then each tree's time over the gcc run of the same round, as a median and its range.
Exit status 0 whatever the numbers are (this is a measurement), 1 when a run failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import analyze as bench_analyze  # noqa: E402 (bench/analyze.py: the programs, gcc's runs, the subreaper)
from loop import checkout  # noqa: E402 (bench/loop.py: qtool as it was at a revision)

PROGRAMS = ("sqlite3.c", "zstd.c", "both", "lighttpd", "nginx")


def program(name: str) -> dict[str, list[str]]:
    """A program's units, each with its flags."""
    if name in ("sqlite3.c", "zstd.c", "both"):
        bench_analyze.fetch()
        units = {bench_analyze.SQLITE_C: bench_analyze.sqlean_flags(bench_analyze.SQLEAN),
                 bench_analyze.ZSTD_C: bench_analyze.zstd_flags()}
        return units if name == "both" else {u: f for u, f in units.items() if os.path.basename(u) == name}
    server = next(s for s in bench_analyze.fetched_servers() if s.name == name)
    return {u: server.flags[u] for u in server.units}


class Tree:
    """A qtool to run: this tree's, or one checked out; its runs in caches holding its walker."""

    def __init__(self, label: str, root: str, tmp: str):
        self.label, self.root = label, root
        self.tools = bench_analyze.Tools(os.path.join(tmp, label), os.cpu_count() or 1)
        self.tools.qtool = [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                            "from qtool.cli import console; console()", root]
        os.makedirs(self.tools.warm_cache)
        subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(root, "qtool")],
                       check=True, timeout=300, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", required=True, metavar="REV", help="the git revision to measure beside this tree")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("programs", nargs="*", metavar="PROGRAM",
                    help=f"of {', '.join(PROGRAMS)} (default sqlite3.c zstd.c lighttpd)")
    opts = ap.parse_args()
    names = opts.programs or ["sqlite3.c", "zstd.c", "lighttpd"]
    for name in names:
        if name not in PROGRAMS:
            ap.error(f"no program {name!r} (there are {', '.join(PROGRAMS)})")
    bench_analyze.become_subreaper()
    tmp = tempfile.mkdtemp(prefix="qtool-cold-")
    try:
        trees = [Tree("this tree", REPO, tmp),
                 Tree(f"at {opts.against}", checkout(opts.against, os.path.join(tmp, "rev")), tmp)]
        print(f"cold `qtool analyze` against gcc -fsyntax-only (bench/cold.py), {opts.rounds} rounds, "
              f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
        print(f"{'program':<10} {'units':>5} {'gcc s':>6}  " +
              "  ".join(f"{t.label + ' s':>19} {'/ gcc':>6}" for t in trees) + "  this / REV (paired)")
        for name in names:
            units = program(name)
            ccdb = os.path.join(tmp, f"{len(os.listdir(tmp))}.json")
            bench_analyze.write_ccdb(ccdb, units)
            files = list(units)
            for tree in trees:          # compiles the walker, and brings the files into the page cache
                tree.tools.qtool_run(files, ccdb, tree.tools.warm_cache)
            gcc, walls = [], {t.label: [] for t in trees}
            for r in range(opts.rounds):
                gcc.append(trees[0].tools.gcc_run(files, units).wall)
                for tree in (trees if r % 2 == 0 else trees[::-1]):
                    walls[tree.label].append(tree.tools.qtool_run(files, ccdb, tree.tools.fresh_cache()).wall)
            g = statistics.median(gcc)
            cells = []
            for tree in trees:
                w = walls[tree.label]
                cells.append(f"{f'{statistics.median(w):.3f} ({min(w):.3f}-{max(w):.3f})':>19} "
                             f"{statistics.median(w) / g:6.2f}")
            paired = statistics.median(a / b for a, b in zip(*walls.values()))
            print(f"{name:<10} {len(files):>5} {g:6.3f}  " + "  ".join(cells) + f"  {paired:.3f}")
            # Each round's qtool over the gcc run just before it: gcc's own speed moves between
            # rounds (5 to 20% in an hour here), and both move with the machine.
            by_round = []
            for tree in trees:
                ratios = [w / c for w, c in zip(walls[tree.label], gcc)]
                by_round.append(f"{tree.label} {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
            print(f"{'':<10} each round / its gcc: " + ", ".join(by_round))
        return 0
    except (bench_analyze.BenchError, subprocess.CalledProcessError) as e:
        print(f"bench/cold.py: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
