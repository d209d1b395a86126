"""What a raw record is, for any data set: its columns (type, nullability, rule), its CSV dialect,
and the pandera schema built from them, used by the batch job on whole files and by the server on
the records of each request, so that "valid" means the same thing everywhere.

A data set declares one RawTable (see absenteeism_schema.py, penguins/penguin_schema.py). A column
either parses to its type and passes its rule, or the row is refused with the column and the rule
named. A nullable column may be empty (or a missing-value token) in a file and absent in a request;
the feature module decides what missing means.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

# The kinds a raw column may have, and the dtype its values have in a frame or array:
# whole numbers and floats as int64/float64; bool as bool; a date (text "YYYY-MM-DD" in a file and
# in a request) as whole days since 1970-01-01, int64; text as str. A nullable number, bool or date
# is carried as float64 with NaN where it is missing (numpy's integers and bools have no NaN); a
# missing text is NaN in a frame and None in a request's arrays.
RAW_KINDS = ("int64", "float64", "bool", "date", "str")


@dataclass(frozen=True)
class RawColumn:
    name: str  # snake_case name: the RawRecord field and the DataFrame column
    csv_header: str  # the header in the data set's CSV file
    dtype: str  # one of RAW_KINDS
    check: pa.Check | None = None  # None: any value of the kind (free text)
    nullable: bool = False
    # A text category column only: the category a value outside the list is read as (it must be in
    # the list). None: such a value is refused, as a number out of range is.
    other: str | None = None

    def __post_init__(self) -> None:
        if self.dtype not in RAW_KINDS:
            raise ValueError(f"raw column {self.name}: kind {self.dtype!r} is not one of {list(RAW_KINDS)}")
        if self.other is not None and self.other not in self.text_categories:
            raise ValueError(f"raw column {self.name}: other={self.other!r} is not one of its categories "
                             f"{list(self.text_categories)}")

    def read_text(self, values: Any) -> Any:
        """Text values as the schema reads them: a value outside the categories as `other` when the
        column names one (missing values stay missing); else unchanged."""
        if self.other is None:
            return values
        known = set(self.text_categories)
        return [value if not isinstance(value, str) or value in known else self.other for value in values]

    @property
    def frame_dtype(self) -> str:
        """The dtype of this column's values in a typed frame or array."""
        if self.dtype == "str":
            return "str"
        if self.nullable and self.dtype != "float64":
            return "float64"
        return "int64" if self.dtype == "date" else self.dtype

    @property
    def text_categories(self) -> tuple[str, ...]:
        """A text column's allowed values, sorted (its isin rule); empty for free text."""
        if self.dtype != "str" or self.check is None or self.check.name != "isin":
            return ()
        return tuple(sorted((self.check.statistics or {})["allowed_values"]))

    def as_numbers(self, values: Any) -> np.ndarray:
        """The column's values as monitoring bins them: numbers, bools and dates as their values (as
        they are); a text category as its position in text_categories, and free text, a category
        outside the list or a missing text as NaN (float64)."""
        if self.dtype != "str":
            return np.asarray(values)
        codes = {category: float(k) for k, category in enumerate(self.text_categories)}
        return np.array([codes.get(value, np.nan) if isinstance(value, str) else np.nan for value in values],
                        dtype=np.float64)

    def from_numbers(self, numbers: np.ndarray) -> Any:
        """The column's frame values back from as_numbers' (free text: missing, it is not kept)."""
        if self.dtype != "str":
            return np.asarray(numbers).astype(self.frame_dtype)
        categories = self.text_categories
        return pd.array([categories[int(code)] if categories and not np.isnan(code) else None for code in numbers],
                        dtype="str")

    @property
    def numeric(self) -> bool:
        """Read from a file as a number (int64 or float64): the readers' fast path."""
        return self.dtype in ("int64", "float64")


@dataclass(frozen=True)
class CsvDialect:
    """How a data set's CSV files are written (RFC 4180 quoting with `"`)."""

    delimiter: str = ","
    line_end: str = "\n"  # what the writers use; the readers take LF, CRLF and CR alike
    missing_values: tuple[str, ...] = ("",)  # cells (stripped) that mean "missing"
    true_values: tuple[str, ...] = ("true", "True", "1")
    false_values: tuple[str, ...] = ("false", "False", "0")


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: caches are kept per table
class RawTable:
    """A data set's raw record: the request fields, the label columns (read by the job only, never
    part of a request; every one is required in a training row) and the CSV dialect."""

    columns: tuple[RawColumn, ...]
    labels: tuple[RawColumn, ...]
    dialect: CsvDialect = field(default_factory=CsvDialect)

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @cached_property
    def all_columns(self) -> tuple[RawColumn, ...]:
        return (*self.columns, *self.labels)

    @cached_property
    def label_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.labels)

    @cached_property
    def header_to_name(self) -> dict[str, str]:
        """Stripped CSV headers -> field names (readers strip a file's headers before mapping them)."""
        return {c.csv_header.strip(): c.name for c in self.all_columns}

    @cached_property
    def by_name(self) -> dict[str, RawColumn]:
        return {c.name: c for c in self.all_columns}

    @cached_property
    def all_numeric(self) -> bool:
        """Every column a required number: records fit one float64 matrix (the fast paths)."""
        return all(c.numeric and not c.nullable for c in self.all_columns)

    @cached_property
    def schema(self) -> pa.DataFrameSchema:
        return _schema(self.columns, "raw_record")

    @cached_property
    def training_schema(self) -> pa.DataFrameSchema:
        return _schema(self.all_columns, "training_record")

    @cached_property
    def rules(self) -> dict[str, str]:
        return {c.name: rule_text(c.check, dates=c.dtype == "date") for c in self.all_columns if c.check is not None}

    def find_violations(self, frame: pd.DataFrame, training: bool = False) -> list[Violation]:
        """Every rule the rows of `frame` break (empty when all rows are valid).

        `frame` holds typed columns (see RawColumn.frame_dtype); its index labels identify the rows
        in the result. `training`: the label columns too.
        """
        try:
            (self.training_schema if training else self.schema).validate(frame, lazy=True)
        except pa.errors.SchemaErrors as errors:
            return self._violations_from_failure_cases(errors.failure_cases)
        return []

    def _violations_from_failure_cases(self, cases: pd.DataFrame) -> list[Violation]:
        violations = []
        for case in cases.itertuples(index=False):
            if case.check == "column_in_dataframe":  # a whole column is absent
                violations.append(Violation(row=None, column=str(case.failure_case), rule=REQUIRED, value=None))
                continue
            column = str(case.column)
            value = case.failure_case
            kind = self.by_name[column].frame_dtype if column in self.by_name else None
            if kind == "int64" and isinstance(value, float) and value.is_integer():
                value = int(value)  # pandera gathers failure cases in one float column
            rule = self.rule_of_failure_case(column, str(case.check), case.check_number)
            violations.append(Violation(row=case.index, column=column, rule=rule, value=value))
        return violations

    def rule_of_failure_case(self, column: str, check: str, check_number: Any) -> str:
        """The rule a pandera failure case broke: a check number means a value check (named as in
        rule_text); otherwise pandera's own rule (dtype, not_nullable)."""
        return self.rules.get(column, check) if check_number is not None else check


def _schema(columns: tuple[RawColumn, ...], name: str) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {c.name: pa.Column(c.frame_dtype, [] if c.check is None else c.check, nullable=c.nullable) for c in columns},
        strict=False,
        ordered=False,
        name=name,
    )


REQUIRED = "required"  # the rule a missing field or empty cell breaks
DATE_RULE = "date(YYYY-MM-DD)"  # the rule a date that is no calendar date breaks
EPOCH = datetime.date(1970, 1, 1)


DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"  # the one spelling taken (fromisoformat alone takes 20081120, 2008-W47-4)


def parse_date(text: Any) -> int | None:
    """Days since 1970-01-01 of an ISO date "YYYY-MM-DD" (surrounding blanks ignored); None when
    `text` is not one."""
    if not isinstance(text, str) or re.match(DATE_PATTERN, text.strip()) is None:
        return None
    try:
        return (datetime.date.fromisoformat(text.strip()) - EPOCH).days
    except ValueError:
        return None


def days_to_date(days: int) -> str:
    return (EPOCH + datetime.timedelta(days=int(days))).isoformat()


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


def rule_text(check: pa.Check, dates: bool = False) -> str:
    """A check as people read it, e.g. in_range(16, 100) or isin([0, 1]); `dates`: a range of days
    since 1970-01-01 is shown as dates, in_range(2000-01-01, 2030-12-31)."""
    stats = check.statistics or {}
    if check.name == "in_range":
        low, high = stats["min_value"], stats["max_value"]
        if dates:
            return f"in_range({days_to_date(low)}, {days_to_date(high)})"
        return f"in_range({low}, {high})"
    if check.name == "isin":
        return f"isin({sorted(stats['allowed_values'])})"
    return str(check.name)
