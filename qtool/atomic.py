"""Files are written whole or not at all: write a temporary sibling, then rename over."""

from __future__ import annotations

import os
import tempfile


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str, data: bytes, mode: int | None = None, sync: bool = False) -> None:
    """Writes data to path whole or not at all; mode, when given, is the file's permissions;
    sync waits until the data is on disk before the rename, so a crash leaves the old or the
    new contents (what a user's own file deserves)."""
    # A device or a pipe (-o /dev/null, -o /dev/stdout) is written to, never replaced.
    if os.path.exists(path) and not os.path.isfile(path):
        with open(path, "wb") as f:
            f.write(data)
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
