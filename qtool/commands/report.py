"""qtool report: faults per component, signatures, recovery times and crossing costs."""

from __future__ import annotations

import sys
from collections import Counter, defaultdict

from ..atomic import write_output
from ..errors import UserError
from .common import check_outputs, emit
from .learn import add_store_arguments

HELP = "summarise crash and stats reports (text, or an HTML page)"


def add_arguments(parser) -> None:
    add_store_arguments(parser)
    parser.add_argument("--program", metavar="NAME",
                        help="only the reports of this program (default: every program, one section each)")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page with plots")


def _bars(title: str, items: list[tuple[str, float]], unit: str) -> str:
    """An inline SVG bar chart: no script, no external file."""
    import html
    if not items:
        return f"<h2>{html.escape(title)}</h2><p>none</p>"
    width, bar = 640, 22
    top = max(v for _, v in items) or 1.0
    rows = []
    for i, (label, value) in enumerate(items):
        w = max(1, int((width - 260) * value / top))
        y = i * (bar + 6)
        rows.append(f'<text x="0" y="{y + 16}" font-size="13">{html.escape(label)}</text>'
                    f'<rect x="250" y="{y}" width="{w}" height="{bar}" fill="#c0392b"/>'
                    f'<text x="{256 + w}" y="{y + 16}" font-size="12">{value:g} {html.escape(unit)}</text>')
    height = len(items) * (bar + 6)
    return (f"<h2>{html.escape(title)}</h2><svg xmlns='http://www.w3.org/2000/svg' width='{width + 120}' "
            f"height='{height}'>{''.join(rows)}</svg>")


def _table(header: tuple[str, ...], rows: list[tuple], indent: str = "  ") -> list[str]:
    """Lines of a table whose columns line up: the first left-aligned, the others right."""
    cells = [header] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return [indent + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
            .rstrip() for r in cells]


class _Program:
    """What the report says of one program's faults and runs."""

    def __init__(self, store: Store, name: str):
        self.name = name
        self.faults = store.faults(name)
        self.by_comp = Counter(f.culprit or "(unattributed)" for f in self.faults)
        self.signatures = Counter(f.signature for f in self.faults)
        self.recoveries = defaultdict(list)
        for f in self.faults:
            if f.recovery_ms is not None:
                self.recoveries[f.domain].append(f.recovery_ms)
        self.edges = store.edge_costs(name)
        self.per_hour = Counter((f.time or "?")[:13] for f in self.faults)
        self.runs = store.runs(name)
        self.observed_s = sum(d or 0 for _, _, d in self.runs) / 1000.0

    def lines(self) -> list[str]:
        import statistics
        observed = f"{self.observed_s:.3f} s observed" if self.observed_s > 0 else "observation time unknown"
        out = [f"== program {self.name}: {len(self.faults)} fault(s), {len(self.runs)} run(s) with stats, "
               f"{observed}", "faults per component:"]
        out += [f"  {c:<20} {n}" for c, n in self.by_comp.most_common()] or ["  none"]
        out += ["", "signatures:"] + ([f"  {n:>4}  {s}" for s, n in self.signatures.most_common(20)] or ["  none"])
        out += ["", "recovery (ms, per domain): median / max"]
        out += [f"  {d:<20} {statistics.median(v):.3f} / {max(v):.3f}  ({len(v)} restarts)"
                for d, v in sorted(self.recoveries.items())] or ["  none"]
        out += ["", "crossing costs (caller domain -> function, summed over the runs):"]
        out += _table(("edge", "calls", "bytes", "time ms", "faulted"),
                      [(f"{a} -> {b}", c, by, f"{t / 1e6:.3f}", fl or 0) for a, b, c, by, t, fl in self.edges[:30]]
                      ) if self.edges else ["  none"]
        return out

    def html(self, heading: bool) -> list[str]:
        import html
        import statistics
        return ([f"<h2>Program {html.escape(self.name)}</h2>"] if heading else []) + [
            _bars("Faults per component", self.by_comp.most_common(), "faults"),
            _bars("Faults over time (per hour, UTC)", sorted(self.per_hour.items()), "faults"),
            _bars("Cost per boundary (time spent crossing)",
                  [(f"{a} -> {b}", round(t / 1e6, 3)) for a, b, _, _, t, _ in self.edges[:20]], "ms"),
            "<h2>Signatures</h2><table><tr><th>count</th><th>signature</th></tr>",
            *[f"<tr><td>{n}</td><td>{html.escape(s)}</td></tr>" for s, n in self.signatures.most_common(50)],
            "</table>", "<h2>Recovery</h2><table><tr><th>domain</th><th>restarts</th><th>median ms</th>"
            "<th>max ms</th></tr>",
            *[f"<tr><td>{html.escape(d)}</td><td>{len(v)}</td><td>{statistics.median(v):.3f}</td>"
              f"<td>{max(v):.3f}</td></tr>" for d, v in sorted(self.recoveries.items())],
            "</table>"]


def run(options) -> int:
    import html
    from ..reports import Store, read_reports
    check_outputs(options.html)
    reports = read_reports(options.reports)
    store = Store(options.db)
    added = store.add(reports)
    names = store.programs()
    if options.program is not None:
        if options.program not in names:
            raise UserError(f"no reports of program '{options.program}' in {options.db} "
                            f"(programs: {', '.join(names) or 'none'})")
        names = [options.program]
    programs = [_Program(store, name) for name in names]
    faults = store.faults(options.program)
    runs = store.runs(options.program)
    observed_s = sum(d or 0 for _, _, d in runs) / 1000.0
    unfinished = store.unfinished_runs(options.program)
    lines = [f"{len(faults)} fault(s) from {len(store.hosts(options.program))} host(s), {len(runs)} run(s) "
             f"with stats ({added['crashes']} crash and {added['runs']} stats report(s) new, {added['updated']} "
             f"run(s) updated in {options.db})",
             (f"observed: {observed_s:.3f} s of running" if observed_s > 0 else
              "no statistics: observation time unknown") +
             (f" ({unfinished} run(s) without a write at exit: killed, or still running)" if unfinished else "")]
    for prog in programs:
        lines += [""] + prog.lines()
    if not programs:
        lines += ["", "no reports"]
    text = "\n".join(lines) + "\n"
    if options.html:
        page = ["<!doctype html><html><head><meta charset='utf-8'><title>Quarantine report</title>",
                "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
                "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}</style></head><body>",
                "<h1>Quarantine report</h1>", f"<p>{html.escape(lines[0])}<br>{html.escape(lines[1])}</p>"]
        for prog in programs:
            page += prog.html(heading=True)
        page.append("</body></html>")
        write_output(options.html, "\n".join(page) + "\n")
        print(f"wrote {options.html}", file=sys.stderr)
    options.output = None
    emit(options, text)
    return 0
