"""Every feature of the shared module, checked against an independent scalar definition."""

from __future__ import annotations

import inspect
import statistics

import numpy as np
import pandas as pd
import pytest
from hamilton.data_quality.base import DataValidationError

from absenteeism import dataflow, features
from absenteeism.absenteeism_schema import RAW_COLUMNS, RAW_DTYPES
from testkit.feature_oracle import expected_features
from testkit.records import VALID_ROW

AGGREGATES = {"age_mean": 36.5, "age_std_dev": 6.25}


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).astype(RAW_DTYPES)


def one_row(**changes) -> pd.DataFrame:
    return frame([{**VALID_ROW, **changes}])


CATEGORY_VALUES = {
    "month_of_absence": range(1, 13),
    "day_of_the_week": range(2, 7),
    "seasons": range(1, 5),
    "reason_for_absence": range(29),
    "disciplinary_failure": (0, 1),
    "pet": (0, 1, 2, 4, 5, 8, 50),
    "son": (0, 1, 2, 3, 4, 20),
    "age": (16, 27, 33, 36, 58, 100),
}


@pytest.mark.parametrize(
    "column,value", [(column, value) for column, values in CATEGORY_VALUES.items() for value in values])
def test_one_row_features_match_their_definition(column, value):
    raw = one_row(**{column: value})
    result = dataflow.compute_features(raw, AGGREGATES)
    assert list(result.columns) == list(features.MODEL_FEATURES)
    expected = expected_features({**VALID_ROW, column: value}, AGGREGATES)
    assert {name: float(result[name].iloc[0]) for name in features.MODEL_FEATURES} == expected


def test_one_row_and_many_rows_have_the_same_columns_dtypes_and_values():
    rows = [{**VALID_ROW, "day_of_the_week": d, "seasons": s, "month_of_absence": m}
            for d in range(2, 7) for s in range(1, 5) for m in range(1, 13)]
    many = dataflow.compute_features(frame(rows), AGGREGATES)
    for i, row in enumerate(rows):
        single = dataflow.compute_features(frame([row]), AGGREGATES)
        assert list(single.columns) == list(many.columns)
        assert list(single.dtypes) == list(many.dtypes)
        assert np.array_equal(single.to_numpy(), many.iloc[[i]].to_numpy())


def test_one_hot_dtypes_are_fixed():
    result = dataflow.compute_features(one_row(), AGGREGATES)
    for name in features.MODEL_FEATURES:
        expected = "float64" if name == "age_zero_mean_unit_variance" else "int64"
        assert str(result[name].dtype) == expected, name


@pytest.mark.parametrize("column,value", [("day_of_the_week", 7), ("day_of_the_week", 1), ("seasons", 0),
                                          ("seasons", 5)])
def test_a_category_outside_the_known_set_fails_the_run_not_a_silent_row_of_zeros(column, value):
    # The raw schema refuses these first; this proves the module itself fails too, never warns.
    with pytest.raises(DataValidationError):
        dataflow.compute_features(one_row(**{column: value}), AGGREGATES)


def test_non_finite_standardized_age_fails():
    with pytest.raises(DataValidationError):
        dataflow.compute_features(one_row(), {"age_mean": 36.0, "age_std_dev": 0.0})


def test_aggregates_are_required_as_overrides():
    with pytest.raises(ValueError, match="age_std_dev"):
        dataflow.compute_features(one_row(), {"age_mean": 36.0})


def test_aggregates_equal_an_independent_computation():
    ages = [27, 28, 28, 33, 36, 38, 38, 41, 50, 58]
    result = dataflow.compute_aggregates(frame([{**VALID_ROW, "age": a} for a in ages]))
    assert result["age_mean"] == pytest.approx(statistics.fmean(ages), rel=1e-15)
    assert result["age_std_dev"] == pytest.approx(statistics.pstdev(ages), rel=1e-14)


def test_aggregate_nodes_are_tagged_and_overridden_online():
    assert dataflow.aggregate_names() == ("age_mean", "age_std_dev")
    # With overrides, the result depends on the given statistics, not on the rows' own ages.
    result = dataflow.compute_features(frame([{**VALID_ROW, "age": 40}] * 3), {"age_mean": 30.0, "age_std_dev": 5.0})
    assert result["age_zero_mean_unit_variance"].tolist() == [2.0, 2.0, 2.0]


def test_feature_bodies_give_the_same_bits_on_numpy_arrays_and_series():
    # The premise of a fast online path: the same functions run on small arrays, bit for bit.
    rng = np.random.default_rng(7)
    raw = frame([{**VALID_ROW, "age": int(rng.integers(16, 101)), "reason_for_absence": int(rng.integers(0, 29)),
                  "month_of_absence": int(rng.integers(1, 13)), "day_of_the_week": int(rng.integers(2, 7)),
                  "seasons": int(rng.integers(1, 5)), "pet": int(rng.integers(0, 9)),
                  "son": int(rng.integers(0, 5)), "disciplinary_failure": int(rng.integers(0, 2))}
                 for _ in range(200)])
    series_result = dataflow.compute_features(raw, AGGREGATES)
    for name in features.MODEL_FEATURES:
        function = getattr(features, name)
        body = inspect.unwrap(function)
        params = inspect.signature(body).parameters
        args = {p: AGGREGATES[p] if p in AGGREGATES else raw[p].to_numpy() for p in params}
        on_arrays = np.asarray(body(**args), dtype=np.float64)
        assert np.array_equal(on_arrays.view(np.uint64),
                              series_result[name].to_numpy(dtype=np.float64).view(np.uint64)), name


def test_every_model_feature_is_a_documented_checked_function():
    for name in (*features.MODEL_FEATURES, *features.GUARDS):
        function = getattr(features, name)
        assert function.__doc__ and function.__doc__.strip(), name
    nodes = {v.name for v in dataflow.feature_driver().list_available_variables()}
    for name in (*features.MODEL_FEATURES, *features.GUARDS):
        assert any(n.startswith(f"{name}_") and "validator" in n for n in nodes), f"{name} has no check_output"
    assert len(set(features.MODEL_FEATURES)) == len(features.MODEL_FEATURES)
    assert {c.name for c in RAW_COLUMNS}.isdisjoint(features.MODEL_FEATURES)
