"""One server process from boot to graceful stop: a lone server, or one child of the supervisor.

Exit codes: 0 after a graceful stop; 78 (EX_CONFIG) the config (or a TLS file) cannot be used, with
one message naming the file and saying why; 1 the port cannot be bound.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from absenteeism import config_io
from feature_service.processes.process_signals import ReloadSignal, ShutdownSignal
from feature_service.rpc.prediction_server import ConfigListener, PredictionServer
from feature_service.settings import Settings

EXIT_CONFIG = 78
EXIT_BIND = 1

log = logging.getLogger("feature_service")


def serve(settings: Settings, shutdown: ShutdownSignal | None = None,
          reload_signal: ReloadSignal | None = None,
          on_serving: Callable[[int | None], None] | None = None, on_config: ConfigListener | None = None) -> int:
    """One server process, until SIGTERM/SIGINT. `on_serving(port)` is told once it serves and
    `on_config` each config it serves (the supervisor's children report to their parent through
    them); port None: a stop came before the boot."""
    server = PredictionServer(settings, on_config)
    shutdown = shutdown or ShutdownSignal()
    reload_signal = reload_signal or ReloadSignal()
    shutdown.install()  # before the boot: a SIGTERM during verification still stops cleanly
    reload_signal.install()
    try:
        if not shutdown.requested:  # a stop that came while the modules loaded: no boot at all
            server.start()
    except config_io.ConfigError as error:
        log.error(str(error), extra={"event": "config_refused", "config": str(settings.config)})
        print(f"feature_service: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as error:
        log.error(f"cannot start: {error}", extra={"event": "bind_failed"})
        print(f"feature_service: {error}", file=sys.stderr)
        return EXIT_BIND
    reload_signal.attach(server.request_reload)
    if on_serving is not None:
        on_serving(server.port)
    received = shutdown.wait()
    log.info("signal received", extra={"event": "signal", "signal": received})
    server.stop()
    return 0
