"""PID 1 entrypoint for the ETL job's container: `python entrypoint.py MODULE [ARGS...]`, which runs
MODULE like `python -m MODULE ARGS...`, but first makes SIGTERM stop it.

In a container the program is PID 1, and the kernel gives PID 1 no default action for SIGTERM: a
program that installs no handler simply never sees `docker stop`/`podman stop` and is killed only
when the stop timeout runs out. The server installs its own handler (it drains, then exits 0), and
so does the batch job once it starts (it removes its run folder and spill, then exits 143); this one
turns SIGTERM into SystemExit(143) (128 + SIGTERM, what a shell reports for a TERM-killed program)
before that, while the module is still importing. A module that installs its own SIGTERM handler
replaces this one.
"""

from __future__ import annotations

import runpy
import signal
import sys


def _terminate(signum: int, _frame) -> None:
    print(f"entrypoint: stopped by {signal.Signals(signum).name}", file=sys.stderr)
    raise SystemExit(128 + signum)


def main() -> None:
    if len(sys.argv) < 2:
        print("usage: entrypoint.py MODULE [ARGS...]", file=sys.stderr)
        raise SystemExit(2)
    signal.signal(signal.SIGTERM, _terminate)
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]  # what `python -m MODULE` shows the module
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
