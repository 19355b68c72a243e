"""qtool check --plan: validate a plan against the sources; every real crossing must marshal."""

from __future__ import annotations

import sys

from .. import marshal, output
from .common import (add_fix_argument, add_output_arguments, add_source_arguments, analyze, base_dir,
                     check_outputs, emit, exit_code, fix_sources)

HELP = "check a plan against the sources: components, crossings"


def add_arguments(parser) -> None:
    parser.add_argument("--plan", required=True, metavar="plan.yaml", help="the plan to check")
    add_source_arguments(parser)
    add_output_arguments(parser)
    add_fix_argument(parser)


def diagnose(options, plan, plan_diags):
    from ..plan import check_plan
    model = analyze(options)
    diags = list(model.diagnostics) + plan_diags + marshal.check_annotations(model) + check_plan(plan, model)
    return marshal.sorted_unique(diags)


def run(options) -> int:
    from ..plan import load_plan      # and yaml: imported only by the commands that read plans
    check_outputs(options.output)
    plan, plan_diags = load_plan(options.plan)
    diags = diagnose(options, plan, plan_diags)
    if options.fix and fix_sources(options, diags):
        diags = diagnose(options, plan, plan_diags)     # what remains in the fixed sources
    base = base_dir()
    if options.format == "json":
        text = output.diagnostics_json(diags, base, options.pretty)
    elif options.format == "sarif":
        text = output.sarif(diags, base, options.pretty)
    else:
        text = output.diagnostics_text(diags, base)
    emit(options, text)
    domains = ", ".join(d.name for d in plan.domains) or "none (monolithic)"
    print(f"plan {options.plan}: isolated domains: {domains}; {output.summary(diags)}", file=sys.stderr)
    return exit_code(diags)
