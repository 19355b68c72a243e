#!/usr/bin/env python3
"""Instructions a request costs, counted: isolate-cache against its floor, under the same load.

Time on a shared machine moves by several percent between runs (docs/PERFORMANCE.md); the
instructions a program executes do not.  This counts them with valgrind's callgrind, in every
process of the server, while build/tools/loadgen sends it a closed-loop load, for two builds of the
kvstore sample:

  isolate-cache  the split build (samples/kvstore/plans/isolate-cache.yaml): the program and its
                 cache domain;
  handoff        bench/kvstore.py's floor: the plain build in which every call isolate-cache sends
                 across makes one bare futex hand-off with a second process, then runs in place.

A build is run twice, with 8 connections of --small and of --large requests each; what a request
costs is the difference of the two counts over the difference in requests, so that start-up, the
first calls and shutdown drop out.  The instructions are grouped by where they are: the program
(samples/kvstore), the generated stubs, the runtime, the floor's hand-off (bench/ipc/handoff.c),
libc's memset and memcpy, the rest of libc and the loader; in the program's main process and in
its others (the domain, the floor's peer, forks).  The runtime's round trips per request come
from its statistics file.

What the counts are not: time.  Under valgrind a process runs one thread at a time, so spinning
waits spin longer or shorter than on the machine (the runtime's waits, the loops in wait_slow and
the inline spins of converse and qrt__serve, are counted with the runtime); and a `rep stos` or
`rep movs`, which memset and memcpy use for kilobytes, counts one instruction a step (each step
moves 1 to 32 bytes), so those two are shown apart.  Cache misses and switches cost time and no
instructions.

The runtime supervises its domains with pidfds (pidfd_open), which valgrind knows from 3.20 on.
With an older valgrind on PATH (Debian 12 has 3.19), the script takes Debian's current package
(trixie's, from deb.debian.org over https, its SHA256 checked against the package index) once
into bench/.data/valgrind/ and runs it from there: its tools are static executables, and its
launcher needs glibc 2.34 or later (Debian 12 has 2.36).  --valgrind chooses another.

The exit status is 0 when every request of every run was answered, 1 when not, 2 when something
could not be built, fetched or run.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import lzma
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

import kvstore as kv  # bench/kvstore.py: its builds, server and load client
from kvstore import log
from machine import cpu_model

REPO = kv.REPO
DATA = os.path.join(REPO, "bench", ".data", "valgrind")
DEBIAN = "https://deb.debian.org/debian"
SUITE = "trixie"
VALGRIND_MIN = (3, 20)   # pidfd_open
THREADS = 8
DUMP_TIMEOUT_S = 60      # for a process given SIGUSR2 to write its counts and end
FETCH_TIMEOUT_S = 120

BUILDS = ("isolate-cache", "handoff")
GROUPS = ("program", "stubs", "runtime", "runtime: waits", "hand-off", "memset, memcpy", "libc, other",
          "loader, other")
WAITS = ("wait_slow", "yield_for")     # the runtime's waits past the first inline spins


# ---- valgrind ---------------------------------------------------------------------------------

def version_of(valgrind: str, env: dict) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([valgrind, "--version"], env={**os.environ, **env}, capture_output=True, text=True,
                             timeout=30).stdout
    except OSError:
        return None
    m = re.search(r"valgrind-(\d+)\.(\d+)", out)
    return (int(m[1]), int(m[2])) if m else None


def debian_arch() -> str:
    machine = platform.machine()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine)
    if not arch:
        raise kv.Failure(f"no Debian valgrind package is known for {machine}: give one with --valgrind")
    return arch


def fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as r:
            return r.read()
    except (OSError, http.client.HTTPException) as e:
        raise kv.Failure(f"cannot fetch {url}: {e}") from e


def safe_members(t: tarfile.TarFile, dest: str):
    """The archive's members, refusing any that would land outside dest (for a Python whose
    tarfile has no extraction filters)."""
    root = os.path.realpath(dest)
    for m in t.getmembers():
        target = os.path.realpath(os.path.join(dest, m.name))
        link = os.path.realpath(os.path.join(os.path.dirname(target), m.linkname)) if m.issym() or m.islnk() else root
        if os.path.commonpath([root, target]) != root or os.path.commonpath([root, link]) != root:
            raise kv.Failure(f"the valgrind package holds a path outside its folder: {m.name}")
        yield m


def unpack_deb(deb: bytes, dest: str) -> None:
    """The data.tar.* member of a .deb (an ar archive) unpacked into dest."""
    if not deb.startswith(b"!<arch>\n"):
        raise kv.Failure("the valgrind package is not a .deb (ar) archive")
    pos = 8
    while pos + 60 <= len(deb):
        name, size = deb[pos:pos + 16].decode().strip().rstrip("/"), int(deb[pos + 48:pos + 58])
        body = deb[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            tmp = dest + ".tar"
            with open(tmp, "wb") as f:
                f.write(body)
            try:
                with tarfile.open(tmp) as t:
                    if hasattr(tarfile, "data_filter"):
                        t.extractall(dest, filter="data")
                    else:
                        t.extractall(dest, members=safe_members(t, dest))
            except (tarfile.TarError, lzma.LZMAError, EOFError) as e:
                raise kv.Failure(f"cannot unpack the valgrind package: {e}") from e
            finally:
                os.unlink(tmp)
            return
        pos += 60 + size + size % 2
    raise kv.Failure("the valgrind package has no data.tar member")


def debian_valgrind() -> tuple[str, dict]:
    """Debian's current valgrind in bench/.data/valgrind/<version>, fetched the first time."""
    arch = debian_arch()
    url = f"{DEBIAN}/dists/{SUITE}/main/binary-{arch}/Packages.xz"
    try:
        index = lzma.decompress(fetch(url)).decode()
    except (lzma.LZMAError, UnicodeDecodeError) as e:
        raise kv.Failure(f"{url} is not a package index: {e}") from e
    stanza = next((s for s in index.split("\n\n") if re.search(r"^Package: valgrind$", s, re.M)), None)
    m = stanza and re.search(r"^Filename: (\S+)$", stanza, re.M)
    digest = stanza and re.search(r"^SHA256: ([0-9a-f]{64})$", stanza, re.M)
    if not m or not digest:
        raise kv.Failure(f"Debian {SUITE} lists no valgrind package for {arch}")
    dest = os.path.join(DATA, os.path.basename(m[1]).removesuffix(".deb"))
    if not os.path.isdir(dest):
        log(f"  fetching {DEBIAN}/{m[1]} into {os.path.relpath(dest, REPO)}/")
        part = dest + ".part"
        shutil.rmtree(part, ignore_errors=True)
        os.makedirs(part)
        deb = fetch(f"{DEBIAN}/{m[1]}")
        if hashlib.sha256(deb).hexdigest() != digest[1]:
            raise kv.Failure(f"{DEBIAN}/{m[1]}: its SHA256 is not the one the package index gives")
        unpack_deb(deb, part)
        os.rename(part, dest)
    return local_valgrind(dest)


def local_valgrind(root: str) -> tuple[str, dict]:
    """An unpacked package's valgrind and the environment it needs beside the caller's."""
    return (os.path.join(root, "usr", "bin", "valgrind"),
            {"VALGRIND_LIB": os.path.join(root, "usr", "libexec", "valgrind")})


def find_valgrind(given: str | None) -> tuple[str, dict]:
    """A valgrind of VALGRIND_MIN or later and what it needs in the environment."""
    candidates = [(given, {})] if given else []
    if not given:
        if shutil.which("valgrind"):
            candidates.append((shutil.which("valgrind"), {}))
        if os.path.isdir(DATA):
            candidates += [local_valgrind(os.path.join(DATA, d)) for d in sorted(os.listdir(DATA), reverse=True)
                           if not d.endswith(".part")]
    for exe, env in candidates:
        v = version_of(exe, env)
        if v and v >= VALGRIND_MIN:
            return exe, env
    if given:
        raise kv.Failure(f"{given} is not valgrind {'.'.join(map(str, VALGRIND_MIN))} or later")
    exe, env = debian_valgrind()
    if (version_of(exe, env) or ()) < VALGRIND_MIN:
        raise kv.Failure(f"Debian's valgrind ({exe}) does not run here, or is older than "
                         f"{'.'.join(map(str, VALGRIND_MIN))}")
    return exe, env


# ---- counting ---------------------------------------------------------------------------------

def group_of(file: str, function: str, obj: str) -> str:
    """Where a function's instructions count (callgrind_annotate shows a file of the repository
    as an absolute path or one relative to where it was compiled)."""
    if re.search(r"(^|/)handoff\.c$", file):
        return "hand-off"       # bench/ipc/handoff.c, and the floor's wrappers that call it
    if re.search(r"\.qpm/[^/]+$", file):
        return "stubs"
    if re.search(r"(^|/)runtime/[^/]+$", file):
        return "runtime: waits" if function.split(".")[0] in WAITS else "runtime"
    if re.search(r"(^|/)samples/", file):
        return "program"
    if re.search(r"mem(set|move|cpy)", file) or re.match(r"_*mem(set|move|cpy)", function):
        return "memset, memcpy"     # by its file where libc's debug information is installed
    if "libc.so" in obj or (not obj and file.startswith("./")):
        return "libc, other"        # ./ : glibc's own sources, also where inlined with no object
    return "loader, other"


COMPILER_HEADER = re.compile(r"/lib/gcc/[^/]+/[^/]+/include/|/lib/clang/[^/]+/include/")
LINE = re.compile(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*?):(\S.*?)(?: \[(.*)\])?$")


def counts_of(annotate: str, env: dict, path: str) -> dict[str, int]:
    """One callgrind file's instructions by group (callgrind_annotate's self cost per function)."""
    out = subprocess.run(["perl", annotate, "--threshold=100", path], env={**os.environ, **env}, capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        raise kv.Failure(f"callgrind_annotate {path}: {out.stderr.strip()[:300]}")
    groups = dict.fromkeys(GROUPS, 0)
    lines = out.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "PROGRAM TOTALS" in line), None)
    if start is None:
        raise kv.Failure(f"callgrind_annotate {path}: no PROGRAM TOTALS line in its output")
    total = int(lines[start].split()[0].replace(",", ""))
    rows = []
    for line in lines[start + 1:]:
        m = LINE.match(line)
        if m:
            rows.append((int(m[1].replace(",", "")), m[2], m[3], m[4] or ""))
        elif line.startswith("-- Auto-annotated") or line.startswith("-- User-annotated"):
            break
    # Code inlined from a compiler's header (an intrinsic, say) is shown under that header's name:
    # it counts where the rest of its function does.
    home = {fn: group_of(file, fn, obj) for _, file, fn, obj in rows if not COMPILER_HEADER.search(file)}
    for n, file, fn, obj in rows:
        groups[home.get(fn, "loader, other") if COMPILER_HEADER.search(file) else group_of(file, fn, obj)] += n
    if abs(sum(groups.values()) - total) > total // 100:
        raise kv.Failure(f"callgrind_annotate {path}: its functions add up to {sum(groups.values()):,}, "
                         f"not its total {total:,}: a format this script does not know")
    return groups


def wait_gone(pid: int, deadline: float) -> None:
    """Waits until pid has ended (gone, or a zombie its parent has not reaped)."""
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.05)
    raise kv.Failure(f"process {pid} did not end within {DUMP_TIMEOUT_S} s of SIGUSR2 (callgrind writes "
                     f"its counts as it ends)")


def counted_run(exe: str, valgrind: str, env: dict, loadgen: str, requests: int, tmp: str) -> dict:
    """One run under callgrind: the server, THREADS x requests from loadgen, then SIGUSR2 to each
    of its other processes (so that they end, and callgrind writes their counts; the runtime
    starts a new domain), SIGTERM to the server.  Returns {"main"/"others": groups} and the run's
    requests and runtime round trips."""
    out_dir = tempfile.mkdtemp(prefix="callgrind-", dir=tmp)
    reports = tempfile.mkdtemp(prefix="reports-", dir=tmp)
    wrapper = [valgrind, "--tool=callgrind", "--trace-children=yes", "--trace-children-skip=*addr2line*",
               f"--callgrind-out-file={os.path.join(out_dir, 'cg.%p')}"]
    server = kv.Server(exe, tmp, {"QPM_REPORT_DIR": reports, **env}, wrapper=wrapper)
    stopped = False
    try:
        result, _ = kv.run_loadgen(loadgen, server.port, ["--threads", str(THREADS), "--requests", str(requests)],
                                   600)
        others = kv.children(server.proc.pid)
        for pid in others:
            try:
                os.kill(pid, signal.SIGUSR2)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + DUMP_TIMEOUT_S
        for pid in others:
            wait_gone(pid, deadline)
        status, out, _ = server.stop()
        stopped = True
    finally:
        if not stopped:
            server.kill()
    err = server.stderr_text()
    server.errfile.close()
    served = kv.server_stats(out)
    if status != 0 or not served or served["requests"] != result["requests"]:
        raise kv.Failure(f"{exe} under callgrind: exit status {status}, "
                         + (f"served {served['requests']} requests where loadgen sent {result['requests']}"
                            if served else "no statistics line") + err)
    _, trips = kv.runtime_trips(reports)
    annotate = os.path.join(os.path.dirname(valgrind), "callgrind_annotate")
    totals = {"main": dict.fromkeys(GROUPS, 0), "others": dict.fromkeys(GROUPS, 0)}
    for name in sorted(os.listdir(out_dir)):
        path = os.path.join(out_dir, name)
        if not os.path.getsize(path):
            continue    # a process killed before it could write (the domain started after SIGUSR2)
        side = "main" if name == f"cg.{server.proc.pid}" else "others"
        for g, n in counts_of(annotate, env, path).items():
            totals[side][g] += n
    shutil.rmtree(out_dir, ignore_errors=True)
    shutil.rmtree(reports, ignore_errors=True)
    return {"counts": totals, "requests": result["requests"], "errors": result["errors"], "trips": trips,
            "ok": result["ok"]}


def per_request(small: dict, large: dict) -> dict[str, dict[str, float]]:
    n = large["requests"] - small["requests"]
    return {side: {g: (large["counts"][side][g] - small["counts"][side][g]) / n for g in GROUPS}
            for side in ("main", "others")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=1000, help="requests per connection, the smaller run (1000)")
    ap.add_argument("--large", type=int, default=4000, help="requests per connection, the larger run (4000)")
    ap.add_argument("--valgrind", help="a valgrind 3.20 or later to run (default: found or fetched)")
    args = ap.parse_args()
    if not 0 < args.small < args.large:
        ap.error("--small must be above 0 and below --large")
    tmp = tempfile.mkdtemp(prefix="bench-instructions-")
    kv.become_subreaper()   # a domain whose program ended is reaped here
    try:
        log("valgrind:")
        valgrind, env = find_valgrind(args.valgrind)
        log(f"  {valgrind} ({'.'.join(map(str, version_of(valgrind, env)))})")
        log("build:")
        exes = {"isolate-cache": kv.build_variant("isolate-cache", tmp)[0], "handoff": kv.build_handoff(tmp)}
        loadgen = kv.copy_loadgen(tmp)
        log("runs (under callgrind):")
        runs = {}
        for b in BUILDS:
            for n in (args.small, args.large):
                r = counted_run(exes[b], valgrind, env, loadgen, n, tmp)
                runs[(b, n)] = r
                log(f"  {b:<14} {THREADS} x {n:>5} requests: {r['ok']} answered, {r['errors']} errors, "
                    f"{sum(sum(c.values()) for c in r['counts'].values()):,} instructions, {r['trips']} round trips")
    except (kv.Failure, OSError, subprocess.SubprocessError) as e:
        log(f"\nFAILED: {e}")
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    costs = {b: per_request(runs[(b, args.small)], runs[(b, args.large)]) for b in BUILDS}
    trips = ((runs[("isolate-cache", args.large)]["trips"] - runs[("isolate-cache", args.small)]["trips"])
             / (runs[("isolate-cache", args.large)]["requests"] - runs[("isolate-cache", args.small)]["requests"]))
    log()
    log("command:  .venv/bin/python bench/instructions.py" + "".join(
        f" --{k} {getattr(args, k)}" for k in ("small", "large") if getattr(args, k) != ap.get_default(k)))
    log(f"machine:  {os.cpu_count()} cores, {cpu_model()}, Linux {platform.release()}")
    log(f"load:     build/tools/loadgen --threads {THREADS} --requests {args.small} and {args.large} (closed "
        f"loop); per request: the difference of the two runs' counts over the difference in requests")
    log()
    log(f"instructions per request       {'isolate-cache':>14}{'handoff':>10}{'difference':>12}")
    for side in ("main", "others"):
        for g in GROUPS:
            a, b = costs["isolate-cache"][side][g], costs["handoff"][side][g]
            if round(a) or round(b):
                log(f"  {side + ': ' + g:<29}{a:>14,.0f}{b:>10,.0f}{a - b:>12,.0f}")
    total = {b: sum(sum(c.values()) for c in costs[b].values()) for b in BUILDS}
    apart = {b: sum(costs[b][s]["memset, memcpy"] for s in ("main", "others")) for b in BUILDS}
    log(f"  {'total':<29}{total['isolate-cache']:>14,.0f}{total['handoff']:>10,.0f}"
        f"{total['isolate-cache'] - total['handoff']:>12,.0f}")
    log(f"  {'total without memset, memcpy':<29}{total['isolate-cache'] - apart['isolate-cache']:>14,.0f}"
        f"{total['handoff'] - apart['handoff']:>10,.0f}"
        f"{total['isolate-cache'] - apart['isolate-cache'] - total['handoff'] + apart['handoff']:>12,.0f}")
    log()
    log(f"isolate-cache / handoff: {total['isolate-cache'] / total['handoff']:.2f} (without memset and memcpy, "
        f"counted a step of rep stos/movs each: {(total['isolate-cache'] - apart['isolate-cache']) / (total['handoff'] - apart['handoff']):.2f})")
    if trips:
        runtime = sum(costs["isolate-cache"][s][g] for s in ("main", "others") for g in ("runtime", "stubs"))
        log(f"round trips per request: {trips:.2f}; runtime and stubs per round trip: {runtime / trips:,.0f} "
            f"instructions (the floor's hand-off: "
            f"{sum(costs['handoff'][s]['hand-off'] for s in ('main', 'others')) / trips:,.0f})")
    bad = [f"{b}, {n} requests a connection: {r['errors']} errors" for (b, n), r in runs.items()
           if r["errors"] or r["ok"] != r["requests"]]
    for line in bad:
        log(f"PROBLEM: {line}")
    log("outcome: " + ("some requests failed; the numbers are not valid" if bad else
                       "every request of every run answered correctly"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
