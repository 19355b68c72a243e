"""The program model: what the analyzer learns about a C program, shared by every later stage.

Everything here is a frozen record (record.py) holding plain values (no clang objects), so a model can be
cached, compared, sent between processes and serialised.  Functions, globals and struct types are
keyed by their clang USR, which is unique per entity across translation units (a `static`
function's USR names its file).
"""

from __future__ import annotations

from collections import namedtuple
from functools import cached_property

from .record import field, made_when_read, record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:         # annotations only: typing is not imported at run time
    from typing import Iterable

SEVERITIES = ("error", "warning", "note")


class Location(namedtuple("Location", ("file", "line", "column"), defaults=(0, 0))):
    """A place in a source file (file: str, line: int, column: int); a tuple, because millions
    are made, compared and sorted."""

    __slots__ = ()

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def __reduce__(self):
        # Unpickled by tuple's own constructor: the generated __new__ is a Python call per object.
        return (tuple.__new__, (Location, (self.file, self.line, self.column)))

    def short(self) -> str:
        """As str(), with the path relative to the working directory when it lies below it."""
        import os
        rel = os.path.relpath(self.file, os.getcwd()) if self.file else self.file
        return f"{self.file if rel.startswith('..') else rel}:{self.line}:{self.column}"


@record
class FixIt:
    """Insert `insert` at a place; what an IDE applies with one click."""

    file: str
    line: int
    column: int
    insert: str


@record
class Note:
    """A place that explains a diagnostic (a use of the thing reported, a step on the way to it);
    printed right after it, as compilers print theirs."""

    message: str
    location: Location | None = None


@record
class Diagnostic:
    severity: str            # error | warning | note
    code: str                # QPM0xx, stable
    message: str
    location: Location | None = None
    fixits: tuple[FixIt, ...] = ()
    notes: tuple[Note, ...] = ()

    def sort_key(self):
        loc = self.location or Location("")
        return (loc.file, loc.line, loc.column, self.code, self.message)


@record
class Annotation:
    """One qpm annotation: kind is `in`, `out`, `string`, `count` …; arg is its C text."""

    kind: str
    arg: str = ""

    def __str__(self) -> str:
        return f"QPM_{self.kind.upper()}({self.arg})" if self.arg else f"QPM_{self.kind.upper()}"


@record
class Param:
    index: int
    name: str
    type: str                # as written (typedefs kept)
    type_enc: str            # canonical encoding, see analyzer/walker.c
    annotations: tuple[Annotation, ...] = ()
    location: Location | None = None
    end: Location | None = None   # where a fix-it inserts: the end of its declarator on the
                                  # function's annotation site (Function.annotation_site)

    def annotation(self, *kinds: str) -> Annotation | None:
        return next((a for a in self.annotations if a.kind in kinds), None)


@record
class Declaration:
    """One declaration of a function, a prototype or the definition, as written in its file."""

    location: Location
    defined: bool
    annotated: bool          # carries a qpm annotation, on the function or on a parameter
    params: tuple[Location | None, ...] = ()    # each parameter's declarator end

    @property
    def in_header(self) -> bool:
        return not self.location.file.endswith(".c")


def annotation_sites(decls: Iterable[Declaration]) -> tuple[Declaration, ...]:
    """A function's declarations in the order a new annotation should go on them: one that
    already carries annotations (a header prototype before the definition, the definition before
    another prototype), else a prototype in a header, else the definition."""
    def rank(d: Declaration) -> tuple[int, int, Location]:
        kind = 0 if d.in_header and not d.defined else 1 if d.defined else 2
        return (0 if d.annotated else 1, kind, d.location)
    return tuple(sorted(decls, key=rank))


@record
class Function:
    usr: str
    name: str
    component: str | None    # None: declared in the program but defined nowhere in it
    location: Location       # the definition, or the first declaration
    defined: bool
    linkage: str             # external | internal
    variadic: bool
    return_type: str
    return_enc: str
    annotations: tuple[Annotation, ...] = ()
    params: tuple[Param, ...] = ()
    declarations: tuple[Location, ...] = ()
    frequency: float = 0.0   # estimated runs per run of the entry points
    decls: tuple[Declaration, ...] = ()     # the declarations themselves, sorted by location
    # A function of internal linkage defined in a header (a `static inline` helper) is compiled
    # into every unit that includes it: it belongs to no component (component is None), and a
    # call to it never crosses; the calls it makes count as its callers' (see CallEdge).
    per_unit: bool = False
    # How the body uses each parameter, by index, besides passing it on whole (CallArgument):
    # letters of "W" written through, "M" read and written through, "R" read, "V" the parameter
    # itself assigned, "A" its address taken; "" unused, and () when no body was seen.
    param_uses: tuple[str, ...] = ()
    # The calls whose result the function returns (`return f(…)`, or a local variable holding
    # one): (callee USR, callee name, the call), C library calls included.
    returned_calls: tuple[tuple[str, str, Location], ...] = ()
    inline: bool = False     # declared `inline`: the compiler may copy its body into its callers
    hidden: bool = False     # hidden or protected visibility, by an attribute: the same

    def annotation(self, *kinds: str) -> Annotation | None:
        return next((a for a in self.annotations if a.kind in kinds), None)

    @property
    def annotation_site(self) -> Declaration | None:
        """Where a new annotation of this function belongs (see annotation_sites)."""
        sites = annotation_sites(self.decls)
        return sites[0] if sites else None

    @property
    def signature(self) -> str:
        args = ", ".join([f"{p.type} {p.name}".strip() for p in self.params]) or "void"
        if self.variadic:
            args += ", ..."
        return f"{self.return_type} {self.name}({args})"


@record
class CallSite:
    location: Location
    loops: int               # loop nesting depth at the call
    branches: int            # conditional nesting depth at the call
    local_weight: float      # expected runs per run of the caller


@record
class CallEdge:
    """A direct call.  A call to a per-unit function (see Function.per_unit) also makes an edge
    from the caller to every function that one calls (through other per-unit ones), at the
    caller's call sites: that is where the call really runs."""

    caller: str              # USR
    callee: str              # USR
    sites: tuple[CallSite, ...]
    weight: float            # expected calls per run of the entry points


@record
class CallArgument:
    """An argument of a call that is a plain reference (through casts and parentheses) to one of
    the caller's parameters, or to a function.  Calls into the C library are recorded too: the
    callee is then a function the program does not define."""

    caller: str              # USR
    callee: str              # USR of the function called; "" for an indirect call
    callee_name: str
    index: int               # the argument's position, from 0
    param: int | None        # the caller's parameter passed, by index …
    function: str | None     # … or the USR of the function passed
    location: Location       # the argument


@record
class IndirectCall:
    """A call through a function pointer, in any syntax (`fp(x)`, `(*fp)(x)`, `s->h(x)`, `t[i](x)`)."""

    caller: str
    location: Location
    function_type: str       # canonical type of the function called ("?" when unknown)
    through: str             # the pointer expression as written: "fp", "s->h", "t[i].h"
    targets: tuple[str, ...] # USRs of the functions it may call (see analyzer/pointers.py)
    local_weight: float
    weight: float
    origins: tuple[Location, ...] = ()  # for each target, where its address is taken
    narrowed: bool = False   # targets from what the program stores in the pointer, not the type alone
    param: int | None = None # the pointer is this parameter of the caller

    def target_origin(self, usr: str) -> Location | None:
        return self.origins[self.targets.index(usr)] if usr in self.targets and self.origins else None


@record
class Global:
    usr: str
    name: str
    type: str
    type_enc: str
    location: Location
    linkage: str
    annotations: tuple[Annotation, ...] = ()
    readers: tuple[str, ...] = ()    # USRs of functions (or initialised globals) reading it
    writers: tuple[str, ...] = ()    # … writing it or taking its address
    defined: bool = False            # a definition (not only extern declarations) was seen
    declarations: tuple[Location, ...] = ()

    @property
    def shared(self) -> bool:
        return any(a.kind == "shared" for a in self.annotations)


@record
class Field:
    name: str
    type: str
    type_enc: str
    annotations: tuple[Annotation, ...] = ()
    location: Location | None = None

    def annotation(self, *kinds: str) -> Annotation | None:
        return next((a for a in self.annotations if a.kind in kinds), None)


@record
class StructType:
    usr: str
    name: str
    kind: str                # struct | union
    location: Location
    fields: tuple[Field, ...] = ()


@record
class Component:
    name: str
    functions: tuple[str, ...]       # USRs
    files: tuple[str, ...]
    init_functions: tuple[str, ...] = ()


@record
class ProgramModel:
    components: tuple[Component, ...]      # every component a function of the model names
    functions: tuple[Function, ...]
    edges: tuple[CallEdge, ...]
    indirect_calls: tuple[IndirectCall, ...]
    globals: tuple[Global, ...]
    structs: tuple[StructType, ...]
    translation_units: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...] = field(default=())
    arguments: tuple[CallArgument, ...] = ()
    taken: tuple[tuple[str, str], ...] = ()  # (holder, function): a function or global initialiser
                                             # that takes a function's address

    @cached_property
    def hosts(self) -> dict[str, frozenset[str]]:
        """For every defined function, the components in whose processes its code runs.

        A function with external linkage runs in its own component's process: a stub stands in
        for it everywhere else.  A static function is called directly, by code of its own file, and
        no stub can stand in for it: it runs in the process of whatever calls it or takes its
        address (a function, or a global initialiser, which counts as the functions using that
        global), and so wherever they run; one that nothing reaches runs in its own component's.
        Its component names it (in reports) but does not move it.  A header's static helper
        (Function.per_unit, no component) runs wherever its callers do, or nowhere."""
        fmap = self.function_map
        out: dict[str, set[str]] = {}
        static = set()
        for f in self.functions:
            if f.defined and (f.component is not None or f.per_unit):
                if f.linkage == "internal":
                    static.add(f.usr)
                    out[f.usr] = set()
                else:
                    out[f.usr] = {f.component}
        # Who reaches each static function: callers, and takers (a global's users stand in for it).
        users = {g.usr: set(g.readers) | set(g.writers) for g in self.globals}
        reached: dict[str, set[str]] = {u: set() for u in static}
        for e in self.edges:
            if e.callee in static and e.caller in out:
                reached[e.callee].add(e.caller)
        for holder, target in self.taken:
            if target in static:
                for u in ({holder} if holder in fmap else users.get(holder, ())):
                    if u in out:
                        reached[target].add(u)
        # Propagate along static callees until nothing changes (chains and cycles of static
        # helpers).
        feeds: dict[str, set[str]] = {}
        for callee, callers in reached.items():
            for c in callers:
                feeds.setdefault(c, set()).add(callee)
        work = [u for u in out if out[u] and u in feeds]
        while work:
            u = work.pop()
            for v in feeds.get(u, ()):
                if not out[u] <= out[v]:
                    out[v] |= out[u]
                    work.append(v)
        for u in static:
            if not out[u] and fmap[u].component is not None:
                out[u] = {fmap[u].component}
        return {u: frozenset(cs) for u, cs in out.items()}

    @cached_property
    def function_map(self) -> dict[str, Function]:
        return {f.usr: f for f in self.functions}

    @cached_property
    def struct_map(self) -> dict[str, StructType]:
        return {s.usr: s for s in self.structs}

    @cached_property
    def arguments_by_param(self) -> dict[tuple[str, int], tuple[CallArgument, ...]]:
        """(caller USR, parameter index) -> the calls it is passed to whole."""
        out: dict[tuple[str, int], list[CallArgument]] = {}
        for a in self.arguments:
            if a.param is not None:
                out.setdefault((a.caller, a.param), []).append(a)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def component_map(self) -> dict[str, Component]:
        return {c.name: c for c in self.components}

    def component_of(self, usr: str) -> str | None:
        f = self.function_map.get(usr)
        return f.component if f else None

    def cross_component_edges(self) -> Iterable[CallEdge]:
        if len(self.components) < 2:
            return          # no two components for an edge to go between (components names all)
        component = {usr: f.component for usr, f in self.function_map.items() if f.component}.get
        for e in self.edges:
            a, b = component(e.caller), component(e.callee)
            if a and b and a != b:
                yield e

    def with_diagnostics(self, extra: Iterable[Diagnostic]) -> "ProgramModel":
        merged = sorted(set(self.diagnostics) | set(extra), key=Diagnostic.sort_key)
        return replace(self, diagnostics=tuple(merged))


# A merge may give a model its edges and arguments to be made when first read (record.Later): a
# cold `qtool analyze` of one component prints only how many edges there are, and the cache writer,
# in the background, makes them.
made_when_read(ProgramModel, "edges", "arguments")
