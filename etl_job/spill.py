"""A temporary Arrow IPC file of the accepted typed rows: pass 1 (parse + validate) appends each
chunk, later passes read them back chunk by chunk, typed, without parsing the input again. The
file lives in a folder of the system temp folder, removed on close, also after a failure or a
SIGTERM (the CLI turns it into an exception); a spill left by a killed job (SIGKILL, a crash of the
machine) is removed by the next job's spill (leases.py tells it from a spill in use). Arrow IPC,
not Parquet: no encoding to do for a file written once and read back once (docs/performance-etl.md
has the figures); none of it stays in memory."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc

from etl_job import leases

log = logging.getLogger(__name__)

SOURCE_ROW = "source_row"
PREFIX = "etl-spill-"


class Spill:
    def __init__(self) -> None:
        parent = Path(tempfile.gettempdir())
        for folder in leases.sweep(parent, PREFIX):
            log.info("removed %s, the spill of a job that was killed", folder)
        self._lease = leases.Lease(parent, PREFIX)
        self.path = self._lease.folder / "accepted.arrow"
        self._writer: ipc.RecordBatchFileWriter | None = None
        self.rows = 0

    def append(self, accepted: pd.DataFrame) -> None:
        """accepted: typed rows, index = source row."""
        if len(accepted) == 0:
            return
        # The index travels as a column and comes back as the index (pandas metadata): no reset_index copy.
        table = pa.Table.from_pandas(accepted.rename_axis(SOURCE_ROW), preserve_index=True)
        if self._writer is None:
            self._writer = ipc.new_file(self.path, table.schema)
        self._writer.write_table(table)
        self.rows += len(table)

    def finish(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The appended chunks, in order, index = source row."""
        if self.rows == 0:
            return
        with pa.OSFile(str(self.path)) as source:  # plain reads: a memory map would count in RSS
            reader = ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield pa.Table.from_batches([reader.get_batch(i)]).to_pandas()

    def close(self) -> None:
        try:
            self.finish()
        finally:
            self._lease.release()

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
