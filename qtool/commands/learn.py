"""qtool learn: a new plan from crash reports and measurements, with the reasons."""

from __future__ import annotations

import math
import os
import sys

from ..atomic import write_output
from ..errors import UserError
from .common import ValuesThenPaths, add_source_arguments, analyze, check_outputs, emit, refuse_errors

HELP = "write a plan learned from crash and stats reports"


def add_arguments(parser) -> None:
    from .. import learn
    add_source_arguments(parser)
    add_store_arguments(parser, paths=True)
    parser.add_argument("--policy", choices=learn.POLICIES, required=True,
                        help="optimistic: isolate what crashed, merge it back after a fault-free time; "
                             "pessimistic: isolate everything, merge what has served enough calls; "
                             "cooperative: isolate where faults cost more than the boundary, pooling hosts")
    parser.add_argument("--current", metavar="plan.yaml", help="the plan running now")
    parser.add_argument("-o", dest="output_plan", metavar="plan.yaml", required=True, help="where to write the plan")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="format of the decision on stdout (default: text)")
    parser.add_argument("--program", help="use the reports of this program only (default: the one whose "
                                          "reports match the sources best)")
    parser.add_argument("--restart-cost-s", type=float, default=learn.Params.restart_cost_s,
                        help="seconds of service a whole-program restart costs, lost work included (default 1)")
    parser.add_argument("--merge-after-s", type=float, default=learn.Params.merge_after_s,
                        help="optimistic: fault-free seconds before a domain merges back (default 3600)")
    parser.add_argument("--trust-calls", type=int, default=learn.Params.trust_calls,
                        help="pessimistic: fault-free calls that make a component trusted (default 10000)")
    parser.add_argument("--recalibrate", action="store_true",
                        help="measure the cost of a crossing again instead of using the cached figure")


def add_store_arguments(parser, paths: bool = False) -> None:
    parser.add_argument("--reports", action=ValuesThenPaths, paths=paths, required=True, metavar="DIR",
                        help="directories of crash-*.json and stats-*.json (from any number of hosts); "
                             "repeat it (--reports a --reports b) or list several (--reports a b)" +
                             ("; a value that ends in .c or is a directory holding .c files is one of "
                              "the PATHS" if paths else ""))
    parser.add_argument("--db", default=os.path.join(".qpm", "reports.sqlite"), metavar="FILE",
                        help="the report store, added to on every run (default .qpm/reports.sqlite)")


def _num(x: float) -> float | None:
    return None if math.isinf(x) else x


def run(options) -> int:
    from .. import learn
    from ..costs import crossing_costs, describe
    from ..plan import load_plan, render
    from ..reports import Store, read_reports
    check_outputs(options.output_plan)
    reports = read_reports(options.reports)
    current = None
    if options.current:
        plan, diags = load_plan(options.current)
        if any(d.severity == "error" for d in diags):
            raise UserError(diags[0].message, options.current, diags[0].location.line if diags[0].location else 0)
        current = [c.name for d in plan.domains for c in d.components]
    model = analyze(options)
    if refuse_errors(model, "no plan written"):
        return 1
    store = Store(options.db)
    added = store.add(reports)
    params = learn.Params(options.restart_cost_s, options.merge_after_s, options.trust_calls)
    costs = crossing_costs(options.recalibrate)
    d = learn.decide(model, store, options.policy, params, costs, current, options.program)
    print(describe(costs), file=sys.stderr)
    domains = [(name, list(comps)) for name, comps in d.suggestion.candidates[0].domains] if d.suggestion else []
    # Room for the faults the data predicts: four times the worst expected rate over the window.
    worst = max((c.rate_upper for c in d.components if c.isolate), default=0.0)
    max_restarts = max(5, math.ceil(worst * 60 * 4))
    faults = sum(c.faults for c in d.components)
    write_output(options.output_plan, render(domains, f"Learned by qtool learn --policy {d.policy} from "
                                                    f"{faults} fault(s) in {d.runs} run(s).",
                                           max_restarts=max_restarts))
    if options.format == "json":
        import json
        text = json.dumps({
            "schema": "qpm.learn/1", "policy": d.policy, "observed_s": d.observed_s,
            "observed_known": d.observed_known, "runs": d.runs,
            "hosts": list(d.hosts), "recovery_s": d.recovery_s,
            "ingested": {k: added[k] for k in ("crashes", "runs", "seen")}, "runs_updated": added["updated"],
            "isolate": list(d.isolated), "domains": [{"domain": n, "components": c} for n, c in domains],
            "components": [{
                "name": c.name, "isolate": c.isolate, "reason": c.reason, "faults": c.faults,
                "hosts_with_faults": c.hosts_with_faults, "last_fault": c.last_fault, "calls": c.calls,
                "rate_per_s": c.rate, "rate_upper_per_s": c.rate_upper, "boundary_s_per_s": _num(c.boundary_s),
                "fault_cost_together_s_per_s": c.together_s, "fault_cost_isolated_s_per_s": c.isolated_s,
            } for c in d.components],
            "notes": list(d.notes),
        }, indent=2) + "\n"
    else:
        observed = f"{d.observed_s:.3g} s observed" if d.observed_known else "observation time unknown"
        lines = [f"policy {d.policy}: {d.runs} run(s), {observed}, hosts: "
                 f"{', '.join(d.hosts) or 'none'}; restart of a domain {d.recovery_s * 1000:.3g} ms",
                 f"ingested {added['crashes']} new crash report(s), {added['runs']} new stats report(s), "
                 f"{added['updated']} run(s) updated ({added['seen']} read) into {options.db}"]
        for c in d.components:
            lines.append(f"  {c.name:<12} {'ISOLATE' if c.isolate else 'together':<8} faults {c.faults:<3} "
                         f"rate {c.rate:.3g}/s (<= {c.rate_upper:.3g}) boundary {c.boundary_s:.3g} s/s: {c.reason}")
        lines.append("plan: " + ("; ".join(f"{n} = {', '.join(c)}" for n, c in domains) or "monolithic (isolate: [])"))
        lines += [f"note: {n}" for n in d.notes]
        text = "\n".join(lines) + "\n"
    options.output = None
    emit(options, text)
    print(f"wrote {options.output_plan}", file=sys.stderr)
    return 0
