"""Files are written whole or not at all: write a temporary sibling, then rename over.

    write_text(path, text), write_bytes(path, data)   any file qtool makes (OSError on failure)
    check_output(path)                                 a file the user named: can it be written?
    write_output(path, text)                           write it, a UserError naming it on failure

A new file gets the mode a plain open() would give it (0666 less the umask); a file replaced
keeps its own.
"""

from __future__ import annotations

import os

from .errors import UserError


def write_text(path: str, text: str, make_dirs: bool = False) -> None:
    write_bytes(path, text.encode("utf-8"), make_dirs=make_dirs)


def write_bytes(path: str, data: bytes, mode: int | None = None, sync: bool = False,
                make_dirs: bool = False) -> None:
    """Writes data to path whole or not at all; mode, when given, is the file's permissions
    (by default a replaced file keeps its own, a new one gets 0666 less the umask); sync waits
    until the data is on disk before the rename, so a crash leaves the old or the new contents
    (what a user's own file deserves); make_dirs creates the missing directories above path."""
    # A device or a pipe (-o /dev/null, -o /dev/stdout) is written to, never replaced.
    if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        with open(path, "wb") as f:
            f.write(data)
        return
    directory = os.path.dirname(os.path.abspath(path))
    if make_dirs:
        os.makedirs(directory, exist_ok=True)
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            mode = 0o666 & ~_umask()
    fd, tmp = _sibling(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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


def check_output(path: str) -> None:
    """Raises a UserError naming path unless a file can be written there: before any work is
    done, so that a run that cannot write its result writes nothing at all."""
    if os.path.isdir(path):
        raise UserError("is a directory; name a file to write", path)
    if os.path.exists(path) and not os.path.isfile(path):
        return                          # a device or a pipe, written to as it is
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        # The nearest part of the path that exists says what is wrong with it.
        up = directory
        while up and not os.path.lexists(up) and os.path.dirname(up) != up:
            up = os.path.dirname(up)
        if up and os.path.lexists(up) and not os.path.isdir(up):
            raise UserError(f"cannot write: '{up}' is a file, not a directory", path)
        raise UserError(f"cannot write: directory '{directory}' does not exist", path)
    try:
        fd, probe = _sibling(directory, os.path.basename(path))
    except OSError as e:
        raise UserError(f"cannot write in directory '{directory}': {e.strerror}", path) from None
    os.close(fd)
    os.unlink(probe)


def write_output(path: str, text: str | bytes) -> None:
    """A file the user named (-o, --dot, --html): written whole, or a UserError naming it."""
    check_output(path)
    try:
        write_bytes(path, text) if isinstance(text, bytes) else write_text(path, text)
    except OSError as e:
        raise UserError(f"cannot write: {e.strerror}", path) from None


def _sibling(directory: str, name: str) -> tuple[int, str]:
    """A new file in directory, named after `name` and hidden (.name.<random>), that no one else
    can have opened: its descriptor and path.  tempfile.mkstemp's way, without the cost of
    importing tempfile in every run of qtool."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    while True:
        path = os.path.join(directory, f".{name}.{os.urandom(6).hex()}")
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue


def _umask() -> int:
    """The process's umask, read without changing it where the system allows (os.umask can only
    be read by setting it, which would race with threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o22)
    os.umask(mask)
    return mask
