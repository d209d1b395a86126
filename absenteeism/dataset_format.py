"""The data set's file formats: read raw records from CSV (as UCI ships it) or Parquet, one file or a
folder of files, and write the CSV format back (the sample generator uses it).

UCI's CSV: semicolon-separated, CRLF line ends, original header names (one with a trailing
space). Headers are stripped and mapped to the snake_case names of RawRecord.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from absenteeism import atomic
from absenteeism.raw_schema import LABEL, RAW_COLUMNS, REQUIRED, Violation

CSV_SEPARATOR = ";"
CSV_LINE_END = "\r\n"
_ALL_COLUMNS = (*RAW_COLUMNS, LABEL)
HEADER_TO_NAME = {c.csv_header: c.name for c in _ALL_COLUMNS}
SUFFIXES = (".csv", ".parquet")


class InputFormatError(ValueError):
    """A file cannot be read as raw records at all (unknown format, missing columns)."""


@dataclass(frozen=True)
class RawFile:
    path: Path
    frame: pd.DataFrame  # cells as strings (None for empty), snake_case columns


def input_files(path: Path) -> list[Path]:
    """`path` itself, or the .csv/.parquet files of a folder in sorted order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
        if not files:
            raise InputFormatError(f"{path} holds no .csv or .parquet file")
        return files
    if not path.is_file():
        raise InputFormatError(f"input {path} does not exist")
    if path.suffix.lower() not in SUFFIXES:
        raise InputFormatError(f"{path}: unknown format (expected .csv or .parquet)")
    return [path]


def read_file(path: Path, require_label: bool = False) -> pd.DataFrame:
    """One file's cells as strings (None where empty), with snake_case column names."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, sep=CSV_SEPARATOR, dtype=str, keep_default_na=False, na_values=[""],
                            skipinitialspace=True)
    else:
        frame = pq.read_table(path).to_pandas()
    frame = frame.rename(columns=lambda header: HEADER_TO_NAME.get(str(header).strip(), str(header).strip()))
    needed = [c.name for c in RAW_COLUMNS] + ([LABEL.name] if require_label else [])
    absent = [name for name in needed if name not in frame.columns]
    if absent:
        raise InputFormatError(f"{path.name}: missing columns {absent}")
    kept = [c.name for c in _ALL_COLUMNS if c.name in frame.columns]
    return frame[kept].astype(object).where(frame[kept].notna(), None).map(
        lambda v: None if v is None else str(v).strip() or None)


def iter_files(path: Path, require_label: bool = False) -> Iterator[RawFile]:
    for file in input_files(path):
        yield RawFile(file, read_file(file, require_label))


def parse_columns(cells: pd.DataFrame) -> tuple[pd.DataFrame, list[Violation]]:
    """Typed columns from string cells, and a violation for each empty or unparseable cell.

    Cells that fail are left as 0 in the typed frame; the violations name their rows (index labels),
    which the caller must refuse.
    """
    typed = {}
    violations: list[Violation] = []
    for column in _ALL_COLUMNS:
        if column.name not in cells.columns:
            continue
        raw = cells[column.name]
        numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = numbers.isna() | ~np.isfinite(numbers)
        if column.dtype == "int64":
            bad |= numbers != np.floor(numbers)
        for label, value in raw[bad].items():
            rule = REQUIRED if value is None else ("integer" if column.dtype == "int64" else "number")
            violations.append(Violation(row=label, column=column.name, rule=rule, value=value))
        typed[column.name] = numbers.where(~bad, 0.0).astype(column.dtype)
    return pd.DataFrame(typed, index=cells.index), violations


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Writes `frame` (snake_case columns) in the data set's CSV format, atomically."""
    columns = [c for c in _ALL_COLUMNS if c.name in frame.columns]
    out = frame[[c.name for c in columns]].copy()
    out.columns = [c.csv_header + (" " if c.name == "work_load_average_per_day" else "") for c in columns]
    with atomic.atomic_path(Path(path)) as tmp:
        out.to_csv(tmp, sep=CSV_SEPARATOR, index=False, lineterminator=CSV_LINE_END,
                   float_format=None)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic.atomic_path(Path(path)) as tmp:
        frame.to_parquet(tmp, index=False)
