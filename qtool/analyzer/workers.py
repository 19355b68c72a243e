"""Units parsed by worker processes, forks of this one, each watched.

    parse_in_workers(units, job, workers, answered, crashed)

multiprocessing.Pool cannot tell a worker that died from one that is slow: when libclang crashes
on a unit (a stack overflow in its parser on a deep enough expression, one of its bugs), the pool
forks a new worker and waits for the lost unit's answer for ever.  Here each worker is sent one
unit at a time and watched: a unit whose worker dies before answering is reported by crashed(),
and the units left go on in a new worker.
"""

from __future__ import annotations

import signal
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

    try:
        for _ in range(min(workers, len(todo))):
            start()
        started()
        while alive:
            by = {}
            for w in alive:
                by[w.conn] = w
                by[w.process.sentinel] = w
            for ready in wait(list(by)):
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
