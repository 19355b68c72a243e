"""Stage 1: C sources -> ProgramModel.

    analyze(paths, compile_commands=None) -> ProgramModel

Each translation unit is parsed (function bodies included) by libclang and walked once; units run
in parallel, one per worker process, and their facts are cached so that a second run re-parses
only the units whose files changed.  The merged model is cached too, with what it was merged
from: a run where no file changed merges nothing, and one where a few units changed parses and
merges again only what they touch (see cache.py and build.merge).  This package is the only place
that touches clang; importing it is cheap (a run that finds everything cached loads no libclang).
"""

from __future__ import annotations

import gc
import os
import sys
import time

from . import cache
from .sources import check_names, check_regular, find_sources, load_compile_commands

TYPE_CHECKING = False
if TYPE_CHECKING:           # the model's classes are loaded when a model is
    from typing import Callable

    from ..model import ProgramModel

__all__ = ["analyze", "analysis", "libclang_version", "find_sources", "program", "model_of_facts"]


def libclang_version() -> str:
    from . import clang_env
    return clang_env.check_version()


class _Progress:
    """A one-line progress report on a terminal, shown only once a run takes a moment."""

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.enabled = enabled and sys.stderr.isatty()
        self.start = time.monotonic()
        self.shown = False

    def step(self, done: int, name: str) -> None:
        if not self.enabled or time.monotonic() - self.start < 0.5:
            return
        self.shown = True
        sys.stderr.write(f"\r\x1b[Kanalysing [{done}/{self.total}] {os.path.basename(name)}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


class _Reader:
    """Reads an entry's merge state (cache.Entry.merge) in a thread of its own, once started."""

    def __init__(self, entry, paths: list[str]):
        self.entry = entry
        self.paths = paths
        self.state = None
        self.thread = None

    def start(self) -> None:
        if self.thread is None:
            import threading
            # The thread that parses lets go of the interpreter at each call into libclang, and
            # while the reader runs it may wait this long to have it back (0.005 s by default,
            # for each of the hundreds of calls that follow the parse itself).
            self.interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self.interval, 0.0005))
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()

    def leave(self) -> None:
        """Leaves the reading paused (cache.Entry.leave), and the switch interval as it was (the
        reader, which sets it back when it ends, may not end while this process runs)."""
        self.entry.leave()
        if self.thread is not None:
            sys.setswitchinterval(self.interval)

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _read(self) -> None:
        try:
            self.state = self.entry.merge(self.paths)
        finally:
            sys.setswitchinterval(self.interval)

    def join(self):
        """The merge state (None when it cannot be read), read now if the thread was not started."""
        self.start()
        self.thread.join()
        return self.state


def merge(units, previous=None):
    """The merge of the units' facts into a model (build.merge): one name to time or replace."""
    from .build import merge
    return merge(units, previous)


def program(paths: list[str], compile_commands: str | None = None,
            extra_args: tuple[str, ...] = ()) -> tuple[list[tuple[str, tuple[str, ...]]], str]:
    """The units of the program analyze() would analyse, each with its flags, and the key of its
    cached model (cache.program_key)."""
    flags = load_compile_commands(compile_commands) if compile_commands else {}
    # A compilation database named without paths is the program: the working directory is not
    # looked through (a repository's, with thousands of files, would be, for nothing).
    if compile_commands and not paths:
        sources = sorted(flags)
        for src in sources:
            check_regular(src)
    else:
        sources = find_sources(paths)
    items = [(src, flags.get(src, ()) + tuple(extra_args)) for src in sources]
    check_names(items)
    return items, cache.program_key(items)


def analyze(paths: list[str], compile_commands: str | None = None, jobs: int | None = None,
            extra_args: tuple[str, ...] = (), progress: bool = True) -> ProgramModel:
    """The program model of the sources (see the module's doc)."""
    return analysis(paths, compile_commands, jobs, extra_args, progress)()


def analysis(paths: list[str], compile_commands: str | None = None, jobs: int | None = None,
             extra_args: tuple[str, ...] = (), progress: bool = True) -> Callable[[], ProgramModel]:
    """The sources analysed as analyze() does, with their model as a function that returns it: a
    run whose edits changed nothing a model is made from (inside function bodies) loads it only
    when it is asked for (what was made of it is still valid: cache.result_of_model)."""
    # Analysis makes hundreds of thousands of small objects and no reference cycles: the cyclic
    # collector would only rescan them again and again.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _analyze(paths, compile_commands, jobs, extra_args, progress)
    finally:
        if enabled:
            gc.enable()


def _analyze(paths: list[str], compile_commands: str | None, jobs: int | None,
             extra_args: tuple[str, ...], progress: bool,
             use_entry: bool = True) -> Callable[[], ProgramModel]:
    cache.wait()                # the entries an earlier analysis here has yet to write, written now
    cache.release_paused()      # and the reading of a merge state an earlier one did not need
    cache.await_writers()       # and those a run before this one still is
    items, key = program(paths, compile_commands, extra_args)
    seen: dict = {}             # each file the units read, checked once
    entry = cache.read_model(key, len(items)) if use_entry else None
    stale = set(entry.stale(seen)) if entry is not None else set()
    if entry is not None and not stale:
        model = entry.model()
        if model is not None:
            cache.loaded(key, entry.stamp)
            return lambda: model
    from . import clang_env, unit
    clang_env.check_version()
    from . import build  # noqa: F401 (imported here, not by the reader)
    # The merge state is read by a thread while libclang parses the units that changed: libclang
    # lets go of the interpreter while it works, so that the two overlap.  The thread starts when
    # the parsing does: until then this thread needs the interpreter, which the reader's loads
    # (long calls that do not let go of it) would keep from it.
    reader = _Reader(entry, [path for path, _ in items]) if entry is not None else None
    facts: dict[int, object] = {}
    report = _Progress(len(items), progress)
    fresh: list[int] = []          # the units parsed here

    def find(indices) -> None:
        """The facts of these units: from the unit cache, else parsed."""
        todo = []
        for i in indices:
            hit = unit.cached(*items[i], seen)
            if hit is not None:
                facts[i] = hit
            else:
                todo.append(i)
        done = len(facts)
        workers = jobs or min(len(todo), os.cpu_count() or 1)
        if todo:
            clang_env.walker()      # built once, before the workers or the parse below need it
            clang_env.keep_freed_memory()
        if len(todo) > 1 and workers > 1:
            from .workers import parse_in_workers
            if reader is not None and reader.running():
                reader.join()       # no thread but this one while the workers are forked

            def job(i: int) -> bytes:
                """A worker's unit: its facts as the walk wrote them (unit.walk_unit), which this
                process loads (and stores in the unit cache when it ends, with the digests of the
                files they read: cache.dep)."""
                return unit.walk_unit(*items[i])

            def got(i: int, found) -> None:
                nonlocal done
                facts[i] = found
                fresh.append(i)
                done += 1
                report.step(done, items[i][0])

            def before_fork() -> None:
                if reader is not None and reader.running():
                    reader.join()   # a worker that died is replaced: no other thread then

            # The largest units first: a long one started last would leave the other workers idle.
            todo.sort(key=lambda i: -_size(items[i][0]))
            parse_in_workers(todo, job, workers,
                             answered=lambda i, data: got(i, unit.facts_of_walk(items[i][0], data)),
                             crashed=lambda i, how: got(i, unit.crashed(items[i][0], how)),
                             started=reader.start if reader is not None else lambda: None,
                             before_fork=before_fork)
        else:
            reading = reader is not None and bool(todo)
            if reading:
                reader.start()
            for k, i in enumerate(todo):
                if reading and k:
                    entry.resume()      # paused at the unit before's facts: on while this one parses
                # In a child process: a crash of libclang is the unit's error, not this command's end.
                # The reader goes on while the unit is parsed and walked (this thread only waits),
                # and waits while this thread loads the unit's facts: the two would take turns at
                # the interpreter, and the facts are what tell whether the merge state is needed.
                facts[i] = unit.parse_unit(*items[i], isolated=True, records=entry.pause if reading else None)
                fresh.append(i)
                done += 1
                report.step(done, items[i][0])

    find(sorted(stale) if reader is not None else range(len(items)))
    parsed = [(items[i], facts[i]) for i in fresh]
    store_units = lambda: [unit.store(path, args, f) for (path, args), f in parsed]  # noqa: E731
    if entry is not None:
        entry.pause()               # the reader, while the digests tell whether it is needed
    if entry is not None and all(facts[i].deps and cache.facts_digest(facts[i]) == entry.digests[i]
                                 for i in stale):
        # The units that changed say of the program what they said (an edit inside a function
        # body): the model and what was made of it stand; only the files they read are new.
        reader.leave()              # the reader, paused: the merge state is not needed
        report.close()
        cache.keep_model(key, entry, [facts[i].deps if i in stale else entry.deps[i]
                                      for i in range(len(items))])
        store_units()

        def model() -> ProgramModel:
            entry.stop()
            reader.join()
            entry.stop(False)
            found = entry.model()
            return found if found is not None else \
                _analyze(paths, compile_commands, jobs, extra_args, progress, use_entry=False)()
        return model
    if entry is not None:
        entry.resume()
    previous = reader.join() if reader is not None else None
    if previous is not None:
        for i in range(len(items)):
            facts.setdefault(i, previous.units[i])
    else:
        find([i for i in range(len(items)) if i not in facts])
        parsed = [(items[i], facts[i]) for i in fresh]
    report.close()
    try:
        merged = merge([facts[i] for i in range(len(items))], previous)
    except cache.UnreadableEntry:       # the entry's base, read as it was needed: analysed anew
        return _analyze(paths, compile_commands, jobs, extra_args, progress, use_entry=False)
    deps = [entry.deps[i] if previous is not None and i not in stale else facts[i].deps
            for i in range(len(items))]
    cache.store_model(key, merged, entry, deps, then=store_units if parsed else None)
    return lambda: merged.model


def model_of_facts(files: list[str]) -> ProgramModel:
    """The model of the units whose facts these files hold, one unit each (UnitFacts in an entry
    of one frame, unit.entry_bytes, as the SCons tool's analysis step writes them), merged again
    only as far as the files changed since the same files were last merged (their model entry is
    named after them, in order).  A file that holds no such facts is a UserError naming it."""
    items = [(os.path.abspath(f), ("<facts>",)) for f in files]
    key = cache.program_key(items)
    seen: dict = {}
    entry = cache.read_model(key, len(items))
    stale = set(entry.stale(seen)) if entry is not None else set(range(len(items)))
    if entry is not None and not stale:
        model = entry.model()
        if model is not None:
            return model
    fresh: dict[int, tuple] = {}

    def load(i: int) -> None:
        """Unit i's facts, and what tells whether its file changed later (read first)."""
        from ..errors import UserError
        from .unit import of_entry
        path = items[i][0]
        try:
            dep = cache.dep(path)
            with open(path, "rb") as f:
                facts = of_entry(f.read())
        except OSError as e:
            raise UserError(f"cannot read: {e.strerror}", path) from None
        if facts is None:
            raise UserError("not the facts of a unit as this qtool writes them (cut short, changed, or "
                            "written by another version): remove it and build again", path)
        fresh[i] = (facts, [dep])

    for i in sorted(stale):
        load(i)
    deps = [fresh[i][1] if i in fresh else entry.deps[i] for i in range(len(items))]
    if entry is not None and all(cache.facts_digest(fresh[i][0]) == entry.digests[i] for i in stale):
        model = entry.model()           # the units say what they said: the model stands
        if model is not None:
            cache.keep_model(key, entry, deps)
            return model
    previous = entry.merge() if entry is not None else None
    if previous is None:
        for i in range(len(items)):
            if i not in fresh:
                load(i)
        deps = [fresh[i][1] for i in range(len(items))]
    units = [fresh[i][0] if i in fresh else previous.units[i] for i in range(len(items))]
    merged = merge(units, previous)
    cache.store_model(key, merged, entry, deps)
    return merged.model
