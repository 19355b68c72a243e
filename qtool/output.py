"""Models and diagnostics rendered as text (compiler style), JSON and SARIF 2.1.0."""

from __future__ import annotations

import os
from functools import lru_cache

from . import __version__
from .codes import CODES
from .record import size

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


def model_json(model: ProgramModel, base: str, pretty: bool = False, known: dict | None = None) -> str:
    """The model as JSON.  known: file -> (functions, edges, arguments, (code, json_part)), the
    JSON of each file's functions and calls as an earlier model had them (analyzer/cache.py
    keeps them with a model): taken for each file whose functions, or calls, are the same here."""
    if pretty:
        return _dumps(_model_doc(model, base), True)
    # On one line, the functions and the calls (most of a model) are written directly, as
    # json.dumps writes them (tests compare the two): building their dicts first, and encoding
    # those, took twice as long.
    import json
    known = known or {}
    doc = _model_doc(model, base, lean=True)
    fmap = model.function_map
    loc = _LocJson(base)
    parts = []
    for key, value in doc.items():
        if key == "functions":
            texts = []
            for file, run in _runs(model.functions, lambda f: f.location.file):
                k = known.get(file)
                if k is not None and k[3][1] == base and k[0] == run:
                    texts.append(k[3][3])
                else:
                    texts.append(",".join([_function_json(f, loc) for f in run]))
            text = "[" + ",".join(t for t in texts if t) + "]"
        elif key == "calls":
            texts = []
            for file, run in _runs(model.edges, lambda e: fmap[e.caller].location.file if e.caller in fmap else None):
                k = known.get(file)
                if k is not None and k[1] == run and json_part_holds(k[3][1:], run, fmap, base):
                    texts.append(k[3][4])
                else:
                    texts.append(",".join([_edge_json(e, fmap, loc) for e in run]))
            text = "[" + ",".join(t for t in texts if t) + "]"
        else:
            text = json.dumps(value, separators=(",", ":"))
        parts.append(f'"{key}":{text}')
    return "{" + ",".join(parts) + "}\n"


def _runs(items, key):
    """The items in runs of consecutive ones of the same key: (key, tuple of the run)."""
    out, current, run = [], None, []
    for item in items:
        k = key(item)
        if run and k != current:
            out.append((current, tuple(run)))
            run = []
        current = k
        run.append(item)
    if run:
        out.append((current, tuple(run)))
    return out


def _endpoints(edges, fmap) -> dict:
    """What the JSON of these calls says of the functions at their ends: name and component."""
    out = {}
    for e in edges:
        for usr in (e.caller, e.callee):
            if usr not in out:
                f = fmap.get(usr)
                out[usr] = (f.name, f.component) if f is not None else None
    return out


def json_part(functions, edges, fmap, base: str) -> tuple:
    """A file's functions and calls (those of its functions) as model_json writes them on one
    line, to be kept with a model: (base, the ends of its calls, functions JSON, calls JSON)."""
    loc = _LocJson(base)
    return (base, _endpoints(edges, fmap), ",".join([_function_json(f, loc) for f in functions]),
            ",".join([_edge_json(e, fmap, loc) for e in edges]))


def json_part_holds(part: tuple, edges, fmap, base: str) -> bool:
    """Whether the JSON of a file's calls (json_part) is still what model_json writes of these
    calls: the same base directory, and the functions at their ends named and placed as then."""
    return part[0] == base and part[1] == _endpoints(edges, fmap)


def _model_doc(model: ProgramModel, base: str, lean: bool = False) -> dict:
    """The model as JSON values; lean: without its functions and calls (model_json writes them)."""
    fmap = model.function_map
    name = lambda usr: fmap[usr].name if usr in fmap else usr  # noqa: E731
    doc = {
        "schema": "qpm.model/1",
        "translation_units": [_path(t, base) for t in model.translation_units],
        "components": [{"name": c.name, "files": [_path(f, base) for f in c.files],
                        "functions": [name(u) for u in c.functions],
                        "init": [name(u) for u in c.init_functions]} for c in model.components],
        "functions": None if lean else [{
            "name": f.name, "usr": f.usr, "component": f.component, "signature": f.signature,
            **_loc_json(f.location, base), "defined": f.defined, "linkage": f.linkage,
            "variadic": f.variadic, "return_type": f.return_type,
            "annotations": [str(a) for a in f.annotations],
            "declarations": [_loc_json(x, base) for x in f.declarations],
            "frequency": round(f.frequency, 6), "per_unit": f.per_unit,
            "params": [{"name": p.name, "type": p.type, "annotations": [str(a) for a in p.annotations]}
                       for p in f.params],
        } for f in model.functions],
        "calls": None if lean else [{
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
    return doc


# JSON values written directly, as json.dumps writes them (ensure_ascii, NaN and Infinity
# allowed, compact separators).

def _str(value) -> str:
    """A string, or None."""
    return "null" if value is None else _encode(value)


def _encode(text: str) -> str:
    global _encode
    from json.encoder import encode_basestring_ascii as _encode
    return _encode(text)


def _value(value) -> str:
    """Any JSON scalar: None, a bool, a string, an int or a float."""
    kind = type(value)
    if kind is str:
        return _encode(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if value != value:
            return "NaN"
        if value == float("inf"):
            return "Infinity"
        if value == float("-inf"):
            return "-Infinity"
        return float.__repr__(value)
    import json
    return json.dumps(value, separators=(",", ":"))


class _LocJson:
    """The "file", "line" and "column" members of a place (see _loc_json), without braces;
    each file's path is encoded once."""

    def __init__(self, base: str):
        self.base = base
        self.files: dict[str, str] = {}

    def __call__(self, loc) -> str:
        if loc is None:
            return '"file":null,"line":0,"column":0'
        f = self.files.get(loc.file)
        if f is None:
            f = self.files[loc.file] = _str(_path(loc.file, self.base))
        line, column = loc.line, loc.column
        return (f'"file":{f},"line":{int.__repr__(line) if type(line) is int else _value(line)},'
                f'"column":{int.__repr__(column) if type(column) is int else _value(column)}')


def _strings(values) -> str:
    return "[" + ",".join([_encode(str(v)) for v in values]) + "]" if values else "[]"


def _function_json(f, loc: _LocJson) -> str:
    v = _value
    params = ",".join([f'{{"name":{v(p.name)},"type":{v(p.type)},"annotations":{_strings(p.annotations)}}}'
                       for p in f.params])
    declarations = ",".join(["{" + loc(x) + "}" for x in f.declarations])
    return (f'{{"name":{v(f.name)},"usr":{v(f.usr)},"component":{v(f.component)},'
            f'"signature":{v(f.signature)},{loc(f.location)},"defined":{v(f.defined)},'
            f'"linkage":{v(f.linkage)},"variadic":{v(f.variadic)},"return_type":{v(f.return_type)},'
            f'"annotations":{_strings(f.annotations)},"declarations":[{declarations}],'
            f'"frequency":{v(round(f.frequency, 6))},"per_unit":{v(f.per_unit)},"params":[{params}]}}')


def _edge_json(e, fmap, loc: _LocJson) -> str:
    v = _value
    a, b = fmap.get(e.caller), fmap.get(e.callee)
    sites = ",".join([f'{{{loc(s.location)},"loops":{v(s.loops)},"branches":{v(s.branches)},'
                      f'"local_weight":{v(s.local_weight)}}}' for s in e.sites])
    return (f'{{"caller":{v(a.name if a else e.caller)},"callee":{v(b.name if b else e.callee)},'
            f'"caller_component":{v(a.component if a else None)},'
            f'"callee_component":{v(b.component if b else None)},'
            f'"weight":{v(round(e.weight, 6))},"sites":[{sites}]}}')


def model_text(model: ProgramModel, base: str) -> str:
    fmap = model.function_map
    out = [f"{len(model.translation_units)} translation units, {len(model.components)} components, "
           f"{len(model.functions)} functions, {size(model, 'edges')} call edges, "
           f"{len(model.indirect_calls)} indirect calls, {len(model.globals)} globals"]
    paths: dict[str, str] = {}          # each file's as printed (a component's functions share a few)
    for c in model.components:
        out.append(f"component {c.name}: {', '.join(_path(f, base) for f in c.files)}")
        for usr in c.functions:
            f = fmap[usr]
            anns = " ".join([str(a) for a in f.annotations if a.kind != "component"]) if f.annotations else ""
            file = f.location.file
            path = paths.get(file)
            if path is None:
                path = paths[file] = _path(file, base)
            out.append(f"  {f.signature}{'  ' + anns if anns else ''}  [{path}:{f.location.line}]")
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
