"""Signal wiring: SIGTERM/SIGINT ask the server to stop gracefully (the main thread does the stopping)."""

from __future__ import annotations

import logging
import signal
import threading

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
