#!/usr/bin/env python3
"""Benchmark of `qtool analyze` against `gcc -fsyntax-only` on large real C.

Run from the repository root:

    .venv/bin/python bench/analyze.py            # 3 repetitions of every measurement
    .venv/bin/python bench/analyze.py --quick    # 1 repetition
    .venv/bin/python bench/analyze.py --repeat 5
    .venv/bin/python bench/analyze.py --served   # also the incremental runs by `qtool serve`

The inputs come from two source distributions on PyPI, fetched once into bench/.data/
(git-ignored) with `pip download --no-deps --no-binary :all:`:

  * sqlean.py 3.50.4.5  - the SQLite amalgamation sqlite/sqlite3.c, and the C sources of the
                          sqlean.py extension module (the "multi-file program": exactly the files
                          its setup.py compiles, with the flags it compiles them with);
  * zstandard 0.25.0    - zstd's single-file library zstd/zstd.c.

and, for servers of about 100k lines, lighttpd 1.4.69 and nginx 1.22.1 (the Debian source
packages' upstream tarballs, fetched as bench/real_code.py fetches its servers, into bench/.data/
and configured once).

What is measured, in one run, side by side:

  1. Fresh runs: wall time of `qtool analyze` (empty per-unit cache, one worker per core) vs
     `gcc -fsyntax-only` over the same files with the same flags, gcc running as many files at a
     time as there are cores.  The runs of the two tools alternate.  Median and ratio.
  2. Incremental: on a copy of the multi-file program, a fresh analysis, then one file changed
     (a comment line appended) and the analysis re-run with the same cache.  With --served, the
     same runs by `qtool serve` (a server started for each repetition), and the file changed a
     second time.
  3. Peak memory: the largest single process (exact, from wait4's rusage, which covers the
     waited-for descendants) and the whole process tree (PSS summed over the tool's processes,
     sampled every 10 ms in separate, untimed runs so the sampling does not disturb the timings).
  4. The floor: libclang's parse alone of each file (of each program of many files, by a pool of
     one process per core), and where the analyzer's time goes on sqlite3.c, the multi-file
     program and lighttpd (timers put around the analyzer's own functions in a child process; the
     analyzer's files are not touched).

The zstandard sdist carries no multi-file zstd library (only the amalgamated zstd/zstd.c, and its
Python binding c-ext/backend_c.c #includes its other .c files, so it is one unit too); hence the
multi-file program is taken from sqlean.py.

qtool exits before its cache writers finish (they write in the background); this script is
their subreaper and waits for them after each run, untimed, counting their CPU time and memory
with qtool's, so that no writer runs during the next measurement.

The exit status is 0 whatever the numbers are (this is a measurement), non-zero only when
something could not be run.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from machine import await_writers, cpu_model, start_qtool_server, stop_qtool_server  # bench/machine.py: scripts here run with bench/ on sys.path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "bench", ".data")

SDISTS = {
    "sqlean.py": ("3.50.4.5", "sqlean_py-3.50.4.5"),
    "zstandard": ("0.25.0", "zstandard-0.25.0"),
}
SQLEAN = os.path.join(DATA, "sqlean_py-3.50.4.5")
ZSTANDARD = os.path.join(DATA, "zstandard-0.25.0")
SQLITE_C = os.path.join(SQLEAN, "sqlite", "sqlite3.c")
ZSTD_C = os.path.join(ZSTANDARD, "zstd", "zstd.c")

# The sqlean.py extension module, as its setup.py builds it (same order, same flags).
SQLEAN_MODULE = ([f"src/{n}.c" for n in ("module", "connection", "cursor", "cache", "microprotocols",
                                         "prepare_protocol", "statement", "util", "row", "blob")]
                 + ["sqlite/sqlite3.c"]
                 + [f"sqlite/sqlean-{n}.c" for n in ("crypto", "define", "fileio", "fuzzy", "ipaddr",
                                                     "regexp", "stats", "text", "time", "unicode",
                                                     "uuid", "vsv")]
                 + ["src/sqlean.c"])
SQLEAN_DEFINES = [
    '-DMODULE_NAME="sqlean.dbapi2"',
    *(f"-DSQLITE_{f}=1" for f in ("ENABLE_DBPAGE_VTAB", "ENABLE_DBSTAT_VTAB", "ENABLE_EXPLAIN_COMMENTS",
                                  "ENABLE_FTS4", "ENABLE_FTS5", "ENABLE_GEOPOLY", "ENABLE_JSON1",
                                  "ENABLE_MATH_FUNCTIONS", "ENABLE_RTREE", "ENABLE_STAT4",
                                  "ENABLE_STMTVTAB", "LIKE_DOESNT_MATCH_BLOBS", "USE_URI")),
    "-DSQLITE_MAX_VARIABLE_NUMBER=250000",
    f"-DSQLITE_MAX_MMAP_SIZE={2 ** 40}",
    "-DSQLITE_EXTRA_INIT=core_init",
    '-DSQLEAN_VERSION="0.27.4"',
    "-DPCRE2_CODE_UNIT_WIDTH=8", "-DLINK_SIZE=2", "-DHAVE_CONFIG_H=1", "-DSUPPORT_UNICODE=1",
]
TOUCHED = "src/cursor.c"          # the file changed in the incremental measurement

# Servers of about 100k lines, each the Debian source package's upstream tarball (fetched by
# bench/real_code.py's fetch), configured once with its ./configure and the options below.
#
# lighttpd 1.4.69: its units are the files of src/ that gcc accepts with the flags its Makefile
# gives them, but for the other programs there (lemon, the parser generator, and its template
# lempar.c; the angel, a supervisor with a main of its own): a module whose library this machine
# lacks (LDAP, PAM, Lua ...) is left out too, and the report names them.
LIGHTTPD = os.path.join(DATA, "lighttpd-1.4.69")
LIGHTTPD_CONFIGURE = ["./configure", "--without-pcre2", "--without-zlib", "--without-bzip2", "--without-zstd"]
LIGHTTPD_OTHER_PROGRAMS = ("lemon.c", "lempar.c", "lighttpd-angel.c")
LIGHTTPD_DEFINES = ["-DHAVE_CONFIG_H", '-DLIBRARY_DIR="/usr/lib/lighttpd"', '-DSBIN_DIR="/usr/sbin"']
#
# nginx 1.22.1: its units are the files its objs/Makefile compiles, each with the flags of its
# rule there (CFLAGS, then the include directories of the rule's modules), but -Werror: a warning
# libclang gives and gcc does not would otherwise be an error of the analysis, not of the code.
# Configured without the modules that need PCRE or zlib, and with the threads, HTTP/2, stream and
# mail modules, so that most of its code is compiled.
NGINX = os.path.join(DATA, "nginx-1.22.1")
NGINX_CONFIGURE = ["./configure", "--without-pcre", "--without-http_rewrite_module", "--without-http_gzip_module",
                   "--with-threads", "--with-http_v2_module", "--with-http_realip_module",
                   "--with-http_addition_module", "--with-http_sub_module", "--with-http_dav_module",
                   "--with-http_slice_module", "--with-http_stub_status_module", "--with-stream", "--with-mail"]
NGINX_DROPPED_FLAGS = ("-Werror",)

RATIO_TARGET = 1.5
INCREMENTAL_TARGET = 0.10


class BenchError(Exception):
    pass


def become_subreaper() -> None:
    """Makes orphaned descendants (qtool's cache writers, which outlive it) children of this
    process, so that reap_orphans() can wait for them."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise BenchError(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


def reap_orphans() -> list:
    """Waits for every child this process has (after a qtool run: its orphaned cache writers);
    their rusages."""
    usages = []
    while True:
        try:
            _, _, ru = os.wait4(-1, 0)
        except ChildProcessError:
            return usages
        usages.append(ru)


# ---------------------------------------------------------------------------------------------
# Inputs

def fetch_sdists(sdists: dict[str, tuple[str, str]]) -> None:
    """The source distributions (name: (version, the directory its archive unpacks to)) fetched
    into DATA with pip download and unpacked, once."""
    os.makedirs(DATA, exist_ok=True)
    archives = {name: os.path.join(DATA, f"{stem}.tar.gz") for name, (_, stem) in sdists.items()}
    missing = [name for name, path in archives.items() if not os.path.exists(path)]
    if missing:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               *(f"{name}=={sdists[name][0]}" for name in missing), "-d", DATA]
        print("fetching:", shlex.join(cmd), file=sys.stderr)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError(f"pip download failed ({proc.returncode}):\n{proc.stderr.strip()}")
    for name, path in archives.items():
        if not os.path.exists(path):
            raise BenchError(f"pip download did not produce {path}")
        stem = sdists[name][1]
        stamp = os.path.join(DATA, stem, ".extracted")
        if os.path.exists(stamp):
            continue
        with tarfile.open(path) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(DATA, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(DATA)
        with open(stamp, "w") as f:
            f.write(path + "\n")


def fetch() -> None:
    fetch_sdists(SDISTS)
    for path in (SQLITE_C, ZSTD_C, *(os.path.join(SQLEAN, p) for p in SQLEAN_MODULE)):
        if not os.path.exists(path):
            raise BenchError(f"expected source missing after extraction: {path}")


@dataclass
class Server:
    """A server measured as a program of many units: its sources, set up by fetch_server."""
    name: str                           # the Debian source package's
    root: str                           # where it is unpacked and configured
    configure: list[str]
    settings: list                      # what else decides its units and flags
    find_units: Callable[[str], tuple[list, list[str]]]     # root -> ([(unit, flags)], left out)
    about: str = ""                     # for the report: which files are its units
    units: list[str] = field(default_factory=list)          # absolute paths, largest first
    flags: dict[str, list[str]] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)

    @property
    def version(self) -> str:
        return os.path.basename(self.root).rsplit("-", 1)[1]


def _absolute(flags: list[str], root: str) -> list[str]:
    """The flags with their include directories made absolute (relative ones are the root's)."""
    out, after_i = [], False
    for f in flags:
        if after_i:
            out.append(os.path.normpath(os.path.join(root, f)))
        elif f.startswith("-I") and len(f) > 2:
            out.append("-I" + os.path.normpath(os.path.join(root, f[2:])))
        else:
            out.append(f)
        after_i = f == "-I"
    return out


def fetch_server(server: Server) -> Server:
    """The server fetched, unpacked and configured once (again when its settings change), with its
    units (largest first), their flags, and the files left out."""
    stamp = os.path.join(server.root, ".qpm-units.json")
    settings = [server.configure, server.settings]
    try:
        with open(stamp) as f:
            found = json.load(f)
        if found.get("settings") != settings:
            raise ValueError("other settings")
    except (OSError, ValueError):
        found = _set_up(server, stamp, settings)
    server.units = [os.path.join(server.root, u) for u, _ in found["units"]]
    server.flags = {os.path.join(server.root, u): _absolute(fl, server.root) for u, fl in found["units"]}
    server.left_out = found["left_out"]
    return server


def fetched_servers():
    """Each of SERVERS fetched and configured (fetch_server); one that cannot be is said on stdout
    and left out."""
    for server in SERVERS:
        try:
            yield fetch_server(server)
        except BenchError as e:
            print(f"  {server.name}: not measured: {e}")


def server_copy(server: Server, into: str) -> tuple[str, list[tuple[str, tuple[str, ...]]]]:
    """A copy of the (fetched) server's tree in `into`: its root, and its units with their flags,
    as paths of the copy."""
    root = os.path.join(into, os.path.basename(server.root))
    shutil.copytree(server.root, root, symlinks=True)
    here = lambda f: f.replace(server.root, root)     # noqa: E731
    return root, [(here(u), tuple(map(here, server.flags[u]))) for u in server.units]


def _set_up(server: Server, stamp: str, settings: list) -> dict:
    import contextlib
    import real_code   # bench/real_code.py: Debian source packages, fetched with apt-get source
    tarball = f"{server.name}'s source package"
    try:
        with contextlib.redirect_stdout(sys.stderr):        # its progress, not this report
            tarball = real_code.fetch(server.name, os.path.basename(server.root))
        shutil.rmtree(server.root, ignore_errors=True)
        staging = server.root + ".unpacking"      # unpack() empties the directory it is given
        real_code.unpack(tarball, staging)
        os.rename(os.path.join(staging, os.path.basename(server.root)), server.root)
        os.rmdir(staging)
    except real_code.Failure as e:
        raise BenchError(str(e)) from None
    except (OSError, tarfile.TarError) as e:
        raise BenchError(f"unpacking {tarball} into {server.root}: {e}") from None
    print("configuring:", shlex.join(server.configure), f"(in {server.root})", file=sys.stderr)
    proc = subprocess.run(server.configure, cwd=server.root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"{server.name}'s ./configure exited {proc.returncode}:\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    units, left_out = server.find_units(server.root)
    units.sort(key=lambda u: -os.path.getsize(os.path.join(server.root, u[0])))
    if len(units) < 50:
        raise BenchError(f"only {len(units)} of {server.name}'s files compile here (left out: {', '.join(left_out)})")
    found = {"settings": settings, "units": units, "left_out": left_out}
    with open(stamp + ".tmp", "w") as f:
        json.dump(found, f)
    os.replace(stamp + ".tmp", stamp)
    return found


def lighttpd_units(root: str) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """lighttpd's units: the files of src/ that gcc accepts, but the other programs'."""
    units, left_out = [], []
    for name in sorted(os.listdir(os.path.join(root, "src"))):
        if not name.endswith(".c"):
            continue
        path = os.path.join(root, "src", name)
        flags = [*LIGHTTPD_DEFINES, "-I", ".", "-I", "src"]
        ok = name not in LIGHTTPD_OTHER_PROGRAMS and \
            subprocess.run(["gcc", "-fsyntax-only", *_absolute(flags, root), path], capture_output=True).returncode == 0
        if ok:
            units.append((os.path.join("src", name), flags))
        else:
            left_out.append(os.path.join("src", name))
    return units, left_out


def nginx_units(root: str) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """nginx's units: what objs/Makefile compiles, each with its rule's flags (its variables
    expanded), -Werror left out."""
    try:
        with open(os.path.join(root, "objs", "Makefile")) as f:
            text = f.read().replace("\\\n", " ")
    except OSError as e:
        raise BenchError(f"nginx's ./configure wrote no objs/Makefile: {e}") from None
    variables = dict(re.findall(r"^([A-Z_]+) =[ \t]*(.*)$", text, re.M))
    units = []
    for command, source in re.findall(r"^\t\$\(CC\) -c (.*?)\s+-o\s+objs/\S+\.o\s+(\S+\.c)\s*$", text, re.M):
        words = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), ""), command).split()
        units.append((source, [w for w in words if w not in NGINX_DROPPED_FLAGS]))
    return units, []


SERVERS = [
    Server("lighttpd", LIGHTTPD, LIGHTTPD_CONFIGURE, [LIGHTTPD_DEFINES, list(LIGHTTPD_OTHER_PROGRAMS)],
           lighttpd_units, "the files of src/ that compile here"),
    Server("nginx", NGINX, NGINX_CONFIGURE, [list(NGINX_DROPPED_FLAGS)], nginx_units,
           "the files objs/Makefile compiles"),
]


def python_include() -> str:
    import sysconfig
    inc = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(inc, "Python.h")):
        raise BenchError(f"Python.h not found in {inc}: the sqlean.py module sources need it")
    return inc


def sqlean_flags(root: str) -> list[str]:
    return ["-I", os.path.join(root, "sqlite"), "-I", python_include(), *SQLEAN_DEFINES]


def zstd_flags() -> list[str]:
    return ["-I", os.path.dirname(ZSTD_C)]


def count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def write_ccdb(path: str, flags: dict[str, list[str]]) -> None:
    """A compilation database with one entry per file (absolute paths)."""
    entries = [{"directory": os.path.dirname(f), "file": f, "arguments": ["cc", "-c", *fl, f]}
               for f, fl in flags.items()]
    with open(path, "w") as out:
        json.dump(entries, out, indent=1)


# ---------------------------------------------------------------------------------------------
# Running one measured command

@dataclass
class Run:
    wall: float          # seconds
    cpu: float           # user + system seconds of the process and its waited-for descendants
    maxrss_kb: int       # the largest single process among them (kernel's ru_maxrss)


def spawn(argv: list[str], env: dict[str, str] | None = None, stdout: str = os.devnull,
          stderr: str = os.devnull) -> int:
    wr = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, stdout, wr, 0o644),
               (os.POSIX_SPAWN_OPEN, 2, stderr, wr, 0o644)]
    return os.posix_spawn(argv[0], argv, os.environ if env is None else env, file_actions=actions)


def tail(path: str, n: int = 25) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).rstrip()
    except OSError:
        return ""


def walkers(cache: str) -> list[str]:
    """The compiled walkers in an analyzer cache (see qtool/analyzer/clang_env.py)."""
    return [n for n in os.listdir(cache) if n.startswith("walker-") and n.endswith(".so")]


def qtool_sources() -> str:
    """A digest of the analyzer's sources, to tell whether they changed during the run."""
    h = hashlib.sha256()
    for top in ("qtool", "clang_attrs"):
        for root, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".py", ".c", ".h")):
                    path = os.path.join(root, name)
                    h.update(path.encode() + b"\0")
                    with open(path, "rb") as f:
                        h.update(f.read())
    return h.hexdigest()


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "qtool", "clang_attrs"],
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + (" + uncommitted changes in qtool/" if dirty else "")


class Tools:
    def __init__(self, tmp: str, jobs: int):
        self.tmp = tmp
        self.jobs = jobs
        self.gcc = shutil.which("gcc")
        if not self.gcc:
            raise BenchError("gcc not found on PATH")
        qtool = os.path.join(os.path.dirname(sys.executable), "qtool")
        self.qtool = [qtool] if os.path.exists(qtool) else [sys.executable, "-m", "qtool"]
        self.warm_cache = os.path.join(tmp, "warm-cache")
        self.n = 0
        os.makedirs(os.path.join(tmp, "logs"), exist_ok=True)

    def _log(self, what: str) -> str:
        self.n += 1
        return os.path.join(self.tmp, "logs", f"{self.n:05d}-{what}.log")

    def gcc_run(self, files: list[str], flags: dict[str, list[str]]) -> Run:
        """gcc -fsyntax-only over the files, self.jobs of them at a time."""
        pending = list(files)
        running: dict[int, tuple[str, str]] = {}
        cpu, rss = 0.0, 0
        t0 = time.perf_counter()
        while pending or running:
            while pending and len(running) < self.jobs:
                f = pending.pop(0)
                log = self._log("gcc")
                pid = spawn([self.gcc, "-fsyntax-only", *flags[f], f], stderr=log)
                running[pid] = (f, log)
            pid, status, ru = os.wait4(-1, 0)
            if pid not in running:
                continue
            f, log = running.pop(pid)
            cpu += ru.ru_utime + ru.ru_stime
            rss = max(rss, ru.ru_maxrss)
            rc = os.waitstatus_to_exitcode(status)
            if rc != 0:
                raise BenchError(f"gcc -fsyntax-only {f} failed ({rc}):\n{tail(log)}")
        return Run(time.perf_counter() - t0, cpu, rss)

    def fresh_cache(self) -> str:
        """An empty analyzer cache holding only the compiled walker from the warm-up run."""
        d = tempfile.mkdtemp(prefix="cache-", dir=self.tmp)
        names = walkers(self.warm_cache)
        if not names:
            raise BenchError(f"the warm-up run left no walker-*.so in {self.warm_cache}")
        for n in names:
            shutil.copy2(os.path.join(self.warm_cache, n), os.path.join(d, n))
        return d

    def qtool_argv(self, files: list[str], ccdb: str, out: str) -> list[str]:
        return [*self.qtool, "analyze", "-p", ccdb, "-o", out, *files]

    def serve(self, cache: str) -> subprocess.Popen:
        """`qtool serve` for this cache, once it serves."""
        try:
            return start_qtool_server(self.qtool, dict(os.environ, QPM_CACHE_DIR=cache))
        except RuntimeError as e:
            raise BenchError(str(e)) from None

    def qtool_run(self, files: list[str], ccdb: str, cache: str, served: bool = False) -> Run:
        """One `qtool analyze`; served: run by the server of this cache (serve), not on its own
        (QPM_NO_SERVER=1 otherwise)."""
        # Not `-o /dev/null`: qtool writes -o atomically (a temporary sibling renamed over the
        # target), which would replace the /dev/null device node with a regular file when run
        # as root.  A regular file in the temporary directory costs the same.
        out = os.path.join(self.tmp, "model.txt")
        if os.path.exists(out):
            os.unlink(out)
        log = self._log("qtool")
        env = dict(os.environ, QPM_CACHE_DIR=cache)
        if served:
            env.pop("QPM_NO_SERVER", None)
        else:
            env["QPM_NO_SERVER"] = "1"
        t0 = time.perf_counter()
        pid = spawn(self.qtool_argv(files, ccdb, out), env=env, stderr=log)
        _, status, ru = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
        rc = os.waitstatus_to_exitcode(status)
        # qtool exits before its cache writers do (they go on in the background): this process is
        # their subreaper, so they are waited for here, untimed, before anything else runs, and
        # their CPU time and memory are counted with qtool's.  A server writes after its
        # client has its answer, under the cache's writer locks: those are waited for instead
        # (the server is a child of this process that does not end).
        cpu, rss = ru.ru_utime + ru.ru_stime, ru.ru_maxrss
        if served:
            await_writers(env)
        for wru in ([] if served else reap_orphans()):
            cpu += wru.ru_utime + wru.ru_stime
            rss = max(rss, wru.ru_maxrss)
        if cache != self.warm_cache and sorted(walkers(cache)) != sorted(walkers(self.warm_cache)):
            raise BenchError("the analyzer compiled its walker during a measured run: walker.c changed "
                             "after the warm-up (is qtool being edited?); run the benchmark again")
        # 0: clean, 1: the model has error diagnostics (still a complete analysis); else a failure.
        if rc not in (0, 1) or not os.path.exists(out) or os.path.getsize(out) == 0:
            raise BenchError(f"qtool analyze failed ({rc}): {shlex.join(self.qtool_argv(files, ccdb, out))}\n"
                             f"{tail(log)}")
        return Run(wall, cpu, rss)

    def qtool_summary(self) -> str:
        """The analyzer's last summary line (e.g. '0 errors, 17 warnings')."""
        last = os.path.join(self.tmp, "logs", f"{self.n:05d}-qtool.log")
        lines = tail(last, 1)
        return lines.strip()


# ---------------------------------------------------------------------------------------------
# Memory of a whole process tree

def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _rss_pss_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, pss


class TreeSampler(threading.Thread):
    """Peak of the summed RSS and PSS of this process's descendants, sampled periodically."""

    def __init__(self, interval: float = 0.01):
        super().__init__(daemon=True)
        self.interval = interval
        self.stop = threading.Event()
        self.peak_rss = self.peak_pss = self.peak_procs = 0
        self.root = os.getpid()

    def run(self) -> None:
        while not self.stop.is_set():
            rss = pss = 0
            procs = _descendants(self.root)
            for p in procs:
                r, s = _rss_pss_kb(p)
                rss += r
                pss += s
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, len(procs))
            self.stop.wait(self.interval)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join()


# ---------------------------------------------------------------------------------------------
# Child-process probes: libclang's parse alone, and the analyzer's stages

# The floor: the analysis's own call of libclang's parse (walker.c), with its arguments and its
# allocator's settings.  One file: timed around the call alone.  Many (a program of many units):
# the same call on each, by a pool of as many forked processes as the analyzer runs workers,
# taking the largest first (as the analyzer does), timed from before the pool starts until its
# last parse ended.
PARSE_ONLY = r"""
import ctypes, json, multiprocessing, sys, time
from qtool.analyzer import clang_env, unit
lib = clang_env.walker()
clang_env.keep_freed_memory()
jobs, units = int(sys.argv[1]), json.loads(sys.argv[2])      # [[path, [flags...]], ...]

def parse(item):
    path, flags = item
    argv = [a.encode() for a in unit.clang_args(tuple(flags))]   # -resource-dir <libclang-ng>/... too
    errors = ctypes.c_int(0)
    rc = lib.qpm_parse_only(path.encode(), (ctypes.c_char_p * len(argv))(*argv), len(argv), ctypes.byref(errors))
    return path, errors.value if rc == 0 else -1

t0 = time.perf_counter()
if len(units) == 1:
    found = [parse(units[0])]
else:
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        found = list(pool.imap_unordered(parse, units))
t1 = time.perf_counter()
print(json.dumps({"parse": t1 - t0, "bad": [p for p, e in found if e]}))
"""

STAGES = r"""
import collections, ctypes, json, os, sys, time
t_start = time.perf_counter()
from qtool import cli, marshal, output
import qtool.analyzer as analyzer
from qtool.analyzer import clang_env, unit
t_import = time.perf_counter() - t_start
log, ccdb, out, *paths = sys.argv[1:]
marks = {}

def timed(name, fn):
    # Each timed call appends "pid, stage, seconds" to the log, so that forked workers count too.
    def wrapper(*a, **k):
        t = time.perf_counter()
        marks.setdefault(name, t)
        try:
            return fn(*a, **k)
        finally:
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, f"{os.getpid()}\t{name}\t{time.perf_counter() - t}\n".encode())
            os.close(fd)
    return wrapper

t0 = time.perf_counter()
lib = clang_env.walker()
t_load = time.perf_counter() - t0
parse_ns = ctypes.c_ulonglong.in_dll(lib, "qpm_parse_ns")
parse_walk = lib.qpm_parse_walk


class Walker:
    # The parse and the walk are one call into walker.c (in a thread of its own, while the main
    # thread waits for the facts it writes; or, for a big file parsed alone, two calls at once,
    # one for each half of a split parse, in processes of their own); the parse's own time is
    # what the walker noted.
    def __getattr__(self, name):
        return getattr(lib, name)

    def qpm_parse_walk(self, *a):
        return timed_walk(parse_walk, *a)

    def qpm_parse_walk_split(self, *a):       # a half of a split parse, in a process of its own
        return timed_walk(lib.qpm_parse_walk_split, *a)


def timed_walk(call, *a):
    t = time.perf_counter()
    try:
        return call(*a)
    finally:
        total, parsed = time.perf_counter() - t, parse_ns.value / 1e9
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, f"{os.getpid()}\tlibclang parse\t{parsed}\n"
                     f"{os.getpid()}\twalk of the AST (walker.c, writing the facts)"
                     f"\t{total - parsed}\n".encode())
        os.close(fd)


clang_env.walker = lambda: Walker()
unit.walked = timed("facts loaded (the walk's pickle)", unit.walked)
unit.facts_of = timed("facts put in place (and a split walk's halves put together)", unit.facts_of)
unit._merged = timed("facts put in place (and a split walk's halves put together)", unit._merged)
unit._dep = timed("dependency stat + digest", unit._dep)
unit.cached = timed("cache lookup", unit.cached)
unit.store = timed("cache store (pickle + write)", unit.store)
analyzer.merge = timed("build_model (merge, frequencies)", analyzer.merge)
marshal.check_annotations = timed("marshal checks", marshal.check_annotations)
marshal.check_boundaries = timed("marshal checks", marshal.check_boundaries)
output.model_text = timed("text output", output.model_text)

t0 = time.perf_counter()
rc = cli.main(["analyze", "-p", ccdb, "-o", out, *paths])
t_end = time.perf_counter()
main_s, workers = collections.defaultdict(float), collections.defaultdict(float)
with open(log) as f:
    for line in f:
        pid, name, dt = line.rstrip("\n").split("\t")
        (main_s if int(pid) == os.getpid() else workers)[name] += float(dt)
tail = t_end - marks.get("build_model (merge, frequencies)", t_end)
print(json.dumps({"rc": rc, "import": t_import, "load": t_load, "main": t_end - t0, "tail": tail,
                  "stages": main_s, "workers": workers}))
"""


def run_probe(code: str, args: list[str], env: dict[str, str] | None = None) -> tuple[dict, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0,) or not proc.stdout.strip():
        raise BenchError(f"probe failed ({proc.returncode}):\n{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


# ---------------------------------------------------------------------------------------------
# Reporting helpers

def med(xs: list[float]) -> float:
    return statistics.median(xs)


def table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    right = right if right is not None else set(range(1, len(headers)))
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def fmt(r):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([fmt(headers), "  ".join("-" * w for w in widths), *map(fmt, rows)])


def mib(kb: float) -> str:
    return f"{kb / 1024:.0f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def first_line(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


# ---------------------------------------------------------------------------------------------

@dataclass
class Case:
    key: str
    label: str
    files: list[str]
    gcc: list[Run] = field(default_factory=list)
    qtool: list[Run] = field(default_factory=list)
    summary: str = ""
    mem_gcc: TreeSampler | None = None
    mem_qtool: TreeSampler | None = None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of each measurement (default 3)")
    ap.add_argument("--quick", action="store_true", help="one repetition (same as --repeat 1)")
    ap.add_argument("--served", action="store_true", help="also the incremental runs made by `qtool serve`")
    opts = ap.parse_args()
    reps = 1 if opts.quick else max(1, opts.repeat)
    command = shlex.join([os.path.relpath(sys.executable), os.path.relpath(os.path.abspath(sys.argv[0])),
                          *sys.argv[1:]])

    fetch()
    become_subreaper()
    sources_before = qtool_sources()
    load_before = os.getloadavg()[0]
    jobs = os.cpu_count() or 1       # the analyzer's default: one worker per core
    tmp = tempfile.mkdtemp(prefix="qtool-bench-")
    try:
        return measure(reps, jobs, tmp, command, sources_before, load_before, opts.served)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(reps: int, jobs: int, tmp: str, command: str, sources_before: str,
            load_before: float, served: bool = False) -> int:
    tools = Tools(tmp, jobs)
    say = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731 - progress on stderr

    module = [os.path.join(SQLEAN, p) for p in SQLEAN_MODULE]
    servers, missing = [], {}
    for server in SERVERS:
        try:
            servers.append(fetch_server(server))
        except BenchError as e:  # the other cases are measured all the same, and the report says why
            missing[server.name] = str(e)
            say(f"{server.name} left out: {e}")
    flags: dict[str, list[str]] = {f: sqlean_flags(SQLEAN) for f in module}
    flags[ZSTD_C] = zstd_flags()
    for server in servers:
        flags.update(server.flags)
    ccdb = os.path.join(tmp, "compile_commands.json")
    write_ccdb(ccdb, flags)
    lines = {f: count_lines(f) for f in flags}

    no_amalgamation = [f for f in module if f != SQLITE_C]
    cases = [
        Case("a", "(a) sqlite3.c", [SQLITE_C]),
        Case("b", "(b) zstd.c", [ZSTD_C]),
        Case("c", "(c) sqlite3.c + zstd.c", [SQLITE_C, ZSTD_C]),
        Case("d", f"(d) sqlean.py module ({len(module)} files)", module),
        Case("e", f"(e) (d) without sqlite3.c ({len(no_amalgamation)} files)", no_amalgamation),
    ]
    for key, server in zip("fg", servers):
        cases.append(Case(key, f"({key}) {server.name} {server.version} server ({len(server.units)} files)",
                          server.units))

    # Warm-up: compiles the analyzer's walker into warm-cache, and brings every file and header
    # into the page cache for both tools.
    say("warm-up ...")
    os.makedirs(tools.warm_cache)
    all_files = [SQLITE_C, ZSTD_C, *[f for f in module if f != SQLITE_C], *(f for sv in servers for f in sv.units)]
    tools.qtool_run(all_files, ccdb, tools.warm_cache)
    tools.gcc_run(all_files, flags)

    # 1. Fresh runs, alternating the two tools (and which goes first).
    for rep in range(reps):
        for case in cases:
            say(f"fresh {rep + 1}/{reps} {case.label}")
            order = ("gcc", "qtool") if rep % 2 == 0 else ("qtool", "gcc")
            for tool in order:
                if tool == "gcc":
                    case.gcc.append(tools.gcc_run(case.files, flags))
                else:
                    case.qtool.append(tools.qtool_run(case.files, ccdb, tools.fresh_cache()))
                    case.summary = tools.qtool_summary()

    # 2. Peak memory of the whole process tree, in separate (untimed) runs.
    for case in cases:
        say(f"memory {case.label}")
        with TreeSampler() as s:
            tools.gcc_run(case.files, flags)
        case.mem_gcc = s
        with TreeSampler() as s:
            tools.qtool_run(case.files, ccdb, tools.fresh_cache())
        case.mem_qtool = s

    # 3. Incremental, on a copy of the multi-file program.
    tree = os.path.join(tmp, "tree")
    for sub in ("sqlite", "src"):
        shutil.copytree(os.path.join(SQLEAN, sub), os.path.join(tree, sub))
    copy_files = [os.path.join(tree, p) for p in SQLEAN_MODULE]
    copy_ccdb = os.path.join(tmp, "tree_compile_commands.json")
    write_ccdb(copy_ccdb, {f: sqlean_flags(tree) for f in copy_files})
    inc: dict[str, list[float]] = {"fresh": [], "nochange": [], "touch": [], "touch_big": [],
                                   **{f"served {w}": [] for w in ("fresh", "nochange", "touch", "touch again")}}
    for rep in range(reps):
        say(f"incremental {rep + 1}/{reps}")
        cache = tools.fresh_cache()
        inc["fresh"].append(tools.qtool_run(copy_files, copy_ccdb, cache).wall)
        inc["nochange"].append(tools.qtool_run(copy_files, copy_ccdb, cache).wall)
        with open(os.path.join(tree, TOUCHED), "a") as f:
            f.write(f"/* bench/analyze.py: change {rep + 1} */\n")
        inc["touch"].append(tools.qtool_run(copy_files, copy_ccdb, cache).wall)
        with open(os.path.join(tree, "sqlite", "sqlite3.c"), "a") as f:
            f.write(f"/* bench/analyze.py: change {rep + 1} */\n")
        inc["touch_big"].append(tools.qtool_run(copy_files, copy_ccdb, cache).wall)
        if served:
            # The same, run by `qtool serve` (started anew: it keeps nothing of the runs before),
            # and a second change of the same file (the keeper parses it again from its kept parse).
            cache = tools.fresh_cache()
            server = tools.serve(cache)
            try:
                for what in ("fresh", "nochange", "touch", "touch again"):
                    if what.startswith("touch"):
                        with open(os.path.join(tree, TOUCHED), "a") as f:
                            f.write(f"/* bench/analyze.py: served change {rep + 1} */\n")
                    inc[f"served {what}"].append(tools.qtool_run(copy_files, copy_ccdb, cache, served=True).wall)
            finally:
                stop_qtool_server(server)

    # 4. The floor: libclang's parse alone, alternating with gcc on the same files (those of a
    # program of many units parsed by a pool of `jobs` processes).
    floor = []
    for label, files, fl in [*((label, [path], {path: fl}) for label, path, fl in (
                                 ("sqlite3.c", SQLITE_C, flags[SQLITE_C]), ("zstd.c", ZSTD_C, flags[ZSTD_C]),
                                 ("sqlite3.c, no flags", SQLITE_C, []))),
                             *((case.label[4:] + f", {jobs} at a time", case.files, flags) for case in cases[3:])]:
        say(f"libclang parse only {label}")
        parses, gccs = [], []
        units = json.dumps([[f, fl[f]] for f in sorted(files, key=lambda f: -os.path.getsize(f))])
        for rep in range(reps):
            info, _ = run_probe(PARSE_ONLY, [str(jobs), units])
            if info["bad"]:
                raise BenchError(f"libclang reported errors parsing {label}: {', '.join(info['bad'])}")
            parses.append(info["parse"])
            gccs.append(tools.gcc_run(files, fl).wall)
        floor.append((label, files, parses, gccs))

    # 5. Where the analyzer's time goes (one run each, fresh cache).
    breakdowns = []
    for label, files in (("sqlite3.c alone", [SQLITE_C]), (f"(d), the {len(module)}-file module", module),
                         *((f"{c.label[:3]}, {sv.name}'s {len(sv.units)} files", sv.units)
                           for c, sv in zip(cases[5:], servers))):
        say(f"stage breakdown {label}")
        stage_env = dict(os.environ, QPM_CACHE_DIR=tools.fresh_cache())
        log = tempfile.mktemp(prefix="stages-", suffix=".log", dir=tmp)
        info, wall = run_probe(STAGES, [log, ccdb, os.path.join(tmp, "stages.txt"), *files], env=stage_env)
        if sorted(walkers(stage_env["QPM_CACHE_DIR"])) != sorted(walkers(tools.warm_cache)):
            raise BenchError("the analyzer compiled its walker during the stage breakdown: walker.c changed")
        breakdowns.append((label, info, wall))

    # ----------------------------------------------------------------------------- report
    qtool_version = first_line([*tools.qtool, "--version"])
    libclang = subprocess.run([*tools.qtool, "--version"], capture_output=True, text=True).stdout
    libclang = next((l.split(":", 1)[1].strip() for l in libclang.splitlines() if l.startswith("libclang")),
                    "unknown")
    out = []
    p = out.append
    p("qtool analyze benchmark (bench/analyze.py)")
    p("")
    p(f"command:   {command}   (in {REPO})")
    p(f"date:      {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    p(f"machine:   {jobs} cores (os.cpu_count; nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
      f"{platform.system()} {platform.release()}")
    p(f"load:      1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after (the benchmark "
      f"itself keeps up to {jobs} cores busy)")
    p(f"tools:     {first_line([tools.gcc, '--version'])}; {qtool_version}; libclang {libclang}; "
      f"Python {platform.python_version()}")
    p(f"qtool at:  {git_revision()}")
    if qtool_sources() != sources_before:
        p("WARNING:   qtool's sources changed while the benchmark ran: the runs mix versions")
    p(f"repeats:   {reps} (median shown; the two tools' runs alternate, and which goes first alternates)")
    p("")
    p("inputs (in bench/.data/: PyPI sdists, and Debian source packages):")
    p(f"  sqlite3.c   {lines[SQLITE_C]:>7} lines  sqlean.py 3.50.4.5 sqlite/sqlite3.c")
    p(f"  zstd.c      {lines[ZSTD_C]:>7} lines  zstandard 0.25.0 zstd/zstd.c")
    p(f"  module      {sum(lines[f] for f in module):>7} lines  the {len(module)} C files sqlean.py's setup.py "
      f"compiles into its extension module (incl. sqlite3.c)")
    for sv in servers:
        p(f"  {sv.name:<11} {sum(lines[f] for f in sv.units):>7} lines  {sv.about} of {sv.name} {sv.version} "
          f"({len(sv.units)}; Debian source package, ./configure {' '.join(sv.configure[1:])})")
        if sv.left_out:
            p("              left out (other programs, or a library this machine lacks): "
              + ", ".join(os.path.basename(f) for f in sv.left_out))
    for name, why in missing.items():
        p(f"  {name:<11} not measured: {why}")
    p(f"  flags, sqlean.py files: {shlex.join(sqlean_flags(SQLEAN)).replace(REPO + '/', '')}")
    p(f"  flags, zstd.c:          {shlex.join(zstd_flags()).replace(REPO + '/', '')}")
    for sv in servers:
        shown = sorted({shlex.join(fl).replace(REPO + '/', '') for fl in sv.flags.values()}, key=len)
        p(f"  flags, {sv.name + ':':<16} {shown[-1]}" + (f" (the longest of {len(shown)} sets)" if len(shown) > 1 else ""))
    p("")
    p("commands (same flags for both, via a compile_commands.json for qtool):")
    p(f"  gcc:   gcc -fsyntax-only FLAGS FILE, {jobs} files at a time (concurrent processes)")
    p(f"  qtool: QPM_CACHE_DIR=<empty dir + walker-*.so> {shlex.join(tools.qtool).replace(REPO + '/', '')} "
      f"analyze -p compile_commands.json -o <tmp>/model.txt FILES...")
    p("")

    p(f"Fresh runs: wall seconds, median of {reps}; target qtool/gcc <= {RATIO_TARGET}")
    rows = []
    for c in cases:
        g, q = med([r.wall for r in c.gcc]), med([r.wall for r in c.qtool])
        rows.append([c.label, len(c.files), sum(lines[f] for f in c.files), f"{g:.2f}", f"{q:.2f}",
                     f"{q / g:.2f}", verdict(q / g <= RATIO_TARGET),
                     f"{med([r.cpu for r in c.gcc]):.2f}", f"{med([r.cpu for r in c.qtool]):.2f}"])
    for label, paths, parses, gccs in floor:
        g, q = med(gccs), med(parses)
        rows.append([f"    libclang parse only, {label}", len(paths), sum(lines[f] for f in paths), f"{g:.2f}",
                     f"{q:.2f}", f"{q / g:.2f}", "(floor)", "", ""])
    p(table(["case", "files", "lines", "gcc s", "qtool s", "ratio", "result", "gcc cpu s", "qtool cpu s"],
            rows, right={1, 2, 3, 4, 5, 7, 8}))
    p("  'libclang parse only': the analysis's own call of libclang's parse (walker.c, qpm_parse_only)")
    p("  with the analyzer's clang arguments (-resource-dir of the libclang-ng wheel), timed around the")
    p("  call alone; no interpreter start, no walk.  Its gcc column is gcc on the same file in the same loop.")
    p(f"  For ({'), ('.join(c.key for c in cases[3:])}) the same call on each file, by a pool of {jobs} forked "
      "processes taking the largest")
    p("  files first (as the analyzer's workers do), timed from the pool's start to its last parse; the")
    p("  probes keep freed memory as the analysis does (clang_env.keep_freed_memory).")
    p("  qtool's diagnostics: " + "; ".join(f"{c.key}) {c.summary}" for c in cases))
    p("")

    p("Peak memory, MiB: largest single process (exact: wait4 ru_maxrss, max over the runs) and the")
    p("whole process tree (sum over the tool's live processes, sampled every 10 ms in one extra run)")
    rows = []
    for c in cases:
        rows.append([c.label,
                     mib(max(r.maxrss_kb for r in c.gcc)), mib(max(r.maxrss_kb for r in c.qtool)),
                     mib(c.mem_gcc.peak_pss), mib(c.mem_qtool.peak_pss),
                     f"{c.mem_qtool.peak_pss / max(1, c.mem_gcc.peak_pss):.1f}",
                     mib(c.mem_gcc.peak_rss), mib(c.mem_qtool.peak_rss),
                     f"{c.mem_gcc.peak_procs}/{c.mem_qtool.peak_procs}"])
    p(table(["case", "gcc 1-proc RSS", "qtool 1-proc RSS", "gcc tree PSS", "qtool tree PSS", "ratio",
             "gcc tree RSS", "qtool tree RSS", "procs gcc/qtool"], rows))
    p("  tree RSS counts pages shared by qtool's forked workers once per process; PSS splits them.")
    p("")

    f0 = med(inc["fresh"])
    p(f"Incremental, on a copy of the {len(module)}-file sqlean.py module: seconds, median of {reps}; "
      f"target <= {INCREMENTAL_TARGET:.0%} of fresh")
    rows = [
        ["fresh analysis (empty cache)", f"{f0:.2f}", "100%", ""],
        ["re-run, nothing changed", f"{med(inc['nochange']):.2f}", f"{med(inc['nochange']) / f0:.0%}", ""],
        [f"re-run, {TOUCHED} changed ({lines[os.path.join(SQLEAN, TOUCHED)]} lines)",
         f"{med(inc['touch']):.2f}", f"{med(inc['touch']) / f0:.0%}",
         verdict(med(inc["touch"]) / f0 <= INCREMENTAL_TARGET)],
        ["re-run, sqlite3.c changed (worst case)", f"{med(inc['touch_big']):.2f}",
         f"{med(inc['touch_big']) / f0:.0%}", "(info)"],
    ]
    if inc["served fresh"]:
        s0 = med(inc["served fresh"])
        rows += [
            ["served (qtool serve): fresh analysis", f"{s0:.2f}", f"{s0 / f0:.0%}", ""],
            ["served: re-run, nothing changed", f"{med(inc['served nochange']):.2f}",
             f"{med(inc['served nochange']) / f0:.0%}", ""],
            [f"served: re-run, {TOUCHED} changed", f"{med(inc['served touch']):.2f}",
             f"{med(inc['served touch']) / f0:.0%}", verdict(med(inc["served touch"]) / f0 <= INCREMENTAL_TARGET)],
            [f"served: re-run, {TOUCHED} changed again", f"{med(inc['served touch again']):.2f}",
             f"{med(inc['served touch again']) / f0:.0%}",
             verdict(med(inc["served touch again"]) / f0 <= INCREMENTAL_TARGET)],
        ]
    p(table(["run", "wall s", "of fresh", "result"], rows, right={1, 2}))
    p("  a change is one comment line appended to the copy; the cache directory is kept between runs.")
    p("")

    p("Where qtool's time goes (one run each, fresh cache): timers around the analyzer's own functions,")
    p("put in by a child process; 'main' is the qtool process, 'children' the sum over the processes it")
    p("forks (parsing workers, and cache writers where it forks those).")
    for label, info, wall in breakdowns:
        st, wk = info["stages"], info["workers"]
        p(f"  {label}: {wall:.2f} s wall, of which {info['tail']:.2f} s after the last unit was parsed "
          f"(build_model onwards, serial)")
        rows = [["interpreter start-up and exit", f"{wall - info['import'] - info['load'] - info['main']:.2f}", ""],
                ["imports", f"{info['import']:.2f}", ""],
                ["loading libclang.so and the walker", f"{info['load']:.2f}", ""]]
        for k in sorted(set(st) | set(wk), key=lambda k: -(st.get(k, 0) + wk.get(k, 0))):
            rows.append([k, f"{st[k]:.2f}" if k in st else "", f"{wk[k]:.2f}" if k in wk else ""])
        # The parse and the walk run in a thread (or processes) of their own while the main
        # thread waits for the facts they write.
        other = info["main"] - sum(v for k, v in st.items() if not k.startswith(("walk of the AST", "libclang parse")))
        rows.append(["main: other (waiting for / receiving from children, args, ...)" if wk else
                     "other (argument parsing, includes list, ...)", f"{other:.2f}", ""])
        p(table(["stage", "main s", "children s"], rows))
        p("")

    p("raw wall seconds per run (gcc | qtool):")
    for c in cases:
        p(f"  {c.key}) " + " ".join(f"{r.wall:.2f}" for r in c.gcc) + " | "
          + " ".join(f"{r.wall:.2f}" for r in c.qtool))
    p("  incremental fresh/nochange/touch/touch-sqlite3.c: "
      + "; ".join(" ".join(f"{x:.2f}" for x in inc[k]) for k in ("fresh", "nochange", "touch", "touch_big")))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench/analyze.py: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
