"""qtool check --plan: validate a plan against the sources; every real crossing must marshal."""

from __future__ import annotations

import sys

from .common import (add_fix_argument, add_output_arguments, add_source_arguments, analyze, base_dir,
                     check_outputs, emit, exit_code, fix_sources, moved_findings, remembered)

HELP = "check a plan against the sources: components, crossings"


def add_arguments(parser) -> None:
    parser.add_argument("--plan", required=True, metavar="plan.yaml", help="the plan to check")
    add_source_arguments(parser)
    add_output_arguments(parser)
    add_fix_argument(parser)


def diagnose(model, plan, plan_diags):
    from .. import marshal
    from ..analyzer import cache
    from ..plan import check_plan
    # What the checks found in the model this one was made from, by the same placement, stands
    # where what it read did not change.
    name = ("plan", tuple((d.name, tuple(c.name for c in d.components)) for d in plan.domains))
    entries, made_from, current, kept = cache.load_signatures(model, name)
    # What the checks found, kept with the plan they checked: they depend on all of it (the
    # entries only on its domains).
    moved = moved_findings(model, made_from, entries,
                           kept[1] if isinstance(kept, tuple) and len(kept) == 2 and kept[0] == plan else None)
    if moved is not None:
        found, made = moved
    else:
        signatures = marshal.Signatures(entries, made_from, current)
        found = marshal.check_annotations(model) + check_plan(plan, model, signatures)
        made = signatures.made
    cache.store_signatures(model, name, made, (plan, tuple(found)))
    return marshal.sorted_unique(list(model.diagnostics) + plan_diags + found)


def result(options, plan, diags) -> tuple[bytes, str, int]:
    """What the command prints: the output (UTF-8), the summary line (stderr) and the exit status."""
    from .. import output
    base = base_dir()
    if options.format == "json":
        text = output.diagnostics_json(diags, base, options.pretty)
    elif options.format == "sarif":
        text = output.sarif(diags, base, options.pretty)
    else:
        text = output.diagnostics_text(diags, base)
    domains = ", ".join(d.name for d in plan.domains) or "none (monolithic)"
    return (text.encode(), f"plan {options.plan}: isolated domains: {domains}; {output.summary(diags)}",
            exit_code(diags))


def _plan_contents(path: str) -> tuple | None:
    """What the result depends on besides the sources: the plan, as named and as it reads."""
    from ..analyzer.cache import sha256
    try:
        with open(path, "rb") as f:
            return ("plan", path, sha256(f.read()).hexdigest())
    except OSError:
        return None             # not remembered: loading the plan reports why


def _load_plan(path: str):
    from ..plan import load_plan      # and yaml: imported only when a plan is read
    return load_plan(path)


def run(options) -> int:
    check_outputs(options.output)
    if options.fix:
        plan, plan_diags = _load_plan(options.plan)
        diags = diagnose(analyze(options), plan, plan_diags)
        if fix_sources(options, diags):
            diags = diagnose(analyze(options), plan, plan_diags)     # what remains in the fixed sources
        text, summary, code = result(options, plan, diags)
    else:
        def prepare():
            plan, plan_diags = _load_plan(options.plan)
            return lambda model: result(options, plan, diagnose(model, plan, plan_diags))

        def what():
            plan = _plan_contents(options.plan)
            return plan and ("check", options.format, options.pretty, *plan)

        text, summary, code = remembered(options, what, prepare)
    emit(options, text)
    print(summary, file=sys.stderr)
    return code
