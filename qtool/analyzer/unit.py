"""One translation unit: parse it with libclang, walk it once, keep the facts.

The facts of a unit are plain values (no clang objects) so they can come back from a worker
process and be cached on disk.  The cache entry remembers every file the unit read; it stays valid
while each of them has the same size and modification time, or failing that the same contents.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import pickle
import re
import sys
import threading
from collections import namedtuple

from .. import __version__
from ..model import Annotation, Diagnostic, FixIt, Location
from ..record import field, record
from . import clang_env
from .cache import FORMAT, dep as _dep, filled, pack_one, sha256, unchanged, unpack_one

TYPE_CHECKING = False
if TYPE_CHECKING:         # annotations only: typing is not imported at run time
    from typing import Callable

CLANG_ATTRS = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "clang_attrs"))

FIXED_FLAGS = ("-Wno-unknown-warning-option", "-Wno-ignored-optimization-argument")
_SEVERITY = {1: "note", 2: "warning", 3: "error", 4: "error"}


# A unit's facts are plain tuples, laid out as the named tuples below say (which name their
# fields for the code that reads them: FunctionDecl._make(t), or unpacking).  Places in them are
# plain (file, line, column) tuples, which compare and hash as Locations do; the merge makes the
# model's objects of them (build.py).  Plain tuples are what pickle writes and reads fastest, and
# every unit's facts cross a pipe from a worker and go to and come from the cache: as record
# objects they took four times as long, in both directions.
FunctionDecl = namedtuple("FunctionDecl", (
    "usr", "name", "location", "defined", "linkage", "variadic", "static", "return_type", "return_enc",
    "function_type",
    "annotations",       # tuple[Annotation, ...]
    "inline",            # declared inline
    "hidden",            # hidden or protected visibility, by an attribute
    "params"))           # tuple[ParamFact, ...]
ParamFact = namedtuple("ParamFact", ("index", "name", "type", "type_enc", "annotations", "location", "end"))
GlobalDecl = namedtuple("GlobalDecl", ("usr", "name", "location", "defined", "linkage", "type", "type_enc",
                                       "annotations"))
StructFact = namedtuple("StructFact", ("usr", "name", "kind", "location", "fields"))   # fields: FieldFact each
FieldFact = namedtuple("FieldFact", ("name", "type", "type_enc", "annotations", "location"))
# callee: USR for a direct call; the function type for an indirect one.  name: the callee's name,
# or the expression holding the pointer.  slot: an indirect call's, the slot the pointer is read
# from (see walker.c); "?" for a direct call.
Call = namedtuple("Call", ("caller", "callee", "name", "location", "loops", "branches", "slot"))
ArgumentFact = namedtuple("ArgumentFact", ("caller", "callee", "callee_name", "index", "param", "function",
                                           "location"))     # as model.CallArgument


# Where a unit's facts name slots (pointers.py): a local variable's ("v" and its USR), or a field's
# of a struct declared in a function or unnamed ("f" and its USR), says where in its file that is
# declared, in bytes ("vc:file.c@1234@F@f@x"), and so changes with every edit above it that
# changes a line's length.  No slot reaches the model but through the pointer analysis, which only
# compares them with each other: facts whose slots are named again one to one say the same.
_SLOTS = {"flows": (1, 2), "taken": (2,), "indirect": (6,)}     # field -> the slots' places in its facts
_OFFSETS = re.compile(r"@[0-9]+(?=@)")


def numbered_slots(facts) -> dict[str, list]:
    """The facts that name slots (_SLOTS), each local one (see above) named instead by the order in
    which it first appears: the same for facts whose slots differ only so."""
    numbers: dict[str, str] = {}
    out = {}
    for name, places in _SLOTS.items():
        rows = []
        for row in getattr(facts, name):
            if any(_local_slot(row[k]) for k in places):
                row = list(row)
                for k in places:
                    if _local_slot(row[k]):
                        row[k] = numbers.setdefault(row[k], f"{_OFFSETS.sub('@', row[k])}#{len(numbers)}")
                row = tuple(row)
            rows.append(row)
        out[name] = rows
    return out


def _local_slot(slot: str) -> bool:
    """Whether a slot is a local variable's or field's, which names its offset (see _SLOTS)."""
    return slot[:1] in "vf" and _OFFSETS.search(slot) is not None


@record(frozen=False)
class UnitFacts:
    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    functions: list[tuple] = field(default_factory=list)      # FunctionDecl each
    globals: list[tuple] = field(default_factory=list)        # GlobalDecl
    structs: list[tuple] = field(default_factory=list)        # StructFact
    calls: list[tuple] = field(default_factory=list)          # Call
    indirect: list[tuple] = field(default_factory=list)       # Call
    taken: list[tuple[str, str, str, tuple]] = field(default_factory=list)  # (holder, function, dest, where)
    flows: list[tuple[str, str, str]] = field(default_factory=list)  # (holder, dest, source)
    refs: list[tuple[str, str, str]] = field(default_factory=list)   # (holder, global, r|w|a)
    file_components: dict[str, tuple[str, Location]] = field(default_factory=dict)
    deps: list[tuple[str, int, int, str | None]] = field(default_factory=list)  # cache.dep each
    arguments: list[tuple] = field(default_factory=list)      # ArgumentFact
    param_uses: list[tuple[str, int, str]] = field(default_factory=list)   # (function, index, uses)
    returned: list[tuple[str, str, str, tuple]] = field(default_factory=list)  # (function, callee, name, call)


# clang checks by default that every path through a function returning a value returns one: a
# flow analysis of each function body (its -Wreturn-type; a tenth of sqlite3.c's parse) that gcc
# runs only under -Wall or -Wreturn-type, and never in a syntax check.  A unit whose flags do not
# ask gcc for it is parsed without it; what else the group holds, a `return;` in a function
# returning a value and a value returned from a void one (which gcc warns of by default), stays
# as clang has it: an error (-Wreturn-mismatch), which the unit's own flags may still change.
_RETURN_TYPE = ("-Wall", "-Wreturn-type", "-Werror=return-type", "-Weverything")
_NO_RETURN_FLOW = ("-Wno-return-type", "-Werror=return-mismatch")


def analysis_flags(args: tuple[str, ...]) -> tuple[str, ...]:
    """The flags the analysis adds before a unit's own (which come after them, and win)."""
    # Flags written for gcc (-Wno-stringop-truncation, -fno-tree-vectorize …) are not the program's
    # problem: clang is told not to warn about options it does not know.
    return FIXED_FLAGS if any(a in _RETURN_TYPE for a in args) else FIXED_FLAGS + _NO_RETURN_FLOW


def clang_args(args: tuple[str, ...]) -> list[str]:
    return ["-resource-dir", clang_env.resource_dir(), "-I", CLANG_ATTRS, *analysis_flags(args), *args]


def _annotations(text: str) -> tuple[Annotation, ...]:
    if text == "-":
        return ()
    out = []
    for item in text.split("\x1f"):
        kind, _, arg = item[len("qpm_"):].partition(":")
        out.append(Annotation(kind, arg.strip()))
    return tuple(out)


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r"}


def _unescape(text: str) -> str:
    """A field the walker escaped (E and K records)."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            i += 1
            c = _ESCAPES.get(text[i], text[i])
        out.append(c)
        i += 1
    return "".join(out)


# What a walk writes (walker.c, "The facts as the walk writes them"): a pickle of one tuple of
# lists, the facts of each kind in the order of the walk; the lines of its E, K and H records
# first, and last, from a half of a split parse, where each of its declarations begins.
_LISTS = ("functions", "globals", "structs", "calls", "indirect", "taken", "flows", "refs", "arguments",
          "param_uses", "returned")
_PARTS = 2 + len(_LISTS)


def walked(data: bytes) -> tuple:
    """The lists a walk wrote (see _LISTS), loaded; ValueError when these bytes are not all of
    them (a walk cut short).  The walker is this program's own C, run on the unit in this
    process or in one forked from it: what it writes is loaded as it is written, with the
    pickle module's C loader (in about a sixth of the time reading them as lines of text took)."""
    try:
        parts = pickle.loads(data)
    except MemoryError:
        raise
    except Exception as e:
        raise ValueError(f"the walk's facts are cut short or damaged ({e.__class__.__name__})") from None
    if type(parts) is not tuple or len(parts) != _PARTS:
        raise ValueError("the walk's facts are not a walker's")
    return parts


def facts_of(parts: tuple, facts: UnitFacts, included: list[tuple[str, int, int]] | None = None) -> None:
    """Puts a walk's lists (walked) into facts; the files its H records name go to included,
    (path, size, mtime_ns) each (those stat could not see left out)."""
    for name, found in zip(_LISTS, parts[1:]):
        setattr(facts, name, found)
    if any(g[7] for g in facts.globals):
        # A global annotated qpm_file_component names its file's default component: not a global.
        kept = []
        for g in facts.globals:
            component = next((a.arg for a in g[7] if a.kind == "file_component"), None)
            if component is not None:
                facts.file_components.setdefault(g[2][0], (component, Location(*g[2])))
            else:
                kept.append(g)
        facts.globals = kept
    diagnostics: list[tuple[str, str, Location | None, list[FixIt]]] = []   # with their fix-its
    keep = False                     # whether a K record is the last diagnostic's
    for line in parts[0]:
        r = line.split("\t")
        tag = r[0]
        if tag == "H":
            if included is not None and r[2] != "-":
                included.append((r[1], int(r[2]), int(r[3])))
        elif tag == "E":
            severity = _SEVERITY.get(int(r[1]))      # None: ignored
            keep = severity is not None
            if keep:
                message = _unescape(r[5]) + (f" [{r[6]}]" if r[6] else "")
                place = Location(os.path.normpath(r[2]), int(r[3]), int(r[4])) if r[2] else None
                diagnostics.append((severity, message, place, []))
        elif tag == "K":
            if keep:
                diagnostics[-1][3].append(FixIt(os.path.normpath(r[1]), int(r[2]), int(r[3]), _unescape(r[4])))
    facts.diagnostics.extend(Diagnostic(severity, "QPM001", message, place, tuple(fixits))
                             for severity, message, place, fixits in diagnostics)


def _read(fd: int, records: Callable[[], None] | None = None, pid: int | None = None) -> bytes:
    """What is written to fd until its end (a walk's facts); records() called then.  pid, when
    given, is the process writing them, stopped when it stalls (see _reads)."""
    got: list[bytes] = []
    _reads([fd], records, [] if pid is None else [pid], lambda _, data: got.append(data))
    return got[0]


def _reads(fds: list[int], records: Callable[[], None] | None, pids: list[int],
           ended: Callable[[int, bytes], None]) -> None:
    """Reads each of fds to its end, and calls ended(fd, what was written to it) there (records()
    before the first).  pids, when given, are the processes writing to fds, in order: one that
    stalls while its fd is open (workers.Stalls) is stopped, and this is _Crashed."""
    import select
    chunks: dict[int, list[bytes]] = {fd: [] for fd in fds}
    waiting = list(fds)
    stalls = _stalls() if pids else None
    while waiting:
        ready, _, _ = select.select(waiting, [], [], stalls.poll() if stalls else None)
        if not ready and stalls:
            for fd, pid in zip(fds, pids):
                if fd in waiting:
                    _stop_if_stalled(stalls, pid)
        for fd in ready:
            chunk = os.read(fd, 1 << 20)
            if chunk:
                chunks[fd].append(chunk)
                continue
            waiting.remove(fd)
            if records is not None:
                records()
                records = None
            ended(fd, b"".join(chunks.pop(fd)))


def _stalls():
    from .workers import Stalls
    return Stalls()


def _stop_if_stalled(stalls, pid: int) -> None:
    """Kills pid, a parse, when it stalled, and says how it ended: _Crashed."""
    if stalls.stalled(pid):
        import signal
        os.kill(pid, signal.SIGKILL)
        raise _Crashed(stalls.how())


def parse_unit(path: str, args: tuple[str, ...], isolated: bool = False,
               records: Callable[[], None] | None = None) -> UnitFacts:
    """Parses one source file (function bodies included) and walks it: the walker does both, and
    writes the unit's diagnostics and included files with its facts (see walker.c).  isolated:
    in a process forked for it, whose facts this one reads as they come (not in a thread of
    this one), so that a crash of libclang is the unit's error (crashed), not this process's end:
    for a caller that has no worker of its own to lose (workers.py).  records(), when given, is
    called once, when the walk's facts have come, before they are loaded: until then this thread
    only waits for them, and what it does from then on is the unit's time."""
    lib = clang_env.walker()
    argv = _walker_argv(args)
    facts = UnitFacts(path)
    included: list[tuple[str, int, int]] = []
    if records is not None:
        records = _once(records)        # each half of a split parse calls it, and a whole parse after one given up
    try:
        rc = _walk_split(lib, path, argv, facts, included, records) if isolated and _splits(path) else None
        if rc is None:
            facts, included = UnitFacts(path), []
            if isolated:                # (a keeper that does not walk it leaves them as they are)
                rc = _walk_kept(path, args, facts, included, records)
        if rc is None:
            rc = _walk(_parse_walk(lib, path, argv), path, facts, included, isolated, records)
    except _Crashed as e:
        return crashed(path, str(e))
    return _finished(path, rc, facts, included)


def walk_unit(path: str, args: tuple[str, ...]) -> bytes:
    """parse_unit's parse and walk, in a thread of this process, as bytes that facts_of_walk makes
    the unit's facts of in another: a worker's answer (workers.py), which this process then neither
    loads nor pickles again."""
    lib = clang_env.walker()
    rc, data = _walk_bytes(_parse_walk(lib, path, _walker_argv(args)), path)
    return bytes([rc]) + data


def facts_of_walk(path: str, answer: bytes) -> UnitFacts:
    """The facts of a unit walk_unit walked: answer is what it returned."""
    facts = UnitFacts(path)
    included: list[tuple[str, int, int]] = []
    if len(answer) > 1:
        facts_of(walked(memoryview(answer)[1:]), facts, included)
    return _finished(path, answer[0], facts, included)


def _walker_argv(args: tuple[str, ...]) -> tuple:
    """A unit's flags as the walker's entry points take them: clang_args's, an array of C
    strings and its length."""
    argv = [a.encode() for a in clang_args(args)]
    return (ctypes.c_char_p * len(argv))(*argv), len(argv)


def _parse_walk(lib, path: str, argv: tuple) -> Callable[[int], int]:
    """The walker's parse and walk of the whole file (argv: _walker_argv's), writing to the fd it
    is called with."""
    return lambda fd: lib.qpm_parse_walk(path.encode(), *argv, fd)


def _finished(path: str, rc: int, facts: UnitFacts, included: list[tuple[str, int, int]]) -> UnitFacts:
    """The facts of a unit walked with this result (0; 1 when libclang could not parse it): with
    the files it read (included: those the walk named), each as a dep."""
    if rc == 1:
        facts.diagnostics.append(Diagnostic("error", "QPM001", "libclang could not parse this file: "
                                            "Error parsing translation unit.",
                                            Location(path, 0, 0)))
        facts.deps = [_dep(path)] if os.path.exists(path) else []
        return facts
    # The files read, as the walker stat'ed them: no system call here for a file whose digest this
    # process knows (the stale check found most unchanged), each of which would wait for the
    # interpreter while another thread holds it.
    stats = {os.path.normpath(p): (size, mtime) for p, size, mtime in included}
    stats.pop(path, None)
    facts.deps = [_dep(p, *stats[p]) if p in stats else _dep(p) for p in sorted({path, *stats})
                  if p in stats or os.path.exists(p)]
    return facts


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    """fn, called the first time this is, and not again."""
    pending = [fn]

    def call() -> None:
        if pending:
            pending.pop()()
    return call


def crashed(path: str, how: str) -> UnitFacts:
    """The facts of a unit whose parse or walk crashed the process doing it (how: as
    workers.how_it_ended says): an error that says so, and a dep no file matches, so that the
    unit is parsed again next time (and its entries never reused)."""
    facts = UnitFacts(path)
    said = f"the parse of this file was {how}" if how.startswith("stopped") else \
        f"libclang crashed on this file (the process parsing it was {how})"
    facts.diagnostics.append(Diagnostic("error", "QPM001", f"{said}: nothing of it is in the model",
                                        Location(path, 0, 0)))
    facts.deps = [(path, -1, 0, "")]        # size -1: no file has it
    return facts


class _Crashed(Exception):
    """The process an isolated walk ran in died: how (workers.how_it_ended)."""


def _walk(call, path: str, facts: UnitFacts, included: list[tuple[str, int, int]], isolated: bool = False,
          records: Callable[[], None] | None = None) -> int:
    """Runs call(fd), a walk, and puts the facts it writes to fd into facts: the walk runs in a
    thread of its own (the walker is C, and the call lets go of the interpreter), or in a process
    of its own when isolated, and writes its facts into a pipe, which this thread reads meanwhile
    and loads at its end.  The walk's result: 0, or 1 when the file could not be parsed; _Crashed
    when the process it ran in died."""
    if isolated:
        return _walk_in_child(call, path, facts, included, *_pipe(), records)
    rc, data = _walk_bytes(call, path, records)
    if data:                            # nothing when the file could not be parsed
        facts_of(walked(data), facts, included)
    return rc


def _walk_bytes(call, path: str, records: Callable[[], None] | None = None) -> tuple[int, bytes]:
    """_walk's walk in a thread: its result, and the facts it wrote, not loaded."""
    rfd, wfd = _pipe()
    rc: list[int] = []

    def walk() -> None:
        try:
            rc.append(call(wfd))
        finally:
            os.close(wfd)

    walker = threading.Thread(target=walk, name=f"walk {os.path.basename(path)}")
    walker.start()
    try:
        data = _read(rfd, records)
    finally:
        os.close(rfd)                   # a walk still writing stops (EPIPE)
        walker.join()
    return _walk_result(path, rc[0] if rc else None), data


def _pipe() -> tuple[int, int]:
    """A pipe for a walk's records, of a megabyte where the system allows it: fewer hand-overs
    between the walk and the reader."""
    rfd, wfd = os.pipe()
    try:
        fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, 1 << 20)
    except (OSError, AttributeError):
        pass
    return rfd, wfd


def _exiting(lib) -> None:
    """Tells the walker that this process ends after its walk (walker.c, qpm_exiting)."""
    ctypes.c_int.in_dll(lib, "qpm_exiting").value = 1


def _walk_result(path: str, rc: int | None) -> int:
    if rc not in (0, 1):
        raise MemoryError(f"walking {path} failed ({'no result' if rc is None else rc})")
    return rc


def _walk_in_child(call, path: str, facts: UnitFacts, included: list, rfd: int, wfd: int,
                   records: Callable[[], None] | None = None) -> int:
    """_walk with the walk in a forked child, which runs nothing but the walker's call and exits
    with its result (0, 1, or 3 + the error a negative result gives)."""
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            os.close(rfd)
            _exiting(clang_env.walker())
            code = walk_code(call(wfd))
            os.close(wfd)       # the reader's end now, not after this process's memory is unmapped
        finally:
            os._exit(code)
    os.close(wfd)
    parts = bad = None
    try:
        data = _read(rfd, records, pid)
        try:                            # while the child's memory is unmapped
            parts = walked(data) if data else None
        except ValueError as e:
            bad = e                     # cut short: how the child ended says why (below)
    except BaseException:
        import signal
        os.kill(pid, signal.SIGKILL)    # interrupted: the walk is not waited for
        raise
    finally:
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        from .workers import how_it_ended
        raise _Crashed(how_it_ended(-os.WTERMSIG(status)))
    rc = _walk_result(path, walk_rc(os.WEXITSTATUS(status)))
    if bad is not None:
        raise bad
    if parts is not None:
        facts_of(parts, facts, included)
    return rc


def walk_code(rc: int) -> int:
    """A walk's result as a byte (a walking child's exit status): 0, 1, or 3 + the error a
    negative result gives; 2 for anything else."""
    return rc if rc in (0, 1) else 3 + min(-rc, 250) if rc < 0 else 2


def walk_rc(code: int) -> int | None:
    """The walk's result a walk_code stands for (None: none)."""
    return code if code in (0, 1) else -(code - 3) if code >= 3 else None


def _walk_kept(path: str, args: tuple[str, ...], facts: UnitFacts, included: list,
               records: Callable[[], None] | None = None) -> int | None:
    """The unit walked by the server's keeper (keeper.py), as _walk_in_child would walk it; None
    when this process is no server, or its keeper died or stalled (then ended: the caller parses
    the unit in a child of its own)."""
    keeper = sys.modules.get(__package__ + ".keeper")      # a server imported it; nothing else does
    k = keeper.current() if keeper is not None else None
    if k is None:
        return None
    from . import cache
    try:
        cwd = os.getcwd()
    except OSError:
        return None                     # the command's directory went: parsed as ever
    rfd, wfd = _pipe()
    try:
        try:
            sent = k.walk(path, args, wfd, cache.cache_dir(), cwd)
        finally:
            os.close(wfd)
        data = _read(rfd, records, k.pid) if sent else None
        got = k.result() if sent else None
    except _Crashed:                    # stalled: stopped
        got = None
    except BaseException:               # interrupted, wherever: its answer is nobody's now
        keeper.lost()
        raise
    finally:
        os.close(rfd)
    if got is None:
        keeper.lost()
        return None
    if got[0] is None:                  # declined: the keeper could not parse it there
        return None
    code, files = got
    rc = _walk_result(path, walk_rc(code))
    if data:
        facts_of(walked(data), facts, included)
        included += files
    return rc


# The parse split by function bodies (walker.c): a unit parsed alone (isolated: no other unit's
# parse to keep the second core busy) whose file is at least this large is parsed by two
# processes at once, each with half of its function bodies.  QPM_SPLIT_BYTES sets another size;
# 0 splits every file it can, a negative size none.
SPLIT_BYTES = 1 << 20

# Diagnostics about something unused: reported by the whole file's parse only when unused in
# every body, so by a split parse's halves only when both report them (a function called from
# one half's bodies is unused in the other's).
_UNUSED = ("-Wunused", "-Wunneeded-internal-declaration")


def _splits(path: str) -> bool:
    try:
        cores = len(os.sched_getaffinity(0))      # the cores this process may run on
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    if cores < 2:
        return False
    try:
        limit = int(os.environ.get("QPM_SPLIT_BYTES", SPLIT_BYTES))
        return limit >= 0 and os.path.getsize(path) >= limit
    except (ValueError, OSError):
        return False


class _NotSplit(Exception):
    """The halves' diagnostics do not say what the whole file's parse would: parse it whole."""


def _walk_split(lib, path: str, argv: tuple, facts: UnitFacts, included: list,
                records: Callable[[], None] | None = None) -> int | None:
    """The unit parsed and walked by two forked processes, each keeping half of the file's
    function bodies (walker.c, qpm_parse_walk_split), their facts put together as those of the
    whole file's walk (_merged): 0; or None when the file is
    not to be split, or a half failed or died (facts and included then hold what they were
    given, and more: the caller parses the file whole, which reports what went wrong)."""
    import signal
    reads, pids = [], []
    ok = False
    try:
        for half in (0, 1):
            r, w = _pipe()
            pid = os.fork()
            if pid == 0:
                code = 4
                try:
                    for fd in (r, *reads):
                        os.close(fd)
                    _exiting(lib)
                    rc = lib.qpm_parse_walk_split(path.encode(), *argv, w, half)
                    code = rc if rc in (0, 1, 2) else 3
                    os.close(w)         # as in _walk_in_child
                finally:
                    os._exit(code)
            os.close(w)
            reads.append(r)
            pids.append(pid)
        try:
            facts_of(_merged(_read_halves(reads, records, pids)), facts, included)
            ok = True
        except _Crashed:        # a half stalled: the whole file's parse would too
            raise
        except Exception:       # _NotSplit, or the facts of a half that died: parse it whole
            ok = False
    finally:
        for fd in reads:
            os.close(fd)
        for pid in pids:
            if not ok:
                os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            ok = ok and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    return 0 if ok else None


def _read_halves(fds: list[int], records: Callable[[], None] | None = None,
                 pids: list[int] = ()) -> list[tuple]:
    """The lists each half's walk wrote to fds[0] and fds[1] (walked), each loaded when its half
    ends (the other may still be walking); records() called before the first is.  pids, the
    halves' processes: one that stalls is stopped (_Crashed)."""
    parts: dict[int, tuple] = {}
    _reads(fds, records, list(pids), lambda fd, data: parts.__setitem__(fd, walked(data)))
    return [parts[fd] for fd in fds]


def _merged(halves: list[tuple]) -> tuple:
    """The lists of the whole file's walk from its halves' (walked): the diagnostics put together
    (_diagnostics), each declaration's facts from the half that wrote them in the order of their
    numbers (a half's last list: each declaration's number, and the length of each list before
    its facts), and the first half's H records.  _NotSplit when the diagnostics disagree."""
    from bisect import bisect_left
    lines = list(_diagnostics([_diagnosed(half[0]) for half in halves]))
    lines += [line for line in halves[0][0] if line[:1] == "H"]
    lists: list[list] = [[] for _ in _LISTS]
    groups = [half[-1] for half in halves]
    at = [0, 0]                 # each half's next declaration
    while at[0] < len(groups[0]) or at[1] < len(groups[1]):
        # The half whose next declaration comes first: its declarations up to the other's next.
        k = 0 if at[1] == len(groups[1]) or (at[0] < len(groups[0]) and
                                              groups[0][at[0]][0] < groups[1][at[1]][0]) else 1
        mine, other = groups[k], groups[1 - k]
        end = bisect_left(mine, (other[at[1 - k]][0],), at[k]) if at[1 - k] < len(other) else len(mine)
        start, stop = mine[at[k]], mine[end] if end < len(mine) else None
        for n, out in enumerate(lists):
            found = halves[k][n + 1]
            a, b = start[n + 1], stop[n + 1] if stop is not None else len(found)
            if b > a:
                out += found[a:b]
        at[k] = end
    return (lines, *lists)


def _diagnosed(lines: list[str]) -> list[tuple[str, list[str]]]:
    """A half's diagnostics: each E record's line with the lines of its K records."""
    out: list[tuple[str, list[str]]] = []
    for line in lines:
        tag = line[:1]
        if tag == "E":
            out.append((line, []))
        elif tag == "K" and out:
            out[-1][1].append(line)
    return out


def _diagnostics(halves: list[list[tuple[str, list[str]]]]):
    """The diagnostics of the whole file's parse, from its halves' (each E record's last field says
    whether its place is in a body of half 0, of half 1, or neither, "-"): one in a body, from
    the half that kept that body; one elsewhere, when both halves report it; or, when only one
    does and it is about something unused, not at all (see _UNUSED).  _NotSplit when one half
    alone reports anything else outside the bodies."""
    from collections import Counter
    outside = [Counter(), Counter()]
    for k, half in enumerate(halves):
        for e, fixits in half:
            said, _, where = e.rpartition("\t")
            if where == "-":
                outside[k][(said, *fixits)] += 1
    both = outside[0] & outside[1]
    for k in (0, 1):
        for (said, *_), _ in (outside[k] - both).items():
            if not said.split("\t")[6].startswith(_UNUSED):
                raise _NotSplit
    for k, half in enumerate(halves):
        for e, fixits in half:
            said, _, where = e.rpartition("\t")
            if where == str(k) or (k == 0 and where == "-" and both[(said, *fixits)] > 0):
                if where == "-":
                    both[(said, *fixits)] -= 1
                yield said
                yield from fixits


# The per-unit cache.

def _cache_file(path: str, args: tuple[str, ...]) -> str:
    key = "\0".join([FORMAT, __version__, clang_env.walker_digest(), *analysis_flags(args), os.path.abspath(path), *args])
    name = sha256(key.encode()).hexdigest()[:32]
    return os.path.join(clang_env.cache_dir(), "units", name + ".pickle")


def cached(path: str, args: tuple[str, ...], seen: dict | None = None) -> UnitFacts | None:
    """The cached facts of a unit if every file it read is unchanged, else None; seen is as for
    unchanged()."""
    try:
        with open(_cache_file(path, args), "rb") as f:
            facts = of_entry(f.read())
    except OSError:
        return None
    if facts is None or not facts.deps or not unchanged(facts.deps, seen):
        return None
    return facts


def store(path: str, args: tuple[str, ...], facts: UnitFacts) -> None:
    """Writes the unit's facts to the unit cache (when it can), with the digests of its files."""
    from ..atomic import write_bytes
    try:
        write_bytes(_cache_file(path, args), entry_bytes(facts), make_dirs=True)
    except OSError:
        pass  # A cache that cannot be written only costs time.


def entry_bytes(facts: UnitFacts, digests: bool = True) -> bytes:
    """A unit's facts as the unit cache and the SCons analysis step store them, in an entry of one
    frame with its checksum (cache.pack_one).  digests: the digest of every file they read filled
    in first (cache.filled), for the unit cache, which tells by them whether a file whose time
    changed still holds what the unit read.  The SCons step's facts go without: SCons watches the
    files itself, and a build's first step would otherwise hash every header it includes (60 ms
    for a server's common header and the system headers under it)."""
    if digests:
        facts.deps = filled(facts.deps)
    return pack_one(facts)


def of_entry(data: bytes) -> UnitFacts | None:
    """The facts entry_bytes made these bytes of, or None when they are not such an entry: cut
    short, changed since (the checksum), of another version, or of something else."""
    try:
        facts = unpack_one(data)
    except Exception:       # whatever broke in it
        return None
    return facts if isinstance(facts, UnitFacts) else None
