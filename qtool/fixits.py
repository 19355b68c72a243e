"""Applying fix-its to the sources in place (`qtool analyze --fix`, `qtool check --fix`).

    apply(diagnostics, roots) -> Outcome

Every fix-it of the diagnostics is an insertion at a place in a source file.  A diagnostic's
fix-its are applied together or not at all; the same text inserted at the same place by several
diagnostics is inserted once, and a different text at a place that already receives one is not
applied (two annotations there would conflict).  A file that receives a qpm annotation and does
not include qpm.h gets `#include <qpm.h>` after its last leading #include.  Each file is
rewritten whole or not at all (a temporary sibling renamed over it, with the file's permissions);
a fix-it is refused, with its reason, when its file lies outside the analysed paths (or in a
build/ or hidden directory under them), is read-only, cannot be written, or no longer has the
place the fix-it names.  A fix-it whose text already stands at its place counts as applied: a
second run changes nothing.
"""

from __future__ import annotations

import os
import re
import stat
from collections import defaultdict

from .atomic import write_bytes
from .model import Diagnostic, FixIt
from .record import record

INCLUDE = '#include <qpm.h>'
_HAS_QPM_INCLUDE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*[<"](?:[^<>"\n]*/)?qpm\.h[>"]', re.M)
_DIRECTIVE = re.compile(r"#\s*(\w+)\s*(\S*)")


@record
class Change:
    """Text inserted into a file; line is where it stands in the rewritten file."""

    file: str
    line: int
    insert: str


@record
class Refusal:
    """A fix-it that was not applied, and why."""

    fixit: FixIt
    reason: str


@record(frozen=False)
class Outcome:
    changes: list[Change]
    refused: list[Refusal]
    files: list[str]             # the files rewritten


def apply(diagnostics: list[Diagnostic], roots: list[str]) -> Outcome:
    """Applies the fix-its of the diagnostics to files below the root directories."""
    texts: dict[str, bytes | None] = {}
    problems: dict[str, str] = {}         # file -> why none of its fix-its can be applied

    def load(file: str) -> bytes | None:
        if file not in texts:
            texts[file] = None
            why = _unwritable(file, roots)
            if why is None:
                try:
                    with open(file, "rb") as f:
                        texts[file] = f.read()
                except OSError as e:
                    why = f"cannot read the file: {e.strerror}"
            if why is not None:
                problems[file] = why
        return texts[file]

    refused: list[Refusal] = []
    accepted: dict[tuple[str, int], FixIt] = {}     # (file, byte offset) -> the fix-it placed there
    for d in diagnostics:
        if not d.fixits:
            continue
        placed, why = [], None
        for fx in d.fixits:
            file = os.path.abspath(fx.file)
            data = load(file)
            if data is None:
                why = problems[file]
                break
            offset = _offset(data, fx.line, fx.column)
            if offset is None:
                why = f"the file has no line {fx.line}, column {fx.column} (changed since it was analysed?)"
                break
            other = accepted.get((file, offset))
            if other is not None and other.insert != fx.insert:
                why = f"'{other.insert.strip()}' is inserted at the same place"
                break
            placed.append(((file, offset), fx))
        if why is not None:
            refused.extend(r for r in (Refusal(fx, why) for fx in d.fixits) if r not in refused)
            continue
        for key, fx in placed:
            accepted.setdefault(key, fx)

    by_file: dict[str, list[tuple[int, FixIt]]] = defaultdict(list)
    for (file, offset), fx in accepted.items():
        by_file[file].append((offset, fx))
    changes: list[Change] = []
    written: list[str] = []
    for file in sorted(by_file):
        inserts = sorted(by_file[file], key=lambda x: x[0])
        data = texts[file]
        new, made = _rewrite(data, inserts)
        if new == data:
            continue
        try:
            _write(file, new)
        except OSError as e:
            reason = f"cannot write the file: {e.strerror}"
            refused.extend(Refusal(fx, reason) for _, fx in inserts)
            continue
        written.append(file)
        changes.extend(Change(file, line, text) for line, text in made)
    return Outcome(changes, refused, written)


def _unwritable(file: str, roots: list[str]) -> str | None:
    """Why fix-its may not touch this file, or None.  What counts is the file really written:
    the target of a symbolic link."""
    real = os.path.realpath(file)
    for root in roots:
        rel = os.path.relpath(real, os.path.realpath(root))
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            continue
        if not any(p.startswith(".") or p == "build" for p in rel.split(os.sep)[:-1]):
            break
    else:
        return "the file is outside the analysed paths"
    try:
        st = os.stat(real)
    except OSError as e:
        return f"cannot read the file: {e.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    # A file nobody may write is meant to stay as it is, whoever runs qtool (root too).
    if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(real, os.W_OK):
        return "the file is read-only"
    return None


def _offset(data: bytes, line: int, column: int) -> int | None:
    """The byte offset of a 1-based line and column (columns count bytes, as clang's do)."""
    if line < 1 or column < 1:
        return None
    start = 0
    for _ in range(line - 1):
        nl = data.find(b"\n", start)
        if nl < 0:
            return None
        start = nl + 1
    end = data.find(b"\n", start)
    end = len(data) if end < 0 else end
    if data[end - 1:end] == b"\r":
        end -= 1
    if start + column - 1 > end:
        return None
    return start + column - 1


def _rewrite(data: bytes, inserts: list[tuple[int, FixIt]]) -> tuple[bytes, list[tuple[int, str]]]:
    """The file with the insertions made (and qpm.h included where an annotation needs it), and
    each insertion as (line in the new text, what was inserted)."""
    pieces: list[tuple[int, bytes]] = []
    for offset, fx in inserts:
        text = fx.insert.encode("utf-8")
        if b"QPM_" in text and text.strip() in data[max(0, offset - len(text)):offset + len(text)]:
            continue        # the annotation already stands there
        pieces.append((offset, text))
    if any(b"QPM_" in text for _, text in pieces) and not _HAS_QPM_INCLUDE.search(data):
        at, newline = _include_place(data)
        text = INCLUDE.encode() + newline
        if at == len(data) and data and not data.endswith(b"\n"):
            text = newline + text           # after a last line without a newline
        pieces.insert(0, (at, text))
    out, made, pos = [], [], 0
    line = 1
    for offset, text in sorted(pieces, key=lambda x: x[0]):   # stable: the include stays first
        chunk = data[pos:offset]
        out.append(chunk)
        line += chunk.count(b"\n")
        lead = len(text) - len(text.lstrip(b"\r\n"))
        made.append((line + text[:lead].count(b"\n"), text.decode("utf-8").strip()))
        out.append(text)
        line += text.count(b"\n")
        pos = offset
    out.append(data[pos:])
    return b"".join(out), made


def _include_place(data: bytes) -> tuple[int, bytes]:
    """Where `#include <qpm.h>` goes (a byte offset at a line start) and the file's newline.

    After the last #include of the file's leading directives (those not inside an #if, a header
    guard apart); else after the header guard or `#pragma once`; else before the first line that
    is not a comment; else at the top."""
    bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
    lines = data[len(bom):].splitlines(keepends=True)
    newline = b"\r\n" if lines and lines[0].endswith(b"\r\n") else b"\n"
    offsets, pos = [], len(bom)
    for raw in lines:
        offsets.append(pos)
        pos += len(raw)
    offsets.append(pos)
    in_comment = False
    depth, base = 0, 0
    guard: str | None = None
    last_include = after_guard = first_content = None
    directives = 0
    for i, raw in enumerate(lines):
        starts_in_comment = in_comment
        code, in_comment = _strip_comments(raw.decode("latin-1"), in_comment)
        code = code.strip()
        if not code:
            continue
        if first_content is None:
            first_content = i if not starts_in_comment else 0
        m = _DIRECTIVE.match(code)
        if not code.startswith("#") or m is None:
            break                                   # the first line of code ends the leading part
        name, arg = m.group(1), m.group(2)
        directives += 1
        if name in ("if", "ifdef", "ifndef"):
            if name == "ifndef" and directives == 1:
                guard = arg
            depth += 1
        elif name == "endif":
            depth -= 1
        elif name == "define" and guard is not None and directives == 2 and arg == guard:
            base, after_guard = 1, i + 1
        elif name == "pragma" and arg == "once" and depth == 0:
            after_guard = i + 1
        elif name == "include" and depth == base:
            last_include = i + 1
    if last_include is not None:
        return offsets[last_include], newline
    if after_guard is not None:
        return offsets[after_guard], newline
    return offsets[first_content or 0], newline


def _strip_comments(line: str, in_comment: bool) -> tuple[str, bool]:
    """The code of a line without its comments; whether a /* comment is still open after it."""
    out, i = [], 0
    while i < len(line):
        if in_comment:
            end = line.find("*/", i)
            if end < 0:
                return "".join(out), True
            i, in_comment = end + 2, False
            out.append(" ")
        elif line.startswith("//", i):
            break
        elif line.startswith("/*", i):
            in_comment, i = True, i + 2
        else:
            out.append(line[i])
            i += 1
    return "".join(out), in_comment


def _write(file: str, data: bytes) -> None:
    """Rewrites the file (the target, when it is a symbolic link) atomically, keeping its mode."""
    target = os.path.realpath(file)
    write_bytes(target, data, mode=stat.S_IMODE(os.stat(target).st_mode), sync=True)
