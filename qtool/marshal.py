"""Which values can cross a process boundary, and how (SPEC §2).

Every parameter and return of a function called across a boundary is classified:

    scalar      integers, floats, enums: passed by value
    struct      a pointer-free struct by value
    deep        a struct whose pointer fields all say how to copy them, deep-copied
    in/out/inout  a pointer to `count` elements (bytes for void *), copied in and/or back
    deep_in     a pointer to `count` structs with pointers, each deep-copied in (never back)
    string      a NUL-terminated char string
    opaque      a handle passed through, never dereferenced by the receiver
    callback    a function pointer, called back across the boundary (scalar arguments and result)

and anything else is a diagnostic.  This module is the one place that decides how a value
crosses: `qtool check` reports what it refuses, and the stub generator builds exactly what it
accepts.  An array parameter (`T a[N]`) is the pointer C makes of it, with N elements unless
annotated.  Types are read from the analyzer's canonical encoding (see analyzer/walker.c): "*"
pointer ("*c" to const), "[N]" array, "S<usr>" struct, "B<name>" builtin, …
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

from .model import Annotation, Diagnostic, FixIt, Function, Location, Param, ProgramModel, StructType

_INTEGERS = {"_Bool", "bool", "char", "signed char", "unsigned char", "short", "unsigned short",
             "int", "unsigned int", "long", "unsigned long", "long long", "unsigned long long",
             "__int128", "unsigned __int128", "wchar_t", "char16_t", "char32_t"}
_CHARS = {"char", "signed char", "unsigned char"}
_LENGTH_NAME = re.compile(r"^(n|len|length|size|sz|count|cnt|num|nbytes|nelem|cap|capacity|"
                          r"n_\w+|\w+_(len|length|size|sz|count|cnt|n|num|cap|bytes))$", re.I)
_TOKEN = re.compile(r"\s*(?:(?P<id>[A-Za-z_]\w*)|(?P<num>0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*)|"
                    r"(?P<op><<|>>|[-+*/%()&|^~?:<>]))")
POINTER_KINDS = ("in", "out", "inout")


@dataclass(frozen=True)
class Marshal:
    kind: str                  # scalar | struct | deep | in | out | inout | deep_in | string | opaque | callback | void
    count: str | None = None   # the C expression, for in/out/inout
    element: str = ""          # element type encoding, for in/out/inout


# Type encodings.

def is_pointer(enc: str) -> bool:
    return enc.startswith("*")


def pointee(enc: str) -> str:
    return enc[2:] if enc.startswith("*c") else enc[1:]


def is_function(enc: str) -> bool:
    """A function type: "F<canonical spelling>" (the spelling, e.g. "int (int, char *)")."""
    return enc.startswith("F<")


def function_spelling(enc: str) -> str:
    return enc[2:-1]


def is_integer(enc: str) -> bool:
    return enc == "E" or (enc.startswith("B") and enc[1:] in _INTEGERS)


def is_char_pointer(enc: str) -> bool:
    return is_pointer(enc) and pointee(enc)[1:] in _CHARS and pointee(enc).startswith("B")


def param_enc(p: Param) -> str:
    """The type a parameter really has: C makes an array parameter a pointer to its element
    (const when the element is; the canonical encoding of an array does not say, its spelling
    does)."""
    enc = p.type_enc
    if not enc.startswith("["):
        return enc
    return ("*c" if _array_element_const(p.type) else "*") + enc[enc.index("]") + 1:]


def array_length(p: Param) -> int | None:
    """N for an array parameter `T a[N]`, else None."""
    m = re.match(r"\[(\d+)\]", p.type_enc)
    return int(m.group(1)) if m else None


def _array_element_const(spelling: str) -> bool:
    base = spelling.split("[", 1)[0].strip()
    if "*" in base:             # an array of pointers: is the pointer itself const?
        return base.endswith("const")
    return bool(re.search(r"(^|\s)const(\s|$)", base))


def callback_signature(spelling: str) -> tuple[str, list[str], str | None]:
    """'int (int, double)' -> ('int', ['int', 'double'], None).  The third item says what stops
    the type from being called back across a boundary: only by-value scalars cross in callbacks."""
    depth, start = 0, None
    for i, ch in enumerate(spelling):
        if ch == "(":
            if depth == 0 and start is None:
                start = i
            depth += 1
        elif ch == ")":
            depth -= 1
    ret = spelling[:start].strip() if start is not None else spelling
    inner = spelling[start + 1:spelling.rindex(")")] if start is not None else ""
    params, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            params.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip() and cur.strip() != "void":
        params.append(cur.strip())
    for t in [ret, *params]:
        if "*" in t or "[" in t or "(" in t or t.startswith(("struct ", "union ")) or t == "...":
            return ret, params, t
    return ret, params, None


def _strip_arrays(enc: str) -> str:
    while enc.startswith("["):
        enc = enc[enc.index("]") + 1:]
    while enc.startswith("A"):
        enc = enc[1:]
    return enc


def pointer_free(enc: str, structs: dict[str, StructType], seen: frozenset = frozenset()) -> bool:
    enc = _strip_arrays(enc)
    if enc.startswith("*") or is_function(enc):
        return False
    if enc[:1] in ("S", "U"):
        s = structs.get(enc[1:])
        if s is None or s.usr in seen:
            return s is not None
        return all(pointer_free(f.type_enc, structs, seen | {s.usr}) for f in s.fields)
    return True


def struct_problem(enc: str, structs: dict[str, StructType], seen: frozenset = frozenset()) -> str | None:
    """Why a struct (by value) cannot be deep-copied, or None when it can."""
    enc = _strip_arrays(enc)
    if enc[:1] not in ("S", "U"):
        return None
    s = structs.get(enc[1:])
    if s is None:
        return "its definition is not visible"
    if s.usr in seen:
        return "it is recursive"
    for f in s.fields:
        fenc = _strip_arrays(f.type_enc)
        if is_pointer(fenc) and fenc != f.type_enc:
            return f"field '{f.name}' ({f.type}) is an array of pointers"
        if is_pointer(fenc):
            if f.annotation("opaque"):
                continue
            if f.annotation("string") and is_char_pointer(fenc):
                continue
            if f.annotation("count"):
                inner = struct_problem(pointee(fenc), structs, seen | {s.usr})
                if is_pointer(pointee(fenc)) or inner:
                    return f"field '{f.name}' points to {'pointers' if not inner else inner}"
                continue
            return f"field '{f.name}' ({f.type}) is a pointer with no QPM_COUNT, QPM_STRING or QPM_OPAQUE"
        if is_function(fenc):
            return f"field '{f.name}' is a function"
        if s.kind == "union" and not pointer_free(fenc, structs):
            return f"union member '{f.name}' holds pointers"
        inner = struct_problem(fenc, structs, seen | {s.usr})
        if inner:
            return f"field '{f.name}': {inner}"
    return None


# Count expressions.

def count_problems(expr: str, names: dict[str, str]) -> list[tuple[str, str]]:
    """Problems of a count expression over `names` (name -> type encoding): (code, message)."""
    out: list[tuple[str, str]] = []
    pos, depth_sizeof, paren = 0, None, 0
    expect_sizeof_paren = False
    text = expr.strip()
    if not text:
        return [("QPM020", "the count expression is empty")]
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            rest = text[pos:].strip()
            if not rest:
                break
            return [("QPM020", f"'{rest[0]}' is not allowed in a count expression "
                     "(use parameters, integer literals, sizeof and arithmetic)")]
        pos = m.end()
        tok_id, tok_op = m.group("id"), m.group("op")
        if tok_op == "(":
            paren += 1
            if expect_sizeof_paren:
                depth_sizeof = paren
                expect_sizeof_paren = False
        elif tok_op == ")":
            if depth_sizeof == paren:
                depth_sizeof = None
            paren -= 1
        elif tok_id == "sizeof":
            expect_sizeof_paren = True
        elif tok_id and depth_sizeof is None:
            if tok_id not in names:
                out.append(("QPM020", f"'{tok_id}' in count expression '{expr}' names no "
                            f"{'parameter' if names is not None else 'field'}"))
            elif not is_integer(names[tok_id]):
                out.append(("QPM021", f"'{tok_id}' in count expression '{expr}' is not an integer"))
    return out


def _length_param(fn: Function, p: Param) -> Param | None:
    nxt = fn.params[p.index + 1] if p.index + 1 < len(fn.params) else None
    if nxt is not None and is_integer(nxt.type_enc) and _LENGTH_NAME.match(nxt.name or ""):
        return nxt
    return None


def _fixit(p: Param, text: str) -> tuple[FixIt, ...]:
    if p.end is None or not p.end.file:
        return ()
    return (FixIt(p.end.file, p.end.line, p.end.column, " " + text),)


def _function_fixit(fn: Function, text: str) -> tuple[FixIt, ...]:
    """Inserts text at the start of the line naming the function on its annotation site."""
    site = fn.annotation_site
    loc = site.location if site is not None else fn.location
    return (FixIt(loc.file, loc.line, 1, text),)


def classify_param(model: ProgramModel, fn: Function, p: Param, severity: str,
                   context: str) -> tuple[Marshal | None, list[Diagnostic]]:
    """How parameter p of fn crosses; unannotated problems get `severity`."""
    enc = param_enc(p)
    structs = model.struct_map
    what = f"'{fn.name}' is called {context}: parameter '{p.name or p.index + 1}' ({p.type})"
    ann = p.annotation(*POINTER_KINDS, "string", "opaque", "callback")
    diags: list[Diagnostic] = []

    def problem(code: str, msg: str, fixits=()) -> tuple[None, list[Diagnostic]]:
        diags.append(Diagnostic(severity, code, msg, p.location, tuple(fixits)))
        return None, diags

    def pointed(kind: str, count: str, elem: str, how: str) -> tuple[Marshal | None, list[Diagnostic]]:
        """A pointer to `count` elements: structs with pointers are deep-copied, in only."""
        if pointer_free(elem, structs):
            return Marshal(kind, count, elem), diags
        if elem.startswith("["):
            return problem("QPM014", f"{what} points to arrays of structs with pointers, which the split "
                                     "build does not deep-copy; pass a pointer to the structs themselves")
        if kind != "in":
            return problem("QPM014", f"{what} points to structs with pointers and is {how}: such structs "
                                     "are deep-copied in only, so pass them as QPM_IN (or through a const "
                                     "pointer) and return results some other way")
        return Marshal("deep_in", count, elem), diags

    if ann is not None:
        if ann.kind in POINTER_KINDS:
            elem = pointee(enc)
            if is_pointer(_strip_arrays(elem)):
                return problem("QPM012", f"{what}: {ann} cannot copy pointers to pointers; "
                                         "pass the pointed-to data in a struct with QPM_COUNT fields")
            why = struct_problem(elem, structs)
            if why:
                return problem("QPM014", f"{what} points to a struct that cannot be copied: {why}")
            return pointed(ann.kind, ann.arg, elem, str(ann))
        if ann.kind == "callback" and is_pointer(enc) and is_function(pointee(enc)):
            spelling = function_spelling(pointee(enc))
            bad = callback_signature(spelling)[2]
            if bad is not None:
                return problem("QPM013", f"{what} is a callback of type '{spelling}', which passes '{bad}': "
                                         "calls come back across the boundary with scalar arguments and "
                                         "results only (integers, floating point, enums)")
        return Marshal(ann.kind), diags     # string, opaque, callback: validated in check_annotations

    if not is_pointer(enc):
        if is_function(enc):
            return problem("QPM013", f"{what} is a function without QPM_CALLBACK")
        why = struct_problem(enc, structs)
        if why:
            return problem("QPM014", f"{what} is a struct that cannot be copied: {why}")
        kind = "struct" if enc[:1] in ("S", "U") else "scalar"
        if kind == "struct" and not pointer_free(enc, structs):
            kind = "deep"
        return Marshal(kind), diags

    inner = pointee(enc)
    const = enc.startswith("*c")
    length = _length_param(fn, p)
    copy = "QPM_IN" if const else "QPM_INOUT"
    n = array_length(p)
    count = str(n) if n is not None else "1"
    if is_function(inner):
        return problem("QPM013", f"{what} is a function pointer; mark it QPM_CALLBACK "
                                 "to have calls come back across the boundary",
                       _fixit(p, "QPM_CALLBACK"))
    if inner == "V":
        fix = _fixit(p, f"{copy}({length.name})") if length else ()
        hint = f"; {copy}({length.name}) copies {length.name} bytes" if length else ""
        return problem("QPM010", f"{what} has no annotation: say how "
                                 f"much to copy with QPM_IN/QPM_OUT/QPM_INOUT(count), or QPM_OPAQUE{hint}", fix)
    if inner.startswith("B") and inner[1:] in _CHARS and n is None:
        if length:
            fix, hint = _fixit(p, f"{copy}({length.name})"), f"{copy}({length.name})"
        else:
            fix, hint = _fixit(p, "QPM_STRING"), "QPM_STRING"
        return problem("QPM011", f"{what} has no annotation: is it a string "
                                 f"(QPM_STRING) or a buffer (QPM_IN/QPM_OUT/QPM_INOUT(count))? "
                                 f"Perhaps {hint}", fix)
    if is_pointer(_strip_arrays(inner)):
        return problem("QPM012", f"{what} points to pointers, which cannot be copied; "
                                 "pass the data in a struct with QPM_COUNT fields, or mark it QPM_OPAQUE")
    why = struct_problem(inner, structs)
    if why:
        return problem("QPM014", f"{what} points to a struct that cannot be copied: {why}")
    return pointed("in" if const else "inout", count, inner,
                   f"{copy}({count}) by default (not const)" if not const else copy)


def classify_return(model: ProgramModel, fn: Function, severity: str,
                    context: str) -> tuple[Marshal | None, list[Diagnostic]]:
    enc = fn.return_enc
    if enc == "V":
        return Marshal("void"), []
    if is_pointer(enc):
        if fn.annotation("opaque"):
            return Marshal("opaque"), []
        if fn.annotation("returns_string"):
            return Marshal("string"), []
        fix = _function_fixit(fn, "QPM_RETURNS_STRING ") if is_char_pointer(enc) else ()
        return None, [Diagnostic(severity, "QPM015",
                                 f"'{fn.name}' is called {context}: it returns a pointer ({fn.return_type}); mark it "
                                 "QPM_OPAQUE (a handle) or QPM_RETURNS_STRING (a string copied to the caller)",
                                 fn.location, fix)]
    why = struct_problem(enc, model.struct_map)
    if not why and enc[:1] in ("S", "U") and not pointer_free(enc, model.struct_map):
        why = ("it has pointers, and what they point to would have no owner in the caller's process "
               "(structs with pointers cross as arguments only)")
    if why:
        return None, [Diagnostic(severity, "QPM014", f"'{fn.name}' is called {context}: it returns a struct "
                                                     f"that cannot be copied: {why}", fn.location)]
    if enc[:1] in ("S", "U"):
        return Marshal("struct"), []
    return Marshal("scalar"), []


def check_signature(model: ProgramModel, fn: Function, severity: str, context: str) -> list[Diagnostic]:
    """Every problem with calling fn across a boundary."""
    diags: list[Diagnostic] = []
    if fn.variadic:
        diags.append(Diagnostic(severity, "QPM030", f"'{fn.name}' is called {context}: it is variadic, "
                                                    "and variadic arguments cannot be marshalled", fn.location))
    for p in fn.params:
        diags += classify_param(model, fn, p, severity, context)[1]
    diags += classify_return(model, fn, severity, context)[1]
    return diags


# Checks that do not depend on where the boundaries are: the annotations themselves.

def check_annotations(model: ProgramModel) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    structs = model.struct_map
    for fn in model.functions:
        if not fn.defined and fn.component is None and not (fn.annotations or any(p.annotations for p in fn.params)):
            continue
        names = {p.name: p.type_enc for p in fn.params if p.name}
        for p in fn.params:
            what = f"parameter '{p.name or p.index + 1}' of '{fn.name}'"
            for a in p.annotations:
                out += _param_annotation_problems(fn, p, a, names, what)
        if fn.annotation("init") and (fn.return_enc != "V" or fn.params or fn.variadic):
            out.append(Diagnostic("error", "QPM033", f"QPM_INIT function '{fn.name}' must be 'void "
                                                     f"{fn.name}(void)', not '{fn.signature}'", fn.location))
        rs = fn.annotation("returns_string")
        if rs and not is_char_pointer(fn.return_enc):
            out.append(Diagnostic("error", "QPM022", f"QPM_RETURNS_STRING on '{fn.name}', which returns "
                                                     f"'{fn.return_type}', not 'char *'", fn.location))
        if fn.annotation("opaque") and not is_pointer(fn.return_enc):
            out.append(Diagnostic("error", "QPM023", f"QPM_OPAQUE on '{fn.name}', which does not "
                                                     "return a pointer", fn.location))
    for g in model.globals:
        if g.shared and not pointer_free(g.type_enc, structs):
            out.append(Diagnostic("error", "QPM031", f"QPM_SHARED global '{g.name}' ({g.type}) holds "
                                                     "pointers, which mean nothing in another process", g.location))
    for s in model.structs:
        fields = {f.name: f.type_enc for f in s.fields}
        for f in s.fields:
            for a in f.annotations:
                what = f"field '{f.name}' of '{s.kind} {s.name or '(anonymous)'}'"
                if a.kind == "count":
                    if not is_pointer(f.type_enc):
                        out.append(Diagnostic("error", "QPM023", f"QPM_COUNT on {what}, which is not a pointer", f.location))
                    for code, msg in count_problems(a.arg, fields):
                        out.append(Diagnostic("error", "QPM025" if code == "QPM020" else code,
                                              msg.replace("names no parameter", "names no sibling field"), f.location))
                elif a.kind == "string" and not is_char_pointer(f.type_enc):
                    out.append(Diagnostic("error", "QPM022", f"QPM_STRING on {what} ({f.type}), which is not a char pointer", f.location))
                elif a.kind == "opaque" and not is_pointer(f.type_enc):
                    out.append(Diagnostic("error", "QPM023", f"QPM_OPAQUE on {what}, which is not a pointer", f.location))
                elif a.kind not in ("count", "string", "opaque"):
                    out.append(Diagnostic("error", "QPM023", f"{a} cannot annotate a struct field ({what})", f.location))
    return out


def _param_annotation_problems(fn: Function, p: Param, a: Annotation, names: dict[str, str],
                               what: str) -> list[Diagnostic]:
    out = []
    enc = param_enc(p)
    if a.kind in POINTER_KINDS:
        if not is_pointer(enc):
            out.append(Diagnostic("error", "QPM023", f"{a} on {what}, which is not a pointer ({p.type})", p.location))
        for code, msg in count_problems(a.arg, names):
            out.append(Diagnostic("error", code, f"{what}: {msg}", p.location))
    elif a.kind == "string":
        if not is_char_pointer(enc):
            out.append(Diagnostic("error", "QPM022", f"QPM_STRING on {what} ({p.type}), which is not a char pointer", p.location))
    elif a.kind == "opaque":
        if not is_pointer(p.type_enc):
            out.append(Diagnostic("error", "QPM023", f"QPM_OPAQUE on {what}, which is not a pointer ({p.type})", p.location))
    elif a.kind == "callback":
        if not is_pointer(enc) or not is_function(pointee(enc)):
            out.append(Diagnostic("error", "QPM023", f"QPM_CALLBACK on {what}, which is not a function pointer ({p.type})", p.location))
    else:
        out.append(Diagnostic("error", "QPM023", f"{a} cannot annotate a parameter ({what})", p.location))
    if len([x for x in p.annotations if x.kind in (*POINTER_KINDS, "string", "opaque", "callback")]) > 1 \
            and a is p.annotations[-1]:
        kinds = ", ".join(str(x) for x in p.annotations)
        out.append(Diagnostic("error", "QPM024", f"{what} has more than one way to cross: {kinds}", p.location))
    return out


# Checks that depend on the boundaries.

def check_boundaries(model: ProgramModel, domain_of: Callable[[str], str | None], severity: str,
                     describe: Callable[[str, str], str]) -> list[Diagnostic]:
    """Problems with every call that crosses between two domains.

    domain_of maps a component to its domain (None: not part of the program); describe(a, b)
    words the crossing for messages ("across the boundary from 'net' to 'store'").
    """
    out: list[Diagnostic] = []
    checked: set[str] = set()
    fmap = model.function_map
    for e in model.edges:
        a, b = fmap[e.caller].component, fmap[e.callee].component
        if a is None or b is None:
            continue
        da, db = domain_of(a), domain_of(b)
        if da == db or e.callee in checked:
            continue
        checked.add(e.callee)
        out += check_signature(model, fmap[e.callee], severity, describe(da, db))
    for g in model.globals:
        if g.shared or g.type.startswith("const "):
            continue
        touchers = set(g.readers) | set(g.writers)
        domains = sorted({domain_of(fmap[u].component) for u in touchers
                          if u in fmap and fmap[u].component is not None} - {None})
        if len(domains) > 1 and g.writers:
            names = ", ".join(f"'{d}'" for d in domains)
            out.append(Diagnostic(severity, "QPM032",
                                  f"global '{g.name}' is written and used by {names}, which would run in "
                                  "separate processes: mark it QPM_SHARED (pointer-free data travelling with "
                                  "each call) or keep them together", g.location))
    for ic in model.indirect_calls:
        caller = fmap[ic.caller]
        if any(p.name == ic.through for p in caller.params):
            continue    # a pointer parameter: its own crossing is checked (QPM013, QPM_CALLBACK)
        da = domain_of(caller.component) if caller.component else None
        far = sorted({fmap[t].name for t in ic.targets
                      if fmap[t].component and domain_of(fmap[t].component) != da})
        if far:
            out.append(Diagnostic("warning", "QPM035",
                                  f"indirect call through '{ic.through}' may reach {', '.join(far)} in another "
                                  "domain; such pointers must be passed across as QPM_CALLBACK parameters",
                                  ic.location))
    return out


def sorted_unique(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(set(diags), key=Diagnostic.sort_key)
