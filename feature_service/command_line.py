"""python -m feature_service serve --config PATH [flags]; every flag also from FEATURE_SERVICE_<FLAG>.

Exit codes: 0 after a graceful stop; 2 bad flags (incl. neither --insecure nor TLS files); 78
(EX_CONFIG) the config (or a TLS file) cannot be used, with one message naming the file and saying
why; 1 the port cannot be bound (processes/lone_server.py). A SIGTERM/SIGINT at any time, even while
the modules load, is a graceful stop; SIGHUP reloads the config (config_reloader.py). The same with
--processes N > 1 (processes/supervisor.py).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from absenteeism import log_lines, release
from feature_service import settings as settings_module
from feature_service.processes import supervisor
from feature_service.processes.lone_server import serve
from feature_service.processes.process_signals import ReloadSignal, ShutdownSignal

EXIT_USAGE = 2  # argparse's own exit code for bad flags
EXIT_CODES = """exit codes:
  0    stopped gracefully (SIGTERM/SIGINT, also during the boot)
  1    the port or the metrics port cannot be bound; with --processes: a process failed to start
       or did not stop
  2    bad flags (including neither --insecure nor TLS files)
  78   the config, a TLS file or the --prediction-log folder cannot be used (one line says why)"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=release.program_name("feature_service"),
                                     description="Absenteeism prediction gRPC server",
                                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {release.version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_command = commands.add_parser("serve", help="serve PredictionService from a verified ServingConfig",
                                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    settings_module.add_arguments(serve_command, os.environ)
    return parser


def main(argv: Sequence[str] | None = None, shutdown: ShutdownSignal | None = None,
         reload_signal: ReloadSignal | None = None) -> int:
    """`shutdown` and `reload_signal`: handlers installed before the modules loaded (__main__.py);
    None: a lone server installs its own as it starts."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_module.from_namespace(args)
    except settings_module.SettingsError as error:
        parser.error(str(error))  # exits EXIT_USAGE
    log_lines.configure(settings.log_level, settings.log_format)
    if settings.process_count > 1:
        return supervisor.run(settings, shutdown)
    return serve(settings, shutdown, reload_signal)
