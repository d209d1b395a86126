"""Pandera checks compiled into numpy predicates: the online fast path checks features with them,
and the batch job pre-screens chunks with the raw schema's.

A compiled check is built from the pandera check's own `statistics` (in_range, isin) or, for a
vectorised custom check (element_wise=False), calls the check's own function on the array. Anything
else raises UnsupportedCheck, so a check is never silently skipped: the caller runs pandera's own
validator instead. A property test shows the compiled predicates accept and reject exactly what
pandera does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from hamilton.data_quality import base as dq_base

from absenteeism.raw_schema import rule_text
from absenteeism.violation_table import ViolationTable


class UnsupportedCheck(ValueError):
    """A pandera check this module cannot compile faithfully."""


Predicate = Callable[[np.ndarray], np.ndarray]  # values -> bool mask of the values that pass


@dataclass(frozen=True)
class Bounds:
    """Closed [low, high] bounds, when they are a compiled check's whole meaning."""

    low: float
    high: float


def range_bounds(check: pa.Check, dtype: np.dtype) -> Bounds | None:
    """The check as closed bounds if it is exactly that (in_range, or isin over contiguous integers)."""
    stats = check.statistics or {}
    if check.name == "in_range" and stats.get("include_min", True) and stats.get("include_max", True):
        return Bounds(float(stats["min_value"]), float(stats["max_value"]))
    if check.name == "isin" and dtype.kind == "i":
        allowed = sorted(stats["allowed_values"])
        if all(isinstance(v, int) for v in allowed) and allowed == list(range(allowed[0], allowed[-1] + 1)):
            return Bounds(float(allowed[0]), float(allowed[-1]))
    return None


def compile_check(check: pa.Check, dtype: np.dtype) -> Predicate:
    stats = check.statistics or {}
    bounds = range_bounds(check, dtype)
    if bounds is not None:  # two comparisons, also for a contiguous isin: cheaper than a membership test
        return _range_predicate(bounds.low, bounds.high, True, True)
    if check.name == "in_range":
        return _range_predicate(stats["min_value"], stats["max_value"], stats.get("include_min", True),
                                stats.get("include_max", True))
    if check.name == "isin":
        allowed = np.array(sorted(stats["allowed_values"]))
        # One broadcast comparison: np.isin's set-up dominates on the tiny arrays of a request.
        return lambda values: (np.asarray(values)[..., None] == allowed).any(axis=-1)
    if not check.element_wise and not stats and check._check_fn is not None:
        function = check._check_fn
        return lambda values: np.broadcast_to(np.asarray(function(values), dtype=bool), np.shape(values))
    raise UnsupportedCheck(f"cannot compile pandera check {check!r}")


def _range_predicate(low, high, include_low: bool, include_high: bool) -> Predicate:
    above = np.greater_equal if include_low else np.greater
    below = np.less_equal if include_high else np.less
    return lambda values: above(values, low) & below(values, high)


@dataclass(frozen=True)
class CompiledSchema:
    """A pandera SeriesSchema/Column as numpy predicates: dtype, nullability, then each check."""

    dtype: np.dtype
    nullable: bool
    checks: tuple[tuple[str, Predicate], ...]  # (rule text, predicate)
    sources: tuple[pa.Check, ...] = ()  # the pandera checks they were compiled from

    @classmethod
    def from_pandera(cls, schema: pa.SeriesSchema | pa.Column, dates: bool = False) -> CompiledSchema:
        """`dates`: the values are days since 1970-01-01, and rules name dates (raw_schema.rule_text)."""
        if schema.coerce or schema.unique:
            raise UnsupportedCheck("coerce/unique schemas are not compiled")
        text = str(schema.dtype).startswith("str")  # pandera's str, string[pyarrow], ...: object arrays
        dtype = np.dtype(object) if text else np.dtype(str(schema.dtype))
        return cls(dtype, schema.nullable, tuple((rule_text(c, dates), compile_check(c, dtype)) for c in schema.checks),
                   tuple(schema.checks))

    def bounds(self) -> Bounds | None:
        """Closed bounds that mean exactly this schema's checks (with no nulls allowed), if any do."""
        if self.nullable or len(self.sources) != 1:
            return None
        check = self.sources[0]
        if check._check_fn is np.isfinite and not check.element_wise:
            largest = float(np.finfo(np.float64).max)  # finite <=> within +-max (NaN fails either way)
            return Bounds(-largest, largest)
        return range_bounds(check, self.dtype)

    def passes(self, values: np.ndarray) -> bool:
        """failures(values) == [], decided with as little work as possible (the common case)."""
        if values.dtype != self.dtype:
            return False
        if (values.dtype.kind == "f" and np.isnan(values).any()) or values.dtype == object:
            return not self.failures(values)
        return all(predicate(values).all() for _, predicate in self.checks)

    def failures(self, values: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """(rule, positions of failing values) for each rule broken; empty when all pass.

        Like pandera: a null fails "not_nullable" and is not checked further.
        """
        values = np.asarray(values)
        if values.dtype != self.dtype:
            return [(f"dtype('{self.dtype}')", np.arange(values.size))]
        broken = []
        present = None  # None: no nulls possible (integers) or none found
        if values.dtype.kind == "f" or values.dtype == object:
            nulls = np.isnan(values) if values.dtype.kind == "f" else pd.isna(values)  # text: None or NaN
            if nulls.any():
                present = ~nulls
                if not self.nullable:
                    broken.append(("not_nullable", np.flatnonzero(nulls)))
        for rule, predicate in self.checks:
            passing = predicate(values)
            if present is not None:
                passing = passing | ~present  # like pandera, nulls are not checked
            if not passing.all():
                broken.append((rule, np.flatnonzero(~passing)))
        return broken


_PASSED = dq_base.ValidationResult(passes=True, message="passed")


class FastValidator:
    """A Hamilton data validator backed by a compiled schema: Hamilton's own check_output node
    still decides what a failure means (importance "fail" raises)."""

    def __init__(self, original: dq_base.DataValidator):
        self.original = original
        self.compiled = CompiledSchema.from_pandera(original.schema)

    def name(self) -> str:
        return f"fast_{self.original.name()}"

    def passes(self, values: np.ndarray) -> bool:
        return self.compiled.passes(values)

    def bounds(self) -> Bounds | None:
        return self.compiled.bounds()

    def validate(self, values: np.ndarray) -> dq_base.ValidationResult:
        if self.compiled.passes(values):
            return _PASSED
        broken = self.compiled.failures(values)
        message = "; ".join(f"{rule} failed at positions {positions[:10].tolist()}" for rule, positions in broken)
        return dq_base.ValidationResult(passes=False, message=message,
                                        diagnostics={"failures": [rule for rule, _ in broken]})


def find_column_violations(compiled: Sequence[tuple[str, CompiledSchema]], arrays: dict[str, np.ndarray]
                           ) -> ViolationTable:
    """The violations of typed raw columns, as raw_schema.find_violations reports them (rows are
    positions)."""
    return ViolationTable.concat(ViolationTable.broken(name, rule, positions, arrays[name][positions])
                                 for name, schema in compiled for rule, positions in schema.failures(arrays[name]))
