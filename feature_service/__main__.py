"""python -m feature_service serve --config PATH [flags]; every flag also from FEATURE_SERVICE_<FLAG>.

Exit codes: 0 after a graceful stop; 2 bad flags (incl. neither --insecure nor TLS files);
78 (EX_CONFIG) the config (or a TLS file) cannot be used, with one message saying why;
1 the port cannot be bound. The same with --processes N > 1 (feature_service/supervisor.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from absenteeism import config_io
from feature_service import logs, settings as settings_module, supervisor
from feature_service.server import PredictionServer
from feature_service.shutdown import ShutdownSignal

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


def serve(settings: settings_module.Settings, on_serving: Callable[[int], None] | None = None) -> int:
    """One server process, until SIGTERM/SIGINT. `on_serving(port)` is told once it serves (the
    supervisor's children report to their parent through it)."""
    server = PredictionServer(settings)
    shutdown = ShutdownSignal()
    shutdown.install()  # before the boot: a SIGTERM during verification still stops cleanly
    try:
        server.start()
    except config_io.ConfigError as error:
        log.error(str(error), extra={"event": "config_refused", "config": str(settings.config)})
        print(f"feature_service: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as error:
        log.error(f"cannot start: {error}", extra={"event": "bind_failed"})
        print(f"feature_service: {error}", file=sys.stderr)
        return EXIT_BIND
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
    logs.configure(settings.log_level)
    if settings.process_count > 1:
        return supervisor.run(settings)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
