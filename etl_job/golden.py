"""Golden rows: synthetic raw records the server recomputes at boot, bit for bit.

They are built from the raw schema alone, never copied from the input (a config is handed to
anyone who calls GetServingConfig): every allowed value of every category column, and the ends,
quartiles and midpoint of every range, both truth values, a missing value in every nullable column
and an empty and a non-ASCII text in every free-text column, each in at least one record. The job computes their
features and predictions with the same batch path as the training set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from absenteeism import data_sets, dataflow, served_model
from absenteeism.aggregates import AggregateValue
from absenteeism.online import converters
from absenteeism.raw_schema import RawColumn
from absenteeism.v1 import serving_config_pb2


def column_values(column: RawColumn) -> list[Any]:
    """The values of one column the golden records take (frame values: a date as its days): every
    allowed value of an `isin` rule; for a range, its ends, quartiles and midpoint; and a missing
    value when the column is nullable."""
    return [*_present_values(column), *([None] if column.nullable else [])]


def _present_values(column: RawColumn) -> list[Any]:
    if column.dtype == "bool":
        return [False, True]
    if column.check is None:
        if column.dtype == "str":
            return ["", "Ünïcode ✓"]
        raise ValueError(f"raw column {column.name}: golden records need an isin or in_range rule")
    statistics = column.check.statistics or {}
    if column.check.name == "isin":
        return sorted(statistics["allowed_values"])
    if column.check.name == "in_range":
        low, high = statistics["min_value"], statistics["max_value"]
        points = [low + (high - low) * q for q in (0.0, 0.25, 0.5, 0.75, 1.0)]
        if column.dtype in ("int64", "date"):
            return sorted({int(np.floor(p)) for p in points})
        return sorted(set(points))
    raise ValueError(f"raw column {column.name}: golden records need an isin or in_range rule, not {column.check.name}")


def golden_frame(columns: Sequence[RawColumn] | None = None) -> pd.DataFrame:
    """The golden records as typed raw rows (of the active data set's request fields, or of
    `columns`): record i takes value i (mod its count) of each column, so the longest list of
    values sets the number of records."""
    columns = data_sets.active().table.columns if columns is None else columns
    values = {column.name: column_values(column) for column in columns}
    count = max(len(v) for v in values.values())
    return pd.DataFrame({column.name: _typed([values[column.name][i % len(values[column.name])] for i in range(count)],
                                             column)
                         for column in columns})


def _typed(values: list[Any], column: RawColumn) -> pd.Series:
    if column.dtype == "str":
        return pd.Series(values, dtype="str")
    if column.frame_dtype == "float64":
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.Series(np.array(values, dtype=column.frame_dtype))


def golden_rows(aggregates: Mapping[str, AggregateValue],
                model: served_model.ServedModel) -> list[serving_config_pb2.GoldenRow]:
    """The golden records with the features and the model's answers (predictions, a classifier's
    probabilities) of the batch path."""
    frame = golden_frame()
    matrix = dataflow.feature_matrix(dataflow.compute_features(frame, dict(aggregates)))
    answered = model.predict(matrix)
    probabilities = answered.probabilities if answered.probabilities is not None else np.empty((len(frame), 0))
    return [serving_config_pb2.GoldenRow(**converters.golden_record_fields(record), features=row.tolist(),
                                         prediction=float(prediction), probabilities=row_probabilities.tolist())
            for record, row, prediction, row_probabilities in zip(converters.frame_to_records(frame), matrix,
                                                                   answered.predictions, probabilities)]
