"""Merges the facts of every translation unit into one ProgramModel.

    build_model(units) -> ProgramModel
    merge(units, previous=None) -> Merge        the same, reusing a previous merge of the units

Declarations of one entity in several places (a prototype in a header, the definition in a .c
file, the same header seen by several units) share a USR and are merged here: annotations from all
of them count, and two that disagree are an error.

A merge again after some units changed (an edit) redoes what depends on the whole program (call
frequencies, pointer targets, edges, globals, components) but merges again only the functions a
changed unit declares or defines: every other function is the previous model's, with its new
frequency.  An edit of one unit that only moved lines merges nothing: the result is the previous
model with those places moved (_moved_lines).  When the changed units define most of the model,
nothing is reused (it would cost more than it saves) but the model itself, when it comes out the
same.  What the result holds does not depend on whether a previous merge was reused.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict, namedtuple
from functools import lru_cache, partial
from operator import attrgetter, is_, itemgetter

from ..model import (Annotation, CallArgument, CallEdge, CallSite, Component, Declaration, Diagnostic, Field,
                     FixIt, Function, Global, IndirectCall, Location, Note, Param, ProgramModel, StructType,
                     annotation_sites)
from ..record import Later, replace
from . import pointers, weights
from .unit import Call, GlobalDecl, UnitFacts, numbered_slots

_location = attrgetter("location")
_loc = partial(tuple.__new__, Location)     # a fact's place, (file, line, column), as a Location


KNOWN_KINDS = {"component", "file_component", "in", "out", "inout", "string", "opaque", "count",
               "returns_string", "callback", "shared", "init", "fd"}


def _merge_annotations(groups: list[tuple[tuple[Annotation, ...], Location | None]], what: str,
                       diags: list[Diagnostic]) -> tuple[Annotation, ...]:
    """Union of the annotations on every declaration; conflicting ones are QPM024."""
    merged: dict[str, tuple[Annotation, Location | None]] = {}
    for annotations, loc in groups:
        for a in annotations:
            if a.kind not in KNOWN_KINDS:
                diags.append(Diagnostic("error", "QPM023", f"unknown annotation 'qpm_{a.kind}' on {what}", loc))
                continue
            prev = merged.get(a.kind)
            if prev is None:
                merged[a.kind] = (a, loc)
            elif prev[0].arg.replace(" ", "") != a.arg.replace(" ", ""):
                where = f" (other declaration at {prev[1].short()})" if prev[1] else ""
                code = "QPM034" if a.kind == "component" else "QPM024"
                diags.append(Diagnostic("error", code,
                                        f"conflicting annotations on {what}: {prev[0]} and {a}{where}", loc))
    return tuple(a for a, _ in merged.values())


def _merge_declarations(ds: list[tuple], file_components: dict[str, tuple[str, Location]], frequency: float,
                        diags: list[Diagnostic], per_unit: bool = False, uses: dict[int, str] | None = None,
                        returned: tuple[tuple[str, str, Location], ...] = ()) -> Function:
    """A function's Function, from its declarations as the facts hold them (unit.FunctionDecl's
    layout, each parameter unit.ParamFact's, places plain tuples), without a FunctionDecl or the
    Params of every declaration (most functions of a big file are declared twice, a prototype and
    the definition): its annotations those of all of them (conflicts are diagnostics), its
    parameters named as the definition names them, typed as a header's prototype spells them."""
    if len(ds) == 1:
        return _lone_function(ds[0], file_components, frequency, diags, per_unit, uses, returned)
    definition = None
    annotated = param_annotations = inline = hidden = False
    for d in ds:
        if d[3] and definition is None:
            definition = d
        if d[10]:
            annotated = True
        if not param_annotations and d[13]:
            param_annotations = any([q[4] for q in d[13]])
        if d[11]:
            inline = True
        if d[12]:
            hidden = True
    primary = definition or ds[0]
    usr, name = primary[0], primary[1]
    by_place = sorted(ds, key=itemgetter(2))
    annotations = _merge_annotations([(d[10], _loc(d[2])) for d in ds], f"function '{name}'", diags) \
        if annotated else ()
    declared = tuple([Declaration(_loc(d[2]), d[3],
                                  bool(d[10]) or (param_annotations and any([q[4] for q in d[13]])),
                                  tuple([_loc(q[6]) for q in d[13]]) if d[13] else ()) for d in by_place])
    # Types as a header prototype spells them: generated code includes the header, not the file
    # of the definition, whose own typedefs it cannot see.
    header = None
    for d in by_place:
        if not d[3] and not d[2][0].endswith(".c"):
            header = d
            break
    defined_params = definition[13] if definition is not None else ()
    header_params = header[13] if header is not None else ()
    params = []
    if primary[13]:
        # A parameter's fix-it goes where the function's annotations are: its declarator end on
        # the first declaration in annotation_sites order that has it.
        ends = [s.params for s in annotation_sites(declared)]
    for p in primary[13]:
        i = p[0]
        named = defined_params[i] if len(defined_params) > i and defined_params[i][1] else None
        # Parameter i of every declaration, when it is to be named or its annotations merged.
        same = [d[13][i] for d in ds if len(d[13]) > i] if named is None or param_annotations else ()
        if named is None:
            named = next((q for q in same if q[1]), p)
        anns = _merge_annotations([(q[4], _loc(q[5])) for q in same],
                                  f"parameter '{named[1] or i}' of '{name}'", diags) \
            if param_annotations and any(q[4] for q in same) else ()
        end = None
        for site in ends:
            if len(site) > i and site[i]:
                end = site[i]
                break
        spelled = header_params[i][2] if len(header_params) > i else named[2]
        params.append(Param(i, named[1], spelled, named[3], anns, _loc(named[5]), end or _loc(named[6])))
    component = _component(annotations, definition[2][0], file_components) \
        if definition is not None and not per_unit else None
    param_uses = tuple([uses.get(p.index, "") for p in params]) if uses is not None else ()
    # Its places: each declaration's, once, in order (by_place is); the first is the primary
    # declaration's when that comes first.
    places = tuple(dict.fromkeys([d.location for d in declared]))
    return Function(usr, name, component, places[0] if primary is by_place[0] else _loc(primary[2]),
                    definition is not None, primary[4], primary[5],
                    header[7] if header is not None else primary[7], primary[8], annotations, tuple(params),
                    places, frequency, declared, per_unit, param_uses,
                    returned, inline=inline, hidden=hidden)


def _component(annotations: tuple[Annotation, ...], file: str,
               file_components: dict[str, tuple[str, Location]]) -> str:
    """The component of a function defined in `file`: its own annotation's, else its file's, else
    the file's name without its extension."""
    for a in annotations:
        if a.kind == "component":
            return a.arg
    if file in file_components:
        return file_components[file][0]
    return _stem(file)


def _lone_function(d: tuple, file_components: dict[str, tuple[str, Location]], frequency: float,
                   diags: list[Diagnostic], per_unit: bool, uses: dict[int, str] | None,
                   returned: tuple[tuple[str, str, Location], ...]) -> Function:
    """_merge_declarations of a function declared once (d: as the facts hold it, unit.FunctionDecl's
    layout): the same result, without the merging."""
    usr, name, where, defined, own = d[0], d[1], _loc(d[2]), d[3], d[10]
    annotations = _merge_annotations([(own, where)], f"function '{name}'", diags) if own else ()
    annotated = bool(own)
    if d[13]:
        params = tuple([Param(i, n, type_, enc, anns, _loc(at), _loc(end))
                        for i, n, type_, enc, anns, at, end in d[13]])
        for p in params:
            if p.annotations:
                annotated = True
                _merge_annotations([(p.annotations, p.location)], f"parameter '{p.name or p.index}' of "
                                   f"'{name}'", diags)
        ends = tuple([q.end for q in params])
        param_uses = tuple([uses.get(p.index, "") for p in params]) if uses is not None else ()
    else:
        params = ends = param_uses = ()
    component = _component(annotations, where.file, file_components) if defined and not per_unit else None
    declared = (Declaration(where, defined, annotated, ends),)
    return Function(usr, name, component, where, defined, d[4], d[5], d[7], d[8], annotations, params, (where,),
                    frequency, declared, per_unit, param_uses, returned, inline=d[11], hidden=d[12])


def _returned_order(r: tuple[str, str, Location]) -> tuple:
    """The order of a function's returned calls: by place, then callee."""
    return r[2], r[0]


@lru_cache(maxsize=None)
def _stem(path: str) -> str:
    """A file's name without its directory and extension: its functions' default component."""
    return os.path.splitext(os.path.basename(path))[0]


def _per_unit_functions(units: list[UnitFacts]) -> set[str]:
    """Functions of internal linkage defined outside the file a unit compiles (a header's
    `static inline` helpers): every unit that includes the header has its own copy, so a call to
    one never leaves the caller's process, whatever the header's name."""
    out: set[str] = set()
    absolute: dict[str, str] = {}       # each file's path, absolute and normalized (a few files)
    for u in units:
        main = os.path.normpath(os.path.abspath(u.path))
        for d in u.functions:
            if d[3] and d[4] == "internal":         # defined, of internal linkage
                where = d[2]
                file = absolute.get(where[0])
                if file is None:
                    file = absolute[where[0]] = os.path.normpath(os.path.abspath(where[0]))
                if file != main:
                    out.add(d[0])
    return out


def _through_per_unit(sites: dict[tuple[str, str], dict[tuple, tuple]],
                      per_unit: set[str], edge_weight: dict[tuple[str, str], float]
                      ) -> tuple[dict[tuple[str, str], dict[tuple, tuple]], dict[str, set[str]]]:
    """The calls a per-unit function makes, as calls of its callers at their call sites (a call
    of a function f makes through helper h runs where f calls h), with their weights multiplied
    through (sites as merge holds them: (loops, branches, weight) by place); and, for each
    per-unit function, the functions (not per-unit ones) whose process it runs in: its callers,
    through other helpers."""
    if not per_unit:
        return {}, {}
    out_of: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for (a, b) in sites:
        if a in per_unit:
            out_of[a].append((b, edge_weight[(a, b)]))
    reached: dict[str, dict[str, float]] = {}

    def reach(h: str) -> dict[str, float]:
        """Functions other than per-unit ones that h calls, directly or through per-unit ones,
        with the calls per run of h."""
        if h in reached:
            return reached[h]
        acc: dict[str, float] = {}
        todo, seen = [(h, 1.0)], {h}
        while todo:
            cur, mult = todo.pop()
            for b, w in out_of.get(cur, ()):
                if b in per_unit:
                    if b not in seen:
                        seen.add(b)
                        todo.append((b, mult * w))
                else:
                    acc[b] = acc.get(b, 0.0) + mult * w
        reached[h] = acc
        return acc

    derived: dict[tuple[str, str], dict[tuple, tuple]] = defaultdict(dict)
    users: dict[str, set[str]] = defaultdict(set)
    for (a, h), s in sites.items():
        if a in per_unit or h not in per_unit:
            continue
        for b, mult in reach(h).items():
            if b == a:
                continue
            d = derived[(a, b)]
            for where, (loops, branches, weight) in s.items():
                prev = d.get(where)
                d[where] = (loops, branches, weight * mult + (prev[2] if prev else 0.0))
    # Who runs each per-unit function: its callers, through other per-unit ones.
    callers: dict[str, set[str]] = defaultdict(set)
    for (a, b) in sites:
        if b in per_unit:
            callers[b].add(a)
    for h in per_unit:
        todo, seen = [h], {h}
        while todo:
            for a in callers.get(todo.pop(), ()):
                if a in per_unit:
                    if a not in seen:
                        seen.add(a)
                        todo.append(a)
                else:
                    users[h].add(a)
    return derived, users


class Merge(namedtuple("Merge", ("units", "model", "file_components", "function_diagnostics", "frequencies"))):
    """A model with what it was merged from, for a later merge to reuse (see merge):

    units                   tuple[UnitFacts, ...]
    model                   ProgramModel
    file_components         dict[str, tuple[str, Location]]
    function_diagnostics    dict[str, tuple[Diagnostic, ...]]: by USR, those its merge made
    frequencies             (what weights.frequencies was given, in order; what it answered)
    """

    __slots__ = ()


def build_model(units: list[UnitFacts]) -> ProgramModel:
    return merge(units).model


def _reusable(units: list[UnitFacts], previous: Merge | None) -> tuple[dict[str, Function], set[str]]:
    """The previous model's functions by USR, and the USRs that the units which changed since
    (those not the very facts objects previous was merged from) mention, in either version: the
    functions merged again.  Nothing reusable when the units are not the same files."""
    if previous is None or len(previous.units) != len(units) or \
            any(a.path != b.path for a, b in zip(previous.units, units)):
        return {}, set()
    dirty: set[str] = set()
    for old, new in zip(previous.units, units):
        if old is not new:
            for u in (old, new):
                dirty.update(d[0] for d in u.functions)
                dirty.update(usr for usr, _, _ in u.param_uses)
                dirty.update(usr for usr, _, _, _ in u.returned)
    return previous.model.function_map, dirty


def merge(units: list[UnitFacts], previous: Merge | None = None) -> Merge:
    """The model of the units.  previous, a merge of the same files in the same order, lends its
    functions: each one that no changed unit mentions (in its old or its new facts) is reused, its
    merge diagnostics with it; and when the model comes out equal to previous's (an edit inside a
    function body), it is previous's model object itself.  A unit counts as unchanged when it is
    the same facts object that previous holds."""
    units = list(units)
    before = previous
    if previous is not None and _mostly_changed(units, previous):
        # Most of the model is the changed units': reusing the previous merge, or moving its
        # places, costs more than it saves (sqlite3.c after an edit: 0.15 s merged alone, 0.19 s
        # reusing, 0.26 s moving; in the sqlean.py module, 0.19 s alone and 0.23 s reusing).
        # Only its model is kept, when the merge makes it again.
        previous = None
    if previous is not None:
        moved = _moved_lines(units, previous)
        if moved is not None:
            return moved
    diags: list[Diagnostic] = []
    for u in units:
        diags.extend(u.diagnostics)

    file_components = _file_components(units)
    reused, dirty = _reusable(units, previous)
    if reused and previous.file_components != file_components:
        reused = {}           # a file's default component changed: its functions may move

    # Each function's declarations, as the facts hold them (unit.FunctionDecl's layout, places
    # plain tuples: a function merged again makes its Params and Locations from them).
    by_usr: dict[str, list[tuple]] = defaultdict(list)
    seen_decl: set[tuple[str, tuple]] = set()         # (USR, place)
    defined_usrs: set[str] = set()
    defined_twice: list[str] = []
    for u in units:
        for d in u.functions:
            key = (d[0], d[2])
            if key not in seen_decl:     # a header seen by several units
                seen_decl.add(key)
                by_usr[d[0]].append(d)
                if d[3]:
                    if d[0] in defined_usrs:
                        defined_twice.append(d[0])
                    defined_usrs.add(d[0])
    for usr in dict.fromkeys(defined_twice):
        defs = [d for d in by_usr[usr] if d[3]]
        first = _loc(defs[0][2])
        for extra in defs[1:]:
            diags.append(Diagnostic("error", "QPM036", f"'{extra[1]}' is defined twice in the program "
                                                       f"(first at {first.short()}); analyse one program at a time",
                                    _loc(extra[2])))
    fn_types = {usr: ds[0][9] for usr, ds in by_usr.items()}
    per_unit = _per_unit_functions(units)

    # Direct calls, grouped by edge; a site seen by several units counts once.  Each site as a
    # plain tuple by its place, (loops, branches, weight): the CallSites are made with the edges.
    sites: dict[tuple[str, str], dict[tuple, tuple]] = defaultdict(dict)
    local_weight = weights.local_weight
    for u in units:
        for caller, callee, _, where, loops, branches, _ in u.calls:
            if caller in by_usr and callee in by_usr:
                sites[(caller, callee)][where] = (loops, branches, local_weight(loops, branches))
    # Each edge's runs per run of its caller (the sum of its sites' weights, in their order).
    edge_weight = {key: _sites_weight(s) for key, s in sites.items()}

    # Indirect calls: their targets from where the program stores function addresses.
    resolver = pointers.Resolver(
        fn_types, defined_usrs, _Params(by_usr), {b for (a, b) in sites if a != b},
        [(fn, dest, _loc(where)) for u in units for _, fn, dest, where in u.taken if fn in by_usr],
        [(dest, source) for u in units for _, dest, source in u.flows])
    indirect_raw: dict[tuple[str, tuple], tuple] = {}    # (caller, place) -> (Call, its targets)
    for u in units:
        for c in u.indirect:
            key = (c[0], c[3])
            if c[0] in by_usr and key not in indirect_raw:
                c = Call(*c[:3], _loc(c[3]), *c[4:])
                indirect_raw[key] = (c, resolver.resolve(c.slot, c.callee))

    # Frequencies: per-call multipliers, then propagation from the entry points.
    succ: dict[str, dict[str, float]] = defaultdict(dict)
    for (a, b), w in edge_weight.items():
        succ[a][b] = succ[a].get(b, 0.0) + w
    for c, resolved in indirect_raw.values():
        share = weights.local_weight(c.loops, c.branches) / max(1, len(resolved.targets))
        for t in resolved.targets:
            succ[c.caller][t] = succ[c.caller].get(t, 0.0) + share
    called = {b for a, bs in succ.items() for b in bs if b != a}
    entries = defined_usrs - called
    entries.update(usr for usr in defined_usrs if by_usr[usr][0][1] == "main" and by_usr[usr][0][4] == "external")
    # The frequencies are a function of the call graph alone, which an edit seldom changes.
    graph = (sorted(by_usr), [(a, list(bs.items())) for a, bs in succ.items()], entries)
    if previous is not None and previous.frequencies[0] == graph:
        freq = previous.frequencies[1]
    else:
        freq = weights.frequencies(graph[0], succ, entries)
    uses: dict[str, dict[int, str]] = defaultdict(dict)
    for u in units:
        for usr, index, letters in u.param_uses:
            mine = uses[usr]
            mine[index] = _uses_letters(mine.get(index, "") + letters)
    returned: dict[str, set[tuple[str, str, Location]]] = defaultdict(set)
    for u in units:
        for usr, callee, name, loc in u.returned:
            returned[usr].add((callee, name, _loc(loc)))
    functions: dict[str, Function] = {}
    fn_diags: dict[str, tuple[Diagnostic, ...]] = {}
    no_uses: dict[int, str] = {}
    for usr, ds in by_usr.items():
        frequency = freq.get(usr, 0.0)
        f = reused.get(usr) if usr not in dirty else None
        if f is not None:
            if f.frequency != frequency:
                f = replace(f, frequency=frequency)
            mine = previous.function_diagnostics.get(usr, ())
        else:
            made: list[Diagnostic] = []
            calls = returned.get(usr)
            f = _merge_declarations(ds, file_components, frequency, made, usr in per_unit,
                                    uses.get(usr, no_uses) if usr in defined_usrs else None,
                                    tuple(sorted(calls, key=_returned_order)) if calls else ())
            mine = tuple(made)
        functions[usr] = f
        if mine:
            fn_diags[usr] = mine
            diags.extend(mine)

    # Calls made through per-unit helpers count where the helper is called (after the
    # frequencies, which the helper's own edges already carry).
    derived, per_unit_users = _through_per_unit(sites, per_unit, edge_weight)
    for key, more in derived.items():
        mine = sites[key]
        for where, site in more.items():
            prev = mine.get(where)
            mine[where] = site if prev is None else (prev[0], prev[1], prev[2] + site[2])
        edge_weight[key] = _sites_weight(mine)
    edges = Later(partial(_edges, sites, functions, freq, edge_weight), len(sites))
    if previous is not None:
        # An edge, or an argument below, equal to the previous model's is that one: what compares
        # the two models later (the model's own equality, the checks' findings, the JSON kept
        # for each file) then finds the same objects, without comparing their fields.
        was = {(e.caller, e.callee): e for e in previous.model.edges}
        edges = tuple([_same_or(was.get((e.caller, e.callee)), e) for e in edges.get()])
    indirect = tuple(sorted(
        (IndirectCall(c.caller, c.location, c.callee, c.name, r.targets,
                      weights.local_weight(c.loops, c.branches),
                      freq.get(c.caller, 0.0) * weights.local_weight(c.loops, c.branches),
                      r.origins, r.narrowed, _param_index(c.slot, c.caller))
         for c, r in indirect_raw.values()),
        key=lambda i: i.location))

    globals_ = _merge_globals(units, functions, diags, per_unit_users)
    found: dict[tuple[str, tuple, int], tuple] = {}     # (caller, place, index) -> unit.ArgumentFact
    for u in units:
        for a in u.arguments:
            if a[0] in by_usr:
                found.setdefault((a[0], a[6], a[3]), a)
    arguments = Later(partial(_arguments, found, previous.model.arguments if previous is not None else ()),
                      len(found))
    if previous is not None:
        arguments = arguments.get()
    structs = _merge_structs(units)

    members: dict[str, list[Function]] = defaultdict(list)
    for f in functions.values():
        if f.component is not None:
            members[f.component].append(f)
    components = []
    for name, fs in sorted(members.items()):
        fs.sort(key=_location)
        components.append(Component(name, tuple(f.usr for f in fs), tuple(sorted({f.location.file for f in fs})),
                                    tuple(f.usr for f in fs if f.annotations and f.annotation("init"))))

    unique = sorted(set(diags), key=Diagnostic.sort_key)
    taken_by = tuple(sorted({(h, t) for u in units for h, t, _, _ in u.taken if t in functions}))
    model = ProgramModel(tuple(components), tuple(sorted(functions.values(), key=lambda f: (f.location, f.usr))),
                         edges, indirect, globals_, structs, tuple(u.path for u in units), tuple(unique),
                         arguments, taken_by)
    if before is not None and model == before.model:
        model = before.model        # the same object: what was made of it holds still
    return Merge(tuple(units), model, file_components, fn_diags, (graph, freq))


# An edit that only moves lines.  Most edits add or remove lines: every place after them in the
# file moves, and nothing else in the unit's facts changes (a comment, a blank line, a statement
# that calls, refers to and uses nothing new).  The model of the program then is the previous
# model with those places moved, which is what merge() makes of such an edit, at the cost of the
# few objects that hold them, not of a merge of every unit again.

class _NotMoved(Exception):
    """The edit did more than move lines, or moved a place the previous model holds otherwise."""


def _changed(units: list[UnitFacts], previous: Merge) -> list[int] | None:
    """The indices of the units that changed since previous (not the very facts it holds), or
    None when previous was merged from another number of units."""
    if len(units) != len(previous.units):
        return None
    return [i for i, (u, was) in enumerate(zip(units, previous.units)) if u is not was]


def _mostly_changed(units: list[UnitFacts], previous: Merge) -> bool:
    """Whether the units that changed since previous define more than half of its model's
    functions."""
    changed = {units[i].path for i in _changed(units, previous) or ()}
    functions = previous.model.functions
    return bool(changed) and 2 * sum(f.location.file in changed for f in functions) > len(functions)


def _moved_lines(units: list[UnitFacts], previous: Merge) -> Merge | None:
    """merge(units, previous) when exactly one unit changed and its facts are its previous facts
    with places in files that only it read on other lines, in the same order, and with what
    names those places or a local variable's offset named again one to one (see _line_moves);
    else None (merge does the whole work)."""
    changed = _changed(units, previous)
    if changed is None or len(changed) != 1:
        return None
    i = changed[0]
    from .cache import real
    old, new = real(previous.units[i]), units[i]
    if old.path != new.path:
        return None
    m = previous.model
    found = _line_moves(old, new)
    if found is None:
        return None
    moves, strings = found
    was = {d[0]: d[1:3] for d in old.deps}
    edited = {d[0] for d in new.deps if was.get(d[0]) != d[1:3]}
    edited.update(moves)
    for k, u in enumerate(units):
        if k != i and not edited.isdisjoint(map(itemgetter(0), u.deps)):
            return None     # another unit read a file the edit changed: its facts say what it said
    if not moves:
        # No place moved: the facts are the same but for local variables' slots, named again
        # (an edit that made a line longer or shorter), which the model does not hold.
        return Merge(tuple(units), previous.model, previous.file_components, previous.function_diagnostics,
                     previous.frequencies)
    if strings and not (strings.keys().isdisjoint(previous.frequencies[1]) and
                        strings.keys().isdisjoint(previous.function_diagnostics)):
        return None         # a function's own name changed (it is known by it everywhere)

    def moved(objects: tuple, holds) -> tuple:
        """The objects with their places moved: those that holds() says may hold one, or every
        one when strings are named again (any object may hold one of those)."""
        if strings:
            return _relocate(objects, moves, strings)
        out = tuple(_relocate(o, moves) if holds(o) else o for o in objects)
        return objects if all(map(is_, out, objects)) else out
    try:
        if _words_name(m.diagnostics, moves):
            return None     # a message that names a place (QPM024's "other declaration at …")
        functions = moved(m.functions, lambda f: f.location.file in moves or _any_in(f.declarations, moves))
        edges = moved(m.edges, lambda e: _any_in([site.location for site in e.sites], moves))
        arguments = moved(m.arguments, lambda a: a.location.file in moves)
        indirect = moved(m.indirect_calls, lambda c: c.location.file in moves or _any_in(c.origins, moves))
        globals_ = moved(m.globals, lambda g: g.location.file in moves or _any_in(g.declarations, moves))
        structs = moved(m.structs, lambda t: t.location.file in moves or
                        any(f.location is not None and f.location.file in moves for f in t.fields))
        model = ProgramModel(moved(m.components, lambda c: False), functions, edges, indirect, globals_, structs,
                             m.translation_units, _relocate(m.diagnostics, moves, strings), arguments,
                             moved(m.taken, lambda t: False))
        if model == m:
            model = m       # no place the model holds moved: the same object, as merge() answers
        elif not strings:
            global _last_moved
            _last_moved = (model, m, moves)
        fn_diags = {usr: _relocate(ds, moves, strings) for usr, ds in previous.function_diagnostics.items()}
        # The files' components, those of the previous merge moved: the edited unit's are its old
        # ones moved (_line_moves compared them), and no other unit read a file that moved (the
        # other units' facts are not loaded for this: cache.Unread).
        file_components = {f: _relocate(v, moves, strings) for f, v in previous.file_components.items()}
    except _NotMoved:
        return None
    return Merge(tuple(units), model, file_components, fn_diags, previous.frequencies)


# The model the last merge of this process made by moving a previous model's places, with that
# model and the moves (see moved_places).
_last_moved: tuple | None = None


def moved_places(model: ProgramModel, previous: ProgramModel) -> dict[str, dict[int, int]] | None:
    """When model is previous with places moved and nothing else (the last merge of this process
    took the moved-lines path from it, and no string names a place that moved): the moves, for
    each file whose places moved, old line -> new line (what relocate_findings takes).  Else None."""
    last = _last_moved
    return last[2] if last is not None and last[0] is model and last[1] is previous else None


def relocate_findings(items: tuple, moves: dict[str, dict[int, int]]) -> tuple | None:
    """Diagnostics or notes found in a model, with their places moved as moves says (see
    moved_places): the very tuple when none holds a place in a file that moved.  None when one's
    words name such a file (a place in a message is not moved with the lines), or it holds a
    place on a line the edit's facts held none on (where it went is not known)."""
    if _words_name(items, moves):
        return None
    if not any(_holds_moved(d, moves) for d in items):
        return items
    try:
        return _relocate(items, moves)
    except _NotMoved:
        return None


def _words_name(items, moves: dict[str, dict[int, int]]) -> bool:
    """Whether the message of a diagnostic or a note of items (or of a diagnostic's notes) names
    a file of moves by its name."""
    names = [os.path.basename(f) for f in moves]
    for d in items:
        for n in names:
            if n in d.message or any(n in note.message for note in getattr(d, "notes", ())):
                return True
    return False


def _holds_moved(d, moves: dict[str, dict[int, int]]) -> bool:
    """Whether a diagnostic or a note holds a place in a file of moves (its own, a note's, a
    fix-it's)."""
    return (d.location is not None and d.location.file in moves) or \
        any(n.location is not None and n.location.file in moves for n in getattr(d, "notes", ())) or \
        any(f.file in moves for f in getattr(d, "fixits", ()))


def _any_in(places, files) -> bool:
    """Whether any of these places (Locations) is in one of files."""
    for place in places:
        if place[0] in files:
            return True
    return False


def _line_moves(old: UnitFacts, new: UnitFacts) -> tuple[dict[str, dict[int, int]], dict[str, str]] | None:
    """When new's facts are old's with places on other lines (the same columns; each line moved
    as a whole, the lines in the order they were): for each file whose places moved, old line ->
    new line for every line of it that old's facts hold a place on; and the strings that name
    such a place, old -> new, one to one (an unnamed struct's type, spelled "struct (unnamed at
    a.c:30:8)", and its USR, which holds its offset in bytes).  Else None.  The files read (deps)
    are not compared."""
    files = {d[0] for d in new.deps}
    files.add(new.path)
    moves: dict[str, dict[int, int]] = {}
    equal: list = []        # the parts found equal whole: places on lines that did not move
    strings: dict[str, str] = {}
    strings_back: dict[str, str] = {}

    def place(a, b) -> bool:
        """Whether a, b (equal-length tuples, or FixIts) are places of one file and column, noted."""
        if a[0] != b[0] or a[2] != b[2] or a[0] not in files:
            return False
        lines = moves.get(a[0])
        if lines is None:
            lines = moves[a[0]] = {}
        return lines.setdefault(a[1], b[1]) == b[1]

    def same(a, b) -> bool:
        if a == b:
            if type(a) in _HOLDERS:
                equal.append(a)
            return True
        t = type(a)
        if t is not type(b):
            return False
        if t is tuple or t is list or t is Location:
            if len(a) != len(b):
                return False
            if len(a) == 3 and type(a[0]) is str and type(a[1]) is int and type(a[2]) is int and \
                    type(b[1]) is int and place(a, b):
                return True
            return all(map(same, a, b))
        if t is FixIt:
            return a.insert == b.insert and place((a.file, a.line, a.column), (b.file, b.line, b.column))
        if t is Diagnostic or t is Note:
            return all(same(getattr(a, n), getattr(b, n)) for n in t.__record_fields__)
        if t is dict:
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if t is str:
            return same_string(a, b)
        return False

    def same_string(a: str, b: str) -> bool:
        """Whether a, b say the same but for the places and offsets they name, which moved as
        the facts' places do, noted."""
        if a in strings:
            return strings[a] == b
        if _PLACE_FREE.sub(_placeless, a) != _PLACE_FREE.sub(_placeless, b):
            return False
        if not all(place((f, int(line), int(col)), (g, int(line2), int(col2)))
                   for (f, line, col), (g, line2, col2) in zip(_UNNAMED.findall(a), _UNNAMED.findall(b))):
            return False
        return strings.setdefault(a, b) == b and strings_back.setdefault(b, a) == a

    # Local variables' slots as the facts' digest names them (unit.numbered_slots: by their first
    # appearance): equal when the slots were named again one to one.
    numbered_old, numbered_new = numbered_slots(old), numbered_slots(new)
    for name in _COMPARED:
        if not same(numbered_old.get(name, getattr(old, name)), numbered_new.get(name, getattr(new, name))):
            return None
    moves = {f: lines for f, lines in moves.items() if any(a != b for a, b in lines.items())}
    if not moves:
        return ({}, strings) if not strings else None
    # Every place in a file that moved, those whose line did not move too: what the model holds
    # of the file comes from these facts, and each of its places must be found here.
    try:
        _note_places(equal, moves, strings)
    except _NotMoved:
        return None
    for lines in moves.values():
        order = sorted(lines)
        if any(lines[a] >= lines[b] for a, b in zip(order, order[1:])):
            return None
    return moves, strings


_HOLDERS = {tuple, list, dict, Location, FixIt, Diagnostic, Note}     # the types that may hold places
# What in a string names a place: an unnamed struct's spelling ("struct (unnamed at a.c:30:8)"),
# and an offset in a USR ("Sc:a.c@S@a.c@684"); _placeless writes them without their numbers.
_UNNAMED = re.compile(r"\(unnamed at ([^()]*):([0-9]+):([0-9]+)\)")
_PLACE_FREE = re.compile(r"(\(unnamed at [^()]*:)[0-9]+(:[0-9]+\))|@[0-9]+\b")


def _placeless(m) -> str:
    return f"{m.group(1)}#{m.group(2)}" if m.group(1) else "@#"


# A unit's facts as _line_moves compares them (deps, the files read, aside): first those where a
# change the model would show is likeliest (the type of an unnamed struct says where it is).
_COMPARED = ("structs", "globals", "functions", "diagnostics", "file_components", "calls", "indirect", "taken",
             "flows", "refs", "arguments", "param_uses", "returned", "path")


def _note_places(value, moves: dict[str, dict[int, int]], strings: dict[str, str]) -> None:
    """Notes, for each place in value in a file of moves whose line it lacks, that the line did
    not move (the places of facts equal in the two units); _NotMoved when one did, or when a
    string strings names again stands unchanged here (one string of old's, two of new's)."""
    t = type(value)
    if t is tuple or t is list or t is Location:
        if len(value) == 3 and type(value[0]) is str and type(value[1]) is int and value[0] in moves:
            if moves[value[0]].setdefault(value[1], value[1]) != value[1]:
                raise _NotMoved(value)      # a line that moved in part (split in two)
            return
        for v in value:
            if type(v) is not str:
                _note_places(v, moves, strings)
            else:
                _note_string(v, moves, strings)
    elif t is dict:
        for v in value.values():
            _note_places(v, moves, strings)
    elif t is FixIt:
        if value.file in moves and moves[value.file].setdefault(value.line, value.line) != value.line:
            raise _NotMoved(value)
    elif t is Diagnostic or t is Note:
        for n in t.__record_fields__:
            _note_places(getattr(value, n), moves, strings)
    elif t is str:
        _note_string(value, moves, strings)


def _note_string(value: str, moves: dict[str, dict[int, int]], strings: dict[str, str]) -> None:
    """_note_places of a string: the places it names, and whether strings names it again."""
    if value in strings:
        raise _NotMoved(value)
    if "(unnamed at " in value:
        for file, line, _ in _UNNAMED.findall(value):
            if file in moves and moves[file].setdefault(int(line), int(line)) != int(line):
                raise _NotMoved(value)


def _relocate(value, moves: dict[str, dict[int, int]], strings: dict[str, str] | None = None):
    """value (a model's object, or tuples of them) with each place in a file of moves on its new
    line, and each string of strings as it is now: the same object where none moved.  _NotMoved
    for a place on a line moves lacks."""
    t = type(value)
    if t is str:
        return strings.get(value, value) if strings else value
    if t is Location:
        line = _new_line(value.file, value.line, moves)
        return value if line == value.line else tuple.__new__(Location, (value.file, line, value.column))
    if t is tuple:
        out = tuple(_relocate(v, moves, strings) for v in value)
        return value if all(map(is_, out, value)) else out
    if t is FixIt:
        line = _new_line(value.file, value.line, moves)
        return value if line == value.line else replace(value, line=line)
    names = getattr(t, "__record_fields__", None)
    if names is None:
        return value
    changed = {}
    for n in names:
        v = getattr(value, n)
        r = _relocate(v, moves, strings)
        if r is not v:
            changed[n] = r
    return replace(value, **changed) if changed else value


def _new_line(file: str, line: int, moves: dict[str, dict[int, int]]) -> int:
    """The line a place on this line of this file is on after the edit (see _relocate)."""
    lines = moves.get(file)
    if lines is None:
        return line
    new = lines.get(line)
    if new is None:
        raise _NotMoved((file, line))
    return new


def _file_components(units: list[UnitFacts]) -> dict[str, tuple[str, Location]]:
    """Each file's default component (QPM_FILE_COMPONENT), as the first unit that says it says it."""
    out: dict[str, tuple[str, Location]] = {}
    for u in units:
        for file, value in u.file_components.items():
            out.setdefault(file, value)
    return out


def _edges(sites: dict[tuple[str, str], dict[tuple, tuple]], functions: dict[str, Function],
           freq: dict[str, float], edge_weight: dict[tuple[str, str], float]) -> tuple[CallEdge, ...]:
    """The model's edges, from merge's sites of each (caller, callee): by their caller's location
    and their callee's name, each with its sites by place."""
    keyed = []
    frequency, edge, site, loc = freq.get, CallEdge, CallSite, _loc
    for key, s in sites.items():
        a, b = key
        calls = tuple([site(loc(where), *rest) for where, rest in (s.items() if len(s) == 1 else sorted(s.items()))])
        keyed.append(((functions[a].location, functions[b].name), edge(a, b, calls, frequency(a, 0.0) * edge_weight[key])))
    keyed.sort(key=itemgetter(0))
    return tuple(map(itemgetter(1), keyed))


def _arguments(found: dict[tuple[str, tuple, int], tuple], was: tuple[CallArgument, ...]) -> tuple[CallArgument, ...]:
    """The model's arguments, from merge's argument facts (unit.ArgumentFact) by (caller, place,
    index), in that order; each one equal to an argument of was that one."""
    if not was:
        argument = CallArgument
        made = {key: argument(a[0], a[1], a[2], a[3], a[4], a[5], _loc(a[6])) for key, a in found.items()}
    else:
        by_key = {(a.caller, a.location, a.index): a for a in was}
        made = {}
        for key, a in found.items():
            old = by_key.get(key)
            made[key] = old if old is not None and (old.caller, old.callee, old.callee_name, old.index,
                                                    old.param, old.function, old.location) == a \
                else CallArgument(*a[:6], _loc(a[6]))
    return tuple(map(made.__getitem__, sorted(made)))


def _same_or(old, new):
    """old when it equals new, else new."""
    return old if old is not None and old == new else new


def _sites_weight(sites: dict[tuple, tuple]) -> float:
    """The runs of an edge per run of its caller: its sites' weights summed, in their order."""
    if len(sites) == 1:
        for site in sites.values():
            return site[2]
    return sum([x[2] for x in sites.values()])


class _Params:
    """USR -> the type encodings of a function's parameters (its definition's, else its first
    declaration's), as pointers.Resolver asks for them: worked out for those it asks for."""

    def __init__(self, by_usr: dict[str, list[tuple]]):
        self.by_usr = by_usr
        self.known: dict[str, tuple[str, ...]] = {}

    def get(self, usr: str, default=None):
        found = self.known.get(usr)
        if found is None:
            ds = self.by_usr.get(usr)
            if not ds:
                return default
            found = self.known[usr] = tuple(p[3] for p in next((d for d in ds if d[3]), ds[0])[13])
        return found


@lru_cache(maxsize=None)
def _uses_letters(letters: str) -> str:
    """The letters of parameter uses (see Function.param_uses), each once, in their order."""
    return "".join(sorted(set(letters), key="WMRVA".index))


def _param_index(slot: str, caller: str) -> int | None:
    """i when the slot is the caller's own parameter i ("a<usr>#i", see walker.c)."""
    usr, _, index = slot[1:].rpartition("#")
    return int(index) if slot.startswith("a") and usr == caller and index.isdigit() else None


def _merge_globals(units: list[UnitFacts], functions: dict[str, Function], diags: list[Diagnostic],
                   per_unit_users: dict[str, set[str]]) -> tuple[Global, ...]:
    decls = defaultdict(dict)
    for u in units:
        for g in u.globals:
            mine = decls[g[0]]
            if g[2] not in mine:
                where = _loc(g[2])          # a key of Locations: the global's declarations
                mine[where] = GlobalDecl(*g[:2], where, *g[3:])
    readers: dict[str, set[str]] = defaultdict(set)
    writers: dict[str, set[str]] = defaultdict(set)
    for u in units:
        for holder, var, mode in u.refs:
            if holder in functions:
                touched = (readers if mode == "r" else writers)[var]
                touched.add(holder)
                # A per-unit helper touches the global in the processes of those that call it.
                touched.update(per_unit_users.get(holder, ()))
    out = []
    for usr, by_loc in decls.items():
        ds = list(by_loc.values())
        primary = next((g for g in ds if g.defined), ds[0])
        anns = _merge_annotations([(g.annotations, g.location) for g in ds], f"global '{primary.name}'", diags) \
            if any(g.annotations for g in ds) else ()
        out.append(Global(usr, primary.name, primary.type, primary.type_enc, primary.location,
                          primary.linkage, anns, tuple(sorted(readers[usr])), tuple(sorted(writers[usr])),
                          primary.defined, tuple(sorted(by_loc))))
    return tuple(sorted(out, key=lambda g: (g.location, g.usr)))


def _merge_structs(units: list[UnitFacts]) -> tuple[StructType, ...]:
    first: dict[str, tuple] = {}     # USR -> unit.StructFact
    for u in units:
        for s in u.structs:
            first.setdefault(s[0], s)
    out = [StructType(usr, name, kind, _loc(where),
                      tuple(Field(n, type_, enc, anns, _loc(at)) for n, type_, enc, anns, at in fields))
           for usr, name, kind, where, fields in first.values()]
    return tuple(sorted(out, key=lambda s: (s.location, s.usr)))
