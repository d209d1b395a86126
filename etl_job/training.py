"""From accepted raw rows to a ServingConfig: analyze (aggregates), transform (features), fit
(ridge on a held-out split), golden rows, provenance. Deterministic for the same input."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from absenteeism import config_io, converters, dataflow, features
from absenteeism.model import predict_linear
from absenteeism.raw_schema import LABEL
from absenteeism.v1 import serving_config_pb2

STD_DDOF = 0  # features.age_std_dev is the population standard deviation
LIBRARIES = ("numpy", "pandas", "pandera", "apache-hamilton", "scikit-learn", "protobuf", "pyarrow", "grpcio")


class TrainingError(ValueError):
    """The accepted data cannot produce a usable model (too few rows, constant age, ...)."""


@dataclass(frozen=True)
class FitSettings:
    alpha: float = 1.0
    test_fraction: float = 0.2
    seed: int = 20120713  # fixed: the same input always gives the same split
    golden_rows: int = 24


@dataclass(frozen=True)
class TrainingResult:
    aggregates: dict[str, float]
    features: pd.DataFrame  # accepted rows x MODEL_FEATURES, indexed like the input
    predictions: np.ndarray
    config: serving_config_pb2.ServingConfig


def analyze(accepted: pd.DataFrame) -> dict[str, float]:
    if len(accepted) < 2:
        raise TrainingError(f"{len(accepted)} accepted rows: at least 2 are needed to compute statistics")
    aggregates = dataflow.compute_aggregates(accepted)
    if not aggregates["age_std_dev"] > 0:
        raise TrainingError("every accepted row has the same age: age_std_dev is 0, age cannot be standardized")
    return aggregates


def split(n_rows: int, settings: FitSettings) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the training and held-out rows (a seeded permutation)."""
    order = np.random.default_rng(settings.seed).permutation(n_rows)
    n_test = int(round(n_rows * settings.test_fraction))
    if n_test < 1 or n_rows - n_test < 2:
        raise TrainingError(f"{n_rows} accepted rows are too few for a {settings.test_fraction:.0%} held-out split")
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def fit(matrix: np.ndarray, labels: np.ndarray, settings: FitSettings
        ) -> tuple[serving_config_pb2.LinearModel, serving_config_pb2.EvaluationMetrics]:
    train, test = split(len(labels), settings)
    ridge = Ridge(alpha=settings.alpha).fit(matrix[train], labels[train])
    model = serving_config_pb2.LinearModel(
        kind="ridge", intercept=float(ridge.intercept_), coefficients=[float(c) for c in ridge.coef_],
        alpha=settings.alpha)
    predicted = predict_linear(model.intercept, model.coefficients, matrix[test])
    baseline = np.full(len(test), labels[train].mean())
    metrics = serving_config_pb2.EvaluationMetrics(
        train_rows=len(train), test_rows=len(test), test_fraction=settings.test_fraction, split_seed=settings.seed,
        mae=_mae(labels[test], predicted), rmse=_rmse(labels[test], predicted),
        baseline_mae=_mae(labels[test], baseline), baseline_rmse=_rmse(labels[test], baseline))
    return model, metrics


def _mae(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(truth - predicted)))


def _rmse(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((truth - predicted) ** 2)))


def golden_positions(feature_frame: pd.DataFrame, limit: int) -> list[int]:
    """Rows that together set and unset every flag feature, plus the youngest and oldest: a small
    self-test set that exercises every branch of the feature module."""
    chosen: list[int] = []
    for name in features.MODEL_FEATURES:
        column = feature_frame[name].to_numpy()
        if name == "age_zero_mean_unit_variance":
            candidates = [int(np.argmin(column)), int(np.argmax(column))]
        else:
            candidates = [int(np.flatnonzero(column == value)[0]) for value in (1, 0) if (column == value).any()]
        chosen.extend(p for p in candidates if p not in chosen)
    return sorted(chosen[:limit])


def library_versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in LIBRARIES}


def train(accepted: pd.DataFrame, *, settings: FitSettings, input_sha256: str, input_files: Sequence[str],
          rows_read: int, rows_rejected: int, created_at: datetime) -> TrainingResult:
    """accepted: valid typed raw rows with the label column, indexed by source row number."""
    aggregates = analyze(accepted)
    feature_frame = dataflow.compute_features(accepted, aggregates)
    matrix = dataflow.feature_matrix(feature_frame)
    labels = accepted[LABEL.name].to_numpy(dtype=np.float64)
    model, metrics = fit(matrix, labels, settings)
    predictions = predict_linear(model.intercept, model.coefficients, matrix)

    config = serving_config_pb2.ServingConfig(
        format_version=config_io.FORMAT_VERSION,
        feature_names=list(features.MODEL_FEATURES),
        statistics=converters.statistics_to_message(aggregates, STD_DDOF, len(accepted)),
        model=model,
        evaluation=metrics,
    )
    provenance = config.provenance
    provenance.input_sha256 = input_sha256
    provenance.input_files.extend(sorted(input_files))
    provenance.rows.read, provenance.rows.accepted, provenance.rows.rejected = rows_read, len(accepted), rows_rejected
    provenance.code.CopyFrom(config_io.code_fingerprint())
    provenance.library_versions.update(library_versions())
    provenance.created_at.FromDatetime(created_at)
    provenance.project_version = importlib.metadata.version("absenteeism-serving")

    records = converters.frame_to_records(accepted.iloc[golden_positions(feature_frame, settings.golden_rows)])
    for position, record in zip(golden_positions(feature_frame, settings.golden_rows), records):
        config.golden_rows.add(source_row=int(accepted.index[position]), record=record,
                               features=matrix[position].tolist(), prediction=float(predictions[position]))
    return TrainingResult(aggregates, feature_frame, predictions, config_io.seal(config))
