"""qtool check --plan: validate a plan against the sources; every real crossing must marshal."""

from __future__ import annotations

import sys

from .. import analyzer, marshal, output
from ..plan import check_plan, load_plan
from .common import add_output_arguments, add_source_arguments, base_dir, emit, exit_code

HELP = "check a plan against the sources: components known, crossings marshallable"


def add_arguments(parser) -> None:
    parser.add_argument("--plan", required=True, metavar="plan.yaml", help="the plan to check")
    add_source_arguments(parser)
    add_output_arguments(parser)


def run(options) -> int:
    plan, diags = load_plan(options.plan)
    model = analyzer.analyze(options.paths, options.compile_commands, options.jobs)
    diags = list(model.diagnostics) + diags + marshal.check_annotations(model) + check_plan(plan, model)
    diags = marshal.sorted_unique(diags)
    base = base_dir()
    if options.format == "json":
        text = output.diagnostics_json(diags, base)
    elif options.format == "sarif":
        text = output.sarif(diags, base)
    else:
        text = output.diagnostics_text(diags, base)
    emit(options, text)
    domains = ", ".join(d.name for d in plan.domains) or "none (monolithic)"
    print(f"plan {options.plan}: isolated domains: {domains}; {output.summary(diags)}", file=sys.stderr)
    return exit_code(diags)
