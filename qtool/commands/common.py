"""What the subcommands share: source arguments, output format and writing the result."""

from __future__ import annotations

import os
import sys

from .. import fixits
from ..analyzer.sources import load_compile_commands
from ..atomic import write_text
from ..output import FORMATS


def add_source_arguments(parser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATHS",
                        help="C files or directories searched for .c files (default: .)")
    parser.add_argument("-p", dest="compile_commands", metavar="compile_commands.json",
                        help="take compiler flags from this compilation database")
    parser.add_argument("-j", "--jobs", type=int, default=None,
                        help="parallel parsing workers (default: one per core)")


def add_output_arguments(parser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("-o", dest="output", metavar="FILE", help="write the output here instead of stdout")


def add_fix_argument(parser) -> None:
    parser.add_argument("--fix", action="store_true",
                        help="apply the fix-its to the sources in place, list the changes on stderr, "
                             "then report what remains")


def fix_sources(options, diags) -> bool:
    """--fix: applies the diagnostics' fix-its below the analysed paths, lists on stderr what
    changed and what was not applied; returns whether any file changed."""
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


def emit(options, text: str) -> None:
    """The requested output, whole: to the -o file (atomically) or to stdout."""
    if options.output:
        write_text(options.output, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def exit_code(diags) -> int:
    return 1 if any(d.severity == "error" for d in diags) else 0


def base_dir() -> str:
    return os.getcwd()
