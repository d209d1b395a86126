"""Transform and fit: every accepted row through the feature module with the aggregates injected
(one chunk at a time, as the server runs it on one request), the ridge fit from summed sufficient
statistics (etl_job.ridge), compact features kept for the write, and the rows of the parity check.
Deterministic for the same input, whatever the chunk size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from absenteeism import dataflow, features
from absenteeism.aggregates import AggregateValue
from absenteeism.model import predict_linear
from absenteeism.raw_schema import LABEL, RAW_COLUMN_NAMES
from absenteeism.v1 import serving_config_pb2
from etl_job import online_parity
from etl_job.ridge import NormalEquations
from etl_job.spill import narrowest_int
from etl_job.split import held_out


class TrainingError(ValueError):
    """The accepted data cannot produce a usable model (too few rows for statistics or a held-out split)."""


@dataclass(frozen=True)
class FitSettings:
    alpha: float = 1.0
    test_fraction: float = 0.2
    seed: int = 20120713  # fixed: the same input always gives the same split


class AnalyzeInputs:
    """The raw columns the aggregate nodes read (dataflow.analyze_columns), collected from the
    accepted rows as they stream by, in order (a column or two of small integers)."""

    def __init__(self) -> None:
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in dataflow.analyze_columns()}

    def add(self, accepted: pd.DataFrame) -> None:
        for name, parts in self._parts.items():
            # A copy: a view would keep the chunk's whole block of columns alive.
            parts.append(accepted[name].to_numpy(copy=True))

    def add_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Columns collected elsewhere (a part of the input on a Dask worker), added after these."""
        for name, parts in self._parts.items():
            parts.append(arrays[name])

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.concatenate(parts) if parts else np.empty(0, np.int64) for name, parts in self._parts.items()}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.arrays())


def analyze(analyze_inputs: pd.DataFrame) -> dict[str, AggregateValue]:
    """The aggregates over all accepted rows; `analyze_inputs` holds the columns they read
    (dataflow.analyze_columns)."""
    if len(analyze_inputs) < 2:
        raise TrainingError(f"{len(analyze_inputs)} accepted rows: at least 2 are needed to compute statistics")
    return dataflow.compute_aggregates(analyze_inputs)


def narrow(values: np.ndarray) -> np.ndarray:
    """`values` in the narrowest integer dtype that holds them exactly (floats: int8 or not at all),
    else a copy as they are: flags kept as int8 keep the features of many rows small."""
    if values.dtype.kind == "f":
        candidate = values.astype(np.int8)
        if np.array_equal(candidate.astype(values.dtype), values):
            return candidate
    else:
        narrowed = narrowest_int(values)
        if narrowed is not values:
            return narrowed
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


@dataclass(frozen=True)
class TrainingRows:
    source_rows: np.ndarray
    features: np.ndarray  # rows x MODEL_FEATURES, float64
    columns: list[np.ndarray]  # the same, a column per feature in its narrowest exact dtype
    labels: np.ndarray
    predictions: np.ndarray
    held_out: np.ndarray  # True for the rows of the held-out set

    def __len__(self) -> int:
        return len(self.source_rows)


@dataclass
class Fitted:
    """The model and what the later steps need: the training rows and the rows of the parity check."""

    aggregates: dict[str, AggregateValue]
    model: serving_config_pb2.LinearModel
    settings: FitSettings
    train_rows: int
    test_rows: int
    baseline: float  # the mean training label: the predict-the-mean baseline
    parity_raw: pd.DataFrame  # accepted raw rows at the parity positions
    parity_features: np.ndarray
    rows: int  # accepted rows
    _kept: list[_Kept] = field(repr=False, default_factory=list)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return predict_linear(self.model.intercept, self.model.coefficients, matrix)

    def training_rows(self) -> Iterator[TrainingRows]:
        """The training set with its predictions, chunk by chunk."""
        for kept in self._kept:
            matrix = kept.matrix()
            yield TrainingRows(kept.source_rows.astype(np.int64), matrix, kept.columns, kept.labels.astype(np.int64),
                               self.predict(matrix), kept.test)


def train(accepted_chunks: Iterable[pd.DataFrame], *, aggregates: dict[str, AggregateValue], settings: FitSettings,
          parity_positions: np.ndarray) -> Fitted:
    """Transform each chunk with the aggregates injected, accumulate the fit, keep compact features.

    accepted_chunks: valid typed raw rows with the label, indexed by source row, in source order.
    """
    p = len(features.MODEL_FEATURES)
    normal = NormalEquations(p)
    kept: list[_Kept] = []
    parity_raw, parity_features = [], []
    train_label_sum, train_rows, test_rows, offset = 0, 0, 0, 0
    for chunk in accepted_chunks:
        matrix = dataflow.feature_matrix(dataflow.compute_features(chunk, aggregates))
        labels = chunk[LABEL.name].to_numpy()
        source_rows = chunk.index.to_numpy(dtype=np.int64)
        test = held_out(source_rows, settings.seed, settings.test_fraction)
        normal.add(matrix[~test], labels[~test])
        train_label_sum += int(labels[~test].sum())
        train_rows += int((~test).sum())
        test_rows += int(test.sum())
        here = online_parity.positions_within(parity_positions, offset, len(chunk))
        if len(here):
            parity_raw.append(chunk.iloc[here][list(RAW_COLUMN_NAMES)])
            parity_features.append(matrix[here])
        kept.append(_Kept(narrow(source_rows), [narrow(matrix[:, j]) for j in range(p)], narrow(labels), test))
        offset += len(chunk)
    model = fit_model(normal.solve, settings, train_rows, test_rows, offset)
    raw, matrix = parity_rows(parity_raw, parity_features)
    return Fitted(aggregates=aggregates, model=model, settings=settings, train_rows=train_rows,
                  test_rows=test_rows, baseline=train_label_sum / train_rows, parity_raw=raw,
                  parity_features=matrix, rows=offset, _kept=kept)


def fit_model(solve: Callable[[float], tuple[float, np.ndarray]], settings: FitSettings, train_rows: int,
              test_rows: int, accepted_rows: int) -> serving_config_pb2.LinearModel:
    """The ridge model from `solve(alpha)` (the normal equations summed over the training rows);
    TrainingError when the split leaves too few rows."""
    if test_rows < 1 or train_rows < 2:
        raise TrainingError(f"{accepted_rows} accepted rows are too few for a {settings.test_fraction:.0%} "
                            "held-out split")
    intercept, coefficients = solve(settings.alpha)
    return serving_config_pb2.LinearModel(kind="ridge", intercept=intercept,
                                          coefficients=[float(c) for c in coefficients], alpha=settings.alpha)


def parity_rows(raw_parts: list[pd.DataFrame], feature_parts: list[np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
    """The parity check's raw rows and batch features, put together from the chunks that held some."""
    raw = [part for part in raw_parts if len(part)]
    features_ = [part for part in feature_parts if len(part)]
    return (pd.concat(raw) if raw else pd.DataFrame(columns=list(RAW_COLUMN_NAMES)),
            np.vstack(features_) if features_ else np.empty((0, len(features.MODEL_FEATURES))))
