#!/usr/bin/env python3
"""Quarantine on real C servers it was not written with: memcached and dnsmasq, from Debian.

Run from the repository root:

    .venv/bin/python bench/real_code.py                       # both servers
    .venv/bin/python bench/real_code.py --server memcached    # one of them
    .venv/bin/python bench/real_code.py --connections 4 --requests 1000 --seconds 30

The servers, two shapes of concurrent server:

  memcached 1.6.18  thread pool: a listener thread hands connections to worker threads, each
                    running a libevent loop (Debian source package memcached; needs the
                    libevent headers: installed with apt-get when missing and run as root)
  dnsmasq 2.90      event loop: one thread, poll() over every socket (Debian source package
                    dnsmasq)

The sources are fetched at run time with Debian's own client, never kept in the repository:
`apt-get source --download-only PACKAGE` into bench/.data/real/ (git-ignored), with deb-src
entries derived from the machine's apt sources (those of its release) and kept in
bench/.data/real/apt/ with their own package lists, so the machine's apt configuration is not
touched.  Only the upstream tarball (*.orig.tar.*) is used: the sources as their authors
released them, without Debian's patches.  Once downloaded, the tarball is reused.

For each server, from what bench/real/<server>/ holds (an SConstruct for the Quarantine SCons
tool, plans, patches):

  1. two trees are unpacked: `plain` (untouched) and `annotated` (the patches: annotate.patch,
     the annotations; crash.patch, an injected fault; for dnsmasq also sha256.patch, which gives
     its SHA-256 functions external linkage);
  2. `qtool analyze` and `qtool check --plan` for every plan, on both trees: diagnostics by code;
     the fix-its the plain tree's analysis offers for a few functions whose buffers are easy to
     get wrong; what `qtool cut --suggest --isolate ...` proposes for a few components;
  3. builds of the annotated tree: `scons` (monolithic) and `scons ISOLATE=<plan>` per plan;
     what fails is recorded with its message;
  4. memcached: the monolithic build and the split build by isolate-base64.yaml each serve a
     load (--connections connections, --requests requests each, at most --seconds: meta
     commands with base64 keys, which cross into the isolated codec, and plain set/get, which
     do not); then the same load again while --crashes requests carry the key that the injected
     fault in base64_decode dereferences NULL on.  Recorded: answers right and wrong, what the
     crashing requests' clients saw, whether the server lives, the domain processes before and
     after, the crash and stats reports ($QPM_REPORT_DIR).  Then `qtool learn` from the
     monolithic build's crash report, `qtool check` and the build of the plan it writes; the
     split build stopped the way a service manager stops a service: SIGTERM to its whole process
     group; and `qtool check --plan isolate-util.yaml --fix` on a fresh copy of the plain tree,
     what it changed, and the split build of the result.
     dnsmasq: the monolithic build and the split build by isolate-sha256.yaml each answer
     --queries DNS queries (a name configured with --address, and one refused: no upstream
     server), --crashes of them for the name that the injected fault in sha256_update
     dereferences NULL on; then each is stopped by SIGTERM to its process group.  dnsmasq
     closes every descriptor it inherited when it starts (close_fds() in main()), as released:
     the runtime keeps its own open.  The other split builds that build serve the same queries
     without the crashing ones.

Servers bind 127.0.0.1 only: memcached on a port the OS picks (-p -1, read back through
MEMCACHED_PORT_FILENAME), dnsmasq on a free port found first (it cannot bind port 0).  Each
server and its domain processes form a process group of their own, killed on every path and
checked to be empty after each run; every request has a timeout and every load a bound.

The exit status is 0 when everything ran, whatever the results; 2 when a source could not be
fetched, unpacked or patched, or when a build that the rest depends on (each server's
monolithic build, memcached's split build by isolate-base64.yaml, dnsmasq's by
isolate-sha256.yaml) failed.
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime
import glob
import json
import os
import platform
import pwd
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time

from kvstore import become_subreaper, children, group_members, proc_name  # bench/kvstore.py
from machine import cpu_model, own_group, run_servers_main  # bench/machine.py: scripts here run with bench/ on sys.path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL = os.path.join(REPO, "bench", "real")
DATA = os.path.join(REPO, "bench", ".data", "real")
APT = os.path.join(DATA, "apt")
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")

BUILD_TIMEOUT_S = 900       # one scons run
TOOL_TIMEOUT_S = 600        # one qtool run
START_TIMEOUT_S = 15        # until a server listens
STOP_TIMEOUT_S = 20         # from SIGTERM until the server has exited
GROUP_GONE_TIMEOUT_S = 5    # until its domain processes are gone too
REQUEST_TIMEOUT_S = 5       # one request's answer
DNS_TIMEOUT_S = 1           # one DNS query's answer (dnsmasq answers these from memory)
REPORT_WAIT_S = 3           # for a crash report written after a death

CRASH_KEY = b"qpm-crash"    # the key memcached's crash.patch makes base64_decode dereference NULL on
CRASH_NAME = "qpm-crash.qpm.test"  # the name dnsmasq's crash.patch makes sha256_update dereference NULL on


class Failure(Exception):
    """Something could not be fetched, unpacked, patched or built: exit status 2."""


def log(text: str = "") -> None:
    print(text, flush=True)


def tool_env() -> dict:
    """Subprocesses use this checkout's qtool, the SCons tool included."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run(cmd: list[str], cwd: str, timeout: float, env: dict | None = None) -> tuple[int, str]:
    """Runs a command; returns its exit status and its output (stdout and stderr together)."""
    log("  $ " + shlex.join(cmd) + (f"   (in {os.path.relpath(cwd, REPO)})" if cwd != REPO else ""))
    try:
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f} s"
    except OSError as e:
        return 127, str(e)
    return p.returncode, p.stdout


# ---- fetching --------------------------------------------------------------------------------

def os_codename() -> str:
    with open("/etc/os-release") as f:
        for line in f:
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    raise Failure("/etc/os-release names no VERSION_CODENAME: cannot tell which apt sources are the release's")


def deb_src_entries() -> str:
    """deb-src twins of the machine's apt entries for its own release (deb822 and one-line)."""
    codename = os_codename()
    out = []
    paths = sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    for path in paths:
        with open(path) as f:
            stanzas = f.read().split("\n\n")
        for stanza in stanzas:
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, value = line.split(":", 1)
                    fields[key.strip()] = value.strip()
            if "deb" not in fields.get("Types", "").split() or fields.get("Enabled", "yes") == "no":
                continue
            if not any(s.split("-")[0] == codename for s in fields.get("Suites", "").split()):
                continue
            lines = [line for line in stanza.splitlines() if line.strip() and not line.startswith("#")]
            out.append("\n".join("Types: deb-src" if line.startswith("Types:") else line for line in lines))
    one_line = []
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            with open(path) as f:
                for line in f:
                    words = line.split("#", 1)[0].split()
                    if len(words) >= 4 and words[0] == "deb" and any(
                            w.split("-")[0] == codename for w in words[1:]):
                        one_line.append("deb-src " + " ".join(words[1:]))
        except OSError:
            pass
    text = "\n\n".join(out) + "\n" if out else ""
    if one_line:
        text += "\n".join(one_line) + "\n"
    if not text:
        raise Failure(f"no apt source of the release '{codename}' under /etc/apt: "
                      "nothing to derive deb-src entries from")
    return text


def apt_options() -> list[str]:
    return ["-o", "Dir::Etc::SourceList=/dev/null",
            "-o", f"Dir::Etc::SourceParts={APT}/sources.list.d",
            "-o", f"Dir::State::Lists={APT}/lists",
            "-o", f"Dir::Cache={APT}/cache"]


def fetch(package: str, upstream: str) -> str:
    """The upstream tarball of a Debian source package, downloaded once into DATA/src."""
    src = os.path.join(DATA, "src")
    os.makedirs(src, exist_ok=True)
    found = sorted(glob.glob(os.path.join(src, f"{package}_*.orig.tar.*")))
    found = [p for p in found if not p.endswith(".asc")]
    if not found:
        log(f"fetching the Debian source package {package}:")
        for d in ("sources.list.d", "lists/partial", "cache/archives/partial"):
            os.makedirs(os.path.join(APT, d), exist_ok=True)
        with open(os.path.join(APT, "sources.list.d", "deb-src.sources"), "w") as f:
            f.write(deb_src_entries())
        lists = glob.glob(os.path.join(APT, "lists", "*Sources*"))
        if not lists or time.time() - min(os.path.getmtime(p) for p in lists) > 86400:
            rc, out = run(["apt-get", *apt_options(), "update"], src, 300)
            if rc != 0:
                raise Failure(f"apt-get update (deb-src entries in {APT}) exited {rc}:\n{out.strip()}")
        rc, out = run(["apt-get", *apt_options(), "source", "--download-only", package], src, 300)
        found = [p for p in sorted(glob.glob(os.path.join(src, f"{package}_*.orig.tar.*")))
                 if not p.endswith(".asc")]
        if rc != 0 and found:
            # Only the upstream tarball is used, and apt keeps a file only once its hash matches
            # the package list's: a mirror that lacks the package's other files (its .dsc, its
            # Debian changes, as a security update's pool may) does not stop the benchmark.
            log(f"apt-get source --download-only {package} exited {rc}, but left "
                f"{os.path.basename(found[-1])}, which is all that is used")
        elif rc != 0:
            raise Failure(f"apt-get source --download-only {package} exited {rc}:\n{out.strip()}")
        if not found:
            raise Failure(f"apt-get source --download-only {package} left no {package}_*.orig.tar.* in {src}")
    tarball = found[-1]
    with tarfile.open(tarball) as t:
        top = {m.name.split("/", 1)[0] for m in t.getmembers()}
    if top != {upstream}:
        raise Failure(f"{os.path.basename(tarball)} holds {sorted(top)}, not {upstream}/: the benchmarks here "
                      f"(bench/real/'s patches, bench/analyze.py's setup) are written for {upstream}")
    return tarball


def unpack(tarball: str, dest: str) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    with tarfile.open(tarball) as t:
        if hasattr(tarfile, "data_filter"):
            t.extractall(dest, filter="data")
        else:
            t.extractall(dest)


def ensure_libevent() -> None:
    probe = subprocess.run(["gcc", "-E", "-x", "c", "-", "-o", os.devnull], input="#include <event.h>\n",
                           text=True, capture_output=True, timeout=60)
    if probe.returncode == 0:
        return
    if os.geteuid() != 0:
        raise Failure("memcached needs the libevent headers (<event.h>): install libevent-dev")
    log("installing libevent-dev (memcached's build dependency):")
    rc, out = run(["apt-get", "install", "-y", "-q", "libevent-dev"], REPO, 600)
    if rc != 0:
        run(["apt-get", "update", "-q"], REPO, 600)
        rc, out = run(["apt-get", "install", "-y", "-q", "libevent-dev"], REPO, 600)
    if rc != 0:
        raise Failure(f"apt-get install libevent-dev exited {rc}:\n{out.strip()[-2000:]}")


# ---- the program model and the diagnostics ----------------------------------------------------

def sources_of(sconstruct: str) -> list[str]:
    """The SOURCES list of one of the SConstruct files in bench/real/."""
    with open(sconstruct) as f:
        m = re.search(r'SOURCES = """(.*?)"""', f.read(), re.S)
    return m[1].split()


def diagnostics(tree: str, sources: list[str], plan: str | None, out: str) -> dict:
    """`qtool analyze` (plan None) or `qtool check --plan`; the diagnostics by code, and samples."""
    cmd = [sys.executable, "-m", "qtool"] + (["check", "--plan", plan] if plan else ["analyze"])
    cmd += ["-p", "compile_commands.json", *sources, "--format", "json", "-o", out]
    rc, text = run(cmd, tree, TOOL_TIMEOUT_S, tool_env())
    if rc not in (0, 1) or not os.path.exists(out):
        return {"rc": rc, "failed": text.strip()[-2000:]}
    with open(out) as f:
        data = json.load(f)
    diags = data["diagnostics"]
    result = {"rc": rc, "counts": collections.Counter(f"{d['code']} {d['severity']}" for d in diags),
              "samples": [], "summary": text.strip().splitlines()[-1] if text.strip() else ""}
    if not plan:
        result["model"] = (f"{len(data['translation_units'])} units, {len(data['components'])} components, "
                           f"{len(data['functions'])} functions, {len(data['calls'])} call edges, "
                           f"{len(data['indirect_calls'])} indirect calls, {len(data['globals'])} globals")
    seen = set()
    for d in sorted(diags, key=lambda d: (d["severity"] != "error", d["code"])):
        if d["code"] == "QPM001" or (d["code"], d["severity"]) in seen:
            continue
        seen.add((d["code"], d["severity"]))
        result["samples"].append(f"{d['file']}:{d['line']}:{d['column']}: {d['severity']}: "
                                 f"{d['message']} [{d['code']}]")
    return result


def show_diagnostics(title: str, r: dict, samples: int) -> None:
    if "failed" in r:
        log(f"  {title}: qtool FAILED (exit {r['rc']}): {r['failed']}")
        return
    counts = ", ".join(f"{k} x{v}" for k, v in sorted(r["counts"].items())) or "none"
    log(f"  {title}: exit {r['rc']}; {r['summary']}")
    log(f"    by code: {counts}")
    for s in r["samples"][:samples]:
        log(f"    {s}")


# ---- processes --------------------------------------------------------------------------------

def reap_orphans() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def domain_processes(pid: int) -> list[str]:
    """The domain processes of a split program: its children named <program>-<domain>."""
    named = [(proc_name(p), p) for p in children(pid)]
    return [f"{name} (pid {p})" for name, p in named if "-" in name]


def descriptors(pid: int) -> str:
    """What a process's descriptors are, by kind: 'socket x3, pipe x2, ...'."""
    kinds = collections.Counter()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            kinds[re.sub(r":\[\d+\]$", "", target).replace(" (deleted)", "")] += 1
    except OSError:
        return "?"
    return ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items()))


def exit_text(rc: int | None) -> str:
    if rc is None:
        return "running"
    if rc < 0:
        return f"killed by {signal.Signals(-rc).name}"
    return f"exit status {rc}"


class Server:
    """A server process in a process group of its own, its stderr in a file."""

    def __init__(self, cmd: list[str], workdir: str, env: dict):
        self.workdir = workdir
        self.errfile = open(os.path.join(workdir, "server.err"), "w+")
        self.proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=self.errfile,
                                     stderr=subprocess.STDOUT, env=env, **own_group())
        self.pgid = self.proc.pid

    def output(self) -> str:
        self.errfile.flush()
        self.errfile.seek(0)
        return self.errfile.read().strip()

    def stop(self, whole_group: bool = False) -> str:
        """SIGTERM (to the main process, or to the whole group), then waits; returns how it ended."""
        if self.proc.poll() is None:
            try:
                if whole_group:
                    os.killpg(self.pgid, signal.SIGTERM)
                else:
                    self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                return f"did not exit within {STOP_TIMEOUT_S} s of SIGTERM: killed"
        ended = exit_text(self.proc.returncode)
        deadline = time.monotonic() + GROUP_GONE_TIMEOUT_S
        while group_members(self.pgid):
            if time.monotonic() > deadline:
                left = group_members(self.pgid)
                self.kill()
                return (ended + f"; processes of its group still alive {GROUP_GONE_TIMEOUT_S} s later: "
                        f"{left} (killed)")
            time.sleep(0.02)
        reap_orphans()
        return ended

    def kill(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        reap_orphans()

    def close(self) -> None:
        self.kill()
        self.errfile.close()


def reports(report_dir: str) -> tuple[list[dict], list[dict]]:
    """The crash and stats reports in a report directory."""
    crashes, stats = [], []
    for path in sorted(glob.glob(os.path.join(report_dir, "crash-*.json"))):
        with open(path) as f:
            crashes.append(json.load(f))
    for path in sorted(glob.glob(os.path.join(report_dir, "stats-*.json"))):
        with open(path) as f:
            stats.append(json.load(f))
    return crashes, stats


def crash_line(c: dict) -> str:
    frame = next((f for f in c.get("backtrace", []) if f.get("component")), None)
    where = f"; first frame of a component: {frame['function']} ({os.path.basename(frame['file'] or '?')}:" \
            f"{frame['line']}, component {frame['component']})" if frame else "; no frame of a component"
    return (f"domain {c.get('domain')}, function {c.get('function')}, signal {c.get('signal')}, "
            f"outcome {c.get('outcome')}, blame {c.get('blame')}, recovery_ms {c.get('recovery_ms')}" + where)


def expected_reports(crashes: int, alive: bool) -> int:
    """Crash reports a run leaves: one for each crash a domain took (the server lived), or the one
    of the server's own death."""
    return 0 if not crashes else crashes if alive else 1


def wait_for_reports(report_dir: str, count: int) -> None:
    """Until count crash reports are there (they are written while the server goes on), at most
    REPORT_WAIT_S."""
    deadline = time.monotonic() + REPORT_WAIT_S
    while len(glob.glob(os.path.join(report_dir, "crash-*.json"))) < count and time.monotonic() < deadline:
        time.sleep(0.05)


# ---- memcached --------------------------------------------------------------------------------

class Conn:
    """One memcached text-protocol connection with a buffered reader."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT_S)
        self.buf = b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def close(self) -> None:
        self.sock.close()


def one_request(c: Conn, conn_no: int, j: int) -> bool:
    """Request j of a connection: meta set/get with a binary (base64) key, or plain set/get."""
    key = b"k\0" + f"{conn_no}-{j // 4 % 50}".encode()
    b64 = base64.b64encode(key).decode()
    plain = f"t{conn_no}-{j // 4 % 50}"
    value = f"v{conn_no}-{j // 4}".encode()
    op = j % 4
    if op == 0:
        c.sock.sendall(f"ms {b64} {len(value)} b\r\n".encode() + value + b"\r\n")
        return c.line() == b"HD"
    if op == 1:
        c.sock.sendall(f"mg {b64} b v\r\n".encode())
        head = c.line()
        if head != f"VA {len(value)}".encode():
            return False
        return c.exactly(len(value) + 2) == value + b"\r\n"
    if op == 2:
        c.sock.sendall(f"set {plain} 0 0 {len(value)}\r\n".encode() + value + b"\r\n")
        return c.line() == b"STORED"
    c.sock.sendall(f"get {plain}\r\n".encode())
    if c.line() != f"VALUE {plain} 0 {len(value)}".encode():
        return False
    return c.exactly(len(value) + 2) == value + b"\r\n" and c.line() == b"END"


def load(port: int, connections: int, requests: int, seconds: float, first_conn: int = 0,
         progress: list[int] | None = None) -> dict:
    """`connections` threads, each sending up to `requests` requests within `seconds`; the
    requests answered so far are counted in progress[0]."""
    progress = progress if progress is not None else [0]
    counts = collections.Counter()
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(n: int) -> None:
        ok = bad = 0
        c = None
        try:
            c = Conn(port)
            for j in range(requests):
                if time.monotonic() > deadline:
                    break
                if one_request(c, n, j):
                    ok += 1
                else:
                    bad += 1
                progress[0] += 1
        except (OSError, ConnectionError) as e:
            with lock:
                errors.append(f"connection {n}: {type(e).__name__}: {e}")
            bad += 1
        finally:
            if c:
                c.close()
            with lock:
                counts["ok"] += ok
                counts["wrong"] += bad

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(first_conn + i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    return {"ok": counts["ok"], "failed": counts["wrong"], "seconds": elapsed,
            "unsent": connections * requests - counts["ok"] - counts["wrong"],
            "rps": counts["ok"] / elapsed if elapsed > 0 else 0.0, "errors": errors}


def crash_request(port: int) -> str:
    """Sends the key the injected fault crashes on; returns what the client saw."""
    try:
        c = Conn(port)
    except OSError as e:
        return f"could not connect: {e}"
    try:
        c.sock.sendall(f"mg {base64.b64encode(CRASH_KEY).decode()} b v\r\n".encode())
        return "answer " + repr(c.line().decode(errors="replace"))
    except (OSError, ConnectionError) as e:
        return f"{type(e).__name__}: {e}"
    finally:
        c.close()


def start_memcached(exe: str, workdir: str) -> tuple[Server, int]:
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(os.path.join(workdir, "reports"))
    env = dict(os.environ, QPM_REPORT_DIR=os.path.join(workdir, "reports"),
               MEMCACHED_PORT_FILENAME=os.path.join(workdir, "port"))
    cmd = [exe, "-l", "127.0.0.1", "-p", "-1", "-U", "0", "-t", "4"]
    if os.geteuid() == 0:
        cmd += ["-u", pwd.getpwuid(0).pw_name]     # memcached refuses to run as root without -u
    server = Server(cmd, workdir, env)
    deadline = time.monotonic() + START_TIMEOUT_S
    port_file = os.path.join(workdir, "port")
    while not os.path.exists(port_file):
        if server.proc.poll() is not None or time.monotonic() > deadline:
            text = server.output()
            server.close()
            raise Failure(f"{exe} did not start listening ({exit_text(server.proc.returncode)}):\n{text}")
        time.sleep(0.02)
    with open(port_file) as f:
        m = re.search(r"TCP INET: (\d+)", f.read())
    if not m:
        server.close()
        raise Failure(f"{port_file} names no TCP port")
    return server, int(m[1])


def serve_memcached(exe: str, variant: str, args) -> dict:
    """Load, load with injected crashes, the state afterwards, the reports."""
    workdir = os.path.join(DATA, "runs", f"memcached-{variant}")
    server, port = start_memcached(exe, workdir)
    r: dict = {"variant": variant}
    try:
        r["domains_before"] = domain_processes(server.proc.pid)
        r["load"] = load(port, args.connections, args.requests, args.seconds)
        # The crashing requests go out while the same load runs on other connections: crash i
        # when i/(crashes+1) of the load's requests are answered.
        seen: list[str] = []
        load_done = threading.Event()
        progress = [0]
        total = args.connections * args.requests

        def crasher() -> None:
            for i in range(1, args.crashes + 1):
                while progress[0] < total * i / (args.crashes + 1) and not load_done.wait(0.001):
                    pass
                during = not load_done.is_set()
                seen.append(crash_request(port) + ("" if during else " (sent after the load had ended)"))

        t = threading.Thread(target=crasher)
        t.start()
        try:
            r["load_with_crashes"] = load(port, args.connections, args.requests, args.seconds,
                                          first_conn=args.connections, progress=progress)
        finally:
            load_done.set()
            t.join()
        r["crash_answers"] = seen
        after = load(port, 1, 8, 10, first_conn=2 * args.connections)
        r["after"] = after
        r["alive"] = server.proc.poll() is None
        r["ended"] = exit_text(server.proc.returncode)
        r["domains_after"] = domain_processes(server.proc.pid) if r["alive"] else []
        wait_for_reports(os.path.join(workdir, "reports"), expected_reports(args.crashes, r["alive"]))
        r["stop"] = server.stop() if r["alive"] else r["ended"]
        r["output"] = server.output()
    finally:
        server.close()
    r["crashes"], r["stats"] = reports(os.path.join(workdir, "reports"))
    return r


def group_sigterm(exe: str) -> dict:
    """The split build stopped as a service manager stops a service: SIGTERM to its group."""
    workdir = os.path.join(DATA, "runs", "memcached-group-sigterm")
    server, port = start_memcached(exe, workdir)
    try:
        domains = domain_processes(server.proc.pid)
        ended = server.stop(whole_group=True)
        output = server.output()
    finally:
        server.close()
    crashes, _ = reports(os.path.join(workdir, "reports"))
    return {"domains": domains, "ended": ended, "crashes": crashes, "output": output}


def show_run(r: dict) -> None:
    v = r["variant"]
    lo, lc, af = r["load"], r["load_with_crashes"], r["after"]
    log(f"  {v}: domain processes at start: {', '.join(r['domains_before']) or 'none'}")
    log(f"    load:                {lo['ok']} answered right, {lo['failed']} failed, {lo['unsent']} not sent, "
        f"{lo['seconds']:.2f} s ({lo['rps']:.0f} answers/s)")
    for e in lo["errors"][:3]:
        log(f"      {e}")
    log(f"    {'load with crashes:  ' if r['crash_answers'] else 'load again:         '} {lc['ok']} answered right, {lc['failed']} failed, {lc['unsent']} not sent, "
        f"{lc['seconds']:.2f} s")
    for e in lc["errors"][:3]:
        log(f"      {e}")
    for i, a in enumerate(r["crash_answers"], 1):
        log(f"    crashing request {i}:  {a}")
    log(f"    afterwards:          {af['ok']} of 8 requests on a new connection answered right"
        + (f" ({af['errors'][0]})" if af["errors"] else ""))
    log(f"    server:              {'alive' if r['alive'] else 'DEAD, ' + r['ended']}"
        + (f"; domain processes now: {', '.join(r['domains_after']) or 'none'}" if r["alive"] else "")
        + (f"; stopped by SIGTERM: {r['stop']}" if r["alive"] else ""))
    log(f"    crash reports:       {len(r['crashes'])}")
    for c in r["crashes"][:3]:
        log(f"      {crash_line(c)}")
    show_stats(r["stats"])
    lines = [line for line in r["output"].splitlines() if "quarantine" in line]
    for line in lines[:3]:
        log(f"    server said:         {line}")
    if len(lines) > 3:
        log(f"    server said:         ... {len(lines) - 3} more such lines")


# ---- dnsmasq ----------------------------------------------------------------------------------

def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq binds both and cannot take 0)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise Failure("found no port free for both UDP and TCP")


def dns_query(port: int, name: str, qid: int) -> tuple[int, list[str]]:
    """One A query over UDP; returns the response code and the addresses answered."""
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(DNS_TIMEOUT_S)
        s.connect(("127.0.0.1", port))   # connected: a closed port answers ECONNREFUSED at once
        s.send(q)
        r = s.recv(4096)
    rid, flags, _, ancount, _, _ = struct.unpack(">HHHHHH", r[:12])
    if rid != qid:
        raise ValueError(f"answer to query {rid}, not {qid}")
    addrs = []
    p = len(q)                      # the question is echoed; answers follow
    for _ in range(ancount):
        p += 2 if r[p] & 0xC0 == 0xC0 else len(name) + 2
        rtype, _, _, rdlen = struct.unpack(">HHIH", r[p:p + 10])
        p += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(r[p:p + 4]))
        p += rdlen
    return flags & 0xF, addrs


def dns_answer(port: int, name: str, qid: int) -> str:
    """What a client sees for one query, as text."""
    try:
        rcode, addrs = dns_query(port, name, qid)
    except (OSError, ValueError) as e:
        return f"{type(e).__name__}: {e}"
    return f"rcode {rcode} ({ {0: 'NOERROR', 3: 'NXDOMAIN', 5: 'REFUSED'}.get(rcode, '?') }), A {', '.join(addrs) or '-'}"


def serve_dnsmasq(exe: str, variant: str, queries: int, seconds: float, crashes: int) -> dict:
    """Queries (a name configured with --address, and one refused for want of an upstream server),
    with `crashes` queries for CRASH_NAME among them at 1/(crashes+1), 2/(crashes+1) ... of the
    load; then 8 more queries; then SIGTERM to the whole process group."""
    workdir = os.path.join(DATA, "runs", f"dnsmasq-{variant}")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(os.path.join(workdir, "reports"))
    port = free_port()
    cmd = [exe, "--keep-in-foreground", "--log-facility=-", "--conf-file=/dev/null", f"--port={port}",
           "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts", "--pid-file=",
           "--address=/qpm.test/10.1.2.3"]
    if os.geteuid() == 0:
        cmd.append(f"--user={pwd.getpwuid(0).pw_name}")
    report_dir = os.path.join(workdir, "reports")
    env = dict(os.environ, QPM_REPORT_DIR=report_dir)
    server = Server(cmd, workdir, env)
    r: dict = {"variant": variant, "ok": 0, "failed": 0,
               "unsent": 0, "errors": [], "samples": [], "crash_answers": []}
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                dns_query(port, "probe.qpm.test", 1)
                break
            except (OSError, ValueError):
                if server.proc.poll() is not None or time.monotonic() > deadline:
                    raise Failure(f"dnsmasq did not answer ({exit_text(server.proc.returncode)}):\n{server.output()}")
                time.sleep(0.1)
        r["domains_before"] = domain_processes(server.proc.pid)
        r["descriptors"] = descriptors(server.proc.pid)
        crash_at = {queries * i // (crashes + 1) for i in range(1, crashes + 1)}
        start = time.monotonic()
        for i in range(queries):
            if time.monotonic() - start > seconds or server.proc.poll() is not None:
                r["unsent"] = queries - i
                break
            if i in crash_at:
                r["crash_answers"].append(dns_answer(port, CRASH_NAME, 60000 + i))
            name, want = (f"h{i}.qpm.test", (0, ["10.1.2.3"])) if i % 4 else (f"h{i}.elsewhere.test", (5, []))
            try:
                got = dns_query(port, name, 2 + i)
            except (OSError, ValueError) as e:
                r["failed"] += 1
                r["errors"].append(f"{name}: {type(e).__name__}: {e}")
                continue
            if got == want:
                r["ok"] += 1
            else:
                r["failed"] += 1
                r["errors"].append(f"{name}: rcode {got[0]}, addresses {got[1]}")
            if i < 2:
                rcode = {0: "NOERROR", 5: "REFUSED"}.get(got[0], "?")
                r["samples"].append(f"{name}: rcode {got[0]} ({rcode}), A {', '.join(got[1]) or '-'}")
        r["seconds"] = time.monotonic() - start
        r["after"] = sum(dns_answer(port, f"after{j}.qpm.test", 50000 + j).endswith("A 10.1.2.3")
                         for j in range(8)) if server.proc.poll() is None else 0
        r["alive"] = server.proc.poll() is None
        r["ended"] = exit_text(server.proc.returncode)
        r["domains_after"] = domain_processes(server.proc.pid) if r["alive"] else []
        wait_for_reports(report_dir, expected_reports(crashes, r["alive"]))
        before_stop = len(glob.glob(os.path.join(report_dir, "crash-*.json")))
        r["stop"] = server.stop(whole_group=True) if r["alive"] else r["ended"]
        r["reports_by_stop"] = len(glob.glob(os.path.join(report_dir, "crash-*.json"))) - before_stop
        r["output"] = server.output()
    finally:
        server.close()
    r["crashes"], r["stats"] = reports(report_dir)
    return r


def show_dnsmasq_run(r: dict) -> None:
    log(f"  {r['variant']}: domain processes at start: {', '.join(r.get('domains_before', [])) or 'none'}")
    log(f"    main process's descriptors once serving: {r.get('descriptors', '?')}")
    for s in r["samples"]:
        log(f"    {s}")
    log(f"    queries:             {r['ok']} answered right, {r['failed']} failed, {r['unsent']} not sent, "
        f"{r.get('seconds', 0):.2f} s")
    for e in r["errors"][:3]:
        log(f"      {e}")
    for i, a in enumerate(r["crash_answers"], 1):
        log(f"    crashing query {i}:    {CRASH_NAME}: {a}")
    log(f"    afterwards:          {r.get('after', 0)} of 8 queries answered right")
    log(f"    server:              {'alive' if r.get('alive') else 'DEAD, ' + r.get('ended', '?')}"
        + (f"; domain processes now: {', '.join(r['domains_after']) or 'none'}" if r.get("alive") else "")
        + f"; stopped by SIGTERM to its process group: {r.get('stop', '?')}, "
        f"crash reports written by the stop: {r.get('reports_by_stop', 0)}")
    log(f"    crash reports:       {len(r['crashes'])}")
    for c in r["crashes"][:3]:
        log(f"      {crash_line(c)}")
    show_stats(r["stats"])
    lines = [line for line in r.get("output", "").splitlines() if "quarantine" in line]
    for line in lines[:3]:
        log(f"    server said:         {line}")


def show_stats(stats: list[dict]) -> None:
    for s in stats:
        for e in s.get("edges", []):
            log(f"    stats report:        {e['caller_domain']} -> {e['callee']} ({e['callee_domain']}): "
                f"{e['calls']} calls, {e['faulted']} faulted, {e['bytes']} bytes, "
                f"{e['time_ns'] / max(1, e['calls']) / 1000:.1f} us per call (from {e['timed_calls']} timed calls)")


# ---- fix-its, --fix, cut --------------------------------------------------------------------

def fixit_audit(analyze_json: str, functions: list[str]) -> list[str]:
    """The diagnostics of `qtool analyze` about the given functions, each with its fix-its."""
    with open(analyze_json) as f:
        diags = json.load(f)["diagnostics"]
    out, seen = [], set()
    for d in diags:
        if not any(f"'{fn}'" in d["message"] for fn in functions):
            continue
        fixes = [f"insert '{x['insert']}' at {x['file']}:{x['line']}:{x['column']}" for x in d.get("fixits", [])]
        m = re.search(r"(parameter '[^']*' \([^)]*\)|returns a pointer \([^)]*\)|is variadic)", d["message"])
        key = (d["file"], d["line"], d["column"], d["code"], tuple(fixes))
        if key in seen:
            continue
        seen.add(key)
        fn = next(fn for fn in functions if f"'{fn}'" in d["message"])
        out.append(f"{d['file']}:{d['line']}:{d['column']}: {d['code']} {fn}: {m[1] if m else d['message'][:120]}"
                   f" -> {'; '.join(fixes) or 'no fix-it'}")
    return out


def fix_experiment(name: str, spec: dict, sources: list[str], summary: list[str]) -> None:
    """`qtool check --plan P --fix` on a fresh copy of the plain tree, twice; then `scons ISOLATE=P`."""
    plan = spec["fix_plan"]
    tree = unpack_tree(name, spec, "fixed", [])
    cmd = [sys.executable, "-m", "qtool", "check", "--plan", plan, "-p", "compile_commands.json", *sources,
           "--fix"]
    rc, out = run(cmd, tree, TOOL_TIMEOUT_S, tool_env())
    lines = out.strip().splitlines()
    for line in lines:
        if "inserted" in line or "--fix" in line or "not applied" in line:
            log(f"    {line}")
    remaining = [line for line in lines if ": error:" in line]
    for line in remaining[:8]:
        log(f"    remains: {line}")
    log(f"    exit {rc}; {lines[-1] if lines else ''}")
    rc2, out2 = run(cmd, tree, TOOL_TIMEOUT_S, tool_env())
    again = [line for line in out2.splitlines() if line.startswith("--fix")]
    log(f"    again: exit {rc2}; {again[0] if again else '?'}")
    _, diff = run(["diff", "-ru", "-x", "build", "-x", "*.json", "-x", ".sconsign*", "-x", "*.yaml",
                   os.path.join(DATA, name, "plain"), os.path.join(DATA, name, "fixed")], REPO, 60)
    for line in diff.splitlines():
        if line.startswith("+++ "):
            log(f"    diff of {os.path.relpath(line[4:].split(chr(9))[0], tree)}:")
        elif line.startswith(("+", "-")) and not line.startswith("---"):
            log(f"      {line}")
    b = build(tree, plan)
    show_build(b)
    summary.append(f"{name:<10} {'--fix ' + plan:<28} check exit {rc} after --fix, "
                   f"{len(remaining)} error(s) left; build " + ("OK" if b["rc"] == 0 else "FAILED"))


def cut_suggest(tree: str, sources: list[str], isolate: list[str]) -> None:
    cmd = [sys.executable, "-m", "qtool", "cut", "--suggest", "-p", "compile_commands.json", *sources,
           "--isolate", *isolate]
    rc, out = run(cmd, tree, TOOL_TIMEOUT_S, tool_env())
    lines = [line for line in out.strip().splitlines() if line.strip()]
    log(f"    exit {rc}")
    for line in lines[:14]:
        log(f"    {line[:400]}")
    if len(lines) > 14:
        log(f"    ... {len(lines) - 14} more lines")


# ---- the two servers --------------------------------------------------------------------------

SERVERS = {
    "memcached": {
        "package": "memcached", "upstream": "memcached-1.6.18", "subdir": "",
        "copy": ["SConstruct", "config.h"], "patches": ["annotate.patch", "crash.patch"],
        "plans": ["isolate-base64.yaml", "isolate-hash.yaml", "isolate-hashing.yaml", "isolate-util.yaml"],
        "working_plan": "isolate-base64.yaml",
        # what `qtool cut --suggest --isolate ...` proposes (annotated tree)
        "cuts": [["jenkins_hash", "murmur3_hash"], ["util"]],
        # the fix-its offered for these functions' parameters and results (plain tree)
        "fixit_functions": ["safe_strcpy", "uriencode", "safe_memcmp"],
        # `qtool check --plan P --fix` on a fresh copy of the plain tree, then `scons ISOLATE=P`
        "fix_plan": "isolate-util.yaml",
    },
    "dnsmasq": {
        "package": "dnsmasq", "upstream": "dnsmasq-2.90", "subdir": "src",
        "copy": ["SConstruct"],
        "patches": ["sha256.patch", "annotate.patch", "crash.patch"],
        "plans": ["isolate-hash-questions.yaml", "isolate-poll.yaml", "isolate-names.yaml",
                  "isolate-sha256.yaml"],
        "working_plan": "isolate-sha256.yaml",
        "cuts": [["hash-questions"], ["poll"], ["sha256"], ["names"]],
        "fixit_functions": ["hash_questions", "extract_name", "whine_realloc"],
        "fix_plan": None,
    },
}


def unpack_tree(name: str, spec: dict, kind: str, patches: list[str]) -> str:
    """One tree: the upstream sources, the patches, the SConstruct and plans, and its
    compile_commands.json; returns its SCons directory."""
    here = os.path.join(REAL, name)
    root = os.path.join(DATA, name, kind)
    unpack(fetch(spec["package"], spec["upstream"]), root)
    tree = os.path.join(root, spec["upstream"], spec["subdir"])
    for f in spec["copy"]:
        shutil.copy(os.path.join(here, f), tree)
    for patch in patches:
        rc, out = run(["patch", "-p1", "--batch", "--forward", "-d", tree, "-i",
                       os.path.join(here, patch)], REPO, 60)
        if rc != 0:
            raise Failure(f"bench/real/{name}/{patch} does not apply to {spec['upstream']}:\n{out.strip()}")
    for f in spec["plans"]:
        shutil.copy(os.path.join(here, f), tree)
    rc, out = run([SCONS, "-Q", "compile_commands.json"], tree, BUILD_TIMEOUT_S, tool_env())
    if rc != 0:
        raise Failure(f"scons compile_commands.json in the {kind} {name} tree exited {rc}:\n"
                      f"{out.strip()[-3000:]}")
    return tree


def prepare(name: str, spec: dict) -> tuple[str, str, list[str]]:
    """Unpacks the plain and annotated trees; returns their SCons directories and the sources."""
    if name == "memcached":
        ensure_libevent()
    log(f"  source: {os.path.relpath(fetch(spec['package'], spec['upstream']), REPO)}")
    plain = unpack_tree(name, spec, "plain", [])
    annotated = unpack_tree(name, spec, "annotated", spec["patches"])
    return plain, annotated, sources_of(os.path.join(REAL, name, "SConstruct"))


def build(tree: str, plan: str | None) -> dict:
    cmd = [SCONS, "-Q", "-j2"] + ([f"ISOLATE={plan}"] if plan else [])
    start = time.monotonic()
    rc, out = run(cmd, tree, BUILD_TIMEOUT_S, tool_env())
    variant = os.path.splitext(plan)[0] if plan else "mono"
    exes = sorted(os.listdir(os.path.join(tree, "build", variant))) if rc == 0 else []
    lines = [line for line in out.splitlines() if not line.startswith(("gcc ", "analyse ", "ar ", "ranlib "))]
    errors = [line for line in lines if re.search(r"error|undefined reference|\*\*\*", line)]
    return {"rc": rc, "seconds": time.monotonic() - start, "variant": variant,
            "exes": [e for e in exes if not e.endswith(".qpm")], "errors": errors,
            "warnings": sum("warning:" in line for line in out.splitlines())}


def show_build(b: dict) -> None:
    if b["rc"] == 0:
        log(f"  build {b['variant']}: OK in {b['seconds']:.1f} s: build/{b['variant']}/{{{', '.join(b['exes'])}}}"
            + (f" ({b['warnings']} warning lines)" if b["warnings"] else ""))
    else:
        log(f"  build {b['variant']}: FAILED (scons exit {b['rc']}) after {b['seconds']:.1f} s:")
        for line in b["errors"][:6]:
            log(f"    {line}")
        if len(b["errors"]) > 6:
            log(f"    ... {len(b['errors']) - 6} more error lines")


def learn(tree: str, sources: list[str], report_dir: str, summary: list[str]) -> None:
    """`qtool learn` from crash reports; the plan it writes, and whether that plan builds."""
    db = os.path.join(DATA, "runs", "learn.sqlite")
    if os.path.exists(db):
        os.remove(db)
    cmd = [sys.executable, "-m", "qtool", "learn", "-p", "compile_commands.json", *sources, "--reports",
           report_dir, "--db", db, "--policy", "optimistic", "-o", "learned.yaml"]
    rc, out = run(cmd, tree, TOOL_TIMEOUT_S, tool_env())
    if rc != 0:
        log(f"  qtool learn FAILED (exit {rc}): {out.strip()[-2000:]}")
        summary.append(f"{'memcached':<10} {'learned.yaml':<28} qtool learn FAILED (exit {rc})")
        return
    for line in out.splitlines():
        if "ISOLATE" in line or line.startswith("plan:"):
            log(f"  {line.strip()}")
    with open(os.path.join(tree, "learned.yaml")) as f:
        plan = f.read()
    log("  learned.yaml: " + "; ".join(line.strip() for line in plan.splitlines()
                                       if line.strip().startswith(("- domain", "components", "on_fault"))))
    rc_check, out_check = run([sys.executable, "-m", "qtool", "check", "--plan", "learned.yaml", "-p",
                               "compile_commands.json", *sources], tree, TOOL_TIMEOUT_S, tool_env())
    lines = out_check.strip().splitlines()
    log(f"  qtool check --plan learned.yaml: exit {rc_check}; {lines[-1] if lines else ''}")
    for line in [line for line in lines if ": error:" in line][:3]:
        log(f"    {line}")
    b = build(tree, "learned.yaml")
    show_build(b)
    summary.append(f"{'memcached':<10} {'learned.yaml':<28} " + next(
        (line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("plan:")), "?")
        + f"   check exit {rc_check}   build " + ("OK" if b["rc"] == 0 else "FAILED"))


def do_server(name: str, args, summary: list[str]) -> None:
    spec = SERVERS[name]
    log()
    log(f"==== {name} ({spec['upstream']}, Debian source package {spec['package']}) ====")
    plain, annotated, sources = prepare(name, spec)
    log()
    log(f"diagnostics ({len(sources)} sources):")
    results = {}
    for kind, tree in (("plain", plain), ("annotated", annotated)):
        results[kind, None] = diagnostics(tree, sources, None, os.path.join(tree, "analyze.json"))
        for plan in spec["plans"]:
            results[kind, plan] = diagnostics(tree, sources, plan,
                                              os.path.join(tree, f"check-{os.path.splitext(plan)[0]}.json"))
    log()
    if "model" in results["plain", None]:
        log(f"  program model: {results['plain', None]['model']}")
    for plan in [None] + spec["plans"]:
        for kind in ("plain", "annotated"):
            title = (f"qtool analyze, {kind}" if plan is None else f"qtool check --plan {plan}, {kind}")
            show_diagnostics(title, results[kind, plan], args.samples)
    log()
    log(f"fix-its offered for {', '.join(spec['fixit_functions'])} (plain tree, qtool analyze):")
    for line in fixit_audit(os.path.join(plain, "analyze.json"), spec["fixit_functions"]):
        log(f"  {line}")
    log()
    log("where to cut (qtool cut --suggest, annotated tree):")
    for isolate in spec["cuts"]:
        log(f"  --isolate {' '.join(isolate)}:")
        cut_suggest(annotated, sources, isolate)
    log()
    log("builds (annotated tree):")
    mono = build(annotated, None)
    show_build(mono)
    builds = {None: mono}
    for plan in spec["plans"]:
        builds[plan] = build(annotated, plan)
        show_build(builds[plan])
    if mono["rc"] != 0:
        raise Failure(f"{name}: the monolithic build failed")
    working = spec["working_plan"]
    if working and builds[working]["rc"] != 0:
        raise Failure(f"{name}: the split build by {working} failed")

    def errors(r: dict) -> int:
        return sum(v for k, v in r.get("counts", {}).items() if k.endswith("error"))

    for plan in spec["plans"]:
        p, a, b = results["plain", plan], results["annotated", plan], builds[plan]
        summary.append(f"{name:<10} {plan:<28} check errors {errors(p):>3} -> {errors(a):>3}   build "
                       + ("OK" if b["rc"] == 0 else "FAILED"))

    log()
    if name == "memcached":
        log("serving, and the injected fault (bench/real/memcached/crash.patch):")
        runs = []
        for variant, exe in (("mono", os.path.join(annotated, "build", "mono", "memcached")),
                             (os.path.splitext(working)[0],
                              os.path.join(annotated, "build", os.path.splitext(working)[0], "memcached"))):
            r = serve_memcached(exe, variant, args)
            show_run(r)
            runs.append(r)
            summary.append(f"{name:<10} {variant:<28} served {r['load']['ok']} right, {r['load']['failed']} failed; "
                           f"under {args.crashes} crash(es): {r['load_with_crashes']['ok']} right, "
                           f"{r['load_with_crashes']['failed']} failed; server "
                           f"{'alive' if r['alive'] else 'dead (' + r['ended'] + ')'}; "
                           f"{len(r['crashes'])} crash report(s)")
        # The other split builds that build serve the same load twice, without the fault: it sits
        # in base64_decode, which they run in the main process.
        quiet = argparse.Namespace(**{**vars(args), "crashes": 0})
        for plan in spec["plans"]:
            variant = os.path.splitext(plan)[0]
            if plan == working or builds[plan]["rc"] != 0:
                continue
            r = serve_memcached(os.path.join(annotated, "build", variant, "memcached"), variant, quiet)
            show_run(r)
            summary.append(f"{name:<10} {variant:<28} served {r['load']['ok'] + r['load_with_crashes']['ok']} "
                           f"right, {r['load']['failed'] + r['load_with_crashes']['failed']} failed; server "
                           f"{'alive' if r['alive'] else 'dead (' + r['ended'] + ')'}; "
                           f"{len(r['crashes'])} crash report(s)")
        log()
        log("the data-driven step: qtool learn --policy optimistic from the monolithic build's crash report:")
        learn(annotated, sources, os.path.join(DATA, "runs", "memcached-mono", "reports"), summary)
        log()
        log("stopping the split build with SIGTERM to its whole process group (as a service manager does):")
        g = group_sigterm(os.path.join(annotated, "build", os.path.splitext(working)[0], "memcached"))
        log(f"  domain processes: {', '.join(g['domains']) or 'none'}; server {g['ended']}; "
            f"crash reports written: {len(g['crashes'])}")
        for c in g["crashes"]:
            log(f"    {crash_line(c)}")
        for line in g["output"].splitlines():
            if "quarantine" in line:
                log(f"  server said: {line}")
        summary.append(f"{name:<10} {'group SIGTERM':<28} {len(g['crashes'])} crash report(s) at a clean stop")
    else:
        log("serving, and the injected fault (bench/real/dnsmasq/crash.patch):")
        # dnsmasq closes every descriptor it inherited when it starts (close_fds() in main()).
        # The split build by the working plan, and the other split builds that build, without
        # the fault, which sits in sha256_update, which they run in the main process.
        split = os.path.splitext(working)[0]
        runs = [("mono", args.queries, args.crashes), (split, args.queries, args.crashes)]
        runs += [(os.path.splitext(plan)[0], args.queries, 0) for plan in spec["plans"]
                 if plan != working and builds[plan]["rc"] == 0]
        for variant, queries, crashes in runs:
            r = serve_dnsmasq(os.path.join(annotated, "build", variant, "dnsmasq"), variant, queries,
                              args.seconds, crashes)
            show_dnsmasq_run(r)
            variant = r["variant"]
            summary.append(f"{name:<10} {variant:<28} served {r['ok']} right, {r['failed']} failed, "
                           f"{r['unsent']} not sent, {crashes} crashing quer{'y' if crashes == 1 else 'ies'}; "
                           f"server {'alive' if r['alive'] else 'dead (' + r['ended'] + ')'}; "
                           f"{len(r['crashes'])} crash report(s); stop: {r['stop']}, "
                           f"{r['reports_by_stop']} report(s) by it")
    if spec["fix_plan"]:
        log()
        log(f"qtool check --plan {spec['fix_plan']} --fix on a fresh copy of the plain tree, then the split build:")
        fix_experiment(name, spec, sources, summary)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=sorted(SERVERS), action="append",
                    help="run only this server (may be given twice; default both)")
    ap.add_argument("--connections", type=int, default=4, help="memcached load connections (default 4)")
    ap.add_argument("--requests", type=int, default=1000, help="requests per connection (default 1000)")
    ap.add_argument("--crashes", type=int, default=3, help="crashing requests under load (default 3)")
    ap.add_argument("--queries", type=int, default=200, help="dnsmasq queries (default 200)")
    ap.add_argument("--seconds", type=float, default=30.0, help="bound of each load (default 30)")
    ap.add_argument("--samples", type=int, default=6, help="sample diagnostics shown per run (default 6)")
    args = ap.parse_args()
    if min(args.connections, args.requests, args.crashes, args.queries) < 1 or args.seconds <= 0:
        ap.error("--connections, --requests, --crashes, --queries and --seconds must be positive")

    log("Quarantine on real servers (bench/real_code.py)")
    log()
    log(f"command:   {shlex.join([os.path.relpath(sys.executable, REPO), 'bench/real_code.py', *sys.argv[1:]])}"
        f"   (in {REPO})")
    log(f"date:      {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    log(f"machine:   {os.cpu_count()} CPUs, {cpu_model()}, Linux {platform.release()}")
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True, timeout=60).stdout.splitlines()[0]
    log(f"tools:     {gcc}; "
        f"Python {platform.python_version()}")
    if not become_subreaper():
        log("note:      PR_SET_CHILD_SUBREAPER failed; exited domain processes are reaped by init")
    summary: list[str] = []
    try:
        for name in args.server or list(SERVERS):
            do_server(name, args, summary)
    except Failure as e:
        log(f"\nFAILED: {e}")
        return 2
    log()
    log("summary:")
    for line in summary:
        log(f"  {line}")
    return 0


if __name__ == "__main__":
    run_servers_main(main)
