"""Fault containment end to end: real crashes and hangs inside an isolated component.

tests/programs/faults has a component that dereferences NULL, aborts, overflows its stack or
deadlocks on request; each plan in that directory applies another on_fault policy.
"""

import glob
import json
import os
import select
import shutil
import signal
import subprocess
import sys

import pytest

from procs import live_processes, wait_for_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")
PLANS = ("retry", "error", "abort", "escalate", "escalate70")


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    work = tmp_path_factory.mktemp("faults") / "faults"
    shutil.copytree(os.path.join(ROOT, "tests", "programs", "faults"), work)
    for plan in PLANS:
        proc = subprocess.run([SCONS, "-Q", f"ISOLATE={plan}.yaml"], cwd=work, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return work


def _live_domains():
    return live_processes(lambda exe: exe.endswith("faults-faulty_iso"))


def run(faults, plan, *args, reports):
    """Runs the program of one plan; returns (returncode, stdout lines, reports, stderr)."""
    proc = subprocess.run([str(faults / "build" / plan / "faults"), *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "QPM_REPORT_DIR": str(reports)})
    files = sorted(glob.glob(str(reports / "*")))
    assert not [f for f in files if not f.endswith(".json")], "a report was left half-written"
    docs = [json.load(open(f)) for f in files if os.path.basename(f).startswith("crash-")]
    assert _live_domains() == [], "a domain process outlived its program"
    return proc.returncode, proc.stdout.splitlines(), docs, proc.stderr


SCENARIOS = {
    "null": ("faulty_null", "SIGSEGV"),
    "abort": ("faulty_abort", "SIGABRT"),
    "overflow": ("faulty_overflow", "SIGSEGV"),
    "deadlock": ("faulty_deadlock", "hang"),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_fault_is_contained_restarted_and_reported(faults, tmp_path, scenario):
    function, sig = SCENARIOS[scenario]
    rc, out, reports, err = run(faults, "error", scenario, reports=tmp_path)
    # on_fault: error returns the plan's fault_value; the component restarted, QPM_INIT ran again.
    assert rc == 0, err
    assert out == ["result -7", "after 2", "inits 1", "restarted 1"]
    (r,) = reports
    assert r["schema"] == "qpm.crash/1"
    assert (r["program"], r["plan"], r["domain"], r["components"]) == ("faults", "error.yaml", "faulty_iso", ["faulty"])
    assert (r["function"], r["signal"], r["outcome"]) == (function, sig, "restarted")
    assert isinstance(r["recovery_ms"], (int, float)) and 0 < r["recovery_ms"] < 5000
    assert r["host"] and r["time"].endswith("Z")
    # A hung thread is asked for its backtrace before its domain is killed: both kinds name the
    # function where it happened.
    top = next(f for f in r["backtrace"] if f["function"] == function)
    assert top["component"] == "faulty"
    assert top["file"].endswith("faulty.c") and top["line"] > 0


@pytest.mark.parametrize("how", ["proc", "loop", "closefrom", "range"])
def test_a_program_that_closes_every_descriptor_keeps_its_domains(faults, tmp_path, how):
    # Daemons close what they inherit at start-up; the runtime's descriptors stay open (the
    # program's own are closed), so the domain still answers, its crash is still seen, reported
    # and recovered from, and the program still ends.
    rc, out, reports, err = run(faults, "error", "closeall", how, reports=tmp_path)
    assert rc == 0, err
    assert out == ["closed 1 1", "result -7", "after 2", "inits 1", "restarted 1"]
    (r,) = reports
    assert (r["function"], r["signal"], r["outcome"]) == ("faulty_null", "SIGSEGV", "restarted")


def test_retry_reissues_the_call_once_on_the_fresh_process(faults, tmp_path):
    rc, out, reports, err = run(faults, "retry", "flaky", str(tmp_path / "marker"), reports=tmp_path / "r")
    assert rc == 0, err
    assert out == ["result 42", "after 2", "inits 1", "restarted 1"]
    assert [r["function"] for r in reports] == ["faulty_flaky"]


def test_retry_that_faults_again_fails_like_error(faults, tmp_path):
    rc, out, reports, err = run(faults, "retry", "null", reports=tmp_path)
    assert rc == 0, err
    assert out == ["result 0", "after 2", "inits 1", "restarted 1"]      # no fault_value: zero
    assert [r["outcome"] for r in reports] == ["restarted", "restarted"]


def test_abort_ends_the_program_with_the_components_signal(faults, tmp_path):
    rc, out, reports, _ = run(faults, "abort", "null", reports=tmp_path)
    assert rc == -signal.SIGSEGV
    assert out == []
    assert [(r["outcome"], r["signal"]) for r in reports] == [("abort", "SIGSEGV")]


def test_restart_intensity_past_max_restarts_escalates_to_abort(faults, tmp_path):
    rc, out, reports, _ = run(faults, "escalate", "repeat", "5", reports=tmp_path)
    assert rc == -signal.SIGSEGV
    # max_restarts 3: the first call faults twice (retry), the second faults, restarts a third
    # time, faults again on its retry and ends the program.
    assert out == ["result 0"]
    outcomes = [r["outcome"] for r in sorted(reports, key=lambda r: r["time"])]
    assert outcomes.count("restarted") == 3
    assert outcomes[-1] == "abort: max_restarts exceeded"


def test_every_call_in_flight_gets_the_same_treatment(faults, tmp_path):
    rc, out, reports, err = run(faults, "retry", "threads", str(tmp_path / "marker"), reports=tmp_path / "r")
    assert rc == 0, err
    # Six slow calls were in flight on other threads when the domain crashed: each was re-issued
    # on the fresh process and returned its value, as was the call that crashed it.
    assert out == ["result 42", "slow calls ok 6", "after 2", "inits 1", "restarted 1"]
    assert len(reports) == 1


def _wait_for_report(directory, deadline_s=10):
    """The watcher writes the report once the program is gone: wait for the file, with a limit."""
    return wait_for_files(directory / "*.json", deadline_s)


def test_monolithic_crash_writes_a_report_too(faults, tmp_path):
    proc = subprocess.run([SCONS, "-Q"], cwd=faults, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done = subprocess.run([str(faults / "build" / "mono" / "faults"), "null"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "QPM_REPORT_DIR": str(tmp_path)})
    assert done.returncode == -signal.SIGSEGV       # nothing contains it: the whole program dies
    (path,) = _wait_for_report(tmp_path)
    r = json.load(open(path))
    assert (r["schema"], r["program"], r["plan"], r["domain"]) == ("qpm.crash/1", "faults", None, "main")
    assert (r["signal"], r["outcome"], r["components"]) == ("SIGSEGV", "program died", ["app", "faulty"])
    frames = [(f["function"], f.get("component")) for f in r["backtrace"]]
    assert frames[:2] == [("faulty_null", "faulty"), ("main", "app")]


def test_max_restarts_is_exact_past_64(faults, tmp_path):
    """max_restarts 70: seventy restarts, and the seventy-first fault ends the program."""
    rc, out, reports, _ = run(faults, "escalate70", "repeat", "80", reports=tmp_path)
    assert rc == -signal.SIGSEGV
    assert out == ["result -7"] * 70
    outcomes = [r["outcome"] for r in reports]
    assert outcomes.count("restarted") == 70
    assert outcomes.count("abort: max_restarts exceeded") == 1


def test_a_reply_larger_than_a_message_faults_by_policy(faults, tmp_path):
    """A 3 MiB returned string does not fit a message: the domain's call faults (error: NULL),
    main goes on."""
    rc, out, reports, err = run(faults, "error", "big", reports=tmp_path)
    assert rc == 0, err
    assert out == ["big null", "after 2", "inits 1", "restarted 1"]
    assert [(r["function"], r["signal"]) for r in reports] == [("faulty_big", "bad message")]


def test_a_call_that_keeps_calling_back_past_its_deadline_is_a_hang(faults, tmp_path):
    rc, out, reports, err = run(faults, "error", "chatty", reports=tmp_path)
    assert rc == 0, err
    assert out == ["result -7", "after 2", "inits 1", "restarted 1"]
    assert [(r["function"], r["signal"]) for r in reports] == [("faulty_chatty", "hang")]


def test_a_domain_dying_while_main_runs_its_callback(faults, tmp_path):
    """Main is inside a callback for one call when another call crashes the domain: the crashing
    call is the culprit (-7); the callback's call is innocent and is issued again."""
    rc, out, reports, err = run(faults, "error", "cbcrash", reports=tmp_path)
    assert rc == 0, err
    assert out == ["result -7", "callback call 41", "after 2", "inits 1", "restarted 1"]
    assert [(r["function"], r["blame"]) for r in reports] == [("faulty_null", "culprit")]


@pytest.mark.parametrize("plan", ["error", "mono"])
def test_a_child_forked_after_the_start(faults, tmp_path, plan):
    """A child forked after the start cannot call across the boundary (split: it gets the fault
    value, and the program says why).  The crash watcher is no child of the program; a split
    program's domains are, and no wait of the program's reaps one."""
    if plan == "mono":
        scons = subprocess.run([SCONS, "-Q"], cwd=faults, capture_output=True, text=True)
        assert scons.returncode == 0, scons.stdout + scons.stderr
    proc = subprocess.run([str(faults / "build" / plan / "faults"), "fork"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "QPM_REPORT_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    child = "child result -7" if plan == "error" else "child result 2"
    others = "other children running" if plan == "error" else "other children none"
    assert sorted(proc.stdout.splitlines()[:3]) == sorted([child, "reaped 1", others])
    assert ("forked from the split program" in proc.stderr) == (plan == "error")


def test_sigterm_to_the_process_group_is_no_fault(faults, tmp_path):
    """A service manager's SIGTERM to the process group is for main: the domain outlives it (no
    restart, no report) and main, which caught it, goes on calling."""
    proc = subprocess.run([str(faults / "build" / "error" / "faults"), "groupterm"], capture_output=True,
                          text=True, timeout=60, start_new_session=True,
                          env={**os.environ, "QPM_REPORT_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["stopping 1", "after 2", "inits 1", "restarted 0"]
    assert not list(tmp_path.glob("crash-*.json"))
