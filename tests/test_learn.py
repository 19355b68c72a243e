"""qtool learn and qtool report on report sets whose right answer is known."""

import json
import textwrap

import pytest

PROGRAM = {
    "api.h": '#include "qpm.h"\nint parse(int n);\nint util_step(int x);\nint log_line(int x);\n',
    "app.c": '#include "api.h"\nint main(void) { return parse(3) + log_line(1); }\n',
    "parser.c": '#include "api.h"\nint parse(int n) { int s = 0; for (int i = 0; i < n; i++) s += util_step(i); return s; }\n',
    "util.c": '#include "api.h"\nint util_step(int x) { return x * 2; }\n',
    "logger.c": '#include "api.h"\nint log_line(int x) { return x; }\n',
}


@pytest.fixture(autouse=True)
def fixed_costs(monkeypatch):
    monkeypatch.setenv("QPM_CROSSING_NS", "100")
    monkeypatch.setenv("QPM_CROSSING_NS_PER_BYTE", "0")


@pytest.fixture
def program(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name, text in PROGRAM.items():
        (src / name).write_text(text)
    return src


def crash(directory, n, component, function, host="alpha", time="2026-11-27T10:00:00Z"):
    doc = {"schema": "qpm.crash/1", "program": "prog", "plan": None, "domain": "main", "components": [],
           "function": None, "signal": "SIGSEGV", "time": time, "host": host, "pid": n, "outcome": "program died",
           "recovery_ms": None, "backtrace": [{"function": "??", "file": None, "line": 0},
                                              {"function": function, "file": f"{component}.c", "line": 1,
                                               "component": component}]}
    (directory / f"crash-{host}-{n}.json").write_text(json.dumps(doc))


def stats(directory, n, calls, host="alpha", time="2026-11-27T11:00:00Z", duration_ms=60_000):
    doc = {"schema": "qpm.stats/1", "program": "prog", "plan": "", "host": host, "pid": n, "time": time,
           "duration_ms": duration_ms, "edges": [{"caller_domain": "main", "callee": f, "callee_domain": "x",
                                                  "calls": c, "bytes": 0, "time_ns": 0} for f, c in calls.items()]}
    (directory / f"stats-{host}-{n}.json").write_text(json.dumps(doc))


def learn(qtool, program, tmp_path, *args):
    rc, out, err = qtool("learn", program, "--db", tmp_path / "store.sqlite", "--format", "json",
                         "-o", tmp_path / "plan.yaml", *args)
    assert rc == 0, err
    return json.loads(out), (tmp_path / "plan.yaml").read_text()


def test_optimistic_isolates_the_culprit_and_merges_back_later(qtool, program, tmp_path):
    reports = tmp_path / "r"
    reports.mkdir()
    crash(reports, 1, "logger", "log_line", time="2026-11-27T10:00:00Z")
    stats(reports, 1, {"parse": 10, "log_line": 10}, time="2026-11-27T10:30:00Z")
    doc, plan = learn(qtool, program, tmp_path, "--reports", reports, "--policy", "optimistic")
    assert doc["isolate"] == ["logger"]
    assert doc["domains"] == [{"domain": "logger_iso", "components": ["logger"]}]
    assert "components: [logger]" in plan
    # Two hours later without a fault, with a merge-after of one hour: back together.
    stats(reports, 2, {"parse": 10, "log_line": 10}, time="2026-11-27T12:00:00Z")
    doc, plan = learn(qtool, program, tmp_path, "--reports", reports, "--policy", "optimistic",
                      "--merge-after-s", "3600", "--current", tmp_path / "plan.yaml")
    assert doc["isolate"] == [] and "isolate: []" in plan
    logger = next(c for c in doc["components"] if c["name"] == "logger")
    assert "merged back" in logger["reason"]


def test_pessimistic_starts_isolated_and_merges_trusted_components(qtool, program, tmp_path):
    reports = tmp_path / "r"
    reports.mkdir()
    stats(reports, 1, {"parse": 20_000, "util_step": 60_000, "log_line": 50})
    doc, _ = learn(qtool, program, tmp_path, "--reports", reports, "--policy", "pessimistic",
                   "--trust-calls", "10000")
    decided = {c["name"]: c["isolate"] for c in doc["components"]}
    assert decided == {"parser": False, "util": False, "logger": True}
    assert doc["domains"] == [{"domain": "logger_iso", "components": ["logger"]}]


def test_cooperative_pools_hosts(qtool, program, tmp_path):
    # Host alpha saw util fail often; host beta never did.  Pooled, util is isolated for beta too.
    # logger never failed and is called 50 million times a run: its boundary costs more than its
    # (unobserved) faults are expected to.
    alpha, beta = tmp_path / "alpha", tmp_path / "beta"
    alpha.mkdir()
    beta.mkdir()
    for n in range(20):
        crash(alpha, n, "util", "util_step", host="alpha")
    calls = {"parse": 100, "util_step": 300, "log_line": 50_000_000}
    stats(alpha, 1, calls, host="alpha")
    stats(beta, 1, calls, host="beta")
    doc, _ = learn(qtool, program, tmp_path, "--reports", alpha, beta, "--policy", "cooperative")
    assert doc["hosts"] == ["alpha", "beta"]
    decided = {c["name"]: c["isolate"] for c in doc["components"]}
    assert decided["util"] is True and decided["logger"] is False
    util = next(c for c in doc["components"] if c["name"] == "util")
    assert util["faults"] == 20 and util["hosts_with_faults"] == 1
    assert util["rate_per_s"] == pytest.approx(20.5 / 120)


def test_ingesting_the_same_reports_twice_adds_nothing(qtool, program, tmp_path):
    reports = tmp_path / "r"
    reports.mkdir()
    crash(reports, 1, "util", "util_step")
    stats(reports, 1, {"parse": 5})
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in reports.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    first, _ = learn(qtool, program, tmp_path, "--reports", reports, "--policy", "optimistic")
    assert first["ingested"] == {"crashes": 1, "runs": 1, "seen": 2}
    again, _ = learn(qtool, program, tmp_path, "--reports", reports, copy, "--policy", "optimistic")
    assert again["ingested"] == {"crashes": 0, "runs": 0, "seen": 4}
    assert again["runs"] == 1


def test_report_summarises_and_writes_a_page(qtool, tmp_path):
    reports = tmp_path / "r"
    reports.mkdir()
    crash(reports, 1, "util", "util_step")
    crash(reports, 2, "util", "util_step")
    stats(reports, 1, {"parse": 5})
    rc, out, err = qtool("report", "--reports", reports, "--db", tmp_path / "s.sqlite", "--html", tmp_path / "r.html")
    assert rc == 0, err
    assert "  util                 2" in out
    assert "     2  SIGSEGV | util_step" in out
    page = (tmp_path / "r.html").read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "<script" not in page


def test_report_has_a_section_per_program_and_lines_up_its_columns(qtool, tmp_path):
    reports = tmp_path / "r"
    reports.mkdir()
    crash(reports, 1, "util", "util_step")
    stats(reports, 1, {"parse": 5, "a_much_longer_function_name": 123456789})
    other = json.loads((reports / "stats-alpha-1.json").read_text())
    other.update(program="other", pid=2, edges=[{"caller_domain": "main", "callee": "tick", "callee_domain": "x",
                                                 "calls": 7, "bytes": 64, "time_ns": 1000}])
    (reports / "stats-alpha-2.json").write_text(json.dumps(other))
    rc, out, err = qtool("report", "--reports", reports, "--db", tmp_path / "s.sqlite")
    assert rc == 0, err
    sections = out.split("\n== program ")[1:]
    assert [s.split(":")[0] for s in sections] == ["other", "prog"]
    assert "tick" in sections[0] and "tick" not in sections[1] and "util" not in sections[0]
    table = sections[1].split("crossing costs")[1].splitlines()[1:4]
    assert table[0].split() == ["edge", "calls", "bytes", "time", "ms", "faulted"]
    assert len({len(line) for line in table}) == 1, table          # every row as wide as the header
    for line in table[1:]:                                          # numbers end under their heading
        assert line[table[0].index("calls") + 4] in "0123456789"
    rc, out, err = qtool("report", "--reports", reports, "--db", tmp_path / "s.sqlite", "--program", "other")
    assert rc == 0, err
    assert out.count("== program ") == 1 and "== program other:" in out and "util" not in out
    assert out.startswith("0 fault(s) from 1 host(s), 1 run(s) with stats")
    rc, out, err = qtool("report", "--reports", reports, "--db", tmp_path / "s.sqlite", "--program", "nope")
    assert rc == 2 and "no reports of program 'nope'" in err and "(programs: other, prog)" in err


def test_a_file_that_is_not_a_report_is_a_clear_error(qtool, tmp_path):
    reports = tmp_path / "r"
    reports.mkdir()
    (reports / "crash-bad.json").write_text("{not json")
    rc, out, err = qtool("report", "--reports", reports, "--db", tmp_path / "s.sqlite")
    assert rc == 2 and out == "" and "crash-bad.json" in err and "not valid JSON" in err


def test_reports_of_another_program_in_the_store_are_left_out(qtool, program, tmp_path):
    reports = tmp_path / "r"
    reports.mkdir()
    crash(reports, 1, "logger", "log_line")
    other = {"schema": "qpm.crash/1", "program": "other", "plan": None, "domain": "main", "components": [],
             "function": None, "signal": "SIGSEGV", "time": "2026-11-27T10:00:00Z", "host": "alpha", "pid": 9,
             "outcome": "program died", "recovery_ms": None,
             "backtrace": [{"function": "x", "file": "x.c", "line": 1, "component": "util"}]}
    (reports / "crash-other.json").write_text(json.dumps(other))
    stats(reports, 1, {"parse": 10, "log_line": 10})
    doc, _ = learn(qtool, program, tmp_path, "--reports", reports, "--policy", "optimistic")
    assert doc["isolate"] == ["logger"]        # util's crash belongs to program 'other'
    assert "reports of program 'prog'" in doc["notes"]
