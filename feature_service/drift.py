"""Online drift: what the server served lately, compared with the training profile in its config.

Each served record's raw values, features and prediction go into a ring of the last
`--drift-window` records (one row each). The hot path takes no lock: a record claims its slot with
`next()` on an itertools.count (one step under the GIL) and copies its values into that row. A report (the GetDriftReport RPC, a /metrics scrape) copies the ring, counts each
column into the profile's bins (absenteeism/profile.py) and compares the counts with training
(absenteeism/divergence.py): PSI and Jensen-Shannon for numeric entries, L-infinity for
categorical ones, each against its threshold.

One DriftMonitor belongs to one config: a new config gets a new, empty window.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from absenteeism import divergence, profile, raw_schema
from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import serving_config_pb2
from feature_service.errors import FailedPrecondition

PSI, JENSEN_SHANNON, L_INFINITY = "psi", "jensen_shannon", "l_infinity"
DEFAULT_WINDOW = 10_000


@dataclass(frozen=True)
class Thresholds:
    """A value above its metric's threshold is drift (README, Drift: where the defaults come from)."""

    psi: float = 0.1
    jensen_shannon: float = 0.01
    l_infinity: float = 0.05

    def of(self, metric: str) -> float:
        return getattr(self, metric)


@dataclass(frozen=True)
class EntryDrift:
    name: str
    source: str
    metric: str
    value: float
    threshold: float

    @property
    def drifted(self) -> bool:
        return self.value > self.threshold


@dataclass(frozen=True)
class DriftReport:
    config_id: str
    window_records: int
    entries: list[EntryDrift]  # raw inputs, features, prediction (profile order); metrics in METRICS order

    def response(self) -> pb.GetDriftReportResponse:
        return pb.GetDriftReportResponse(
            config_id=self.config_id, window_records=self.window_records,
            features=[pb.FeatureDrift(name=e.name, source=e.source, metric=e.metric, value=e.value,
                                      threshold=e.threshold, drifted=e.drifted) for e in self.entries])


class Window:
    """The last `size` records added: per record a row of its raw values, its features and its
    prediction (float64); rows never written are NaN."""

    def __init__(self, size: int, raw_width: int, feature_width: int):
        self.size = size
        self._rows = np.full((size, raw_width + feature_width + 1), np.nan)
        self._raw, self._features = slice(0, raw_width), slice(raw_width, raw_width + feature_width)
        self._claims = itertools.count()

    def add(self, raw: np.ndarray, features: np.ndarray, predictions: np.ndarray) -> None:
        if len(predictions) == 1:  # the hot path: three copies into the claimed row, the prediction last
            row = self._rows[next(self._claims) % self.size]
            row[self._raw] = raw[0]
            row[self._features] = features[0]
            row[-1] = predictions[0]
            return
        keep = slice(-self.size, None)  # earlier records of a call larger than the window would be overwritten
        raw, features, predictions = raw[keep], features[keep], predictions[keep]
        slots = np.fromiter(itertools.islice(self._claims, len(predictions)), dtype=np.int64,
                            count=len(predictions)) % self.size
        rows = np.empty((len(predictions), self._rows.shape[1]))
        rows[:, self._raw], rows[:, self._features], rows[:, -1] = raw, features, predictions
        self._rows[slots] = rows

    def snapshot(self) -> np.ndarray:
        """The rows written so far (at most `size`). A row being written at that very moment may be
        left out (its prediction not yet written) or mix two records: one of thousands."""
        rows = self._rows.copy()
        return rows[~np.isnan(rows[:, -1])]


class DriftMonitor:
    """The window of one config and the comparison of its rows with that config's profile."""

    def __init__(self, config: serving_config_pb2.ServingConfig, window: int, thresholds: Thresholds):
        self.config_id = config.content_sha256
        self.thresholds = thresholds
        self.entries = profile.from_message(config.profile)
        # A window row: the raw values (records_to_matrix order), the features, the prediction.
        raw = {name: j for j, name in enumerate(raw_schema.RAW_COLUMN_NAMES)}
        feature = {name: len(raw) + j for j, name in enumerate(config.feature_names)}
        width = len(raw) + len(feature) + 1
        where = {profile.RAW_INPUT: raw, profile.FEATURE: feature}
        self.columns = [width - 1 if e.source == profile.PREDICTION else where[e.source].get(e.name)
                        for e in self.entries]
        unknown = [e.name for e, column in zip(self.entries, self.columns) if column is None]
        if unknown:
            raise profile.ProfileError(f"training profile entries {unknown} are neither raw inputs nor features")
        self.window = Window(window, len(raw), len(feature))
        # Records served: raw values (rows x RAW_COLUMNS), features (rows x features), predictions.
        self.observe = self.window.add

    def report(self) -> DriftReport:
        rows = self.window.snapshot()
        entries = []
        if len(rows):
            for entry, column in zip(self.entries, self.columns):
                served = entry.count(rows[:, column])
                metrics = ((PSI, divergence.psi), (JENSEN_SHANNON, divergence.jensen_shannon)) if entry.numeric \
                    else ((L_INFINITY, divergence.l_infinity),)
                entries.extend(EntryDrift(entry.name, entry.source, metric, compute(entry.counts, served),
                                          self.thresholds.of(metric)) for metric, compute in metrics)
        return DriftReport(self.config_id, len(rows), entries)


class Unmonitored:
    """Stands for the monitor of a config that has none; says why."""

    def __init__(self, reason: str):
        self.reason = reason

    def report(self) -> DriftReport:
        raise FailedPrecondition(self.reason)


Monitor = DriftMonitor | Unmonitored


class DriftCollector(Collector):
    """feature_service_drift{name,metric} and friends, computed at each scrape from the monitor that
    `current()` returns, so they always say what GetDriftReport says."""

    def __init__(self, current: Callable[[], Monitor | None]):
        self._current = current

    def collect(self):
        monitor = self._current()
        if not isinstance(monitor, DriftMonitor):
            return
        report = monitor.report()
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

    def describe(self):
        return []  # computed at scrape time: nothing to describe up front


def register_metrics(registry: CollectorRegistry, current: Callable[[], Monitor | None]) -> None:
    registry.register(DriftCollector(current))
