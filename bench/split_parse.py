#!/usr/bin/env python3
"""The parse of one big file split between two processes by its function bodies, against the
parse of the whole file: a measurement of the headroom such a split would give a program of one
big unit (sqlite3.c, zstd.c), where a cold analysis is one libclang parse that uses one core.

Run from the repository root:

    .venv/bin/python bench/split_parse.py              # 5 rounds (median and spread shown)
    .venv/bin/python bench/split_parse.py --repeat 9

The analysis splits the parse of a unit it parses alone when the file is large (unit.py,
SPLIT_BYTES); this script measures the split apart from the rest, with the walker's scan
(qpm_bodies, walker.c).  For each file:

  scan       a lexical scan of the file finds the bodies of functions defined at its top level
             (see walker.c, "The parse split by function bodies": a '{' at brace depth 0 after a
             ')', to its matching '}', with comments, literals and directive lines skipped, and
             #if branches followed)
  coverage   the spans found, against the bodies libclang's own parse reports (its function
             definitions in the file): how many it found, missed (a macro makes the function),
             and found that are no body (code of an inactive `#if` branch, blanked harmlessly)
  halves     the spans split in two by their bytes, in file order; process k parses the file as
             an unsaved buffer with the other half's bodies blanked (every character between the
             braces a space, newlines and directive lines kept, so that every place and every
             macro stays as it was): all its declarations, half its bodies
  walks      the walker's facts of each half's parse against those of the whole file's:
             the declarations must be the same in both halves, and each function's facts those
             of the half that kept its body
  timing     both halves parsed at once in two forked processes, against the whole file parsed
             in one, the two alternating, each round's wall time from the first fork to the last
             exit; libclang's parse with every body skipped (CXTranslationUnit_SkipFunctionBodies)
             is shown too: the part of the parse each half repeats

The flags are bench/analyze.py's, the arguments the analyzer's own (unit.clang_args).  A half
that libclang reports an error in would not be a parse to use: the script says so.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import analyze as A  # noqa: E402  (bench/analyze.py: the inputs, fetched, and their flags)

def scanner():
    """The analyzer's walker, whose qpm_bodies is the scan (walker.c, "The parse split by function
    bodies")."""
    from qtool.analyzer import clang_env
    return clang_env.walker()


def scan(lib, data: bytes, blank: range = range(0)) -> tuple[list[tuple[int, int]], bytes]:
    """The spans of the bodies qpm_bodies finds in data (offsets of each '{' and its '}'), and data
    with the bodies numbered in blank blanked."""
    buf = ctypes.create_string_buffer(data, len(data))
    count = lib.qpm_bodies(buf, len(data), None, 0, 0, 0)
    spans = (ctypes.c_size_t * (2 * count))()
    lib.qpm_bodies(buf, len(data), spans, count, blank.start, blank.stop)
    return [(spans[2 * k], spans[2 * k + 1]) for k in range(count)], buf.raw[:len(data)]


def halves(spans: list[tuple[int, int]]) -> tuple[list, list]:
    """The spans in two, by their bytes, in file order."""
    total, acc = sum(b - a for a, b in spans), 0
    for i, (a, b) in enumerate(spans):
        acc += b - a
        if acc >= total / 2:
            return spans[:i + 1], spans[i + 1:]
    return spans, []


class Unsaved(ctypes.Structure):
    _fields_ = [("Filename", ctypes.c_char_p), ("Contents", ctypes.c_char_p), ("Length", ctypes.c_ulong)]


def libclang():
    from qtool.analyzer import clang_env
    clang_env.keep_freed_memory()
    lib = ctypes.CDLL(clang_env.library_path())
    lib.clang_createIndex.restype = ctypes.c_void_p
    lib.clang_parseTranslationUnit2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int,
                                                ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint,
                                                ctypes.POINTER(ctypes.c_void_p)]
    lib.clang_getNumDiagnostics.argtypes = [ctypes.c_void_p]
    lib.clang_getDiagnostic.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.clang_getDiagnostic.restype = ctypes.c_void_p
    lib.clang_getDiagnosticSeverity.argtypes = [ctypes.c_void_p]
    return lib


def parse(lib, path: str, args: list[str], contents: bytes | None = None, options: int = 0) -> tuple[int, int]:
    """libclang's parse of path (as these contents when given): the number of its diagnostics of
    severity error or fatal (-1 when it failed), and of all of them."""
    argv = [a.encode() for a in args]
    unsaved = (Unsaved * 1)(Unsaved(path.encode(), contents, len(contents))) if contents is not None else None
    tu = ctypes.c_void_p()
    if lib.clang_parseTranslationUnit2(lib.clang_createIndex(0, 0), path.encode(), (ctypes.c_char_p * len(argv))(*argv),
                                       len(argv), unsaved, 1 if contents is not None else 0, options,
                                       ctypes.byref(tu)):
        return -1, 0
    n = lib.clang_getNumDiagnostics(tu)
    return sum(lib.clang_getDiagnosticSeverity(lib.clang_getDiagnostic(tu, i)) >= 3 for i in range(n)), n


def in_children(jobs: list) -> tuple[float, list]:
    """Runs each job (a function of no argument returning JSON-able data) in a forked child, all
    at once: the wall time from the first fork to the last exit, and their results."""
    t = time.perf_counter()
    started = []
    for job in jobs:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                os.write(w, json.dumps(job()).encode())
            finally:
                os._exit(0)
        os.close(w)
        started.append((pid, r))
    results = []
    for pid, r in started:
        with os.fdopen(r, "rb") as f:
            results.append(json.loads(f.read() or b"null"))
        os.waitpid(pid, 0)
    return time.perf_counter() - t, results


# The walk's facts (see walker.c, "The facts as the walk writes them"): the lists of declarations,
# and those of the facts a function body (or a global's initializer) gives, whose first field is
# the function (or the global).
DECL_LISTS = ("functions", "globals", "structs")
BODY_LISTS = ("calls", "indirect", "taken", "flows", "refs", "arguments", "param_uses", "returned")


def walked(lib, path: str, args: list[str], contents: bytes | None) -> tuple[list, dict]:
    """The walker's facts of the parse of path (as these contents when given): the declarations'
    (functions, globals, structs, in order), and the others by the function (or global) they
    belong to."""
    from qtool.analyzer import clang_env, unit
    walker = clang_env.walker()
    argv = [a.encode() for a in args]
    unsaved = (Unsaved * 1)(Unsaved(path.encode(), contents, len(contents))) if contents is not None else None
    tu = ctypes.c_void_p()
    if lib.clang_parseTranslationUnit2(lib.clang_createIndex(0, 0), path.encode(), (ctypes.c_char_p * len(argv))(*argv),
                                       len(argv), unsaved, 1 if contents is not None else 0, 0, ctypes.byref(tu)):
        raise SystemExit(f"{path}: libclang could not parse it")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                    # the walk writes while this process reads
        os.close(r)
        try:
            walker.qpm_walk(tu, w)
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    parts = dict(zip(unit._LISTS, unit.walked(data)[1:]))
    decls = [(name, fact) for name in DECL_LISTS for fact in parts[name]]
    body: dict[str, list] = {}
    for name in BODY_LISTS:
        for fact in parts[name]:
            body.setdefault(fact[0], []).append((name, fact))
    return decls, body


def walks_agree(lib, path: str, args: list[str], buffers: list[bytes]) -> str:
    """Whether the walks of the two halves, put together, say what the walk of the whole file
    says: the same declarations in each, and each function's (or global's) facts those of the
    half that kept its body (of both halves when the two agree: a global's initializer, a body
    the scan did not find)."""
    whole = walked(lib, path, args, None)
    parts = [walked(lib, path, args, b) for b in buffers]
    same_decls = all(p[0] == whole[0] for p in parts)
    split = wrong = 0
    for holder in set(whole[1]) | set(parts[0][1]) | set(parts[1][1]):
        a, b = parts[0][1].get(holder, []), parts[1][1].get(holder, [])
        together = a if a == b else a + b if not (a and b) else None
        split += a != b
        wrong += together != whole[1].get(holder, [])
    return (f"declarations {'equal' if same_decls else 'DIFFER'} ({len(whole[0])} facts); "
            f"{split} of {len(whole[1])} functions' and globals' facts from one half, {wrong} differing")


def coverage(path: str, args: list[str], spans: list[tuple[int, int]]) -> tuple[int, int, int]:
    """(bodies libclang reports in the file, of them found by the scan, spans found that are no
    body)."""
    from clang import cindex
    from qtool.analyzer import clang_env
    if not cindex.Config.loaded:
        cindex.Config.set_library_file(clang_env.library_path())
    tu = cindex.Index.create().parse(path, args=args)
    found = set()
    for c in tu.cursor.get_children():
        if c.kind == cindex.CursorKind.FUNCTION_DECL and c.is_definition() and c.location.file and \
                os.path.samefile(c.location.file.name, path):
            body = [k for k in c.get_children() if k.kind == cindex.CursorKind.COMPOUND_STMT]
            if body:
                found.add((body[-1].extent.start.offset, body[-1].extent.end.offset - 1))
    mine = set(spans)
    return len(found), len(found & mine), len(mine - found)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    opts = ap.parse_args()
    A.fetch()
    from qtool.analyzer import unit
    lib, scan_lib = libclang(), scanner()
    files = [("sqlite3.c", A.SQLITE_C, A.sqlean_flags(A.SQLEAN)), ("zstd.c", A.ZSTD_C, A.zstd_flags())]
    print(f"libclang's parse split by function bodies (bench/split_parse.py): {opts.repeat} rounds, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'file':10} {'bodies':>7} {'found':>6} {'not body':>8} {'whole s':>8} {'split s':>8} {'split/whole':>12} "
          f"{'(spread)':>14} {'no bodies s':>11}  half errors, diagnostics")
    agree = {}
    for name, path, flags in files:
        args = unit.clang_args(tuple(flags))
        with open(path, "rb") as f:
            data = f.read()
        spans, _ = scan(scan_lib, data)
        first, second = halves(spans)
        # Process k keeps half k: process 0 the first bodies, with the others blanked.
        buffers = [scan(scan_lib, data, range(len(first), len(spans)))[1], scan(scan_lib, data, range(len(first)))[1]]
        total, found, extra = coverage(path, args, spans)
        agree[name] = walks_agree(lib, path, args, buffers)
        whole, split, ratios, skipped, halves_said = [], [], [], [], None
        for r in range(opts.repeat):
            order = ("whole", "split") if r % 2 == 0 else ("split", "whole")
            for what in order:
                if what == "whole":
                    wall, _ = in_children([lambda: parse(lib, path, args)])
                    whole.append(wall)
                else:
                    wall, halves_said = in_children([lambda k=k: parse(lib, path, args, buffers[k]) for k in (0, 1)])
                    split.append(wall)
            ratios.append(split[-1] / whole[-1])
            skipped.append(in_children([lambda: parse(lib, path, args, options=0x40)])[0])
        print(f"{name:10} {total:7} {found:6} {extra:8} {statistics.median(whole):8.3f} {statistics.median(split):8.3f} "
              f"{statistics.median(ratios):12.3f} {f'({min(ratios):.3f}-{max(ratios):.3f})':>14} "
              f"{statistics.median(skipped):11.3f}  {', '.join(f'{e} {n}' for e, n in halves_said)}")
    print("  bodies: function definitions with a body in the file, as libclang's parse reports them; found: of them,\n"
          "  those the scan found; not body: spans the scan found that are no body (inactive #if code); whole s,\n"
          "  split s: wall, median of the rounds; split/whole: median of each round's ratio, with its spread;\n"
          "  no bodies s: the parse with every body skipped (what each half parses again); half errors: each\n"
          "  half's diagnostics of severity error (must be 0) and all its diagnostics (warnings about the\n"
          "  bodies it blanked among them, which a split would have to leave out).")
    print("the walker's facts (qpm_walk, untimed) of the two halves against those of the whole file:")
    for name, said in agree.items():
        print(f"  {name}: {said}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
