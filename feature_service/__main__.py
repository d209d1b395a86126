"""`python -m feature_service serve ...` and the `feature-service` console script: both run main()
here. The command line is command_line.main; this only makes a SIGTERM/SIGINT/SIGHUP that arrives
while the modules load count like any other."""

from __future__ import annotations

import sys

from feature_service.processes.process_signals import ReloadSignal, ShutdownSignal


def main() -> int:
    # Signals first: the server's modules (pandas, Hamilton, grpc) take seconds to import on a busy
    # machine, and a SIGTERM that arrives meanwhile must be a stop like any other, not the default
    # death without a log (likewise a SIGHUP: kept and passed on once the server can reload).
    shutdown, reload_signal = ShutdownSignal(), ReloadSignal()
    shutdown.install()
    reload_signal.install()

    # After the handlers: the slow imports come with this one.
    from feature_service.command_line import main as command_line_main

    return command_line_main(None, shutdown, reload_signal)


if __name__ == "__main__":
    sys.exit(main())
