#!/usr/bin/env python3
"""Throughput of the kvstore sample built whole and split, under the same load, in one run.

Run from the repository root:

    .venv/bin/python bench/kvstore.py                    # 5 rounds
    .venv/bin/python bench/kvstore.py --quick            # 2 rounds
    .venv/bin/python bench/kvstore.py --threads 8 --requests 25000 --seconds 60 --rounds 5
    .venv/bin/python bench/kvstore.py --open-loop        # latency at 25%, 50%, 75% load
    .venv/bin/python bench/kvstore.py --open-loop --loads 0.25,0.5,0.75 --duration 4 --rounds 3

The five variants, each built by this script before anything is measured:

  plain          gcc directly on samples/kvstore/*.c with the flags the SConstruct uses
                 (-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -pthread -Iclang_attrs);
                 no qtool, no generated code, no runtime.  Built in a temporary directory.
  mono           .venv/bin/scons -Q                     -> build/mono/kvstore
  isolate-cache  .venv/bin/scons -Q ISOLATE=samples/kvstore/plans/isolate-cache.yaml
  isolate-all    .venv/bin/scons -Q ISOLATE=samples/kvstore/plans/isolate-all.yaml
  handoff        isolate-cache's floor: the plain build in which each call that isolate-cache's
                 plan sends across (cache_get, cache_put, cache_invalidate) first makes one futex
                 round trip with a thread of a second process that does nothing but answer
                 (bench/ipc/handoff.c, linked with -Wl,--wrap wrappers), then runs in place.  The
                 crossings' hand-offs and nothing else: no copy, no protocol, no supervision; each
                 a hand-off on one core (the peer's thread keeps to its caller's CPU, the caller
                 yields to it), the cheapest this machine has.

The executables are copied into a temporary directory once built (a split program finds its
domain executables beside itself), so a rebuild in build/ during the run changes nothing here.
The load is build/tools/loadgen (built by the same scons run) with the same arguments for every
variant: --threads T --requests R (per thread) --seconds S.

Each variant first serves one short, untimed warm-up run, which also records the processes it
runs as.  Then R rounds: in each round every variant runs once, the order rotating by one each
round; a run starts a fresh server on --port 0 (the port is read from its first stdout line
"kvstore listening on 127.0.0.1:<port>"), runs loadgen against it, samples the CPU time of the
server's processes, sends SIGTERM and waits for it.  Reported: the median requests/s of each
variant, ratios to mono (the median ratio and the range of the per-round ratios, each taken from
runs of the same round), request errors, and the CPU time per request of the server (main
process plus domain processes) and of loadgen; isolate-cache against its floor, handoff.

One extra, untimed run counts the calls between kvstore's components: a copy of the plain build
linked with -Wl,--wrap counters around the functions of samples/kvstore/kvstore.h.  With each
plan's placement this gives the crossings per request (calls whose caller and callee are in
different processes) and the channel round trips they take (a call between two domains is
relayed by the main process: two round trips).

Servers bind 127.0.0.1 only.  Every run is bounded (loadgen's --seconds plus timeouts around
every wait); a server and its domain processes form their own process group, which is killed
on any error path and checked to be empty after every run.

With --open-loop the question is latency at a load the server can carry rather than the most it can
carry.  After the warm-up: closed-loop rounds of mono, isolate-cache, handoff, handoff-again and
remote (below), 20 rounds (two whole periods of the balanced order below), each build once a round
(mono's median is its closed-loop maximum, for comparison; the rounds' paired ratios, with their
90% interval, give the closed loop's ratios below); the futex hand-off's cost on this
machine (five runs of bench/ipc/pingpong.c's futex ping-pong, CPU time of both processes per round
trip, left to the scheduler (h) and with both processes kept to one CPU (h1)); then each build's
open-loop maximum, the highest rate R at which loadgen --rate R is kept up with: every request
answered correctly, at least 97% of R achieved and a median latency (from the intended send time)
of at most 1 ms.  A closed-loop maximum is no base for an open loop: the open-loop client pays a
wake-up per request that the closed loop's mostly does not, and on cores the client shares with the
server, the server gets less of them.  The search starts at half the build's closed-loop rate,
doubles or halves until it has a rate kept up with and one not, then bisects (geometric mean) until
the two are within 5%; each probe is about 2 s of load, a probe that does not keep up is run once
more (a neighbour's burst can sink one), and the builds' searches run in lockstep, one probe each
per step, so a noisy minute falls on all of them.  The two builds of the saturation target,
isolate-cache and handoff, are then searched again in R rounds (R as below), with handoff-again and
remote (below), the four in lockstep within a round: each from its first maximum (handoff-again
from handoff's, remote from isolate-cache's), up or down by 10% until bracketed, then to within 2%.
One search's ratio is uncertain by its step and by the machine's noise; the target is judged on the
median of the rounds' ratios, each shown.

handoff-again is the handoff executable copied to a directory of its own and measured as if it
were another build: in the closed loop, in the rounds of searches above and at 50% load.  Its
ratios to handoff (the same program against itself, in the same rounds) are printed beside the
targets' ratios: how far two measurements of one build differ on this machine in this run, the
resolution that a "within 10% of the floor" verdict has.  It judges nothing.

remote is the floor with the work moved: the plain build in which isolate-cache's three calls run
in the hand-off's peer process, on the peer's own cache, each over one bare hand-off with the
bytes it needs copied through shared memory (bench/ipc/remote_cache.c over handoff.c built with
-DQB_REMOTE): the crossings as a program written for them would make them, with no generic copy
of the whole out buffer, no protocol, no checks of the answer and no supervision.  Measured where
handoff-again is; isolate-cache against it (what the runtime costs beyond moving the work) and it
against handoff (what moving the work to another process costs by itself) are printed beside the
targets.  It judges nothing either.

Then R rounds (default 3): in each round, for each load L of --loads (fractions of mono's open-loop
maximum), every variant serves loadgen --rate L*max (at 50% handoff-again and remote too), in
a balanced order (a Williams design: over each whole period of rounds, as many as there are
variants or twice that for an odd number, each variant runs right after each other one equally
often, since a run need not be independent of the one before it).  Each run is bounded in requests (--threads T --requests
ceil(L*max*D/T) for --duration D) and in seconds (--seconds 2*D).  loadgen sends each request at
its intended time and counts latency from that time, so a reply that comes late delays the requests
behind it and their latency shows it.  Every open-loop server runs with a fresh QPM_REPORT_DIR,
whose statistics file gives the run's channel round trips (a call between two domains is relayed by
the main process: two).  Reported for each load and variant: the median p50, p99 and p99.9 over the
rounds with their range, the requests/s achieved, errors, and the server's CPU time per request;
the target: at 50% load, isolate-cache's p99 at most 1.3 times mono's (ratio of the medians,
per-round ratios shown) with no errors, beside its floor, handoff's p99 at the same load: no split
build of this plan can answer sooner than its bare hand-offs allow, so when handoff's p99 is above
1.3 times mono's the floor forbids the target.  Whether isolate-cache's p99 is then within 10% of
the floor's is read from the rounds' paired ratios: their median and a 90% interval for it (order
statistics; median_interval), yes when all of the interval is at most 1.1, no when none of it is,
not resolved otherwise (bench/fixed_rate.py --share 0.5 runs as many rounds as it is given).  When
that load is above the floor's own maximum
(the median of the rounds' searches), the report says so: both builds are then past saturation,
where a p99 is the backlog a run built up (longer the longer the run), and their maxima compare
them.

Then, at saturation, the targets: isolate-cache's open-loop maximum at least 0.9 of handoff's
(the median of the rounds above), and its closed-loop requests/s at least 0.9 of handoff's.  Beside them, for comparison, what the
idle ping-pong predicts: each build's CPU per request and round trips per request at its maximum,
C / (C + k * h) with C mono's CPU per request (server and client) at its maximum, k the build's
round trips per request and h the ping-pong's CPU per round trip; the open loop's rate floor (the
highest rate R at which R * (C(R) + k * h) fits in the CPU mono used at its maximum, C(R) mono's
CPU per request at R as this run measured it, since an open loop's request costs more the lower
the rate); and the same with h1.  The ping-pong's two processes touch nothing but the futex word,
so its hand-off is cheaper than one in a server under load, whose switches evict what the server
uses; the handoff build measures the hand-off where it happens.  When isolate-cache's open-loop
maximum is above the 50% load, mono is also run at the share of its own maximum that
isolate-cache carries at 50% load (latency at equal utilization).  The call counting run is
skipped.

The exit status is 0 whatever the ratios are; 1 when a request failed or a server misbehaved
(the numbers are then printed but not valid), 2 when something could not be built or run.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import glob
import json
import math
import os
import platform
import re
import resource
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

from machine import autogroup, cpu_model, own_group, run_servers_main  # bench/machine.py: scripts here run with bench/ on sys.path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = os.path.join(".venv", "bin", "python")
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")  # beside the Python that runs this
PLANS = os.path.join("samples", "kvstore", "plans")
CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread",
          "-Iclang_attrs"]
VARIANTS = ("plain", "mono", "isolate-cache", "isolate-all", "handoff")
SCONS_VARIANTS = ("mono", "isolate-cache", "isolate-all")
FLOOR_OF = "isolate-cache"  # the handoff build has this plan's crossings as bare hand-offs
AGAIN = "handoff-again"     # the handoff executable again, measured beside it: the measurement's own spread
REMOTE = "remote"           # FLOOR_OF's calls made in the peer by hand (bench/ipc/remote_cache.c)
REMOTE_CALLS = ("cache_get", "cache_put", "cache_invalidate")   # what bench/ipc/remote_cache.c makes
# The ratios printed beside the targets' (a / b, what it shows); they judge nothing.
CONTROLS = ((AGAIN, "handoff", f"the floor against itself ({AGAIN}, the same executable)"),
            (FLOOR_OF, REMOTE, f"against the floor with the work moved ({REMOTE})"),
            (REMOTE, "handoff", f"what moving the work costs by itself ({REMOTE} against the bare floor)"))
TICK = os.sysconf("SC_CLK_TCK")

START_TIMEOUT_S = 15      # until the server prints its port
STOP_TIMEOUT_S = 20       # from SIGTERM until the server has exited
GROUP_GONE_TIMEOUT_S = 5  # until its domain processes are gone too
LOAD_GRACE_S = 30         # loadgen's own --seconds plus this

# The cross-component functions of samples/kvstore/kvstore.h that requests call, and the
# component each is called from (cache_init and stats_init run once, before main()).
FUNCTIONS = {
    "proto_handle": ("int", "const char *line, char *reply, size_t cap", "line, reply, cap", "net"),
    "store_get": ("int", "const char *key, char *out, size_t cap", "key, out, cap", "proto"),
    "store_set": ("int", "const char *key, const char *val, size_t len", "key, val, len", "proto"),
    "store_del": ("int", "const char *key", "key", "proto"),
    "cache_get": ("int", "const char *key, char *out, size_t cap", "key, out, cap", "proto"),
    "cache_put": ("void", "const char *key, const char *val, size_t len", "key, val, len", "proto"),
    "cache_invalidate": ("void", "const char *key", "key", "proto"),
    "stats_count": ("void", "int what", "what", "proto"),
    "stats_format": ("int", "char *out, size_t cap", "out, cap", "proto"),
}


class Failure(Exception):
    """Something could not be built or run: exit status 2."""


def log(text: str = "") -> None:
    print(text, flush=True)


def run(cmd: list[str], timeout: float = 600, quiet: bool = False) -> str:
    """Runs a build step in the repository; its output is shown only when it fails."""
    if not quiet:
        log("  $ " + shlex.join(cmd))
    try:
        p = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Failure(f"{shlex.join(cmd)}: {e}") from e
    if p.returncode != 0:
        raise Failure(f"{shlex.join(cmd)} exited {p.returncode}:\n{p.stdout}")
    return p.stdout


# ---- machine --------------------------------------------------------------------------------

def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def git_describe() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "samples", "runtime", "qtool",
                                "SConstruct", "clang_attrs"], cwd=REPO, text=True,
                               capture_output=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head + (" (uncommitted changes in samples/, runtime/, qtool/ or SConstruct)" if dirty else
                   " (samples/, runtime/, qtool/, SConstruct as committed)")


# ---- processes ------------------------------------------------------------------------------

def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is pgid (zombies are not counted)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


def children(pid: int) -> list[int]:
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return kids


def proc_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0].decode())
    except OSError:
        return "?"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process, its finished threads included."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of a process's live threads."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def become_subreaper() -> bool:
    """Orphaned domain processes are re-parented to this script, which reaps them (no zombies)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap(pids: list[int], deadline: float) -> None:
    """Waits for processes re-parented to this script; ignores any that are not its children."""
    pending = list(pids)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    pending.remove(pid)
            except ChildProcessError:
                pending.remove(pid)
        if pending:
            time.sleep(0.01)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Server:
    """One kvstore process (and its domain processes) in a process group of its own."""

    def __init__(self, exe: str, workdir: str, env: dict | None = None, wrapper: list[str] | None = None):
        self.errfile = open(os.path.join(workdir, "server.err"), "w+")
        self.proc = subprocess.Popen([*(wrapper or []), exe, "--port", "0"], cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=self.errfile, env={**os.environ, **env} if env else None,
                                     **own_group())
        self.pgid = self.proc.pid
        self.domains: list[int] = []
        try:
            self.port = self._read_port()
        except BaseException:
            self.kill()
            raise

    def _read_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT_S
        data = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise Failure(f"server did not print its port within {START_TIMEOUT_S} s"
                              + self.stderr_text())
            chunk = os.read(fd, 4096)
            if not chunk:
                raise Failure(f"server exited before printing its port (status {self.proc.wait(5)})"
                              + self.stderr_text())
            data += chunk
        first, self.rest = data.split(b"\n", 1)
        m = re.fullmatch(r"kvstore listening on 127\.0\.0\.1:(\d+)", first.decode(errors="replace"))
        if not m:
            raise Failure(f"unexpected first line from the server: {first!r}")
        return int(m[1])

    def stderr_text(self) -> str:
        self.errfile.seek(0)
        text = self.errfile.read().strip()
        return f"\nserver stderr:\n{text}" if text else ""

    def processes(self) -> list[int]:
        kids = children(self.proc.pid)
        self.domains = sorted(set(self.domains) | set(kids))
        return [self.proc.pid] + kids

    def cpu(self) -> tuple[float, float]:
        """(user, system) seconds of the main process and its domain processes."""
        times = [cpu_seconds(p) for p in self.processes()]
        return sum(t[0] for t in times), sum(t[1] for t in times)

    def domain_context_switches(self) -> int:
        return sum(context_switches(p) for p in children(self.proc.pid))

    def stop(self) -> tuple[int, str, int]:
        """SIGTERM, then wait for the server and for its process group to empty.

        Returns the exit status, stdout after the first line, and the main process's context
        switches (all its threads, from the rusage of the reaped process)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise Failure(f"server did not exit within {STOP_TIMEOUT_S} s of SIGTERM")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        switches = (after.ru_nvcsw - before.ru_nvcsw) + (after.ru_nivcsw - before.ru_nivcsw)
        deadline = time.monotonic() + GROUP_GONE_TIMEOUT_S
        reap(self.domains, deadline)
        while group_members(self.pgid):
            if time.monotonic() > deadline:
                raise Failure(f"processes of the server's group still alive "
                              f"{GROUP_GONE_TIMEOUT_S} s after it exited: {group_members(self.pgid)}")
            time.sleep(0.02)
        return self.proc.returncode, (self.rest + out).decode(errors="replace"), switches

    def kill(self) -> None:
        self.domains = sorted(set(self.domains) | set(children(self.proc.pid)))
        kill_group(self.pgid)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        reap(self.domains, time.monotonic() + GROUP_GONE_TIMEOUT_S)
        self.errfile.close()


def run_loadgen(loadgen: str, port: int, load: list[str], seconds: float) -> tuple[dict, float]:
    """Runs loadgen to completion; returns its parsed summary and its CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([loadgen, "--port", str(port), *load], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **own_group())
    try:
        out, err = proc.communicate(timeout=seconds + LOAD_GRACE_S)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        proc.wait()
        raise Failure(f"loadgen did not finish within {seconds + LOAD_GRACE_S:.0f} s")
    except BaseException:
        kill_group(proc.pid)
        proc.wait()
        raise
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    m = re.search(r"loadgen: requests=(\d+) ok=(\d+) errors=(\d+) seconds=([\d.]+) rps=([\d.]+)", out)
    if not m or proc.returncode not in (0, 1):
        raise Failure(f"loadgen exited {proc.returncode}:\n{out}{err}")
    result = {"requests": int(m[1]), "ok": int(m[2]), "errors": int(m[3]), "seconds": float(m[4]),
              "rps": float(m[5]), "exit": proc.returncode, "stderr": err.strip()}
    for key, value in re.findall(r"(p50_ms|p99_ms|p999_ms|max_ms)=([\d.]+)", out):
        result[key] = float(value)
    return result, cpu


def serve_and_load(exe: str, loadgen: str, load: list[str], seconds: float, workdir: str,
                   count_trips: bool = False) -> dict:
    """One measured run: fresh server, loadgen, CPU sample, SIGTERM, wait.  With count_trips, the
    runtime's own statistics of the run (a fresh QPM_REPORT_DIR) give its crossing calls and
    channel round trips (result["crossings"], result["trips"]: totals, not per request)."""
    reports = tempfile.mkdtemp(prefix="reports-", dir=workdir) if count_trips else None
    server = Server(exe, workdir, {"QPM_REPORT_DIR": reports} if reports else None)
    stopped = False
    try:
        procs = [f"{proc_name(p)}" for p in server.processes()]
        result, load_cpu = run_loadgen(loadgen, server.port, load, seconds)
        if server.proc.poll() is not None:
            raise Failure(f"server exited during the load (status {server.proc.returncode})"
                          + server.stderr_text())
        server_user, server_sys = server.cpu()
        domain_switches = server.domain_context_switches()
        status, out, main_switches = server.stop()
        stopped = True
        err = server.stderr_text()
    finally:
        if not stopped:
            server.kill()
    server.errfile.close()
    result.update(server_exit=status, server_cpu=server_user + server_sys, server_sys=server_sys,
                  server_switches=main_switches + domain_switches, loadgen_cpu=load_cpu, procs=procs,
                  server_stderr=err.strip(), server_stats=server_stats(out))
    if reports:
        result["crossings"], result["trips"] = runtime_trips(reports)
        shutil.rmtree(reports, ignore_errors=True)
    return result


def server_stats(out: str) -> dict[str, int] | None:
    """The counts of the server's final 'kvstore stats:' line (its standard output after the first
    line), or None without one."""
    m = re.search(r"kvstore stats: connections=(\d+) requests=(\d+) gets=(\d+) sets=(\d+) dels=(\d+)"
                  r" hits=(\d+) misses=(\d+)", out)
    return dict(zip(("connections", "requests", "gets", "sets", "dels", "hits", "misses"),
                    map(int, m.groups()))) if m else None


def runtime_trips(reports: str) -> tuple[int, int]:
    """(crossing calls, channel round trips) of one run, from the runtime's final stats file.

    The main process counts every crossing edge (caller domain -> function); a call between two
    domains is relayed by the main process, so it takes two round trips.  A build with no
    crossing (plain, mono) writes no file: (0, 0)."""
    paths = glob.glob(os.path.join(reports, "stats-*.json"))
    if not paths:
        return 0, 0
    with open(paths[0]) as f:
        edges = json.load(f)["edges"]
    calls = sum(e["calls"] for e in edges)
    trips = sum(e["calls"] * (1 if "main" in (e["caller_domain"], e["callee_domain"]) else 2)
                for e in edges)
    return calls, trips


def problems(r: dict) -> list[str]:
    found = []
    if r["errors"] or r["exit"]:
        found.append(f"loadgen: {r['errors']} errors, exit {r['exit']}: {r['stderr'][:300]}")
    if r["server_exit"] != 0:
        found.append(f"server exited {r['server_exit']}")
    if r["server_stats"] is None:
        found.append("no final 'kvstore stats:' line from the server")
    elif r["server_stats"]["requests"] != r["requests"]:
        found.append(f"server served {r['server_stats']['requests']} requests, loadgen sent "
                     f"{r['requests']}")
    if r["server_stderr"]:
        found.append(f"server stderr: {r['server_stderr'][:300]}")
    return found


# ---- builds ---------------------------------------------------------------------------------

def rotated(seq: tuple, k: int) -> tuple:
    """seq starting at its (k mod len)-th item: the order of a round that rotates by one each time."""
    k %= len(seq)
    return seq[k:] + seq[:k]


def balanced_period(n: int) -> int:
    """The rounds over which balanced() orders n items evenly: n, or 2n for an odd n."""
    return n if n % 2 == 0 else 2 * n


def balanced(seq: tuple, k: int) -> tuple:
    """The order of seq in round k of a Williams design: each round runs every item once, and over
    len(seq) rounds (twice that for an odd length) every item runs right after every other item
    equally often.  A run need not be independent of the run before it (what the last server left
    in the caches, the scheduler's and the hypervisor's view of the load); with the order only
    rotating, each build always followed the same one, and any such effect fell on one build."""
    n = len(seq)
    first = [0] + [(j + 1) // 2 if j % 2 else n - j // 2 for j in range(1, n)]
    m = k % balanced_period(n)
    row = [seq[(i + m) % n] for i in first]
    return tuple(row if m < n else row[::-1])


def kvstore_sources() -> list[str]:
    return sorted(os.path.relpath(p, REPO)
                  for p in glob.glob(os.path.join(REPO, "samples", "kvstore", "*.c")))


def build_variant(variant: str, tmp: str) -> tuple[str, str]:
    """Builds one of SCONS_VARIANTS with scons and copies kvstore and its kvstore-<domain>
    executables, kept together, into tmp/<variant>; returns its kvstore there and the command."""
    cmd = [SCONS, "-Q"]
    if variant != "mono":
        cmd.append(f"ISOLATE={os.path.join(PLANS, variant + '.yaml')}")
    run(cmd)
    shown = [os.path.relpath(SCONS, REPO) if SCONS.startswith(REPO + os.sep) else SCONS, *cmd[1:]]
    dest = os.path.join(tmp, variant)
    os.mkdir(dest)
    for path in glob.glob(os.path.join(REPO, "build", variant, "kvstore*")):
        if os.path.isfile(path) and os.access(path, os.X_OK):
            shutil.copy2(path, dest)
    exe = os.path.join(dest, "kvstore")
    if not os.path.exists(exe):
        raise Failure(f"{shlex.join(cmd)} left no build/{variant}/kvstore")
    return exe, shlex.join(shown) + f"   -> build/{variant}/kvstore*"


def build_again(tmp: str, handoff: str) -> str:
    """The handoff executable copied into tmp/AGAIN, to be measured as if it were another build."""
    again = os.path.join(tmp, AGAIN, "kvstore")
    os.mkdir(os.path.dirname(again))
    shutil.copy2(handoff, again)
    return again


def copy_loadgen(tmp: str) -> str:
    """build/tools/loadgen (built by the scons runs) copied into tmp; returns the copy."""
    loadgen = os.path.join(tmp, "loadgen")
    shutil.copy2(os.path.join(REPO, "build", "tools", "loadgen"), loadgen)
    return loadgen


def build_all(tmp: str) -> tuple[dict[str, str], str, list[str]]:
    """Builds every variant and loadgen; returns the executables' copies in tmp."""
    commands = []
    exes = {}

    plain_dir = os.path.join(tmp, "plain")
    os.mkdir(plain_dir)
    cmd = ["gcc", *CFLAGS, *kvstore_sources(), "-o", os.path.join(plain_dir, "kvstore")]
    run(cmd)
    commands.append(shlex.join(cmd[:len(CFLAGS) + 1]) + " samples/kvstore/*.c -o <tmp>/plain/kvstore")
    exes["plain"] = os.path.join(plain_dir, "kvstore")

    for variant in SCONS_VARIANTS:
        exes[variant], command = build_variant(variant, tmp)
        commands.append(command)

    exes["handoff"] = build_handoff(tmp)
    commands.append(f"gcc {' '.join(CFLAGS)} samples/kvstore/*.c bench/ipc/handoff.c <tmp>/handoff.c "
                    f"-Wl,--wrap=<each function {FLOOR_OF} sends across> -o <tmp>/handoff/kvstore")
    exes[AGAIN] = build_again(tmp, exes["handoff"])
    commands.append(f"cp <tmp>/handoff/kvstore <tmp>/{AGAIN}/kvstore   (the floor measured twice)")
    exes[REMOTE] = build_remote(tmp)
    commands.append(f"gcc {' '.join(CFLAGS)} -DQB_REMOTE samples/kvstore/*.c bench/ipc/handoff.c "
                    f"bench/ipc/remote_cache.c {' '.join(f'-Wl,--wrap={n}' for n in REMOTE_CALLS)} "
                    f"-o <tmp>/{REMOTE}/kvstore")

    loadgen = copy_loadgen(tmp)
    try:
        exes["counting"] = build_counting(tmp)
    except Failure as e:
        log(f"  (the call-counting build failed, call counts will be missing: {e})")
    return exes, loadgen, commands


def build_wrapped(tmp: str, name: str, wrapped: dict[str, list[str]], head: list[str], tail: list[str],
                  sources: list[str]) -> str:
    """The plain build with `wrapped[f]`'s lines run before each call of f (-Wl,--wrap), `head`
    and `tail` around the wrappers in their file, linked with `sources` too; returns the executable."""
    lines = list(head)
    for fn, before in wrapped.items():
        ret, params, args, _ = FUNCTIONS[fn]
        lines += [f"{ret} __real_{fn}({params});",
                  f"{ret} __wrap_{fn}({params})",
                  "{",
                  *(f"    {line}" for line in before),
                  f"    {'return ' if ret != 'void' else ''}__real_{fn}({args});",
                  "}", ""]
    src = os.path.join(tmp, name + ".c")
    with open(src, "w") as f:
        f.write("\n".join(lines + tail) + "\n")
    exe = os.path.join(tmp, name, "kvstore")
    os.mkdir(os.path.dirname(exe))
    run(["gcc", *CFLAGS, *kvstore_sources(), *sources, src, "-o", exe,
         *(f"-Wl,--wrap={n}" for n in wrapped)], quiet=True)
    return exe


def build_counting(tmp: str) -> str:
    """The plain build with a call counter around each cross-component function."""
    head = ["#include <stdatomic.h>", "#include <stddef.h>", "#include <stdio.h>", "",
            f"static atomic_ulong qb_count[{len(FUNCTIONS)}];", ""]
    fmt = " ".join(f"{n}=%lu" for n in FUNCTIONS)
    vals = ", ".join(f"atomic_load(&qb_count[{i}])" for i in range(len(FUNCTIONS)))
    tail = ["__attribute__((destructor)) static void qb_report(void)", "{",
            f'    fprintf(stderr, "calls: {fmt}\\n", {vals});', "}"]
    return build_wrapped(tmp, "counting", {
        name: [f"atomic_fetch_add_explicit(&qb_count[{i}], 1, memory_order_relaxed);"]
        for i, name in enumerate(FUNCTIONS)}, head, tail, [])


def floor_calls() -> dict[str, int]:
    """The functions of FUNCTIONS that FLOOR_OF's plan sends across, each with its round trips."""
    trips = {name: trips_of_call(FLOOR_OF, name) for name in FUNCTIONS}
    return {name: n for name, n in trips.items() if n}


def build_handoff(tmp: str) -> str:
    """The plain build in which each call that FLOOR_OF's plan sends across first makes its round
    trips (one, or two for a call between two domains) as bare futex hand-offs with a second
    process (bench/ipc/handoff.c), then runs in place: that plan's hand-offs and nothing else."""
    wrapped = {name: ["qb_handoff();"] * trips for name, trips in floor_calls().items()}
    if not wrapped:
        raise Failure(f"{FLOOR_OF}'s plan sends no call of samples/kvstore/kvstore.h across")
    return build_wrapped(tmp, "handoff", wrapped, ["#include <stddef.h>", "", "void qb_handoff(void);", ""],
                         [], [os.path.join(REPO, "bench", "ipc", "handoff.c")])


def build_remote(tmp: str) -> str:
    """The plain build in which FLOOR_OF's calls run in a second process, each over one bare
    hand-off with the bytes it needs copied (bench/ipc/remote_cache.c over handoff.c's
    qb_remote): those crossings as a program written for them would make them."""
    sent = floor_calls()
    if sent != {n: 1 for n in REMOTE_CALLS}:
        raise Failure(f"{FLOOR_OF}'s plan sends {sent} across; bench/ipc/remote_cache.c makes "
                      f"{', '.join(REMOTE_CALLS)}, one round trip each")
    exe = os.path.join(tmp, REMOTE, "kvstore")
    os.mkdir(os.path.dirname(exe))
    run(["gcc", *CFLAGS, "-DQB_REMOTE", *kvstore_sources(), os.path.join(REPO, "bench", "ipc", "handoff.c"),
         os.path.join(REPO, "bench", "ipc", "remote_cache.c"), "-o", exe,
         *(f"-Wl,--wrap={n}" for n in REMOTE_CALLS)], quiet=True)
    return exe


def count_calls(exe: str | None, tmp: str, loadgen: str, load: list[str],
                seconds: float) -> dict[str, float] | None:
    """Calls per request of each cross-component function, from one run of the counting build."""
    if exe is None:
        return None
    try:
        r = serve_and_load(exe, loadgen, load, seconds, tmp)
    except Failure as e:
        log(f"  (call counting skipped: {e})")
        return None
    m = re.search(r"calls: (.*)", r["server_stderr"])
    if not m or r["errors"] or not r["requests"]:
        log(f"  (call counting skipped: no counts; {problems(r)})")
        return None
    counts = {k: int(v) for k, v in (kv.split("=") for kv in m[1].split())}
    counts["stats_format"] -= 1  # the server's own final stats line, not a request
    return {k: v / r["requests"] for k, v in counts.items()}


def placement(variant: str) -> dict[str, str]:
    """component -> domain ("main" unless the plan isolates it)."""
    if variant in ("plain", "mono"):
        return {}
    if variant == "handoff":
        return placement(FLOOR_OF)
    with open(os.path.join(REPO, PLANS, variant + ".yaml")) as f:
        plan = yaml.safe_load(f)
    return {c: d["domain"] for d in plan.get("isolate") or [] for c in d["components"]}


def trips_of_call(variant: str, name: str) -> int:
    """The channel round trips one call of `name` takes in `variant`: 0 when its caller and callee
    run in one process, 1 across main and a domain, 2 between two domains (main relays it)."""
    where = placement(variant)
    a, b = where.get(FUNCTIONS[name][3], "main"), where.get(name.split("_")[0], "main")
    return 0 if a == b else 1 if "main" in (a, b) else 2


def crossings(variant: str, per_request: dict[str, float]) -> tuple[float, float]:
    """(calls crossing a process boundary, channel round trips) per request."""
    calls = trips = 0.0
    for name in FUNCTIONS:
        k = trips_of_call(variant, name)
        if k:
            calls += per_request[name]
            trips += per_request[name] * k
    return calls, trips


# ---- open loop ------------------------------------------------------------------------------

P99_TARGET = 1.3      # isolate-cache's p99 over mono's, at 50% load
FLOOR_TARGET = 0.9    # isolate-cache's rate at saturation, as a share of handoff's (its floor)
KEEP_UP_SHARE = 0.97  # a run keeps up: it achieves at least this share of its rate ...
KEEP_UP_P50_MS = 1.0  # ... with a median latency under this
SEARCH_SECONDS = 2.0  # of paced load per probe of the search for a build's maximum
SEARCH_STEP = 1.05    # the search stops when the rates kept up and not kept up are this close
REFINE_STEP = 1.02    # the saturation target's refined searches stop when this close ...
REFINE_GROW = 1.1     # ... having stepped by this from the first search's maximum until bracketed
SEARCH_FLOOR = 100.0  # requests/s: below this a build is taken to keep up with nothing
PINGPONG_RUNS = 5
PINGPONG_ROUNDS = 100_000


def run_remarks(r: dict, bad: list[str]) -> str:
    """What a run's log line says after its figures: stopped early, and what went wrong."""
    return ("  (stopped by --seconds)" if r["limited"] else "") + (f"  PROBLEM: {'; '.join(bad)}" if bad else "")


def paced_load(threads: int, rate: float, duration: float) -> list[str]:
    """loadgen arguments for `rate` requests/s in all, for about `duration` seconds."""
    per_thread = max(1, math.ceil(rate * duration / threads))
    return ["--threads", str(threads), "--requests", str(per_thread), "--seconds", f"{2 * duration:g}",
            "--rate", f"{rate:.0f}"]


def paced_run(exe: str, loadgen: str, threads: int, rate: float, duration: float, tmp: str) -> dict:
    """One open-loop run at `rate` for about `duration` seconds, its round trips counted."""
    load = paced_load(threads, rate, duration)
    r = serve_and_load(exe, loadgen, load, 2 * duration, tmp, count_trips=True)
    r["rate"] = rate
    r["planned"] = threads * int(load[3])
    r["limited"] = r["requests"] < r["planned"]
    return r


CLOSED = ("mono", "isolate-cache", "handoff", AGAIN, REMOTE)


CLOSED_ROUNDS = 2 * balanced_period(len(CLOSED))   # two whole periods of the balanced order


def closed_loop_runs(exes: dict, loadgen: str, load: list[str], seconds: float, tmp: str) -> dict:
    """CLOSED_ROUNDS closed-loop rounds, each running every build of CLOSED once in the balanced
    order, their round trips counted: runs[variant] -> results, one a round.  A closed-loop run on
    these machines lands in one of two modes (docs/PERFORMANCE.md), so three runs a build decided
    little; whole periods of the balanced order let every build follow every other equally often,
    and two of them (20 rounds for five builds) give the paired ratios a 90% interval from their
    6th to their 15th value, where one period's is from the 2nd to the 9th of 10.  Raises Failure
    if any request failed."""
    runs: dict = {v: [] for v in CLOSED}
    for i in range(CLOSED_ROUNDS):
        for v in balanced(CLOSED, i):
            r = serve_and_load(exes[v], loadgen, load, seconds, tmp, count_trips=True)
            bad = problems(r)
            if bad:
                raise Failure(f"{v}, closed loop, round {i + 1}: {'; '.join(bad)}")
            runs[v].append(r)
            log(f"  round {i + 1}/{CLOSED_ROUNDS}  {v:<14}{r['rps']:>8.0f} req/s  srv cpu "
                f"{1e6 * r['server_cpu'] / r['requests']:6.1f}  loadgen {1e6 * r['loadgen_cpu'] / r['requests']:5.1f} us/req")
    return runs


def keeps_up(r: dict) -> str | None:
    """None when an open-loop run carried its rate; else why not.

    Below its maximum a server answers as requests come and the median latency stays near the
    service time (about 0.1 ms here); past it the queue grows for the whole run, and within a second
    the median is tens of milliseconds.  The median, not the p99, decides, because another program's
    burst on the shared cores moves the p99 of a run that keeps up by tens of milliseconds too."""
    if problems(r):
        return "failed"
    if r["limited"]:
        return "stopped by --seconds"
    if r["rps"] < KEEP_UP_SHARE * r["rate"]:
        return f"achieved {r['rps'] / r['rate']:.0%} of the rate"
    if r["p50_ms"] > KEEP_UP_P50_MS:
        return f"p50 {r['p50_ms']:.2f} ms"
    return None


class Search:
    """The highest rate a build keeps up with: from a first guess, multiplying or dividing by
    `grow` (doubling or halving) until a rate kept up with and one not are known, then bisecting
    between them on a log scale until they are within `step` of each other."""

    def __init__(self, guess: float, step: float = SEARCH_STEP, grow: float = 2.0, lowest: float = SEARCH_FLOOR):
        self.guess = guess
        self.step = step
        self.grow = grow
        self.lowest = lowest    # below this the build is taken to keep up with nothing
        self.good: dict | None = None   # the run at the highest rate kept up with
        self.bad: float | None = None   # the lowest rate not kept up with

    def next_rate(self) -> float | None:
        good = self.good["rate"] if self.good else None
        if good is None and self.bad is None:
            return self.guess
        if good is None:
            return self.bad / self.grow if self.bad / self.grow >= self.lowest else None
        if self.bad is None:
            return good * self.grow
        return math.sqrt(good * self.bad) if self.bad / good > self.step else None

    def record(self, r: dict) -> None:
        if keeps_up(r) is None:
            self.good = r
        else:
            self.bad = r["rate"]


def search_maxima(exes: dict, loadgen: str, threads: int, tmp: str, searches: dict[str, Search],
                  probes: list[dict], label: str = "") -> dict[str, Search]:
    """The builds' searches, run in lockstep (one probe of each build per step, the order rotating),
    so that a noisy minute of the machine falls on all of them.  A probe that does not keep up for
    any reason but a failed request is run once more, and counts as kept up if either run did.
    Every probe run is appended to `probes`; returns `searches`, each finished."""
    step = 0
    while True:
        todo = [(v, searches[v].next_rate()) for v in rotated(list(searches), step)]
        todo = [(v, rate) for v, rate in todo if rate is not None]
        if not todo:
            return searches
        for v, rate in todo:
            for attempt in (1, 2):
                r = paced_run(exes[v], loadgen, threads, rate, SEARCH_SECONDS, tmp)
                r["variant"] = v
                probes.append(r)
                why = keeps_up(r)
                log(f"  {label}step {step + 1:<2} {v:<14}{rate:>8.0f}/s  achieved {r['rps']:>7.0f}/s  p50 "
                    f"{r['p50_ms']:8.3f}  p99 {r['p99_ms']:8.3f} ms  srv cpu "
                    f"{1e6 * r['server_cpu'] / max(r['requests'], 1):6.1f}"
                    f"  loadgen {1e6 * r['loadgen_cpu'] / max(r['requests'], 1):5.1f} us/req: "
                    + ("keeps up" if why is None else f"does not ({why})")
                    + (" [second try]" if attempt == 2 else ""))
                if why is None or why == "failed":
                    break
            searches[v].record(r)
        step += 1


def refine_maxima(exes: dict, loadgen: str, threads: int, tmp: str, first: dict[str, Search],
                  probes: list[dict], rounds: int) -> list[dict[str, dict | None]]:
    """The saturation target's two builds, FLOOR_OF and handoff, with handoff again (AGAIN, the
    same executable: how far two measurements of one build differ here) and REMOTE (the floor with
    the work moved), searched again in `rounds` rounds, the four in lockstep within a round, in a
    balanced order: each from its first search's maximum (AGAIN from handoff's, REMOTE from
    FLOOR_OF's), by REFINE_GROW until bracketed (down to half that maximum at most), then to within
    REFINE_STEP.  One search's ratio is uncertain by its whole step plus the machine's noise; the
    rounds show that spread.  Returns each round's kept-up run of each build, None for one that
    kept up with nothing tried."""
    start = {FLOOR_OF: first[FLOOR_OF].good["rate"], "handoff": first["handoff"].good["rate"]}
    start.update({AGAIN: start["handoff"], REMOTE: start[FLOOR_OF]})
    found = []
    for i in range(rounds):
        order = balanced((FLOOR_OF, "handoff", AGAIN, REMOTE), i)
        searches = {v: Search(start[v], REFINE_STEP, REFINE_GROW, start[v] / 2) for v in order}
        search_maxima(exes, loadgen, threads, tmp, searches, probes, label=f"round {i + 1}/{rounds} ")
        found.append({v: searches[v].good for v in order})
    return found


def futex_handoff(tmp: str, one_cpu: bool = False) -> tuple[float, float, list[tuple[float, float]]]:
    """The futex hand-off between two processes on this machine, bench/ipc/pingpong.c's futex
    ping-pong: (median CPU us per round trip, both processes; median wall us per round trip;
    every run's pair).  one_cpu: both processes kept to one CPU (a hand-off is then a switch on
    that core, with no wake-up of another), else wherever the scheduler puts them."""
    exe = os.path.join(tmp, "pingpong")
    if not os.path.exists(exe):
        run(["gcc", "-O2", "-std=c11", os.path.join("bench", "ipc", "pingpong.c"), "-o", exe], quiet=True)
    allowed = os.sched_getaffinity(0)
    samples = []
    try:
        if one_cpu:
            os.sched_setaffinity(0, {min(allowed)})     # the ping-pong inherits it
        for _ in range(PINGPONG_RUNS):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = run([exe, "futex", str(PINGPONG_ROUNDS)], timeout=120, quiet=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            samples.append((1e6 * cpu / PINGPONG_ROUNDS, float(out.split()[1]) / 1e3))
    finally:
        os.sched_setaffinity(0, allowed)
    return (statistics.median(c for c, _ in samples), statistics.median(w for _, w in samples), samples)


def open_loop_runs(args, exes: dict, loadgen: str, tmp: str, loads: list[float], rounds: int,
                   rates: dict[float, float]) -> dict:
    """runs[(load, variant)] -> one result per round; the variants in a balanced order (balanced).  At
    50% load, the load of the p99 target, AGAIN and REMOTE run too."""
    at = {x: VARIANTS + ((AGAIN, REMOTE) if x == 0.5 else ()) for x in loads}
    runs: dict = {(x, v): [] for x in loads for v in at[x]}
    for i in range(rounds):
        for x in loads:
            for v in balanced(at[x], i):
                r = paced_run(exes[v], loadgen, args.threads, rates[x], args.duration, tmp)
                r["round"] = i
                runs[(x, v)].append(r)
                bad = problems(r)
                log(f"  round {i + 1}/{rounds}  load {x:.2f} ({rates[x]:.0f}/s)  {v:<14}"
                    f" p50 {r['p50_ms']:7.3f}  p99 {r['p99_ms']:7.3f}  p99.9 {r['p999_ms']:7.3f}"
                    f"  max {r['max_ms']:7.3f} ms  {r['rps']:>7.0f} req/s  errors {r['errors']}"
                    f"  server cpu {r['server_cpu']:.2f} s" + run_remarks(r, bad))
    return runs


def equal_utilization_runs(args, exes: dict, loadgen: str, tmp: str, rounds: int, rates: dict,
                           searches: dict) -> dict | None:
    """Mono at the share of its own maximum that isolate-cache carries at 50% load (u, isolate-cache's
    utilization there: 50% of mono's maximum over isolate-cache's maximum), alternating with
    isolate-cache at 50% load again: the latency any server shows that busy, beside isolate-cache's.
    None when 50% is not a load measured, or u is not below 1."""
    if 0.5 not in rates or searches["isolate-cache"].good is None:
        return None
    top, own = rates[0.5] / 0.5, searches["isolate-cache"].good["rate"]
    u = rates[0.5] / own
    if u >= 1:
        return None
    log()
    log(f"equal utilization: isolate-cache at 50% load is at {u:.2f} of its own maximum ({own:.0f}/s); "
        f"mono at {u:.2f} of its maximum ({u * top:.0f}/s), alternating with isolate-cache at 50% again:")
    out = {"u": u, "own": own, "mono": [], "isolate-cache": []}
    for i in range(rounds):
        for v, rate in ((("mono", u * top), ("isolate-cache", rates[0.5])) if i % 2 == 0 else
                        (("isolate-cache", rates[0.5]), ("mono", u * top))):
            r = paced_run(exes[v], loadgen, args.threads, rate, args.duration, tmp)
            out[v].append(r)
            log(f"  round {i + 1}/{rounds}  {v:<14} at {rate:7.0f}/s  p50 {r['p50_ms']:7.3f}  p99 {r['p99_ms']:7.3f}"
                f"  p99.9 {r['p999_ms']:7.3f} ms  errors {r['errors']}" + run_remarks(r, problems(r)))
    return out


def p99_floor_report(runs: dict, rates: dict, searches: dict, refined: list[dict[str, dict | None]],
                     duration: float) -> None:
    """The 50% target beside its floor, the handoff build at the same load: the crossings' bare
    hand-offs and nothing else, so no split build of this plan can have a lower p99 there.  When
    its p99 is more than P99_TARGET times mono's, the floor forbids the target.  When the load is
    above the floor's own maximum, says so: past saturation a p99 is the backlog a run of
    `duration` seconds built up, longer the longer the run, and not a latency to compare."""
    if 0.5 not in rates:
        return
    mono50 = statistics.median(r["p99_ms"] for r in runs[(0.5, "mono")])
    ic50 = statistics.median(r["p99_ms"] for r in runs[(0.5, FLOOR_OF)])
    floor50 = statistics.median(r["p99_ms"] for r in runs[(0.5, "handoff")])
    top = searches["handoff"].good
    log()
    log(f"the target at 50% load ({rates[0.5]:.0f}/s) against its floor, the handoff build at that load "
        f"(its maximum in the search: " + (f"{top['rate']:.0f}/s, {top['rate'] / rates[0.5]:.2f} times the load)"
                                            if top else "none)"))
    allowed = floor50 / mono50
    log(f"  handoff p99 {spread([r['p99_ms'] for r in runs[(0.5, 'handoff')]])} ms, {allowed:.2f} times mono's "
        f"({mono50:.3f} ms): " + (f"the floor forbids <= {P99_TARGET}" if allowed > P99_TARGET
                                  else f"the floor allows <= {P99_TARGET}"))
    paired = ratios(runs[(0.5, FLOOR_OF)], runs[(0.5, 'handoff')], 'p99_ms')
    said = answer(paired, 1.1)
    log(f"  {FLOOR_OF}'s p99 at 50% load, {ic50:.3f} ms, is {ic50 / floor50:.2f} times the floor's (per round "
        f"{listed(paired)}; their median {interval_text(paired)}): within 10% of the floor: "
        + said + (" (bench/fixed_rate.py --share 0.5 runs more rounds)" if said == "not resolved" else ""))
    for a, b, what in CONTROLS:
        if runs.get((0.5, a)) and runs.get((0.5, b)):
            pa, pb = (statistics.median(r["p99_ms"] for r in runs[(0.5, v)]) for v in (a, b))
            log(f"  {what}: {a}'s p99 {pa:.3f} ms is {pa / pb:.2f} times {b}'s (per round "
                f"{listed(ratios(runs[(0.5, a)], runs[(0.5, b)], 'p99_ms'))})")
    def median_top(v: str) -> float | None:
        tops = [r[v]["rate"] if r[v] else 0.0 for r in refined] or (
            [searches[v].good["rate"]] if searches[v].good else [])
        return statistics.median(tops) if tops else None
    floor_top, own_top = median_top("handoff"), median_top(FLOOR_OF)
    if floor_top is not None and floor_top < rates[0.5]:
        both = own_top is not None and own_top < rates[0.5]
        log(f"  (the load is above the floor's own maximum, {floor_top:.0f}/s, the median of its searches"
            + (f", and above {FLOOR_OF}'s, {own_top:.0f}/s: both builds are" if both else ": the floor is")
            + f" past saturation there, where a p99 is the backlog that {duration:g} s of load built up, not a "
            f"latency; what compares them is their maxima, above, and their latency at a load the floor carries: "
            f"bench/fixed_rate.py --share 0.5 --of handoff)")


def equal_utilization_report(equal: dict | None, runs: dict) -> None:
    """isolate-cache's p99 at 50% load against mono's at the same share of its own maximum."""
    if equal is None:
        return
    ic = equal["isolate-cache"] + runs[(0.5, "isolate-cache")]
    mono = equal["mono"]
    a, b = statistics.median(r["p99_ms"] for r in ic), statistics.median(r["p99_ms"] for r in mono)
    log()
    log(f"at equal utilization ({equal['u']:.2f} of each build's own open-loop maximum): isolate-cache "
        f"p99 {spread([r['p99_ms'] for r in ic])} ms at 50% of mono's maximum, mono p99 "
        f"{spread([r['p99_ms'] for r in mono])} ms; ratio {a / b:.2f} "
        + ("(within 10%: at 50% load isolate-cache's p99 is what its capacity makes it)" if a / b <= 1.1 else
           "(above mono's at the same utilization by more than 10%)"))


def round_ratios(refined: list[dict[str, dict | None]], a: str, b: str) -> list[float]:
    """a's maximum over b's in each round of the searches again in which b kept up with some rate;
    a round in which a kept up with none (down to half its first maximum) counts as 0."""
    return [r[a]["rate"] / r[b]["rate"] if r.get(a) else 0.0 for r in refined if r.get(b)]


def ratios(a: list[dict], b: list[dict], key: str) -> list[float]:
    """The ratios a[i][key] / b[i][key] of runs made in the same round, in round order."""
    return [x[key] / y[key] for x, y in zip(a, b)]


def median_interval(values: list[float], confidence: float = 0.9) -> tuple[float, float, float] | None:
    """The median of values and a distribution-free interval that holds the true median with at
    least `confidence` (order statistics of the sorted values, by the binomial distribution with
    p = 1/2): (low, median, high), or None with too few values for any such interval (fewer than 5
    at 90%).  The rounds' ratios of two builds are far from normal (a neighbour's burst makes one
    round's p99 ten times another's), so no normal interval."""
    n = len(values)
    tail, k = 0.0, 0
    while True:             # k: the largest count whose lower tail P(B <= k - 1) stays within
        nxt = tail + math.comb(n, k) / 2 ** n
        if nxt > (1 - confidence) / 2:
            break
        tail, k = nxt, k + 1
    if k == 0:
        return None
    xs = sorted(values)
    return xs[k - 1], statistics.median(xs), xs[n - k]


def verdict(values: list[float], bound: float, confidence: float = 0.9) -> str:
    """Whether the true median of values is at most `bound` by median_interval: "within" when the
    whole interval is, "beyond" when none of it is, "not resolved" when the interval straddles it
    (or there are too few values for one)."""
    iv = median_interval(values, confidence)
    if iv is None:
        return "not resolved"
    return "within" if iv[2] <= bound else "beyond" if iv[0] > bound else "not resolved"


def answer(values: list[float], bound: float) -> str:
    """verdict's answer to "is the true median at most bound?": yes, no or not resolved."""
    return {"within": "yes", "beyond": "no"}.get(verdict(values, bound), "not resolved")


def at_least(values: list[float], bound: float) -> str:
    """Whether the true median of positive values is at least `bound` by median_interval: yes when
    the whole interval is, no when none of it is, not resolved otherwise (answer on the inverses)."""
    return answer([1 / x for x in values], 1 / bound)


def interval_text(values: list[float], confidence: float = 0.9) -> str:
    """The median and its interval, as "1.02 (90%: 0.95 to 1.10)"."""
    iv = median_interval(values, confidence)
    if iv is None:
        return f"{statistics.median(values):.2f} (too few rounds for a {confidence:.0%} interval)"
    return f"{iv[1]:.2f} ({confidence:.0%}: {iv[0]:.2f} to {iv[2]:.2f})"


def listed(values: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


def spread(values: list[float], fmt: str = "{:.3f}") -> str:
    """The median of values and, in brackets, their range."""
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def per_request(rs: list[dict], key: str) -> float:
    """A total over runs (CPU seconds, round trips) per request of those runs."""
    return sum(r[key] for r in rs) / max(sum(r["requests"] for r in rs), 1)


def open_loop_report(args, runs: dict, loads: list[float], rates: dict[float, float],
                     layout: dict) -> list[tuple[str, str, str]]:
    """Prints the table and the target at fixed loads; returns the problems found in the runs."""
    head = (f"{'load':<6}{'rate/s':>8}  {'variant':<14}{'procs':>6}  {'p50 ms':<26}{'p99 ms':<26}"
            f"{'p99.9 ms':<26}{'achieved/s':>11}{'sent %':>7}{'errors':>7}{'srv cpu us/req':>15}{'(system)':>9}"
            f"{'loadgen us/req':>15}")
    log(head)
    log("-" * len(head))
    for x in loads:
        for v in VARIANTS:
            rs = runs[(x, v)]
            reqs = sum(r["requests"] for r in rs) or 1
            log(f"{x:<6.2f}{rates[x]:>8.0f}  {v:<14}{len(layout[v]):>6}  "
                f"{spread([r['p50_ms'] for r in rs]):<25} {spread([r['p99_ms'] for r in rs]):<25} "
                f"{spread([r['p999_ms'] for r in rs]):<25}"
                f"{statistics.median(r['rps'] for r in rs):>11.0f}"
                f"{100 * reqs / sum(r['planned'] for r in rs):>7.1f}{sum(r['errors'] for r in rs):>7}"
                f"{1e6 * per_request(rs, 'server_cpu'):>15.1f}{1e6 * per_request(rs, 'server_sys'):>9.1f}"
                f"{1e6 * per_request(rs, 'loadgen_cpu'):>15.1f}")
    log("  latency: from the time each request was due (loadgen --rate), as loadgen's histogram edges")
    log("  (at most 0.7% above the true value); the median over the rounds, the range in brackets.")
    log("  achieved/s: the median requests/s over the rounds; sent %: the share of the planned requests")
    log("  sent before --seconds (a server slower than the rate leaves the rest unsent, and their latency")
    log("  is not in the percentiles).  srv cpu us/req: CPU time (user+system; system alone in brackets)")
    log("  of the server's processes over all its runs at that load, per request; loadgen us/req: the")
    log("  same for the client, which shares the machine's cores with the server.")

    log()
    log("target at a fixed load:")
    if 0.5 not in loads:
        log("  at 50% load, isolate-cache p99 <= 1.3 x mono: not measured (0.5 is not among --loads)")
    else:
        ic, mono = runs[(0.5, "isolate-cache")], runs[(0.5, "mono")]
        ratio = statistics.median(r["p99_ms"] for r in ic) / statistics.median(r["p99_ms"] for r in mono)
        per_round = [a["p99_ms"] / b["p99_ms"] for a, b in zip(ic, mono)]
        errors = sum(r["errors"] for r in ic)
        met = ratio <= P99_TARGET and errors == 0
        log(f"  at 50% load, isolate-cache p99 / mono p99 = {ratio:.2f} (per round "
            f"{min(per_round):.2f}-{max(per_round):.2f}), isolate-cache errors {errors}: "
            + ("MET" if met else "MISS") + f" (target <= {P99_TARGET} and no errors)")
        allv = statistics.median(r["p99_ms"] for r in runs[(0.5, "isolate-all")]) / \
            statistics.median(r["p99_ms"] for r in mono)
        log(f"  at 50% load, isolate-all p99 / mono p99 = {allv:.2f} (no target)")
    return [(v, f"load {x:.2f} round {r['round'] + 1}", p) for x in loads for v in VARIANTS
            for r in runs[(x, v)] for p in problems(r)]


def trips_per_request(variant: str, probes: list[dict], runs: dict) -> float:
    """A build's channel round trips per request over all its runs: the search's probes and the
    runs at fixed loads."""
    own = [p for p in probes if p["variant"] == variant] + [x for (_, w), rs in runs.items() if w == variant
                                                              for x in rs]
    return per_request(own, "trips")


def floor_ratio(c_mono: float, trips: float, h_us: float) -> float:
    """The ratio to mono's throughput if every round trip cost one futex hand-off: C / (C + k h)."""
    return c_mono / (c_mono + trips * h_us / 1e6)


def mono_costs(probes: list[dict], runs: dict) -> list[tuple[float, float]]:
    """[(rate, CPU seconds per request of server and client)] of every rate mono kept up with, in
    its search and at the fixed loads, the runs at one rate pooled; sorted by rate."""
    pooled: dict[float, list[dict]] = {}
    for r in [p for p in probes if p["variant"] == "mono"] + [x for (_, w), rs in runs.items() if w == "mono"
                                                               for x in rs]:
        if keeps_up(r) is None:
            pooled.setdefault(round(r["rate"]), []).append(r)
    return sorted((rate, sum(r["server_cpu"] + r["loadgen_cpu"] for r in rs) / sum(r["requests"] for r in rs))
                  for rate, rs in pooled.items())


def cost_at(costs: list[tuple[float, float]], rate: float) -> float:
    """mono's CPU per request at `rate`: linear between the measured rates, the nearest beyond them."""
    if rate <= costs[0][0]:
        return costs[0][1]
    for (r0, c0), (r1, c1) in zip(costs, costs[1:]):
        if rate <= r1:
            return c0 + (c1 - c0) * (rate - r0) / (r1 - r0)
    return costs[-1][1]


def rate_floor(costs: list[tuple[float, float]], budget: float, trips: float, h_us: float) -> float:
    """The highest rate R at which R * (C(R) + k h) fits in `budget` CPU seconds per second, C(R)
    mono's CPU per request at R (cost_at): what a split build could carry if each round trip cost
    one futex hand-off and the rest cost what mono's requests cost at the same rate."""
    extra = trips * h_us / 1e6
    lo, hi = 0.0, costs[-1][0]
    for _ in range(60):
        mid = (lo + hi) / 2
        if mid * (cost_at(costs, mid) + extra) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def saturation_report(searches: dict, probes: list[dict], handoff: tuple, handoff_one: tuple, runs: dict,
                      closed_runs: dict, refined: list[dict[str, dict | None]]) -> None:
    """At saturation: each build's open-loop maximum and its CPU per request there; the targets,
    isolate-cache against its floor measured in place (the handoff build, in the search and in the
    closed loop); and beside them what the idle ping-pong predicts.  On cores that the client and
    the server share, throughput is the cores over the CPU time per request, so with every round
    trip costing one hand-off of h, a split build's ratio to mono would be C / (C + k h): C mono's
    CPU per request (server and client), k the build's round trips per request (the runtime's own
    count).  An open loop's request costs more the lower the rate, so there the prediction is the
    highest rate R with R (C(R) + k h) within the CPU mono used at its maximum."""
    h_cpu, h_wall, samples = handoff
    h1_cpu, h1_wall, samples1 = handoff_one
    mono = searches["mono"].good
    log("at saturation (each build's open-loop maximum, from the search):")
    log(f"futex ping-pong (bench/ipc/pingpong.c futex {PINGPONG_ROUNDS}, {PINGPONG_RUNS} runs, idle otherwise): h "
        f"{h_cpu:.2f} us of CPU per round trip, median (runs: " + ", ".join(f"{c:.2f}" for c, _ in samples)
        + f"); {h_wall:.2f} us wall")
    log(f"  the same, both processes kept to one CPU: h1 {h1_cpu:.2f} us of CPU per round trip (runs: "
        + ", ".join(f"{c:.2f}" for c, _ in samples1) + f"); {h1_wall:.2f} us wall")
    log()
    head = (f"{'variant':<14}{'max rate/s':>11}{'vs mono':>8}{'srv cpu us/req':>15}{'loadgen us/req':>15}"
            f"{'total us/req':>13}{'trips/req':>10}{'srv us/trip':>12}{'C/(C+kh)':>9}{'measured/that':>14}"
            f"{'mono us/req':>12}{'rate, h':>9}{'measured/that':>14}{'rate, h1':>9}{'measured/that':>14}")
    log(head)
    log("-" * len(head))
    c_mono = (mono["server_cpu"] + mono["loadgen_cpu"]) / mono["requests"] if mono else None
    costs = mono_costs(probes, runs) if mono else []
    budget = mono["rate"] * c_mono if mono else None     # CPU seconds per second mono used at its maximum
    floors, rate_floors, one_floors = {}, {}, {}
    for v in VARIANTS:
        r = searches[v].good
        if r is None:
            log(f"{v:<14}{'none':>11}  (kept up with no rate down to {SEARCH_FLOOR:.0f}/s)")
            continue
        k = trips_per_request(v, probes, runs)
        total = (r["server_cpu"] + r["loadgen_cpu"]) / r["requests"]
        cells = (f"{v:<14}{r['rate']:>11.0f}" + (f"{r['rate'] / mono['rate']:>8.2f}" if mono else f"{'?':>8}")
                 + f"{1e6 * r['server_cpu'] / r['requests']:>15.1f}{1e6 * r['loadgen_cpu'] / r['requests']:>15.1f}"
                 f"{1e6 * total:>13.1f}{k:>10.2f}")
        if k and c_mono:
            floors[v] = floor_ratio(c_mono, k, h_cpu)
            srv_extra = r["server_cpu"] / r["requests"] - mono["server_cpu"] / mono["requests"]
            rate_floors[v] = rate_floor(costs, budget, k, h_cpu)
            one_floors[v] = rate_floor(costs, budget, k, h1_cpu)
            cells += (f"{1e6 * srv_extra / k:>12.1f}{floors[v]:>9.2f}{r['rate'] / mono['rate'] / floors[v]:>14.2f}"
                      f"{1e6 * cost_at(costs, r['rate']):>12.1f}{rate_floors[v]:>9.0f}{r['rate'] / rate_floors[v]:>14.2f}"
                      f"{one_floors[v]:>9.0f}{r['rate'] / one_floors[v]:>14.2f}")
        log(cells)
    log("  max rate/s: the highest rate the build kept up with in the search (its probe's figures follow);")
    log("  total us/req: server + loadgen CPU per request at that rate; trips/req: channel round trips per")
    log("  request, from the runtime's statistics over all the build's runs (handoff has none: its calls")
    log(f"  are {FLOOR_OF}'s); srv us/trip: its server CPU per request above mono's at mono's maximum, per")
    log("  round trip; C/(C+kh): the ratio to mono if every round trip cost one ping-pong hand-off h, with C")
    log("  mono's total us/req.  mono us/req: mono's server + loadgen CPU per request at the build's max")
    log("  rate, linear between the rates mono kept up with in this run ("
        + ", ".join(f"{rate:.0f}/s {1e6 * c:.1f}" for rate, c in costs) + " us/req);")
    log("  rate, h: the highest rate R with R x (mono us/req at R + trips x h) within the CPU mono used at")
    log("  its maximum" + (f" ({budget:.2f} s/s)" if budget else "") + "; rate, h1: the same with h1.")
    log()
    mono_c, ic_c, hf_c = closed_runs["mono"], closed_runs[FLOOR_OF], closed_runs["handoff"]
    c_closed = (sum(r["server_cpu"] + r["loadgen_cpu"] for r in mono_c)) / sum(r["requests"] for r in mono_c)
    k_closed = per_request(ic_c, "trips")
    rps = {v: statistics.median(r["rps"] for r in rs) for v, rs in closed_runs.items()}
    closed_ratio = rps[FLOOR_OF] / rps["mono"]
    log(f"closed loop (every connection always has a request in flight), medians of {CLOSED_ROUNDS} rounds: mono "
        f"{rps['mono']:.0f} req/s ({1e6 * c_closed:.1f} us of CPU a request, server and client), {FLOOR_OF} "
        f"{rps[FLOOR_OF]:.0f} ({closed_ratio:.2f} of mono; {k_closed:.2f} round trips a request), handoff "
        f"{rps['handoff']:.0f}")
    if k_closed:
        for v, rs in ((FLOOR_OF, ic_c), ("handoff", hf_c)):
            extra = per_request(rs, "server_cpu") + per_request(rs, "loadgen_cpu") - c_closed
            log(f"  {v}: {1e6 * extra / k_closed:.1f} us of CPU (server and client) per round trip above mono's "
                f"per request")
        log(f"  (handoff is the plain build with the hand-offs: plain and mono are the same code; the idle "
            f"ping-pong's h {h_cpu:.2f} and h1 {h1_cpu:.2f} us)")
    log()
    log(f"targets at saturation ({FLOOR_OF} at least {FLOOR_TARGET} of its floor, the handoff build measured in "
        f"this run: the same crossings as bare futex hand-offs on one core, with no copy, protocol or "
        f"supervision):")
    ic, hf = searches[FLOOR_OF].good, searches["handoff"].good
    judged = [r for r in refined if r["handoff"]]   # a round whose floor kept up with nothing judges nothing
    if ic and hf and judged:
        shares = round_ratios(refined, FLOOR_OF, "handoff")
        share = statistics.median(shares)
        log(f"  open loop, the highest rate kept up with: the first search {FLOOR_OF} {ic['rate']:.0f}/s, handoff "
            f"{hf['rate']:.0f}/s, {ic['rate'] / hf['rate']:.2f} (each within {100 * (SEARCH_STEP - 1):.0f}%); "
            f"searched again in {len(refined)} round(s), each within {100 * (REFINE_STEP - 1):.0f}%: "
            + ", ".join((f"{r[FLOOR_OF]['rate']:.0f}" if r[FLOOR_OF] else "none") + "/"
                        + (f"{r['handoff']['rate']:.0f}" if r["handoff"] else "none") for r in refined)
            + f"/s, {listed(shares)}; median {share:.2f}: "
            + ("MET" if share >= FLOOR_TARGET else "MISS")
            + (f" ({len(refined) - len(judged)} round(s) in which handoff kept up with nothing, down to half its "
               f"first maximum, left out)" if len(judged) < len(refined) else ""))
        for a, b, what in CONTROLS:
            x = round_ratios(refined, a, b)
            if x:
                log(f"  {what}, open loop: {a} / {b} in the same rounds {listed(x)}; "
                    f"median {statistics.median(x):.2f}")
    elif ic and hf:
        log(f"  open loop: the first search {FLOOR_OF} {ic['rate']:.0f}/s, handoff {hf['rate']:.0f}/s, "
            f"{ic['rate'] / hf['rate']:.2f}; no verdict: in no round of the searches again did handoff keep up")
    else:
        log("  open loop: not measured (a search found no rate)")
    shares = ratios(ic_c, hf_c, "rps")
    share = statistics.median(shares)
    log(f"  closed loop: {FLOOR_OF} / handoff in the same round {interval_text(shares)}, sorted "
        f"{listed(sorted(shares))}: " + ("MET" if share >= FLOOR_TARGET else "MISS")
        + f"; the whole interval at least {FLOOR_TARGET}: {at_least(shares, FLOOR_TARGET)}")
    for a, b, what in CONTROLS:
        if closed_runs.get(a) and closed_runs.get(b):
            log(f"  {what}, closed loop: {a} / {b} in the same round "
                f"{interval_text(ratios(closed_runs[a], closed_runs[b], 'rps'))}")
    log("the idle ping-pong's predictions, for comparison (its two processes touch nothing but a futex word):")
    if FLOOR_OF in floors:
        log(f"  open loop: {FLOOR_OF}'s maximum {ic['rate'] / rate_floors[FLOOR_OF]:.2f} of the rate with h "
            f"({rate_floors[FLOOR_OF]:.0f}/s), {ic['rate'] / one_floors[FLOOR_OF]:.2f} of the rate with h1 "
            f"({one_floors[FLOOR_OF]:.0f}/s)")
    if k_closed:
        for name, h in (("h", h_cpu), ("h1", h1_cpu)):
            f = floor_ratio(c_closed, k_closed, h)
            log(f"  closed loop: with {name}, C / (C + k h) = {f:.2f}; {FLOOR_OF} / mono = {closed_ratio:.2f}, "
                f"{closed_ratio / f:.2f} of that")


# ---- report ---------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 rounds instead of 5")
    ap.add_argument("--rounds", type=int, help="measured rounds (default 5, --quick 2)")
    ap.add_argument("--threads", type=int, default=8, help="loadgen connections (default 8)")
    ap.add_argument("--requests", type=int, default=25000,
                    help="requests per loadgen thread (default 25000)")
    ap.add_argument("--seconds", type=float, default=60.0,
                    help="loadgen stops sending after this long (default 60)")
    ap.add_argument("--open-loop", action="store_true",
                    help="latency at fixed request rates (loadgen --rate) instead of throughput")
    ap.add_argument("--loads", default="0.25,0.5,0.75",
                    help="with --open-loop: rates as fractions of mono's open-loop maximum "
                         "(default 0.25,0.5,0.75)")
    ap.add_argument("--duration", type=float, default=4.0,
                    help="with --open-loop: seconds of paced load per run (default 4)")
    args = ap.parse_args()
    rounds = args.rounds or ((2 if args.quick else 3) if args.open_loop else (2 if args.quick else 5))
    if rounds < 1 or args.threads < 1 or args.requests < 1 or args.seconds <= 0 or args.duration <= 0:
        ap.error("--rounds, --threads, --requests, --seconds and --duration must be positive")
    try:
        loads = sorted({float(x) for x in args.loads.split(",")})
    except ValueError:
        ap.error(f"--loads: not a list of numbers: {args.loads!r}")
    if not all(0 < x <= 1.5 for x in loads):
        ap.error("--loads: each load must be above 0 and at most 1.5")
    load = ["--threads", str(args.threads), "--requests", str(args.requests),
            "--seconds", f"{args.seconds:g}"]
    warm = ["--threads", str(args.threads), "--requests", str(max(1, args.requests // 10)),
            "--seconds", f"{args.seconds:g}"]

    cmdline = shlex.join([PY, "bench/kvstore.py", *sys.argv[1:]])
    log("kvstore " + ("open-loop latency" if args.open_loop else "throughput")
        + " benchmark (bench/kvstore.py)")
    log()
    log(f"command:   {cmdline}   (in {REPO})")
    log(f"date:      {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or "?"
    log(f"machine:   nproc {nproc} (os.cpu_count {os.cpu_count()}), {cpu_model()}, "
        f"Linux {platform.release()}, {autogroup()}")
    log(f"tools:     {subprocess.run(['gcc', '--version'], capture_output=True, text=True).stdout.splitlines()[0]}; "
        f"Python {platform.python_version()}")
    sources_before = git_describe()
    log(f"sources:   {sources_before}")
    load_before = loadavg()
    if not become_subreaper():
        log("note:      PR_SET_CHILD_SUBREAPER failed; exited domain processes are reaped by init")

    tmp = tempfile.mkdtemp(prefix="bench-kvstore-")
    try:
        log()
        log("build:")
        exes, loadgen, commands = build_all(tmp)

        log()
        log(f"warm-up (untimed, --requests {max(1, args.requests // 10)}) and processes:")
        layout = {}
        warm_rps = {}
        warm_bad = []
        for v in VARIANTS:
            r = serve_and_load(exes[v], loadgen, warm, args.seconds, tmp)
            layout[v] = r["procs"]
            warm_rps[v] = r["rps"]
            bad = problems(r)
            warm_bad += [(v, "warm-up", p) for p in bad]
            log(f"  {v:<14} {len(r['procs'])} process(es): {', '.join(r['procs'])}; "
                f"{r['rps']:.0f} req/s" + (f"; PROBLEM: {'; '.join(bad)}" if bad else ""))

        if args.open_loop:
            log()
            log(f"closed loop, {', '.join(CLOSED)} (loadgen {' '.join(load)}, {CLOSED_ROUNDS} rounds, the order "
                f"balanced):")
            closed_runs = closed_loop_runs(exes, loadgen, load, args.seconds, tmp)
            closed = statistics.median(r["rps"] for r in closed_runs["mono"])
            log()
            handoff, handoff_one = futex_handoff(tmp), futex_handoff(tmp, one_cpu=True)
            log(f"futex hand-off (bench/ipc/pingpong.c futex {PINGPONG_ROUNDS}, {PINGPONG_RUNS} runs): "
                f"{handoff[0]:.2f} us of CPU per round trip (median); both processes kept to one CPU: "
                f"{handoff_one[0]:.2f} us")
            log()
            log(f"each build's open-loop maximum (loadgen --threads {args.threads} --rate R, about "
                f"{SEARCH_SECONDS:g} s per probe; kept up: achieved >= {KEEP_UP_SHARE:.0%} of R and "
                f"p50 <= {KEEP_UP_P50_MS:g} ms; first guess half the closed loop's rate):")
            guesses = {v: max(SEARCH_FLOOR, round(0.5 * (closed if v == "mono" else warm_rps[v]), -2))
                       for v in VARIANTS}
            probes: list[dict] = []
            searches = search_maxima(exes, loadgen, args.threads, tmp, {v: Search(guesses[v]) for v in VARIANTS},
                                     probes)
            if searches["mono"].good is None:
                raise Failure("mono kept up with no rate in the search")
            refined = []
            if searches[FLOOR_OF].good and searches["handoff"].good:
                log()
                log(f"{FLOOR_OF}'s and handoff's maxima again, with {AGAIN} and {REMOTE}, {rounds} rounds (each "
                    f"from its first maximum, by {100 * (REFINE_GROW - 1):.0f}% until bracketed, then to within "
                    f"{100 * (REFINE_STEP - 1):.0f}%; the four in lockstep, in a balanced order):")
                refined = refine_maxima(exes, loadgen, args.threads, tmp, searches, probes, rounds)
            top = searches["mono"].good["rate"]
            rates = {x: x * top for x in loads}
            log()
            log(f"measured runs (loadgen --threads {args.threads} --rate L*{top:.0f}, mono's open-loop "
                f"maximum; about {args.duration:g} s each):")
            open_runs = open_loop_runs(args, exes, loadgen, tmp, loads, rounds, rates)
            equal = equal_utilization_runs(args, exes, loadgen, tmp, rounds, rates, searches)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(e, Failure):
            raise
        log(f"\nFAILED: {e}")
        return 2
    if args.open_loop:
        shutil.rmtree(tmp, ignore_errors=True)
        log()
        log("builds:")
        for c in commands:
            log(f"  {c}")
        if git_describe() != sources_before:
            log("note:      the repository moved during the run; the executables measured were built "
                "and copied at the start")
        log(f"load:      build/tools/loadgen --threads {args.threads} --rate <load x {top:.0f}> "
            f"--requests <{args.duration:g} s worth per connection> --seconds {2 * args.duration:g} "
            f"(a driver thread per connection; set-ratio 0.2, keys 1000)")
        log(f"maximum:   mono keeps up with {top:.0f} requests/s as an open loop (its closed loop reaches "
            f"{closed:.0f} in this run); the loads are fractions of {top:.0f}")
        limited = sum(r["limited"] for rs in open_runs.values() for r in rs)
        log(f"rounds:    {rounds}; loads {', '.join(f'{x:g}' for x in loads)} of mono's maximum; a "
            f"balanced order (Williams); fresh server per run; "
            + (f"{limited} run(s) stopped by --seconds before sending all requests" if limited
               else "every run sent all its requests"))
        log(f"load avg:  1-min {load_before} before, {loadavg()} after")
        log()
        bad = warm_bad + open_loop_report(args, open_runs, loads, rates, layout)
        bad += [(v, f"load 0.50 round {r['round'] + 1}", p) for v in (AGAIN, REMOTE)
                for r in open_runs.get((0.5, v), []) for p in problems(r)]
        bad += [(r["variant"], f"search at {r['rate']:.0f}/s", p) for r in probes for p in problems(r)]
        if equal is not None:
            bad += [(v, "equal utilization", p) for v in ("mono", "isolate-cache") for r in equal[v]
                    for p in problems(r)]
        log()
        saturation_report(searches, probes, handoff, handoff_one, open_runs, closed_runs, refined)
        equal_utilization_report(equal, open_runs)
        p99_floor_report(open_runs, rates, searches, refined, args.duration)
        log()
        if bad:
            for v, rnd, p in bad:
                log(f"PROBLEM: {v}, {rnd}: {p}")
            log("outcome: some runs failed (see above); the numbers are not valid")
            return 1
        log("outcome: every request of every run answered correctly; every server exited 0 and left "
            "no process")
        return 0
    try:
        log()
        log(f"measured runs (loadgen {' '.join(load)}):")
        runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        for i in range(rounds):
            order = rotated(VARIANTS, i)
            for v in order:
                r = serve_and_load(exes[v], loadgen, load, args.seconds, tmp)
                r["round"] = i
                r["limited"] = r["requests"] < args.threads * args.requests
                runs[v].append(r)
                bad = problems(r)
                log(f"  round {i + 1}/{rounds}  {v:<14} {r['rps']:>9.0f} req/s  {r['requests']:>7} requests"
                    f" in {r['seconds']:6.2f} s  errors {r['errors']}  server cpu "
                    f"{r['server_cpu']:.2f} s ({r['server_sys']:.2f} s system), "
                    f"{r['server_switches']} context switches  loadgen cpu {r['loadgen_cpu']:.2f} s"
                    + run_remarks(r, bad))

        log()
        log("call counting (untimed, plain build with -Wl,--wrap counters, same load):")
        per_request = count_calls(exes.get("counting"), tmp, loadgen, load, args.seconds)
        if per_request:
            log("  calls per request: " + ", ".join(f"{k} {v:.2f}" for k, v in per_request.items()))
    except Failure as e:
        log(f"\nFAILED: {e}")
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    load_after = loadavg()
    sources_after = git_describe()
    medians = {v: statistics.median(r["rps"] for r in runs[v]) for v in VARIANTS}
    base = medians["mono"]

    def per_round(v: str, ref: str) -> list[float]:
        return [a["rps"] / b["rps"] for a, b in zip(runs[v], runs[ref])]

    log()
    log("builds:")
    for c in commands:
        log(f"  {c}")
    if sources_after != sources_before:
        log(f"note:      the repository moved to {sources_after} during the run; the executables measured "
            f"were built and copied at the start")
    log(f"load:      build/tools/loadgen {' '.join(load)} (set-ratio 0.2, keys 1000: loadgen's defaults)")
    limited = sum(r["limited"] for v in VARIANTS for r in runs[v])
    log(f"rounds:    {rounds}; order rotates each round; fresh server per run; "
        + (f"{limited} run(s) stopped by --seconds before sending all requests" if limited
           else "every run sent all its requests"))
    log(f"load avg:  1-min {load_before} before, {load_after} after (the load average counts runnable "
        f"threads: the benchmark's own raise it)")
    log()
    head = (f"{'variant':<14}{'procs':>6}{'median rps':>11}{'min rps':>9}{'max rps':>9}{'vs mono':>8}"
            f"{'per round':>11}{'errors':>7}{'srv cpu us/req':>15}{'(system)':>9}{'srv cs/req':>11}"
            f"{'loadgen cpu us/req':>19}{'crossings/req':>14}{'trips/req':>10}")
    log(head)
    log("-" * len(head))
    for v in VARIANTS:
        rps = [r["rps"] for r in runs[v]]
        ratios = per_round(v, "mono")
        reqs = sum(r["requests"] for r in runs[v])
        srv = 1e6 * sum(r["server_cpu"] for r in runs[v]) / reqs
        srv_sys = 1e6 * sum(r["server_sys"] for r in runs[v]) / reqs
        switches = sum(r["server_switches"] for r in runs[v]) / reqs
        lg = 1e6 * sum(r["loadgen_cpu"] for r in runs[v]) / reqs
        errors = sum(r["errors"] for r in runs[v])
        cross = crossings(v, per_request) if per_request else None
        log(f"{v:<14}{len(layout[v]):>6}{medians[v]:>11.0f}{min(rps):>9.0f}{max(rps):>9.0f}"
            f"{medians[v] / base:>8.2f}{f'{min(ratios):.2f}-{max(ratios):.2f}':>11}{errors:>7}"
            f"{srv:>15.1f}{srv_sys:>9.1f}{switches:>11.1f}{lg:>19.1f}"
            + (f"{cross[0]:>14.2f}{cross[1]:>10.2f}" if cross else f"{'?':>14}{'?':>10}"))
    log("  procs: processes the server runs as.  per round: the range of rps / mono's rps of the same round.")
    log("  cpu us/req: CPU time (user+system; system alone in brackets) over all runs of the variant divided")
    log("  by its requests; server = main process + domain processes, loadgen = the client.  srv cs/req: the")
    log("  server's context switches (voluntary + involuntary, all processes) per request.  crossings/req:")
    log("  calls whose caller and callee run in different processes (from the call counts); trips/req: the")
    log("  channel round trips they take (a call between two domains is relayed by the main process: 2).")

    log()
    log("targets:")
    mp = per_round("mono", "plain")
    mp_med = medians["mono"] / medians["plain"]
    # Noise: the larger relative spread (max - min) / median of plain's and mono's own runs.
    noise = max((max(r["rps"] for r in runs[v]) - min(r["rps"] for r in runs[v])) / medians[v]
                for v in ("plain", "mono"))
    within = min(mp) <= 1.0 <= max(mp) or abs(mp_med - 1.0) <= noise
    log(f"  mono/plain          {mp_med:.2f} (per round {min(mp):.2f}-{max(mp):.2f}; noise, the larger "
        f"spread of plain's and mono's own runs: {100 * noise:.1f}%): "
        + ("within noise of 1.00" if within else "NOT within noise of 1.00"))
    ic = medians["isolate-cache"] / base
    log(f"  isolate-cache/mono  {ic:.2f}: " + ("met (>= 0.95)" if ic >= 0.95 else "MISSED (target >= 0.95)"))
    hf = medians[FLOOR_OF] / medians["handoff"]
    log(f"  {FLOOR_OF}/handoff {hf:.2f} (per round {min(per_round(FLOOR_OF, 'handoff')):.2f}-"
        f"{max(per_round(FLOOR_OF, 'handoff')):.2f}): against its floor, the same crossings as bare futex "
        f"hand-offs, " + (f"at least {FLOOR_TARGET}" if hf >= FLOOR_TARGET else f"BELOW {FLOOR_TARGET}"))
    log(f"  isolate-all/mono    {medians['isolate-all'] / base:.2f} (no target)")
    if per_request:
        mono_cpu = sum(r["server_cpu"] for r in runs["mono"]) / sum(r["requests"] for r in runs["mono"])
        for v in ("isolate-cache", "isolate-all"):
            trips = crossings(v, per_request)[1]
            cpu = sum(r["server_cpu"] for r in runs[v]) / sum(r["requests"] for r in runs[v])
            if trips:
                log(f"  {v}: {1e6 * (cpu - mono_cpu):.1f} us more server CPU per request than mono, "
                    f"{1e6 * (cpu - mono_cpu) / trips:.1f} us per round trip")

    bad = warm_bad + [(v, f"round {r['round'] + 1}", p) for v in VARIANTS for r in runs[v]
                      for p in problems(r)]
    log()
    if bad:
        for v, rnd, p in bad:
            log(f"PROBLEM: {v}, {rnd}: {p}")
        log("outcome: some runs failed (see above); the numbers are not valid")
        return 1
    log("outcome: every request of every run answered correctly; every server exited 0 and left no process")
    return 0


if __name__ == "__main__":
    run_servers_main(main)
