"""How a test reads a server's refusal to boot, and runs it as a user that root's rights do not cover."""

from __future__ import annotations

import os

from testkit.server_process import ServerProcess


def refusal_lines(server: ServerProcess) -> list[str]:
    """The one-line stderr messages (not the JSON log)."""
    return [line for line in server.logs if line.startswith("feature_service: ")]


def as_non_root(server: ServerProcess) -> ServerProcess:
    """Runs the server as `nobody` when the tests run as root (root reads and writes any file)."""
    if os.geteuid() == 0:
        server.command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *server.command]
    return server
