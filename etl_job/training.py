"""Transform and fit: every accepted row through the feature module with the aggregates injected
(one chunk at a time, as the server runs it on one request), the ridge fit from summed sufficient
statistics (etl_job.ridge), compact features kept for the write, and the rows of the parity check.
Deterministic for the same input, whatever the chunk size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from absenteeism import dataflow, features
from absenteeism.aggregates import AggregateValue
from absenteeism.model import predict_linear
from absenteeism.raw_schema import LABEL, RAW_COLUMN_NAMES
from absenteeism.v1 import serving_config_pb2
from etl_job.ridge import NormalEquations
from etl_job.split import held_out


class TrainingError(ValueError):
    """The accepted data cannot produce a usable model (too few rows for statistics or a held-out split)."""


@dataclass(frozen=True)
class FitSettings:
    alpha: float = 1.0
    test_fraction: float = 0.2
    seed: int = 20120713  # fixed: the same input always gives the same split


def analyze(analyze_inputs: pd.DataFrame) -> dict[str, AggregateValue]:
    """The aggregates over all accepted rows; `analyze_inputs` holds the columns they read
    (dataflow.analyze_columns)."""
    if len(analyze_inputs) < 2:
        raise TrainingError(f"{len(analyze_inputs)} accepted rows: at least 2 are needed to compute statistics")
    return dataflow.compute_aggregates(analyze_inputs)


def narrow(values: np.ndarray) -> np.ndarray:
    """`values` in the narrowest integer dtype that holds them exactly (floats: int8 or not at all),
    else a copy as they are: flags kept as int8 keep the features of many rows small."""
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


@dataclass(frozen=True)
class TrainingRows:
    source_rows: np.ndarray
    features: np.ndarray  # rows x MODEL_FEATURES, float64
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
            yield TrainingRows(kept.source_rows.astype(np.int64), matrix, kept.labels.astype(np.int64),
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
    wanted = np.asarray(parity_positions, dtype=np.int64)
    for chunk in accepted_chunks:
        matrix = dataflow.feature_matrix(dataflow.compute_features(chunk, aggregates))
        labels = chunk[LABEL.name].to_numpy()
        source_rows = chunk.index.to_numpy(dtype=np.int64)
        test = held_out(source_rows, settings.seed, settings.test_fraction)
        normal.add(matrix[~test], labels[~test])
        train_label_sum += int(labels[~test].sum())
        train_rows += int((~test).sum())
        test_rows += int(test.sum())
        here = wanted[(wanted >= offset) & (wanted < offset + len(chunk))] - offset
        if len(here):
            parity_raw.append(chunk.iloc[here][list(RAW_COLUMN_NAMES)])
            parity_features.append(matrix[here])
        kept.append(_Kept(narrow(source_rows), [narrow(matrix[:, j]) for j in range(p)], narrow(labels), test))
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
                  rows=offset, _kept=kept)
