"""Static estimates of how often code runs, in the spirit of Wu and Larus's heuristics.

A call site's local weight is how often it runs per run of its function: a loop multiplies by
LOOP_TRIPS, a conditional arm by BRANCH_TAKEN.  A function's frequency is how often it runs per run
of the program: entry points (main, and functions nothing in the program calls, such as thread
bodies and callbacks handed to libraries) run once; every other function runs as often as its call
sites do.  The estimate is solved over the strongly connected components of the call graph in
topological order; recursion is assumed to terminate, so a cycle's own multipliers are damped to
keep each trip round it below RECURSION_BOUND.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

LOOP_TRIPS = 10.0
BRANCH_TAKEN = 0.5
RECURSION_BOUND = 0.9


@lru_cache(maxsize=None)
def local_weight(loops: int, branches: int) -> float:
    """A call site's runs per run of its function (the merge asks once for each of a program's
    tens of thousands of call sites, of a few dozen kinds)."""
    return LOOP_TRIPS ** loops * BRANCH_TAKEN ** branches


def _sccs(nodes: list[str], succ: dict[str, dict[str, float]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components come out callees first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ.get(w, ()))))
                    advanced = True
                    break
                if w in on_stack and index[w] < low[v]:
                    low[v] = index[w]
            if advanced:
                continue
            work.pop()
            if work:
                u = work[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def frequencies(nodes: list[str], succ: dict[str, dict[str, float]],
                entries: set[str]) -> dict[str, float]:
    """Runs per program run of every node, given per-call multipliers succ[u][v]."""
    pred: dict[str, dict[str, float]] = defaultdict(dict)
    for u, vs in succ.items():
        for v, m in vs.items():
            pred[v][u] = m
    freq = {n: 0.0 for n in nodes}
    for comp in reversed(_sccs(nodes, succ)):      # callers first
        if len(comp) == 1 and comp[0] not in pred[comp[0]]:
            # A function no cycle goes through (most of them): what its callers give it.
            v = comp[0]
            freq[v] = (1.0 if v in entries else 0.0) + sum([freq[u] * m for u, m in pred[v].items()])
            continue
        members = set(comp)
        base = {v: (1.0 if v in entries else 0.0) +
                sum(freq[u] * m for u, m in pred[v].items() if u not in members)
                for v in comp}
        internal = {v: {u: m for u, m in pred[v].items() if u in members} for v in comp}
        if not any(internal.values()):
            freq.update(base)
            continue
        # Damp the cycle so that the fixed point exists, then iterate to it.
        heaviest = max(sum(succ[u][v] for v in succ.get(u, {}) if v in members) for u in comp)
        scale = min(1.0, RECURSION_BOUND / heaviest) if heaviest > 0 else 1.0
        x = dict(base)
        into = [(v, base[v], list(internal[v].items())) for v in comp]
        for _ in range(100):
            nxt = {v: b + sum([x[u] * m * scale for u, m in pairs]) for v, b, pairs in into}
            done = all(abs(nxt[v] - x[v]) <= 1e-9 * max(1.0, nxt[v]) for v in comp)
            x = nxt
            if done:
                break
        freq.update(x)
    return freq
