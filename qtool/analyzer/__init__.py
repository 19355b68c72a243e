"""Stage 1: C sources -> ProgramModel.

    analyze(paths, compile_commands=None) -> ProgramModel

Each translation unit is parsed (function bodies included) by libclang and walked once; units run
in parallel, one per worker process, and their facts are cached so that a second run re-parses
only the units whose files changed (and a run where no file changed re-merges nothing: the merged
model is cached too).  This package is the only place that touches clang.
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import multiprocessing
import os
import pickle
import sys
import time

from .. import __version__
from ..atomic import write_bytes
from ..model import ProgramModel
from . import clang_env, unit
from .build import build_model
from .sources import find_sources, load_compile_commands

__all__ = ["analyze", "libclang_version", "find_sources"]


def libclang_version() -> str:
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


def _job(item: tuple[int, tuple[str, tuple[str, ...]]]) -> tuple[int, unit.UnitFacts]:
    i, (path, args) = item
    return i, unit.parse_unit(path, args)


def _in_background(write) -> int | None:
    """Runs write() in a forked child, so that its pickling overlaps what this process does next:
    the child's pid, or None when it could not fork and write() ran here.  A cache that cannot be
    written only costs time: write() reports nothing."""
    try:
        pid = os.fork()
    except OSError:
        pid = -1
    if pid <= 0:
        try:
            write()
        except OSError:
            pass
        finally:
            if pid == 0:
                os._exit(0)
        return None
    return pid


def _store_in_background(fresh: list[tuple[str, tuple[str, ...], unit.UnitFacts]]) -> int | None:
    """Writes the cache entries of freshly parsed units from a forked child; returns the child's
    pid, waited for before analyze() returns (so a following run sees the entries)."""
    if not fresh:
        return None
    return _in_background(lambda: [unit.store(path, args, facts) for path, args, facts in fresh])


def analyze(paths: list[str], compile_commands: str | None = None, jobs: int | None = None,
            extra_args: tuple[str, ...] = (), progress: bool = True) -> ProgramModel:
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
             extra_args: tuple[str, ...], progress: bool) -> ProgramModel:
    clang_env.check_version()
    flags = load_compile_commands(compile_commands) if compile_commands else {}
    sources = find_sources(paths)
    if compile_commands and not paths:
        sources = sorted(flags)
    items = [(src, flags.get(src, ()) + tuple(extra_args)) for src in sources]

    model_file = _model_file(items)
    seen: dict = {}             # each file the units read, checked once
    model = _cached_model(model_file, seen)
    if model is not None:
        return model

    facts: dict[str, unit.UnitFacts] = {}
    stale = []
    for path, args in items:
        hit = unit.cached(path, args, seen)
        if hit is not None:
            facts[path] = hit
        else:
            stale.append((path, args))

    report = _Progress(len(items), progress)
    done = len(facts)
    fresh = []
    jobs = jobs or min(len(stale), os.cpu_count() or 1)
    if len(stale) > 1 and jobs > 1:
        clang_env.walker()          # build it once, before the workers need it
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(jobs) as pool:
            for i, result in pool.imap_unordered(_job, list(enumerate(stale))):
                fresh.append((*stale[i], result))
                done += 1
                report.step(done, stale[i][0])
    else:
        for path, args in stale:
            fresh.append((path, args, unit.parse_unit(path, args)))
            done += 1
            report.step(done, path)
    report.close()
    for path, _, result in fresh:
        facts[path] = result
    writer = _store_in_background(fresh)
    try:
        units = [facts[path] for path, _ in items]
        model = build_model(units)
    finally:
        if writer is not None:
            os.waitpid(writer, 0)
    _store_model_in_background(model_file, units, model)
    return model


# The merged-model cache: the model of a set of units, valid while every file any of them read is
# unchanged.  A run where nothing changed loads it instead of every unit's facts, and merges
# nothing.

_MODEL_CODE = ("model.py", "analyzer/__init__.py", "analyzer/build.py", "analyzer/pointers.py",
               "analyzer/unit.py", "analyzer/weights.py")


def _model_file(items: list[tuple[str, tuple[str, ...]]]) -> str:
    """Named after the units and their flags, in order, the code that makes the model and the
    working directory (some of its messages name places relative to it)."""
    h = hashlib.sha256("\0".join([__version__, clang_env.walker_digest(), *unit.FIXED_FLAGS,
                                   os.getcwd()]).encode())
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in _MODEL_CODE:
        with open(os.path.join(package, name), "rb") as f:
            h.update(f.read())
    for path, args in items:
        h.update("\0".join(["\1", path, *args]).encode())
    return os.path.join(clang_env.cache_dir(), "models", h.hexdigest()[:32] + ".pickle")


def _cached_model(file: str, seen: dict) -> ProgramModel | None:
    try:
        with open(file, "rb") as f:
            deps, model = pickle.load(f)
    except (OSError, pickle.PickleError, EOFError, AttributeError, TypeError, ValueError):
        return None
    if not isinstance(model, ProgramModel) or not unit.unchanged(deps, seen):
        return None
    return model


def _store_model_in_background(file: str, units: list[unit.UnitFacts], model: ProgramModel) -> None:
    """Writes the model's cache entry from a forked child, so that pickling it overlaps what the
    command does with the model; the child is waited for when the process exits (so a following
    run sees the entry).  A unit with no files to watch (one that could not be read) is never
    cached, nor is a model of it."""
    _reap(False)
    if any(not u.deps for u in units):
        return
    deps = sorted({d for u in units for d in u.deps})
    pid = _in_background(lambda: write_bytes(file, pickle.dumps((deps, model), protocol=pickle.HIGHEST_PROTOCOL),
                                              make_dirs=True))
    if pid is not None:
        _writers.append(pid)


_writers: list[int] = []      # model writers not yet waited for


def _reap(block: bool) -> None:
    for pid in list(_writers):
        try:
            done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _writers.remove(pid)


atexit.register(_reap, True)
