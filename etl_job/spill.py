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

from absenteeism.dataset import atomic
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
        table = arrow_table(accepted)
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
        yield from read_frames(self.path)

    def close(self) -> None:
        try:
            self.finish()
        finally:
            self._lease.release()

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    # The index travels as a column and comes back as the index (pandas metadata): no reset_index copy.
    return pa.Table.from_pandas(frame.rename_axis(SOURCE_ROW), preserve_index=True)


def read_frames(path: Path) -> Iterator[pd.DataFrame]:
    """The frames of an Arrow IPC file written by `Spill` or `write_frames`, in order."""
    with pa.OSFile(str(path)) as source:  # plain reads: a memory map would count in RSS
        reader = ipc.open_file(source)
        for i in range(reader.num_record_batches):
            yield pa.Table.from_batches([reader.get_batch(i)]).to_pandas()


def write_frames(path: Path, frames: Iterator[pd.DataFrame]) -> int:
    """Frames (index kept) into one Arrow IPC file, atomically; the rows written (no file for none)."""
    rows, writer = 0, None
    with atomic.atomic_path(Path(path)) as tmp:
        try:
            for frame in frames:
                if len(frame) == 0:
                    continue
                table = arrow_table(frame)
                writer = writer or ipc.new_file(tmp, table.schema)
                writer.write_table(table)
                rows += len(table)
        finally:
            if writer is not None:
                writer.close()
    if rows == 0:
        Path(path).unlink()
    return rows
