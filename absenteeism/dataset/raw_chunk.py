"""What every reader of raw records shares: the header names mapped to RawRecord's snake_case
fields, the error for a file that cannot be read as raw records, and a chunk of rows (as numbers
when every cell is one, as text when asked).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from absenteeism import data_sets


class InputFormatError(ValueError):
    """A file cannot be read as raw records at all (unknown format, missing columns)."""


class RawChunk:
    """Rows of one file, two ways. `numbers`: the columns the job reads, as float64, when every one
    of their cells is a plain number (Arrow's CSV number parser, which trims blanks and then parses
    as `_cast_numbers` does), else None. `cells`: the cells as the input wrote them, as strings,
    made only when asked: a chunk with a bad cell needs them to word its violations."""

    def __init__(self, rows: int, numbers: dict[str, np.ndarray] | None, text: Callable[[], pd.DataFrame]):
        self.index: pd.Index = pd.RangeIndex(rows)
        self.numbers = numbers
        self._text = text
        self._cells: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.index)

    @property
    def cells(self) -> pd.DataFrame:
        """Strings (missing where empty; CSV cells unstripped), snake_case columns, index = `index`."""
        if self._cells is None:
            self._cells = self._text()
        self._cells.index = self.index
        return self._cells


def column_names(headers, path: Path, require_label: bool) -> list[str]:
    """The snake_case name of each header (stripped); InputFormatError when a column the job reads
    is missing or appears more than once (which of the two would hold the data?)."""
    table = data_sets.active().table
    names = [table.header_to_name.get(str(h).strip(), str(h).strip()) for h in headers]
    counts = Counter(names)
    repeated = [f"column {c.name!r} appears {counts[c.name]} times" for c in table.all_columns if counts[c.name] > 1]
    if repeated:
        raise InputFormatError(f"{path.name}: {', '.join(repeated)} in the header")
    needed = [*table.column_names, *(table.label_names if require_label else ())]
    absent = [name for name in needed if name not in counts]
    if absent:
        raise InputFormatError(f"{path.name}: missing columns {absent}")
    return names


def clean_cells(column: pd.Series) -> pd.Series:
    """Cells as stripped strings, missing where empty: column-wise, as a per-cell map is slow on
    millions of rows. (With pandas 3's string dtype "missing" is NaN; with object columns, None.)"""
    text = column.astype(str).str.strip()
    return text.where(column.notna() & (text != ""), None)
