"""The analyzer's caches on disk, in cache_dir() ($QPM_CACHE_DIR, else ~/.cache/qtool):

    units/<unit key>      one translation unit's facts (unit.py)
    models/<program key>  a program's merged model, with what it was merged from (build.Merge)
                          and the files each of its units read
    results/<key>         what a command printed from that model (commands/common.py)
    memo/<key>            a plan file as read (plan.py), by its contents

A unit's facts, and so a model, are valid while every file its unit read is unchanged: the same
size and modification time, or failing that the same contents.  A program's key names its units
and their flags, in order, the working directory, libclang and the code that makes a model: the
key of a program does not change when its files do.

A model entry is a list of frames, each read only when needed (see "Model entries" below): a
header (the entry's stamp, each unit's files and a digest of what its facts say), the model, and
the merge state.  A run where nothing changed reads the header, checks the files and loads the
model (or only a result, below).  One where some units changed parses them: when their facts say
what they said (an edit inside a function body), the model stands and only the header is new;
else it loads the merge state, merges again what the changed units touch (build.merge), and
writes the frames that changed, copying the others.  A result entry names the stamp of the model
it was made from, and is valid while the program's model entry has that stamp and its files are
unchanged: a run where nothing changed reads no model at all.  An edit that leaves the model as
it was keeps the stamp, and with it every result.

Entries are written whole (atomic.py), when this process ends, by a child forked then (forked
earlier, the child would cost the command more than the writing: every page the two share is
copied as soon as either touches it); a process that reads an entry it has yet to write writes
it first.  A command ends without waiting for its writers; a run that reads the cache waits
for the writers still at work (see "Writing in the background"), so it sees what they write.  Each
frame carries a checksum: an entry that cannot be read (another version, truncated, corrupted) is
ignored, and a cache only ever costs time.
"""

from __future__ import annotations

import atexit
import os
import pickle
import struct
import zlib
from functools import lru_cache

# CPython's own hash code: importing hashlib loads OpenSSL first (a few ms of every start).  A
# file's or a unit's facts' digest is BLAKE2b's, of 20 bytes: CPython's own SHA-1 is a fifth as
# fast (a 400 KB repr of a unit's facts 1.4 ms against 0.3; sqlite3.c's 9 MB 32 ms against 7).
try:
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b
try:
    from _sha2 import sha256            # Python 3.12 on
except ImportError:
    try:
        from _sha256 import sha256      # before
    except ImportError:  # pragma: no cover - a Python built without it
        from hashlib import sha256

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMAT = "qtool-cache/6"       # the layout of what the cache holds, a unit's facts included (unit.py)

# The code whose output a model is: the data model and the analyzer, its walker included.
_MODEL_CODE = ("model.py", "analyzer")
# The code whose output a result is: all of qtool.
_RESULT_CODE = (".", "analyzer", "commands")


def cache_dir() -> str:
    if _writing_into is not None:
        return _writing_into
    from ..client import cache_base
    base = cache_base()
    os.makedirs(base, exist_ok=True)
    return base


# Files unchanged.

def file_digest(path: str) -> str:
    h = blake2b(digest_size=20)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dep(path: str, size: int | None = None, mtime: int | None = None) -> tuple[str, int, int, str | None]:
    """What tells whether a file changed later (see unchanged): its size and modification time
    (as os.stat finds them now, or as given), and its digest when this process knows it (it found
    the file unchanged, or hashed it), else None: the digest is computed when the dep is written
    (filled), which a command does after it has answered (the units one process parses share most
    of their headers, and a cold run's hashing is then off its path)."""
    if size is None or mtime is None:
        st = os.stat(path)
        size, mtime = st.st_size, st.st_mtime_ns
    return (path, size, mtime, _known.get((path, size, mtime)))


_known: dict[tuple[str, int, int], str] = {}     # (path, size, mtime_ns) -> digest, in this process


def filled(deps: list) -> list:
    """deps with every digest, the same list when none is missing.  A missing one is computed
    now, and counts only if the file still has the size and modification time the dep says
    (else the dep gets a digest no file has, "": a file that changed since it was read is
    changed)."""
    if all(d[3] is not None for d in deps):
        return deps
    out = []
    for path, size, mtime, digest in deps:
        if digest is None:
            key = (path, size, mtime)
            digest = _known.get(key)
            if digest is None:
                try:
                    digest = file_digest(path)
                    st = os.stat(path)
                except OSError:
                    digest = ""
                else:
                    if (st.st_size, st.st_mtime_ns) == (size, mtime):
                        _known[key] = digest
                    else:
                        digest = ""
        out.append((path, size, mtime, digest))
    return out


def unchanged(deps, seen: dict | None = None) -> bool:
    """Whether every file of deps ((path, size, mtime_ns, digest) each) has the same size and
    modification time, or failing that the same contents.  seen, when given, keeps the answer
    for each dep across the calls of one run: the units of a program read the same headers."""
    if seen is None:
        seen = {}
    for dep in deps:
        ok = seen.get(dep)
        if ok is None:
            ok = seen[dep] = _unchanged(*dep)
        if not ok:
            return False
    return True


def facts_digest(facts) -> str:
    """A digest of what a unit's facts say of the program (all of them but the files the unit
    read): the same for equal facts, in any process, and for facts whose local variables' slots
    are named again one to one (unit.numbered_slots: an edit that made a line longer above them)."""
    from .unit import numbered_slots
    numbered = numbered_slots(facts)
    said = [(name, numbered.get(name, value)) for name, value in vars(facts).items() if name != "deps"]
    return blake2b(repr(said).encode(), digest_size=20).hexdigest()


def _unchanged(path: str, size: int, mtime: int, digest: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    if st.st_size != size or (st.st_mtime_ns != mtime and (not digest or file_digest(path) != digest)):
        return False
    if digest:
        _known[(path, size, st.st_mtime_ns)] = digest
    return True


# Keys.

@lru_cache(maxsize=None)
def _code_digest(folders: tuple[str, ...]) -> bytes:
    """A digest of qtool's own code: these files or folders (their .py and .c files), by name,
    size and modification time, as Python itself tells a module's source from the one its
    compiled code was made of (reading and hashing them took a run after an edit 2 to 3 ms)."""
    h = sha256()
    for name in folders:
        path = os.path.join(PACKAGE, name)
        if os.path.isfile(path):
            files = [(name, os.stat(path))]
        else:
            with os.scandir(path) as found:
                files = sorted((os.path.join(name, e.name), e.stat()) for e in found if e.name.endswith((".py", ".c")))
        for file, st in files:
            h.update(f"{os.path.normpath(file)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.digest()


def _libclang() -> str:
    """Which libclang would parse: its path, size and modification time (a changed library is a
    new program: its version is checked again and its units looked up again)."""
    try:
        import clang        # the bindings' package: a docstring (importlib.util would cost more)
    except ImportError:
        return "-"
    if not getattr(clang, "__file__", None):
        return "-"
    library = os.path.join(os.path.dirname(clang.__file__), "native", "libclang.so")
    try:
        st = os.stat(library)
    except OSError:
        return "-"
    return f"{library}\0{st.st_size}\0{st.st_mtime_ns}"


def program_key(items: list[tuple[str, tuple[str, ...]]]) -> str:
    """The key of a program's model: its units and their flags, in order, the working directory
    (some messages name places relative to it), libclang and the code that makes a model."""
    from .. import __version__
    h = sha256("\0".join([FORMAT, __version__, os.getcwd(), _libclang()]).encode())
    h.update(_code_digest(_MODEL_CODE))
    for path, args in items:
        h.update("\0".join(["\1", path, *args]).encode())
    return h.hexdigest()[:32]


def _model_file(key: str) -> str:
    return os.path.join(cache_dir(), "models", key + ".pickle")


def _body_file(key: str, body: str) -> str:
    return os.path.join(cache_dir(), "models", f"{key}.{body}.frames")


def load_memo(name: str, key: bytes):
    """What store_memo kept under (name, key) with this qtool's code, or None."""
    try:
        frames = _read(_memo_file(name, key))
        return frames[0].load() if frames else None
    except Exception:
        return None


def store_memo(name: str, key: bytes, value) -> None:
    """Keeps value under (name, key) for the runs of this qtool's code (written here, whole)."""
    _write_one(_memo_file(name, key), value)


def _write_one(file: str, value) -> None:
    """Writes an entry of one frame, here (a cache that cannot be written only costs time)."""
    from ..atomic import write_bytes
    try:
        write_bytes(file, _pack([value]), make_dirs=True)
    except OSError:
        pass


def _hashed_file(folder: str, data: bytes, prefix: str = "") -> str:
    """The file in folder named after a digest of data."""
    return os.path.join(cache_dir(), folder, prefix + sha256(data).hexdigest()[:32] + ".pickle")


def _memo_file(name: str, key: bytes) -> str:
    return _hashed_file("memo", _code_digest(_RESULT_CODE) + name.encode() + b"\0" + key)


def _result_file(key: str, what: tuple) -> str:
    return _hashed_file("results", key.encode() + _code_digest(_RESULT_CODE) + repr(what).encode())


# Entries: a list of pickles (frames), each read only when asked for, after its checksum: FORMAT,
# a newline, the number of frames, the end and the CRC-32 of each, then the frames.  Each frame
# is a pickle of its own, so that a frame a new entry shares with the old one is copied as bytes.

def _pack(frames: list) -> bytes:
    """An entry of these frames: objects to pickle, or frames of an entry read, copied as they are."""
    blobs, table, end = [], [len(frames)], 0
    for frame in frames:
        if isinstance(frame, _Frame):
            blob, crc = frame.data, frame.crc
        else:
            blob = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
            crc = zlib.crc32(blob)
        blobs.append(blob)
        end += len(blob)
        table += [end, crc]
    return b"".join([FORMAT.encode(), b"\n", struct.pack(f"<{len(table)}Q", *table), *blobs])


class _Frame:
    """A frame of an entry read, as it is stored: to copy into the next entry unread."""

    def __init__(self, data: memoryview, crc: int):
        self.data = data
        self.crc = crc

    def check(self) -> None:
        """ValueError when the frame is not as it was written."""
        if zlib.crc32(self.data) != self.crc:
            raise ValueError("corrupted")

    def load(self, yielding: bool = False, stopped=None):
        """The frame's object.  yielding: unpickled from a reader written in Python, so that the
        interpreter can pass to another thread between two of the pickle's own frames (64 KiB),
        instead of after the whole (a thread that parses waits for it at each call into libclang);
        and, when stopped() says so there, given up (_Stopped)."""
        self.check()
        if yielding and len(self.data) > 1 << 16:
            return pickle.Unpickler(_Chunks(self.data, stopped)).load()
        return pickle.loads(self.data)


class _Chunks:
    """A file over a buffer, read from Python (see _Frame.load)."""

    def __init__(self, data: memoryview, stopped=None):
        self.data = data
        self.at = 0
        self.stopped = stopped

    def read(self, n: int = -1) -> bytes:
        if self.stopped is not None and self.stopped():
            raise _Stopped
        start = self.at
        self.at = len(self.data) if n < 0 else min(len(self.data), start + n)
        return bytes(self.data[start:self.at])

    def readinto(self, buffer) -> int:
        chunk = self.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)

    def readline(self) -> bytes:
        end = self.at
        while end < len(self.data):
            chunk = bytes(self.data[end:end + 256])
            found = chunk.find(b"\n")
            if found >= 0:
                return self.read(end + found + 1 - self.at)
            end += len(chunk)
        return self.read(-1)


_last_read: dict = {}        # file -> (its identity, its frames): the entries read last, read once


def _frames(data: memoryview) -> list[_Frame] | None:
    """The frames of an entry's bytes (_pack), or None when they are of another version or cut
    short.  (Each frame's checksum is checked when it is loaded.)"""
    head = len(FORMAT) + 1
    if data[:head] != FORMAT.encode() + b"\n":
        return None
    (n,) = struct.unpack_from("<Q", data, head)
    table = struct.unpack_from(f"<{2 * n}Q", data, head + 8)
    body = data[head + 8 + 16 * n:]
    ends = table[0::2]
    if len(body) != (ends[-1] if ends else 0):
        return None
    return [_Frame(body[start:end], crc) for start, end, crc in zip((0, *ends), ends, table[1::2])]


def pack_one(value) -> bytes:
    """An entry of one frame: value pickled, with the cache's version and a checksum."""
    return _pack([value])


def unpack_one(data: bytes):
    """The value of an entry of one frame (pack_one); ValueError when the entry is of another
    version, cut short or corrupted."""
    frames = _frames(memoryview(data))
    if not frames or len(frames) != 1:
        raise ValueError("not an entry of this version")
    return frames[0].load()


def _read(file: str) -> list[_Frame] | None:
    """The frames of an entry, or None when it cannot be read or is of another version."""
    wait(file)                  # when this process is still writing it
    await_writers()             # and when a run before this one still is
    try:
        with open(file, "rb") as f:
            st = os.fstat(f.fileno())
            identity = (st.st_ino, st.st_size, st.st_mtime_ns)
            last = _last_read.get(file)
            if last is not None and last[0] == identity:
                return last[1]
            data = memoryview(f.read())
        frames = _frames(data)
        if frames is None:
            return None
        if len(_last_read) >= 4:
            del _last_read[next(iter(_last_read))]
        _last_read[file] = (identity, frames)
        return frames
    except Exception:           # a broken entry is no entry, whatever broke in it
        return None


# Model entries: a header (stamp, each unit's files, the model's files, the number of base
# frames, each unit's facts_digest, the name of the body), in models/<key>.pickle, and a body, in
# models/<key>.<body>.frames, frame by frame: the model (its fields but functions, edges and
# arguments, then those of each file: a function's place, a call's caller's); the merge state
# (build.Merge but its units and model); the base (every unit's facts, equal facts one object, a
# frame for every _BASE_UNITS units); then one frame for each unit whose facts changed since the
# base was written: (index, facts).  An edit writes the model's frames of the files it changed and
# its unit's frame, and copies the others; past a few such units, the base is written again.  An
# edit that changed no unit's facts writes the header alone.  No frame takes long to read: a
# reader in a thread of its own can be stopped between two.

_MODEL_BY_FILE = ("functions", "edges", "arguments")
_BASE_UNITS = 16
_UNREAD = object()


def _overlay_limit(units: int) -> int:
    return max(8, units // 8)


def _model_frames(model) -> tuple[dict, dict[str, tuple]]:
    """A model as its frames: its other fields, and each file's (functions, edges, arguments)."""
    fmap = model.function_map
    rest = {name: getattr(model, name) for name in model.__record_fields__ if name not in _MODEL_BY_FILE}
    by_file: dict[str, tuple[list, list, list]] = {}
    for f in model.functions:
        by_file.setdefault(f.location.file, ([], [], []))[0].append(f)
    for e in model.edges:
        by_file.setdefault(fmap[e.caller].location.file, ([], [], []))[1].append(e)
    for a in model.arguments:
        by_file.setdefault(fmap[a.caller].location.file, ([], [], []))[2].append(a)
    return rest, {file: tuple(map(tuple, by_file[file])) for file in sorted(by_file)}


def json_parts() -> dict[str, tuple]:
    """The files' frames (functions, edges, arguments, their JSON: output.json_part) of the
    model entry read last in this process, for output.model_json, whose JSON was made by this
    qtool's output code; {} when none was read."""
    if _parts_from is None:
        return {}
    code = _code_digest(("output.py",))
    return {file: g for file, (g, _) in _parts_from.by_file.items() if len(g) == 4 and g[3][0] == code}


_parts_from: Entry | None = None


def _model_of_frames(rest: dict, by_file: dict[str, tuple]):
    """The model _model_frames took apart, in its order: functions and edges are sorted by place
    (file first), arguments by caller, place and index."""
    from ..model import ProgramModel
    groups = list(by_file.values())
    arguments = sorted((a for g in groups for a in g[2]), key=lambda a: (a.caller, a.location, a.index))
    return ProgramModel(**rest, functions=tuple(f for g in groups for f in g[0]),
                        edges=tuple(e for g in groups for e in g[1]), arguments=tuple(arguments))


class _Stopped(Exception):
    """Reading an entry was stopped (Entry.stop)."""


class Entry:
    """A program's model entry as read: its header at once, the model and the merge state when
    asked for (None when they cannot be read)."""

    def __init__(self, key: str, body: str, stamp: str, deps: tuple, files: tuple, bases: int,
                 digests: tuple):
        self.key = key
        self.body = body            # the name of its body
        self.stamp = stamp
        self.deps = deps            # per unit: the files whose change makes its facts stale
        self.files = files          # the model's files, a frame each
        self.digests = digests      # per unit: the facts_digest of its facts
        self._model = _UNREAD
        self._stopped = False
        self._gate = None           # while paused: the event that lets the reader go on
        self.rest: tuple = ()       # the model's other fields, and their frame
        self.by_file: dict = {}     # file -> (functions, edges, arguments), and their frame
        self.state = None           # the merge state, once read
        self.base: tuple = ()       # the units' facts of the base frames
        self.bases = bases
        self.overlay: dict = {}     # index -> (facts, frame) of the units written since
        self.loaded_base: dict = {}  # base frame's index -> its units, loaded (Unread)
        self._frames = None

    @property
    def frames(self) -> list[_Frame]:
        """The body's frames (read when first asked for)."""
        if self._frames is None:
            frames = _read(_body_file(self.key, self.body))
            self._frames = frames if frames is not None and len(frames) >= 2 + len(self.files) + self.bases else []
        return self._frames

    @property
    def base_frames(self) -> list[_Frame]:
        return self.frames[2 + len(self.files):2 + len(self.files) + self.bases]

    def stale(self, seen: dict) -> list[int]:
        """The units some file of which changed, by index.  Every file of a stale unit is checked,
        not only those up to the first changed: the unit is parsed next, and the digests of the
        files found unchanged then need not be computed again (dep)."""
        out = []
        for i, deps in enumerate(self.deps):
            if not unchanged(deps, seen):
                out.append(i)
                for d in deps:
                    unchanged((d,), seen)
        return out

    def current(self) -> bool:
        """Whether no file of any unit changed."""
        seen: dict = {}
        return all(unchanged(deps, seen) for deps in self.deps)

    def stop(self, stopped: bool = True) -> None:
        """Makes the reading of the model or the merge state (in another thread) stop at once (at
        its next 64 KiB), until stop(False)."""
        self._stopped = stopped
        if stopped:
            self.resume()

    def pause(self) -> None:
        """Makes that reading wait (at its next 64 KiB) until resume() or stop(): it then leaves
        the interpreter to this thread alone."""
        import threading
        if self._gate is None:
            self._gate = threading.Event()

    def resume(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    def leave(self) -> None:
        """Leaves the reading paused, to be stopped when this process analyses again
        (release_paused), or never when it ends first: stopped now, it would free what it has
        read so far (a big program's merge state, a few hundred thousand objects) while the
        command still runs."""
        _paused.append(self)

    def _stop_here(self) -> bool:
        """Whether the reading stops here (waiting first while it is paused)."""
        gate = self._gate
        if gate is not None:
            gate.wait()
        return self._stopped

    def _load(self, frame: _Frame):
        if self._stop_here():
            raise _Stopped
        return frame.load(yielding=True, stopped=self._stop_here)

    def model(self):
        from ..model import ProgramModel
        if self._model is _UNREAD:
            try:
                frames = self.frames[:1 + len(self.files)]
                rest = self._load(frames[0])
                by_file = {file: self._load(frame) for file, frame in zip(self.files, frames[1:])}
                model = _model_of_frames(rest, by_file)
            except _Stopped:
                return None
            except Exception:
                model = None
            self._model = model if isinstance(model, ProgramModel) else None
            if self._model is not None:
                global _parts_from
                self.rest = (rest, frames[0])
                self.by_file = {file: (g, frame) for (file, g), frame in zip(by_file.items(), frames[1:])}
                _parts_from = self
        return self._model

    def merge(self, paths: list[str] | None = None):
        """The merge state (build.Merge), or None; paths, when given, are those its units have,
        in order (the program's key says so): the units of the base are then Unread, each loaded
        with the others of its frame when first used (an edit that moved lines of one unit
        uses that one alone)."""
        from .build import Merge
        from .unit import UnitFacts
        model = self.model()
        if model is None:
            return None
        try:
            rest = self._load(self.frames[1 + len(self.files)])
            if paths is not None and len(paths) == len(self.deps):
                frames = self.base_frames
                for frame in frames:
                    frame.check()
                base = tuple(Unread(self, frames, k, paths[k], self.deps[k]) for k in range(len(paths)))
            else:
                base = tuple(u for frame in self.base_frames for u in self._load(frame))
            units = list(base)
            overlay = {}
            for frame in self.frames[2 + len(self.files) + self.bases:]:
                i, facts = self._load(frame)
                units[i] = facts
                overlay[i] = (facts, frame)
            state = Merge(tuple(units), model, *rest)
        except Exception:
            return None
        if not (len(units) == len(self.deps) and all(isinstance(u, (UnitFacts, Unread)) for u in units) and
                (paths is None or [u.path for u in units] == list(paths)) and
                isinstance(state.file_components, dict) and isinstance(state.function_diagnostics, dict) and
                isinstance(state.frequencies, tuple) and len(state.frequencies) == 2):
            return None
        self.state, self.base, self.overlay = state, base, overlay
        return state


class UnreadableEntry(Exception):
    """A unit of an entry's base, loaded when first used (Unread), was not what the entry said."""


class Unread:
    """A unit's facts in the base of a model entry read (Entry.merge), loaded when first used:
    any attribute but its path and the files it read (deps, as the entry's header has them)
    loads it, with the other units of its frame.  A merge tells the units an edit changed by
    whether they are the very objects of the state it reuses: an Unread is one, loaded or not.
    real(u) is the facts themselves.  A frame that does not hold what the entry says raises
    UnreadableEntry (its checksum was checked when the entry was read)."""

    __slots__ = ("_frames", "_index", "path", "deps")

    def __init__(self, entry: Entry, frames: list, index: int, path: str, deps: list):
        self._frames = (entry, frames)
        self._index = index
        self.path = path
        self.deps = deps

    def facts(self):
        entry, frames = self._frames
        k, at = divmod(self._index, _BASE_UNITS)
        loaded = entry.loaded_base.get(k)
        if loaded is None:
            from .unit import UnitFacts
            try:
                loaded = frames[k].load()
            except Exception as e:
                raise UnreadableEntry(str(e)) from None
            if not (isinstance(loaded, list) and len(loaded) > at and
                    all(isinstance(u, UnitFacts) for u in loaded)):
                raise UnreadableEntry("not the units of a base frame")
            entry.loaded_base[k] = loaded
        found = loaded[at]
        if found.path != self.path:
            raise UnreadableEntry("a unit of another file")
        return found

    def __getattr__(self, name: str):
        return getattr(self.facts(), name)


def real(u):
    """A unit's facts: u's, when it is Unread."""
    return u.facts() if type(u) is Unread else u


_paused: list[Entry] = []      # entries whose reading was left paused (Entry.leave)


def release_paused() -> None:
    """Stops the readings left paused."""
    while _paused:
        _paused.pop().stop()


def read_model(key: str, units: int) -> Entry | None:
    """The header of a program's model entry of so many units, or None."""
    try:
        stamp, deps, files, bases, digests, body = _read(_model_file(key))[0].load()
    except Exception:
        return None
    if not (isinstance(stamp, str) and isinstance(deps, tuple) and len(deps) == units and
            all(isinstance(d, list) for d in deps) and isinstance(files, tuple) and isinstance(bases, int) and
            isinstance(digests, tuple) and len(digests) == units and isinstance(body, str)):
        return None
    return Entry(key, body, stamp, deps, files, bases, digests)


_SHARED = ("functions", "globals", "structs", "calls", "indirect", "taken", "flows", "refs",
           "arguments", "param_uses", "returned", "deps", "diagnostics")


def _deps_header(deps: list, previous: Entry | None = None) -> tuple[list, ...]:
    """Each unit's files, for a header: a file every unit read is one object, stored once.  The
    lists previous's header holds already are; a new one is made so by its unit's old list."""
    shared: dict = {}
    out = []
    for i, unit_deps in enumerate(deps):
        old = previous.deps[i] if previous is not None else None
        if unit_deps is not old:
            table = {d: d for d in old} if old is not None else shared
            unit_deps = [table.setdefault(d, d) for d in unit_deps]
        out.append(unit_deps)
    return tuple(out)


def _share(units) -> None:
    """Makes equal facts of the units one object (the declarations of a header every unit
    includes, the files every unit read), so that a base stores and loads them once."""
    table: dict = {}
    for u in units:
        for name in _SHARED:
            setattr(u, name, [table.setdefault(x, x) for x in getattr(u, name)])


_stamps: dict[str, str] = {}      # program key -> the stamp of the model analysed in this process
_last_key: str | None = None      # the program analysed last


def loaded(key: str, stamp: str) -> None:
    """Records that this process analysed the program to the model of the entry of this stamp."""
    global _last_key
    _stamps[key] = stamp
    _last_key = key


def _same_frame(value, previous: tuple | None):
    """previous's frame when it holds a value equal to this one (the same objects, mostly: a
    function no edit touched is the previous model's), else the value, to pickle."""
    return previous[1] if previous is not None and previous[0] == value else value


def store_model(key: str, merge, previous: Entry | None = None, deps: list | None = None,
                then=None) -> None:
    """Writes a program's model entry, the merge's (when: see the module's doc).  previous, the
    entry whose merge state it reused, lends its frames: those of the model's files whose
    functions, calls and arguments did not change, its base, and those of units that did not
    change.  When the merge made the very same model object (build.merge returns the previous
    model when nothing in it changed), what was made of it holds still: the entry keeps previous's
    stamp.  deps, per unit, are the files whose change makes its facts stale (by default the files
    it read).  then(), when given, is more to write after the entry (a unit's own entry).
    A unit with no files to watch (one that could not be read) is never cached, nor a model of it."""
    if any(not d for d in ([u.deps for u in merge.units] if deps is None else deps)):
        global _last_key
        _stamps.pop(key, None)
        _last_key = key
        if then is not None:
            _defer(then)
        return
    if previous is None or previous.state is None:
        previous = None
    same = previous is not None and merge.model is previous.state.model
    stamp = previous.stamp if same else os.urandom(8).hex()
    loaded(key, stamp)
    base_dir = os.getcwd()          # what the JSON's paths are relative to (the write comes later)

    def write():
        from ..atomic import write_bytes
        units = merge.units
        rest = (merge.file_components, merge.function_diagnostics, merge.frequencies)
        if previous is not None and merge.frequencies[1] is previous.state.frequencies[1] and \
                rest[:2] == (previous.state.file_components, previous.state.function_diagnostics):
            rest = previous.frames[1 + len(previous.files)]   # the same call graph and the rest
        overlay = []
        if previous is not None:
            for i, u in enumerate(units):
                if u is not previous.base[i]:
                    old = previous.overlay.get(i)
                    overlay.append(old[1] if old is not None and old[0] is u else (i, u))
        if previous is None or len(overlay) > _overlay_limit(len(units)):
            written = list(map(real, units))      # loaded, when the state reused left some unread
            _share(written)
            base = [written[i:i + _BASE_UNITS] for i in range(0, len(written), _BASE_UNITS)]
            overlay = []
        else:
            base = previous.base_frames
        model_rest, by_file = _model_frames(merge.model)
        model = [_same_frame(model_rest, previous.rest if previous is not None else None)]
        from .. import output
        code, fmap = _code_digest(("output.py",)), merge.model.function_map
        for file, group in by_file.items():
            # Each file's frame carries its functions and calls as compact JSON (output.json_part),
            # made here, in the background, for the next run to print.
            old = previous.by_file.get(file) if previous is not None else None
            if old is not None and old[0][:3] == group and len(old[0]) == 4 and old[0][3][0] == code and \
                    output.json_part_holds(old[0][3][1:], group[1], fmap, base_dir):
                model.append(old[1])
            else:
                model.append((*group, (code, *output.json_part(group[0], group[1], fmap, base_dir))))
        digests = tuple(previous.digests[i] if previous is not None and u is previous.state.units[i]
                        else facts_digest(u) for i, u in enumerate(units))
        body = os.urandom(8).hex()
        header = (stamp, _deps_header([filled(d) for d in ([u.deps for u in units] if deps is None else deps)],
                                      previous),
                  tuple(by_file), len(base), digests, body)
        try:
            write_bytes(_body_file(key, body), _pack([*model, rest, *base, *overlay]), make_dirs=True)
            write_bytes(_model_file(key), _pack([header]))
            _forget_bodies(key, body)
        finally:
            if then is not None:
                then()

    # Written at exit, by a child forked then (or here, before this process reads the entry): a
    # child forked now would cost this process more than the writing does, every page the two
    # share being copied as soon as this process touches it (lighttpd's checks and output, after
    # its 79 units were merged: 6,600 page faults, a third of their time).
    _defer(write, _model_file(key))
    # The entry read is kept until the next one is written: freeing what it holds (the merge state,
    # hundreds of thousands of objects) would cost an edit's run a tenth of its time, and a
    # command's process ends without freeing anything (cli.console).
    global _kept
    _kept = previous


_kept: Entry | None = None


def _forget_bodies(key: str, body: str) -> None:
    """Removes the program's bodies but this one (a reader that still has one open reads on)."""
    directory = os.path.join(cache_dir(), "models")
    keep = os.path.basename(_body_file(key, body))
    for name in os.listdir(directory):
        if name.startswith(key + ".") and name.endswith(".frames") and name != keep:
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def keep_model(key: str, entry: Entry, deps: list) -> None:
    """Writes a program's model entry again as it is but for the files each unit read (deps): what
    its units say of the program did not change (their facts_digest), and so neither did its
    model, nor anything made of it (its stamp stays): the header alone, written here."""
    header = (entry.stamp, _deps_header([filled(d) for d in deps], entry), entry.files, entry.bases,
              entry.digests, entry.body)
    _write_one(_model_file(key), header)
    loaded(key, entry.stamp)


# Result entries.

def load_result(key: str, units: int, what: tuple):
    """What was stored for `what` from the program's current model, or None: the result entry
    must name the model entry's stamp, and every file of that entry must be unchanged."""
    entry = read_model(key, units)
    if entry is None or not entry.current():       # (an edit: the result is not read)
        return None
    try:
        stamp, value = _read(_result_file(key, what))[0].load()
    except Exception:
        return None
    return value if entry.stamp == stamp else None


def result_of_model(key: str, what: tuple):
    """What was stored for `what` from the model this process analysed the program to (its stamp),
    or None."""
    stamp = _stamps.get(key)
    try:
        made_from, value = _read(_result_file(key, what))[0].load()
    except Exception:
        return None
    return value if stamp is not None and made_from == stamp else None


def store_result(key: str, what: tuple, value) -> None:
    """Stores value for `what` from the model this process analysed the program to (nothing when
    it did not, or its model is not cached)."""
    stamp = _stamps.get(key)
    if stamp is None:
        return
    file = _result_file(key, what)
    if _deferred:
        # A writer is forked at exit for what is left to write (the model's entry): the result
        # goes with it (a JSON model of 3 MB: 3 to 5 ms of this command's time).
        _defer(lambda: _write_one(file, (stamp, value)), file)
    else:
        _write_one(file, (stamp, value))    # sooner than a child would be forked


# Findings of the checks (marshal.Signatures), by the stamp of the model they were made from:
# reused by a run that analyses the program to that model, and, where what they read is the same,
# by one that merged a new model from it (an edit).

def _signatures_file(stamp: str, name: tuple) -> str:
    return _hashed_file("results", stamp.encode() + _code_digest(_RESULT_CODE) + repr(name).encode(),
                        "signatures-")


def load_signatures(model, name: tuple) -> tuple[dict, object, bool, tuple | None]:
    """The findings stored under name for model, the model of the program this process analysed
    last, or for the model that one was merged from: (entries, the model they were made from,
    whether that is this model's own stamp, all that the checks found then, or None when that
    was not kept).  ({}, None, False, None) when there are none."""
    candidates = []
    if _last_key in _stamps:
        candidates.append((_stamps[_last_key], None))
    if _kept is not None and _kept.key == _last_key and _kept.state is not None:
        candidates.append((_kept.stamp, _kept.state.model))
    for stamp, made_from in candidates:
        try:
            frames = _read(_signatures_file(stamp, name))
            made, units, entries, found = frames[0].load()
        except Exception:
            continue
        if made == stamp and units == model.translation_units and isinstance(entries, dict) and \
                (found is None or isinstance(found, tuple)):
            return entries, made_from, made_from is None, found
    return {}, None, False, None


def store_signatures(model, name: tuple, entries: dict, found: tuple | None = None) -> None:
    """Keeps the findings in model, the model of the program this process analysed last (entries:
    marshal.Signatures's; found, when given: all that the checks found): written at exit, by the
    writer child (or before this process reads them)."""
    stamp = _stamps.get(_last_key)
    if stamp is None:
        return
    file = _signatures_file(stamp, name)
    units = model.translation_units
    _defer(lambda: _write_one(file, (stamp, units, entries, found)), file)


# Writing in the background.
#
# A writer is a forked child.  It holds an exclusive flock on a file of its own in writers/, taken
# by its parent before the fork (so there is no moment when it writes unlocked) and left to the
# child alone when the parent closes its descriptor (a flock belongs to the open file, which both
# share, and holds until the last descriptor of it closes).  A command does not wait for its
# writers when it ends: its output is done, and the entries follow a moment later.  A run that
# reads the cache first waits for every writer it finds there (a shared flock on each file, given
# only once a writer is done), so it sees the entries a run before it left.  A writer's standard
# streams are /dev/null: one that outlives its command holds no pipe of whoever ran it.

_deferred: list[tuple] = []                     # (write, file): entries to write at exit
_leaving: list[tuple] = []                      # those given to the writer forked at exit
_writing_into: str | None = None                # the cache a deferred write writes to (_defer)


def _defer(write, file: str | None = None) -> None:
    """Has write() run at exit (or when wait() asks for it; file: the entry it writes, if one),
    into the cache this process uses now, whichever it uses then."""
    directory = cache_dir()

    def run() -> None:
        global _writing_into
        _writing_into = directory
        try:
            write()
        finally:
            _writing_into = None
    _deferred.append((run, file))


def _writer_lock(owner: int | None = None) -> tuple[int, str] | None:
    """A new file in writers/, flocked exclusively: its descriptor and path, or None.  owner: the
    process whose own runs do not wait for it (await_writers; default, this one)."""
    import fcntl
    path = os.path.join(cache_dir(), "writers", f"{owner or os.getpid()}-{os.urandom(4).hex()}.lock")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        os.close(fd)
        return None
    return fd, path


def _release(lock: tuple[int, str] | None, close: bool = True) -> None:
    """Gives a writer lock up (_writer_lock's): its file removed, and its descriptor closed."""
    if lock is None:
        return
    try:
        os.unlink(lock[1])
    except OSError:
        pass
    if close:
        os.close(lock[0])


def _write_all(pending: list[tuple]) -> None:
    """Runs the deferred writes (_defer's), each whatever the others do: a cache that cannot be
    written only costs time."""
    for w, _ in pending:
        try:
            w()
        except Exception:
            pass


def await_writers() -> None:
    """Waits for every other process's writer of this cache that is still writing."""
    import fcntl
    directory = os.path.join(cache_dir(), "writers")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    mine = f"{os.getpid()}-"        # this process's own: wait() waits for the one it reads
    for name in names:
        if name.startswith(mine):
            continue
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue                # done: its writer removed it
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            # Done, or left by a writer that died: nobody holds it any more.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(path)
        except OSError:
            pass
        finally:
            os.close(fd)


def _fork_writer(write) -> None:
    """Forks a writer child that runs write() under a lock of its own and exits (or runs write()
    here, when no child could be made)."""
    lock = _writer_lock()
    try:
        pid = os.fork()
    except OSError:
        pid = -1
    if pid == 0:
        try:
            null = os.open(os.devnull, os.O_RDWR)
            for std in (0, 1, 2):
                os.dup2(null, std)
            gate = os.environ.get("QPM_CACHE_WRITER_GATE")
            if gate:                # tests only: a FIFO whose writer's end lets the writer go
                with open(gate) as f:
                    f.read()
            write()
        except BaseException:
            pass
        finally:
            _release(lock, close=False)
            os._exit(0)
    if lock is not None:
        os.close(lock[0])           # the child's copy holds the lock now
    if pid < 0:
        try:
            write()
        except Exception:
            pass


def wait(file: str | None = None) -> None:
    """Writes here the entries this process has yet to write (they are written at exit): every
    one, or the one of this file.  A cache that cannot be written only costs time: nothing is
    reported."""
    due = [(write, written) for write, written in _deferred if file is None or written == file]
    for item in due:
        _deferred.remove(item)
    _write_all(due)


def _at_exit() -> None:
    """The entries left to write at exit go to a writer child: the command ends now."""
    global _leaving
    if _deferred:
        # Kept referenced to the end: what the writes hold (a merge, its model) would otherwise
        # be freed object by object when this returns, each page it touches copied from the
        # child's (about 10 ms after an edit of a 100-unit program).
        pending = _leaving = list(_deferred)
        _deferred.clear()
        _fork_writer(lambda: _write_all(pending))


atexit.register(_at_exit)


# A command run by a server (qtool/serve.py), which runs one after another in one process.

def served_end():
    """The end of a command a server ran, as a function to call once the client has its answer: it
    writes what _at_exit would give a writer child, in this process, then forgets the command
    (forget).  When there is something to write, the writer lock is taken now, before the
    answer: a run the client starts next waits for the writes as it waits for a writer child's."""
    pending = list(_deferred)
    _deferred.clear()
    lock = _writer_lock() if pending else None

    def end() -> None:
        try:
            _write_all(pending)
            pending.clear()
            forget()
        finally:
            _release(lock)
    return end


def forget() -> None:
    """Forgets what this process keeps of the command it ran (the program analysed, its stamp, the
    entry it merged from, the entries it read): the next command a server runs starts as a new
    process would.  The digests of files by their identity (_known) are kept: each is looked up
    by its file's size and modification time, as the unit cache's deps are."""
    global _last_key, _kept, _parts_from, _leaving
    release_paused()
    _stamps.clear()
    _last_read.clear()
    _last_key = _kept = _parts_from = None
    _leaving = []
    from . import build
    build._last_moved = None
