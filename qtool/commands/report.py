"""qtool report: faults per component, signatures, recovery times and crossing costs."""

from __future__ import annotations

import html
import statistics
import sys
from collections import Counter, defaultdict

from ..atomic import write_output
from ..reports import Store, read_reports
from .common import check_outputs, emit
from .learn import add_store_arguments

HELP = "summarise crash and stats reports (text, or an HTML page)"


def add_arguments(parser) -> None:
    add_store_arguments(parser)
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page with plots")


def _bars(title: str, items: list[tuple[str, float]], unit: str) -> str:
    """An inline SVG bar chart: no script, no external file."""
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


def run(options) -> int:
    check_outputs(options.html)
    reports = read_reports(options.reports)
    store = Store(options.db)
    added = store.add(reports)
    faults = store.faults()
    by_comp = Counter(f.culprit or "(unattributed)" for f in faults)
    signatures = Counter(f.signature for f in faults)
    recoveries = defaultdict(list)
    for f in faults:
        if f.recovery_ms is not None:
            recoveries[f.domain].append(f.recovery_ms)
    edges = store.edge_costs()
    per_hour = Counter((f.time or "?")[:13] for f in faults)
    runs = store.runs()
    observed_s = sum(d or 0 for _, _, d in runs) / 1000.0
    unfinished = store.unfinished_runs()
    lines = [f"{len(faults)} fault(s) from {len(store.hosts())} host(s), {len(runs)} run(s) with stats "
             f"({added['crashes']} crash and {added['runs']} stats report(s) new, {added['updated']} run(s) "
             f"updated in {options.db})",
             (f"observed: {observed_s:.3f} s of running" if observed_s > 0 else
              "no statistics: observation time unknown") +
             (f" ({unfinished} run(s) without a write at exit: killed, or still running)" if unfinished else ""),
             "", "faults per component:"]
    lines += [f"  {c:<20} {n}" for c, n in by_comp.most_common()] or ["  none"]
    lines += ["", "signatures:"] + ([f"  {n:>4}  {s}" for s, n in signatures.most_common(20)] or ["  none"])
    lines += ["", "recovery (ms, per domain): median / max"]
    lines += [f"  {d:<20} {statistics.median(v):.3f} / {max(v):.3f}  ({len(v)} restarts)"
              for d, v in sorted(recoveries.items())] or ["  none"]
    lines += ["", "crossing costs (caller domain -> function): calls, bytes, time, faulted calls"]
    lines += [f"  {a} -> {b:<24} {c:>10} {by:>12} {t / 1e6:>10.3f} ms {fl or 0:>6}"
              for a, b, c, by, t, fl in edges[:30]] or ["  none"]
    text = "\n".join(lines) + "\n"
    if options.html:
        page = ["<!doctype html><html><head><meta charset='utf-8'><title>Quarantine report</title>",
                "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
                "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}</style></head><body>",
                "<h1>Quarantine report</h1>", f"<p>{html.escape(lines[0])}<br>{html.escape(lines[1])}</p>",
                _bars("Faults per component", by_comp.most_common(), "faults"),
                _bars("Faults over time (per hour, UTC)", sorted(per_hour.items()), "faults"),
                _bars("Cost per boundary (time spent crossing)",
                      [(f"{a} -> {b}", round(t / 1e6, 3)) for a, b, _, _, t, _ in edges[:20]], "ms"),
                "<h2>Signatures</h2><table><tr><th>count</th><th>signature</th></tr>",
                *[f"<tr><td>{n}</td><td>{html.escape(s)}</td></tr>" for s, n in signatures.most_common(50)],
                "</table>", "<h2>Recovery</h2><table><tr><th>domain</th><th>restarts</th><th>median ms</th>"
                "<th>max ms</th></tr>",
                *[f"<tr><td>{html.escape(d)}</td><td>{len(v)}</td><td>{statistics.median(v):.3f}</td>"
                  f"<td>{max(v):.3f}</td></tr>" for d, v in sorted(recoveries.items())],
                "</table></body></html>"]
        write_output(options.html, "\n".join(page) + "\n")
        print(f"wrote {options.html}", file=sys.stderr)
    options.output = None
    emit(options, text)
    return 0
