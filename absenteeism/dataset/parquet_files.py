"""Raw records in Parquet: record batches, row groups (the parts of a file), and the columns as
numbers when their types read back exactly as their decimal text would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from absenteeism.dataset.raw_chunk import clean_cells


def parquet_row_groups(path: Path) -> list[int]:
    """The row count of each row group of a Parquet file."""
    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


def parquet_numbers(table: pa.Table) -> dict[str, np.ndarray] | None:
    """The columns as float64 when each is a whole-number or float64 column without nulls: the
    values the text path reads back from their decimal text (float32 is not: its text is the
    float32's shortest decimal, which is not its float64 value)."""
    exact = all((pa.types.is_integer(c.type) or pa.types.is_float64(c.type)) and c.null_count == 0
                for c in table.columns)
    return {name: table.column(name).to_numpy().astype(np.float64) for name in table.column_names} if exact else None


def parquet_text(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    return pd.DataFrame({name: clean_cells(frame[name]) for name in frame.columns}, index=frame.index)


def parquet_batches(path: Path, batch_rows: int, row_groups: range | None = None) -> Iterator:
    parquet = pq.ParquetFile(path)
    yield parquet.schema_arrow.names
    yield from parquet.iter_batches(batch_size=batch_rows, row_groups=row_groups)
