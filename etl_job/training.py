"""Analyze and fit, whatever the engine: the aggregates over the accepted rows, the ridge fit from
sufficient statistics summed over the training rows (etl_job.ridge), the rows of the parity check;
the narrow dtypes the compact features are kept in. Deterministic for the same input, whatever the
chunk size. The per-chunk transform is chunk_steps.transform_chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from absenteeism import dataflow, features
from absenteeism.aggregates import AggregateValue
from absenteeism.model import predict_linear
from absenteeism.raw_schema import RAW_COLUMN_NAMES
from absenteeism.v1 import serving_config_pb2
from etl_job.spill import narrowest_int


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
class Fitted:
    """The model and what the later steps need: the split's counts, the baseline, the rows of the parity check."""

    aggregates: dict[str, AggregateValue]
    model: serving_config_pb2.LinearModel
    settings: FitSettings
    train_rows: int
    test_rows: int
    baseline: float  # the mean training label: the predict-the-mean baseline
    parity_raw: pd.DataFrame  # accepted raw rows at the parity positions
    parity_features: np.ndarray
    rows: int  # accepted rows

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return predict_linear(self.model.intercept, self.model.coefficients, matrix)


def fit(solve: Callable[[float], tuple[float, np.ndarray]], *, aggregates: dict[str, AggregateValue],
        settings: FitSettings, train_rows: int, test_rows: int, train_label_sum: int,
        parity_raw: list[pd.DataFrame], parity_features: list[np.ndarray], accepted_rows: int) -> Fitted:
    """The model from the normal equations summed over the training rows (`solve`, see fit_model)
    and what the later steps need, from the totals an engine summed over its chunks."""
    model = fit_model(solve, settings, train_rows, test_rows, accepted_rows)
    raw, matrix = parity_rows(parity_raw, parity_features)
    return Fitted(aggregates=aggregates, model=model, settings=settings, train_rows=train_rows,
                  test_rows=test_rows, baseline=train_label_sum / train_rows, parity_raw=raw,
                  parity_features=matrix, rows=accepted_rows)


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
