"""`qtool serve`: one process that runs the qtool commands of its user, one after another.

A command a server runs skips what each qtool process pays before its work: the interpreter's
start, qtool's imports, libclang loaded and checked; and a unit it parsed for an edit stays
parsed (analyzer/keeper.py), so that the next edit of that unit parses only the unit's own file,
not the headers it includes.  Clients find it by their cache directory (client.socket_path); a
command runs without it whenever none answers there (client.py).

Each command runs in this process, as cli.main runs it, with the client's arguments, working
directory, environment, umask and standard streams; what it leaves to write at exit (cache
entries) is written after its client has its answer, under a writer lock as a writer child
holds one (analyzer/cache.py), so that a run of another process waits for it.  What the cache
module keeps of a command for the rest of its process is forgotten between two commands.  Every
file of qtool's code is checked before each command: a server whose code was edited or
reinstalled since it started tells the client to run the command itself, and stops.  What the
environment decides when a module is imported (QPM_CHECK_RECORDS) is the server's own.

Only a process of the server's own user is served (the socket's peer credentials, checked on both
sides); the socket is made under umask 077, in a directory of the user's own.  The server stops
on SIGTERM or SIGINT, after --idle seconds without a command, or when its code changed, and
removes its socket.  The processes it forks while it runs a command (parses, workers) keep none
of its own descriptors (its socket, its lock, its client's connection).
"""

from __future__ import annotations

import fcntl
import gc
import os
import select
import signal
import socket
import stat
import sys
import threading
import time

from . import client
from .errors import UserError


# Seconds without a command after which the garbage the last one left is collected (and the
# memory freed given back): not while a client waits (a full collection after an edit of a
# 100-unit program: about 70 ms).
IDLE_COLLECT = 0.5
COLLECT_EVERY = 32
REQUEST_TIMEOUT = 5.0       # seconds a client has to send its request (sent at HELLO, but a busy
                            # machine may keep it from the CPU a while; one that misses it is told
                            # OTHER, and runs its command itself)


class _Stop(BaseException):
    """SIGTERM or SIGINT: the server stops (a command it runs ends with it)."""


_STOPS = (signal.SIGTERM, signal.SIGINT)
# Seconds between two signals to the serving thread while it has not yet acted on the first (_Watch).
RESEND = 0.05


def code_stamp() -> tuple:
    """Every file of qtool's code, with its size and modification time."""
    out = []
    root = client.package_dir()
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".py", ".c", ".h")):
                path = os.path.join(here, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                out.append((path, st.st_size, st.st_mtime_ns))
    return tuple(out)


def private_dir(path: str) -> None:
    """Makes the directory of the socket (mode 0700 when new), and checks that it is this user's
    own: a directory, not a link, that not everybody may write to (the cache directory, or the
    fallback in /tmp, which anybody could have made first).  (Clients check that the server is
    their user's too; the lock and the log are not opened through a link.)"""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o002:
        raise UserError(f"{path} is not a directory of this user's that others may not write to: "
                        "no server socket there")


def _open_private(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


_serving: list["Server"] = []       # the servers of this process (one), for _in_child
_hooked = False                     # _in_child registered


def _in_child() -> None:
    """os.register_at_fork's hook, registered once: see Server.in_child."""
    for server in _serving:
        server.in_child()
    _serving.clear()


class Server:
    def __init__(self, path: str, idle: float):
        self.path = path
        self.idle = idle
        self.stamp = code_stamp()
        self.listener: socket.socket | None = None
        self.lock: int | None = None
        self.conn: socket.socket | None = None     # the client of the command running
        self.watch: _Watch | None = None            # and what watches it
        self.wakeup: tuple[int, int] | None = None  # signal.set_wakeup_fd's pipe while it serves
        self.stopping = False                       # its stop is under way: no _Stop again
        self.served = 0

    # The socket.

    def bind(self) -> None:
        """Takes the cache's server lock (the socket's name and .lock, beside it, held while this
        process runs: one server a cache) and listens at the socket."""
        private_dir(os.path.dirname(self.path))
        lock = _open_private(self.path + ".lock", os.O_RDWR)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(lock, 32).decode(errors="replace").strip() or "?"
            os.close(lock)
            raise UserError(f"a server (pid {pid}) already serves this cache, at {self.path}") from None
        os.ftruncate(lock, 0)
        os.write(lock, f"{os.getpid()}\n".encode())
        self.lock = lock
        try:
            os.unlink(self.path)        # a socket left by a server that was killed
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        mask = os.umask(0o077)
        try:
            self.listener.bind(self.path)
        finally:
            os.umask(mask)
        self.listener.listen(64)
        global _hooked
        _serving.append(self)
        if not _hooked:
            os.register_at_fork(after_in_child=_in_child)
            _hooked = True

    def in_child(self) -> None:
        """In a process forked while this one serves: none of the server's descriptors (a parse
        that outlived a killed server would hold its socket and its lock)."""
        for s in (self.listener, self.conn):
            if s is not None:
                try:
                    os.close(s.detach())
                except OSError:
                    pass
        self.listener = self.conn = None
        wakeup = self.wakeup or ()
        if wakeup:
            try:
                signal.set_wakeup_fd(-1)    # its signals are its own: not to wake this server
            except ValueError:              # not its main thread: the write end stays the signal
                wakeup = wakeup[:1]         # module's (closed, its number could be reused)
        for fd in (self.lock, *wakeup, *(self.watch.pipe if self.watch else ())):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.lock = self.wakeup = self.watch = None

    def close(self) -> None:
        if self in _serving:
            _serving.remove(self)
        if self.listener is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None

    # The loop.

    def run(self, ready=None) -> int:
        """Serves until stopped; ready(), when given, once it serves."""
        if self.listener is None:
            self.bind()
        from .analyzer import clang_env, keeper

        def stop(signum, frame):
            if not self.stopping:
                raise _Stop()
        old = {s: signal.signal(s, stop) for s in _STOPS}
        old_io = signal.signal(signal.SIGIO, self._on_io)
        # Each signal handled in Python writes its number here, and the loop waits on it too: a
        # signal that comes just before select() would otherwise leave it waiting for a client.
        self.wakeup = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(self.wakeup[1], warn_on_full_buffer=False)
        gc.disable()            # a command makes a model of hundreds of thousands of objects (cli.main)
        try:
            _warm()
            keeper.start()
            print(f"qtool serve: serving {client.cache_base()} at {self.path} (pid {os.getpid()})",
                  file=sys.stderr, flush=True)
            if ready is not None:
                ready()
            collect = False     # garbage left by a command, collected once the server is idle
            since = time.monotonic()
            while True:
                wait = (IDLE_COLLECT if collect else self.idle) - (time.monotonic() - since)
                ready_to_read, _, _ = select.select([self.listener, self.wakeup[0]], [], [], max(wait, 0.0))
                if self.wakeup[0] in ready_to_read:
                    _drain(self.wakeup[0])      # its handler has run: a stop raised _Stop
                if self.listener not in ready_to_read:
                    if self.wakeup[0] in ready_to_read:
                        continue
                    if collect:
                        gc.collect()
                        clang_env.give_back_memory()
                        collect = False
                        since = time.monotonic()
                        continue
                    print(f"qtool serve: no command for {self.idle:g} s: stopping", file=sys.stderr, flush=True)
                    return 0
                conn, _ = self.listener.accept()
                try:
                    if not self.one(conn):
                        print("qtool serve: qtool's code changed: stopping", file=sys.stderr, flush=True)
                        return 0
                finally:
                    conn.close()
                collect = True
                since = time.monotonic()
        except _Stop:
            return 0
        finally:
            self.stopping = True
            self.close()
            keeper.stop()
            for s, h in old.items():
                signal.signal(s, h)
            signal.signal(signal.SIGIO, old_io)
            signal.set_wakeup_fd(old_wakeup)
            for fd in self.wakeup:
                os.close(fd)
            self.wakeup = None
            print(f"qtool serve: stopped after {self.served} command{'' if self.served == 1 else 's'} "
                  f"({keeper.walks} units parsed by its keeper, {keeper.again} of them from a kept parse)",
                  file=sys.stderr, flush=True)

    def one(self, conn: socket.socket) -> bool:
        """Serves one connection: False when this server's code changed (it stops).  A client
        that breaks the conversation (hangs up, sends what is no request) ends only its own."""
        fds: list[int] = []
        finish = None
        ran = False
        try:
            conn.settimeout(REQUEST_TIMEOUT)
            if client.peer(conn)[1] != os.getuid():
                return True             # another user's process: not served
            client.send_message(conn, client.HELLO)
            try:
                req, fds = client.receive_message(conn, max_fds=3)
            except TimeoutError:
                client.send_message(conn, (client.OTHER,))
                return True
            if not (isinstance(req, tuple) and len(req) == 7 and req[0] == client.PROTOCOL
                    and req[1] == client.package_dir() and req[2] == sys.executable and len(fds) == 3):
                client.send_message(conn, (client.OTHER,))
                return True
            if code_stamp() != self.stamp:
                client.send_message(conn, (client.OTHER,))
                return False
            _, _, _, argv, cwd, env, mask = req
            conn.settimeout(None)       # blocking: _interrupt_came's reads without waiting are then just that
            self.served += 1
            ran = True
            try:
                code, finish = self.command(conn, argv, cwd, env, mask, fds)
            except (OSError, ValueError, TypeError) as e:   # the server's own part, on this request
                print(f"qtool serve: a command failed outside qtool's own handling: {e!r}", file=sys.stderr,
                      flush=True)
                code = 3
            client.send_message(conn, (client.DONE, int(code)))
            return True
        except (OSError, EOFError, ValueError, TypeError):
            return True                 # the client hung up, stalled, or sent no request
        finally:
            for fd in fds:
                os.close(fd)
            if finish is not None:
                finish()
            if ran and self.served % COLLECT_EVERY == 0:
                gc.collect()            # commands that come too close together for IDLE_COLLECT

    def command(self, conn: socket.socket, argv: list[str], cwd: str, env: dict, mask: int,
                fds: list[int]) -> tuple[int, object]:
        """Runs the command as the client would have, in its world: its exit status, and what is
        left to do once the client has it (cache.served_end)."""
        from . import cli
        from .analyzer import cache
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        here = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        saved: list[int] = []
        own_env = dict(os.environ)
        own_mask = os.umask(mask)
        try:
            for fd, theirs in zip((0, 1, 2), fds):
                saved.append(os.dup(fd))
                os.dup2(theirs, fd)
            os.environ.clear()
            os.environ.update(env)
            try:
                os.chdir(cwd)
            except OSError as e:
                print(f"qtool: error: cannot run in {cwd}: {e.strerror}", file=sys.stderr, flush=True)
                return 2, None
            self.conn = conn
            try:
                try:
                    if _interrupt_came(conn):   # a Ctrl-C or a hang-up that came before the command
                        raise KeyboardInterrupt
                    self.watch = _Watch(self, conn)
                    self.watch.start()
                    code = cli.main(list(argv))
                except SystemExit as e:         # argparse's --help, --version and usage errors
                    code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
                    if not isinstance(e.code, (int, type(None))):
                        print(e.code, file=sys.stderr)
            except KeyboardInterrupt:           # interrupted outside cli.main's own handlers (once)
                print("qtool: interrupted", file=sys.stderr)
                code = 130
            finally:
                watch, self.watch, self.conn = self.watch, None, None
                if watch is not None:
                    watch.end()
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            return code, cache.served_end()     # its writer lock taken before the answer
        finally:
            for fd, own in zip((0, 1, 2), saved):
                os.dup2(own, fd)
                os.close(own)
            os.fchdir(here)
            os.close(here)
            os.environ.clear()
            os.environ.update(own_env)
            os.umask(own_mask)

    def _on_io(self, signum, frame) -> None:
        """SIGIO, from _Watch: the command stops as at a Ctrl-C of its own (once)."""
        watch = self.watch
        if watch is not None and watch.came and not watch.raised:
            watch.raised = True
            raise KeyboardInterrupt


# Ctrl-C at the client, or the client gone, while its command runs; and a stop meanwhile.

def _interrupt_came(conn: socket.socket) -> bool:
    """Whether the client, whose command runs, sent Ctrl-C (INTERRUPT) or hung up (or died); any
    other byte is read and ignored."""
    try:
        data = conn.recv(1, socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    return data == client.INTERRUPT or not data


def _drain(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except (BlockingIOError, InterruptedError):
        return b""


# The asynchronous signals: the watching thread takes none (they go to the serving thread).
_ASYNC_SIGNALS = signal.valid_signals() - {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL,
                                           signal.SIGABRT, signal.SIGTRAP, signal.SIGSYS}


class _Watch:
    """A thread that watches a command's client while the command runs, and the server's signals:
    when the client sends Ctrl-C or hangs up, or a stop comes, it signals the serving (main)
    thread with SIGIO, again every RESEND seconds until that thread has acted on it (Server._on_io
    raised KeyboardInterrupt, or the stop's handler _Stop).  A signal runs its Python handler only
    where the thread returns to Python: one that comes just before the thread enters a system
    call that waits (the read of a FIFO the command opened, say) interrupts nothing, and the
    thread would wait there for ever; the next one interrupts the call."""

    def __init__(self, server: Server, conn: socket.socket):
        self.server, self.conn = server, conn
        self.came = False           # the client's Ctrl-C or end: the serving thread is to raise
        self.raised = False         # it has
        self.stop_asked = False     # a stop's signal came: the serving thread is to raise _Stop
        self.main = threading.get_ident()
        self.pipe = os.pipe2(os.O_CLOEXEC)      # end() writes: the thread returns
        self.thread = threading.Thread(target=self._run, name="qtool serve: watch", daemon=True)

    def start(self) -> None:
        """Starts the thread (the serving thread has the watch already: a stop that comes as it
        starts, and raises _Stop here, leaves it to end())."""
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _ASYNC_SIGNALS)    # the thread's from its start
        try:
            self.thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def end(self) -> None:
        os.write(self.pipe[1], b"\0")      # before the join: a stop that interrupts it leaves no poll
        if self.thread.ident is not None:
            self.thread.join()
        for fd in self.pipe:
            os.close(fd)

    def _due(self) -> bool:
        """Whether the serving thread has yet to act: on the client's Ctrl-C or end, until it
        raised KeyboardInterrupt; on a stop, until the watch ends (_Stop, on its way out of the
        command, ends it)."""
        return (self.came and not self.raised) or self.stop_asked

    def _run(self) -> None:
        conn, wakeup = self.conn.fileno(), self.server.wakeup[0]
        poll = select.poll()
        for fd in (self.pipe[0], conn, wakeup):
            poll.register(fd, select.POLLIN)
        signalled = 0.0
        while True:
            wait = None
            if self._due():
                now = time.monotonic()
                if now - signalled >= RESEND:
                    signal.pthread_kill(self.main, signal.SIGIO)
                    signalled = now
                wait = max(0, int((signalled + RESEND - now) * 1000) + 1)
            for fd, _ in poll.poll(wait):
                if fd == self.pipe[0]:
                    return
                if fd == wakeup:
                    if any(n in _STOPS for n in _drain(wakeup)):
                        self.stop_asked = True
                elif fd == conn and _interrupt_came(self.conn):
                    self.came = True
                    poll.unregister(conn)


def _warm() -> None:
    """Imports every module of qtool's, as a command would on its first use of each: not while a
    client waits.  (Not the SCons tool's: a build imports it, in a process of its own.)"""
    import importlib
    import pkgutil
    from . import __path__ as roots
    for info in pkgutil.walk_packages(roots, "qtool."):
        if info.name not in ("qtool.__main__", "qtool.scons"):
            try:
                importlib.import_module(info.name)
            except Exception:
                pass


def background(server: Server) -> int:
    """Runs the server in a process of its own (forked twice: in a session of its own, not its
    leader, so that no terminal becomes its own; in /, with no descriptor of this one's but its
    standard streams: /dev/null, and for errors the log beside its socket); returns once it
    serves (0, and what it said then), or once it failed to (2, and what it said)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            os.close(r)
            os.setsid()
            if os.fork():
                code = 0
                return                  # (os._exit below): the server is the grandchild
            os.chdir("/")
            os.closerange(3, w)
            os.closerange(w + 1, 1 << 16)
            try:
                server.bind()
            except UserError as e:
                os.write(w, str(e).encode())
                return
            null = os.open(os.devnull, os.O_RDWR)
            err = _open_private(server.path + ".log", os.O_WRONLY | os.O_TRUNC)
            for fd, to in ((0, null), (1, null), (2, err)):
                os.dup2(to, fd)
            os.close(null)
            os.close(err)

            told = []

            def ready() -> None:
                os.write(w, b"\0" + f"qtool serve: serving {client.cache_base()} at {server.path} (pid "
                                    f"{os.getpid()}); its messages go to {server.path}.log".encode())
                os.close(w)
                told.append(True)
            try:
                code = server.run(ready)
            except BaseException:
                import traceback
                traceback.print_exc()   # into the log
                if not told:
                    os.write(w, b"qtool: internal error in the server: see " + server.path.encode() + b".log")
        finally:
            os._exit(code)
    os.close(w)
    said = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        said += chunk
    os.close(r)
    os.waitpid(pid, 0)
    if said[:1] == b"\0":
        print(said[1:].decode(errors="replace"), file=sys.stderr)
        return 0
    print(said.decode(errors="replace") or "qtool: error: the server did not start", file=sys.stderr)
    return 2


def stop(path: str, wait: float = 60.0) -> int:
    """Stops this user's server at path: 0 when one was stopped, 1 when none runs there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        pid, uid, _ = client.peer(sock)
    except OSError:
        print(f"qtool serve: no server at {path}", file=sys.stderr)
        return 1
    finally:
        sock.close()
    if uid != os.getuid():
        raise UserError(f"the server at {path} is another user's (uid {uid}): not stopped")
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        fd = None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0
    except PermissionError:
        raise UserError(f"the server at {path} (pid {pid}) may not be stopped by this user") from None
    if fd is not None:
        ended, _, _ = select.select([fd], [], [], wait)     # readable when the process has ended
        os.close(fd)
        if not ended:
            raise UserError(f"the server at {path} (pid {pid}) did not stop within {wait:g} s")
    print(f"qtool serve: stopped the server (pid {pid}) at {path}", file=sys.stderr)
    return 0
