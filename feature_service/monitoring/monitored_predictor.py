"""What the server watches of its own traffic: drift against the config's training profile
(drift_window.py) and a sample of predictions for replay (prediction_logger.py).

`Monitoring` is built once per server from its settings; `attach(config, predictor)` is called for
each verified config (at boot, and for every config swapped in later): it returns the predictor
that records what it serves, and that config's drift monitor with its own, empty window. The
predictor is wrapped after the config's golden rows were checked, so they are never counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from absenteeism.online import converters
from absenteeism.online.predictor import Predictions, Predictor
from absenteeism.v1 import serving_config_pb2
from feature_service.monitoring import request_ids
from feature_service.monitoring.drift_window import (
    DEFAULT_WINDOW,
    DriftMonitor,
    Monitor,
    SharedWindows,
    Thresholds,
    Unmonitored,
    config_row_width,
    register_metrics,
)
from feature_service.monitoring.prediction_logger import LogSettings, PredictionLog


@dataclass(frozen=True)
class SharedSlot:
    """Set by the supervisor for its children (--processes N): the shared windows and this process's slot."""

    path: Path
    slot: int
    slots: int
    width: int  # values in a row of the shared windows (drift_window.config_row_width)


@dataclass(frozen=True)
class MonitoringSettings:
    drift_window: int = DEFAULT_WINDOW  # 0: no drift monitoring
    thresholds: Thresholds = field(default_factory=Thresholds)
    prediction_log: LogSettings | None = None
    shared: SharedSlot | None = None  # None: a lone server, with windows of its own


class MonitoredPredictor:
    """A predictor (same interface) that shows what it served to the drift window and the log."""

    def __init__(self, predictor: Predictor, monitor: Monitor, prediction_log: PredictionLog | None,
                 config_id: str):
        self._predictor = predictor
        self.feature_names = predictor.feature_names
        self._observe = monitor.observe if isinstance(monitor, DriftMonitor) else None
        self._log = prediction_log
        self._config_id = config_id

    def predict(self, records: Sequence[Any]) -> Predictions:
        result = self._predictor.predict(records)
        raw = result.raw if result.raw is not None else converters.raw_numbers(records)
        if self._observe is not None:
            self._observe(raw, result.features, result.predictions, result.probabilities)
        if self._log is not None:
            labels = request_ids.current()
            call_id, indices = labels.of(records) if labels is not None else (None, None)
            self._log.offer(self._config_id, raw, result.features, result.predictions, result.probabilities,
                            call_id, indices)
        return result


class Monitoring:
    def __init__(self, settings: MonitoringSettings, feature_names: Sequence[str], registry: CollectorRegistry,
                 current: Callable[[], Monitor | None]):
        """`current()`: the monitor of the config being served (the drift gauges read it at each scrape)."""
        self.settings = settings
        self.log = (PredictionLog(settings.prediction_log, feature_names, registry)
                    if settings.prediction_log is not None else None)
        shared = settings.shared
        self._shared = (None if shared is None or not settings.drift_window else
                        (SharedWindows(shared.path, shared.slots, settings.drift_window, shared.width), shared.slot))
        register_metrics(registry, current)

    def start(self) -> None:
        if self.log is not None:
            self.log.start()

    def attach(self, config: serving_config_pb2.ServingConfig, predictor: Predictor
               ) -> tuple[Predictor, Monitor]:
        """The predictor to serve `config` with, and its drift monitor. Raises profile.ProfileError
        for a profile that does not fit this code (the config cannot be served)."""
        if not self.settings.drift_window:
            monitor: Monitor = Unmonitored("drift monitoring is off (--drift-window 0)")
        elif not config.HasField("profile"):
            monitor = Unmonitored("the config carries no training profile (it was built by a release before "
                                        "drift monitoring): rerun the ETL job to monitor drift")
        elif self._shared is not None and self._shared[0].width != config_row_width(config):
            monitor = Unmonitored(f"the drift windows shared by --processes hold rows of {self._shared[0].width} "
                                  f"values, and this config's need {config_row_width(config)} (another number of "
                                  "features or classes than the config the server booted with): restart the "
                                  "server to monitor it")
        else:
            monitor = DriftMonitor(config, self.settings.drift_window, self.settings.thresholds, self._shared)
        if isinstance(monitor, Unmonitored) and self.log is None:
            return predictor, monitor
        return MonitoredPredictor(predictor, monitor, self.log, config.content_sha256), monitor

    def close(self) -> None:
        """After the last call: the log's queue written and its open file published."""
        if self.log is not None:
            self.log.close()


def log_settings(folder: Path | None, sample_rate: float, rotate_bytes: int, rotate_seconds: float
                 ) -> LogSettings | None:
    return None if folder is None else LogSettings(Path(folder), sample_rate, rotate_bytes, rotate_seconds)
