"""A supervisor's child: the process that multiprocessing's spawn starts for one slot.

An ordinary importable function (spawn pickles the target by its module and name), so the
supervisor imports it like any other.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection

from absenteeism import log_lines
from feature_service.processes.lone_server import serve
from feature_service.settings import Settings

log = logging.getLogger("feature_service.supervisor")


def run_child(settings: Settings, index: int, conn: Connection) -> None:
    """The single-process server (whatever serve() does: signals, reload) on the shared port; reports
    ("config", config_id, created_at, bytes) for each config it serves and ("serving", port) once it
    serves on `conn`, and stops when the supervisor is gone."""
    log_lines.configure(settings.log_level, settings.log_format)
    log_lines.add_fields(worker=index, pid=os.getpid())
    threading.Thread(target=_stop_with_parent, args=(conn,), name="parent-watch", daemon=True).start()
    sending = threading.Lock()  # the main thread reports serving, the reload thread each config

    def report(*message: object) -> None:
        with sending:
            conn.send(message)

    sys.exit(serve(settings, on_serving=lambda port: report("serving", port),
                   on_config=lambda config_id, created_at, data: report("config", config_id, created_at, data)))


def _stop_with_parent(conn: Connection) -> None:
    try:
        conn.recv()  # the parent sends nothing: this returns when its end closes, i.e. the parent is gone
    except (EOFError, OSError):
        pass
    log.warning("supervisor gone: stopping", extra={"event": "supervisor_gone"})
    os.kill(os.getpid(), signal.SIGTERM)
