"""Merges the facts of every translation unit into one ProgramModel.

Declarations of one entity in several places (a prototype in a header, the definition in a .c
file, the same header seen by several units) share a USR and are merged here: annotations from all
of them count, and two that disagree are an error.
"""

from __future__ import annotations

import os
from collections import defaultdict

from ..model import (Annotation, CallEdge, CallSite, Component, Declaration, Diagnostic, Function,
                     Global, IndirectCall, Location, Param, ProgramModel, StructType, annotation_sites)
from . import weights
from .unit import FunctionDecl, UnitFacts

KNOWN_KINDS = {"component", "file_component", "in", "out", "inout", "string", "opaque", "count",
               "returns_string", "callback", "shared", "init"}


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


def _merge_function(decls: list[FunctionDecl], file_components: dict[str, tuple[str, Location]],
                    frequency: float, diags: list[Diagnostic]) -> Function:
    definition = next((d for d in decls if d.defined), None)
    primary = definition or decls[0]
    locations = sorted({d.location for d in decls})
    annotations = _merge_annotations([(d.annotations, d.location) for d in decls],
                                     f"function '{primary.name}'", diags)
    declared = tuple(sorted(
        (Declaration(d.location, d.defined, bool(d.annotations) or any(q.annotations for q in d.params),
                     tuple(q.end for q in d.params)) for d in decls),
        key=lambda d: d.location))
    params = []
    if len(decls) == 1:     # the common case: nothing to merge
        params = [p for p in primary.params]
        for p in params:
            if p.annotations:
                _merge_annotations([(p.annotations, p.location)], f"parameter '{p.name or p.index}' of "
                                   f"'{primary.name}'", diags)
    # A parameter's fix-it goes where the function's annotations are: its declarator end on the
    # first declaration in annotation_sites order that has it.
    sites = annotation_sites(declared) if len(decls) > 1 else ()
    for p in primary.params if len(decls) > 1 else ():
        same = [d.params[p.index] for d in decls if len(d.params) > p.index]
        named = next((q for q in same if q.name), p)
        if definition is not None and definition.params and len(definition.params) > p.index:
            named = definition.params[p.index] if definition.params[p.index].name else named
        anns = _merge_annotations([(q.annotations, q.location) for q in same],
                                  f"parameter '{named.name or p.index}' of '{primary.name}'", diags)
        end = next((s.params[p.index] for s in sites if len(s.params) > p.index and s.params[p.index]),
                   named.end)
        params.append(Param(p.index, named.name, named.type, named.type_enc, anns, named.location, end))
    component = None
    if definition is not None:
        explicit = next((a for a in annotations if a.kind == "component"), None)
        if explicit is not None:
            component = explicit.arg
        elif definition.location.file in file_components:
            component = file_components[definition.location.file][0]
        else:
            component = os.path.splitext(os.path.basename(definition.location.file))[0]
    return Function(primary.usr, primary.name, component, primary.location, definition is not None,
                    primary.linkage, primary.variadic, primary.return_type, primary.return_enc,
                    annotations, tuple(params), tuple(locations), frequency, declared)


def build_model(units: list[UnitFacts]) -> ProgramModel:
    diags: list[Diagnostic] = []
    for u in units:
        diags.extend(u.diagnostics)

    file_components: dict[str, tuple[str, Location]] = {}
    for u in units:
        for file, value in u.file_components.items():
            file_components.setdefault(file, value)

    by_usr: dict[str, list[FunctionDecl]] = defaultdict(list)
    seen_decl: set[tuple[str, Location]] = set()
    for u in units:
        for d in u.functions:
            if (d.usr, d.location) not in seen_decl:     # a header seen by several units
                seen_decl.add((d.usr, d.location))
                by_usr[d.usr].append(d)
    for usr, ds in by_usr.items():
        defs = [d for d in ds if d.defined]
        for extra in defs[1:]:
            diags.append(Diagnostic("error", "QPM036", f"'{extra.name}' is defined twice in the program "
                                                       f"(first at {defs[0].location.short()}); analyse one program at a time",
                                    extra.location))
    fn_types = {usr: ds[0].function_type for usr, ds in by_usr.items()}

    # Direct calls, grouped by edge; a site seen by several units counts once.
    sites: dict[tuple[str, str], dict[Location, CallSite]] = defaultdict(dict)
    for u in units:
        for c in u.calls:
            if c.caller in by_usr and c.callee in by_usr:
                sites[(c.caller, c.callee)][c.location] = CallSite(
                    c.location, c.loops, c.branches, weights.local_weight(c.loops, c.branches))

    taken: set[str] = set()
    for u in units:
        taken.update(t for _, t in u.taken if t in by_usr)
    by_type: dict[str, list[str]] = defaultdict(list)
    for t in sorted(taken):
        by_type[fn_types[t]].append(t)
    indirect_raw: dict[tuple[str, Location], tuple] = {}
    for u in units:
        for c in u.indirect:
            if c.caller in by_usr:
                indirect_raw[(c.caller, c.location)] = (c, tuple(by_type.get(c.callee, ())))

    # Frequencies: per-call multipliers, then propagation from the entry points.
    succ: dict[str, dict[str, float]] = defaultdict(dict)
    for (a, b), s in sites.items():
        succ[a][b] = succ[a].get(b, 0.0) + sum(x.local_weight for x in s.values())
    for c, targets in indirect_raw.values():
        share = weights.local_weight(c.loops, c.branches) / max(1, len(targets))
        for t in targets:
            succ[c.caller][t] = succ[c.caller].get(t, 0.0) + share
    called = {b for a, bs in succ.items() for b in bs if b != a}
    defined = [usr for usr, ds in by_usr.items() if any(d.defined for d in ds)]
    entries = {usr for usr in defined if usr not in called}
    entries.update(usr for usr in defined if by_usr[usr][0].name == "main" and by_usr[usr][0].linkage == "external")
    freq = weights.frequencies(sorted(by_usr), succ, entries)
    functions = {usr: _merge_function(ds, file_components, freq.get(usr, 0.0), diags)
                 for usr, ds in by_usr.items()}

    edges = tuple(sorted(
        (CallEdge(a, b, tuple(sorted(s.values(), key=lambda x: x.location)),
                  freq.get(a, 0.0) * sum(x.local_weight for x in s.values()))
         for (a, b), s in sites.items()),
        key=lambda e: (functions[e.caller].location, functions[e.callee].name)))
    indirect = tuple(sorted(
        (IndirectCall(c.caller, c.location, c.callee, c.name, targets,
                      weights.local_weight(c.loops, c.branches),
                      freq.get(c.caller, 0.0) * weights.local_weight(c.loops, c.branches))
         for c, targets in indirect_raw.values()),
        key=lambda i: i.location))

    globals_ = _merge_globals(units, functions, diags)
    structs = _merge_structs(units)

    members: dict[str, list[Function]] = defaultdict(list)
    for f in functions.values():
        if f.component is not None:
            members[f.component].append(f)
    components = tuple(
        Component(name,
                  tuple(f.usr for f in sorted(fs, key=lambda f: f.location)),
                  tuple(sorted({f.location.file for f in fs})),
                  tuple(f.usr for f in sorted(fs, key=lambda f: f.location) if f.annotation("init")))
        for name, fs in sorted(members.items()))

    unique = sorted(set(diags), key=Diagnostic.sort_key)
    return ProgramModel(components, tuple(sorted(functions.values(), key=lambda f: (f.location, f.usr))),
                        edges, indirect, globals_, structs, tuple(u.path for u in units), tuple(unique))


def _merge_globals(units: list[UnitFacts], functions: dict[str, Function],
                   diags: list[Diagnostic]) -> tuple[Global, ...]:
    decls = defaultdict(dict)
    for u in units:
        for g in u.globals:
            decls[g.usr].setdefault(g.location, g)
    readers: dict[str, set[str]] = defaultdict(set)
    writers: dict[str, set[str]] = defaultdict(set)
    for u in units:
        for holder, var, mode in u.refs:
            if holder in functions:
                (readers if mode == "r" else writers)[var].add(holder)
    out = []
    for usr, by_loc in decls.items():
        ds = list(by_loc.values())
        primary = next((g for g in ds if g.defined), ds[0])
        anns = _merge_annotations([(g.annotations, g.location) for g in ds],
                                  f"global '{primary.name}'", diags)
        out.append(Global(usr, primary.name, primary.type, primary.type_enc, primary.location,
                          primary.linkage, anns, tuple(sorted(readers[usr])), tuple(sorted(writers[usr])),
                          primary.defined, tuple(sorted(by_loc))))
    return tuple(sorted(out, key=lambda g: (g.location, g.usr)))


def _merge_structs(units: list[UnitFacts]) -> tuple[StructType, ...]:
    out: dict[str, StructType] = {}
    for u in units:
        for s in u.structs:
            out.setdefault(s.usr, s)
    return tuple(sorted(out.values(), key=lambda s: (s.location, s.usr)))
