"""What several test modules need of processes and files: who is still running, and a bounded
wait for files that another process writes (a poll between looks, never a sleep standing in for
synchronisation)."""

import glob
import os
import select
import time


def live_processes(match):
    """Pids of the processes (zombies excluded) whose argv[0] satisfies match(argv0)."""
    live = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0")[0].decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and match(argv0):
            live.append(int(pid))
    return live


def wait_for_files(pattern, deadline_s=10):
    """The files matching pattern once there is one, or [] after deadline_s."""
    end = time.monotonic() + deadline_s
    while True:
        files = glob.glob(str(pattern))
        if files or time.monotonic() > end:
            return files
        select.select([], [], [], 0.02)
