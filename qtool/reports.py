"""Stage: runtime reports -> a store of faults and measurements, pooled across runs and hosts.

    Store(path).ingest(dirs) -> counts        crash-*.json and stats-*.json, idempotent
    Store.faults(), Store.calls(), ...         what the learning stage and `qtool report` read

The store is an SQLite file with a versioned schema.  A report is keyed by the digest of its
contents, so ingesting the same file twice (or the same report collected from two places) adds
it once.  Each crash is attributed to a culprit component, the first frame of its backtrace that
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
from dataclasses import dataclass

from .errors import UserError

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS crashes (
    id TEXT PRIMARY KEY, host TEXT, program TEXT, plan TEXT, domain TEXT, signal TEXT,
    function TEXT, time TEXT, culprit TEXT, signature TEXT, recovery_ms REAL, outcome TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, host TEXT, program TEXT, plan TEXT, time TEXT, duration_ms INTEGER);
CREATE TABLE IF NOT EXISTS edges (
    run TEXT NOT NULL REFERENCES runs(id), caller_domain TEXT, callee TEXT, callee_domain TEXT,
    calls INTEGER, bytes INTEGER, time_ns INTEGER);
"""


@dataclass(frozen=True)
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
        elif int(row[0]) != SCHEMA_VERSION:
            raise UserError(f"report store has schema {row[0]}; this qtool reads {SCHEMA_VERSION}", path)
        self.path = path

    def ingest(self, dirs: list[str]) -> dict[str, int]:
        added = {"crashes": 0, "runs": 0, "seen": 0}
        for d in dirs:
            if not os.path.isdir(d):
                raise UserError(f"no such directory: {d}")
            for path in sorted(glob.glob(os.path.join(d, "**", "*.json"), recursive=True)):
                name = os.path.basename(path)
                if not name.startswith(("crash-", "stats-")):
                    continue
                with open(path, "rb") as f:
                    raw = f.read()
                try:
                    doc = json.loads(raw)
                except ValueError as e:
                    raise UserError(f"not valid JSON: {e}", path) from None
                key = hashlib.sha256(raw).hexdigest()
                added["seen"] += 1
                if doc.get("schema") == "qpm.crash/1":
                    culprit, signature = attribute(doc)
                    cur = self.db.execute(
                        "INSERT OR IGNORE INTO crashes VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (key, doc.get("host"), doc.get("program"), doc.get("plan"), doc.get("domain"),
                         doc.get("signal"), doc.get("function"), doc.get("time"), culprit, signature,
                         doc.get("recovery_ms"), doc.get("outcome")))
                    added["crashes"] += cur.rowcount
                elif doc.get("schema") == "qpm.stats/1":
                    cur = self.db.execute("INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?,?)",
                                          (key, doc.get("host"), doc.get("program"), doc.get("plan"),
                                           doc.get("time"), doc.get("duration_ms")))
                    if cur.rowcount:
                        added["runs"] += 1
                        self.db.executemany(
                            "INSERT INTO edges VALUES (?,?,?,?,?,?,?)",
                            [(key, e.get("caller_domain"), e.get("callee"), e.get("callee_domain"),
                              int(e.get("calls", 0)), int(e.get("bytes", 0)), int(e.get("time_ns", 0)))
                             for e in doc.get("edges", [])])
                else:
                    raise UserError("not a qpm.crash/1 or qpm.stats/1 report", path)
        self.db.commit()
        return added

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

    def edge_costs(self) -> list[tuple[str, str, int, int, int]]:
        return self.db.execute("SELECT caller_domain, callee, SUM(calls), SUM(bytes), SUM(time_ns) FROM edges "
                               "GROUP BY caller_domain, callee ORDER BY SUM(time_ns) DESC").fetchall()

    def runs(self, program: str | None = None) -> list[tuple[str, str, int]]:
        rows = self.db.execute("SELECT host, time, duration_ms, program FROM runs ORDER BY time").fetchall()
        return [r[:3] for r in rows if program is None or r[3] == program]

    def hosts(self) -> list[str]:
        return sorted({r[0] for r in self.db.execute("SELECT host FROM crashes UNION SELECT host FROM runs")
                       if r[0]})
