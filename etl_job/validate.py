"""Validate: every raw row either parses and passes the training schema, or is rejected with each
broken rule named. Nothing is dropped silently: accepted + rejected = rows read. Works chunk by
chunk; a Tally adds the chunks up for the threshold and the report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd

from absenteeism import data_sets
from absenteeism.compiled_checks import CompiledSchema
from absenteeism.dataset import cell_parsing, raw_chunk
from absenteeism.raw_schema import RawTable, Violation
from etl_job.job_errors import BadData

REJECT_COLUMNS = ("source_row", "source_file", "column", "rule", "value", "description")
EXAMPLES_PER_RULE = 3  # distinct offending values kept per (column, rule), for the reports: bounded memory


@dataclass(frozen=True)
class Validation:
    """One chunk (or a whole input) validated."""

    accepted: pd.DataFrame  # typed rows with the label, index = source row
    violations: tuple[Violation, ...]  # row = source row; sorted by row, then column order
    rows_read: int

    @property
    def rejected_rows(self) -> int:
        return self.rows_read - len(self.accepted)


def validate_chunk(chunk: raw_chunk.RawChunk, training: bool = True) -> Validation:
    """A chunk of the input: read from its numbers when they parse and pass every rule (most
    chunks), else from its text, which words each violation as the input wrote it. `training`:
    the rules of a training row (the label too); else a request's (offline scoring: any label
    column of the input is left out, as a server never sees one)."""
    if not training:
        chunk = without_labels(chunk)
    typed = cell_parsing.parse_numbers(chunk)
    if typed is not None and _all_pass(typed, training):
        return Validation(typed, (), len(typed))
    return validate(chunk.cells, training)


def without_labels(chunk: raw_chunk.RawChunk) -> raw_chunk.RawChunk:
    """The chunk without the data set's label columns (when the input has them)."""
    labels = data_sets.active().table.label_names
    numbers = None if chunk.numbers is None else {k: v for k, v in chunk.numbers.items() if k not in labels}
    cells = lambda: chunk.cells.drop(columns=[name for name in labels if name in chunk.cells.columns])
    stripped = raw_chunk.RawChunk(len(chunk), numbers, cells)
    stripped.index = chunk.index
    return stripped


def validate(cells: pd.DataFrame, training: bool = True) -> Validation:
    """cells: strings as extract reads them, index = source row."""
    typed, parse_failures = cell_parsing.parse_columns(cells)
    # A cell that did not parse is 0 in `typed`; its range check would only repeat the same fault.
    unparsed = {(v.row, v.column) for v in parse_failures}
    broken = [] if _all_pass(typed, training) else _as_written([
        v for v in data_sets.active().table.find_violations(typed, training=training)
        if (v.row, v.column) not in unparsed], cells)
    order = _column_order(data_sets.active().table)
    violations = sorted([*parse_failures, *broken], key=lambda v: (v.row, order.get(v.column, 99)))
    if any(v.row is None for v in violations):  # a whole column is absent (read_file normally stops this)
        absent = sorted({v.column for v in violations if v.row is None})
        raise BadData(f"input lacks required columns {absent}")
    accepted = typed
    if violations:
        rejected = np.fromiter({v.row for v in violations}, dtype=np.int64)
        accepted = typed[~typed.index.isin(rejected)]
    return Validation(accepted, tuple(violations), len(typed))


def _as_written(violations: list[Violation], cells: pd.DataFrame) -> list[Violation]:
    """The violations with each value as the input wrote it (stripped), not as parsed: `1e20` stays
    `1e20`, an integer too large for int64 is not shown as the int64 it was clipped to."""
    if not violations:
        return violations
    positions = cells.index.get_indexer([v.row for v in violations])
    columns = {name: cells[name].to_numpy() for name in {v.column for v in violations}}
    written = []
    for violation, position in zip(violations, positions):
        text = columns[violation.column][position]
        value = text.strip() if isinstance(text, str) else violation.value
        written.append(Violation(violation.row, violation.column, violation.rule, value))
    return written


@dataclass
class Tally:
    """Counts over every chunk: rows, rejected rows, violations by column and rule, rejects by file,
    and the first few distinct values (as written; None: missing) that broke each column's rule, in
    row order: the same on every engine, since parts are merged in input order."""

    rows_read: int = 0
    rows_accepted: int = 0
    violations: int = 0
    by_column_rule: Counter = field(default_factory=Counter)
    rejected_by_file: Counter = field(default_factory=Counter)
    examples: dict[tuple[str, str], list[str | None]] = field(default_factory=dict)

    def add(self, validation: Validation, file_name: str) -> None:
        self.rows_read += validation.rows_read
        self.rows_accepted += len(validation.accepted)
        self.violations += len(validation.violations)
        self.by_column_rule.update((v.column, v.rule) for v in validation.violations)
        for v in validation.violations:
            self._example((v.column, v.rule), None if v.value is None else str(v.value))
        if validation.rejected_rows:
            self.rejected_by_file[file_name] += validation.rejected_rows

    def merge(self, other: Tally) -> None:
        """Adds the counts of another part of the input."""
        self.rows_read += other.rows_read
        self.rows_accepted += other.rows_accepted
        self.violations += other.violations
        self.by_column_rule.update(other.by_column_rule)
        self.rejected_by_file.update(other.rejected_by_file)
        for key, values in other.examples.items():
            for value in values:
                self._example(key, value)

    def _example(self, key: tuple[str, str], value: str | None) -> None:
        kept = self.examples.setdefault(key, [])
        if len(kept) < EXAMPLES_PER_RULE and value not in kept:
            kept.append(value)

    @property
    def rejected_rows(self) -> int:
        return self.rows_read - self.rows_accepted

    @property
    def rejected_fraction(self) -> float:
        return self.rejected_rows / self.rows_read if self.rows_read else 0.0


@cache
def _column_order(table: RawTable) -> dict[str, int]:
    return {name: i for i, name in enumerate(c.name for c in table.all_columns)}


@cache
def _compiled(table: RawTable, training: bool = True) -> dict[str, CompiledSchema]:
    schema = table.training_schema if training else table.schema
    return {name: CompiledSchema.from_pandera(column) for name, column in schema.columns.items()}


def _all_pass(typed: pd.DataFrame, training: bool = True) -> bool:
    """True when pandera would find nothing: the schema's checks compiled to numpy predicates (the
    server's fast path runs the same ones; tests/absenteeism/test_fast_path.py shows they accept and reject
    exactly what pandera does). Pandera itself validates any chunk where one fails, so it alone
    words every violation; a clean chunk skips its per-column overhead."""
    return all(name in typed.columns and _passes(compiled, typed[name].to_numpy())
               for name, compiled in _compiled(data_sets.active().table, training).items())


def _passes(compiled: CompiledSchema, values: np.ndarray) -> bool:
    # A rule that is a closed range holds for a whole column when its smallest and largest values
    # are within it (two reductions instead of two comparisons and a mask; NaN fails either way).
    bounds = compiled.bounds()
    if bounds is None or values.dtype != compiled.dtype or not len(values):
        return compiled.passes(values)
    return bool(bounds.low <= values.min() and values.max() <= bounds.high)


def check_threshold(tally: Tally, max_fraction: float) -> None:
    """Raises BadData when more rows were rejected than the threshold allows, or none is left."""
    if tally.rows_read == 0:
        raise BadData("the input holds no data rows")
    if tally.rejected_fraction > max_fraction:
        raise BadData(
            f"{tally.rejected_rows} of {tally.rows_read} rows ({tally.rejected_fraction:.2%}) broke "
            f"the raw schema, more than the allowed {max_fraction:.2%} (--max-reject-fraction)")


def rejects_frame(violations: tuple[Violation, ...], file_name: str) -> pd.DataFrame:
    """One line per violation (all from the one file `file_name`)."""
    rows = np.array([v.row for v in violations], dtype=np.int64)
    return pd.DataFrame({
        "source_row": rows,
        "source_file": np.full(len(rows), file_name, dtype=object),
        "column": [v.column for v in violations],
        "rule": [v.rule for v in violations],
        "value": [None if v.value is None else str(v.value) for v in violations],
        "description": [v.describe() for v in violations],
    }, columns=list(REJECT_COLUMNS))
