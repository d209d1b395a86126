"""The broken rules of a batch of raw records, kept as arrays: one entry per (record, field, rule).

A batch of 10,000 empty records breaks 200,000 rules. As Violation objects and messages that costs
seconds of CPU and hundreds of MB; as arrays, milliseconds and a few MB. Violation objects are made
only for the entries read: the first few for an error's details, all of them for small batches.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator, Sequence
from functools import cache

import numpy as np
import pandas as pd
import pandera.pandas as pa

from absenteeism import data_sets
from absenteeism.raw_schema import REQUIRED, RawTable, Violation, days_to_date


class _Columns:
    """The request fields of a raw table as the table's entries number them."""

    def __init__(self, table: RawTable):
        self.names = table.column_names
        self.index = {name: j for j, name in enumerate(self.names)}
        self.is_int = tuple(c.frame_dtype == "int64" for c in table.columns)
        self.is_date = tuple(c.dtype == "date" for c in table.columns)
        self.rank = np.argsort(np.argsort(self.names))  # a column's place in name order: entries sort by (record, name)


@cache
def _columns_of(table: RawTable) -> _Columns:  # a RawTable hashes by identity
    return _Columns(table)


def _columns() -> _Columns:
    return _columns_of(data_sets.active().table)

# Rules are stored as small codes into this list (a few dozen texts at most: the raw schema's rules,
# "required", pandera's own), so that an entry takes 15 bytes.
_RULE_TEXTS: list[str] = []
_RULE_CODES: dict[str, int] = {}


_RULE_LOCK = threading.Lock()


def _rule_code(rule: str) -> int:
    code = _RULE_CODES.get(rule)
    if code is None:
        with _RULE_LOCK:  # requests are served by several threads
            code = _RULE_CODES.get(rule)
            if code is None:
                code = len(_RULE_TEXTS)
                _RULE_TEXTS.append(rule)
                _RULE_CODES[rule] = code
    return code


_REQUIRED = _rule_code(REQUIRED)


class ViolationTable:
    """Entries in (record, field name) order once `merged`; rows are record positions."""

    # In __init__'s parameter order, not sorted: concat, merged (and tests) pass the fields positionally.
    __slots__ = ("rows", "columns", "rules", "values")  # noqa: RUF023

    def __init__(self, rows: Sequence[int] | np.ndarray, columns: Sequence[int] | np.ndarray,
                 rules: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray):
        self.rows = np.asarray(rows, dtype=np.int32)  # record positions (a batch is far below 2**31)
        self.columns = np.asarray(columns, dtype=np.int8)  # positions in the active table's request fields
        self.rules = np.asarray(rules, dtype=np.int16)  # codes of _RULE_TEXTS
        # The value read (NaN for a missing field): float64, or object where a value is text.
        values = np.asarray(values)
        self.values = values if values.dtype == object else values.astype(np.float64)

    # -- building
    @classmethod
    def missing(cls, unset: np.ndarray, positions: np.ndarray | None = None) -> ViolationTable:
        """A "required" entry per True cell of a (records x request fields) mask; `positions`: the
        record each mask row stands for (default: the row's own index)."""
        rows, columns = np.nonzero(unset)
        if positions is not None:
            rows = np.asarray(positions)[rows]
        return cls(rows, columns, np.full(rows.size, _REQUIRED), np.full(rows.size, np.nan))

    @classmethod
    def broken(cls, column: str, rule: str, rows: np.ndarray, values: np.ndarray) -> ViolationTable:
        """Entries for the `rows` where `column` breaks `rule`, with the values found there."""
        return cls(rows, np.full(len(rows), _columns().index[column]), np.full(len(rows), _rule_code(rule)), values)

    @classmethod
    def concat(cls, tables: Iterable[ViolationTable]) -> ViolationTable:
        # Fields read table by table, once: a generator of tables is used up after one pass.
        fields_of_each = [tuple(getattr(table, name) for name in cls.__slots__) for table in tables]
        if not fields_of_each:
            return cls([], [], [], [])
        return cls(*(np.concatenate(field) for field in zip(*fields_of_each)))

    @classmethod
    def of(cls, violations: Iterable[Violation]) -> ViolationTable:
        found = list(violations)
        values = [np.nan if v.value is None else v.value for v in found]
        return cls([v.row for v in found], [_columns().index[v.column] for v in found],
                   [_rule_code(v.rule) for v in found],
                   np.array(values, dtype=object) if any(isinstance(v, str) for v in values) else values)

    @staticmethod
    def merged(missing: ViolationTable, broken: ViolationTable) -> ViolationTable:
        """Missing fields and broken rules, the 0 an unset field reads as not judged again, sorted."""
        width = len(_columns().names)
        def cells(table: ViolationTable) -> np.ndarray:
            return table.rows.astype(np.int64) * width + table.columns

        unset = np.isin(cells(broken), cells(missing))
        kept = ViolationTable(*(getattr(broken, name)[~unset] for name in ViolationTable.__slots__))
        table = ViolationTable.concat([missing, kept])
        order = np.lexsort((_columns().rank[table.columns], table.rows))  # stable: a cell's rules keep their order
        return ViolationTable(*(getattr(table, name)[order] for name in ViolationTable.__slots__))

    # -- reading
    def __len__(self) -> int:
        return int(self.rows.size)

    def record_count(self) -> int:
        return int(np.unique(self.rows).size)

    def counts_by_column(self) -> dict[str, int]:
        names = _columns().names
        counts = np.bincount(self.columns, minlength=len(names))
        return {names[j]: int(n) for j, n in enumerate(counts) if n}

    def first(self, count: int) -> list[Violation]:
        return [self._violation(k) for k in range(min(count, len(self)))]

    def __iter__(self) -> Iterator[Violation]:
        return (self._violation(k) for k in range(len(self)))

    def _violation(self, k: int) -> Violation:
        columns = _columns()
        j, rule = int(self.columns[k]), _RULE_TEXTS[self.rules[k]]
        value = None if rule == REQUIRED else self.values[k]
        value = value.item() if isinstance(value, np.generic) else value
        if isinstance(value, float) and columns.is_int[j] and not math.isnan(value) and value.is_integer():
            value = int(value)  # int32 values are exact in float64
        if columns.is_date[j] and isinstance(value, (int, float)) and not math.isnan(value):
            value = days_to_date(int(value))  # as the request wrote it
        return Violation(row=int(self.rows[k]), column=columns.names[j], rule=rule, value=value)


def _empty() -> ViolationTable:
    table = ViolationTable([], [], [], [])
    for name in ViolationTable.__slots__:
        getattr(table, name).flags.writeable = False  # shared by every call that breaks no rule
    return table


NO_VIOLATIONS = _empty()


def find(frame: pd.DataFrame) -> ViolationTable:
    """raw_schema.find_violations for the typed raw columns of a request (index = positions), as a
    table: pandera's failure cases are converted group by group, not row by row."""
    table = data_sets.active().table
    try:
        table.schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return ViolationTable([], [], [], [])
    tables = []
    for (column, check, check_number), group in cases.groupby(["column", "check", "check_number"], dropna=False,
                                                              sort=False):
        rule = table.rule_of_failure_case(str(column), str(check), None if pd.isna(check_number) else check_number)
        found = group["failure_case"]
        values = (found.to_numpy(dtype=object) if table.by_name[str(column)].dtype == "str"
                  else pd.to_numeric(found, errors="coerce").to_numpy(dtype=np.float64))
        tables.append(ViolationTable.broken(str(column), rule, group["index"].to_numpy(dtype=np.int64), values))
    return ViolationTable.concat(tables)
