"""Stage: runtime reports -> a store of faults and measurements, pooled across runs and hosts.

    read_reports(dirs) -> [Report]            crash-*.json and stats-*.json, each checked
    Store(path).add(reports) -> counts        into the store, idempotent (ingest: both steps)
    Store.faults(), Store.calls(), ...         what the learning stage and `qtool report` read

The store is an SQLite file with a versioned schema.  A crash report is keyed by the digest of
its contents, so ingesting the same file twice (or the same report collected from two places)
adds it once.  A stats report is keyed by its run (host, program, pid and start time): the
runtime rewrites one file per run as the run goes on, so a later version of it replaces the
run's figures when it covers a longer time, and adds no second run (stats reports that carry no
start time, from older runtimes, are keyed by their contents' digest).  Each crash is attributed to a culprit component, the first frame of its backtrace that
belongs to a component (runtime and libc frames belong to none), or for a hang the component of
the function in flight; its signature, Socorro-style, is the signal and the first three program
frames.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sqlite3

from .errors import UserError, UserErrors
from .record import record


def run_key(doc: dict) -> str | None:
    """The identity of the run a stats report describes (every write of its file has the same),
    or None for a report that does not say when its run started."""
    if not doc.get("started") or doc.get("pid") is None:
        return None
    ident = json.dumps(["run", doc.get("host"), doc.get("program"), doc.get("pid"), doc.get("started")])
    return "run:" + hashlib.sha256(ident.encode()).hexdigest()

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS crashes (
    id TEXT PRIMARY KEY, host TEXT, program TEXT, plan TEXT, domain TEXT, signal TEXT,
    function TEXT, time TEXT, culprit TEXT, signature TEXT, recovery_ms REAL, outcome TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, host TEXT, program TEXT, plan TEXT, time TEXT, duration_ms INTEGER,
    started TEXT, final INTEGER);
CREATE TABLE IF NOT EXISTS edges (
    run TEXT NOT NULL REFERENCES runs(id), caller_domain TEXT, callee TEXT, callee_domain TEXT,
    calls INTEGER, bytes INTEGER, time_ns INTEGER, faulted INTEGER NOT NULL DEFAULT 0);
"""
# What each older schema needs to become the current one.
MIGRATIONS = {
    1: ["ALTER TABLE runs ADD COLUMN started TEXT", "ALTER TABLE runs ADD COLUMN final INTEGER",
        "ALTER TABLE edges ADD COLUMN faulted INTEGER NOT NULL DEFAULT 0"],
}


@record
class Fault:
    host: str
    program: str
    plan: str | None
    domain: str
    signal: str
    function: str | None
    time: str
    culprit: str | None
    signature: str
    recovery_ms: float | None
    outcome: str


def attribute(doc: dict) -> tuple[str | None, str]:
    """The culprit component and the signature of one crash report."""
    frames = [f for f in doc.get("backtrace") or [] if isinstance(f, dict)]
    program_frames = [f for f in frames if f.get("component")]
    culprit = program_frames[0]["component"] if program_frames else None
    if culprit is None:
        comps = doc.get("components") or []
        if len(comps) == 1:
            culprit = comps[0]          # a hang, or no symbols: the domain held one component
    names = [str(f.get("function")) for f in program_frames[:3]] or [str(doc.get("function") or "?")]
    return culprit, f"{doc.get('signal', '?')} | {' | '.join(names)}"


@record
class Report:
    """One report file, read and checked: its path, the digest of its bytes, its document."""
    path: str
    digest: str
    doc: dict


# The fields each report kind must give a value of the right type to, when it gives them at all.
_TEXT = (str,)
_NUMBER = (int, float)
_FIELDS = {
    "qpm.crash/1": {"program": _TEXT, "plan": _TEXT, "domain": _TEXT, "function": _TEXT, "signal": _TEXT,
                    "time": _TEXT, "host": _TEXT, "outcome": _TEXT, "recovery_ms": _NUMBER,
                    "components": (list,), "backtrace": (list,)},
    "qpm.stats/1": {"program": _TEXT, "plan": _TEXT, "host": _TEXT, "time": _TEXT, "started": _TEXT,
                    "pid": (int,), "duration_ms": _NUMBER, "final": (bool,), "edges": (list,)},
}
_EDGE_FIELDS = {"caller_domain": _TEXT, "callee": _TEXT, "callee_domain": _TEXT, "calls": _NUMBER,
                "bytes": _NUMBER, "time_ns": _NUMBER, "faulted": _NUMBER}
_FRAME_FIELDS = {"function": _TEXT, "file": _TEXT, "component": _TEXT}


def _json_type(v) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(v), type(v).__name__)


def _shape_problem(doc) -> str | None:
    """What makes a JSON document not a crash or stats report, or None when it is one."""
    if not isinstance(doc, dict):
        return f"not a qpm.crash/1 or qpm.stats/1 report (a JSON {_json_type(doc)}, not an object)"
    schema = doc.get("schema")
    if schema not in _FIELDS:
        return "not a qpm.crash/1 or qpm.stats/1 report" + (f" (schema {schema!r})" if schema is not None else
                                                            " (no 'schema' field)")

    def wrong(fields: dict, obj: dict, where: str) -> str | None:
        for key, types in fields.items():
            v = obj.get(key)
            if v is not None and (not isinstance(v, types) or (isinstance(v, bool) and bool not in types)):
                return f"malformed {schema} report: {where}'{key}' is a JSON {_json_type(v)}"
        return None

    problem = wrong(_FIELDS[schema], doc, "")
    if problem:
        return problem
    if schema == "qpm.crash/1":
        if any(not isinstance(c, str) for c in doc.get("components") or []):
            return "malformed qpm.crash/1 report: 'components' is a list of names"
        key, fields, what = "backtrace", _FRAME_FIELDS, "backtrace frame"
    else:
        key, fields, what = "edges", _EDGE_FIELDS, "edge"
    for i, item in enumerate(doc.get(key) or []):
        if not isinstance(item, dict):
            return f"malformed {schema} report: {what} {i} is not an object"
        problem = wrong(fields, item, f"{what} {i}: ")
        if problem:
            return problem
    return None


def read_reports(dirs: list[str]) -> list[Report]:
    """The crash-*.json and stats-*.json files below dirs, read and checked before anything is
    stored: a missing directory is a UserError, and every file that is not a report is named in
    one UserErrors."""
    for d in dirs:
        if not os.path.isdir(d):
            raise UserError(f"no such directory: {d}" if not os.path.exists(d) else
                            f"not a directory: {d} (--reports names directories of reports)")
    reports: list[Report] = []
    problems: list[UserError] = []
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "**", "*.json"), recursive=True)):
            if not os.path.basename(path).startswith(("crash-", "stats-")):
                continue
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except OSError as e:
                problems.append(UserError(f"cannot read report: {e.strerror}", path))
                continue
            try:
                doc = json.loads(raw)
            except ValueError as e:
                where = (e.lineno, e.colno) if isinstance(e, json.JSONDecodeError) else (0, 0)
                problems.append(UserError(f"not valid JSON: {getattr(e, 'msg', e)}", path, *where))
                continue
            problem = _shape_problem(doc)
            if problem:
                problems.append(UserError(problem, path))
            else:
                reports.append(Report(path, hashlib.sha256(raw).hexdigest(), doc))
    if problems:
        raise UserErrors(problems)
    return reports


class Store:
    def __init__(self, path: str):
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        try:
            self.db = sqlite3.connect(path)
            self.db.executescript(SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError as e:
            raise UserError(f"not a report store: {e}", path) from None
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            self.db.commit()
        elif int(row[0]) in MIGRATIONS:
            with self.db:
                for version in range(int(row[0]), SCHEMA_VERSION):
                    for statement in MIGRATIONS[version]:
                        self.db.execute(statement)
                self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise UserError(f"report store has schema {row[0]}; this qtool reads {SCHEMA_VERSION}", path)
        self.path = path

    def ingest(self, dirs: list[str]) -> dict[str, int]:
        """Adds the reports below dirs (see read_reports and add)."""
        return self.add(read_reports(dirs))

    def add(self, reports: list[Report]) -> dict[str, int]:
        """Adds reports read by read_reports.  Counts: new crashes, new runs, runs whose figures
        a later version of their stats file replaced (updated), and report files read (seen)."""
        added = {"crashes": 0, "runs": 0, "updated": 0, "seen": 0}
        for r in reports:
            doc = r.doc
            added["seen"] += 1
            if doc["schema"] == "qpm.crash/1":
                culprit, signature = attribute(doc)
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO crashes VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (r.digest, doc.get("host"), doc.get("program"), doc.get("plan"), doc.get("domain"),
                     doc.get("signal"), doc.get("function"), doc.get("time"), culprit, signature,
                     doc.get("recovery_ms"), doc.get("outcome")))
                added["crashes"] += cur.rowcount
            else:
                outcome = self._ingest_run(doc, r.digest, r.path)
                if outcome:
                    added[outcome] += 1
        self.db.commit()
        return added

    def _ingest_run(self, doc: dict, digest: str, path: str) -> str | None:
        """One stats report: "runs" if it adds a run, "updated" if it replaces the figures of a
        run already in the store (a later write of the same run's file), None if it adds nothing."""
        try:
            duration = doc.get("duration_ms")
            duration = None if duration is None else int(duration)
            edges = [(e.get("caller_domain"), e.get("callee"), e.get("callee_domain"), int(e.get("calls", 0)),
                      int(e.get("bytes", 0)), int(e.get("time_ns", 0)), int(e.get("faulted", 0)))
                     for e in doc.get("edges") or []]
        except (TypeError, ValueError, AttributeError):
            raise UserError("malformed qpm.stats/1 report (duration_ms and edge figures must be integers)",
                            path) from None
        final = bool(doc.get("final", True))
        key = run_key(doc) or digest
        row = self.db.execute("SELECT duration_ms, final FROM runs WHERE id = ?", (key,)).fetchone()
        if row is not None:
            old_duration, old_final = row[0] or 0, bool(row[1])
            # A later write covers more time; at equal time the one written at exit wins.
            if not ((duration or 0) > old_duration or ((duration or 0) == old_duration and final and not old_final)):
                return None
            self.db.execute("DELETE FROM edges WHERE run = ?", (key,))
            self.db.execute("DELETE FROM runs WHERE id = ?", (key,))
        self.db.execute("INSERT INTO runs (id, host, program, plan, time, duration_ms, started, final) "
                        "VALUES (?,?,?,?,?,?,?,?)",
                        (key, doc.get("host"), doc.get("program"), doc.get("plan"), doc.get("time"), duration,
                         doc.get("started"), int(final)))
        self.db.executemany("INSERT INTO edges (run, caller_domain, callee, callee_domain, calls, bytes, time_ns, "
                            "faulted) VALUES (?,?,?,?,?,?,?,?)", [(key, *e) for e in edges])
        return "runs" if row is None else "updated"

    def faults(self, program: str | None = None) -> list[Fault]:
        rows = self.db.execute("SELECT host, program, plan, domain, signal, function, time, culprit, signature, "
                               "recovery_ms, outcome FROM crashes ORDER BY time").fetchall()
        return [Fault(*r) for r in rows if program is None or r[1] == program]

    def calls(self, program: str | None = None) -> dict[str, float]:
        """Calls per function, summed over every run (of one program, when named)."""
        rows = self.db.execute("SELECT runs.program, callee, SUM(calls) FROM edges JOIN runs ON edges.run = runs.id "
                               "GROUP BY runs.program, callee").fetchall()
        out: dict[str, float] = {}
        for prog, callee, n in rows:
            if program is None or prog == program:
                out[callee] = out.get(callee, 0.0) + float(n)
        return out

    def programs(self) -> list[str]:
        return sorted({r[0] for r in self.db.execute("SELECT program FROM crashes UNION SELECT program FROM runs")
                       if r[0]})

    def edge_costs(self, program: str | None = None) -> list[tuple[str, str, int, int, int, int]]:
        """Per edge (caller domain, function): calls, bytes, time_ns, faulted calls (of one
        program's runs, when named)."""
        where = "WHERE runs.program IS ? " if program is not None else ""
        return self.db.execute("SELECT caller_domain, callee, SUM(calls), SUM(bytes), SUM(time_ns), SUM(faulted) "
                               f"FROM edges JOIN runs ON edges.run = runs.id {where}"
                               "GROUP BY caller_domain, callee ORDER BY SUM(time_ns) DESC",
                               (program,) if program is not None else ()).fetchall()

    def runs(self, program: str | None = None) -> list[tuple[str, str, int]]:
        """(host, time of the last write, duration_ms) per run with stats."""
        rows = self.db.execute("SELECT host, time, duration_ms, program FROM runs ORDER BY time").fetchall()
        return [r[:3] for r in rows if program is None or r[3] == program]

    def unfinished_runs(self, program: str | None = None) -> int:
        """Runs whose last stats write was not the one at exit: killed by a signal, or still going."""
        rows = self.db.execute("SELECT program FROM runs WHERE final = 0").fetchall()
        return sum(1 for r in rows if program is None or r[0] == program)

    def hosts(self, program: str | None = None) -> list[str]:
        rows = self.db.execute("SELECT host, program FROM crashes UNION SELECT host, program FROM runs")
        return sorted({r[0] for r in rows if r[0] and (program is None or r[1] == program)})
