"""Crash reports name a file and line for every frame of the program's own functions, with or
without debug information; plan values reach the runtime as the plan states them.

A program built without -g (many SConstructs have no -g) has no line table: the report then takes
the file and line of the function's definition from the program model, and says so per frame
("line_source": "definition"; "debug" when the line came from debug information).
"""

import glob
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

from procs import wait_for_files

from qtool.plan import MAX_RESTARTS, load_plan, render

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")
FAULTS = os.path.join(ROOT, "tests", "programs", "faults")

NO_DEBUG_SCONSTRUCT = """\
import qtool.scons
env = Environment(tools=['default', qtool.scons.tool],
                  CCFLAGS=['-std=c11', '-D_GNU_SOURCE', '-O0', '-Wall', '-Wextra', '-Werror'])
env.QpmProgram('faults', Glob('*.c'))
"""


def _scons(work, *args):
    proc = subprocess.run([SCONS, "-Q", *args], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _copy(tmp_path_factory, name, sconstruct=None):
    work = tmp_path_factory.mktemp(name) / "faults"
    shutil.copytree(FAULTS, work)
    if sconstruct is not None:
        (work / "SConstruct").write_text(sconstruct)
    return work


@pytest.fixture(scope="module")
def nodebug(tmp_path_factory):
    """tests/programs/faults built without -g: split (error.yaml) and monolithic."""
    work = _copy(tmp_path_factory, "nodebug", NO_DEBUG_SCONSTRUCT)
    _scons(work, "ISOLATE=error.yaml")
    _scons(work)
    return work


@pytest.fixture(scope="module")
def debug(tmp_path_factory):
    """The same program with its own SConstruct (-g), split by error.yaml and by retryvalue.yaml."""
    work = _copy(tmp_path_factory, "debug")
    _scons(work, "ISOLATE=error.yaml")
    _scons(work, "ISOLATE=retryvalue.yaml")
    return work


def _definition_line(work, function):
    """The line where `function` is defined in faulty.c."""
    with open(work / "faulty.c") as f:
        for n, line in enumerate(f, 1):
            if re.match(rf"^\w[\w\s\*]*\b{function}\s*\(", line) and not line.rstrip().endswith(";"):
                return n
    raise AssertionError(f"{function} is not defined in faulty.c")


def _wait_for_reports(directory, deadline_s=10):
    """A monolithic program's watcher writes the report once the program is gone."""
    return wait_for_files(directory / "crash-*.json", deadline_s)


def _run(exe, *args, reports):
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "QPM_REPORT_DIR": str(reports)})
    files = _wait_for_reports(reports) if proc.returncode < 0 else glob.glob(str(reports / "crash-*.json"))
    assert not glob.glob(str(reports / "*.tmp")), "a report was left half-written"
    return proc, [json.load(open(f)) for f in sorted(files)]


def _frame(report, function):
    return next(f for f in report["backtrace"] if f["function"] == function)


def test_split_build_without_debug_info_reports_the_definition(nodebug, tmp_path):
    proc, reports = _run(nodebug / "build" / "error" / "faults", "null", reports=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "result -7"
    (r,) = reports
    top = _frame(r, "faulty_null")
    assert top["file"].endswith("faulty.c")
    assert os.path.samefile(top["file"], nodebug / "faulty.c")
    assert top["line"] == _definition_line(nodebug, "faulty_null")
    assert (top["line_source"], top["component"]) == ("definition", "faulty")
    # Frames of the program's functions all carry a file and a line; others say they have none.
    for f in r["backtrace"]:
        if f.get("component"):
            assert f["file"] and f["line"] > 0 and f["line_source"] in ("debug", "definition")
        elif f["line"] == 0:
            assert f["line_source"] is None


def test_monolithic_build_without_debug_info_reports_the_definition(nodebug, tmp_path):
    proc, reports = _run(nodebug / "build" / "mono" / "faults", "null", reports=tmp_path)
    assert proc.returncode == -signal.SIGSEGV
    (r,) = reports
    top, caller = r["backtrace"][:2]
    assert (top["function"], top["component"], top["line_source"]) == ("faulty_null", "faulty", "definition")
    assert top["file"].endswith("faulty.c")
    assert top["line"] == _definition_line(nodebug, "faulty_null")
    # main() is the program's too: app.c, where main is defined.
    assert (caller["function"], caller["component"], caller["line_source"]) == ("main", "app", "definition")
    assert caller["file"].endswith("app.c") and caller["line"] > 0


def test_debug_info_gives_the_faulting_line(debug, tmp_path):
    proc, reports = _run(debug / "build" / "error" / "faults", "null", reports=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (r,) = reports
    top = _frame(r, "faulty_null")
    assert top["file"].endswith("faulty.c") and top["line_source"] == "debug"
    assert top["line"] > _definition_line(debug, "faulty_null")      # inside the body: the dereference


def test_retry_that_faults_again_returns_the_fault_value(debug, tmp_path):
    proc, reports = _run(debug / "build" / "retryvalue" / "faults", "null", reports=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["result -7", "after 2", "inits 1", "restarted 1"]
    assert [r["outcome"] for r in reports] == ["restarted", "restarted"]


def test_retry_that_succeeds_is_not_given_the_fault_value(debug, tmp_path):
    proc, _ = _run(debug / "build" / "retryvalue" / "faults", "flaky", str(tmp_path / "marker"),
                   reports=tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "result 42"


@pytest.mark.parametrize("asked, written", [(0, 1), (-3, 1), (1, 1), (7, 7), (10000, 10000), (10001, 10000),
                                            (10 ** 40, 10000), (2.5, 3), (float("inf"), 10000)])
def test_render_clamps_max_restarts(tmp_path, asked, written):
    text = render([("cache_iso", ["cache"])], "learned", max_restarts=asked)
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    plan, diags = load_plan(str(path))
    assert diags == []
    assert plan.domains[0].max_restarts == written
    assert MAX_RESTARTS[0] <= written <= MAX_RESTARTS[1]


def _load(tmp_path, text):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return load_plan(str(path))


PLAN = "version: 1\nisolate:\n  - domain: d\n    components: [c]\n    {key}: {value}\n"


@pytest.mark.parametrize("key, value, ok", [
    ("max_restarts", "1", True), ("max_restarts", "10000", True), ("max_restarts", "0", False),
    ("max_restarts", "10001", False), ("max_restarts", "1e30", False), ("max_restarts", "1.0e+30", False),
    ("max_restarts", "3000000000", False), ("max_restarts", "true", False), ("max_restarts", "5.0", False),
    ("window_s", "0.001", True), ("window_s", "86400", True), ("window_s", "0.5", True),
    ("window_s", "0", False), ("window_s", "0.0009", False), ("window_s", "86400.5", False),
    ("window_s", ".nan", False), ("window_s", ".inf", False), ("window_s", "false", False),
    ("call_timeout_ms", "0", True), ("call_timeout_ms", "3600000", True), ("call_timeout_ms", "-1", False),
    ("call_timeout_ms", "3600001", False), ("call_timeout_ms", "1.5", False), ("call_timeout_ms", "true", False),
])
def test_plan_value_ranges(tmp_path, key, value, ok):
    plan, diags = _load(tmp_path, PLAN.format(key=key, value=value))
    if ok:
        assert diags == []
    else:
        (d,) = diags
        assert (d.code, d.location.line) == ("QPM042", 5)
        assert key in d.message and " to " in d.message and f"'{value}'" in d.message


@pytest.mark.parametrize("on_fault, ok", [("retry", True), ("error", True), ("abort", False)])
def test_fault_value_applies_to_retry_and_error(tmp_path, on_fault, ok):
    plan, diags = _load(tmp_path, PLAN.format(key="on_fault", value=on_fault) + "    fault_value: -7\n")
    assert (diags == []) == ok
    if ok:
        assert plan.domains[0].fault_value == -7


def test_repeated_key_is_an_error_at_its_second_occurrence(tmp_path):
    _, diags = _load(tmp_path, PLAN.format(key="on_fault", value="retry") + "    on_fault: retry\n")
    assert [(d.code, d.location.line) for d in diags] == [("QPM042", 6)]
    assert "on_fault" in diags[0].message and "twice" in diags[0].message
    _, diags = _load(tmp_path, "version: 1\nversion: 1\nisolate: []\n")
    assert [(d.code, d.location.line) for d in diags] == [("QPM042", 2)]


def test_a_structured_key_is_an_error_not_a_crash(tmp_path):
    _, diags = _load(tmp_path, "version: 1\n? [a, b]\n: 1\nisolate: []\n")
    assert [d.code for d in diags] == ["QPM042"]
