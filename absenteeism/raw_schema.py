"""The raw record schema: one pandera schema, used by the batch job on whole files and by the
server on the records of each request, so that "valid" means the same thing everywhere.

Ranges follow the data set's documentation (UCI "Absenteeism at work", Martiniano et al. 2012)
with generous physical bounds where it gives none. A column either parses to its type and passes
its rule, or the row is refused with the column and the rule named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.pandas as pa


@dataclass(frozen=True)
class RawColumn:
    name: str  # snake_case name: the RawRecord field and the DataFrame column
    csv_header: str  # the header in the data set's CSV file
    dtype: str  # "int64" or "float64"
    check: pa.Check


def _ints(low: int, high: int) -> list[int]:
    return list(range(low, high + 1))


RAW_COLUMNS: tuple[RawColumn, ...] = (
    # The contract (raw_record.proto) promises 1..10000; the real data set has ids 1..36.
    RawColumn("id", "ID", "int64", pa.Check.in_range(1, 10_000)),
    # 0 is "no reason recorded" in the data set; 1..21 are ICD chapters, 22..28 other codes.
    RawColumn("reason_for_absence", "Reason for absence", "int64", pa.Check.isin(_ints(0, 28))),
    RawColumn("month_of_absence", "Month of absence", "int64", pa.Check.isin(_ints(1, 12))),
    RawColumn("day_of_the_week", "Day of the week", "int64", pa.Check.isin(_ints(2, 6))),
    RawColumn("seasons", "Seasons", "int64", pa.Check.isin(_ints(1, 4))),
    RawColumn("transportation_expense", "Transportation expense", "int64", pa.Check.in_range(0, 1000)),
    RawColumn("distance_from_residence_to_work", "Distance from Residence to Work", "int64", pa.Check.in_range(0, 200)),
    RawColumn("service_time", "Service time", "int64", pa.Check.in_range(0, 60)),
    RawColumn("age", "Age", "int64", pa.Check.in_range(16, 100)),
    # The original header has a trailing space; extract strips headers before mapping.
    RawColumn("work_load_average_per_day", "Work load Average/day", "float64", pa.Check.in_range(0.0, 1000.0)),
    RawColumn("hit_target", "Hit target", "int64", pa.Check.in_range(0, 100)),
    RawColumn("disciplinary_failure", "Disciplinary failure", "int64", pa.Check.isin([0, 1])),
    RawColumn("education", "Education", "int64", pa.Check.isin(_ints(1, 4))),
    RawColumn("son", "Son", "int64", pa.Check.in_range(0, 20)),
    RawColumn("social_drinker", "Social drinker", "int64", pa.Check.isin([0, 1])),
    RawColumn("social_smoker", "Social smoker", "int64", pa.Check.isin([0, 1])),
    RawColumn("pet", "Pet", "int64", pa.Check.in_range(0, 50)),
    RawColumn("weight", "Weight", "float64", pa.Check.in_range(30.0, 250.0)),
    RawColumn("height", "Height", "float64", pa.Check.in_range(120.0, 230.0)),
    RawColumn("body_mass_index", "Body mass index", "float64", pa.Check.in_range(10.0, 70.0)),
)

# The label is read by the batch job only; it is never part of a request.
LABEL = RawColumn("absenteeism_time_in_hours", "Absenteeism time in hours", "int64",
                  pa.Check.in_range(0, 744))  # at most the hours in a month

RAW_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in RAW_COLUMNS)
RAW_DTYPES: dict[str, str] = {c.name: c.dtype for c in RAW_COLUMNS}


def _schema(columns: tuple[RawColumn, ...], name: str) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {c.name: pa.Column(c.dtype, c.check, nullable=False) for c in columns},
        strict=False,
        ordered=False,
        name=name,
    )


RAW_SCHEMA = _schema(RAW_COLUMNS, "raw_record")
TRAINING_SCHEMA = _schema((*RAW_COLUMNS, LABEL), "training_record")


REQUIRED = "required"  # the rule a missing field or empty cell breaks


@dataclass(frozen=True)
class Violation:
    """One broken rule: which row (a frame index label), which column, which rule, what value."""

    row: Any
    column: str
    rule: str
    value: Any

    def describe(self) -> str:
        if self.rule == REQUIRED:
            return f"{self.column}: required field is missing"
        return f"{self.column}: value {self.value!r} breaks rule {self.rule}"


def rule_text(check: pa.Check) -> str:
    """A check as people read it, e.g. in_range(16, 100) or isin([0, 1])."""
    stats = check.statistics or {}
    if check.name == "in_range":
        return f"in_range({stats['min_value']}, {stats['max_value']})"
    if check.name == "isin":
        return f"isin({sorted(stats['allowed_values'])})"
    return str(check.name)


_RULES = {c.name: rule_text(c.check) for c in (*RAW_COLUMNS, LABEL)}
_DTYPES = {c.name: c.dtype for c in (*RAW_COLUMNS, LABEL)}


def find_violations(frame: pd.DataFrame, schema: pa.DataFrameSchema = RAW_SCHEMA) -> list[Violation]:
    """Every rule the rows of `frame` break (empty when all rows are valid).

    `frame` holds typed columns (see RAW_DTYPES); its index labels identify the rows in the result.
    """
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        return _violations_from_failure_cases(errors.failure_cases)
    return []


def _violations_from_failure_cases(cases: pd.DataFrame) -> list[Violation]:
    violations = []
    for case in cases.itertuples(index=False):
        if case.check == "column_in_dataframe":  # a whole column is absent
            violations.append(Violation(row=None, column=str(case.failure_case), rule=REQUIRED, value=None))
            continue
        column = str(case.column)
        value = case.failure_case
        if _DTYPES.get(column) == "int64" and isinstance(value, float) and value.is_integer():
            value = int(value)  # pandera gathers failure cases in one float column
        rule = rule_of_failure_case(column, str(case.check), case.check_number)
        violations.append(Violation(row=case.index, column=column, rule=rule, value=value))
    return violations


def rule_of_failure_case(column: str, check: str, check_number: Any) -> str:
    """The rule a pandera failure case broke: a check number means a value check (named as in
    rule_text); otherwise pandera's own rule (dtype, not_nullable)."""
    return _RULES.get(column, check) if check_number is not None else check
