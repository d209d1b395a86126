"""The raw schema: each rule refuses a bad value with the column and rule named; parsing of cells."""

from __future__ import annotations

import pandas as pd
import pytest

from absenteeism.dataset import cell_parsing
from absenteeism.raw_schema import (
    LABEL,
    RAW_COLUMNS,
    RAW_DTYPES,
    RAW_SCHEMA,
    REQUIRED,
    TRAINING_SCHEMA,
    find_violations,
)
from testkit.records import VALID_ROW

# (column, a value just outside its rule, the boundary values that must pass)
BAD_AND_BOUNDARY = [
    ("id", 0, (1, 10_000)),
    ("id", 10_001, (1, 10_000)),
    ("reason_for_absence", 29, (0, 28)),
    ("month_of_absence", 0, (1, 12)),
    ("month_of_absence", 13, (1, 12)),
    ("day_of_the_week", 1, (2, 6)),
    ("day_of_the_week", 7, (2, 6)),
    ("seasons", 5, (1, 4)),
    ("transportation_expense", -1, (0, 1000)),
    ("distance_from_residence_to_work", 201, (0, 200)),
    ("service_time", 61, (0, 60)),
    ("age", 15, (16, 100)),
    ("age", 101, (16, 100)),
    ("work_load_average_per_day", -0.001, (0.0, 1000.0)),
    ("hit_target", 101, (0, 100)),
    ("disciplinary_failure", 2, (0, 1)),
    ("education", 0, (1, 4)),
    ("son", 21, (0, 20)),
    ("social_drinker", -1, (0, 1)),
    ("social_smoker", 2, (0, 1)),
    ("pet", 51, (0, 50)),
    ("weight", 29.9, (30.0, 250.0)),
    ("height", 230.5, (120.0, 230.0)),
    ("body_mass_index", 9.0, (10.0, 70.0)),
]


def rows(*changes: dict) -> pd.DataFrame:
    return pd.DataFrame([{**VALID_ROW, **c} for c in changes]).astype(RAW_DTYPES)


def test_every_column_has_a_rule_under_test():
    assert {c for c, _, _ in BAD_AND_BOUNDARY} == {c.name for c in RAW_COLUMNS}


@pytest.mark.parametrize("column,bad,boundaries", BAD_AND_BOUNDARY)
def test_each_rule_refuses_a_bad_value_and_accepts_its_boundaries(column, bad, boundaries):
    assert find_violations(rows(*({column: b} for b in boundaries))) == []
    violations = find_violations(rows({}, {column: bad}))
    assert len(violations) == 1
    violation = violations[0]
    assert (violation.row, violation.column, violation.value) == (1, column, bad)
    assert violation.rule.startswith(("in_range(", "isin("))
    assert column in violation.describe() and violation.rule in violation.describe()


def test_several_violations_in_several_rows_are_all_reported():
    violations = find_violations(rows({"age": 5, "seasons": 9}, {}, {"pet": 99}))
    assert sorted((v.row, v.column) for v in violations) == [(0, "age"), (0, "seasons"), (2, "pet")]


def test_a_missing_column_is_reported_as_required():
    violations = find_violations(rows({}).drop(columns=["son"]))
    assert [(v.column, v.rule) for v in violations] == [("son", REQUIRED)]


def test_a_null_is_refused():
    frame = rows({}).astype({"weight": "float64"})
    frame.loc[0, "weight"] = float("nan")
    assert [v.column for v in find_violations(frame)] == ["weight"]


def test_the_label_is_checked_only_by_the_training_schema():
    frame = rows({}).assign(absenteeism_time_in_hours=745)
    assert find_violations(frame, RAW_SCHEMA) == []
    [violation] = find_violations(frame, TRAINING_SCHEMA)
    assert (violation.column, violation.rule) == (LABEL.name, "in_range(0, 744)")


def test_parse_columns_names_each_unreadable_cell():
    cells = pd.DataFrame([{k: str(v) for k, v in VALID_ROW.items()} for _ in range(4)], index=[10, 11, 12, 13])
    cells = cells.astype(object)
    cells.loc[10, "age"] = None  # empty cell
    cells.loc[11, "son"] = "two"  # not a number
    cells.loc[12, "pet"] = "1.5"  # not an integer
    cells.loc[13, "weight"] = "inf"  # not finite
    typed, violations = cell_parsing.parse_columns(cells)
    assert sorted((v.row, v.column, v.rule, v.value) for v in violations) == [
        (10, "age", REQUIRED, None), (11, "son", "integer", "two"), (12, "pet", "integer", "1.5"),
        (13, "weight", "number", "inf")]
    assert dict(typed.dtypes.astype(str)) == RAW_DTYPES
    assert list(typed.index) == [10, 11, 12, 13]
