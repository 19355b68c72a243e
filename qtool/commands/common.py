"""What the subcommands share: source arguments, output format, writing the result, and
remembering it.

A command's module imports only what parsing its arguments needs: the stages it runs are imported
when it runs them, so that a run answered from the cache (remembered) loads no model, no libclang
and none of the checks.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import analyzer
from ..analyzer.sources import load_compile_commands
from ..atomic import check_output, write_output
from ..errors import UserError
from ..output import FORMATS

PATHS_HELP = ("C files or directories searched for .c files (default: .); they may come before, "
              "between or after the options")


def add_source_arguments(parser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATHS", help=PATHS_HELP)
    parser.set_defaults(paths_among_values=[])
    parser.add_argument("-p", dest="compile_commands", metavar="compile_commands.json",
                        help="take compiler flags from this compilation database")
    parser.add_argument("-j", "--jobs", type=int, default=None,
                        help="parallel parsing workers (default: one per core)")


def names_c_sources(value: str) -> bool:
    """Whether a command-line word names C sources: it ends in .c, or it is a directory with a
    .c file below it (build/ and hidden directories skipped, as PATHS are searched)."""
    if value.endswith(".c"):
        return True
    if not os.path.isdir(value):
        return False
    for _, dirs, files in os.walk(value):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "build"]
        if any(f.endswith(".c") for f in files):
            return True
    return False


class ValuesThenPaths(argparse.Action):
    """An option of one or more values that may be repeated (--isolate a --isolate b, or
    --isolate a b): its first value is always its own; a later one that names C sources
    (names_c_sources) is one of the command's PATHS, so that PATHS may follow the option."""

    def __init__(self, option_strings, dest, paths: bool = True, **kwargs):
        kwargs.setdefault("default", [])
        super().__init__(option_strings, dest, nargs="+", **kwargs)
        self.paths = paths

    def __call__(self, parser, namespace, values, option_string=None):
        own = list(getattr(namespace, self.dest) or [])
        own.append(values[0])
        for v in values[1:]:
            if self.paths and names_c_sources(v):
                namespace.paths_among_values = [*namespace.paths_among_values, v]
            else:
                own.append(v)
        setattr(namespace, self.dest, own)


def analyze(options):
    """The program model of the command's sources; no C source at all is a usage error."""
    return analysis(options)()


def analysis(options):
    """The command's sources analysed, their model as a function that returns it (see
    analyzer.analysis); no C source at all is a usage error."""
    paths = options.paths
    if options.compile_commands and not paths:
        if not load_compile_commands(options.compile_commands):
            raise UserError("the compilation database lists no source file", options.compile_commands)
    elif not analyzer.find_sources(paths):
        raise UserError(f"no C source files under {', '.join(paths) or '.'} "
                        "(PATHS name .c files or directories holding them)")
    return analyzer.analysis(paths, options.compile_commands, options.jobs)


def remembered(options, what, prepare):
    """The command's result for its sources, remembered with their model (analyzer/cache.py).

    what() names the result among those of one model: the command, its options, the contents of
    any other file it reads (None: not to be remembered).  prepare() does what the command does
    before it analyses (reads a plan, whose errors come first) and returns derive(model), which
    makes the result.  A run whose sources are as the remembered result's model was made from
    takes the result and analyses nothing; one whose edits left the model as it was (a function
    body changed, no declaration, call or line moved) analyses and takes it.  A result is stored
    only when what() names it the same before and after it was made."""
    from ..analyzer import cache
    name = what()
    if name is None:
        return prepare()(analyze(options))
    try:
        items, key = analyzer.program(options.paths, options.compile_commands)
    except UserError:
        items = None            # analysis() reports it, after what prepare() checks first
    value = cache.load_result(key, len(items), name) if items else None
    if value is None:
        derive = prepare()
        model = analysis(options)
        value = cache.result_of_model(key, name) if items else None
        if value is None:
            value = derive(model())
            if items and what() == name:
                cache.store_result(key, name, value)
    return value


def moved_findings(model, previous, entries: dict, found: tuple | None):
    """What a command's checks find in model, when model is previous with places moved (an edit
    that only moved lines, build.moved_places) and found is what they found in previous (with
    entries, marshal.Signatures's, cache.load_signatures): those findings with their places moved,
    and the entries so, for the next run (the checks are a function of the model, which depends on
    its places only through the places they name); None when not, or when a finding's words name
    a file that moved (build.relocate_findings)."""
    from ..analyzer import build
    moves = build.moved_places(model, previous) if found is not None and previous is not None else None
    if not moves:
        return None
    extra = build.relocate_findings(found, moves)
    if extra is None:
        return None
    made = {}
    for key, (reads, diags, roots) in entries.items():
        diags = build.relocate_findings(diags, moves)
        notes = build.relocate_findings(tuple(note for _, note in roots), moves)
        if diags is None or notes is None:
            return None
        made[key] = (reads, diags, tuple((usr, note) for (usr, _), note in zip(roots, notes)))
    return list(extra), made


def refuse_errors(model, what: str) -> bool:
    """For the commands that make a plan from the model (cut, learn): prints the errors of the
    analysis on stderr and returns True when there are any, so that no plan comes of them."""
    from .. import marshal, output
    errors = [d for d in marshal.sorted_unique(list(model.diagnostics) + marshal.check_annotations(model))
              if d.severity == "error"]
    if not errors:
        return False
    sys.stderr.write(output.diagnostics_text(errors, base_dir()))
    n = len(errors)
    print(f"qtool: {n} error{'s' * (n != 1)} in the sources: {what} (qtool analyze lists every diagnostic)",
          file=sys.stderr)
    return True


def check_outputs(*paths: str | None) -> None:
    """Every file the command will write, checked before any work: a run that cannot write one
    of them writes none."""
    for p in paths:
        if p:
            check_output(p)


def add_output_arguments(parser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("-o", dest="output", metavar="FILE", help="write the output here instead of stdout")
    parser.add_argument("--pretty", action="store_true",
                        help="indent JSON and SARIF output (default: compact, on one line)")


def add_fix_argument(parser) -> None:
    parser.add_argument("--fix", action="store_true",
                        help="apply the fix-its to the sources in place, list the changes on stderr, "
                             "then report what remains")


def fix_sources(options, diags) -> bool:
    """--fix: applies the diagnostics' fix-its below the analysed paths, lists on stderr what
    changed and what was not applied; returns whether any file changed."""
    from .. import fixits
    outcome = fixits.apply(list(diags), _fix_roots(options))
    base = base_dir()

    def relative(file: str) -> str:
        rel = os.path.relpath(file, base)
        return file if rel.startswith("..") else rel

    for c in outcome.changes:
        print(f"{relative(c.file)}:{c.line}: inserted '{c.insert}'", file=sys.stderr)
    for r in outcome.refused:
        fx = r.fixit
        print(f"{relative(fx.file)}:{fx.line}:{fx.column}: warning: fix-it "
              f"'{fx.insert.strip()}' not applied: {r.reason}", file=sys.stderr)
    n, files = len(outcome.changes), len(outcome.files)
    done = f"{n} insertion{'s' * (n != 1)} in {files} file{'s' * (files != 1)}" if n else "no change"
    if outcome.refused:
        done += f", {len(outcome.refused)} fix-it{'s' * (len(outcome.refused) != 1)} not applied"
    print(f"--fix: {done}", file=sys.stderr)
    return bool(outcome.files)


def _fix_roots(options) -> list[str]:
    """The directories --fix may write below: those among PATHS, and those of the files there
    (of the compilation database's files when -p comes without PATHS)."""
    paths = options.paths
    if not paths and options.compile_commands:
        paths = list(load_compile_commands(options.compile_commands))
    roots = []
    for p in paths or ["."]:
        roots.append(os.path.abspath(p if os.path.isdir(p) else os.path.dirname(p) or "."))
    return sorted(set(roots))


def emit(options, text: str | bytes) -> None:
    """The requested output, whole: to the -o file (atomically) or to stdout.  As bytes, UTF-8
    already (a remembered result is kept so: read back and written out as it is, a lighttpd model's
    3 MB of JSON neither decoded nor encoded again)."""
    if options.output:
        write_output(options.output, text)
    else:
        binary = getattr(sys.stdout, "buffer", None) if isinstance(text, bytes) else None
        if binary is not None:
            sys.stdout.flush()
            binary.write(text)
            binary.flush()
        else:
            sys.stdout.write(text.decode() if isinstance(text, bytes) else text)
            sys.stdout.flush()


def exit_code(diags) -> int:
    return 1 if any(d.severity == "error" for d in diags) else 0


def base_dir() -> str:
    return os.getcwd()
