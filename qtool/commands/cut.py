"""qtool cut: where to cut, from the call graph and what a crossing costs here."""

from __future__ import annotations

import os
import sys
from collections import Counter

from ..atomic import write_output
from ..errors import UserError
from .common import ValuesThenPaths, add_source_arguments, analyze, check_outputs, emit, refuse_errors

HELP = "propose the cheapest domains that isolate the given components"


def add_arguments(parser) -> None:
    parser.add_argument("--suggest", action="store_true",
                        help="propose a plan: the only mode, and what cut does without it too")
    add_source_arguments(parser)
    parser.add_argument("--isolate", action=ValuesThenPaths, metavar="C",
                        help="components to isolate (default: those crash reports blame); repeat it "
                             "(--isolate a --isolate b) or list several (--isolate a b): a value that "
                             "ends in .c or is a directory holding .c files is one of the PATHS")
    parser.add_argument("--profile", action="append", default=[], metavar="DIR",
                        help="directory of stats-*.json (measured calls) and crash-*.json files; "
                             "may be repeated")
    parser.add_argument("-o", dest="output_plan", metavar="plan.yaml", help="write the best plan here")
    parser.add_argument("--dot", metavar="FILE", help="write a Graphviz picture (and FILE.svg when dot is installed)")
    parser.add_argument("--detail", action="store_true",
                        help="the function-level view: every call the cut makes a crossing (text), "
                             "functions in the picture")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format on stdout (default: text)")
    parser.add_argument("--recalibrate", action="store_true",
                        help="measure the cost of a crossing again instead of using the cached figure")


def _profile(dirs: list[str]) -> tuple[dict[str, float], dict[str, float], Counter]:
    """Measured calls per run and bytes per call of every function, and the crashes' culprits."""
    import glob
    import json
    from ..reports import attribute
    calls: dict[str, float] = {}
    total_bytes: dict[str, float] = {}
    culprits: Counter = Counter()
    stats = [f for d in dirs for f in sorted(glob.glob(os.path.join(d, "stats-*.json")))]
    for path in stats:
        try:
            doc = json.load(open(path))
            for e in doc["edges"]:
                calls[e["callee"]] = calls.get(e["callee"], 0.0) + float(e["calls"]) / len(stats)
                total_bytes[e["callee"]] = total_bytes.get(e["callee"], 0.0) + float(e["bytes"]) / len(stats)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"not a qpm.stats/1 file: {err}", path) from None
    per_call = {f: total_bytes[f] / n for f, n in calls.items() if n > 0}
    for d in dirs:
        if not os.path.isdir(d):
            raise UserError(f"no such directory: {d}")
        for path in sorted(glob.glob(os.path.join(d, "crash-*.json"))):
            try:
                culprit, _ = attribute(json.load(open(path)))
            except (OSError, ValueError, TypeError, AttributeError) as err:
                raise UserError(f"not a qpm.crash/1 file: {err}", path) from None
            if culprit:
                culprits[culprit] += 1
    return calls, per_call, culprits


def _plan_yaml(s: cut.Suggestion) -> str:
    from ..plan import render
    best = s.candidates[0]
    return render([(d, list(c)) for d, c in best.domains],
                  f"Suggested by qtool cut --suggest: {best.crossings:.3g} crossings and "
                  f"{best.cost_ns / 1e3:.3g} us per run predicted.")


def _text(s: cut.Suggestion, culprits: Counter, detail: bool = False) -> str:
    out = [f"suspects: {', '.join(s.suspects)}" + (f" (crash reports: {dict(culprits)})" if culprits else ""),
           f"main program: component '{s.main_component}'",
           f"cost of a crossing: {s.costs.ns_per_call:.0f} ns + {s.costs.ns_per_byte:.3f} ns/byte ({s.costs.source})",
           f"cut: {s.bound}"]
    for rank, c in enumerate(s.candidates, 1):
        out.append(f"\n{rank}. {c.name}: {c.crossings:.3g} crossings, {c.cost_ns / 1e3:.3g} us per run — {c.why}")
        for d, comps in c.domains:
            out.append(f"   domain {d}: {', '.join(comps)}")
        for e in c.cut:
            out.append(f"   cut {e.a} -- {e.b}: {e.crossings:.3g} crossings/run, {e.cost_ns / 1e3:.3g} us/run "
                       f"({', '.join(e.functions)})")
        if detail:
            for call in c.calls:
                via = f" via '{call.via}'" if call.via else ""
                out.append(f"     call {call.caller_component}.{call.caller} -> {call.callee_component}.{call.callee}"
                           f"{via}: {call.crossings:.3g}/run")
    if s.articulation_points:
        out.append(f"\nnatural boundaries (articulation points of the component graph): "
                   f"{', '.join(s.articulation_points)}")
    out += [f"note: {n}" for n in s.notes]
    return "\n".join(out) + "\n"


def _json(s: cut.Suggestion, culprits: Counter) -> str:
    import json
    return json.dumps({
        "schema": "qpm.cut/1", "suspects": list(s.suspects), "culprits": dict(culprits),
        "main_component": s.main_component, "bound": s.bound,
        "costs": {"ns_per_call": s.costs.ns_per_call, "ns_per_byte": s.costs.ns_per_byte, "source": s.costs.source},
        "candidates": [{
            "name": c.name, "crossings_per_run": c.crossings, "cost_ns_per_run": c.cost_ns, "why": c.why,
            "domains": [{"domain": d, "components": list(comps)} for d, comps in c.domains],
            "cut": [{"a": e.a, "b": e.b, "crossings_per_run": e.crossings, "bytes_per_run": e.bytes,
                     "cost_ns_per_run": e.cost_ns, "functions": list(e.functions)} for e in c.cut],
            "calls": [{"caller": x.caller, "callee": x.callee, "caller_component": x.caller_component,
                       "callee_component": x.callee_component, "crossings_per_run": x.crossings,
                       **({"via": x.via} if x.via else {})}
                      for x in c.calls],
        } for c in s.candidates],
        "articulation_points": list(s.articulation_points), "notes": list(s.notes),
    }, indent=2) + "\n"


def run(options) -> int:
    import shutil
    import subprocess

    from .. import cut      # networkx, imported only by the commands that cut
    from ..costs import crossing_costs, describe
    svg_path = os.path.splitext(options.dot)[0] + ".svg" if options.dot else None
    check_outputs(options.output_plan, options.dot, svg_path if svg_path and shutil.which("dot") else None)
    calls, bytes_per_call, culprits = _profile(options.profile)
    suspects = options.isolate or [c for c, _ in culprits.most_common()]
    if not suspects:
        raise UserError("nothing to isolate: name components with --isolate, or give --profile directories "
                        "holding crash reports")
    model = analyze(options)
    if refuse_errors(model, "no plan proposed"):
        return 1
    costs = crossing_costs(options.recalibrate)
    s = cut.suggest(model, suspects, costs, calls or None, bytes_per_call or None)
    print(describe(costs), file=sys.stderr)
    if options.output_plan:
        write_output(options.output_plan, _plan_yaml(s))
    if options.dot:
        picture = cut.dot_functions(model, s) if options.detail else cut.dot(model, s)
        write_output(options.dot, picture)
        if not shutil.which("dot"):
            print(f"qtool: note: {svg_path} not made: Graphviz's 'dot' is not installed ({options.dot} is written; "
                  f"'dot -Tsvg {options.dot} -o {svg_path}' makes it where Graphviz is)", file=sys.stderr)
        else:
            svg = subprocess.run(["dot", "-Tsvg"], input=picture, capture_output=True, text=True)
            if svg.returncode == 0:
                write_output(svg_path, svg.stdout)
            else:
                print(f"qtool: note: {svg_path} not made: dot failed: {svg.stderr.strip()} ({options.dot} is "
                      f"written)", file=sys.stderr)
    options.output = None
    emit(options, _json(s, culprits) if options.format == "json" else _text(s, culprits, options.detail))
    best = "; ".join(f"{d}: {' '.join(comps)}" for d, comps in s.candidates[0].domains)
    print(f"best: {best}", file=sys.stderr)
    return 0
