#!/usr/bin/env python3
"""The analysis's split parse on big C files of other projects: each unit's facts parsed whole
against parsed split by function bodies, which must be the same.

Run from the repository root:

    .venv/bin/python bench/split_real.py

The files are the C sources of 256 KiB or more in four source distributions from PyPI, fetched
once into bench/.data/ (git-ignored) with `pip download --no-deps --no-binary :all:`:

  * cytoolz 1.2.0      - Cython's output (itertoolz.c 2.5 MB, functoolz.c 1.5 MB …): Python.h only
  * lxml 6.1.3         - Cython's output again, etree.c of 12.5 MB among them (libxml2's and
                         libxslt's headers needed: Debian's libxml2-dev and libxslt1-dev)
  * quickjs 1.19.4     - QuickJS, a JavaScript engine in one 1.7 MB file whose opcode table is
                         built in a function's body by #including a file
  * regex 2026.11.19   - the regex module: a regex engine, and a 1.9 MB file of Unicode tables

Each file is analysed as a unit parsed alone (unit.parse_unit(isolated=True), as `qtool analyze
FILE` does), once with the split turned off (QPM_SPLIT_BYTES=-1) and once forced on for any size
(QPM_SPLIT_BYTES=0); the facts (all but the files read) must be equal, the diagnostics in any
order.  Printed per file: its size, whether the split was kept (a file the split cannot be trusted
with is parsed whole, which costs the split's attempt), the wall time of each parse, the errors
libclang reported (a file that does not parse here is left out) and whether the facts agree.
Exit status 1 when any file's facts differ, 0 otherwise (the times are information).
"""

from __future__ import annotations

import argparse
import gc
import glob
import os
import sys
import sysconfig
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import analyze as bench_analyze  # noqa: E402 (bench/analyze.py: fetching sdists)
from qtool.analyzer import unit  # noqa: E402

DATA = bench_analyze.DATA

PYTHON_INCLUDE = sysconfig.get_paths()["include"]

# name: (version, the sources' directory in the sdist, the flags each of its files gets)
PROJECTS = {
    "cytoolz": ("1.2.0", "cytoolz-1.2.0/cytoolz", ["-I", PYTHON_INCLUDE]),
    "lxml": ("6.1.3", "lxml-6.1.3/src/lxml", ["-I", PYTHON_INCLUDE, "-I", "/usr/include/libxml2",
                                             "-I", "{dir}/includes", "-I", "{dir}"]),
    "quickjs": ("1.19.4", "quickjs-1.19.4/upstream-quickjs", ["-D_GNU_SOURCE", '-DCONFIG_VERSION="bench"',
                                                             "-DCONFIG_BIGNUM"]),
    "regex": ("2026.11.19", "regex-2026.11.19/src", ["-I", PYTHON_INCLUDE]),
}
BIG = 256 * 1024


def fetch() -> None:
    try:
        bench_analyze.fetch_sdists({name: (version, f"{name}-{version}") for name, (version, _, _) in PROJECTS.items()})
    except bench_analyze.BenchError as e:
        sys.exit(str(e))


def facts_of(path: str, flags: tuple[str, ...], split: bool) -> tuple[object, bool, float]:
    """The unit's facts, whether the split was kept, and the wall time."""
    os.environ["QPM_SPLIT_BYTES"] = "0" if split else "-1"
    kept: list = []
    real = unit._walk_split

    def spy(*args):
        rc = real(*args)
        kept.append(rc is not None)
        return rc
    unit._walk_split = spy
    try:
        t = time.perf_counter()
        facts = unit.parse_unit(path, flags, isolated=True)
        return facts, bool(kept and kept[-1]), time.perf_counter() - t
    finally:
        unit._walk_split = real


def said(facts) -> dict:
    return {k: sorted(map(repr, v)) if k == "diagnostics" else v for k, v in vars(facts).items() if k != "deps"}


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    gc.disable()            # as the analysis runs
    fetch()
    differ = 0
    print(f"the split parse on other projects' big files (bench/split_real.py): whole against split, facts compared")
    print(f"{'file':44} {'KiB':>6}  {'split':>9}  {'whole s':>7}  {'split s':>7}  errors  facts")
    for name, (version, sub, flags) in PROJECTS.items():
        directory = os.path.join(DATA, f"{name}-{version}", *sub.split("/")[1:])
        args = tuple(f.replace("{dir}", directory) for f in flags)
        for path in sorted(glob.glob(os.path.join(directory, "**", "*.c"), recursive=True)):
            if os.path.getsize(path) < BIG:
                continue
            whole, _, t_whole = facts_of(path, args, split=False)
            errors = sum(d.severity == "error" for d in whole.diagnostics)
            shown = f"{name}/{os.path.relpath(path, directory)}"
            if errors:
                print(f"{shown:44} {os.path.getsize(path) // 1024:6}  left out: {errors} errors in its parse here")
                continue
            split, kept, t_split = facts_of(path, args, split=True)
            same = said(whole) == said(split)
            differ += not same
            print(f"{shown:44} {os.path.getsize(path) // 1024:6}  {'kept' if kept else 'whole':>9}  {t_whole:7.2f}  "
                  f"{t_split:7.2f}  {errors:6}  {'the same' if same else 'DIFFERENT'}")
    print(f"{differ} file(s) whose facts differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
