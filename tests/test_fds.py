"""QPM_FD end to end (SPEC §2): file descriptors across the boundary, in every direction.

tests/programs/fds hands writer_iso main's sockets and pipes, gets pipes and files back from it,
has the writer call main with a descriptor and get one from main, and relays relay_iso's calls to
the writer (descriptors and all) through main.  It counts main's descriptors (/proc/self/fd)
and the writer's before and after.  A hostile writer (tests/programs/hostile/fd_transport.c)
lies about the descriptors it sends, against a main process built with the sanitizers.
"""

import glob
import json
import os
import shutil
import subprocess

import pytest

from builds import SANITIZE, build_program, scons, write_sanitized_sconstruct
from procs import live_processes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME = os.path.join(ROOT, "runtime")


@pytest.fixture(scope="module")
def fds(tmp_path_factory):
    return build_program(tmp_path_factory, "fds", "split.yaml")


def _run(exe, *args, reports, env=None):
    env = {**os.environ, "QPM_REPORT_DIR": str(reports), "QPM_STATS_INTERVAL_S": "3600", **(env or {})}
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120, env=env)
    assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr
    assert _live_domains() == [], "a domain process outlived its program"
    return proc


def _reports(directory):
    return [json.load(open(p)) for p in sorted(glob.glob(os.path.join(str(directory), "crash-*.json")))]


def _live_domains():
    return live_processes(lambda exe: os.path.basename(exe).startswith("fds-"))


SEQUENCE = [
    "send 5 got hello",                       # main's socket, written by the writer
    "drain 9 from main",                      # main's pipe, read to its end by the writer
    "pipe from writer",                       # the writer's pipe, read by main
    "open f file text",                       # a file the writer opened, read by main
    "none -1 kind n send -1 -1 closed -1",    # -1 crosses as itself; a closed number fails the call
    "echo p echo",                            # a descriptor that comes back as the result
    "log 6 logged show 5 shown",              # the writer calls main: gets one, passes one
    "relay send 7 got relayed",               # relay_iso -> main -> writer_iso, with main's socket
    "relay pipe relayed pipe",                # the writer's pipe back to relay_iso, then to main
    "kinds s p",                              # the receiver's descriptor is the same kind of file
    "failures 0",                             # ... and 300 rounds more
    "main fds stable",
    "writer fds stable",
]


def test_split_gives_the_monolithic_result(fds, tmp_path):
    mono = _run(fds / "build" / "mono" / "fds", reports=tmp_path / "mono")
    split = _run(fds / "build" / "split" / "fds", reports=tmp_path / "split")
    assert mono.returncode == 0 and split.returncode == 0, split.stderr
    assert split.stdout == mono.stdout
    assert mono.stdout.splitlines() == SEQUENCE
    assert _reports(tmp_path / "split") == [], split.stderr


def test_monolithic_build_has_no_trace_of_descriptors(fds):
    """QPM_FD costs nothing whole: the monolithic build calls directly, while the split build's
    stubs and dispatchers pass descriptors."""
    mono = (fds / "build" / "mono" / "fds.qpm" / "mono.c").read_text()
    assert "qrt_put_fd" not in mono and "qrt_get_fd" not in mono
    split = (fds / "build" / "split" / "fds.qpm" / "main.c").read_text()
    assert "qrt_put_fd(&qpm__c.args, sock, 0);" in split          # main's stub of writer_send
    assert "qrt_put_fd(qpm__out, qpm__ret, 1);" in split           # main's dispatcher of app_sink


def test_descriptors_from_sixteen_threads_at_once(fds, tmp_path):
    proc = _run(fds / "build" / "split" / "fds", "threads", "16", "100", reports=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["threads 16 failures 0 crashed 0", "main fds stable", "writer fds stable"]
    assert _reports(tmp_path) == []


def test_a_crash_amid_descriptor_calls_restarts_and_leaks_nothing(fds, tmp_path):
    """One thread's calls crash the writer (retried once, then the fault value) while 15 others
    pass and get descriptors: every other call is re-issued and right, and main holds no more
    descriptors after the ten crashes than before."""
    proc = _run(fds / "build" / "split" / "fds", "crash", "16", "100", reports=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["threads 16 failures 0 crashed 10", "main fds stable", "writer fds stable"]
    reports = _reports(tmp_path)
    assert len(reports) == 20
    assert {(r["function"], r["signal"], r["outcome"], r["blame"]) for r in reports} == {
        ("writer_crash", "SIGSEGV", "restarted", "culprit")}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """fds split, main built with the sanitizers, its writer domain replaced by one that lies
    about descriptors (EVIL_FD)."""
    work = tmp_path_factory.mktemp("hostile-fds") / "fds"
    shutil.copytree(os.path.join(ROOT, "tests", "programs", "fds"), work)
    write_sanitized_sconstruct(work, "fds")
    scons(work, "ISOLATE=split.yaml")
    out = work / "build" / "split"
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", "-pthread", "-I", RUNTIME,
                    "-I", os.path.join(ROOT, "clang_attrs"), "-I", str(work),
                    str(out / "fds.qpm" / "writer_iso.c"), str(work / "writer.c"),
                    os.path.join(ROOT, "tests", "programs", "hostile", "fd_transport.c"),
                    *(os.path.join(RUNTIME, n) for n in ("process.c", "wire.c", "report.c", "stats.c")),
                    "-o", str(out / "fds-writer_iso")], check=True)
    return out / "fds"


@pytest.mark.parametrize("lie", ["none", "seq", "slot", "count", "many", "garbage", "flood"])
def test_descriptors_a_domain_lies_about_fault_its_own_calls_only(hostile, lie, tmp_path):
    """Its results and its calls into main carry descriptors it lies about: each such call is a
    bad message (the domain is killed, the call retried, then it gets the fault value), main
    closes whatever came, and its calls without descriptors go on working."""
    proc = _run(hostile, "hostile", reports=tmp_path, env={"EVIL_FD": lie})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == (["pipe faulted"] * 5 + ["show faulted"] * 5 +
                                        ["without descriptors back: ok", "main fds stable", "writer fds stable"])
    reports = _reports(tmp_path)
    assert [r["signal"] for r in reports] == ["bad message"] * 20
    assert sorted(r["function"] for r in reports) == ["writer_pipe"] * 10 + ["writer_show"] * 10


def test_descriptors_no_message_asks_for_are_closed(hostile, tmp_path):
    """Besides the real descriptors, the domain sends more: for its channel's other calls, for
    the channels of other calls in flight, for no channel, with counts that disagree.  Every call
    gets its own, from eight threads at once, and main keeps none of the rest."""
    proc = _run(hostile, "hostile", "8", reports=tmp_path, env={"EVIL_FD": "extra"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == (["pipe lie"] * 5 + ["show shown"] * 5 +
                                        ["without descriptors back: ok", "threads 8 right 160 faulted 0",
                                         "crash -1", "main fds stable", "writer fds stable"])
    assert [(r["function"], r["signal"]) for r in _reports(tmp_path)] == [("writer_crash", "SIGSEGV")] * 2
