"""Writes raw records in the data set's formats (the sample generator and the clients use it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from absenteeism.dataset import atomic
from absenteeism.dataset.csv_files import CSV_LINE_END, CSV_SEPARATOR
from absenteeism.dataset.raw_chunk import ALL_COLUMNS


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Writes `frame` (snake_case columns) in the data set's CSV format, atomically."""
    columns = [c for c in ALL_COLUMNS if c.name in frame.columns]
    out = frame[[c.name for c in columns]].copy()
    out.columns = [c.csv_header + (" " if c.name == "work_load_average_per_day" else "") for c in columns]
    with atomic.atomic_path(Path(path)) as tmp:
        out.to_csv(tmp, sep=CSV_SEPARATOR, index=False, lineterminator=CSV_LINE_END,
                   float_format=None)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic.atomic_path(Path(path)) as tmp:
        frame.to_parquet(tmp, index=False)
