"""qtool analyze: the program model and every diagnostic that needs no plan."""

from __future__ import annotations

import os
import sys

from .common import (add_fix_argument, add_output_arguments, add_source_arguments, analyze, base_dir,
                     check_outputs, emit, exit_code, fix_sources, remembered)

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
    moved = _moved(model, made_from, entries, found)
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


def _moved(model, previous, entries: dict, found: tuple | None):
    """When model is previous with places moved (an edit that only moved lines, build.moved_places)
    and found is what the checks found in previous: those findings with their places moved, and
    entries so (what the checks find in model, which depend on its places only through the places
    they name); None when not, or when a finding's words name a file that moved (a place in a
    message is not moved with it)."""
    from ..analyzer import build
    moves = build.moved_places(model, previous) if found is not None and previous is not None else None
    if not moves:
        return None
    names = [os.path.basename(f) for f in moves]
    said = [*found, *(d for _, diags, _ in entries.values() for d in diags)]
    if any(n in d.message for d in [*said, *(n for d in said for n in d.notes),
                                    *(note for _, _, roots in entries.values() for _, note in roots)]
           for n in names):
        return None

    def moved(d) -> bool:
        """Whether a finding (or a note) holds a place in a file that moved."""
        return (d.location is not None and d.location.file in moves) or \
            any(n.location is not None and n.location.file in moves for n in getattr(d, "notes", ())) or \
            any(f.file in moves for f in getattr(d, "fixits", ()))

    def relocated(items: tuple) -> tuple | None:
        return items if not any(map(moved, items)) else build.relocate(items, moves)

    extra = relocated(found)
    made = {}
    for key, (reads, diags, roots) in entries.items():
        diags = relocated(diags)
        notes = relocated(tuple(note for _, note in roots))
        if extra is None or diags is None or notes is None:
            return None
        made[key] = (reads, diags, tuple((usr, note) for (usr, _), note in zip(roots, notes)))
    return list(extra), made


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
