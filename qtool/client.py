"""The qtool command's first step: hands the command to a running `qtool serve`, or runs it here.

A server (qtool/serve.py) keeps an interpreter with qtool imported, libclang loaded and the units
an edit parsed kept parsed: a command it runs skips this process's own start-up work.  This
module is what runs before any of that is imported, so it imports only what the interpreter has
loaded anyway (_socket, _signal, marshal): a command with no server pays about nothing for looking.

A command goes to the server that serves its cache directory (its socket: socket_path), when one
of this user's answers there within WAIT seconds and QPM_NO_SERVER is not set.  The command runs
there with this process's arguments, working directory, environment, umask and standard streams
(the descriptors themselves, passed over the socket), and this process exits with its status;
Ctrl-C here interrupts it there.  A server that runs other code than this (another checkout, an
edited one), or that is busy with another command for longer than WAIT, leaves the command to
run here.

The conversation, each message its length (4 bytes, little-endian) and a marshalled value
(send_message): the server says HELLO when it takes the connection; the client sends its request
(request), with its descriptors 0, 1 and 2; the server answers (DONE, status) once the command
ended, or (OTHER,) when it runs other code.  While it waits, the client sends INTERRUPT (one
byte) for a Ctrl-C.  A client that gives up before HELLO has sent nothing: no command runs twice.
"""

from __future__ import annotations

import marshal
import os
import sys

import _socket

PROTOCOL = 2                # the request's first field: what a server checks it is running
HELLO, DONE, OTHER = "hello", "done", "other"
INTERRUPT = b"I"            # client -> server, while the command runs: Ctrl-C
WAIT = 10.0                 # seconds a client waits for a server busy with another command
LOOK = 0.2                  # seconds between two looks at a Ctrl-C while the command runs (_await)
MAX_MESSAGE = 64 << 20      # bytes: arguments and an environment, not more


def cache_base() -> str:
    """The cache directory, not made (analyzer/cache.py's cache_dir makes it)."""
    base = os.environ.get("QPM_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "qtool")
    return base


def socket_path(base: str | None = None) -> str:
    """The socket of the server of this cache directory: server-vN.sock in it (N: the protocol's
    number), or, where that path is
    longer than a socket's name may be, a file named by its digest in a directory of this user's
    ($XDG_RUNTIME_DIR, or /tmp/qtool-UID, which the server makes and checks: serve.private_dir)."""
    base = os.path.abspath(base or cache_base())
    path = os.path.join(base, f"server-v{PROTOCOL}.sock")  # a server of another protocol: another socket
    if len(path.encode()) < 100:
        return path
    from hashlib import blake2b
    run = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/qtool-{os.getuid()}"
    return os.path.join(run, f"qtool-{blake2b(base.encode(), digest_size=10).hexdigest()}.sock")


def package_dir() -> str:
    return os.path.dirname(os.path.abspath(__file__))


def command_word(argv: list[str]) -> str | None:
    """The first word of argv that is not an option (the command, when argv names one)."""
    return next((w for w in argv if not w.startswith("-")), None)


def request(argv: list[str]) -> tuple:
    """What a client sends: the protocol, the code it would run, and the command's world."""
    mask = os.umask(0o22)
    os.umask(mask)
    return (PROTOCOL, package_dir(), sys.executable, list(argv), os.getcwd(), dict(os.environ), mask)


# Messages.

def recv_exact(sock, n: int) -> bytes:
    """n bytes from sock, or fewer where it ends."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def send_message(sock, value, fds: tuple[int, ...] = ()) -> None:
    """value, marshalled after its length; fds passed with its first byte."""
    body = marshal.dumps(value)
    data = len(body).to_bytes(4, "little") + body
    rights = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
    sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)] if fds else [])
    if sent < len(data):
        sock.sendall(data[sent:])


def receive_message(sock, max_fds: int = 0, limit: int = MAX_MESSAGE) -> tuple[object, list[int]]:
    """A message send_message sent, and the descriptors passed with it (at most max_fds; more are
    closed by the system).  EOFError when the connection ends before it does; ValueError when it
    is longer than limit or not a marshalled value."""
    head, anc, _, _ = sock.recvmsg(4, _socket.CMSG_SPACE(4 * max_fds) if max_fds else 0)
    fds = [int.from_bytes(data[i:i + 4], sys.byteorder, signed=True)
           for level, kind, data in anc if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
           for i in range(0, len(data) - len(data) % 4, 4)]
    try:
        if not head:
            raise EOFError("the connection ended")
        head += recv_exact(sock, 4 - len(head))
        size = int.from_bytes(head, "little")
        if len(head) < 4 or size > limit:
            raise ValueError(f"a message of {size} bytes")
        body = recv_exact(sock, size)
        if len(body) < size:
            raise EOFError("the connection ended within a message")
        return marshal.loads(body), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def peer(sock) -> tuple[int, int, int]:
    """The process at the other end of a Unix socket: its pid, uid and gid."""
    cred = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return tuple(int.from_bytes(cred[i:i + 4], sys.byteorder, signed=i == 0) for i in (0, 4, 8))


# The client.

class _CtrlC:
    """Ctrl-C (SIGINT) while a command is handed over: remembered until the request is out, then
    told to the server, whose command stops as it would stop here and exits 130; this process
    waits for that answer.  It is told twice, by INTERRUPT and by this end's half-close (the
    server hears of either).  A second Ctrl-C does not wait (KeyboardInterrupt).  undo() puts
    Python's own handling back."""

    def __init__(self, sock):
        import _signal
        self.sock, self.pressed, self.sent, self.told = sock, False, False, False
        _signal.signal(_signal.SIGINT, self._pressed)

    def _pressed(self, signum, frame) -> None:
        if self.told:
            raise KeyboardInterrupt
        self.pressed = True
        if self.sent:
            self.tell()

    def request_sent(self) -> None:
        self.sent = True
        if self.pressed:
            self.tell()

    def tell(self) -> None:
        if self.told:
            return
        self.told = True
        try:
            self.sock.send(INTERRUPT)
            self.sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass

    def undo(self) -> None:
        import _signal
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)


def _await(sock) -> None:
    """Waits until the server's answer comes (or its end), returning to Python every LOOK seconds.
    A signal runs its Python handler only where this thread returns to Python: a Ctrl-C that came
    just before the wait entered its system call would otherwise be told to the server only once
    the command had ended of itself."""
    sock.settimeout(LOOK)
    try:
        while True:
            try:
                sock.recv(1, _socket.MSG_PEEK)
                return
            except TimeoutError:
                pass
    finally:
        sock.settimeout(None)


def served(argv: list[str]) -> int | None:
    """The command run by the server of this cache directory: its exit status; None when no server
    runs it (none of this user's answers in time, or it runs other code): it is to run here."""
    if os.environ.get("QPM_NO_SERVER") or command_word(argv) == "serve":
        return None
    try:
        path = socket_path()
        for fd in (0, 1, 2):
            os.fstat(fd)            # a closed standard stream: nothing to pass; run here
    except (OSError, ValueError):
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        try:
            sock.settimeout(WAIT)   # connect waits too while the server's queue is full
            sock.connect(path)
            if peer(sock)[1] != os.getuid():
                return None         # somebody else's: given no command, environment or streams
            if receive_message(sock)[0] != HELLO:
                return None
            asked = request(argv)   # (a working directory removed: nothing sent, run here)
            sock.settimeout(None)
            ctrl_c = _CtrlC(sock)
        except (OSError, EOFError, ValueError):
            return None             # no server, one that died, or one busy for longer than WAIT
        except KeyboardInterrupt:
            print("qtool: interrupted", file=sys.stderr)
            return 130              # nothing sent: nothing runs
        try:
            send_message(sock, asked, (0, 1, 2))
            delivered = True
        except OSError:             # too late (the server said OTHER and left), or gone
            delivered = False
        ctrl_c.request_sent()
        try:
            _await(sock)
            reply = receive_message(sock)[0]
        except (OSError, EOFError, ValueError):
            reply = None
        except KeyboardInterrupt:   # pressed again: this end leaves, the server stops the command
            print("qtool: interrupted", file=sys.stderr)
            return 130
        if reply == (OTHER,) or reply is None and not delivered:
            if ctrl_c.pressed:
                print("qtool: interrupted", file=sys.stderr)
                return 130
            ctrl_c.undo()
            return None             # the server runs other code, or did not take the request
        if not (isinstance(reply, tuple) and len(reply) == 2 and reply[0] == DONE and isinstance(reply[1], int)):
            print(f"qtool: the server at {path} ended before the command did "
                  "(QPM_NO_SERVER=1 runs commands without it)", file=sys.stderr)
            return 3
        return reply[1]
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
