"""The raw schema: each rule refuses a bad value with the column and rule named; parsing of cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from absenteeism.absenteeism_schema import LABEL, RAW_COLUMNS, RAW_DTYPES, TABLE
from absenteeism.dataset import cell_parsing
from absenteeism.online import converters
from absenteeism.online.fast import FastPredictor
from absenteeism.online.predictor import InvalidRecords
from absenteeism.raw_schema import REQUIRED, RawColumn
from testkit.contract_docs import contract_table, documented_range
from testkit.records import VALID_ROW


def rows(*changes: dict) -> pd.DataFrame:
    return pd.DataFrame([{**VALID_ROW, **c} for c in changes]).astype(RAW_DTYPES)


def _outside(column: RawColumn, bound: float, direction: float) -> float:
    """The nearest value beyond `bound` that the column's type can hold."""
    if column.dtype == "int64":
        return bound + direction
    return float(np.nextafter(bound, direction * np.inf))


# Both ends of every column's range as the contract documents it (docs/contract.md), a source
# written apart from the schema: (column, end, the bound itself, the nearest value beyond it).
CONTRACT = contract_table()
ENDS = [(column, end, bound, _outside(column, bound, direction))
        for column in RAW_COLUMNS
        for end, bound, direction in zip(("low", "high"), documented_range(CONTRACT[column.name]), (-1.0, 1.0))]


def test_every_end_of_every_column_is_under_test():
    assert sorted({(column.name, end) for column, end, _, _ in ENDS}) == sorted(
        (c.name, end) for c in RAW_COLUMNS for end in ("low", "high"))


@pytest.mark.parametrize("column,end,bound,beyond", ENDS, ids=[f"{c.name}-{e}" for c, e, _, _ in ENDS])
def test_each_rule_accepts_its_bound_and_refuses_the_value_beyond(config, column, end, bound, beyond):
    """The batch path (pandera) and the online path (the compiled checks of the fast predictor)
    both accept the documented bound and refuse the nearest value past it, naming column and rule."""
    value = int(bound) if column.dtype == "int64" else bound
    outside = int(beyond) if column.dtype == "int64" else beyond
    assert TABLE.find_violations(rows({column.name: value})) == []
    violations = TABLE.find_violations(rows({}, {column.name: outside}))
    assert [(v.row, v.column, v.value) for v in violations] == [(1, column.name, outside)]
    assert violations[0].rule.startswith(("in_range(", "isin(")) and column.name in violations[0].describe()
    online = FastPredictor(config)
    online.predict(converters.frame_to_records(rows({column.name: value})))
    with pytest.raises(InvalidRecords) as refused:
        online.predict(converters.frame_to_records(rows({column.name: outside})))
    assert [(v.column, v.rule) for v in refused.value.violations] == [(column.name, violations[0].rule)]


def test_several_violations_in_several_rows_are_all_reported():
    violations = TABLE.find_violations(rows({"age": 5, "seasons": 9}, {}, {"pet": 99}))
    assert sorted((v.row, v.column) for v in violations) == [(0, "age"), (0, "seasons"), (2, "pet")]


def test_a_missing_column_is_reported_as_required():
    violations = TABLE.find_violations(rows({}).drop(columns=["son"]))
    assert [(v.column, v.rule) for v in violations] == [("son", REQUIRED)]


def test_a_null_is_refused():
    frame = rows({}).astype({"weight": "float64"})
    frame.loc[0, "weight"] = float("nan")
    assert [v.column for v in TABLE.find_violations(frame)] == ["weight"]


def test_the_label_is_checked_only_by_the_training_schema():
    frame = rows({}).assign(absenteeism_time_in_hours=745)
    assert TABLE.find_violations(frame) == []
    [violation] = TABLE.find_violations(frame, training=True)
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
