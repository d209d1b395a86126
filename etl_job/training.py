"""Analyze and fit, whatever the engine: the aggregates over the accepted rows; the model, either
the ridge fit from sufficient statistics summed over the training rows (etl_job.ridge) or another
learner fitted on the training rows gathered in memory and converted to ONNX (etl_job.learners);
the rows of the parity check; the narrow dtypes the compact features are kept in. Deterministic for
the same input, whatever the chunk size. The per-chunk transform is chunk_steps.transform_chunk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from absenteeism import data_sets, dataflow, served_model
from absenteeism.aggregates import AggregateValue
from absenteeism.v1 import serving_config_pb2
from etl_job import golden
from etl_job.job_errors import ModelError
from etl_job.spill import narrowest_int

RIDGE = "ridge"
TASKS = {"regression": serving_config_pb2.TASK_REGRESSION,
         "binary_classification": serving_config_pb2.TASK_BINARY_CLASSIFICATION,
         "multiclass_classification": serving_config_pb2.TASK_MULTICLASS_CLASSIFICATION}
# Learners other than ridge hold the training rows in memory (float32, gathered once, plus the
# learner's own bins: docs/etl.md has the figures at 10M rows). Above the cap the job stops with a
# message instead of running out of memory.
DEFAULT_MAX_FIT_ROWS = 10_000_000


class TrainingError(ValueError):
    """The accepted data cannot produce a usable model (too few rows for statistics or a held-out split)."""


@dataclass(frozen=True)
class FitSettings:
    alpha: float = 1.0
    test_fraction: float = 0.2
    seed: int = 20120713  # fixed: the same input always gives the same split
    model: str = RIDGE  # "ridge", "gbt" or "package.module:function" (etl_job.learners)
    label: str = ""  # a label node of the feature module (stage="label"); "": its DEFAULT_LABEL

    @property
    def label_node(self) -> str:
        """The label node: `label`, or the active data set's DEFAULT_LABEL when none is named."""
        return self.label or dataflow.feature_module().DEFAULT_LABEL
    max_fit_rows: int = DEFAULT_MAX_FIT_ROWS  # training rows a learner other than ridge may hold

    @property
    def task(self) -> int:
        return TASKS[dataflow.label_task(self.label_node)]

    @property
    def is_classification(self) -> bool:
        return self.task != serving_config_pb2.TASK_REGRESSION


def check_model_fits_label(settings: FitSettings) -> None:
    """Before any row is read: the label exists and the model can learn its task (a usage error)."""
    dataflow.label_task(settings.label_node)  # LabelError naming the label nodes there are
    if settings.model == RIDGE and settings.is_classification:
        raise ValueError(f"--model ridge fits a regression, and label {settings.label_node!r} is "
                         f"{dataflow.label_task(settings.label_node)}: choose --model gbt or an estimator "
                         "(--model package.module:function)")


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
    """The model and what the later steps need: the split's counts, the baselines, the label's
    classes, the rows of the parity check."""

    aggregates: dict[str, AggregateValue]
    settings: FitSettings
    train_rows: int
    test_rows: int
    baseline: float  # the mean training label: the predict-the-mean baseline of a regressor
    parity_raw: pd.DataFrame  # accepted raw rows at the parity positions
    parity_features: np.ndarray
    rows: int  # accepted rows
    linear: serving_config_pb2.LinearModel | None = None  # the ridge model, or
    onnx: serving_config_pb2.OnnxModel | None = None  # any other, as an ONNX graph
    classes: np.ndarray | None = None  # a classifier's label values, ascending: index i is class i
    class_shares: np.ndarray | None = None  # a classifier's training class shares: its baseline

    def __post_init__(self) -> None:
        if self.onnx is not None:
            self.served: served_model.ServedModel = served_model.OnnxServedModel(self.onnx,
                                                                                 len(dataflow.model_features()))
        else:
            assert self.linear is not None
            self.served = served_model.LinearServedModel(self.linear)

    def predict(self, matrix: np.ndarray) -> served_model.ModelOutputs:
        return self.served.predict(matrix)

    @property
    def task(self) -> int:
        return self.served.task if self.onnx is not None else serving_config_pb2.TASK_REGRESSION



def fit(solve: Callable[[float], tuple[float, np.ndarray]], *, aggregates: dict[str, AggregateValue],
        settings: FitSettings, train_rows: int, test_rows: int, label_mean: Callable[[], float],
        parity_raw: list[pd.DataFrame], parity_features: list[np.ndarray], accepted_rows: int,
        training_rows: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None) -> Fitted:
    """The model and what the later steps need, from the totals an engine summed over its chunks:
    ridge from the normal equations summed over the training rows (`solve`, see fit_model), any
    other learner on the training rows `training_rows()` gathers (features, label values)."""
    if test_rows < 1 or train_rows < 2:
        raise TrainingError(f"{accepted_rows} accepted rows are too few for a {settings.test_fraction:.0%} "
                            "held-out split")
    raw, matrix = parity_rows(parity_raw, parity_features)
    fitted = functools.partial(Fitted, aggregates=aggregates, settings=settings, train_rows=train_rows,
                               test_rows=test_rows, baseline=label_mean(), parity_raw=raw,
                               parity_features=matrix, rows=accepted_rows)
    if settings.model == RIDGE:
        return fitted(linear=fit_model(solve, settings))
    if train_rows > settings.max_fit_rows:
        raise TrainingError(f"--model {settings.model} fits in memory: {train_rows:,} training rows are over the cap "
                            f"of {settings.max_fit_rows:,} (--max-fit-rows; see docs/etl.md for the memory it takes)")
    assert training_rows is not None, "an engine must gather the training rows for a learner other than ridge"
    train_matrix, train_labels = training_rows()
    from absenteeism import onnx_checks  # as the learners: loaded for them only
    from etl_job import learners  # scikit-learn, LightGBM and the converters load only for these learners

    classes = shares = None
    if settings.is_classification:
        classes, counts = np.unique(train_labels, return_counts=True)
        if len(classes) < 2:
            raise TrainingError(f"label {settings.label_node!r} takes one value in every training row: nothing to classify")
        shares = counts / counts.sum()
        train_labels = class_index(classes, train_labels, settings.label_node)
    try:
        onnx = learners.fit_onnx_model(settings.model, settings.task, class_labels(classes), train_matrix,
                                       train_labels, dataflow.model_features())
    except (learners.LearnerError, onnx_checks.ModelRefused) as error:
        raise ModelError(f"--model {settings.model}: {error}") from None
    return fitted(onnx=onnx, classes=classes, class_shares=shares)


def label_dtype(label: str) -> np.dtype:
    """The dtype of label node `label` in the training set (float64 or int64), read off the node's
    answer for one row at the raw label columns' first valid values: even a part of no row knows it."""
    values = dataflow.compute_label(golden.golden_frame(data_sets.active().table.labels).iloc[:1], label)
    return np.dtype(np.float64 if values.dtype.kind == "f" else np.int64)


def class_index(classes: np.ndarray, labels: np.ndarray, label: str) -> np.ndarray:
    """A classifier's label values as class indices (what the model predicts, and the training set
    holds); TrainingError for a value no training row had."""
    index = np.searchsorted(classes, labels)
    found = index < len(classes)
    found[found] = classes[index[found]] == labels[found]
    if not found.all():
        raise TrainingError(f"label {label!r} takes the value {labels[~found][0]!r} in held-out rows but in no "
                            f"training row (training classes: {classes.tolist()})")
    return index.astype(np.int64)


def class_labels(classes: np.ndarray | None) -> list[str]:
    """A class's label is its value written out: 0 and 1 for a flag."""
    return [] if classes is None else [str(value.item()) for value in classes]


def fit_model(solve: Callable[[float], tuple[float, np.ndarray]], settings: FitSettings) -> serving_config_pb2.LinearModel:
    """The ridge model from `solve(alpha)` (the normal equations summed over the training rows)."""
    intercept, coefficients = solve(settings.alpha)
    return serving_config_pb2.LinearModel(kind="ridge", intercept=intercept,
                                          coefficients=[float(c) for c in coefficients], alpha=settings.alpha)


def parity_rows(raw_parts: list[pd.DataFrame], feature_parts: list[np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
    """The parity check's raw rows and batch features, put together from the chunks that held some."""
    raw = [part for part in raw_parts if len(part)]
    features_ = [part for part in feature_parts if len(part)]
    return (pd.concat(raw) if raw else pd.DataFrame(columns=list(data_sets.active().table.column_names)),
            np.vstack(features_) if features_ else np.empty((0, len(dataflow.model_features()))))
