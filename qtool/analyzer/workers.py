"""Units parsed by worker processes, forks of this one, each watched.

    parse_in_workers(units, job, workers, answered, crashed)

multiprocessing.Pool cannot tell a worker that died from one that is slow: when libclang crashes
on a unit (a stack overflow in its parser on a deep enough expression, one of its bugs), the pool
forks a new worker and waits for the lost unit's answer for ever.  Here each worker is sent one
unit at a time and watched: a unit whose worker dies before answering is reported by crashed(),
and the units left go on in a new worker.
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable


class WorkerError(Exception):
    """A unit's job raised an exception in a worker: its traceback, as the worker formatted it."""


def _serve(conn, job) -> None:
    """A worker: answers each unit it is sent with b"+" and job(unit), or b"!" and the traceback of
    what job raised, until it is sent None."""
    try:
        while True:
            unit = conn.recv()
            if unit is None:
                return
            try:
                answer = b"+" + job(unit)
            except Exception:
                import traceback
                answer = b"!" + traceback.format_exc().encode()
            conn.send_bytes(answer)
    except (EOFError, OSError, KeyboardInterrupt):
        pass


def how_it_ended(exitcode: int | None) -> str:
    """A dead worker's end, as a person reads it: "killed by SIGSEGV", "exit status 1"."""
    if exitcode is None:
        return "ended"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


# A parse that uses no CPU for this long waits on something that will not come: a header that
# is a named pipe or a terminal, a file on a server that stopped answering.  Its process is
# stopped, and the unit is an error that says so.  Parsing is all CPU: a busy machine slows it,
# but does not keep it from every tick for half a minute.  QPM_STALL_SECONDS sets another time
# (0 or less: no process is ever stopped).
STALL_SECONDS = 30.0


class Stalls:
    """Which of the processes watched used no CPU time (user and system, as /proc tells it) for
    the stall time.  Where /proc cannot tell, none ever has."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        try:
            self.seconds = float(os.environ.get("QPM_STALL_SECONDS", STALL_SECONDS))
        except ValueError:
            self.seconds = STALL_SECONDS
        self.last: dict[int, tuple[int, float, float]] = {}   # pid -> (its CPU ticks, since when, last looked at)

    def poll(self) -> float:
        """How long a wait may last before the processes are looked at again."""
        return min(1.0, self.seconds / 4) if self.seconds > 0 else 1.0

    def stalled(self, pid: int) -> bool:
        if self.seconds <= 0:
            return False
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
            ticks = int(fields[12]) + int(fields[13])       # utime, stime
        except (OSError, ValueError, IndexError):
            return False
        now = self.clock()
        was = self.last.get(pid)
        # Looked at long after the last time (this process itself was stopped, by ^Z say): what
        # the parse did meanwhile is not known, and it starts anew.
        if was is None or was[0] != ticks or now - was[2] > 4 * self.poll():
            self.last[pid] = (ticks, now, now)
            return False
        self.last[pid] = (ticks, was[1], now)
        return now - was[1] >= self.seconds

    def forget(self, pid: int) -> None:
        """pid starts anew (a worker given its next unit)."""
        self.last.pop(pid, None)

    def how(self) -> str:
        """How a stalled process ended, as crashed() words it."""
        return (f"stopped after it used no CPU for {self.seconds:g} s, waiting on a file that gives "
                "nothing (a named pipe? a terminal?)")


class _Worker:
    __slots__ = ("process", "conn", "unit")

    def __init__(self, process, conn, unit):
        self.process, self.conn, self.unit = process, conn, unit


def parse_in_workers(units: list, job: Callable[[object], bytes], workers: int,
                     answered: Callable[[object, bytes], None], crashed: Callable[[object, str], None],
                     started: Callable[[], None] = lambda: None,
                     before_fork: Callable[[], None] = lambda: None) -> None:
    """Runs job(unit) for each unit, in order, in up to `workers` forked processes: answered(unit,
    bytes) with each answer as it comes; crashed(unit, how) for a unit whose worker died before
    answering (how: how_it_ended).  An exception job raised is raised here as WorkerError.
    started() is called once the first workers are forked; before_fork() before each worker
    forked later (one that died is replaced, while the caller's other threads may run)."""
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("fork")
    todo = deque(units)
    alive: list[_Worker] = []

    def start() -> None:
        mine, theirs = ctx.Pipe()
        process = ctx.Process(target=_serve, args=(theirs, job), daemon=True)
        process.start()
        theirs.close()
        unit = todo.popleft()
        mine.send(unit)
        alive.append(_Worker(process, mine, unit))

    def end(w: _Worker) -> None:
        alive.remove(w)
        w.conn.close()
        w.process.join()

    stalls = Stalls()
    looked = time.monotonic()       # when the workers' CPU was last looked at (once a poll)
    try:
        for _ in range(min(workers, len(todo))):
            start()
        started()
        while alive:
            by = {}
            for w in alive:
                by[w.conn] = w
                by[w.process.sentinel] = w
            ready_now = wait(list(by), stalls.poll())
            if time.monotonic() - looked >= stalls.poll():
                looked = time.monotonic()
                answering = {by[r] for r in ready_now}
                for w in list(alive):
                    if w.unit is not None and w not in answering and stalls.stalled(w.process.pid):
                        w.process.kill()
                        end(w)
                        crashed(w.unit, stalls.how())
                        if todo:
                            before_fork()
                            start()
            for ready in ready_now:
                w = by[ready]
                if w not in alive:
                    continue            # its pipe and its end were both ready: handled
                answer = None
                try:
                    if w.conn.poll():
                        answer = w.conn.recv_bytes()
                except (EOFError, OSError):
                    pass
                if answer is None:      # died holding its unit
                    end(w)
                    crashed(w.unit, how_it_ended(w.process.exitcode))
                    if todo:
                        before_fork()
                        start()
                    continue
                unit = w.unit
                if answer[:1] == b"!":
                    raise WorkerError(answer[1:].decode(errors="replace"))
                answered(unit, answer[1:])
                stalls.forget(w.process.pid)
                w.unit = todo.popleft() if todo else None
                try:
                    w.conn.send(w.unit)
                except OSError:
                    pass                # it died meanwhile: its sentinel says so next
                if w.unit is None:
                    end(w)
    finally:
        for w in alive:
            w.process.terminate()
        for w in alive:
            w.process.join()
            w.conn.close()
