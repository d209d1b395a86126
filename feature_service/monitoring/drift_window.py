"""Online drift: what the server served lately, compared with the training profile in its config.

Each served record's raw values, features and prediction go into a ring of the last
`--drift-window` records (one row each). A call claims as many consecutive rows as it has records
(a counter under a lock held for the addition only) and copies their values into them. A
report (the GetDriftReport RPC, a /metrics scrape) copies the ring, counts each column into the
profile's bins (absenteeism/profile_bins.py) and compares the counts with training
(absenteeism/divergence.py): PSI and Jensen-Shannon for numeric entries, L-infinity for
categorical ones, each against its threshold.

One DriftMonitor belongs to one config: a new config gets a new, empty window.

With --processes N the window is shared (SharedWindows): one memory-mapped file of the
supervisor's, a slot of ceil(window / N) rows per process, each written by its own process only;
a report, in any process or at the supervisor's /metrics, reads every slot that holds records of
its config, so it speaks for the whole server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from absenteeism import config_io, data_sets, dataflow, divergence, profile_bins, served_model
from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import serving_config_pb2
from feature_service.rpc.status_mapping import FailedPrecondition

PSI, JENSEN_SHANNON, L_INFINITY = "psi", "jensen_shannon", "l_infinity"
DEFAULT_WINDOW = 10_000
# Below this many records a window differs from training by chance alone: samples of the model's
# own training rows (the real data set) flagged some entry in 34 of 100 windows of 400 records, 1 of
# 100 of 1,000, none of 2,000 and more (docs/drift.md).
DEFAULT_MIN_RECORDS = 2_000


@dataclass(frozen=True)
class Thresholds:
    """A value above its metric's threshold is drift (README, Drift: where the defaults come from)."""

    psi: float = 0.1
    jensen_shannon: float = 0.01
    l_infinity: float = 0.05
    min_records: int = DEFAULT_MIN_RECORDS  # no entry is judged drifted over fewer records

    def of(self, metric: str) -> float:
        return getattr(self, metric)


@dataclass(frozen=True)
class EntryDrift:
    name: str
    source: str
    metric: str
    value: float
    threshold: float
    judged: bool = True  # False: too few records in the window to call anything drift
    window_counts: tuple[int, ...] = ()  # the window counted into the entry's training bins (the page's histogram)

    @property
    def drifted(self) -> bool:
        return self.judged and self.value > self.threshold


@dataclass(frozen=True)
class DriftReport:
    config_id: str
    window_records: int
    entries: list[EntryDrift]  # raw inputs, features, prediction (profile order); metrics in METRICS order
    min_records: int = DEFAULT_MIN_RECORDS

    @property
    def insufficient_data(self) -> bool:
        return self.window_records < self.min_records

    def response(self) -> pb.GetDriftReportResponse:
        return pb.GetDriftReportResponse(
            config_id=self.config_id, window_records=self.window_records, min_records=self.min_records,
            insufficient_data=self.insufficient_data,
            features=[pb.FeatureDrift(name=e.name, source=e.source, metric=e.metric, value=e.value,
                                      threshold=e.threshold, drifted=e.drifted, window_counts=e.window_counts)
                      for e in self.entries])


def row_width(feature_count: int | None = None, class_count: int = 0) -> int:
    """Values in a window row: the raw values (converters.raw_numbers order), the features (default:
    the active data set's count), a classifier's class probabilities, the prediction (last: a row is
    whole once it is written)."""
    features = len(dataflow.model_features()) if feature_count is None else feature_count
    return len(data_sets.active().table.column_names) + features + class_count + 1


def config_row_width(config: serving_config_pb2.ServingConfig) -> int:
    return row_width(len(config.feature_names), len(config.onnx_model.class_labels))


class Window:
    """A ring of the last len(rows) records added: per record a row of its raw values, its features,
    a classifier's probabilities and its prediction (float64). `rows` is NaN where never written."""

    def __init__(self, rows: np.ndarray, feature_width: int, class_count: int = 0):
        raw_width = len(data_sets.active().table.column_names)
        self.size = len(rows)
        self._rows = rows
        self._raw, self._features = slice(0, raw_width), slice(raw_width, raw_width + feature_width)
        self._probabilities = slice(raw_width + feature_width, raw_width + feature_width + class_count)
        self._claimed = 0  # rows claimed since the start; the ring's next row is this modulo its size
        self._lock = threading.Lock()

    def add(self, raw: np.ndarray, features: np.ndarray, predictions: np.ndarray,
            probabilities: np.ndarray | None = None) -> None:
        if len(predictions) == 1:  # the hot path: copies into the claimed row, the prediction last
            row = self._rows[self._claim(1) % self.size]
            row[self._raw] = raw[0]
            row[self._features] = features[0]
            if probabilities is not None:
                row[self._probabilities] = probabilities[0]
            row[-1] = predictions[0]
            return
        keep = slice(-self.size, None)  # earlier records of a call larger than the window would be overwritten
        raw, features, predictions = raw[keep], features[keep], predictions[keep]
        probabilities = None if probabilities is None else probabilities[keep]
        first = self._claim(len(predictions)) % self.size
        # The records' rows, in order from the claimed one on: at most two runs of the ring (it wraps).
        head = min(len(predictions), self.size - first)
        self._write(slice(first, first + head), slice(0, head), raw, features, predictions, probabilities)
        if head < len(predictions):
            self._write(slice(0, len(predictions) - head), slice(head, None), raw, features, predictions, probabilities)

    def _claim(self, count: int) -> int:
        """The first of `count` consecutive rows for this call's records (counted from the start)."""
        with self._lock:
            first = self._claimed
            self._claimed += count
        return first

    def _write(self, rows: slice, records: slice, raw: np.ndarray, features: np.ndarray, predictions: np.ndarray,
               probabilities: np.ndarray | None) -> None:
        target = self._rows[rows]  # a view of the ring: written in place, the prediction last
        target[:, self._raw] = raw[records]
        target[:, self._features] = features[records]
        if probabilities is not None:
            target[:, self._probabilities] = probabilities[records]
        target[:, -1] = predictions[records]

    def snapshot(self) -> np.ndarray:
        """The rows written so far (at most `size`). A row being written at that very moment may be
        left out (its prediction not yet written) or mix two records: one of thousands."""
        rows = self._rows.copy()
        return rows[~np.isnan(rows[:, -1])]


class Comparison:
    """A config's training profile, and how window rows compare with it."""

    def __init__(self, config: serving_config_pb2.ServingConfig, thresholds: Thresholds):
        self.config_id = config.content_sha256
        self.thresholds = thresholds
        self.entries = profile_bins.from_message(config.profile)
        raw = {name: j for j, name in enumerate(data_sets.active().table.column_names)}
        feature = {name: len(raw) + j for j, name in enumerate(config.feature_names)}
        first = len(raw) + len(feature)
        output = {served_model.PREDICTION: -1, **{served_model.probability_name(label): first + j
                                                for j, label in enumerate(config.onnx_model.class_labels)}}
        where = {profile_bins.RAW_INPUT: raw, profile_bins.FEATURE: feature, profile_bins.PREDICTION: output}
        self.columns = [where[e.source].get(e.name) for e in self.entries]
        unknown = [e.name for e, column in zip(self.entries, self.columns) if column is None]
        if unknown:
            raise profile_bins.ProfileError(f"training profile entries {unknown} are neither raw inputs, features "
                                            "nor the model's outputs")

    def report(self, rows: np.ndarray) -> DriftReport:
        entries: list[EntryDrift] = []
        judged = len(rows) >= self.thresholds.min_records
        if len(rows):
            for entry, column in zip(self.entries, self.columns):
                served = entry.count(rows[:, column])
                metrics = ((PSI, divergence.psi), (JENSEN_SHANNON, divergence.jensen_shannon)) if entry.numeric \
                    else ((L_INFINITY, divergence.l_infinity),)
                counts = tuple(served.tolist())
                entries.extend(EntryDrift(entry.name, entry.source, metric, compute(entry.counts, served),
                                          self.thresholds.of(metric), judged, counts) for metric, compute in metrics)
        return DriftReport(self.config_id, len(rows), entries, self.thresholds.min_records)


class SharedWindows:
    """The windows of the N processes of one supervisor in one memory-mapped file: per slot the
    config id whose records it holds (32 bytes) and ceil(window / N) rows. Slot i is written by
    process i alone; any process reads them all."""

    FILE = "drift-windows"
    ID_BYTES = 32  # a config id (sha256 hex) as bytes

    def __init__(self, path: Path, slots: int, window: int, width: int):
        self.path, self.slots = Path(path), slots
        self.rows_per_slot = -(-window // slots)
        self.width = width
        self._ids = np.memmap(self.path, np.uint8, "r+", offset=0, shape=(slots, self.ID_BYTES))
        self._rows = np.memmap(self.path, np.float64, "r+", offset=slots * self.ID_BYTES,
                               shape=(slots, self.rows_per_slot, self.width))

    @classmethod
    def create(cls, folder: Path, slots: int, window: int, width: int) -> SharedWindows:
        """Rows of `width` values: the booted config's (config_row_width); a config reloaded later
        whose rows have another width (other features or classes) is served unmonitored until a restart."""
        path = Path(folder) / cls.FILE
        size = slots * cls.ID_BYTES + slots * -(-window // slots) * width * 8
        with open(path, "wb") as created:
            created.truncate(size)  # zeros: no config id in any slot
        return cls(path, slots, window, width)

    def claim(self, slot: int, config_id: str) -> np.ndarray:
        """Slot `slot`, emptied, for the records of `config_id`: its rows (a view into the file)."""
        self._ids[slot] = 0  # readers skip the slot while it is emptied
        self._rows[slot] = np.nan
        self._ids[slot] = np.frombuffer(bytes.fromhex(config_id), np.uint8)
        return self._rows[slot].view(np.ndarray)  # a plain view: indexing a memmap costs a Python call

    def rows_of(self, config_id: str) -> np.ndarray:
        """The rows written in every slot that holds records of `config_id`."""
        wanted = (self._ids == np.frombuffer(bytes.fromhex(config_id), np.uint8)).all(axis=1)
        rows = np.asarray(self._rows[np.flatnonzero(wanted)]).reshape(-1, self.width)  # a copy
        return rows[~np.isnan(rows[:, -1])]

    def config_ids(self) -> dict[str, int]:
        """Slots per config id (slots holding none left out)."""
        found: dict[str, int] = {}
        for raw in np.asarray(self._ids):
            if raw.any():
                found[raw.tobytes().hex()] = found.get(raw.tobytes().hex(), 0) + 1
        return found


class DriftMonitor:
    """The window of one config and the comparison of its rows with that config's profile; in a
    slot of `shared` when the server is one of several processes."""

    def __init__(self, config: serving_config_pb2.ServingConfig, window: int, thresholds: Thresholds,
                 shared: tuple[SharedWindows, int] | None = None):
        self.comparison = Comparison(config, thresholds)
        self.config_id = config.content_sha256
        width = config_row_width(config)
        if shared is None:
            rows = np.full((window, width), np.nan)
            self._rows = self._own_rows
        else:
            windows, slot = shared
            rows = windows.claim(slot, self.config_id)
            self._rows = lambda: windows.rows_of(self.config_id)
        self.window = Window(rows, len(config.feature_names), len(config.onnx_model.class_labels))
        # Records served: raw values (rows x request fields), features (rows x features), predictions,
        # a classifier's probabilities (rows x classes).
        self.observe = self.window.add

    def _own_rows(self) -> np.ndarray:
        return self.window.snapshot()

    def report(self) -> DriftReport:
        return self.comparison.report(self._rows())


class Unmonitored:
    """Stands for the monitor of a config that has none; says why."""

    def __init__(self, reason: str):
        self.reason = reason

    def report(self) -> DriftReport:
        raise FailedPrecondition(self.reason)


Monitor = DriftMonitor | Unmonitored


class DriftCollector(Collector):
    """feature_service_drift{name,metric} and friends, computed at each scrape from the report that
    `current()` returns (None: nothing to say), so they always say what GetDriftReport says."""

    def __init__(self, current: Callable[[], DriftReport | None]):
        self._current = current

    def collect(self):
        report = self._current()
        if report is None:
            return
        value = GaugeMetricFamily("feature_service_drift", "drift of a monitored value from training, by metric",
                                  labels=["name", "metric"])
        threshold = GaugeMetricFamily("feature_service_drift_threshold", "the threshold above which it is drift",
                                      labels=["name", "metric"])
        for entry in report.entries:
            value.add_metric([entry.name, entry.metric], entry.value)
            threshold.add_metric([entry.name, entry.metric], entry.threshold)
        yield value
        yield threshold
        yield GaugeMetricFamily("feature_service_drift_drifted_entries",
                                "(value, metric) entries above their threshold now",
                                value=sum(entry.drifted for entry in report.entries))
        yield GaugeMetricFamily("feature_service_drift_window_records", "records the drift values are computed over",
                                value=report.window_records)
        yield GaugeMetricFamily("feature_service_drift_insufficient_data",
                                "1 while the window holds fewer records than --drift-min-records: nothing is judged",
                                value=int(report.insufficient_data))

    def describe(self):
        return []  # computed at scrape time: nothing to describe up front


def register_metrics(registry: CollectorRegistry, current: Callable[[], Monitor | None]) -> None:
    """The gauges of a lone server: from the monitor of the config it serves."""
    def report() -> DriftReport | None:
        monitor = current()
        return monitor.report() if isinstance(monitor, DriftMonitor) else None

    registry.register(DriftCollector(report))


class SupervisorDrift:
    """The supervisor's side of --processes N: it makes the shared windows its children write, and
    serves the drift gauges from them at its /metrics. Which config: the one most slots hold (all of
    them, but for the moments of a reload); its profile is read from the --config file (cached by
    id), the very file the children load."""

    def __init__(self, folder: Path, slots: int, window: int, thresholds: Thresholds, config_path: Path,
                 booted: serving_config_pb2.ServingConfig):
        self.windows = SharedWindows.create(folder, slots, window, config_row_width(booted))
        self._thresholds = thresholds
        self._config_path = config_path
        self._comparisons: dict[str, Comparison | None] = {}
        self._comparison_of(booted)

    def _comparison_of(self, config: serving_config_pb2.ServingConfig) -> Comparison | None:
        found = None
        if config.HasField("profile"):
            try:
                found = Comparison(config, self._thresholds)
            except profile_bins.ProfileError:
                pass  # the children refuse such a config: no slot will hold its id
        self._comparisons[config.content_sha256] = found
        return found

    def report(self) -> DriftReport | None:
        held = self.windows.config_ids()
        if not held:
            return None
        config_id = max(held, key=held.__getitem__)  # every key is in held: same pick as held.get
        if config_id not in self._comparisons:
            try:
                config = config_io.read_config(self._config_path)
            except config_io.ConfigError:
                return None
            if config.content_sha256 != config_id or config_io.content_digest(config) != config_id:
                return None  # the file changed again since (or does not verify): try again at the next scrape
            self._comparison_of(config)
        comparison = self._comparisons[config_id]
        return None if comparison is None else comparison.report(self.windows.rows_of(config_id))

    def register_metrics(self, registry: CollectorRegistry) -> None:
        registry.register(DriftCollector(self.report))
