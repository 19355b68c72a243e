"""libclang as installed from PyPI: the library, its builtin headers, and the C walker.

The `libclang-ng` wheel carries libclang.so together with clang's builtin headers of the same
version (stddef.h, stdarg.h, stdatomic.h, the x86 intrinsics …).  Those must come from clang,
not gcc: gcc's stdatomic.h and intrinsics headers use gcc builtins that clang rejects.  We point
libclang at them with -resource-dir, so nothing but gcc's libc headers is needed on the machine.

The walk over each parsed translation unit is walker.c, compiled once per machine with the C
compiler into a cache directory and loaded next to libclang (see walker.c for why).
"""

from __future__ import annotations

import ctypes
import os
import re
from functools import lru_cache

from ..errors import UserError
from .cache import cache_dir, sha256

REQUIRED_MAJOR = 22
WALKER_SOURCE = os.path.join(os.path.dirname(__file__), "walker.c")


class _CXString(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("private_flags", ctypes.c_uint)]


@lru_cache(maxsize=None)
def library():
    """libclang, loaded into the global symbol scope (where the walker resolves its clang_* calls);
    a clear error when it is missing or is not the wheel's.  The analysis itself needs nothing
    else: the walker parses (see qpm_parse_walk in walker.c), and clang.cindex is not loaded."""
    try:
        path = library_path()
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise UserError(f"libclang Python bindings are not installed ({e}); "
                        "install this package with pip to get libclang-ng") from None
    if not os.path.exists(path):
        raise UserError(f"no libclang.so in {os.path.dirname(path)}: the installed 'clang' package is not "
                        "libclang-ng; run: pip install --force-reinstall 'libclang-ng>=22.1,<23'")
    return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


@lru_cache(maxsize=None)
def cindex():
    """The clang.cindex module, configured to use library() (for tools that look at a parse
    themselves: the benchmarks, the tests)."""
    library()
    import clang.cindex as ci
    if not ci.Config.loaded:
        ci.Config.set_library_file(library_path())
    return ci


@lru_cache(maxsize=None)
def library_path() -> str:
    import clang
    return os.path.join(os.path.dirname(clang.__file__), "native", "libclang.so")


@lru_cache(maxsize=None)
def resource_dir() -> str:
    library()
    res = os.path.join(os.path.dirname(library_path()), "resource")
    if not os.path.exists(os.path.join(res, "include", "stddef.h")):
        raise UserError(f"libclang's builtin headers are missing (looked in {res}/include); "
                        "reinstall libclang-ng")
    return res


@lru_cache(maxsize=None)
def version() -> str:
    """libclang's own version string, e.g. 'clang version 22.1.4 (…)'."""
    lib = library()
    lib.clang_getClangVersion.restype = _CXString
    lib.clang_getCString.restype = ctypes.c_char_p
    lib.clang_getCString.argtypes = [_CXString]
    lib.clang_disposeString.argtypes = [_CXString]
    s = lib.clang_getClangVersion()
    try:
        return (lib.clang_getCString(s) or b"").decode()
    finally:
        lib.clang_disposeString(s)


def check_version() -> str:
    v = version()
    m = re.search(r"version (\d+)\.", v)
    if not m or int(m.group(1)) != REQUIRED_MAJOR:
        raise UserError(f"libclang {v!r} is in use, but qtool needs libclang {REQUIRED_MAJOR}.x "
                        f"(its builtin headers and walker are matched to it); "
                        f"run: pip install 'libclang-ng>={REQUIRED_MAJOR}.1,<{REQUIRED_MAJOR + 1}'")
    return v


@lru_cache(maxsize=None)
def walker_digest() -> str:
    with open(WALKER_SOURCE, "rb") as f:
        return sha256(f.read()).hexdigest()[:16]


@lru_cache(maxsize=None)
def keep_freed_memory() -> None:
    """Has this process, and the workers it forks, keep the memory it frees for its next
    allocations instead of giving it back to the system at once (glibc's malloc; elsewhere
    nothing).  Each unit's parse, records and facts allocate the same tens of megabytes again: by
    default the larger blocks are mapped and unmapped each time, and every page of them faulted
    in anew (on lighttpd's 79 units, about 40,000 faults in parsing and walking).  It holds for
    the rest of the process: what it freed stays its own (at most a gigabyte of heap, and no more
    than its peak), which a command that ends soon after does not miss."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, 32 << 20)     # glibc's largest: blocks below it come from the heap
    mallopt(M_TRIM_THRESHOLD, 1 << 30)      # and the heap is not shrunk below a gigabyte


def give_back_memory() -> None:
    """Gives the memory this process freed back to the system (glibc's malloc_trim), whatever
    keep_freed_memory said: for a process that stays up between commands (a server), once a
    command is done."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


@lru_cache(maxsize=None)
def walker():
    """The compiled walker, built on first use: its entry points qpm_parse_walk(path, argv, argc,
    fd), qpm_walk(tu, fd), qpm_parse_only(path, argv, argc, &errors), qpm_parse_walk_split(path,
    argv, argc, fd, half), qpm_bodies(buf, len, spans, max, blank_from, blank_to), and the
    keeper's qpm_keep_parse(path, argv, argc), qpm_keep_reparse(tu), qpm_walk_unit(tu, fd),
    qpm_inclusions(tu, fd) and qpm_keep_dispose(tu)."""
    library()
    path = os.path.join(cache_dir(), f"walker-{walker_digest()}.so")
    if not os.path.exists(path):
        _compile_walker(path)
    lib = ctypes.CDLL(path)
    lib.qpm_walk.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.qpm_walk.restype = ctypes.c_int
    lib.qpm_parse_walk.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
    lib.qpm_parse_walk.restype = ctypes.c_int
    lib.qpm_parse_only.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                   ctypes.POINTER(ctypes.c_int)]
    lib.qpm_parse_only.restype = ctypes.c_int
    lib.qpm_parse_walk_split.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
                                         ctypes.c_int]
    lib.qpm_parse_walk_split.restype = ctypes.c_int
    lib.qpm_bodies.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t), ctypes.c_size_t,
                               ctypes.c_size_t, ctypes.c_size_t]
    lib.qpm_bodies.restype = ctypes.c_long
    lib.qpm_walk_unit.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.qpm_walk_unit.restype = ctypes.c_int
    lib.qpm_keep_parse.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]
    lib.qpm_keep_parse.restype = ctypes.c_void_p
    lib.qpm_keep_reparse.argtypes = [ctypes.c_void_p]
    lib.qpm_keep_reparse.restype = ctypes.c_int
    lib.qpm_inclusions.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.qpm_inclusions.restype = ctypes.c_int
    lib.qpm_keep_dispose.argtypes = [ctypes.c_void_p]
    lib.qpm_keep_dispose.restype = None
    return lib


def _compile_walker(path: str) -> None:
    import shutil           # here: a run that finds the walker built imports none of these
    import subprocess
    import tempfile
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise UserError("no C compiler found (set CC): qtool compiles its libclang walker once")
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
    os.close(fd)
    cmd = [cc, "-std=c11", "-O2", "-fPIC", "-shared", "-o", tmp, WALKER_SOURCE]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(f"compiling the libclang walker failed: {' '.join(cmd)}\n"
                            f"{proc.stderr.strip()}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
