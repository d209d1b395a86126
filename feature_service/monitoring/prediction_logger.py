"""--prediction-log DIR: a sample of the predictions served, appended to Parquet files in DIR, so
that live traffic can be replayed through the batch path later (`python -m clients parity
--prediction-log DIR --config CONFIG`).

Off the hot path: a call draws its sample and hands the rows (raw values, features, predictions,
config id, request id, time) to a queue (`queue.SimpleQueue`: no lock of ours); one writer thread turns them
into row groups of the current file. A file is written under a hidden temp name and renamed when
it is closed (rotation by size or age, or the server stopping), so the folder only ever shows
whole files (absenteeism/dataset/prediction_log_files.py has the layout). When the writer cannot keep up
(the queue is full) or cannot write (a full disk, any I/O error), samples are dropped and counted,
the file being written is removed whole, and the server goes on serving; the writer tries again a
few seconds later.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import random
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client import CollectorRegistry, Counter

from absenteeism import config_io
from absenteeism.dataset import prediction_log_files as log_format
from feature_service.monitoring import request_ids

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 8192  # rows gathered before a row group is written (or FLUSH_SECONDS, whichever first)
FLUSH_SECONDS = 1.0
MAX_PENDING_CALLS = 10_000  # calls queued for the writer; the samples of further calls are dropped
RETRY_SECONDS = 5.0  # after a failed write, samples are dropped this long before the writer tries again
_STOP = object()


@dataclass(frozen=True)
class LogSettings:
    folder: Path
    sample_rate: float  # share of predictions logged, 0..1
    rotate_bytes: int = 64 * 1024 * 1024
    rotate_seconds: float = 300.0


def require_log_folder(folder: Path | None) -> None:
    """ConfigError (the server refuses to boot, exit 78) unless --prediction-log names a folder that
    is, or can be made, one this process writes files into: a file there, or a read-only folder,
    would otherwise fail only later, or lose every sample quietly."""
    if folder is None:
        return
    if folder.exists() and not folder.is_dir():
        raise config_io.ConfigError(f"--prediction-log {folder} is not a folder: name a folder for the log files")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        raise config_io.ConfigError(f"--prediction-log {folder} is not a folder this server can write to "
                                    f"(uid {os.geteuid()}): {error.strerror or error}") from None


@dataclass
class _OpenFile:
    """The file being written: a hidden temp name until it is closed and renamed."""

    final: Path
    temp: Path
    writer: pq.ParquetWriter
    opened: float = field(default_factory=time.monotonic)
    rows: int = 0

    @classmethod
    def create(cls, folder: Path, number: int, schema: pa.Schema) -> _OpenFile:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{log_format.PREFIX}{stamp}-{os.getpid()}-{number}{log_format.SUFFIX}"
        temp = folder / f".{name}{log_format.TEMP_SUFFIX}"
        return cls(folder / name, temp, pq.ParquetWriter(temp, schema))

    def full(self, settings: LogSettings) -> bool:
        return (time.monotonic() - self.opened >= settings.rotate_seconds
                or self.temp.stat().st_size >= settings.rotate_bytes)

    def publish(self) -> None:
        self.writer.close()
        with open(self.temp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(self.temp, self.final)
        directory = os.open(self.final.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)

    def discard(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001, S110 - the file is being thrown away because writing it failed
            pass
        self.temp.unlink(missing_ok=True)


class PredictionLog:
    """Start with start(); offer() from any thread; close() flushes and publishes the open file."""

    def __init__(self, settings: LogSettings, feature_names: Sequence[str], registry: CollectorRegistry):
        self.settings = settings
        self.feature_names = tuple(feature_names)
        self._schema = log_format.schema(self.feature_names)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._local = threading.local()
        self._numbers = itertools.count(1)
        self._file: _OpenFile | None = None
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.written = Counter("feature_service_prediction_log_records", "predictions in published log files",
                               registry=registry)
        self.files = Counter("feature_service_prediction_log_files", "log files published", registry=registry)
        self.dropped = Counter("feature_service_prediction_log_dropped", "sampled predictions not logged, by reason",
                               ["reason"], registry=registry)
        self._dropped_full = self.dropped.labels("queue_full")
        self._dropped_failed = self.dropped.labels("write_failed")

    def start(self) -> None:
        folder = self.settings.folder
        folder.mkdir(parents=True, exist_ok=True)
        for stale in _stale_temp_files(folder):
            log.info("removed a log file a stopped server left half written",
                     extra={"event": "prediction_log_stale", "path": str(stale)})
            stale.unlink(missing_ok=True)
        self._thread.start()

    # -- the serving threads
    def offer(self, config_id: str, raw: np.ndarray, features: np.ndarray, predictions: np.ndarray,
              probabilities: np.ndarray | None = None, call_id: str | None = None,
              indices: np.ndarray | None = None) -> None:
        """Records just served: logs each with probability sample_rate. call_id and indices name
        them (request_ids.names; the writer thread formats the names of the records kept)."""
        if len(predictions) == 1:
            if random.random() >= self.settings.sample_rate:
                return
        else:
            keep = np.flatnonzero(self._draws(len(predictions)) < self.settings.sample_rate)
            if not len(keep):
                return
            raw, features, predictions = raw[keep], features[keep], predictions[keep]
            probabilities = None if probabilities is None else probabilities[keep]
            indices = None if indices is None else indices[keep]
        if self._queue.qsize() >= MAX_PENDING_CALLS:
            self._dropped_full.inc(len(predictions))
            return
        if probabilities is None:
            probabilities = np.empty((len(predictions), 0))
        self._queue.put((time.time_ns() // 1000, config_id, raw, features, probabilities, call_id, indices,
                         predictions))

    def _draws(self, count: int) -> np.ndarray:
        generator = getattr(self._local, "generator", None)  # numpy generators are not thread-safe: one each
        if generator is None:
            generator = self._local.generator = np.random.default_rng()
        return generator.random(count)

    def close(self, timeout: float = 10.0) -> None:
        """Writes what is queued and publishes the open file (SIGTERM ends here)."""
        if not self._thread.is_alive():
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("the prediction log did not finish writing in time; its open file is left unpublished",
                        extra={"event": "prediction_log_timeout"})

    # -- the writer thread
    def _run(self) -> None:
        pending: list[tuple] = []
        rows, flushed = 0, time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=FLUSH_SECONDS)
            except queue.Empty:
                item = None
            stop = item is _STOP
            if item is not None and not stop:
                pending.append(item)
                rows += len(item[-1])
            due = stop or item is None or time.monotonic() - flushed >= FLUSH_SECONDS
            if pending and (due or rows >= ROW_GROUP_ROWS):
                self._write(pending, rows)
                pending, rows, flushed, due = [], 0, time.monotonic(), True
            file = self._file
            if due and file is not None and (stop or self._full(file)):  # checked at most once a write
                self._publish(file)
            if stop:
                return

    def _write(self, items: list[tuple], rows: int) -> None:
        if time.monotonic() < self._retry_at:
            self._dropped_failed.inc(rows)
            return
        try:
            table = log_format.table(
                np.concatenate([np.full(len(item[-1]), item[0], dtype=np.int64) for item in items]),
                [item[1] for item in items for _ in range(len(item[-1]))],
                np.vstack([item[2] for item in items]), np.vstack([item[3] for item in items]),
                np.concatenate([item[-1] for item in items]), self.feature_names,
                [row for item in items for row in item[4]],
                [name for item in items for name in request_ids.names(item[5], item[6], len(item[-1]))])
            if self._file is None:
                self._file = _OpenFile.create(self.settings.folder, next(self._numbers), self._schema)
            self._file.writer.write_table(table, row_group_size=len(table))
            self._file.rows += len(table)
        except (OSError, pa.ArrowException) as error:
            self._failed(error, rows)

    def _full(self, file: _OpenFile) -> bool:
        try:
            return file.full(self.settings)
        except OSError as error:
            self._failed(error, 0)
            return False

    def _publish(self, file: _OpenFile) -> None:
        """Publishes `file`, the open one (self._file)."""
        try:
            file.publish()
        except (OSError, pa.ArrowException) as error:
            self._failed(error, 0)
            return
        self.written.inc(file.rows)
        self.files.inc()
        log.info("prediction log file published", extra={"event": "prediction_log_file",
                                                         "path": str(file.final), "records": file.rows})
        self._file = None

    def _failed(self, error: BaseException, rows: int) -> None:
        """Drops `rows` and the open file's rows (the file is removed whole), and pauses writing."""
        lost = rows
        if self._file is not None:
            lost += self._file.rows
            self._file.discard()
            self._file = None
        self._dropped_failed.inc(lost)
        self._retry_at = time.monotonic() + RETRY_SECONDS
        log.warning("cannot write the prediction log: samples dropped, serving goes on",
                    extra={"event": "prediction_log_failed", "error": str(error), "dropped": lost,
                           "retry_seconds": RETRY_SECONDS})


def _stale_temp_files(folder: Path) -> list[Path]:
    """Temp files of servers that are gone (killed before they could publish)."""
    stale = []
    for path in folder.glob(f".{log_format.PREFIX}*{log_format.SUFFIX}{log_format.TEMP_SUFFIX}"):
        try:
            pid = int(path.name.rsplit("-", 2)[1])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            stale.append(path)
        except PermissionError:
            pass  # alive, another user's
    return stale
