"""The cut stage's speed on a synthetic program: 10,000 functions in 250 components.

    .venv/bin/python bench/cut.py [--functions 10000] [--components 250] [--seed 1]

Builds a ProgramModel in memory (a call graph where most calls stay inside a component and some
cross), then times qtool's cut for one suspect (a minimum s-t cut) and for three (a multiway cut).
Target: <= 2 s.  Exits 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from qtool import cut  # noqa: E402
from qtool.model import CallEdge, CallSite, Component, Function, Location, ProgramModel  # noqa: E402

from machine import cpu_model  # noqa: E402  (bench/machine.py)


def synthetic(n_functions: int, n_components: int, seed: int) -> ProgramModel:
    rng = random.Random(seed)
    functions, members = [], {}
    for i in range(n_functions):
        comp = "main_c" if i == 0 else f"c{i % n_components}"
        name = "main" if i == 0 else f"f{i}"
        usr = f"c:@F@{name}"
        functions.append(Function(usr, name, comp, Location(f"{comp}.c", i + 1, 1), True, "external", False,
                                  "int", "Bint", (), (), (Location(f"{comp}.c", i + 1, 1),), 1.0))
        members.setdefault(comp, []).append(usr)
    edges = []
    for i in range(1, n_functions):
        for _ in range(3):
            j = rng.randrange(n_functions)
            if rng.random() < 0.8:      # most calls stay in the component
                j = (j // n_components) * n_components + i % n_components
                j = min(max(j, 1), n_functions - 1)
            site = CallSite(Location("x.c", i, 1), 0, 0, 1.0)
            edges.append(CallEdge(functions[i].usr, functions[j].usr, (site,), rng.random() * 10))
    for k in range(1, 40):
        site = CallSite(Location("main_c.c", 1, k), 0, 0, 1.0)
        edges.append(CallEdge("c:@F@main", functions[rng.randrange(1, n_functions)].usr, (site,), 1.0))
    components = tuple(Component(c, tuple(u), (f"{c}.c",)) for c, u in sorted(members.items()))
    return ProgramModel(components, tuple(functions), tuple(edges), (), (), (), ())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--functions", type=int, default=10_000)
    ap.add_argument("--components", type=int, default=250)
    ap.add_argument("--seed", type=int, default=1)
    opts = ap.parse_args()
    t0 = time.perf_counter()
    model = synthetic(opts.functions, opts.components, opts.seed)
    t1 = time.perf_counter()
    costs = cut.Costs(150.0, 0.1, "fixed")
    one = cut.suggest(model, ["c7"], costs)
    t2 = time.perf_counter()
    three = cut.suggest(model, ["c7", "c42", "c99"], costs)
    t3 = time.perf_counter()
    print("Cut benchmark (bench/cut.py)")
    print(f"command:  {os.path.relpath(sys.executable)} bench/cut.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine:  {os.cpu_count()} cores, {cpu_model()}")
    print(f"program:  {len(model.functions)} functions, {len(model.components)} components, "
          f"{len(model.edges)} call edges (built in {t1 - t0:.2f} s)")
    print(f"one suspect (s-t cut):        {t2 - t1:6.3f} s  {one.bound}; "
          f"{len(one.candidates[0].cut)} edges cut  {'PASS' if t2 - t1 <= 2 else 'MISS'} (<= 2 s)")
    print(f"three suspects (multiway):    {t3 - t2:6.3f} s  {three.bound}; "
          f"{len(three.candidates[0].cut)} edges cut  {'PASS' if t3 - t2 <= 2 else 'MISS'} (<= 2 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
