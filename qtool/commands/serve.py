"""qtool serve: a process that runs the qtool commands of this cache directory (see qtool/serve.py)."""

from __future__ import annotations

from .. import client

HELP = "run commands in one process that stays up: faster re-checks"


def add_arguments(parser) -> None:
    parser.add_argument("--idle", type=float, default=3600.0, metavar="SECONDS",
                        help="stop after this long without a command (default: 3600)")
    parser.add_argument("--background", action="store_true",
                        help="serve from a process of its own, once it serves (its messages: the socket's name and .log)")
    parser.add_argument("--stop", action="store_true", help="stop the server of this cache directory")


def run(options) -> int:
    from .. import serve
    path = client.socket_path()
    if options.stop:
        return serve.stop(path)
    if options.idle <= 0:
        from ..errors import UserError
        raise UserError("--idle must be a positive number of seconds")
    server = serve.Server(path, options.idle)
    return serve.background(server) if options.background else server.run()
