"""Which files to analyse, and with which compiler flags."""

from __future__ import annotations

import os
import shlex
import stat

from ..errors import UserError

# Flags that make sense to gcc but not to a parse (output, dependency files, code generation).
_DROP_WITH_VALUE = {"-o", "-MF", "-MT", "-MQ", "-x"}
_DROP = {"-c", "-S", "-E", "-M", "-MM", "-MD", "-MMD", "-MP", "-pipe"}
_KEEP_PREFIXES = ("-I", "-D", "-U", "-std=", "-include", "-isystem", "-iquote", "-W", "-f", "-m")


def find_sources(paths: list[str]) -> list[str]:
    """C files named or found below directories (skipping build/ and hidden directories, and what
    is not a regular file: a named pipe called x.c would hold the parse that opened it forever)."""
    out: list[str] = []
    for p in paths or ["."]:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "build")
                out.extend(path for path in (os.path.join(root, f) for f in sorted(files) if f.endswith(".c"))
                           if os.path.isfile(path))
        elif os.path.isfile(p):
            out.append(p)
        else:
            check_regular(p)
            raise UserError(f"no such file or directory: {p}")
    seen: dict[str, None] = {}
    for f in out:
        seen.setdefault(os.path.normpath(os.path.abspath(f)), None)
    return list(seen)


def check_regular(path: str) -> None:
    """A clear error for a source that exists and is not a regular file (a directory, a named pipe,
    a device): what the parse would open and wait on, or fail to read.  One stat; a missing file
    is the parse's error."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return
    if not stat.S_ISREG(mode):
        raise UserError("not a regular file: a C source is one", path)


def check_names(items: list[tuple[str, tuple[str, ...]]]) -> None:
    """A clear error for a unit whose path, or one of whose flags, is not UTF-8 (a file named in
    Latin-1, say): libclang, the caches and the output all take text, and such a name is bytes
    that Python can only carry escaped.  The name is shown with those bytes as \\xNN."""
    for path, args in items:
        for text in (path, *args):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                shown = os.fsencode(text).decode("utf-8", "backslashreplace")
                what = "the file's name" if text is path else f"its flag '{shown}'"
                raise UserError(f"{what} is not UTF-8: rename the file (or change the flag), or leave "
                                "the file out", os.fsencode(path).decode("utf-8", "backslashreplace")) from None


def _clean(argv: list[str], directory: str) -> tuple[str, ...]:
    out: list[str] = []
    it = iter(argv[1:])
    for a in it:
        if a in _DROP_WITH_VALUE:
            next(it, None)
            continue
        if a in _DROP or a.endswith((".c", ".o")) or not a.startswith("-"):
            continue
        if a == "-Werror" or a.startswith("-Werror="):
            continue    # gcc enforces the program's warnings; clang's own extra ones stay warnings
        if a in ("-I", "-D", "-U", "-include", "-isystem", "-iquote"):
            value = next(it, "")
            if a in ("-I", "-isystem", "-iquote", "-include"):
                value = os.path.normpath(os.path.join(directory, value))
            out += [a, value]
            continue
        if a.startswith(("-I", "-isystem", "-iquote")) and len(a) > 2:
            flag = "-I" if a.startswith("-I") else ("-isystem" if a.startswith("-isystem") else "-iquote")
            out.append(flag + os.path.normpath(os.path.join(directory, a[len(flag):])))
            continue
        if a.startswith(_KEEP_PREFIXES):
            out.append(a)
    return tuple(out)


_loaded: dict[tuple, dict[str, tuple[str, ...]]] = {}     # (path, size, mtime, inode) -> its map


def load_compile_commands(path: str) -> dict[str, tuple[str, ...]]:
    """Maps each absolute source path to its parse flags.  A file is read once in a process while
    it keeps its size and modification time (a command reads it to find its remembered result,
    and again for its analysis): the map is shared, and not to be changed."""
    try:
        st = os.stat(path)
        key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        key = None              # reported by the open below
    if key in _loaded:
        return _loaded[key]
    import json
    try:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
    except OSError as e:
        raise UserError(f"cannot read compilation database: {e.strerror}", path) from None
    except json.JSONDecodeError as e:
        raise UserError(f"not valid JSON: {e.msg}", path, e.lineno, e.colno) from None
    except UnicodeDecodeError as e:
        raise UserError(f"not UTF-8 (byte {e.object[e.start]:#04x} at offset {e.start}): a compilation "
                        "database is JSON, which is UTF-8", path) from None
    if not isinstance(entries, list):
        raise UserError("a compilation database is a JSON list of entries", path, 1, 1)
    out: dict[str, tuple[str, ...]] = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "file" not in e or "directory" not in e:
            raise UserError(f"entry {i} lacks 'file' or 'directory'", path)
        directory, file = e["directory"], e["file"]
        if not isinstance(directory, str) or not isinstance(file, str):
            raise UserError(f"entry {i}: 'file' and 'directory' are strings", path)
        argv = e.get("arguments")
        if argv is not None:
            if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                raise UserError(f"entry {i}: 'arguments' is a list of strings", path)
        elif isinstance(e.get("command"), str):
            try:
                argv = shlex.split(e["command"])
            except ValueError as err:       # a quote left open
                raise UserError(f"entry {i}: its 'command' cannot be split into arguments ({err})", path) from None
        else:
            raise UserError(f"entry {i} has neither 'arguments' (a list of strings) nor 'command' (a string)", path)
        file = os.path.normpath(os.path.join(directory, file))
        out[file] = _clean(argv, directory)
    if key is not None:
        if len(_loaded) >= 4:       # a process that stays up (a server) while the database is edited
            del _loaded[next(iter(_loaded))]
        _loaded[key] = out
    return out
