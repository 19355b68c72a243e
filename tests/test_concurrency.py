"""Many threads, calls in flight during a crash, descriptors, and the main process's own fate.

tests/programs/pool has a component `pool` that many threads call at once; app.c picks a scenario
from its arguments and prints one fact a line, each answer checked in C.  error.yaml isolates
`pool` with on_fault: error (fault_value -7), retry.yaml with on_fault: retry.  Every wait in the
C program is bounded (barriers, condition variables with deadlines) and every run here has a
subprocess timeout, so a runtime that deadlocks fails a test instead of hanging the suite.
"""

import glob
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from procs import live_processes, wait_for_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")
PLANS = ("error", "retry")
DOMAIN_EXE = "pool-pool_iso"


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    work = tmp_path_factory.mktemp("pool") / "pool"
    shutil.copytree(os.path.join(ROOT, "tests", "programs", "pool"), work)
    for args in ([], *([f"ISOLATE={plan}.yaml"] for plan in PLANS)):
        proc = subprocess.run([SCONS, "-Q", *args], cwd=work, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return work


def _pause(seconds):
    select.select([], [], [], seconds)


def _live_domains(work):
    """Domain processes of this program's builds that are still alive (zombies do not count)."""
    prefix = os.path.realpath(work)
    return live_processes(lambda exe: exe.endswith(DOMAIN_EXE) and os.path.realpath(exe).startswith(prefix))


def _domains_gone(work, deadline_s=5):
    """A domain is killed when its program ends; give the kernel a bounded moment to finish it."""
    end = time.monotonic() + deadline_s
    while _live_domains(work) and time.monotonic() < end:
        _pause(0.02)
    return _live_domains(work) == []


def _wait_for_report(directory, deadline_s=10):
    """The watcher writes the report once the program is gone: wait for the file, with a limit."""
    return wait_for_files(directory / "crash-*.json", deadline_s)


def _crash_reports(directory):
    files = sorted(glob.glob(str(directory / "*")))
    assert not [f for f in files if not f.endswith(".json")], "a report was left half-written"
    docs = []
    for f in files:
        if os.path.basename(f).startswith("crash-"):
            with open(f) as fh:
                docs.append(json.load(fh))
    return docs


def run(pool, variant, *args, reports, timeout=60, pass_fds=()):
    """Runs build/<variant>/pool; returns (returncode, stdout lines, crash reports, stderr)."""
    proc = subprocess.run([str(pool / "build" / variant / "pool"), *args], capture_output=True, text=True,
                          timeout=timeout, pass_fds=pass_fds,
                          env={**os.environ, "QPM_REPORT_DIR": str(reports)})
    docs = _crash_reports(reports)
    assert _domains_gone(pool), "a domain process outlived its program"
    return proc.returncode, proc.stdout.splitlines(), docs, proc.stderr


def _frame(report, function):
    return next((f for f in report["backtrace"] if f["function"] == function), None)


# 1. A pool of a thousand live threads.

@pytest.mark.parametrize("variant", ["mono", "error"])
def test_a_thousand_threads_calling_at_once_all_get_their_answers(pool, tmp_path, variant):
    # 1000 threads with 64 KiB stacks wait at a barrier, so all are alive together, then each
    # makes 20 calls f(x) = 3x + 1 with its own arguments; the C side checks every answer.
    rc, out, reports, err = run(pool, variant, "pool", "1000", "20", reports=tmp_path, timeout=120)
    assert rc == 0, err
    assert out == ["threads 1000", "correct 20000 of 20000"], err
    assert reports == []


def test_a_thousand_calls_are_inside_the_domain_at_the_same_time(pool, tmp_path):
    # Each of 1000 calls blocks inside the domain until all 1000 have arrived there (or 30 s have
    # passed): a runtime that made one call wait for another to end could not meet this.
    rc, out, reports, err = run(pool, "error", "rendezvous", "1000", reports=tmp_path, timeout=120)
    assert rc == 0, err
    assert out == ["met 1000 of 1000"], err
    assert reports == []


def test_a_crash_among_a_thousand_callers_fails_only_the_culprit(pool, tmp_path):
    # Thread 0 makes one extra call, pool_crash, halfway through its 20 while the other 999 threads
    # are calling: that call gets the fault_value, every one of the 20000 others its right answer.
    rc, out, reports, err = run(pool, "error", "poolcrash", "1000", "20", reports=tmp_path, timeout=120)
    assert rc == 0, err
    assert out == ["threads 1000", "correct 20000 of 20000", "culprit -7"], err
    assert [(r["function"], r["outcome"]) for r in reports] == [("pool_crash", "restarted")]


# 2. Innocent calls in flight while another call crashes the domain.

SLOW = [f"slow {x} {3 * x + 1}" for x in range(100, 108)]


def test_innocent_calls_in_flight_are_reissued_and_the_culprit_gets_fault_value(pool, tmp_path):
    # Eight pool_slow calls have entered the domain (it says so) and wait there when pool_crash
    # kills it: the culprit gets -7, the eight are re-issued on the fresh process and return
    # their own answers.
    rc, out, reports, err = run(pool, "error", "innocent", "crash", reports=tmp_path)
    assert rc == 0, err
    assert out == ["entered 8", "culprit -7", "release 1", *SLOW, "restarted 1"], err
    (r,) = reports
    assert (r["domain"], r["function"], r["signal"], r["outcome"]) == ("pool_iso", "pool_crash", "SIGSEGV",
                                                                     "restarted")
    top = _frame(r, "pool_crash")
    assert top is not None and top["component"] == "pool", r["backtrace"]


def test_innocent_calls_in_flight_survive_a_retried_culprit(pool, tmp_path):
    # Under retry, the culprit crashes once (it leaves a marker) and its re-issued call succeeds:
    # it gets its own answer, and so do the eight calls that were in flight beside it.
    rc, out, reports, err = run(pool, "retry", "innocent", "flaky", str(tmp_path / "marker"),
                                reports=tmp_path / "r")
    assert rc == 0, err
    assert out == ["entered 8", "culprit 16", "release 1", *SLOW, "restarted 1"], err
    assert [(r["function"], r["outcome"]) for r in reports] == [("pool_flaky", "restarted")]


# 3. Descriptors of a domain at its first start and after a restart.

def _domain_fds(out, when):
    fds = {}
    for line in out:
        if line.startswith(when + " "):
            fd, _, target = line[len(when) + 1:].partition("=")
            fds[int(fd)] = target
    return fds


def test_a_domain_holds_no_descriptor_of_the_program_before_or_after_a_restart(pool, tmp_path):
    # The program starts with a pipe, a socket and a file inherited without O_CLOEXEC, and opens
    # 20 more (pipes, /dev/null, sockets, socket pairs) before the domain is restarted: the domain
    # has 0, 1, 2, its shared-memory memfd and its end of the socket that QPM_FD descriptors travel
    # over, the first time and after the restart (a fresh socket, at the same number).
    r, w = os.pipe()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        rc, out, reports, err = run(pool, "error", "fds", reports=tmp_path, pass_fds=(r, w, sock.fileno(), null))
    finally:
        os.close(r)
        os.close(w)
        os.close(null)
        sock.close()
    assert rc == 0, err
    assert "main opened 20 inheritable 20" in out
    assert "crash -7" in out and "restarted 1" in out, out
    first, after = _domain_fds(out, "first"), _domain_fds(out, "after")
    for fds in (first, after):
        extra = sorted(target for fd, target in fds.items() if fd > 2)
        assert len(extra) == 2, f"the domain holds more than its memfd and its socket: {fds}"
        assert extra[0].startswith("/memfd:") and extra[1].startswith("socket:"), fds
        assert {0, 1, 2} <= set(fds), fds
        assert len(fds) <= 5, fds
    assert set(first) == set(after), (first, after)
    assert first[max(first)] != after[max(after)], "the restarted domain got the socket of the first"
    assert [rep["function"] for rep in reports] == ["pool_crash"]


# 4. main() calls pthread_exit while other threads go on calling.

def test_pthread_exit_in_main_leaves_the_workers_calling_and_ends_cleanly(pool, tmp_path):
    # Worker 0 joins the main thread, so all 4 workers make their 200 calls each after main() has
    # gone.  The program ends by itself with status 0 when the last worker ends.
    rc, out, reports, err = run(pool, "error", "exitmain", reports=tmp_path, timeout=60)
    assert rc == 0, err
    assert out[:2] == ["main leaves", "main joined 0"], out
    assert sorted(out[2:]) == [f"worker {i} ok 200 same process 1" for i in range(4)], err
    assert reports == [], "a crash was reported"
    assert "quarantine" not in err, err


# 5. A monolithic build that crashes in its first millisecond.

@pytest.mark.parametrize("attempt", range(5))
def test_a_monolithic_crash_at_the_start_of_main_is_reported(pool, tmp_path, attempt):
    done = subprocess.run([str(pool / "build" / "mono" / "pool"), "early"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "QPM_REPORT_DIR": str(tmp_path)})
    assert done.returncode == -signal.SIGSEGV, done.stderr
    (path,) = _wait_for_report(tmp_path)
    with open(path) as f:
        r = json.load(f)
    assert (r["schema"], r["program"], r["plan"], r["domain"]) == ("qpm.crash/1", "pool", None, "main")
    assert (r["signal"], r["outcome"]) == ("SIGSEGV", "program died")
    frames = [(f["function"], f.get("component")) for f in r["backtrace"]]
    assert frames[:2] == [("app_early_crash", "app"), ("main", "app")], frames


# 6. The main process of a split build crashes.

def test_a_crash_of_the_split_main_process_is_reported_and_takes_its_domain_along(pool, tmp_path):
    done = subprocess.run([str(pool / "build" / "error" / "pool"), "maincrash"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "QPM_REPORT_DIR": str(tmp_path)})
    assert done.returncode == -signal.SIGSEGV, done.stderr
    assert done.stdout.splitlines() == ["call 7"]
    (path,) = _wait_for_report(tmp_path)
    with open(path) as f:
        r = json.load(f)
    assert (r["schema"], r["program"], r["plan"]) == ("qpm.crash/1", "pool", "error.yaml")
    assert (r["domain"], r["signal"], r["outcome"]) == ("main", "SIGSEGV", "program died")
    top = _frame(r, "main")
    assert top is not None and top["component"] == "app", r["backtrace"]
    assert _domains_gone(pool), "a domain process outlived its crashed program"


# 7. A crash on a domain thread that serves no call.

def test_a_crash_on_a_thread_serving_no_call_blames_every_call_in_flight(pool, tmp_path):
    # pool_thread_crash starts a thread that dereferences NULL and joins it; two pool_slow calls
    # are in flight at that moment.  No one call is the culprit: all three are, and each gets -7.
    rc, out, reports, err = run(pool, "error", "threadcrash", reports=tmp_path)
    assert rc == 0, err
    assert out == ["entered 2", "culprit -7", "release 1", "slow 100 -7", "slow 101 -7", "after 16",
                   "restarted 1"], err
    (r,) = reports
    assert (r["domain"], r["function"], r["signal"], r["outcome"]) == ("pool_iso", None, "SIGSEGV", "restarted")
    assert r.get("blame") == "every call in flight", r
    top = _frame(r, "crasher")
    assert top is not None and top["component"] == "pool", r["backtrace"]


def test_more_callers_than_channels_wait_their_turn_and_steal_idle_channels(pool, tmp_path):
    """With the domain held to 4 channels (QRT_CHANNELS), 200 threads calling at once take idle
    channels from each other and wait for busy ones: every call is answered, nobody deadlocks."""
    proc = subprocess.run([str(pool / "build" / "error" / "pool"), "pool", "200", "20"], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "QPM_REPORT_DIR": str(tmp_path), "QRT_CHANNELS": "4"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["threads 200", "correct 4000 of 4000"], proc.stderr
    assert not list(tmp_path.glob("crash-*.json"))


def test_a_crash_blames_the_call_not_the_channel_it_ran_on(pool, tmp_path):
    """With 2 channels, the culprit's channel is taken by another thread's call at once: that
    call is innocent (it is issued again), only the crashing call gets the fault value."""
    proc = subprocess.run([str(pool / "build" / "error" / "pool"), "poolcrash", "100", "30"], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "QPM_REPORT_DIR": str(tmp_path), "QRT_CHANNELS": "2"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-2:] == ["correct 3000 of 3000", "culprit -7"], proc.stdout


# 5. Where the component's thread runs.

@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_a_sleeping_serving_thread_follows_its_caller_to_its_cpu(pool, tmp_path):
    # main keeps to one CPU, then to another, and calls the component 40 times on each, 1 ms
    # apart, so that the serving thread sleeps before each call; the component answers with the
    # CPU it ran on.  Woken by its caller, the thread moves to the caller's CPU and keeps to it:
    # every call after the first on each CPU should run there (two strays allowed, for the
    # first and for a scheduler's whim).
    rc, out, reports, err = run(pool, "error", "follow", "40", reports=tmp_path)
    assert rc == 0, err
    assert len(out) == 2, out
    for k, line in enumerate(out):
        prefix = f"cpu {k}: "
        assert line.startswith(prefix) and line.endswith(" of 40 on main's cpu"), line
        assert int(line[len(prefix):].split()[0]) >= 38, out
    assert reports == []


def _busy(pool, tmp_path, us):
    """100 calls from main kept to one CPU with `us` microseconds of work between them, once the
    serving thread keeps to it: (calls it served on main's CPU, calls it served kept to one CPU)."""
    rc, out, reports, err = run(pool, "error", "busy", "100", str(us), reports=tmp_path)
    assert rc == 0, out + [err]
    m = re.fullmatch(r"(\d+) of 100 on main's cpu, (\d+) kept to one", out[0]) if len(out) == 1 else None
    assert m, out
    return int(m[1]), int(m[2])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_a_serving_thread_stays_on_its_callers_cpu_while_the_caller_works_between_calls(pool, tmp_path):
    # 5 us of work (not sleep) between calls: the serving thread, which sees the switches too
    # (some 10 us a call apart), must not take that for a loop of calls and leave main's CPU.
    same, kept = _busy(pool, tmp_path, 5)
    assert same >= 95 and kept >= 90, (same, kept)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_a_serving_thread_leaves_its_callers_cpu_for_calls_back_to_back(pool, tmp_path):
    # Calls back to back: after a few on main's CPU, the serving thread lets go of it (it may run
    # anywhere, for its next 256 calls), so that it can answer from the other core while main
    # runs.  Where it then runs is the scheduler's business (on a machine whose other core is busy
    # it may be main's), so what counts is that it let go.
    same, kept = _busy(pool, tmp_path, 0)
    assert kept <= 10, (same, kept)
