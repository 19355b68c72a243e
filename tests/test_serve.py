"""`qtool serve` (qtool/serve.py, qtool/client.py, qtool/analyzer/keeper.py): a command it runs
prints, writes and exits as the command run alone does, after any edit; Ctrl-C at the client and
a client killed stop the command there and not the server; a keeper that crashes, a server whose
code changed or that was killed, garbage on its socket and a second server change nothing a
command prints."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from test_cache import COMMANDS, EDITS, KVSTORE, replace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def walkers_into(cache):
    """A new cache directory holding the session cache's compiled walker (none is built in a test)."""
    os.makedirs(cache, exist_ok=True)
    warm = os.environ["QPM_CACHE_DIR"]
    for name in os.listdir(warm):
        if name.startswith("walker-"):
            shutil.copy(os.path.join(warm, name), cache)
    return str(cache)


def run(env, args, cwd, **kwargs):
    """`python -m qtool ARGS` (the client, as the qtool script runs it): (exit status, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "qtool", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=300, **kwargs)
    return p.returncode, p.stdout, p.stderr


class Server:
    def __init__(self, cache, pythonpath=ROOT):
        self.env = dict(os.environ, QPM_CACHE_DIR=cache, PYTHONPATH=pythonpath)
        self.env.pop("QPM_NO_SERVER", None)
        # Started in the cache's directory: `python -m` looks for qtool in its working directory
        # first, and the tests' is the checkout's.
        self.proc = subprocess.Popen([sys.executable, "-m", "qtool", "serve", "--idle", "600"], env=self.env,
                                     cwd=cache,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.started = self.proc.stderr.readline()
        assert "qtool serve: serving" in self.started, self.started + self.proc.stderr.read()
        self.socket = self.started.split(" at ")[1].split(" (pid")[0]

    def run(self, args, cwd, **kwargs):
        return run(self.env, args, cwd, **kwargs)

    def stop(self):
        """Stops the server: what it said after its start."""
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=60)


@pytest.fixture
def server(tmp_path):
    s = Server(walkers_into(tmp_path / "cache"))
    yield s
    s.kill()


@pytest.fixture
def alone(tmp_path):
    """A command run without a server, on an empty cache of its own each time."""
    count = [0]

    def run_alone(args, cwd):
        count[0] += 1
        env = dict(os.environ, QPM_NO_SERVER="1", QPM_CACHE_DIR=walkers_into(tmp_path / f"alone-{count[0]}"))
        return run(env, args, cwd)
    return run_alone


@pytest.fixture
def program(tmp_path):
    src = tmp_path / "kvstore"
    shutil.copytree(KVSTORE, src, ignore=shutil.ignore_patterns("build", ".*"))
    return src


def with_output(runner, args, cwd, out):
    """The command with -o out: its status, stdout, stderr and the file it wrote."""
    if os.path.exists(out):
        os.unlink(out)
    rc, stdout, stderr = runner([*args, "-o", out], cwd)
    with open(out) as f:
        return rc, stdout, stderr, f.read()


def test_served_commands_print_write_and_exit_as_commands_alone_do(server, alone, program, tmp_path):
    commands = [COMMANDS["analyze-text"], COMMANDS["analyze-json"], COMMANDS["check-json"],
                ("analyze", "--format", "sarif"), ("check", "--plan", "plans/isolate-all.yaml")]
    served = 0
    out = str(tmp_path / "out")
    # Nothing edited, then edits of one unit one after another (the keeper parses it again from
    # its kept parse), of the header every unit includes, and of two units at once.
    for edit in (None, "comment", "lines", "function", "header", "two", "removed"):
        for name, old, new in EDITS.get(edit, []):
            replace(program / name, old, new)
        for args in commands:
            got = with_output(server.run, args, program, out)
            served += 1
            assert got[0] in (0, 1) and "Traceback" not in got[2], (edit, args, got[2])
            assert got == with_output(alone, args, program, out), (edit, args)
    # Usage errors and --version, as argparse says them alone.
    for args in (("analyze", "--bogus"), ("--version",), ("check",), ()):
        assert server.run(args, program) == alone(args, program), args
        served += 1
    said = server.stop()
    found = re.search(r"stopped after (\d+) commands \((\d+) units parsed by its keeper, (\d+) of them from a "
                      r"kept parse\)", said)
    assert found, said
    commands, walks, again = map(int, found.groups())
    assert commands == served and walks > 0 and again > 0, said


def test_a_served_command_runs_in_the_clients_directory_umask_and_environment(server, alone, program, tmp_path):
    # A relative -o, a umask of the client's, an option only the environment gives (COLUMNS sets
    # the width of the help).
    env = dict(server.env, COLUMNS="50")
    wide = subprocess.run([sys.executable, "-m", "qtool", "analyze", "--help"], cwd=program, env=env,
                          capture_output=True, text=True, timeout=60)
    assert max(map(len, wide.stdout.splitlines())) <= 50, wide.stdout
    script = ("import os, sys\nos.umask(0o077)\nsys.argv = ['qtool', 'analyze', '-o', 'model.txt', '.']\n"
              "from qtool.client import console\nconsole()\n")
    p = subprocess.run([sys.executable, "-c", script], cwd=program, env=server.env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert os.stat(program / "model.txt").st_mode & 0o077 == 0
    assert "stopped after 2 commands" in server.stop()


def fifo_compile_commands(where):
    """A compile_commands.json that is a FIFO: a command that reads it waits there until a writer
    writes (the test holds the write end open and writes nothing)."""
    path = where / "compile_commands.json"
    os.mkfifo(path)
    return path


def interrupted_waiting_in(fifo, server, args, cwd):
    """Runs the served command, which waits reading the FIFO, and presses Ctrl-C at its client
    once it does (opening the FIFO to write returns then): the client says so, and exits 130."""
    client = subprocess.Popen([sys.executable, "-m", "qtool", *args], cwd=cwd, env=server.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    w = os.open(fifo, os.O_WRONLY)
    try:
        client.send_signal(signal.SIGINT)
        try:
            _, err = client.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            client.kill()
            server.proc.terminate()
            pytest.fail("the interrupted command did not end; the server said:\n" + server.proc.communicate()[1])
    finally:
        os.close(w)
    assert client.returncode == 130 and "qtool: interrupted" in err, (client.returncode, err)


def test_ctrl_c_at_the_client_stops_the_served_command_and_the_server_goes_on(server, program):
    fifo = fifo_compile_commands(program)
    interrupted_waiting_in(fifo, server, ("analyze", "-p", str(fifo)), program)
    os.unlink(fifo)
    rc, _, err = server.run(("analyze", "."), program)
    assert rc == 0 and "0 errors" in err
    assert "stopped after 2 commands" in server.stop()


def test_a_client_killed_mid_command_stops_it_there_and_the_server_goes_on(server, program):
    fifo = fifo_compile_commands(program)
    client = subprocess.Popen([sys.executable, "-m", "qtool", "analyze", "-p", str(fifo)], cwd=program,
                              env=server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    w = os.open(fifo, os.O_WRONLY)
    try:
        client.kill()
        client.wait(timeout=60)
        # The next command is served once the killed one has stopped: it would wait for ever
        # behind a command still reading the FIFO.
        rc, _, err = server.run(("analyze", "."), program)
    finally:
        os.close(w)
    assert rc == 0 and "0 errors" in err, err
    assert "stopped after 2 commands" in server.stop()


def test_a_stop_while_a_command_waits_ends_the_command_and_the_server(server, program):
    fifo = fifo_compile_commands(program)
    client = subprocess.Popen([sys.executable, "-m", "qtool", "analyze", "-p", str(fifo)], cwd=program,
                              env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    w = os.open(fifo, os.O_WRONLY)
    try:
        rc, _, err = run(server.env, ("serve", "--stop"), program)
        assert rc == 0 and f"stopped the server (pid {server.proc.pid})" in err, err
        _, said = server.proc.communicate(timeout=60)
        _, err = client.communicate(timeout=60)
    finally:
        os.close(w)
    assert server.proc.returncode == 0 and "stopped after 1 command" in said, said
    assert client.returncode == 3 and "ended before the command did" in err, (client.returncode, err)


SPIN_THEN_READ = r"""
#include <time.h>
#include <unistd.h>
/* Sends Ctrl-C on sock, spins for ns nanoseconds (a signal then only runs its handler's C part),
 * then reads one byte of fd. */
long ctrl_c_spin_read(int sock, int fd, long ns)
{
    if (write(sock, "I", 1) != 1)
        return -2;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < ns);
    char c;
    return read(fd, &c, 1);
}
"""


def test_a_ctrl_c_that_comes_just_before_the_command_waits_still_stops_it(tmp_path):
    # The race a signal sent once loses: it comes while the serving thread runs C code, which
    # only its handler's C part sees, and the thread then waits in a system call that the signal
    # came too early to interrupt.  The watch signals again until the thread has acted.  (A timer
    # ends the read after 20 s, so that a lost Ctrl-C fails the test rather than hanging it.)
    import ctypes
    import threading
    from qtool import client, serve
    src = tmp_path / "spin.c"
    src.write_text(SPIN_THEN_READ)
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", str(src), "-o", str(tmp_path / "spin.so")], check=True)
    ctrl_c_spin_read = ctypes.CDLL(str(tmp_path / "spin.so")).ctrl_c_spin_read  # lets go of the GIL
    ctrl_c_spin_read.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_long)
    ctrl_c_spin_read.restype = ctypes.c_long
    srv = serve.Server(str(tmp_path / "s.sock"), 60.0)
    ours, theirs = socket.socketpair()
    r, w = os.pipe()
    old_io = signal.signal(signal.SIGIO, srv._on_io)
    srv.wakeup = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = signal.set_wakeup_fd(srv.wakeup[1], warn_on_full_buffer=False)
    late = threading.Timer(20, os.write, (w, b"x"))
    late.start()
    try:
        srv.watch = serve._Watch(srv, ours)
        srv.watch.start()
        assert client.INTERRUPT == b"I"
        with pytest.raises(KeyboardInterrupt):  # the watch signals at once, while the thread spins
            ctrl_c_spin_read(theirs.fileno(), r, 300_000_000)
        assert late.is_alive(), "the read ended by the timer, not by the Ctrl-C"
    finally:
        late.cancel()
        srv.watch.end()
        signal.set_wakeup_fd(old_wakeup)
        signal.signal(signal.SIGIO, old_io)
        for fd in (r, w, *srv.wakeup):
            os.close(fd)
        ours.close()
        theirs.close()


def test_a_ctrl_c_that_comes_once_the_client_waits_reaches_the_server(tmp_path):
    # The client's side of the same race: SIGINT whose handler's C part runs in another thread
    # (as it may when the signal comes just before the wait's system call) does not interrupt
    # that call; the client looks again within client.LOOK seconds and tells the server.
    import threading
    from qtool import client
    waits = threading.Event()

    class Socket(socket.socket):
        def recv(self, *args):
            waits.set()                     # what follows is the wait's system call
            return super().recv(*args)

    ours, theirs = socket.socketpair()
    ours = Socket(fileno=ours.detach())
    old_int = signal.getsignal(signal.SIGINT)
    ctrl_c = client._CtrlC(ours)
    ctrl_c.request_sent()
    main = threading.get_native_id()

    def press():
        # Once the main thread waits in the system call (in poll, says /proc: not for the
        # interpreter's lock), SIGINT to this thread: the main thread's call goes on.
        try:
            assert waits.wait(30)
            for _ in range(200_000):
                with open(f"/proc/self/task/{main}/wchan") as f:
                    if "poll" in f.read():
                        break
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            theirs.settimeout(30)
            told.append(theirs.recv(1))
        finally:
            theirs.shutdown(socket.SHUT_RDWR)   # the server's end: the wait returns

    told = []
    presser = threading.Thread(target=press)
    presser.start()
    try:
        client._await(ours)
    finally:
        presser.join()
        signal.signal(signal.SIGINT, old_int)
        ours.close()
        theirs.close()
    assert told == [client.INTERRUPT] and ctrl_c.pressed


def test_a_unit_that_crashes_libclang_in_the_keeper_is_reported_as_alone(server, alone, tmp_path):
    # The keeper dies (SIGSEGV in libclang's parser), the unit is parsed again in a child of the
    # server's, which dies too: the error is the one a command alone reports, and the server and
    # its next keeper go on.
    src = tmp_path / "deep"
    src.mkdir()
    (src / "deep.c").write_text("int f(int a) { return " + " + ".join(["a"] * 200000) + "; }\n")
    (src / "main.c").write_text("int g(void) { return 1; }\nint main(void) { return g(); }\n")
    args = ("analyze", "-j", "1", "--format", "json")
    first = server.run(args, src)
    assert first == alone(args, src)
    assert "libclang crashed on this file" in first[1]
    (src / "main.c").write_text("int g(void) { return 2; }\nint main(void) { return g(); }\n")
    assert server.run(args, src) == alone(args, src)
    said = server.stop()
    assert "stopped after 2 commands" in said


def test_a_server_whose_code_changed_has_the_command_run_alone_and_stops(tmp_path, program):
    copy = tmp_path / "code"
    for part in ("qtool", "clang_attrs"):
        shutil.copytree(os.path.join(ROOT, part), copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    s = Server(walkers_into(tmp_path / "cache"), pythonpath=str(copy))
    try:
        first = s.run(("analyze", "."), program)
        with open(copy / "qtool" / "errors.py", "a") as f:
            f.write("\n# edited while a server runs it\n")
        assert s.run(("analyze", "."), program) == first
        _, err = s.proc.communicate(timeout=60)
        assert s.proc.returncode == 0
        assert "qtool's code changed: stopping" in err and "stopped after 1 command " in err, err
    finally:
        s.kill()


def test_a_killed_servers_socket_has_commands_run_alone_until_another_serves(tmp_path, program, alone):
    cache = walkers_into(tmp_path / "cache")
    s = Server(cache)
    s.proc.kill()
    s.proc.communicate(timeout=60)
    assert os.path.exists(s.socket)     # left behind
    assert s.run(("analyze", "."), program) == alone(("analyze", "."), program)
    again = Server(cache)
    try:
        assert again.run(("analyze", "."), program)[0] == 0
        assert "stopped after 1 command " in again.stop()
    finally:
        again.kill()


def test_one_server_a_cache_and_stop_stops_it(server, program):
    rc, _, err = run(server.env, ("serve",), program)
    assert rc == 2 and f"a server (pid {server.proc.pid}) already serves this cache" in err, err
    assert os.stat(server.socket).st_mode & 0o077 == 0     # the user's own
    rc, _, err = run(server.env, ("serve", "--stop"), program)
    assert rc == 0 and f"stopped the server (pid {server.proc.pid})" in err
    assert server.proc.wait(timeout=60) == 0
    rc, _, err = run(server.env, ("serve", "--stop"), program)
    assert rc == 1 and "no server at" in err


@pytest.mark.parametrize("garbage", [b"", b"\x01", b"\xff\xff\xff\x7f", b"\x05\x00\x00\x00hello",
                                     b"\x04\x00\x00\x00\xe9\x01\x00\x00\x00",
                                     b"\x03\x00\x00\x00)\x01N"])      # a tuple, of the wrong length
def test_garbage_on_the_socket_is_refused_and_the_server_goes_on(server, program, garbage):
    from qtool import client
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(server.socket)
    assert client.receive_message(s)[0] == client.HELLO
    s.sendall(garbage)
    s.shutdown(socket.SHUT_WR)
    try:
        reply = client.receive_message(s)[0]
    except (EOFError, ConnectionResetError):        # closed unanswered (with bytes left unread)
        reply = None
    assert reply in (None, (client.OTHER,))         # or told to run the command itself
    s.close()
    rc, _, err = server.run(("analyze", "."), program)
    assert rc == 0 and "0 errors" in err, err
    assert "stopped after 1 command " in server.stop()


def test_a_client_that_hangs_up_at_any_point_ends_only_its_own_conversation(server, program):
    from qtool import client
    for cut in ("before hello", "after hello", "after request"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(server.socket)
        if cut != "before hello":
            assert client.receive_message(s)[0] == client.HELLO
        if cut == "after request":
            req = client.request(["analyze", str(program)])
            client.send_message(s, req, (0, 1, 2))
        s.close()
    rc, _, err = server.run(("analyze", "."), program)
    assert rc == 0 and "0 errors" in err, err
    assert server.proc.poll() is None
    said = server.stop()
    assert re.search(r"stopped after [12] commands", said), said


def test_a_client_that_says_nothing_holds_the_server_only_for_the_requests_timeout(server, program):
    from qtool import client
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.connect(server.socket)
    try:
        rc, _, err = server.run(("analyze", "."), program)
        assert rc == 0 and "0 errors" in err, err
        # Told to run its command itself, then left.
        assert [client.receive_message(mute)[0] for _ in range(2)] == [client.HELLO, (client.OTHER,)]
        assert mute.recv(16) == b""
    finally:
        mute.close()
    assert "stopped after 1 command " in server.stop()


EXTRA_H = ("#ifndef EXTRA_H\n#define EXTRA_H\nstatic inline int extra_a(int x) { return x; }\n"
           "static inline int extra_b(int x) { return x + 1; }\n#define EXTRA_CALL(x) extra_a(x)\n#endif\n")


def test_a_kept_unit_reads_what_a_fresh_parse_reads_whatever_its_includes_do(server, alone, program):
    # The keeper parses stats.c again from its kept parse only while its directives and every file
    # its first parse read are unchanged: each step here prints what a command alone prints,
    # and the header added is a file the unit read, whose edit the next command sees, after a
    # reparse too (clang_getInclusions leaves it out once the unit has a preamble).
    args = ("analyze", "-j", "1", "--format", "json")
    (program / "extra.h").write_text(EXTRA_H)
    use = "\nint stats_extra(int v)\n{\n    return EXTRA_CALL(v);\n}\n"
    steps = [
        ("stats.c", "    return len;\n}\n", "    return len;\n}\n" + use.replace("EXTRA_CALL(v)", "v")),
        ("stats.c", "#include <stdio.h>\n", "#include <stdio.h>\n#include \"extra.h\"\n"),
        ("stats.c", "return v;", "return EXTRA_CALL(v);"),        # a body edit: parsed again from the kept parse
        ("extra.h", "#define EXTRA_CALL(x) extra_a(x)", "#define EXTRA_CALL(x) extra_b(x)"),
        ("stats.c", "return EXTRA_CALL(v);", "return EXTRA_CALL(v) ;"),
        ("extra.h", "extra_b(x)\n", "extra_a(x)\n"),                # the same size
        ("stats.c", "#include \"extra.h\"\n", "/*\n#include \"extra.h\"\n*/\n#define EXTRA_CALL(x) (x)\n"),
        ("stats.c", "return EXTRA_CALL(v) ;", "return EXTRA_CALL(v);"),
    ]
    first = server.run(args, program)
    assert first == alone(args, program)
    for file, old, new in steps:
        replace(program / file, old, new)
        got = server.run(args, program)
        assert got[0] in (0, 1) and "Traceback" not in got[2], got[2]
        assert got == alone(args, program), (file, old, new)
    said = server.stop()
    assert re.search(r"\((\d+) units parsed by its keeper, [1-9]\d* of them from a kept parse\)", said), said


@pytest.mark.parametrize("text,found", [
    (b"#include <a.h>\nint x;\n#if A\n#include <b.h>\n#endif\n", b"#include <a.h>\n#if A\n#include <b.h>\n#endif"),
    (b"/* c */\n#include <a.h>\n  // x\n#define A \\\n  1\nint x;\n", b"#include <a.h>\n#define A \\\n  1"),
    (b"/*\n#include <a.h>\n*/ int x;\n#include <b.h>\n", b"#include <b.h>"),
    (b"\xef\xbb\xbf#include <a.h>\nint x;", b"#include <a.h>"),
    (b"%:include <a.h>\n", b"%:include <a.h>"),
    (b'char *s = "/*";\n#include <b.h>\nint y; // */\n', b"#include <b.h>"),
    (b"// a \\\n#include <hidden.h>\n#include <a.h>\n", b"#include <a.h>"),
    (b"int x; /* a\n b */ #include <c.h>\n", b" #include <c.h>"),
])
def test_the_directives_a_kept_parse_is_checked_by(text, found):
    from qtool.analyzer.keeper import directives
    assert directives(text) == found


def test_background_returns_once_it_serves(tmp_path, program):
    from qtool import client
    env = dict(os.environ, QPM_CACHE_DIR=walkers_into(tmp_path / "cache"), PYTHONPATH=ROOT)
    env.pop("QPM_NO_SERVER", None)
    rc, _, err = run(env, ("serve", "--background"), tmp_path)
    assert rc == 0 and "qtool serve: serving" in err, err
    pid = int(err.split("(pid ")[1].split(")")[0])
    try:
        rc, _, err = run(env, ("serve", "--background"), tmp_path)
        assert rc == 2 and f"a server (pid {pid}) already serves" in err, err
        assert run(env, ("analyze", "."), program)[0] == 0
        rc, _, err = run(env, ("serve", "--stop"), tmp_path)
        assert rc == 0
        with open(client.socket_path(str(tmp_path / "cache")) + ".log") as f:
            log = f.read()
        assert log.startswith("qtool serve: serving") and "stopped after 1 command " in log, log
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.skipif(os.getuid() != 0, reason="needs a second user: run as root, the test listens as nobody")
def test_a_socket_of_another_user_is_given_nothing(tmp_path, program, alone):
    # Somebody else's process listens where this user's server would (a directory others can
    # write to): the client sends it no command, environment or streams, and runs the command.
    import tempfile
    cache = walkers_into(tempfile.mkdtemp(prefix="qtool-shared-"))     # a directory nobody reaches
    os.chmod(cache, 0o777)
    from qtool import client
    path = client.socket_path(cache)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            os.chmod(path, 0o777)
            listener.listen(1)
            os.write(w, b"L")
            conn, _ = listener.accept()
            got = conn.recv(1 << 16)
            os.write(w, b"G" + got)
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"L"
        env = dict(os.environ, QPM_CACHE_DIR=cache)
        env.pop("QPM_NO_SERVER", None)
        assert run(env, ("analyze", "."), program) == alone(("analyze", "."), program)
        said = b""
        while True:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            said += chunk
        assert said == b"G", said[:200]     # connected, then closed with nothing sent
    finally:
        os.close(r)
        os.waitpid(pid, 0)
        shutil.rmtree(cache, ignore_errors=True)


def test_ctrl_c_while_the_keeper_parses_leaves_no_answer_for_the_next_command(server, alone, tmp_path):
    # The unit's header is a FIFO: the keeper's parse waits in it.  Ctrl-C at the client stops the
    # command in the server while the keeper has yet to answer; the next command's unit must not
    # get that answer (the keeper is ended, and another started).
    src = tmp_path / "fifo"
    src.mkdir()
    os.mkfifo(src / "pipe.h")
    (src / "main.c").write_text('#include "pipe.h"\nint g(void) { return 1; }\nint main(void) { return g(); }\n')
    interrupted_waiting_in(src / "pipe.h", server, ("analyze", "-j", "1", "main.c"), src)
    os.unlink(src / "pipe.h")
    (src / "pipe.h").write_text("int h(void);\n")
    (src / "other.c").write_text("int h(void) { return 2; }\n")
    args = ("analyze", "-j", "1", "--format", "json", ".")
    assert server.run(args, src) == alone(args, src)
    assert "stopped after 2 commands" in server.stop()


def test_a_header_that_appears_earlier_on_the_include_path_is_read_as_alone(server, alone, tmp_path):
    # -I a -I b, the header in b: a kept unit parsed again after h.h appears in a reads a's, as a
    # fresh parse does; so does one run with CPATH naming a directory the header is in.
    src = tmp_path / "paths"
    for d in ("a", "b", "c"):
        (src / d).mkdir(parents=True)
    (src / "b" / "h.h").write_text("static int from_b(void) { return 2; }\n#define CALL() from_b()\n")
    (src / "main.c").write_text('#include "h.h"\nint main(void) { return CALL(); }\n')
    with open(src / "compile_commands.json", "w") as f:
        f.write('[{"directory": "%s", "file": "main.c", "arguments": ["gcc", "-Ia", "-Ib", "-c", "main.c"]}]' % src)
    args = ("analyze", "--format", "json", "-p", "compile_commands.json")
    assert server.run(args, src) == alone(args, src)
    replace(src / "main.c", "return CALL();", "return CALL() ;")        # parsed again from the kept parse
    assert server.run(args, src) == alone(args, src)
    (src / "a" / "h.h").write_text("static int from_a(void) { return 1; }\n#define CALL() from_a()\n")
    replace(src / "main.c", "return CALL() ;", "return CALL();")
    got = server.run(args, src)
    assert "from_a" in got[1] and got == alone(args, src)
    # The same with a header in a subdirectory that both include paths have.
    for d in ("a", "b"):
        (src / d / "sub").mkdir()
    (src / "b" / "sub" / "s.h").write_text("static int sub_b(void) { return 2; }\n#define SUB() sub_b()\n")
    replace(src / "main.c", '#include "h.h"\n', '#include "h.h"\n#include "sub/s.h"\nint s(void) { return SUB(); }\n')
    assert server.run(args, src) == alone(args, src)
    replace(src / "main.c", "return CALL();", "return CALL() ;")     # parsed again from the kept parse
    assert server.run(args, src) == alone(args, src)
    (src / "a" / "sub" / "s.h").write_text("static int sub_a(void) { return 1; }\n#define SUB() sub_a()\n")
    replace(src / "main.c", "return CALL() ;", "return CALL();")
    got = server.run(args, src)
    assert "sub_a" in got[1] and got == alone(args, src)
    # A header found through CPATH, the client's: the server's environment has none.
    (src / "c" / "only.h").write_text("int only(void);\n")
    (src / "cpath.c").write_text('#include "only.h"\nint use(void) { return only(); }\n')
    env = dict(server.env, CPATH=str(src / "c"))
    served_run = run(env, ("analyze", "-j", "1", "cpath.c"), src)
    alone_run = run(dict(env, QPM_NO_SERVER="1", QPM_CACHE_DIR=walkers_into(tmp_path / "alone-cpath")),
                    ("analyze", "-j", "1", "cpath.c"), src)
    assert served_run == alone_run and "not found" not in served_run[1] + served_run[2], served_run
    said = server.stop()
    assert re.search(r"[1-9]\d* of them from a kept parse", said), said


def test_a_server_whose_working_directory_went_serves_on(tmp_path, program, alone):
    gone = tmp_path / "gone"
    gone.mkdir()
    s = Server(walkers_into(tmp_path / "cache"))
    s.proc.kill()
    s.proc.communicate(timeout=60)
    env = dict(s.env)
    proc = subprocess.Popen([sys.executable, "-m", "qtool", "serve"], cwd=gone, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert "serving" in proc.stderr.readline()
        gone.rmdir()
        for _ in range(2):
            assert run(env, ("analyze", "."), program) == alone(("analyze", "."), program)
        proc.terminate()
        _, err = proc.communicate(timeout=60)
        assert "stopped after 2 commands" in err, err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_no_server_in_a_directory_everybody_may_write_to(tmp_path):
    cache = walkers_into(tmp_path / "cache")
    os.chmod(cache, 0o777)
    env = dict(os.environ, QPM_CACHE_DIR=cache)
    rc, _, err = run(env, ("serve",), tmp_path)
    assert rc == 2 and "that others may not write to" in err, err
    from qtool import client
    assert not os.path.exists(client.socket_path(cache))


def test_a_command_waits_for_a_busy_server_only_so_long_then_runs_alone(server, program, alone):
    fifo = fifo_compile_commands(program)
    busy = subprocess.Popen([sys.executable, "-m", "qtool", "analyze", "-p", str(fifo)], cwd=program,
                            env=server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    w = os.open(fifo, os.O_WRONLY)      # the server is in the busy command now
    try:
        other = tmp = program.parent / "other"
        shutil.copytree(program, other, ignore=shutil.ignore_patterns("compile_commands.json"))
        assert run(server.env, ("analyze", "."), tmp) == alone(("analyze", "."), tmp)
        busy.send_signal(signal.SIGINT)
        assert busy.wait(timeout=60) == 130
    finally:
        os.close(w)
    assert "stopped after 1 command " in server.stop()


def test_a_unit_saved_by_renaming_and_an_unrelated_variable_keep_its_kept_parse(server, program):
    # Editors save by writing a new file and renaming it over the old one (which changes the
    # directory), and shells change variables no parse reads: neither makes the keeper parse a
    # kept unit anew.
    args = ("analyze", "-j", "1", ".")
    assert server.run(args, program)[0] == 0
    for n in range(3):
        text = (program / "stats.c").read_text().replace("    return len;\n}\n", f"    return len;\n}}\nint v{n};\n", 1)
        (program / "stats.c.new").write_text(text)
        os.rename(program / "stats.c.new", program / "stats.c")
        env = dict(server.env, UNRELATED=str(n))
        assert run(env, args, program)[0] == 0
    said = server.stop()
    assert re.search(r"\(8 units parsed by its keeper, 3 of them from a kept parse\)", said), said
