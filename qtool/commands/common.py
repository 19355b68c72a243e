"""What the subcommands share: source arguments, output format and writing the result."""

from __future__ import annotations

import os
import sys

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
