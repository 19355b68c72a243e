"""qtool analyze: the program model and every diagnostic that needs no plan."""

from __future__ import annotations

import sys

from .common import (add_fix_argument, add_output_arguments, add_source_arguments, analyze, base_dir,
                     check_outputs, emit, exit_code, fix_sources, moved_findings, remembered)

HELP = "the program model: components, functions, calls, diagnostics"


def add_arguments(parser) -> None:
    add_source_arguments(parser)
    add_output_arguments(parser)
    add_fix_argument(parser)


def describe(a: str, b: str) -> str:
    return f"between components '{a}' and '{b}', which a plan could separate"


def diagnose(model):
    from ..analyzer import cache
    entries, made_from, current, found = cache.load_signatures(model, ("analyze",))
    moved = moved_findings(model, made_from, entries, found)
    if moved is not None:
        extra, made = moved
    else:
        from .. import marshal
        extra = marshal.check_annotations(model)
        # Every edge between two components is a potential boundary: its problems are warnings
        # here and become errors under `qtool check` for the plans that really cut it.  What the
        # checks found in the model this one was made from stands where what it read did not change.
        signatures = marshal.Signatures(entries, made_from, current)
        extra += marshal.check_boundaries(model, lambda c: c, "warning", describe, signatures)
        made = signatures.made
    cache.store_signatures(model, ("analyze",), made, tuple(extra))
    return model.with_diagnostics(extra)


def result(options, model) -> tuple[bytes, str, int]:
    """What the command prints: the output (UTF-8), the summary line (stderr) and the exit status."""
    from .. import output
    base = base_dir()
    if options.format == "json":
        from ..analyzer import cache
        text = output.model_json(model, base, options.pretty, cache.json_parts())
    elif options.format == "sarif":
        text = output.sarif(model.diagnostics, base, options.pretty)
    else:
        text = output.model_text(model, base)
    return text.encode(), output.summary(model.diagnostics), exit_code(model.diagnostics)


def run(options) -> int:
    check_outputs(options.output)
    if options.fix:
        model = diagnose(analyze(options))
        if fix_sources(options, model.diagnostics):
            model = diagnose(analyze(options))      # what remains in the fixed sources is the result
        text, summary, code = result(options, model)
    else:
        text, summary, code = remembered(options, lambda: ("analyze", options.format, options.pretty),
                                         lambda: lambda model: result(options, diagnose(model)))
    emit(options, text)
    print(summary, file=sys.stderr)
    return code
