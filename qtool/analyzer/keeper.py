"""A server's keeper: a process that keeps the units it parsed, parsed, and parses each again when
asked (qtool/serve.py starts it; unit.parse_unit asks it for the units a command parses one at a
time, as after an edit).

A unit kept is a libclang translation unit made with a precompiled preamble: from its first
reparse on, libclang keeps what the file's includes made, precompiled, and parses again only the
file's own text while those headers are unchanged (an edit below the includes).  A unit is
walked as the walker walks a fresh parse (qpm_walk_unit), into a pipe the server reads.  The
first parse of a unit is an ordinary parse; its preamble is made right after the answer, while
the server goes on, under a writer lock of the command's cache (as a cache writer holds one,
cache.py), so that a run of another process that waits for a cache's writers waits for it too
(the server's own commands do not: their next request to the keeper waits for it, and only
that).

What a walk says a unit read is what the next command checks to know whether the unit changed,
and clang_getInclusions, once a unit has a preamble, leaves out some of the files its parse read.
So a unit is parsed again from its kept parse only when its file's preprocessor directives
(directives) are as they were at its first parse, and so is every file that parse read (their
sizes and modification times), and no header has appeared where the preprocessor would have
found it before one of those (absent_paths: each file read, named as from each directory the
unit's flags, CPATH and its own directory give, joined to each of them).  It is parsed in its
command's working directory and environment, and kept under them (those variables of it that
change a parse: _PARSE_ENV).  Then the reparse reads the files the first parse read, and its
walk names them all, from the first parse, beside those it names itself.  Otherwise the unit is
parsed anew.  (A header that appears in a directory of the system's search path only, or that
only `__has_include` asks for, is not noticed; nor is it by the unit cache of a command alone.)

The keeper is a process of its own, forked from the server before its first command: a crash of
libclang there ends the keeper, not the server; the server then parses the unit in a child of its
own, as a command without a server does (which reports the crash, if the file causes it), and
starts another keeper when next asked.  At most KEEP units are kept: the least recently parsed
goes first.  libclang writes each preamble to a file in the keeper's own temporary directory,
which the server removes when the keeper ends, however it ends.
"""

from __future__ import annotations

import os
import re
import shutil
import socket

from ..client import receive_message, send_message

KEEP = 8

_keeper: "Keeper | None" = None
enabled = False             # set by the server: without one, every unit is parsed in a child
walks = again = 0           # units the keeper walked; of them, those parsed again from a kept parse


class Keeper:
    def __init__(self):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="qtool-keeper-")
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                parent.close()
                _child(child, self.tmp)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        child.close()
        self.sock, self.pid = parent, pid

    def walk(self, path: str, args: tuple, fd: int, cache: str, cwd: str) -> bool:
        """Asks for the unit's walk, written to fd, parsed in working directory cwd and this
        process's environment: False when the keeper is gone."""
        try:
            send_message(self.sock, (path, tuple(args), cache, cwd, dict(os.environ)), (fd,))
            return True
        except OSError:
            return False

    def result(self) -> tuple[int | None, list] | None:
        """The walk's exit code (as unit._walk_in_child's child's; None: the keeper did not walk
        it, the caller is to) and the files the unit read that the walk may not name (see
        _Kept); None when the keeper died."""
        global walks, again
        try:
            code, kept, files = receive_message(self.sock)[0]
        except (OSError, EOFError, ValueError, TypeError):
            return None
        if code is not None:
            walks += 1
            again += kept
        return code, files

    def end(self, wait: float = 5.0) -> None:
        """Ends the keeper: told to (its kept units disposed of, their preambles removed), or
        killed when it does not end within wait seconds; its temporary directory removed."""
        import select
        import signal
        try:
            fd = os.pidfd_open(self.pid)
        except OSError:
            fd = None
        self.sock.close()
        if fd is not None:
            ended, _, _ = select.select([fd], [], [], wait)
            os.close(fd)
        else:
            ended = False
        if not ended:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def _in_child() -> None:
    """In a process the server forks (a parse, a worker): no keeper, nor its socket (the keeper
    of a server that stops sees the end of it when the server's copy closes)."""
    global _keeper, enabled
    if _keeper is not None:
        try:
            os.close(_keeper.sock.detach())
        except OSError:
            pass
    _keeper, enabled = None, False


def start() -> None:
    """Starts the keeper (the server, before its first command: a process with no thread but one)."""
    global _keeper, enabled
    if not enabled:
        os.register_at_fork(after_in_child=_in_child)
    enabled = True
    if _keeper is None:
        _keeper = Keeper()


def current() -> Keeper | None:
    """The keeper, started anew if the last one died; None when this process is no server."""
    global _keeper
    if not enabled:
        return None
    if _keeper is None:
        _keeper = Keeper()
    return _keeper


def lost() -> None:
    """The keeper died, stalled or was interrupted in a walk (its answer is not to be read by
    another): it is killed, and another is started when next needed."""
    global _keeper
    if _keeper is not None:
        _keeper.end(wait=0)
        _keeper = None


def stop() -> None:
    """The server ends: so does the keeper, told to."""
    global enabled, _keeper
    enabled = False
    if _keeper is not None:
        _keeper.end()
        _keeper = None


def _warm(lib, unit) -> None:
    """A first parse and walk, of a small file, thrown away: what a process's first parse pays
    once (libclang's code and tables paged in, its allocator's memory grown) is not paid by the
    first unit a client waits for."""
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".c") as f:
        f.write("#include <stdio.h>\n#include <stdlib.h>\nstruct s { int a; };\n"
                "static int g(struct s *p) { return p->a; }\nint main(void) { struct s v = {1}; "
                "printf(\"%d\\n\", g(&v)); return 0; }\n")
        f.flush()
        argv, argc = unit._walker_argv(())
        tu = lib.qpm_keep_parse(f.name.encode(), argv, argc)
        if tu:
            with open(os.devnull, "wb") as null:
                lib.qpm_walk_unit(tu, null.fileno())
            lib.qpm_keep_reparse(tu)
            lib.qpm_keep_dispose(tu)


class _Kept:
    """A kept parse: its translation unit; the files its first parse read (path, size, mtime_ns),
    which its walks name beside those clang_getInclusions names (see qpm_inclusions); the paths
    where a header could have been found before one of those, and was not (absent_paths); and
    its file's directives as they were then (directives)."""

    def __init__(self, tu, files: list, absent: frozenset, part: bytes):
        self.tu, self.files, self.absent, self.part = tu, files, absent, part

    def holds(self, part: bytes) -> bool:
        """Whether a reparse now reads the files the first parse read, no others: the file's
        directives are as they were, and so is every file that parse read, and no header has
        appeared where the preprocessor would look for one first.  (libclang's own test of a
        preamble compares modification times to the second, of the files read alone.)"""
        if part != self.part:
            return False
        for path, size, mtime in self.files:
            try:
                st = os.stat(path)
            except OSError:
                return False
            if st.st_size != size or st.st_mtime_ns != mtime:
                return False
        return not any(os.path.lexists(p) for p in self.absent)


_PATH_FLAGS = ("-I", "-isystem", "-iquote", "-idirafter")


def absent_paths(path: str, args: tuple, files: list) -> frozenset[str]:
    """Where a header the unit read could have been found had it been there, and is not: each
    file read, named as from each directory it is under of those the preprocessor searches by
    the unit's flags, by CPATH and C_INCLUDE_PATH, and its own directory (or by its last one
    or two path components, for the system's directories), joined to each of those directories.
    A header that appears at one of them may be read instead of the one read."""
    roots = [os.path.dirname(os.path.abspath(path))]
    i = 0
    while i < len(args):
        a = args[i]
        flag = next((f for f in _PATH_FLAGS if a == f or a.startswith(f)), None)
        if flag is not None:
            value = args[i + 1] if a == flag and i + 1 < len(args) else a[len(flag):]
            i += 1 if a == flag else 0
            if value:
                roots.append(os.path.abspath(value))
        i += 1
    for var in ("CPATH", "C_INCLUDE_PATH"):
        if var in os.environ:
            roots += [os.path.abspath(d or ".") for d in os.environ[var].split(os.pathsep)]
    roots = list(dict.fromkeys(roots))
    read = {f for f, _, _ in files}
    names = set()
    for f in read:
        parts = f.split(os.sep)
        names.update(os.sep.join(parts[-k:]) for k in (1, 2))
        names.update(f[len(r) + 1:] for r in roots if f.startswith(r + os.sep))
    return frozenset(p for p in (os.path.join(r, n) for r in roots for n in names)
                     if p not in read and not os.path.lexists(p))


# Comments and string and character literals (their line splices too), and a preprocessor
# directive's line with the lines its backslashes splice to it.
_HIDDEN = re.compile(rb'//(?:\\\r?\n|[^\n])*|/\*.*?(?:\*/|\Z)|"(?:\\(?:\r?\n|.)|[^"\\\n])*"|'
                     rb"'(?:\\(?:\r?\n|.)|[^'\\\n])*'", re.S)
_DIRECTIVE = re.compile(rb"^[ \t\f\v]*(?:#|%:)(?:[^\n]*\\\r?\n)*[^\n]*", re.M)


def directives(data: bytes) -> bytes:
    """A file's preprocessor directives, outside comments, each with the lines it splices: all that
    decides which files the preprocessor reads, with the files it reads and the unit's flags.
    (Each comment and literal counts as its line breaks alone, so that no directive is hidden
    behind one; where this takes for a directive what the preprocessor does not, the text
    compared is longer, not shorter.)"""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    data = _HIDDEN.sub(lambda m: b"\n" * m.group().count(b"\n") or b" ", data)
    return b"\n".join(_DIRECTIVE.findall(data))


def _part(path: str) -> bytes | None:
    """The file's directives (directives), or None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return directives(f.read())
    except OSError:
        return None


# What of a command's environment changes what a parse reads or says (the include paths clang
# takes from it, the time __DATE__ and __TIME__ say): a unit is kept under them.
_PARSE_ENV = ("CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "OBJC_INCLUDE_PATH", "SDKROOT",
              "SOURCE_DATE_EPOCH", "TZ", "CCC_OVERRIDE_OPTIONS")


def _files(lib, unit, tu) -> list:
    """The files the translation unit read, as clang_getInclusions names them (qpm_inclusions)."""
    fd = os.memfd_create("qpm-inclusions", os.MFD_CLOEXEC)
    try:
        lib.qpm_inclusions(tu, fd)
        size = os.lseek(fd, 0, os.SEEK_CUR)
        data = os.pread(fd, size, 0)
    finally:
        os.close(fd)
    facts, files = unit.UnitFacts(""), []
    unit.facts_of(unit.walked(data), facts, files)
    return files


def _child(sock: socket.socket, tmp: str) -> None:
    """The keeper's loop: a walk for each request, until the server closes its end."""
    import signal
    from collections import OrderedDict
    from . import cache, clang_env, unit
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGIO):
        signal.signal(s, signal.SIG_DFL)
    keep_fd = sock.fileno()
    os.closerange(3, keep_fd)           # the server's listening socket, its clients, its pipes
    os.closerange(keep_fd + 1, 1 << 16)
    # Standard streams of its own: one forked while the server runs a command would otherwise
    # hold that command's client's (the server's are the client's then), and the client's
    # reader would wait for their end as long as the keeper lives.
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    os.close(null)
    os.environ["TMPDIR"] = tmp          # where libclang writes the preambles
    lib = clang_env.walker()
    _warm(lib, unit)
    kept: OrderedDict = OrderedDict()   # (path, args, working directory, _PARSE_ENV's) -> _Kept
    try:
        while True:
            try:
                (path, args, directory, cwd, env), fds = receive_message(sock, max_fds=1)
            except EOFError:
                return                  # the server ended
            if len(fds) != 1:
                raise ValueError("a request without its pipe")
            try:
                os.chdir(cwd)
            except OSError:             # gone: the server parses the unit itself, and says so
                os.close(fds[0])
                send_message(sock, (None, 0, []))
                continue
            os.environ.clear()
            os.environ.update(env)
            os.environ["TMPDIR"] = tmp
            key = (path, tuple(args), cwd, tuple((v, env.get(v)) for v in _PARSE_ENV))
            part = _part(path)
            k = kept.pop(key, None)
            # Parsed again only when the file's directives were the same before and after the
            # reparse read it (an edit between the two could have had libclang read other files).
            if k is not None and (part is None or not k.holds(part) or lib.qpm_keep_reparse(k.tu) != 0
                                  or _part(path) != part):
                lib.qpm_keep_dispose(k.tu)
                k = None
            fresh = k is None
            tu = lib.qpm_keep_parse(path.encode(), *unit._walker_argv(args)) if fresh else k.tu
            rc = lib.qpm_walk_unit(tu, fds[0]) if tu else 1
            os.close(fds[0])
            keep = fresh and tu and part is not None
            if fresh and tu and not keep:
                lib.qpm_keep_dispose(tu)
            # Kept, its preamble made after the answer: a writer lock of the command's cache taken
            # first, for the runs of other processes to wait for (the server's commands do not).
            os.environ["QPM_CACHE_DIR"] = directory
            lock = cache._writer_lock(owner=os.getppid()) if keep else None
            # A fresh parse's walk names every file it read; a reparse's may not.
            send_message(sock, (unit.walk_code(rc), 0 if fresh else 1, [] if fresh else k.files))
            if keep:
                files = _files(lib, unit, tu)
                k = _Kept(tu, files, absent_paths(path, args, files), part)
                if lib.qpm_keep_reparse(tu) == 0:
                    kept[key] = k
                    while len(kept) > KEEP:
                        lib.qpm_keep_dispose(kept.popitem(last=False)[1].tu)
                else:
                    lib.qpm_keep_dispose(tu)
                cache._release(lock)
            elif not fresh:
                kept[key] = k
    finally:
        for k in kept.values():         # their preambles' files removed
            lib.qpm_keep_dispose(k.tu)
        shutil.rmtree(tmp, ignore_errors=True)      # a server killed does not remove it
