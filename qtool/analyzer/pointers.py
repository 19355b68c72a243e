"""Which functions an indirect call may reach.

The walker (walker.c, "Function pointers") records where each function's address goes (T
records: into a slot, "-" somewhere the walk does not follow, "." nowhere), each copy of a
function pointer from a slot (W records), and the slot each indirect call reads its pointer
from.  Slots are variables (an array is one slot), struct fields (one slot per field of a struct
type, whatever object holds it), function parameters and function results.

Resolution is a flow-insensitive, field-based points-to analysis of function values:

* the values of a slot are the functions stored into it and, transitively, the values of the
  slots copied into it;
* a slot is open (its values unknown) when a value the walk does not follow is stored into it
  (the result of an indirect call or of a function defined outside the program, a pointer made
  from an integer or a `void *`, a write through a pointer to the slot), or when it is a
  parameter of a function called where the walk cannot see the arguments: one whose address is
  taken, or one nothing in the program calls (an entry point).  Copies carry openness on;
* a function escapes when its address goes somewhere the walk does not follow, or into a slot
  whose values escape (copied to somewhere not followed, or passed to a function defined outside
  the program, which may keep it and hand it back).

A call through a closed slot may reach the slot's values and every escaped function of a
compatible type; a call through an open slot, or through storage the walk does not follow
(`(*pp)(x)`, `p[i](x)` with p a pointer), every address-taken function of a compatible type.
Types are compatible when their canonical spellings are equal, or either has no prototype
(`int ()`).  This over-approximates what the program can do, as long as it moves function
pointers between objects of different types only by typed assignment (not by memcpy from one
struct type into another, or through another member of a union).
"""

from __future__ import annotations

import re
from collections import defaultdict

from ..model import Location
from ..record import record

ESCAPE = "-"
NOWHERE = "."
UNKNOWN = "?"
_NO_PROTOTYPE = re.compile(r"\(\)$")


@record
class Resolved:
    targets: tuple[str, ...]
    origins: tuple[Location, ...]     # where each target's address is taken
    narrowed: bool


def _holds_pointer(enc: str) -> bool:
    return enc.startswith("*F<") or enc.startswith("*cF<")


class Resolver:
    """Built once from every unit's records; resolve() answers for one call."""

    def __init__(self, fn_types: dict[str, str], defined: set[str], params: dict[str, tuple[str, ...]],
                 called: set[str], taken: list[tuple[str, str, Location]], flows: list[tuple[str, str]]):
        """fn_types: USR -> canonical function type; params: USR -> type encodings of its
        parameters; called: functions some function of the program calls directly; taken:
        (function, dest, where); flows: (dest, source)."""
        self.fn_types = fn_types
        self.defined = defined
        self.params = params
        self.first_taken: dict[str, Location] = {}
        for fn, _, where in taken:
            if fn not in self.first_taken or where < self.first_taken[fn]:
                self.first_taken[fn] = where
        self._compatible: dict[str, list[str]] = {}
        self.by_type: dict[str, list[str]] = defaultdict(list)
        for fn in sorted(self.first_taken):
            self.by_type[fn_types.get(fn, "?")].append(fn)
        # The functions of no prototype (or an unknown type): compatible with every call.
        self._unprototyped = [fn for t, fns in self.by_type.items() if t == "?" or _NO_PROTOTYPE.search(t)
                              for fn in fns]
        addressed = set(self.first_taken)
        # A parameter of a function called from where its arguments are not seen is open.
        self._open_functions = {fn for fn in defined if fn in addressed or fn not in called}

        values: dict[str, dict[str, Location]] = defaultdict(dict)
        escaped: dict[str, Location] = {}
        for fn, dest, where in taken:
            if dest == NOWHERE:
                continue
            into = escaped if self._sink(dest) else values[dest]
            if fn not in into or where < into[fn]:
                into[fn] = where
        succ: dict[str, set[str]] = defaultdict(set)
        opened: set[str] = set()
        escaping: set[str] = set()
        for dest, source in flows:
            if source == UNKNOWN:
                if not self._sink(dest):
                    opened.add(dest)
            elif self._sink(dest):
                escaping.add(source)
            else:
                succ[source].add(dest)
        opened.update(s for s in list(succ) + list(values) if self._source_open(s))

        # Values and openness flow along copies (a worklist to the fixpoint).
        work = list(succ)
        while work:
            s = work.pop()
            for d in succ.get(s, ()):
                mine, theirs = values.get(s), values[d]
                grew = False
                if mine:
                    for fn, where in mine.items():
                        if fn not in theirs:
                            theirs[fn] = where
                            grew = True
                if s in opened and d not in opened:
                    opened.add(d)
                    grew = True
                if grew:
                    work.append(d)
        for s in escaping:
            for fn, where in values.get(s, {}).items():
                if fn not in escaped or where < escaped[fn]:
                    escaped[fn] = where
        self.values = values
        self.opened = opened
        self.escaped = escaped

    def _sink(self, slot: str) -> bool:
        """A slot whose values go where the walk does not follow: "-" itself, a parameter of a
        function defined outside the program, or one that holds no function pointer (`void *`)."""
        if slot == ESCAPE:
            return True
        if not slot.startswith("a"):
            return False
        usr, _, index = slot[1:].rpartition("#")
        params = self.params.get(usr)
        if usr not in self.defined or params is None or not index.isdigit() or int(index) >= len(params):
            return True
        return not _holds_pointer(params[int(index)])

    def _source_open(self, slot: str) -> bool:
        if slot.startswith("r"):
            return slot[1:] not in self.defined
        if slot.startswith("a"):
            return slot[1:].rpartition("#")[0] in self._open_functions
        return False

    def compatible(self, call_type: str) -> list[str]:
        """Address-taken functions a call of this type may reach."""
        found = self._compatible.get(call_type)
        if found is None:
            if call_type == "?" or _NO_PROTOTYPE.search(call_type):
                found = sorted(self.first_taken)
            else:
                found = sorted({*self.by_type.get(call_type, ()), *self._unprototyped})
            self._compatible[call_type] = found
        return found

    def resolve(self, slot: str, call_type: str) -> Resolved:
        if slot == UNKNOWN or slot in self.opened or self._source_open(slot) or self._sink(slot):
            targets = self.compatible(call_type)
            return Resolved(tuple(targets), tuple(self.first_taken[t] for t in targets), False)
        found = dict(self.values.get(slot, {}))
        for fn in self.compatible(call_type):
            if fn in self.escaped and fn not in found:
                found[fn] = self.escaped[fn]
        targets = sorted(found)
        return Resolved(tuple(targets), tuple(found[t] for t in targets), True)
