"""What every benchmark prints about the machine it ran on, how one that runs servers is run, and
how the ones that time qtool run a `qtool serve` and wait for a cache's writers."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def autogroup() -> str:
    """Whether the scheduler groups tasks by session (autogroup): then a server and its load client
    in two sessions share the CPUs half and half when both can run (docs/PERFORMANCE.md, "The
    watcher's session")."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            return "autogroup on" if f.read().strip() == "1" else "autogroup off"
    except OSError:
        return "no autogroup"


def own_group() -> dict:
    """Popen's arguments for a child in a process group of its own (so that it and its children
    can be signalled together) in this process's session.  Not a session of its own: where the
    scheduler groups tasks by session (autogroup), the server and the load client in two sessions
    get half of the CPUs each whenever both can run, and a build that needs more than the client
    is held to half (docs/PERFORMANCE.md, "The watcher's session")."""
    if sys.version_info >= (3, 11):
        return {"process_group": 0}
    return {"preexec_fn": os.setpgrp}


# Waits for a cache's writers (a qtool without them has none to wait for).
AWAIT_WRITERS = ("try:\n    from qtool.analyzer.cache import await_writers\nexcept ImportError:\n    pass\n"
                 "else:\n    await_writers()")


def await_writers(env: dict[str, str], cwd: str | None = None) -> None:
    """Waits, untimed, for the cache writers (of env's QPM_CACHE_DIR) a run left at work."""
    subprocess.run([sys.executable, "-c", AWAIT_WRITERS], cwd=cwd, env=env, check=True, timeout=900)


def start_qtool_server(qtool: list[str], env: dict[str, str], cwd: str | None = None) -> subprocess.Popen:
    """`qtool serve` (qtool: the command that runs qtool) for env's cache, once it serves (it says
    so on its standard error); RuntimeError when it does not start."""
    p = subprocess.Popen([*qtool, "serve", "--idle", "900"], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    if "serving" not in line:
        p.kill()
        raise RuntimeError(f"qtool serve did not start: {line}{p.stderr.read()}")
    return p


def stop_qtool_server(p: subprocess.Popen) -> None:
    p.terminate()
    p.communicate(timeout=60)


def _interrupted(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_servers_main(main, cleaned: str = "servers stopped") -> None:
    """Runs main() and exits with its status.  SIGINT and SIGTERM unwind through main's cleanup
    (its servers killed, its temporary files removed) and exit 130."""
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e}); {cleaned}", file=sys.stderr)
        sys.exit(130)
