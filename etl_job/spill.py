"""A temporary Parquet file of the accepted typed rows: pass 1 (parse + validate) appends each
chunk, later passes read them back chunk by chunk, typed, without parsing the input again. The
file lives in the system temp folder and is removed on close, also after a failure."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SOURCE_ROW = "source_row"


class Spill:
    def __init__(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="etl-spill-"))
        self.path = self._folder / "accepted.parquet"
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def append(self, accepted: pd.DataFrame) -> None:
        """accepted: typed rows, index = source row."""
        if len(accepted) == 0:
            return
        table = pa.Table.from_pandas(accepted.rename_axis(SOURCE_ROW).reset_index(), preserve_index=False)
        if self._writer is None:
            # Uncompressed: written once, read twice, deleted; dictionary encoding still shrinks it.
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="none")
        self._writer.write_table(table, row_group_size=max(1, len(table)))
        self.rows += len(table)

    def finish(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The appended chunks, in order, index = source row."""
        if self.rows == 0:
            return
        parquet = pq.ParquetFile(self.path)
        for group in range(parquet.num_row_groups):
            yield parquet.read_row_group(group).to_pandas().set_index(SOURCE_ROW)

    def close(self) -> None:
        self.finish()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
