"""python -m feature_service serve --config PATH [flags]; every flag also from FEATURE_SERVICE_<FLAG>.

Exit codes: 0 after a graceful stop; 2 bad flags (incl. neither --insecure nor TLS files);
78 (EX_CONFIG) the config (or a TLS file) cannot be used, with one message naming the file and saying
why; 1 the port cannot be bound. A SIGTERM/SIGINT at any time, even while the modules load, is a
graceful stop; SIGHUP reloads the config (reload.py). The same with --processes N > 1
(feature_service/supervisor.py).
"""

from __future__ import annotations

from feature_service.processes.process_signals import ReloadSignal, ShutdownSignal

# Signals first: the imports below (pandas, Hamilton, grpc) take seconds on a busy machine, and a
# SIGTERM that arrives meanwhile must be a stop like any other, not the default death without a log
# (likewise a SIGHUP: kept for once the server can reload).
SHUTDOWN = ShutdownSignal()
RELOAD = ReloadSignal()
if __name__ == "__main__":
    SHUTDOWN.install()
    RELOAD.install()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402

from absenteeism import config_io  # noqa: E402
from feature_service import settings as settings_module  # noqa: E402
from feature_service.processes import json_logs, supervisor  # noqa: E402
from feature_service.rpc.prediction_server import PredictionServer  # noqa: E402

EXIT_USAGE = 2
EXIT_CONFIG = 78
EXIT_BIND = 1

log = logging.getLogger("feature_service")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m feature_service",
                                     description="Absenteeism prediction gRPC server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve PredictionService from a verified ServingConfig")
    settings_module.add_arguments(serve, os.environ)
    return parser


def serve(settings: settings_module.Settings, shutdown: ShutdownSignal | None = None,
          reload_signal: ReloadSignal | None = None, on_serving: Callable[[int], None] | None = None) -> int:
    """One server process, until SIGTERM/SIGINT. `on_serving(port)` is told once it serves (the
    supervisor's children report to their parent through it)."""
    server = PredictionServer(settings)
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


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_module.from_namespace(args)
    except settings_module.SettingsError as error:
        parser.error(str(error))  # exits 2
    json_logs.configure(settings.log_level)
    if settings.process_count > 1:
        return supervisor.run(settings)
    return serve(settings, SHUTDOWN, RELOAD)


if __name__ == "__main__":
    sys.exit(main())
