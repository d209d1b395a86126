"""Live config reload: SIGHUP, or a new file at --config, swaps the serving config without a restart.

A reload runs on its own thread, never on a call's: read the file, verify it exactly as at boot
(the same `build` the boot uses: digest, format, fingerprints, golden rows bit for bit through the
predictor that will serve), then swap the one reference in ServingState. A config that fails is
refused: the old one keeps serving (health stays SERVING) and the log says why. The same bytes as
the config being served are a no-op.

When is the file read (the watcher polls every `interval` seconds; 0 = only on SIGHUP)? It compares
the identity of the file the path resolves to (device, inode, size, mtime; symlinks followed):
- a different file (another inode: an atomic rename such as the ETL's, or a Kubernetes ConfigMap's
  `..data` symlink swap) is read at the first poll that sees it: a renamed file is complete;
- the same file changed in place is read only once it has stayed unchanged for a whole interval
  (two polls agree), so a writer that is still writing is not read half-way;
- a read during which the file changes (its identity before and after differs, or the bytes read
  are not its size) is dropped and retried after a short pause.
Whatever is read must still pass the full verification, so a file that defeats these rules (written
in place by a writer that pauses longer than an interval) is refused, never served; the completed
file is read when it next settles. The file a refusal was about is not retried until it changes
(or SIGHUP asks).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from absenteeism import config_io
from feature_service.monitoring.metrics import Metrics
from feature_service.serving_state import Serving, ServingState

log = logging.getLogger(__name__)

SETTLE_ATTEMPTS = 5
SETTLE_PAUSE_SECONDS = 0.05


@dataclass(frozen=True)
class FileIdentity:
    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity | None:
        """The file `path` resolves to now; None when there is none (or it cannot be looked at)."""
        try:
            status = os.stat(path)
        except OSError:
            return None
        return cls(status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)

    def same_file(self, other: FileIdentity | None) -> bool:
        return other is not None and (self.device, self.inode) == (other.device, other.inode)


@dataclass(frozen=True)
class Snapshot:
    """The bytes of the config file and the identity of the file they were read from."""

    data: bytes
    identity: FileIdentity | None
    sha256: str


def read_settled(path: Path) -> Snapshot:
    """Reads `path` whole, from one file that did not change during the read. Raises ConfigError
    when it cannot be read, or still changes after a few attempts."""
    for attempt in range(SETTLE_ATTEMPTS):
        before = FileIdentity.of(path)
        data = config_io.read_config_bytes(path)
        after = FileIdentity.of(path)
        if before == after and after is not None and after.size == len(data):
            return Snapshot(data, after, hashlib.sha256(data).hexdigest())
        time.sleep(SETTLE_PAUSE_SECONDS)
    raise config_io.ConfigError(f"config file {path} kept changing while it was read: publish a new config by "
                                "renaming a complete file into place")


class Reloader:
    """Owns the reload thread. `request()` (SIGHUP) reloads now; the watcher polls every `interval`."""

    def __init__(self, path: Path, booted: Snapshot, state: ServingState, build: Callable[[bytes], Serving], *,
                 interval: float, metrics: Metrics, log_fields: Callable[[Serving], dict],
                 on_loaded: Callable[[Serving, bytes], None]):
        self._path = Path(path)
        self._state = state
        self._build = build  # bytes -> verified Serving, or ConfigError: the boot's own path
        self._interval = interval
        self._metrics = metrics
        self._log_fields = log_fields  # the fields of the "serving" line for a Serving
        self._on_loaded = on_loaded  # told each config swapped in, with its bytes
        self._served_sha256 = booted.sha256
        self._acted_on = booted.identity  # the file last read (loaded, refused or unchanged)
        self._last_seen = booted.identity  # the file at the previous poll
        self._wake = threading.Event()
        self._requested = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="config-reload", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the thread after the reload in progress, if any."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def request(self) -> None:
        """Asks for a reload now (safe from a signal handler: sets two flags)."""
        self._requested = True
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval or None)
            self._wake.clear()
            if self._stopping:
                return
            if self._requested:
                self._requested = False
                self.reload("signal", FileIdentity.of(self._path))
            elif self._interval:
                self.poll()

    def poll(self) -> None:
        """One look at the file: reloads when a new file is in place, or a changed one has settled."""
        identity = FileIdentity.of(self._path)
        previous, self._last_seen = self._last_seen, identity
        if identity == self._acted_on:
            return
        renamed_in = identity is not None and not identity.same_file(self._acted_on)
        if renamed_in or identity == previous:
            self.reload("file", identity)

    def reload(self, trigger: str, identity: FileIdentity | None) -> str:
        """Reads, verifies and swaps; returns the outcome (loaded, refused or unchanged)."""
        started = time.perf_counter()
        self._acted_on = identity
        serving = self._state.current
        try:
            snapshot = read_settled(self._path)
            self._acted_on = snapshot.identity
            built = None if snapshot.sha256 == self._served_sha256 else self._build(snapshot.data)
        except config_io.ConfigError as error:
            return self._refused(str(error), serving, trigger)
        except Exception as error:  # a reload never takes the server down: it is refused and logged
            log.exception("config reload failed", extra={"event": "internal_error"})
            return self._refused(f"internal error while loading the config ({type(error).__name__}: {error})",
                                 serving, trigger)
        if built is not None:
            self._served_sha256 = snapshot.sha256
            if built.config_id != serving.config_id:  # (other bytes of the same content: nothing to swap)
                self._state.swap(built)
                self._on_loaded(built, snapshot.data)
                return self._loaded(built, serving, trigger, started)
        self._metrics.config_reloads.labels(outcome="unchanged").inc()
        log.info("config unchanged", extra={"event": "config_reload_unchanged", "trigger": trigger,
                                            "config": str(self._path), "config_id": serving.config_id})
        return "unchanged"

    def _loaded(self, serving: Serving, previous: Serving, trigger: str, started: float) -> str:
        self._metrics.config_reloads.labels(outcome="loaded").inc()
        log.info("config loaded", extra={"event": "config_loaded", **self._log_fields(serving), "trigger": trigger,
                                         "previous_config_id": previous.config_id,
                                         "reload_ms": round((time.perf_counter() - started) * 1000, 3)})
        return "loaded"

    def _refused(self, reason: str, serving: Serving, trigger: str) -> str:
        self._metrics.config_reloads.labels(outcome="refused").inc()
        log.error(reason, extra={"event": "config_reload_refused", "trigger": trigger, "config": str(self._path),
                                 "config_id": serving.config_id})
        return "refused"


def created_at(serving: Serving) -> str:
    provenance = serving.config.provenance
    return provenance.created_at.ToJsonString() if provenance.HasField("created_at") else ""
