"""The qtool command's first step: hands the command to a running `qtool serve`, or runs it here.

A server (qtool/serve.py) keeps an interpreter with qtool imported, libclang loaded and the units
an edit parsed kept parsed: a command it runs skips this process's own start-up work.  This
module is what runs before any of that is imported, so it imports only what the interpreter has
already loaded (_socket, marshal): a command with no server pays about nothing for looking.

A command goes to the server that serves its cache directory (the socket, socket_path), when one
answers and QPM_NO_SERVER is not set.  The command runs there with this process's arguments,
working directory, environment, umask and standard streams (the descriptors themselves, passed
over the socket), and this process exits with its status.  Ctrl-C here interrupts it there.
A server that runs other code than this (another checkout, an edited one) says so, and the
command runs here.
"""

from __future__ import annotations

import os
import sys

# The request's first field: what a server checks it is running (see serve.py).
PROTOCOL = 1

# Replies: STARTED when the server takes the command, then DONE and its exit status (4 bytes,
# little-endian); or OTHER alone when it runs other code.  A server that closes the connection
# before STARTED did not take the command (it was stopping): it runs here.
STARTED, DONE, OTHER = b"S", b"D", b"O"
INTERRUPT = b"I"        # client -> server: Ctrl-C


def cache_base() -> str:
    """The cache directory (analyzer/cache.py's cache_dir), not made."""
    base = os.environ.get("QPM_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "qtool")
    return base


def socket_path(base: str | None = None) -> str:
    """The socket of the server of this cache directory: server.sock in it, or, where that path is
    longer than a socket's name may be, a file named by its digest in a directory of this user's."""
    base = os.path.abspath(base or cache_base())
    path = os.path.join(base, "server.sock")
    if len(path.encode()) < 100:
        return path
    from hashlib import blake2b
    run = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/qtool-{os.getuid()}"
    return os.path.join(run, f"qtool-{blake2b(base.encode(), digest_size=10).hexdigest()}.sock")


def package_dir() -> str:
    return os.path.dirname(os.path.abspath(__file__))


def request(argv: list[str]) -> bytes:
    """What a client sends: the protocol, the code it would run, and the command's world."""
    import marshal
    mask = os.umask(0o22)
    os.umask(mask)
    return marshal.dumps((PROTOCOL, package_dir(), sys.executable, list(argv), os.getcwd(),
                          dict(os.environ), mask))


def _recv_exact(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return data
        data += chunk
    return data


def _interrupts(sock) -> None:
    """Ctrl-C (SIGINT) from now on tells the server, whose command stops as it would stop here
    (and exits 130): this process waits for that answer."""
    import _signal

    def interrupt(signum, frame):
        try:
            sock.send(INTERRUPT)
        except OSError:
            pass
    _signal.signal(_signal.SIGINT, interrupt)


def _uninterrupted() -> None:
    """Ctrl-C as Python has it (KeyboardInterrupt): for a command that runs here after all."""
    import _signal
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)


def _same_user(sock) -> bool:
    """Whether the process at the socket's other end is this user's: a socket in a directory
    somebody else could write to (XDG_RUNTIME_DIR, /tmp) is given no command, environment or
    streams of this user's otherwise."""
    import _socket
    cred = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)     # pid, uid, gid
    return int.from_bytes(cred[4:8], sys.byteorder) == os.getuid()


def served(argv: list[str]) -> int | None:
    """The command run by the server of this cache directory: its exit status; None when no server
    runs it (none answers, or it runs other code), and the command is to run here."""
    if os.environ.get("QPM_NO_SERVER") or next((w for w in argv if w[:1] != "-"), None) == "serve":
        return None
    import _socket
    try:
        path = socket_path()
    except (OSError, ValueError):
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            sock.connect(path)
        except OSError:
            return None                 # no server (or a socket left by one that died)
        fds = (0, 1, 2)
        try:
            for fd in fds:
                os.fstat(fd)
        except OSError:
            return None                 # a closed standard stream: nothing to pass; run here
        if not _same_user(sock):
            return None
        _interrupts(sock)
        body = request(argv)
        sock.sendmsg([len(body).to_bytes(4, "little"), body],
                     [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder)
                                                                        for fd in fds))])
        kind = _recv_exact(sock, 1)
        if kind != STARTED:
            _uninterrupted()
            return None                 # OTHER, or not taken
        status = _recv_exact(sock, 5)
        if len(status) != 5 or status[:1] != DONE:
            print(f"qtool: the server at {path} ended before the command did "
                  "(QPM_NO_SERVER=1 runs commands without it)", file=sys.stderr)
            return 3
        return int.from_bytes(status[1:], "little", signed=True)
    except OSError as e:
        print(f"qtool: the server at {path} failed: {e.strerror or e} "
              "(QPM_NO_SERVER=1 runs commands without it)", file=sys.stderr)
        return 3
    finally:
        sock.close()


def console() -> None:
    """The qtool command (its console script, and `python -m qtool`)."""
    code = served(sys.argv[1:])
    if code is None:
        from .cli import console as here
        here()
    sys.stdout.flush()
    os._exit(code)
