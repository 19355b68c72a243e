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

Indirect calls are edges too: a call through a function pointer goes to each of its possible
targets (analyzer/pointers.py), its expected calls split evenly between them, as the analyzer's
frequencies split them.  A component that only a function pointer reaches is thus tied to the
side that calls it, and one that nothing ties to either side stays with main: a component joins
a suspect's domain only when that makes the cut strictly cheaper (the s-t cut taken is the
minimum cut closest to the suspect, and a multiway assignment gives main every group of
components it can take at no cost).

Hard constraints: components that write a non-shared global used by another stay together, an
edge whose signatures cannot be marshalled cannot be cut, and neither can an indirect call that
would reach another domain (QPM035) unless the pointer came across as a QPM_CALLBACK parameter.
They become edges of (finite, huge) weight UNCUTTABLE, each carrying its Blocks: which call or
global, where, why, and what would unblock it.  A requested isolation that would need one is
refused, naming the fewest blocked edges that every way apart crosses.  Only this module imports
networkx; it returns model-level results.
"""

from __future__ import annotations

import itertools

import networkx as nx

from . import marshal
from .codes import CODES
from .errors import UserError
from .model import Function, IndirectCall, Location, ProgramModel
from .record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:         # annotations only: typing is not imported at run time
    from typing import Callable

EXACT_LIMIT = 200_000       # assignments enumerated at most for an exact multiway cut
UNCUTTABLE = 1e18           # the capacity of an edge that must not be cut (finite, for max-flow)
BLOCK_UNIT = 1e15           # a blocked edge's capacity per Block when counting the fewest to unblock
SHOWN_BLOCKS = 5            # blocked edges a refusal names


@record
class Costs:
    ns_per_call: float
    ns_per_byte: float
    source: str = "default"


@record
class CutEdge:
    a: str
    b: str
    crossings: float        # per run
    bytes: float            # per run
    cost_ns: float          # per run
    functions: tuple[str, ...]


@record
class CallCut:
    """The detailed view: one call between functions that the cut makes a crossing."""

    caller: str
    callee: str
    caller_component: str
    callee_component: str
    crossings: float        # per run
    via: str = ""           # an indirect call: the pointer expression it calls through


@record
class Block:
    """Why two components must stay in one domain, and what would let them part."""

    a: str
    b: str
    what: str               # "main -> parse", "loop -> on_read (indirect call through 'h')", "global 'n'"
    location: Location | None
    reason: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.location.short()}: " if self.location else ""
        return f"{where}{self.what}: {self.reason}; to unblock: {self.fix}"


class Refused(UserError):
    """An isolation that every way apart would need an edge that must not be cut."""

    def __init__(self, head: str, blocks: list[Block]):
        lines = [f"  {b}" for b in blocks[:SHOWN_BLOCKS]]
        head = head.replace("{n}", str(len(blocks)))
        if len(blocks) > SHOWN_BLOCKS:
            lines.append(f"  and {len(blocks) - SHOWN_BLOCKS} more")
        super().__init__("\n".join([head] + lines))
        self.blocks = tuple(blocks)


@record
class Candidate:
    name: str
    domains: tuple[tuple[str, tuple[str, ...]], ...]     # (domain, components)
    cut: tuple[CutEdge, ...]
    crossings: float
    cost_ns: float
    why: str
    calls: tuple[CallCut, ...] = ()
    risk_ns: float = 0.0    # state put at risk: trusted components sharing a suspect's restarts


@record
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


# What would unblock an edge whose callee cannot be marshalled, by diagnostic code, when the
# diagnostic carries no fix-it.
_UNBLOCK = {
    "QPM010": "annotate parameter '{p}' with QPM_IN/QPM_OUT/QPM_INOUT(count) or QPM_OPAQUE",
    "QPM011": "annotate parameter '{p}' with QPM_STRING or QPM_IN/QPM_OUT/QPM_INOUT(count)",
    "QPM012": "pass what '{p}' points to in a struct with QPM_COUNT fields, or mark it QPM_OPAQUE",
    "QPM013": "make the callback '{p}' pass and return scalars only",
    "QPM014": "give the pointer fields of the struct behind '{p}' QPM_COUNT, QPM_STRING or QPM_OPAQUE",
}


def _signature_block(model: ProgramModel, f: Function) -> tuple[str, str] | None:
    """Why calls to f cannot cross a boundary, and what would let them: (reason, fix)."""
    if f.variadic:
        return f"'{f.name}' is variadic [QPM030]", f"give '{f.name}' a variant with fixed arguments"
    for p in f.params:
        _, diags = marshal.classify_param(model, f, p, "error", "across a boundary")
        if diags:
            d, name = diags[0], p.name or f"#{p.index + 1}"
            fix = (f"annotate parameter '{name}' with {d.fixits[0].insert.strip()}" if d.fixits else
                   _UNBLOCK.get(d.code, "change its type").format(p=name))
            return f"parameter '{name}' ({p.type}): {CODES.get(d.code, d.code)} [{d.code}]", fix
    _, diags = marshal.classify_return(model, f, "error", "across a boundary")
    if diags:
        code = diags[0].code
        fix = (f"mark '{f.name}' QPM_OPAQUE or QPM_RETURNS_STRING" if code == "QPM015" else
               f"return the struct through a QPM_OUT parameter of '{f.name}'")
        return f"its result ({f.return_type}): {CODES.get(code, code)} [{code}]", fix
    return None


def _names(items: list[str], quote: bool = True, shown: int = 6) -> str:
    """'a', 'b' and 'c'; past `shown` items, '... and N more'."""
    words = [f"'{x}'" if quote else x for x in items]
    if len(words) > shown:
        return ", ".join(words[:shown]) + f" and {len(words) - shown} more"
    return ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else "".join(words)


def _edge(g: nx.Graph, a: str, b: str) -> dict:
    data = g.get_edge_data(a, b)
    if data is None:
        data = {"crossings": 0.0, "bytes": 0.0, "functions": set(), "blocked": [], "calls": [], "cost": 0.0}
        g.add_edge(a, b, **data)
        data = g.get_edge_data(a, b)
    return data


def component_graph(model: ProgramModel, costs: Costs, calls: dict[str, float] | None = None,
                    bytes_per_call: dict[str, float] | None = None) -> nx.Graph:
    """Components and what cutting between each two would cost per run (edge attribute 'cost');
    'blocked' lists the Blocks of an edge that must not be cut."""
    g = nx.Graph()
    fmap = model.function_map
    for c in model.components:
        g.add_node(c.name)
    measured = calls or {}
    by_callee_weight: dict[str, float] = {}
    for e in model.edges:
        by_callee_weight[e.callee] = by_callee_weight.get(e.callee, 0.0) + e.weight
    signature_blocks: dict[str, tuple[str, str] | None] = {}

    def unmarshallable(usr: str) -> tuple[str, str] | None:
        if usr not in signature_blocks:
            signature_blocks[usr] = _signature_block(model, fmap[usr])
        return signature_blocks[usr]

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
                _add_call(g, model, e, a, b, len(callers), measured, by_callee_weight, bytes_per_call,
                          unmarshallable)
    for ic in model.indirect_calls:
        _indirect_edges(model, g, ic, bytes_per_call)
    for a, b, data in g.edges(data=True):
        data["cost"] = data["crossings"] * costs.ns_per_call + data["bytes"] * costs.ns_per_byte
    # Components writing a non-shared global another component uses must share a process.
    for gl in model.globals:
        if gl.shared or marshal.read_only(gl.type) or not gl.writers:
            continue
        comps = sorted({c for u in (*gl.readers, *gl.writers) for c in hosts.get(u, ())})
        if len(comps) < 2:
            continue
        # One root cause, one text: every pair of its components carries the same Block.
        writers = _names(sorted({fmap[u].name for u in gl.writers if u in fmap}), quote=False)
        together = f"keep {_names(comps)} together"
        if marshal.pointer_free(gl.type_enc, model.struct_map):
            fix = f"mark '{gl.name}' QPM_SHARED, or {together}"
        else:
            fix = f"{together} ('{gl.name}' holds pointers: QPM_SHARED cannot carry it)"
        reason = f"written by {writers} and used in {_names(comps)}, which would each have a copy of their own [QPM032]"
        for a, b in itertools.combinations(comps, 2):
            _edge(g, a, b)["blocked"].append(Block(a, b, f"global '{gl.name}'", gl.location, reason, fix))
    for a, b, data in g.edges(data=True):
        data["capacity"] = UNCUTTABLE if data["blocked"] else data["cost"]
    return g


def _add_call(g: nx.Graph, model: ProgramModel, e, a: str, b: str, shares: int, measured: dict[str, float],
              by_callee_weight: dict[str, float], bytes_per_call: dict[str, float] | None,
              unmarshallable: Callable[[str], tuple[str, str] | None]) -> None:
    """Call edge e, made by code running in component a, onto the graph edge a-b (its share)."""
    fmap = model.function_map
    crossings = e.weight / shares
    name = fmap[e.callee].name
    if name in measured and by_callee_weight.get(e.callee):
        # Measured calls, shared among the callee's callers as the static weights share them.
        crossings = measured[name] * e.weight / by_callee_weight[e.callee] / shares
    data = _edge(g, a, b)
    data["calls"].append(CallCut(fmap[e.caller].name, name, a, b, crossings))
    data["crossings"] += crossings
    data["bytes"] += crossings * _edge_bytes(model, e.callee, bytes_per_call)
    data["functions"].add(name)
    problem = unmarshallable(e.callee)
    if problem:
        data["blocked"].append(Block(a, b, f"{fmap[e.caller].name} -> {name}", e.sites[0].location,
                                     problem[0], f"{problem[1]}, or keep '{a}' and '{b}' together"))


def _indirect_edges(model: ProgramModel, g: nx.Graph, ic: IndirectCall,
                    bytes_per_call: dict[str, float] | None) -> None:
    """An indirect call's edges to the components of its targets: its expected calls split evenly
    between the targets, and between the components whose processes run the caller (a static
    caller runs with its callers, ProgramModel.hosts).  A static target runs where its address is
    taken and never crosses, as a direct call to it does not.  Cutting an edge is allowed only
    when the pointer came across as the caller's QPM_CALLBACK parameter (calls through it come
    back across the boundary); otherwise the call would reach another process's function (QPM035)."""
    fmap = model.function_map
    caller = fmap[ic.caller]
    runners = sorted(model.hosts.get(ic.caller, ()))
    if not runners or not ic.targets:
        return
    share = ic.weight / len(ic.targets) / len(runners)
    callback = ic.param is not None and ic.param < len(caller.params) and \
        caller.params[ic.param].annotation("callback") is not None
    for a in runners:
        by_component: dict[str, list[str]] = {}
        for t in ic.targets:
            b = fmap[t].component
            if b and b != a and not marshal.is_direct_only(fmap[t]):
                by_component.setdefault(b, []).append(t)
        for b, targets in sorted(by_component.items()):
            data = _edge(g, a, b)
            for t in targets:
                data["calls"].append(CallCut(caller.name, fmap[t].name, a, b, share, ic.through))
                data["crossings"] += share
                data["bytes"] += share * _edge_bytes(model, t, bytes_per_call)
                data["functions"].add(fmap[t].name)
            if callback:
                continue
            names = sorted(fmap[t].name for t in targets)
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            together = f"keep '{a}' and '{b}' together"
            bad = marshal.callback_signature(ic.function_type)[2] if ic.function_type != "?" else "?"
            if bad is not None:
                fix = f"{together} (a QPM_CALLBACK carries scalars only, not '{bad}')"
            elif ic.param is not None and ic.param < len(caller.params):
                fix = f"mark parameter '{caller.params[ic.param].name}' of '{caller.name}' QPM_CALLBACK, or {together}"
            else:
                fix = f"pass '{ic.through}' to '{caller.name}' as a QPM_CALLBACK parameter, or {together}"
            data["blocked"].append(Block(
                a, b, f"{caller.name} -> {shown} (indirect call through '{ic.through}')", ic.location,
                "a function pointer can call into another process only as a QPM_CALLBACK parameter [QPM035]", fix))


def _assignment_cost(g: nx.Graph, side: dict[str, str]) -> float:
    return sum(d["capacity"] for a, b, d in g.edges(data=True) if side[a] != side[b])


def _min_cut(g: nx.Graph, s: str, t: str) -> tuple[float, set[str]]:
    """A minimum s-t cut and its source side: the one closest to s, what s still reaches in the
    residual network.  (networkx's minimum_cut gives s every node that cannot reach t, so a
    component tied to nothing would follow the suspect.)"""
    residual = nx.algorithms.flow.preflow_push(g, s, t, capacity="capacity")
    reach, stack = {s}, [s]
    while stack:
        u = stack.pop()
        for v, attr in residual[u].items():
            if v not in reach and attr["capacity"] - attr["flow"] > 1e-9 * max(1.0, attr["capacity"]):
                reach.add(v)
                stack.append(v)
    return residual.graph["flow_value"], reach


def _prefer_main(g: nx.Graph, side: dict[str, str], main: str | None, terminals: list[str]) -> dict[str, str]:
    """Gives main every group of components on a suspect's side that is not connected to the
    suspect there and that main can take at no cost: a component joins a suspect only when that
    makes the cut strictly cheaper."""
    if main is None:
        return side
    side = dict(side)
    for t in terminals:
        if t == main:
            continue
        mine = [n for n, x in side.items() if x == t and n != t]
        sub = g.subgraph(mine + [t]).edge_subgraph(
            (a, b) for a, b, d in g.subgraph(mine + [t]).edges(data=True) if d["capacity"] > 0)
        tied = nx.node_connected_component(sub, t) if t in sub else {t}
        for group in nx.connected_components(g.subgraph(n for n in mine if n not in tied)):
            before = _assignment_cost(g, side)
            trial = dict(side)
            trial.update({n: main for n in group})
            if _assignment_cost(g, trial) <= before * (1 + 1e-12):
                side = trial
    return side


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
        value, reach = _min_cut(h, t, sink)
        cuts.append((value, t, reach - {sink}))
    cuts.sort(key=lambda c: c[0])
    # A terminal is its own side, whatever a cut that could not keep it out (one as heavy as an
    # uncuttable edge) put it with.
    side = {n: (n if n in terminals else None) for n in g.nodes}
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


def _crossed_blocks(g: nx.Graph, side: dict[str, str]) -> list[Block]:
    """The Blocks of the edges a cut crosses, one per root cause (a global shared by several
    components blocks each of their pairs with the same text)."""
    out: dict[str, Block] = {}
    for a, b, d in g.edges(data=True):
        if side[a] != side[b]:
            for x in d["blocked"]:
                out.setdefault(str(x), x)
    return sorted(out.values(), key=lambda x: (x.location or Location(""), x.what))


def _refusal(g: nx.Graph, terminals: list[str], head: str) -> Refused:
    """The fewest blocked edges every way apart crosses: the cut again, with each Block counted
    as one huge unit, so that the cheapest cut is the one through the fewest of them."""
    h = g.copy()
    for a, b, d in h.edges(data=True):
        if d["blocked"]:
            d["capacity"] = BLOCK_UNIT * len(d["blocked"])
        else:
            d["capacity"] = min(d["capacity"], BLOCK_UNIT / 1e3)
    if len(terminals) == 2:
        _, reach = _min_cut(h, terminals[0], terminals[1])
        side = {n: (terminals[0] if n in reach else terminals[1]) for n in h.nodes}
    else:
        side, _ = _multiway(h, terminals)
    return Refused(f"{head}: every way apart crosses an edge that must not be cut; the fewest to "
                   "unblock ({n}):", _crossed_blocks(h, side))


def _candidate(g: nx.Graph, name: str, side: dict[str, str], suspects: list[str], why: str) -> Candidate:
    blocks = _crossed_blocks(g, side)
    if blocks:
        raise Refused(f"isolating {', '.join(suspects)} this way separates components that must stay "
                      "together ({n} blocked):", blocks)
    cut, crossings, cost, risk = [], 0.0, 0.0, 0.0
    for a, b, d in g.edges(data=True):
        if side[a] != side[b]:
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
    return tuple(sorted(out, key=lambda c: (-c.crossings, c.caller, c.callee, c.via)))


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
        value, reach = _min_cut(g, terminals[0], terminals[1])
        if value >= UNCUTTABLE:
            raise _refusal(g, terminals, f"'{terminals[0]}' cannot be separated from '{terminals[1]}'")
        side = {n: (terminals[0] if n in reach else terminals[1]) for n in g.nodes}
        bound = "exact (minimum s-t cut)"
    else:
        side, bound = _multiway(g, terminals)
        if _assignment_cost(g, side) >= UNCUTTABLE:
            raise _refusal(g, terminals, f"{', '.join(repr(s) for s in suspects)} cannot be separated "
                                         f"from each other and '{main}'")
        side = _prefer_main(g, side, main, terminals)
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
    for ic in model.indirect_calls:      # dashed: through a function pointer, to each possible target
        f = fmap[ic.caller]
        for t in ic.targets:
            g = fmap[t]
            if not f.component or not g.component:
                continue
            a, b = f"{f.component}.{f.name}", f"{g.component}.{g.name}"
            if (f.name, g.name) in crossing and f.component != g.component:
                lines.append(f'  "{a}" -> "{b}" [style=dashed, color=red, penwidth=2, '
                             f'label="{crossing[(f.name, g.name)].crossings:.3g}/run"];')
            else:
                lines.append(f'  "{a}" -> "{b}" [style=dashed, color=gray60];')
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
    for ic in model.indirect_calls:
        for t in ic.targets:
            a, b = fmap[ic.caller].component, fmap[t].component
            if a and b and a != b:
                key = frozenset((a, b))
                g_edges[key] = g_edges.get(key, 0.0) + ic.weight / len(ic.targets)
    for key, w in sorted(g_edges.items(), key=lambda kv: sorted(kv[0])):
        a, b = sorted(key)
        if key in cut:
            lines.append(f'  "{a}" -- "{b}" [color=red, penwidth=2, label="{cut[key].crossings:.3g}/run"];')
        else:
            lines.append(f'  "{a}" -- "{b}" [color=gray60, label="{w:.3g}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
