"""Stage: where to cut.  Components that must be isolated -> the cheapest domains that isolate them.

    suggest(model, isolate, costs, profile=None) -> Suggestion

The program is a weighted graph of components: an edge's weight is what crossing it would cost
per run of the program, expected crossings (static weights, or measured calls from stats files)
times the cost of one crossing (a fixed cost plus bytes copied, measured on this machine: see
costs.py).  Every suspect gets a domain of its own; the main program (the component holding
main()) stays where it is; every other component joins the side it is cheapest to join.  With one
suspect that is a minimum s-t cut; with several, a minimum multiway cut, solved exactly by
enumeration when the graph is small and otherwise by the isolating-cut heuristic (each terminal
cut from all the others by one min cut; the union of all but the heaviest is within 2 - 2/k of
the optimum, Dahlhaus et al. 1994).

Hard constraints: components that write a non-shared global used by another stay together, and
an edge whose signatures cannot be marshalled cannot be cut; both become edges of infinite
weight, and a requested isolation that would need one is refused with the reason.  Only this
module imports networkx; it returns model-level results.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import networkx as nx

from . import marshal
from .errors import UserError
from .model import ProgramModel

EXACT_LIMIT = 200_000       # assignments enumerated at most for an exact multiway cut
UNCUTTABLE = 1e18           # the capacity of an edge that must not be cut (finite, for max-flow)


@dataclass(frozen=True)
class Costs:
    ns_per_call: float
    ns_per_byte: float
    source: str = "default"


@dataclass(frozen=True)
class CutEdge:
    a: str
    b: str
    crossings: float        # per run
    bytes: float            # per run
    cost_ns: float          # per run
    functions: tuple[str, ...]


@dataclass(frozen=True)
class CallCut:
    """The detailed view: one call between functions that the cut makes a crossing."""

    caller: str
    callee: str
    caller_component: str
    callee_component: str
    crossings: float        # per run


@dataclass(frozen=True)
class Candidate:
    name: str
    domains: tuple[tuple[str, tuple[str, ...]], ...]     # (domain, components)
    cut: tuple[CutEdge, ...]
    crossings: float
    cost_ns: float
    why: str
    calls: tuple[CallCut, ...] = ()
    risk_ns: float = 0.0    # state put at risk: trusted components sharing a suspect's restarts


@dataclass(frozen=True)
class Suggestion:
    suspects: tuple[str, ...]
    main_component: str | None
    candidates: tuple[Candidate, ...]
    articulation_points: tuple[str, ...]
    costs: Costs
    bound: str
    notes: tuple[str, ...] = field(default=())


_SIZES = {"char": 1, "signed char": 1, "unsigned char": 1, "_Bool": 1, "short": 2, "unsigned short": 2,
          "int": 4, "unsigned int": 4, "float": 4, "long": 8, "unsigned long": 8, "long long": 8,
          "unsigned long long": 8, "double": 8}


def _element_size(enc: str) -> int:
    if enc == "V":
        return 1
    if enc.startswith("B"):
        return _SIZES.get(enc[1:], 8)
    return 64


def _edge_bytes(model: ProgramModel, callee: str, measured: dict[str, float] | None = None) -> float:
    """Bytes one call copies: measured (stats) when known, else from literal counts, else 64 per
    counted pointer."""
    f = model.function_map[callee]
    if measured and f.name in measured:
        return measured[f.name]
    total = 16.0
    for p in f.params:
        m, _ = marshal.classify_param(model, f, p, "note", "")
        if m is None:
            continue
        if m.kind in ("in", "out", "inout") and m.count:
            try:
                total += float(int(m.count, 0)) * _element_size(m.element)
            except ValueError:
                total += 64.0       # a count known only at run time: stats measure it
        elif m.kind == "string":
            total += 32.0
        else:
            total += 8.0
    return total


def component_graph(model: ProgramModel, costs: Costs, calls: dict[str, float] | None = None,
                    bytes_per_call: dict[str, float] | None = None) -> nx.Graph:
    """Components and what cutting between each two would cost per run (edge attribute 'cost')."""
    g = nx.Graph()
    fmap = model.function_map
    for c in model.components:
        g.add_node(c.name)
    measured = calls or {}
    by_callee_weight: dict[str, float] = {}
    for e in model.edges:
        by_callee_weight[e.callee] = by_callee_weight.get(e.callee, 0.0) + e.weight
    hosts = model.hosts
    for e in model.edges:
        b = fmap[e.callee].component
        if not b or marshal.is_direct_only(fmap[e.callee]):
            continue        # a call to a static function runs where its caller runs: it never crosses
        # A static caller runs with its own callers (ProgramModel.hosts): its calls count for
        # each of their components, shared evenly.
        callers = sorted(hosts.get(e.caller, ()))
        for a in callers:
            if a != b:
                _add_call(g, model, e, a, b, len(callers), measured, by_callee_weight, bytes_per_call)
    for a, b, data in g.edges(data=True):
        data["cost"] = data["crossings"] * costs.ns_per_call + data["bytes"] * costs.ns_per_byte
    # Components writing a non-shared global another component uses must share a process.
    for gl in model.globals:
        if gl.shared or marshal.read_only(gl.type) or not gl.writers:
            continue
        comps = sorted({c for u in (*gl.readers, *gl.writers) for c in hosts.get(u, ())})
        for a, b in itertools.combinations(comps, 2):
            data = g.get_edge_data(a, b) or {"crossings": 0.0, "bytes": 0.0, "functions": set(), "blocked": [],
                                              "cost": 0.0, "calls": []}
            data["blocked"] = data["blocked"] + [f"both use global '{gl.name}'"]
            g.add_edge(a, b, **data)
    for a, b, data in g.edges(data=True):
        data["capacity"] = UNCUTTABLE if data["blocked"] else data["cost"]
    return g


def _add_call(g: nx.Graph, model: ProgramModel, e, a: str, b: str, shares: int, measured: dict[str, float],
              by_callee_weight: dict[str, float], bytes_per_call: dict[str, float] | None) -> None:
    """Call edge e, made by code running in component a, onto the graph edge a-b (its share)."""
    fmap = model.function_map
    crossings = e.weight / shares
    name = fmap[e.callee].name
    if name in measured and by_callee_weight.get(e.callee):
        # Measured calls, shared among the callee's callers as the static weights share them.
        crossings = measured[name] * e.weight / by_callee_weight[e.callee] / shares
    nbytes = crossings * _edge_bytes(model, e.callee, bytes_per_call)
    data = g.get_edge_data(a, b) or {"crossings": 0.0, "bytes": 0.0, "functions": set(), "blocked": [],
                                      "calls": []}
    data["calls"].append(CallCut(fmap[e.caller].name, name, a, b, crossings))
    data["crossings"] += crossings
    data["bytes"] += nbytes
    data["functions"].add(name)
    problems = marshal.check_signature(model, fmap[e.callee], "error", "")
    if problems:
        data["blocked"].append(f"'{name}' cannot be marshalled ({problems[0].code})")
    g.add_edge(a, b, **data)


def _assignment_cost(g: nx.Graph, side: dict[str, str]) -> float:
    return sum(d["capacity"] for a, b, d in g.edges(data=True) if side[a] != side[b])


def _multiway(g: nx.Graph, terminals: list[str]) -> tuple[dict[str, str], str]:
    """Assigns every node to a terminal, minimising the weight of edges between terminals."""
    others = [n for n in g.nodes if n not in terminals]
    if len(terminals) ** len(others) <= EXACT_LIMIT:
        best, best_cost = None, float("inf")
        for choice in itertools.product(terminals, repeat=len(others)):
            side = dict(zip(others, choice))
            side.update({t: t for t in terminals})
            cost = _assignment_cost(g, side)
            if cost < best_cost:
                best, best_cost = side, cost
        return best, "exact (every assignment enumerated)"
    # Isolating cuts: each terminal against all the others merged into one sink.
    cuts = []
    for t in terminals:
        h = g.copy()
        sink = "\0sink"
        h.add_node(sink)
        for o in terminals:
            if o != t:
                h.add_edge(o, sink, capacity=UNCUTTABLE)
        value, (reach, _) = nx.minimum_cut(h, t, sink, capacity="capacity")
        cuts.append((value, t, reach - {sink}))
    cuts.sort(key=lambda c: c[0])
    side = {n: None for n in g.nodes}
    for _, t, reach in cuts[:-1]:       # all but the heaviest
        for n in reach:
            if side[n] is None:
                side[n] = t
    heaviest = cuts[-1][1]
    for n in side:
        if side[n] is None:
            side[n] = heaviest
    k = len(terminals)
    return side, f"isolating cuts, within {2 - 2 / k:.2f}x of the optimum"


def _candidate(g: nx.Graph, name: str, side: dict[str, str], suspects: list[str], why: str) -> Candidate:
    cut, crossings, cost, risk = [], 0.0, 0.0, 0.0
    for a, b, d in g.edges(data=True):
        if side[a] != side[b]:
            if d["blocked"]:
                raise UserError(f"isolating {', '.join(suspects)} this way separates '{a}' and '{b}', "
                                f"which must stay together: {'; '.join(d['blocked'])}")
            risk += d.get("risk", 0.0)
            if d["crossings"] or d["cost"]:
                cut.append(CutEdge(a, b, d["crossings"], d["bytes"], d["cost"], tuple(sorted(d["functions"]))))
            crossings += d["crossings"]
            cost += d["cost"]
    domains = tuple((f"{s}_iso", tuple(sorted(n for n, t in side.items() if t == s))) for s in suspects)
    return Candidate(name, domains, tuple(sorted(cut, key=lambda e: -e.cost_ns)), crossings, cost, why,
                     _call_cuts(g, side), risk)


def _call_cuts(g: nx.Graph, side: dict[str, str]) -> tuple[CallCut, ...]:
    """The function-level edges behind the component edges a cut crosses, heaviest first."""
    out = []
    for a, b, d in g.edges(data=True):
        if side[a] != side[b]:
            out += d.get("calls", [])
    return tuple(sorted(out, key=lambda c: (-c.crossings, c.caller, c.callee)))


def suggest(model: ProgramModel, suspects: list[str], costs: Costs,
            calls: dict[str, float] | None = None, bytes_per_call: dict[str, float] | None = None,
            risk: dict[str, float] | None = None) -> Suggestion:
    """risk[c]: what it costs (ns per run) to put component c in a suspect's domain, where the
    suspect's faults restart it too and lose its state; an edge from c to main carries it, so
    that a cut taking c along pays for it."""
    known = {c.name for c in model.components}
    for s in suspects:
        if s not in known:
            raise UserError(f"no component '{s}' in the program (components: {', '.join(sorted(known))})")
    main = next((f.component for f in model.functions if f.name == "main" and f.defined), None)
    if main in suspects:
        raise UserError(f"component '{main}' holds main() and cannot be isolated")
    g = component_graph(model, costs, calls, bytes_per_call)
    points = tuple(sorted(nx.articulation_points(g))) if g.number_of_nodes() > 2 else ()
    for c, value in (risk or {}).items():
        if main and c in g and c != main and c not in suspects and value > 0:
            d = g.get_edge_data(c, main) or {"crossings": 0.0, "bytes": 0.0, "functions": set(), "blocked": [],
                                              "cost": 0.0, "calls": [], "capacity": 0.0}
            d["risk"] = d.get("risk", 0.0) + value
            d["capacity"] = min(UNCUTTABLE, d["capacity"] + value)
            g.add_edge(c, main, **d)
    terminals = list(suspects) + ([main] if main else [])
    if len(terminals) < 2:
        side = {n: (suspects[0] if n == suspects[0] else "\0rest") for n in g.nodes}
        bound = "trivial"
    elif len(terminals) == 2:
        value, (reach, _) = nx.minimum_cut(g, terminals[0], terminals[1], capacity="capacity")
        if value >= UNCUTTABLE:
            raise UserError(f"'{terminals[0]}' cannot be separated from '{terminals[1]}': every way apart "
                            "crosses an edge that must not be cut (a global both use, or a signature that "
                            "cannot be marshalled)")
        side = {n: (terminals[0] if n in reach else terminals[1]) for n in g.nodes}
        bound = "exact (minimum s-t cut)"
    else:
        side, bound = _multiway(g, terminals)
    best = _candidate(g, "cheapest", side, suspects,
                      "each suspect with the components that are cheaper to take along than to cut off")
    naive_side = {n: (n if n in suspects else main or "\0rest") for n in g.nodes}
    candidates = [best]
    try:
        naive = _candidate(g, "suspects alone", naive_side, suspects,
                           "only the suspects, every other component left with main")
        if naive.domains != best.domains:
            candidates.append(naive)
    except UserError as e:
        notes = (f"isolating the suspects alone is impossible: {e.message}",)
    else:
        notes = ()
    candidates.sort(key=lambda c: c.cost_ns + c.risk_ns)
    return Suggestion(tuple(suspects), main, tuple(candidates), points, costs, bound, notes)


def dot_functions(model: ProgramModel, s: Suggestion) -> str:
    """The detailed picture: functions inside their components inside their domains; the calls
    the cut makes crossings red, labelled with their crossings per run."""
    best = s.candidates[0]
    placed = {c: d for d, comps in best.domains for c in comps}
    crossing = {(c.caller, c.callee): c for c in best.calls}
    fmap = model.function_map
    lines = ["digraph quarantine {", '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9];', "  compound=true;"]
    domains: dict[str, list] = {}
    for comp in model.components:
        domains.setdefault(placed.get(comp.name, "main"), []).append(comp)
    for d, comps in sorted(domains.items()):
        lines.append(f'  subgraph "cluster_d_{d}" {{ label="{d}"; color={"red" if d != "main" else "gray"};')
        for comp in comps:
            lines.append(f'    subgraph "cluster_c_{comp.name}" {{ label="{comp.name}"; color=gray70;')
            lines += [f'      "{comp.name}.{fmap[u].name}" [label="{fmap[u].name}"];' for u in comp.functions]
            lines.append("    }")
        lines.append("  }")
    for e in model.edges:
        f, g = fmap[e.caller], fmap[e.callee]
        if not f.component or not g.component:
            continue
        a, b = f"{f.component}.{f.name}", f"{g.component}.{g.name}"     # static names repeat across files
        if (f.name, g.name) in crossing and f.component != g.component:
            lines.append(f'  "{a}" -> "{b}" [color=red, penwidth=2, '
                         f'label="{crossing[(f.name, g.name)].crossings:.3g}/run"];')
        else:
            lines.append(f'  "{a}" -> "{b}" [color=gray60];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot(model: ProgramModel, s: Suggestion) -> str:
    """A Graphviz picture: domains as clusters, the cut edges red and labelled with crossings."""
    best = s.candidates[0]
    placed = {c: d for d, comps in best.domains for c in comps}
    cut = {frozenset((e.a, e.b)): e for e in best.cut}
    lines = ["graph quarantine {", '  node [shape=box, style=rounded, fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    for d, comps in best.domains:
        lines.append(f'  subgraph "cluster_{d}" {{ label="{d}"; color=red;')
        lines += [f'    "{c}";' for c in comps]
        lines.append("  }")
    lines.append('  subgraph "cluster_main" { label="main"; color=gray;')
    lines += [f'    "{c.name}";' for c in model.components if c.name not in placed]
    lines.append("  }")
    g_edges = {}
    fmap = model.function_map
    for e in model.edges:
        a, b = fmap[e.caller].component, fmap[e.callee].component
        if a and b and a != b:
            key = frozenset((a, b))
            g_edges[key] = g_edges.get(key, 0.0) + e.weight
    for key, w in sorted(g_edges.items(), key=lambda kv: sorted(kv[0])):
        a, b = sorted(key)
        if key in cut:
            lines.append(f'  "{a}" -- "{b}" [color=red, penwidth=2, label="{cut[key].crossings:.3g}/run"];')
        else:
            lines.append(f'  "{a}" -- "{b}" [color=gray60, label="{w:.3g}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
