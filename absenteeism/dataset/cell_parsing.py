"""Typed columns from the cells of raw records: from text (each bad cell a Violation, worded as
the input wrote it), or straight from the numbers of a clean chunk with the same result.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from absenteeism import data_sets
from absenteeism.dataset.raw_chunk import RawChunk
from absenteeism.raw_schema import DATE_RULE, REQUIRED, CsvDialect, RawColumn, Violation, parse_date


def parse_columns(cells: pd.DataFrame) -> tuple[pd.DataFrame, list[Violation]]:
    """Typed columns from string cells, and a violation for each empty or unparseable cell.

    Cells may carry surrounding whitespace (the chunked reader leaves it, trimming costs more than
    parsing): a cell is read as its stripped text, and a violation shows the stripped text.
    Cells that fail are left as 0 in the typed frame; the violations name their rows (index labels),
    which the caller must refuse. A cell that is empty or a missing-value token of the dialect is
    missing: NaN (or a missing text) in a nullable column, a "required" violation in another.
    """
    table = data_sets.active().table
    typed = {}
    violations: list[Violation] = []
    for column in table.all_columns:
        if column.name not in cells.columns:
            continue
        raw = cells[column.name]
        if not column.numeric or column.nullable or table.dialect.missing_values != ("",):
            typed[column.name] = _parse_cells(column, raw, table.dialect, violations)
            continue
        numbers = to_numbers(raw).to_numpy(dtype=np.float64, copy=True)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(numbers)
            if column.dtype == "int64":
                bad |= numbers != np.floor(numbers)
        positions = np.flatnonzero(bad)  # few; boolean-indexing every column costs more
        # (none in most chunks: an empty .iloc lookup alone costs ~0.7 ms a column)
        for label, value in zip(raw.index[positions], raw.iloc[positions]) if len(positions) else ():
            text = value.strip() if isinstance(value, str) else value
            if pd.isna(value) or text == "":  # an empty cell: None, or NaN in a pandas 3 string column
                violations.append(Violation(row=label, column=column.name, rule=REQUIRED, value=None))
                continue
            rule = "integer" if column.dtype == "int64" else "number"
            violations.append(Violation(row=label, column=column.name, rule=rule, value=text))
        if len(positions):
            numbers[positions] = 0.0
        if column.dtype == "int64":
            # Integers beyond int64 would wrap around; at its edge they still break every rule of the
            # schema (the violation shows the cell as written: validate takes it from the input).
            np.clip(numbers, _INT64_LOW, _INT64_HIGH, out=numbers)
        typed[column.name] = numbers.astype(column.dtype)
    return pd.DataFrame(typed, index=cells.index), violations


def parse_numbers(chunk: RawChunk) -> pd.DataFrame | None:
    """What `parse_columns(chunk.cells)` gives when it finds no violation, from the chunk's numbers
    alone; None when it would find one (or the chunk has no numbers): only the text can word it."""
    if chunk.numbers is None:
        return None
    typed = {}
    for column in data_sets.active().table.all_columns:
        if column.name not in chunk.numbers:
            continue
        numbers = chunk.numbers[column.name]
        values: np.ndarray
        if column.dtype == "int64":
            if len(numbers) and not (_INT64_LOW <= numbers.min() and numbers.max() <= _INT64_HIGH):  # also NaN
                return None
            values = numbers.astype(np.int64)
            if not np.array_equal(values, numbers):  # a fraction
                return None
        else:
            values = numbers + 0.0  # a copy; "-0" reads as 0.0, as in to_numbers
            if not np.isfinite(values).all():
                return None
        typed[column.name] = values
    # copy=False: the columns are this function's own arrays; a copy would stack them into 2-D blocks
    # (~5 ms a 32,768-row chunk) for no use: the same values either way.
    return pd.DataFrame(typed, index=chunk.index, copy=False)


_INT64_LOW, _INT64_HIGH = float(-2**63), float(2**63 - 1024)  # the float64 values an int64 holds exactly


# What pd.to_numeric reads as a finite number; anything else (also inf, nan) is refused anyway.
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def to_numbers(raw: pd.Series) -> pd.Series:
    """`pd.to_numeric(raw.str.strip(), errors="coerce")` as float64 (NaN where unparseable),
    in Arrow for string cells: to_numeric goes cell by cell in Python."""
    if raw.dtype == object or isinstance(raw.dtype, pd.StringDtype):
        try:
            text = pa.array(raw, type=pa.large_string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # cells that are not strings: the general path
            return pd.to_numeric(raw, errors="coerce").astype("float64")
        # + 0.0: "-0" reads as 0.0, as to_numeric (an integer) gives it.
        return pd.Series(_cast_numbers(text) + 0.0, index=raw.index, dtype="float64", copy=False)
    return pd.to_numeric(raw, errors="coerce").astype("float64")


CAST_SLICE = 1 << 15


def _cast_numbers(text: pa.Array) -> np.ndarray:
    """Arrow's cast to float64, which refuses a whole array for one bad (or padded) cell: then slice
    by slice, stripping the cells of a failing slice and nulling its non-numbers with a regex
    (costly, so only where needed)."""
    try:
        return pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        pass
    numbers = np.empty(len(text), dtype=np.float64)
    for start in range(0, len(text), CAST_SLICE):
        piece = text.slice(start, CAST_SLICE)
        try:
            cast = pc.cast(piece, pa.float64())
        except pa.ArrowInvalid:
            piece = pc.utf8_trim_whitespace(piece)
            try:
                cast = pc.cast(piece, pa.float64())
            except pa.ArrowInvalid:
                cast = pc.cast(pc.if_else(pc.match_substring_regex(piece, _NUMBER), piece, None), pa.float64())
        numbers[start:start + len(piece)] = cast.to_numpy(zero_copy_only=False)
    return numbers


def _parse_cells(column: RawColumn, raw: pd.Series, dialect: CsvDialect, violations: list[Violation]) -> pd.Series:
    """One column of any kind from its cells: missing cells (empty or a missing-value token), then
    the kind's parse, column-wise (a number through to_numbers, a bool by its tokens, a date by
    raw_schema.parse_date)."""
    text = raw.astype("str").str.strip().where(raw.notna(), "")
    missing = (text.isin(dialect.missing_values) | (text == "")).to_numpy()
    for label in raw.index[missing & (not column.nullable)]:
        violations.append(Violation(row=label, column=column.name, rule=REQUIRED, value=None))
    if column.dtype == "str":
        return pd.Series(column.read_text(text.where(~missing, None).tolist()), index=raw.index, dtype="str")
    parsed, rule = _parse_texts(column, text, dialect)
    values = np.array(parsed, dtype=np.float64)  # a copy of its own: pandas' arrays may be read-only
    bad = np.flatnonzero(np.isnan(values) & ~missing)
    for label, written in zip(raw.index[bad], text.iloc[bad]) if len(bad) else ():
        violations.append(Violation(row=label, column=column.name, rule=rule, value=written))
    values[np.isnan(values)] = 0.0
    if column.frame_dtype == "float64":
        values[missing] = np.nan if column.nullable else 0.0
        return pd.Series(values, index=raw.index)
    if column.dtype == "int64":
        np.clip(values, _INT64_LOW, _INT64_HIGH, out=values)
    return pd.Series(values.astype(column.frame_dtype), index=raw.index)


_TRUE, _FALSE = ("True", "true"), ("False", "false")  # also taken: how Parquet's bools read as text


def _parse_texts(column: RawColumn, text: pd.Series, dialect: CsvDialect) -> tuple[np.ndarray, str]:
    """Stripped cells as float64 values (NaN where a cell is missing or breaks the kind's rule),
    and that rule."""
    if column.dtype == "bool":
        values = np.full(len(text), np.nan)
        values[text.isin((*dialect.true_values, *_TRUE)).to_numpy()] = 1.0
        values[text.isin((*dialect.false_values, *_FALSE)).to_numpy()] = 0.0
        return values, f"bool({'/'.join((*dialect.true_values, *dialect.false_values))})"
    if column.dtype == "date":  # raw_schema.parse_date, the server's reading, once per distinct text
        days = {cell: parse_date(cell) for cell in text.unique()}
        return text.map(days).to_numpy(dtype=np.float64, na_value=np.nan), DATE_RULE
    values = to_numbers(text).to_numpy(dtype=np.float64, copy=True)
    with np.errstate(invalid="ignore"):
        values[~np.isfinite(values)] = np.nan
        if column.dtype == "int64":
            values[values != np.floor(values)] = np.nan
    return values, "integer" if column.dtype == "int64" else "number"
