"""What every benchmark prints about the machine it ran on, and how one that runs servers is run."""

from __future__ import annotations

import platform
import signal
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
