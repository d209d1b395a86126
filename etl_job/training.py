"""From accepted raw rows to a ServingConfig: analyze (aggregates), transform (features), fit
(ridge on a held-out split), golden rows, provenance. Streams over chunks of accepted rows and is
deterministic for the same input, whatever the chunk size.

- analyze: the aggregate nodes of the feature module over every accepted row (their inputs, the age
  column, are small enough to collect across chunks);
- transform + fit: per chunk, the feature module with the aggregates as overrides (the DESIGN's "one
  partition, stats injected"); the ridge fit reads sufficient statistics (etl_job.ridge);
- the held-out split is a per-row draw from (seed, source row), so no chunk needs to see another.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from absenteeism import config_io, converters, dataflow, features
from absenteeism.model import predict_linear
from absenteeism.raw_schema import LABEL, RAW_COLUMN_NAMES
from absenteeism.v1 import serving_config_pb2
from etl_job.ridge import HeldOutErrors, NormalEquations

STD_DDOF = 0  # features.age_std_dev is the population standard deviation
LIBRARIES = ("numpy", "pandas", "pandera", "apache-hamilton", "protobuf", "pyarrow", "grpcio")


class TrainingError(ValueError):
    """The accepted data cannot produce a usable model (too few rows, constant age, ...)."""


@dataclass(frozen=True)
class FitSettings:
    alpha: float = 1.0
    test_fraction: float = 0.2
    seed: int = 20120713  # fixed: the same input always gives the same split
    golden_rows: int = 24


def analyze(analyze_inputs: pd.DataFrame) -> dict[str, float]:
    """The aggregates over all accepted rows; `analyze_inputs` holds the columns they read."""
    if len(analyze_inputs) < 2:
        raise TrainingError(f"{len(analyze_inputs)} accepted rows: at least 2 are needed to compute statistics")
    aggregates = dataflow.compute_aggregates(analyze_inputs)
    if not aggregates["age_std_dev"] > 0:
        raise TrainingError("every accepted row has the same age: age_std_dev is 0, age cannot be standardized")
    return aggregates


def analyze_columns() -> tuple[str, ...]:
    """The raw columns the aggregate nodes read: what pass 1 keeps of every accepted row."""
    needed = {v.name for v in dataflow.feature_driver().what_is_upstream_of(*dataflow.aggregate_names())}
    return tuple(name for name in RAW_COLUMN_NAMES if name in needed)


_MIX = np.uint64(0x9E3779B97F4A7C15)


def held_out(source_rows: np.ndarray, settings: FitSettings) -> np.ndarray:
    """True for the rows of the held-out set: a splitmix64 hash of (seed, source row) against the
    test fraction, a draw per row, the same in any chunking."""
    with np.errstate(over="ignore"):
        z = np.asarray(source_rows, dtype=np.uint64) * _MIX + np.uint64(settings.seed) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53) < settings.test_fraction


class GoldenPicker:
    """Rows that together set and unset every flag feature, plus the youngest and oldest: a small
    self-test set that exercises every branch of the feature module. Fed chunk by chunk, it picks
    what one look at all rows would: the first row of each flag value, the first min and max."""

    def __init__(self) -> None:
        self._flags: dict[tuple[str, float], int] = {}
        self._extremes: dict[str, list[tuple[float, int]]] = {}
        self.rows: dict[int, tuple[pd.DataFrame, np.ndarray]] = {}  # position -> (raw row, features)

    def add(self, matrix: np.ndarray, raw: pd.DataFrame, offset: int) -> None:
        for j, name in enumerate(features.MODEL_FEATURES):
            column = matrix[:, j]
            if name == "age_zero_mean_unit_variance":
                low, high = int(np.argmin(column)), int(np.argmax(column))
                best = self._extremes.setdefault(name, [(np.inf, -1), (-np.inf, -1)])
                if column[low] < best[0][0]:
                    best[0] = (column[low], offset + low)
                    self._keep(offset, low, matrix, raw)
                if column[high] > best[1][0]:
                    best[1] = (column[high], offset + high)
                    self._keep(offset, high, matrix, raw)
                continue
            for value in (1.0, 0.0):
                if (name, value) not in self._flags:
                    hits = np.flatnonzero(column == value)
                    if len(hits):
                        self._flags[(name, value)] = offset + int(hits[0])
                        self._keep(offset, int(hits[0]), matrix, raw)

    def _keep(self, offset: int, position: int, matrix: np.ndarray, raw: pd.DataFrame) -> None:
        self.rows[offset + position] = (raw.iloc[[position]], matrix[position].copy())

    def positions(self, limit: int) -> list[int]:
        chosen: list[int] = []
        for name in features.MODEL_FEATURES:
            if name in self._extremes:
                candidates = [position for _, position in self._extremes[name]]
            else:
                candidates = [self._flags[(name, v)] for v in (1.0, 0.0) if (name, v) in self._flags]
            chosen.extend(p for p in candidates if p not in chosen)
        return sorted(chosen[:limit])


def golden_positions(feature_frame: pd.DataFrame, limit: int) -> list[int]:
    picker = GoldenPicker()
    picker.add(dataflow.feature_matrix(feature_frame), feature_frame, 0)
    return picker.positions(limit)


def _narrow(values: np.ndarray) -> np.ndarray:
    """`values` in the narrowest integer dtype that holds them exactly (floats: int8 or not at all),
    else a copy as they are: flags kept as int8 make the features of 10M rows ~250 MB, not ~1.4 GB."""
    for dtype in ((np.int8,) if values.dtype.kind == "f" else (np.int8, np.int16, np.int32)):
        candidate = values.astype(dtype)
        if np.array_equal(candidate.astype(values.dtype), values):
            return candidate
    return values.copy()  # a copy: a view would keep the chunk's whole matrix alive


@dataclass
class _Kept:
    source_rows: np.ndarray
    columns: list[np.ndarray]  # feature columns in model order, narrowed
    labels: np.ndarray
    test: np.ndarray

    def matrix(self) -> np.ndarray:
        out = np.empty((len(self.source_rows), len(self.columns)), dtype=np.float64, order="F")
        for j, column in enumerate(self.columns):
            out[:, j] = column
        return out


@dataclass
class Fitted:
    """The model and what the later steps need: rows for the parity check and the golden rows."""

    aggregates: dict[str, float]
    model: serving_config_pb2.LinearModel
    settings: FitSettings
    train_rows: int
    test_rows: int
    baseline: float  # the mean training label: the predict-the-mean baseline
    parity_raw: pd.DataFrame  # accepted raw rows at the parity positions
    parity_features: np.ndarray
    golden: GoldenPicker
    rows: int  # accepted rows
    _kept: list[_Kept] = field(repr=False, default_factory=list)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return predict_linear(self.model.intercept, self.model.coefficients, matrix)

    def training_rows(self, errors: HeldOutErrors) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(source rows, feature matrix, labels, predictions) chunk by chunk; feeds the held-out rows to `errors`."""
        for kept in self._kept:
            matrix = kept.matrix()
            predictions = self.predict(matrix)
            errors.add(kept.labels[kept.test].astype(np.float64), predictions[kept.test])
            yield kept.source_rows.astype(np.int64), matrix, kept.labels.astype(np.int64), predictions


def train(accepted_chunks: Iterable[pd.DataFrame], *, aggregates: dict[str, float], settings: FitSettings,
          parity_positions: np.ndarray) -> Fitted:
    """Transform each chunk with the aggregates injected, accumulate the fit, keep compact features.

    accepted_chunks: valid typed raw rows with the label, indexed by source row, in source order.
    """
    p = len(features.MODEL_FEATURES)
    normal = NormalEquations(p)
    golden = GoldenPicker()
    kept: list[_Kept] = []
    parity_raw, parity_features = [], []
    train_label_sum, train_rows, test_rows, offset = 0, 0, 0, 0
    wanted = np.asarray(parity_positions, dtype=np.int64)
    for chunk in accepted_chunks:
        matrix = dataflow.feature_matrix(dataflow.compute_features(chunk, aggregates))
        labels = chunk[LABEL.name].to_numpy()
        source_rows = chunk.index.to_numpy(dtype=np.int64)
        test = held_out(source_rows, settings)
        normal.add(matrix[~test], labels[~test])
        train_label_sum += int(labels[~test].sum())
        train_rows += int((~test).sum())
        test_rows += int(test.sum())
        golden.add(matrix, chunk, offset)
        here = wanted[(wanted >= offset) & (wanted < offset + len(chunk))] - offset
        if len(here):
            parity_raw.append(chunk.iloc[here][list(RAW_COLUMN_NAMES)])
            parity_features.append(matrix[here])
        kept.append(_Kept(_narrow(source_rows), [_narrow(matrix[:, j]) for j in range(p)], _narrow(labels), test))
        offset += len(chunk)
    if test_rows < 1 or train_rows < 2:
        raise TrainingError(f"{offset} accepted rows are too few for a {settings.test_fraction:.0%} held-out split")
    intercept, coefficients = normal.solve(settings.alpha)
    model = serving_config_pb2.LinearModel(kind="ridge", intercept=intercept,
                                           coefficients=[float(c) for c in coefficients], alpha=settings.alpha)
    return Fitted(aggregates=aggregates, model=model, settings=settings, train_rows=train_rows,
                  test_rows=test_rows, baseline=train_label_sum / train_rows,
                  parity_raw=pd.concat(parity_raw) if parity_raw else pd.DataFrame(columns=list(RAW_COLUMN_NAMES)),
                  parity_features=np.vstack(parity_features) if parity_features else np.empty((0, p)),
                  golden=golden, rows=offset, _kept=kept)


def library_versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in LIBRARIES}


def serving_config(fitted: Fitted, metrics: dict[str, float] | None, *, input_sha256: str,
                   input_files: Sequence[str], rows_read: int, rows_rejected: int,
                   created_at: datetime) -> serving_config_pb2.ServingConfig:
    """The sealed config. Without `metrics` (before the held-out pass) it is complete enough for the
    online path (statistics, model, features): the parity check runs on it."""
    settings = fitted.settings
    config = serving_config_pb2.ServingConfig(
        format_version=config_io.FORMAT_VERSION,
        feature_names=list(features.MODEL_FEATURES),
        statistics=converters.statistics_to_message(fitted.aggregates, STD_DDOF, fitted.rows),
        model=fitted.model,
    )
    if metrics is not None:
        config.evaluation.CopyFrom(serving_config_pb2.EvaluationMetrics(
            train_rows=fitted.train_rows, test_rows=fitted.test_rows, test_fraction=settings.test_fraction,
            split_seed=settings.seed, **metrics))
    provenance = config.provenance
    provenance.input_sha256 = input_sha256
    provenance.input_files.extend(sorted(input_files))
    provenance.rows.read, provenance.rows.accepted, provenance.rows.rejected = rows_read, fitted.rows, rows_rejected
    provenance.code.CopyFrom(config_io.code_fingerprint())
    provenance.library_versions.update(library_versions())
    provenance.created_at.FromDatetime(created_at)
    provenance.project_version = importlib.metadata.version("absenteeism-serving")

    positions = fitted.golden.positions(settings.golden_rows)
    rows = [fitted.golden.rows[p] for p in positions]
    records = converters.frame_to_records(pd.concat([raw for raw, _ in rows])) if rows else []
    for (raw, feature_row), record in zip(rows, records):
        prediction = fitted.predict(feature_row[np.newaxis, :])[0]
        config.golden_rows.add(source_row=int(raw.index[0]), record=record, features=feature_row.tolist(),
                               prediction=float(prediction))
    return config_io.seal(config)


@dataclass(frozen=True)
class TrainingResult:
    aggregates: dict[str, float]
    features: np.ndarray  # accepted rows x MODEL_FEATURES
    predictions: np.ndarray
    config: serving_config_pb2.ServingConfig


def train_frame(accepted: pd.DataFrame, *, settings: FitSettings, input_sha256: str, input_files: Sequence[str],
                rows_read: int, rows_rejected: int, created_at: datetime) -> TrainingResult:
    """The whole chain on one in-memory frame (one chunk): for tests and small tools."""
    aggregates = analyze(accepted[list(analyze_columns())])
    fitted = train([accepted], aggregates=aggregates, settings=settings, parity_positions=np.empty(0, np.int64))
    errors = HeldOutErrors(fitted.baseline)
    parts = list(fitted.training_rows(errors))
    config = serving_config(fitted, errors.metrics(), input_sha256=input_sha256, input_files=input_files,
                            rows_read=rows_read, rows_rejected=rows_rejected, created_at=created_at)
    return TrainingResult(aggregates, np.vstack([m for _, m, _, _ in parts]), np.concatenate([p for *_, p in parts]),
                          config)
