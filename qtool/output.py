"""Models and diagnostics rendered as text (compiler style), JSON and SARIF 2.1.0."""

from __future__ import annotations

import os
from functools import lru_cache

from . import __version__
from .codes import CODES

TYPE_CHECKING = False
if TYPE_CHECKING:       # the model's classes are not needed to render one (nor at every start)
    from typing import Iterable

    from .model import Diagnostic, Location, ProgramModel

FORMATS = ("text", "json", "sarif")
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_SARIF_LEVEL = {"error": "error", "warning": "warning", "note": "note"}


def _path(file: str, base: str) -> str:
    """Paths relative to the working directory when below it, as compilers print them."""
    if not file:
        return file
    return _relative(file, base)


@lru_cache(maxsize=4096)
def _relative(file: str, base: str) -> str:
    # A model names the same few files thousands of times; relpath is the costly part of JSON.
    rel = os.path.relpath(file, base)
    return file if rel.startswith("..") else rel


def _dumps(doc: dict, pretty: bool) -> str:
    """JSON on one line unless indented output is asked for (--pretty): a model is megabytes,
    and indenting it costs more than reading the cached analysis."""
    import json
    if pretty:
        return json.dumps(doc, indent=2) + "\n"
    return json.dumps(doc, separators=(",", ":")) + "\n"


def diagnostic_line(d: Diagnostic, base: str) -> str:
    if d.location is None:
        return f"qtool: {d.severity}: {d.message} [{d.code}]"
    loc = d.location
    return f"{_path(loc.file, base)}:{loc.line}:{loc.column}: {d.severity}: {d.message} [{d.code}]"


def summary(diags: Iterable[Diagnostic]) -> str:
    diags = list(diags)
    n_err = sum(d.severity == "error" for d in diags)
    n_warn = sum(d.severity == "warning" for d in diags)
    return f"{n_err} error{'s' * (n_err != 1)}, {n_warn} warning{'s' * (n_warn != 1)}"


def diagnostics_text(diags: Iterable[Diagnostic], base: str) -> str:
    lines = []
    for d in diags:
        lines.append(diagnostic_line(d, base))
        for fx in d.fixits:
            lines.append(f"{_path(fx.file, base)}:{fx.line}:{fx.column}: note: fix-it: insert '{fx.insert.strip()}'")
        for n in d.notes:
            if n.location is None:
                lines.append(f"qtool: note: {n.message}")
            else:
                lines.append(f"{_path(n.location.file, base)}:{n.location.line}:{n.location.column}: note: {n.message}")
    return "".join(line + "\n" for line in lines)


def _loc_json(loc: Location | None, base: str) -> dict:
    if loc is None:
        return {"file": None, "line": 0, "column": 0}
    return {"file": _path(loc.file, base), "line": loc.line, "column": loc.column}


def diagnostic_json(d: Diagnostic, base: str) -> dict:
    out = {"severity": d.severity, "code": d.code, "message": d.message, **_loc_json(d.location, base)}
    if d.fixits:
        out["fixits"] = [{"file": _path(f.file, base), "line": f.line, "column": f.column, "insert": f.insert}
                         for f in d.fixits]
    if d.notes:
        out["notes"] = [{"severity": "note", "message": n.message, **_loc_json(n.location, base)} for n in d.notes]
    return out


def diagnostics_json(diags: Iterable[Diagnostic], base: str, pretty: bool = False) -> str:
    doc = {"schema": "qpm.diagnostics/1", "diagnostics": [diagnostic_json(d, base) for d in diags]}
    return _dumps(doc, pretty)


def model_json(model: ProgramModel, base: str, pretty: bool = False) -> str:
    fmap = model.function_map
    name = lambda usr: fmap[usr].name if usr in fmap else usr  # noqa: E731
    doc = {
        "schema": "qpm.model/1",
        "translation_units": [_path(t, base) for t in model.translation_units],
        "components": [{"name": c.name, "files": [_path(f, base) for f in c.files],
                        "functions": [name(u) for u in c.functions],
                        "init": [name(u) for u in c.init_functions]} for c in model.components],
        "functions": [{
            "name": f.name, "usr": f.usr, "component": f.component, "signature": f.signature,
            **_loc_json(f.location, base), "defined": f.defined, "linkage": f.linkage,
            "variadic": f.variadic, "return_type": f.return_type,
            "annotations": [str(a) for a in f.annotations],
            "declarations": [_loc_json(x, base) for x in f.declarations],
            "frequency": round(f.frequency, 6), "per_unit": f.per_unit,
            "params": [{"name": p.name, "type": p.type, "annotations": [str(a) for a in p.annotations]}
                       for p in f.params],
        } for f in model.functions],
        "calls": [{
            "caller": name(e.caller), "callee": name(e.callee),
            "caller_component": model.component_of(e.caller), "callee_component": model.component_of(e.callee),
            "weight": round(e.weight, 6),
            "sites": [{**_loc_json(s.location, base), "loops": s.loops, "branches": s.branches,
                       "local_weight": s.local_weight} for s in e.sites],
        } for e in model.edges],
        "indirect_calls": [{
            "caller": name(i.caller), **_loc_json(i.location, base), "through": i.through,
            "function_type": i.function_type, "targets": [name(t) for t in i.targets],
            "target_components": [model.component_of(t) for t in i.targets],
            "taken_at": [_loc_json(o, base) for o in i.origins],
            "narrowed": i.narrowed, "parameter": i.param,
            "weight": round(i.weight, 6),
        } for i in model.indirect_calls],
        "globals": [{
            "name": g.name, "type": g.type, **_loc_json(g.location, base), "linkage": g.linkage,
            "shared": g.shared, "annotations": [str(a) for a in g.annotations],
            "readers": [name(u) for u in g.readers], "writers": [name(u) for u in g.writers],
        } for g in model.globals],
        "structs": [{
            "name": s.name, "kind": s.kind, **_loc_json(s.location, base),
            "fields": [{"name": f.name, "type": f.type, "annotations": [str(a) for a in f.annotations]}
                       for f in s.fields],
        } for s in model.structs],
        "diagnostics": [diagnostic_json(d, base) for d in model.diagnostics],
    }
    return _dumps(doc, pretty)


def model_text(model: ProgramModel, base: str) -> str:
    fmap = model.function_map
    out = [f"{len(model.translation_units)} translation units, {len(model.components)} components, "
           f"{len(model.functions)} functions, {len(model.edges)} call edges, "
           f"{len(model.indirect_calls)} indirect calls, {len(model.globals)} globals"]
    for c in model.components:
        out.append(f"component {c.name}: {', '.join(_path(f, base) for f in c.files)}")
        for usr in c.functions:
            f = fmap[usr]
            anns = " ".join(str(a) for a in f.annotations if a.kind != "component")
            out.append(f"  {f.signature}{'  ' + anns if anns else ''}  [{_path(f.location.file, base)}:{f.location.line}]")
    per_unit = [f for f in model.functions if f.per_unit]
    if per_unit:
        out.append("compiled into each unit that includes them (header functions of internal linkage; calls to them never cross):")
        for f in per_unit:
            out.append(f"  {f.signature}  [{_path(f.location.file, base)}:{f.location.line}]")
    crossing = list(model.cross_component_edges())
    if crossing:
        out.append("calls between components (caller -> callee, estimated calls per run):")
        for e in sorted(crossing, key=lambda e: -e.weight):
            a, b = fmap[e.caller], fmap[e.callee]
            out.append(f"  {a.component}.{a.name} -> {b.component}.{b.name}  {e.weight:g}")
    if model.indirect_calls:
        out.append("indirect calls (caller -> functions it may reach; 'by type': every address-taken function of its type):")
        for i in model.indirect_calls:
            qualified = lambda f: f"{f.component}.{f.name}" if f.component else f.name  # noqa: E731
            targets = ", ".join(qualified(fmap[t]) for t in i.targets) or "no known target"
            how = "" if i.narrowed else "  (by type)"
            out.append(f"  {qualified(fmap[i.caller])} -> {targets} through '{i.through}'{how}  "
                       f"[{_path(i.location.file, base)}:{i.location.line}]")
    touched = [g for g in model.globals if g.readers or g.writers]
    if touched:
        out.append("globals:")
        for g in touched:
            comps = sorted({fmap[u].component for u in (*g.readers, *g.writers) if u in fmap} - {None})
            out.append(f"  {g.type} {g.name}{' QPM_SHARED' if g.shared else ''}  used by {', '.join(comps)}")
    return "\n".join(out) + "\n" + diagnostics_text(model.diagnostics, base)


def sarif(diags: Iterable[Diagnostic], base: str, pretty: bool = False) -> str:
    diags = list(diags)
    used = sorted({d.code for d in diags} | set(CODES))
    rules = [{"id": code, "shortDescription": {"text": CODES.get(code, code)}} for code in used]
    index = {code: i for i, code in enumerate(used)}
    results = []
    for d in diags:
        r = {"ruleId": d.code, "ruleIndex": index[d.code], "level": _SARIF_LEVEL[d.severity],
             "message": {"text": d.message}}
        if d.location is not None and d.location.file:
            region = {"startLine": max(1, d.location.line)}
            if d.location.column:
                region["startColumn"] = d.location.column
            r["locations"] = [{"physicalLocation": {
                "artifactLocation": _artifact(d.location.file, base), "region": region}}]
        related = [n for n in d.notes if n.location is not None and n.location.file]
        if related:
            r["relatedLocations"] = [{
                "id": i, "message": {"text": n.message},
                "physicalLocation": {"artifactLocation": _artifact(n.location.file, base),
                                     "region": {"startLine": max(1, n.location.line),
                                                **({"startColumn": n.location.column} if n.location.column else {})}}}
                for i, n in enumerate(related)]
        if d.fixits:
            r["fixes"] = [{
                "description": {"text": f"insert '{f.insert.strip()}'"},
                "artifactChanges": [{
                    "artifactLocation": _artifact(f.file, base),
                    "replacements": [{
                        "deletedRegion": {"startLine": f.line, "startColumn": f.column,
                                          "endLine": f.line, "endColumn": f.column},
                        "insertedContent": {"text": f.insert}}]}]} for f in d.fixits]
        results.append(r)
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "qtool", "version": __version__, "rules": rules}},
            "originalUriBaseIds": {"SRCROOT": {"uri": _dir_uri(base)}},
            "results": results,
        }],
    }
    return _dumps(doc, pretty)


def _artifact(file: str, base: str) -> dict:
    """A file below the working directory is relative to SRCROOT; others are absolute URIs."""
    from urllib.parse import quote
    rel = _path(file, base)
    if os.path.isabs(rel):
        return {"uri": "file://" + quote(rel)}
    return {"uri": quote(rel), "uriBaseId": "SRCROOT"}


def _dir_uri(base: str) -> str:
    from urllib.parse import quote
    return "file://" + quote(os.path.abspath(base).rstrip("/") + "/")
