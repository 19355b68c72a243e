"""The qtool command: parses arguments and hands them to one stage module.

Exit status: 0 clean, 1 diagnostics of severity error, 2 usage or input errors.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

from . import __version__
from .commands import analyze, check, cut, learn, report, serve
from .errors import UserError

COMMANDS = {
    "analyze": analyze,
    "check": check,
    "cut": cut,
    "learn": learn,
    "report": report,
    "serve": serve,
}


def _formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's help formatter, as wide as the terminal.  argparse makes one for each argument
    added (to check its help); made by argparse itself, each asks shutil for the terminal's
    width, and importing shutil (bz2, lzma, fnmatch …) cost every command's start about 1.3 ms,
    for a help it seldom prints."""
    return argparse.HelpFormatter(prog, width=_width())


def _width() -> int:
    """What argparse's own formatter finds (shutil.get_terminal_size): $COLUMNS, else the
    terminal's width, else 80; less 2."""
    try:
        columns = int(os.environ.get("COLUMNS", 0))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns if columns > 0 else 80) - 2


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # usage errors exit 2, as argparse does, with our prefix
        self.print_usage(sys.stderr)
        print(f"qtool: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _version() -> str:
    from .analyzer import libclang_version
    try:
        clang = libclang_version()
    except UserError as e:
        clang = f"unusable ({e.message})"
    return f"qtool {__version__}\nlibclang: {clang}"


class _VersionAction(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(_version())
        parser.exit()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; given a command's name, the others are only named (as the
    list of commands shows them): their options are not built, nor what building them imports."""
    parser = _Parser(prog="qtool", description="Quarantine: data-driven selective isolation for C servers.")
    parser.add_argument("--version", action=_VersionAction, help="print qtool's and libclang's versions")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parser.commands = {}
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        if only is None or name == only:
            module.add_arguments(p)
        p.set_defaults(run=module.run)
        parser.commands[name] = p
    return parser


def _command(argv: list[str] | None) -> str | None:
    """The command argv names, when its first word that is not an option is one."""
    from .client import command_word
    first = command_word(sys.argv[1:] if argv is None else argv)
    return first if first in COMMANDS else None


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The options, with PATHS gathered wherever they stand: before, between or after the
    options (argparse alone takes them only in one run), and from among the values of
    --isolate and --reports (see common.ValuesThenPaths)."""
    options, rest = parser.parse_known_args(argv)
    if hasattr(options, "paths"):
        options.paths = [*options.paths, *options.paths_among_values]
        del options.paths_among_values
        cut = rest.index("--") if "--" in rest else len(rest)
        if not any(a.startswith("-") and a != "-" for a in rest[:cut]):
            options.paths += rest[:cut] + rest[cut + 1:]
            rest = []
    if rest:
        command = parser.commands.get(getattr(options, "command", None), parser)
        command.error(f"unrecognized arguments: {' '.join(rest)}")
    return options


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(_command(argv))
    options = parse(parser, argv)
    if not getattr(options, "run", None):
        parser.print_help(sys.stderr)
        return 2
    # A command makes hundreds of thousands of objects (a model) and hardly a reference cycle: the
    # cyclic collector would only scan them again and again while the checks and the output run.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return options.run(options)
    except UserError as e:
        print(e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qtool: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception:  # anything else is a bug in qtool, and says so
        print("qtool: internal error (a bug in qtool; please report it with this trace):", file=sys.stderr)
        import traceback
        traceback.print_exc()
        return 3
    finally:
        if enabled:
            gc.enable()


def console() -> None:
    """The qtool command, as its console script and `python -m qtool` run it: main(), then the
    process ends at once.  Its objects (a program model is hundreds of thousands of them) die with
    it instead of being freed one by one, which would only make the prompt come back later; the
    output is flushed and the exit handlers run first (they wait for the cache entries being
    written).  The cyclic collector stays off to the end: main() would turn it back on, and the
    first object made after that (by the exit handlers) would have it scan every object the
    command made."""
    import atexit
    import os
    gc.disable()
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    console()
