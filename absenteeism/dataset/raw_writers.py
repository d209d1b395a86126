"""Writes raw records in the data set's formats (the sample generator and the clients use it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from absenteeism import data_sets
from absenteeism.dataset import atomic


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Writes `frame` (snake_case columns) in the active data set's CSV format, atomically."""
    table = data_sets.active().table
    columns = [c for c in table.all_columns if c.name in frame.columns]
    out = frame[[c.name for c in columns]].copy()
    out.columns = [c.csv_header for c in columns]
    with atomic.atomic_path(Path(path)) as tmp:
        out.to_csv(tmp, sep=table.dialect.delimiter, index=False, lineterminator=table.dialect.line_end,
                   float_format=None)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic.atomic_path(Path(path)) as tmp:
        frame.to_parquet(tmp, index=False)
