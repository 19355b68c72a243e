"""Stage 1: C sources -> ProgramModel.

    analyze(paths, compile_commands=None) -> ProgramModel

Each translation unit is parsed (function bodies included) by libclang and walked once; units run
in parallel, one per worker process, and their facts are cached so that a second run re-parses
only the units whose files changed.  This package is the only place that touches clang.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import time

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


def _store_in_background(fresh: list[tuple[str, tuple[str, ...], unit.UnitFacts]]) -> int | None:
    """Writes the cache entries of freshly parsed units from a forked child, so that pickling
    them overlaps building the model; returns the child's pid, waited for before analyze()
    returns (so a following run sees the entries)."""
    if not fresh:
        return None
    try:
        pid = os.fork()
    except OSError:
        pid = -1
    if pid <= 0:
        try:
            for path, args, facts in fresh:
                unit.store(path, args, facts)
        finally:
            if pid == 0:
                os._exit(0)
        return None
    return pid


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

    facts: dict[str, unit.UnitFacts] = {}
    stale = []
    for path, args in items:
        hit = unit.cached(path, args)
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
        return build_model([facts[path] for path, _ in items])
    finally:
        if writer is not None:
            os.waitpid(writer, 0)
