"""Signal wiring: SIGTERM/SIGINT ask the server to stop gracefully (the main thread does the stopping);
SIGHUP asks it to reload its config (the reload thread does the reloading)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class ShutdownSignal:
    """Install in the main thread; `wait()` returns once SIGTERM or SIGINT has arrived."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self._event = threading.Event()
        self.received: str | None = None

    def install(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self._event.is_set():
            return
        self.received = signal.Signals(signum).name
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self) -> str | None:
        while not self._event.wait(0.5):  # short waits keep the main thread responsive to signals
            pass
        return self.received


class ReloadSignal:
    """Install in the main thread, as early as possible: a SIGHUP before the server can reload (during
    the boot) is kept and passed on by `attach`, rather than killing the process (SIGHUP's default)."""

    def __init__(self) -> None:
        self._listener: Callable[[], None] | None = None
        self._pending = False

    def install(self) -> None:
        signal.signal(signal.SIGHUP, self._handle)

    def _handle(self, signum, frame) -> None:
        if self._listener is None:
            self._pending = True
        else:
            self._listener()

    def attach(self, listener: Callable[[], None]) -> None:
        """`listener` is called (in the main thread, from the handler) on each SIGHUP from now on."""
        self._listener = listener
        if self._pending:
            self._pending = False
            listener()
