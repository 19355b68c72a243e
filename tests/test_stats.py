"""Crossing statistics end to end: real programs, split, run, killed; then ingested and learnt from.

tests/programs/stats calls an isolated component in a loop (until killed, or for a while), or from
many threads that make one slow call each.  The runtime rewrites one stats file per run every
QPM_STATS_INTERVAL_S seconds and at exit; a program killed by SIGKILL keeps its last interval.
"""

import glob
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from procs import live_processes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")
SOURCES = ("app.c", "work.c", "work.h")


def _build(work, plan):
    proc = subprocess.run([SCONS, "-Q", f"ISOLATE={plan}"], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    work = tmp_path_factory.mktemp("stats") / "stats"
    shutil.copytree(os.path.join(ROOT, "tests", "programs", "stats"), work)
    _build(work, "split.yaml")
    return work / "build" / "split" / "stats"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The program's sources alone (no build tree) for the analyzer of `qtool learn`."""
    src = tmp_path_factory.mktemp("stats-src")
    for name in SOURCES:
        shutil.copy(os.path.join(ROOT, "tests", "programs", "stats", name), src / name)
    return src


def _env(reports, interval=None):
    env = {k: v for k, v in os.environ.items() if k != "QPM_STATS_INTERVAL_S"}
    env["QPM_REPORT_DIR"] = str(reports)
    if interval is not None:
        env["QPM_STATS_INTERVAL_S"] = interval
    return env


def _poll(probe, what, deadline_s=10):
    """probe() until it returns something true, without sleeping for synchronisation: a bounded
    wait on nothing between looks, and a failure past the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        select.select([], [], [], 0.02)


def _stats_files(reports):
    return sorted(glob.glob(str(reports / "stats-*.json")))


def _read_stats(reports, proc=None):
    """The run's one stats file, parsed (a half-written file would not parse), or None."""
    if proc is not None and proc.poll() is not None:
        pytest.fail(f"the program ended early, status {proc.returncode}")
    files = _stats_files(reports)
    if not files:
        return None
    assert len(files) == 1, files       # one file per run, rewritten in place
    with open(files[0]) as f:
        return json.load(f)


def _domain_processes(exe):
    return live_processes(lambda argv0: argv0 == f"{exe}-work_iso")


def _threads(pid):
    """{thread name: blocked signal mask} of a running process."""
    out = {}
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            with open(f"{task}/comm") as f:
                name = f.read().strip()
            with open(f"{task}/status") as f:
                blocked = next(int(line.split()[1], 16) for line in f if line.startswith("SigBlk:"))
        except (OSError, StopIteration):
            continue
        out.setdefault(name, []).append(blocked)
    return out


@pytest.fixture(scope="module")
def killed_run(program, tmp_path_factory):
    """The loop, stats every 0.2 s: its first stats file kept aside, then SIGKILLed once the file
    has been rewritten with a longer interval."""
    reports = tmp_path_factory.mktemp("killed")
    early = tmp_path_factory.mktemp("early")
    proc = subprocess.Popen([str(program), "loop"], env=_env(reports, "0.2"), stdout=subprocess.DEVNULL)
    try:
        first = _poll(lambda: _read_stats(reports, proc), "the first stats file")
        name = os.path.basename(_stats_files(reports)[0])
        (early / name).write_text(json.dumps(first))
        later = _poll(lambda: (lambda d: d if d and d["duration_ms"] > first["duration_ms"] else None)(
            _read_stats(reports, proc)), "the stats file rewritten")
        threads = _threads(proc.pid)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    _poll(lambda: not _domain_processes(program), "the domain to die with its program")
    return {"reports": reports, "early": early, "first": first, "later": later, "threads": threads,
            "returncode": proc.returncode, "pid": proc.pid, "name": name}


def test_a_killed_server_leaves_the_figures_of_its_last_interval(killed_run):
    assert killed_run["returncode"] == -signal.SIGKILL
    reports = killed_run["reports"]
    assert sorted(os.listdir(reports)) == [killed_run["name"]], "a temporary file was left behind"
    doc = json.loads((reports / killed_run["name"]).read_text())
    assert (doc["schema"], doc["program"], doc["plan"]) == ("qpm.stats/1", "stats", "split.yaml")
    assert doc["final"] is False and doc["pid"] == killed_run["pid"]
    assert doc["interval_s"] == 0.2
    assert doc["started"].endswith("Z") and doc["time"].endswith("Z") and doc["started"] <= doc["time"]
    assert doc["duration_ms"] >= killed_run["later"]["duration_ms"] > killed_run["first"]["duration_ms"] > 0
    assert doc["started"] == killed_run["first"]["started"]        # the same run, the same file
    (edge,) = doc["edges"]
    assert (edge["caller_domain"], edge["callee"], edge["callee_domain"]) == ("main", "work_add", "work_iso")
    assert edge["calls"] > 0 and edge["faulted"] == 0 and edge["bytes"] > 0
    assert killed_run["first"]["edges"][0]["calls"] <= edge["calls"]


def test_the_writer_thread_is_the_runtimes_and_takes_no_signal(killed_run):
    threads = killed_run["threads"]
    (blocked,) = threads["qrt-stats"]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM,
                signal.SIGCHLD, signal.SIGPIPE, signal.SIGQUIT, signal.SIGRTMIN + 1, signal.SIGRTMAX):
        assert blocked & (1 << (sig - 1)), f"{signal.Signals(sig).name} is not blocked in qrt-stats"


def test_a_clean_exit_rewrites_the_same_file_as_final(program, tmp_path):
    proc = subprocess.run([str(program), "for", "300"], env=_env(tmp_path, "0.05"), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    calls = int(proc.stdout.split()[1])
    assert os.listdir(tmp_path) == [os.path.basename(_stats_files(tmp_path)[0])]
    doc = _read_stats(tmp_path)
    assert doc["final"] is True and doc["interval_s"] == 0.05
    assert doc["duration_ms"] >= 298       # the loop's 300 ms, give or take the truncation to ms
    (edge,) = doc["edges"]
    assert edge["calls"] == calls and edge["faulted"] == 0


@pytest.mark.parametrize("value", ["junk", "0", "-1", "", "1e3", "0.2s"])
def test_an_invalid_interval_is_the_default(program, tmp_path, value):
    proc = subprocess.run([str(program), "for", "20"], env=_env(tmp_path, value), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = _read_stats(tmp_path)
    assert doc["interval_s"] == 10 and doc["final"] is True


def test_a_run_without_a_crossing_call_writes_no_stats_and_no_directory(program, tmp_path):
    reports = tmp_path / "reports"
    proc = subprocess.run([str(program)], env=_env(reports, "0.02"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr      # no scenario: it ends before any call
    assert not reports.exists()


def test_threads_that_make_one_call_each_are_timed(program, tmp_path):
    proc = subprocess.run([str(program), "threads", "128"], env=_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok 128\n"
    doc = _read_stats(tmp_path)
    edges = {(e["caller_domain"], e["callee"]): e for e in doc["edges"]}
    edge = edges[("main", "work_sleep")]
    assert edge["calls"] == 128
    # One call in 64 is timed across threads, whatever each thread's own count: 128 threads of one
    # call each start at every sampling offset twice over.
    assert edge["timed_calls"] == 2
    assert edge["time_ns"] >= 2 * 1_000_000         # each call sleeps 1 ms in the domain


def test_faulted_calls_are_counted(tmp_path_factory, tmp_path):
    work = tmp_path_factory.mktemp("faults") / "faults"
    shutil.copytree(os.path.join(ROOT, "tests", "programs", "faults"), work)
    _build(work, "error.yaml")
    proc = subprocess.run([str(work / "build" / "error" / "faults"), "null"], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = _read_stats(tmp_path)
    edges = {(e["caller_domain"], e["callee"]): e for e in doc["edges"]}
    assert ("main", "faulty_null") in edges, f"no call of faulty_null counted: {doc['edges']}"
    edge = edges[("main", "faulty_null")]
    assert edge["faulted"] >= 1 and edge["calls"] >= edge["faulted"]
    assert edges[("main", "faulty_ok")]["faulted"] == 0


def _learn(qtool, sources, tmp_path, reports, fmt="json"):
    rc, out, err = qtool("learn", sources, "--reports", reports, "--db", tmp_path / "store.sqlite",
                         "--policy", "optimistic", "--format", fmt, "-o", tmp_path / "plan.yaml")
    assert rc == 0, err
    return json.loads(out) if fmt == "json" else out


def test_learn_observes_the_real_running_time_and_updates_a_rewritten_run(qtool, sources, killed_run, tmp_path):
    first, final = killed_run["first"], json.loads((killed_run["reports"] / killed_run["name"]).read_text())
    doc = _learn(qtool, sources, tmp_path, killed_run["early"])
    assert (doc["runs"], doc["ingested"]["runs"], doc["runs_updated"]) == (1, 1, 0)
    assert doc["observed_known"] is True
    assert doc["observed_s"] == pytest.approx(first["duration_ms"] / 1000)
    # The same run's file, rewritten since: its figures replace the run's, no second run.
    doc = _learn(qtool, sources, tmp_path, killed_run["reports"])
    assert (doc["runs"], doc["ingested"]["runs"], doc["runs_updated"]) == (1, 0, 1)
    assert doc["observed_s"] == pytest.approx(final["duration_ms"] / 1000)
    assert any("without a stats write at exit" in n for n in doc["notes"])
    # The older version again, from anywhere: nothing changes.
    doc = _learn(qtool, sources, tmp_path, killed_run["early"])
    assert (doc["runs"], doc["ingested"]["runs"], doc["runs_updated"]) == (1, 0, 0)
    assert doc["observed_s"] == pytest.approx(final["duration_ms"] / 1000)
    rc, out, err = qtool("report", "--reports", killed_run["reports"], "--db", tmp_path / "store.sqlite")
    assert rc == 0, err
    assert f"observed: {final['duration_ms'] / 1000:.3f} s of running (1 run(s) without a write at exit" in out


def test_learn_says_when_it_has_no_statistics(qtool, sources, tmp_path):
    reports = tmp_path / "r"
    reports.mkdir()
    doc = _learn(qtool, sources, tmp_path, reports)
    assert doc["observed_known"] is False and doc["runs"] == 0
    assert any(n.startswith("no statistics: observation time unknown") for n in doc["notes"])
    text = _learn(qtool, sources, tmp_path, reports, fmt="text")
    assert "0 run(s), observation time unknown" in text
    assert "note: no statistics: observation time unknown" in text
    rc, out, err = qtool("report", "--reports", reports, "--db", tmp_path / "s.sqlite")
    assert rc == 0 and "no statistics: observation time unknown" in out


def _stats_doc(duration_ms, calls, final=False, started="2026-11-27T10:00:00Z", pid=7, **extra):
    return {"schema": "qpm.stats/1", "program": "prog", "plan": "p.yaml", "host": "alpha", "pid": pid,
            "started": started, "time": "2026-11-27T10:10:00Z", "duration_ms": duration_ms, "interval_s": 10,
            "final": final, "edges": [{"caller_domain": "main", "callee": "f", "callee_domain": "d",
                                       "calls": calls, "faulted": 1, "bytes": 8, "time_ns": 100}], **extra}


def test_store_keeps_one_run_per_stats_file_and_its_longest_figures(tmp_path):
    from qtool.reports import Store
    store = Store(str(tmp_path / "s.sqlite"))
    d = tmp_path / "r"
    d.mkdir()
    path = d / "stats-1.json"

    def ingest(doc):
        path.write_text(json.dumps(doc))
        return store.ingest([str(d)])

    assert ingest(_stats_doc(1000, 10)) == {"crashes": 0, "runs": 1, "updated": 0, "seen": 1}
    assert ingest(_stats_doc(3000, 30)) == {"crashes": 0, "runs": 0, "updated": 1, "seen": 1}
    assert ingest(_stats_doc(2000, 20)) == {"crashes": 0, "runs": 0, "updated": 0, "seen": 1}   # older
    assert ingest(_stats_doc(3000, 31, final=True)) == {"crashes": 0, "runs": 0, "updated": 1, "seen": 1}
    assert ingest(_stats_doc(3000, 31, final=True)) == {"crashes": 0, "runs": 0, "updated": 0, "seen": 1}
    assert store.runs() == [("alpha", "2026-11-27T10:10:00Z", 3000)]
    assert store.calls() == {"f": 31.0} and store.unfinished_runs() == 0
    assert store.edge_costs() == [("main", "f", 31, 8, 100, 1)]
    # Another run of the same program (another pid): a second run.
    assert ingest(_stats_doc(500, 5, pid=8))["runs"] == 1
    assert len(store.runs()) == 2 and store.calls() == {"f": 36.0} and store.unfinished_runs() == 1
    # A report that does not say when its run started is keyed by its contents.
    old = _stats_doc(700, 7)
    del old["started"], old["final"]
    assert ingest(old)["runs"] == 1 and ingest(old)["runs"] == 0


def test_a_store_of_the_previous_schema_is_migrated(tmp_path):
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE crashes (id TEXT PRIMARY KEY, host TEXT, program TEXT, plan TEXT, domain TEXT, signal TEXT,
            function TEXT, time TEXT, culprit TEXT, signature TEXT, recovery_ms REAL, outcome TEXT);
        CREATE TABLE runs (id TEXT PRIMARY KEY, host TEXT, program TEXT, plan TEXT, time TEXT, duration_ms INTEGER);
        CREATE TABLE edges (run TEXT NOT NULL REFERENCES runs(id), caller_domain TEXT, callee TEXT,
            callee_domain TEXT, calls INTEGER, bytes INTEGER, time_ns INTEGER);
        INSERT INTO meta VALUES ('schema', '1');
        INSERT INTO runs VALUES ('abc', 'alpha', 'prog', '', '2026-11-27T10:00:00Z', 60000);
        INSERT INTO edges VALUES ('abc', 'main', 'f', 'd', 5, 0, 0);
    """)
    con.commit()
    con.close()
    from qtool.reports import Store
    store = Store(str(db))
    assert store.runs() == [("alpha", "2026-11-27T10:00:00Z", 60000)]
    assert store.edge_costs() == [("main", "f", 5, 0, 0, 0)]
    d = tmp_path / "r"
    d.mkdir()
    (d / "stats-1.json").write_text(json.dumps(_stats_doc(1000, 10, final=True)))
    assert store.ingest([str(d)])["runs"] == 1 and store.calls() == {"f": 15.0}
    assert Store(str(db)).runs()[0][2] == 60000       # opened again: already current
