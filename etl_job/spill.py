"""A temporary file of the accepted typed rows: pass 1 (parse + validate) appends each chunk, later
passes read them back chunk by chunk, typed, without parsing the input again. Each chunk is an
Arrow IPC stream of its own (whole numbers narrowed to the type its values need, so chunks may
differ in schema), behind its length in bytes. The
file lives in a folder of the system temp folder, removed on close, also after a failure or a
SIGTERM (the CLI turns it into an exception); a spill left by a killed job (SIGKILL, a crash of the
machine) is removed by the next job's spill (leases.py tells it from a spill in use). Arrow IPC,
not Parquet: no encoding to do for a file written once and read back once (docs/performance-etl.md
has the figures); none of it stays in memory."""

from __future__ import annotations

import json
import logging
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Self

import numpy as np
import pandas as pd
import pyarrow as pa
from pyarrow import ipc

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
        self._file: BinaryIO | None = None
        self.rows = 0

    def append(self, accepted: pd.DataFrame) -> None:
        """accepted: typed rows, index = source row."""
        if len(accepted) == 0:
            return
        if self._file is None:
            self._file = open(self.path, "wb")  # noqa: SIM115 - open across appends; finish() and close() close it
        _write_chunk(self._file, accepted)
        self.rows += len(accepted)

    def finish(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """The frame's columns, whole numbers in the narrowest integer type that holds them (most raw
    values fit a byte: a file a fifth the size to write and read back), its index as `source_row`,
    and the dtypes to restore in the schema's metadata. Numeric, boolean and text columns."""
    columns = {name: (pa.array(frame[name]) if frame[name].dtype == "str" else narrowest_int(frame[name].to_numpy()))
               for name in frame.columns}
    columns[SOURCE_ROW] = narrowest_int(frame.index.to_numpy())
    dtypes = {name: str(frame[name].dtype) for name in frame.columns}
    return pa.table(columns).replace_schema_metadata({_DTYPES: json.dumps(dtypes)})


def frame_of(table: pa.Table) -> pd.DataFrame:
    """The frame `arrow_table` was made from (dtypes as they were, index = source row)."""
    dtypes = json.loads(table.schema.metadata[_DTYPES.encode()])
    index = pd.Index(table.column(SOURCE_ROW).to_numpy().astype(np.int64), name=SOURCE_ROW)
    return pd.DataFrame({name: (pd.array(table.column(name).to_pylist(), dtype="str") if dtype == "str"
                                else table.column(name).to_numpy().astype(dtype, copy=False))
                         for name, dtype in dtypes.items()}, index=index)


_DTYPES = "dtypes"


def narrowest_int(values: np.ndarray) -> np.ndarray:
    """Whole numbers in the narrowest of int8, int16, int32 that holds them all; anything else (and
    integers that need 64 bits) as it is, not copied."""
    if values.dtype.kind in "iu" and len(values):
        low, high = values.min(), values.max()
        for dtype in (np.int8, np.int16, np.int32):
            if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
                return values.astype(dtype)
    return values


def read_frames(path: Path) -> Iterator[pd.DataFrame]:
    """The frames of a file written by `Spill` or `write_frames`, in order."""
    with open(path, "rb") as source:  # plain reads: a memory map would count in RSS
        while header := source.read(_LENGTH.size):
            (length,) = _LENGTH.unpack(header)
            yield frame_of(ipc.open_stream(source.read(length)).read_all())


def write_frames(path: Path, frames: Iterator[pd.DataFrame]) -> int:
    """Frames (index kept) into one file, atomically; the rows written (no file for none)."""
    rows = 0
    with atomic.atomic_path(Path(path)) as tmp, open(tmp, "wb") as sink:
        for frame in frames:
            if len(frame):
                _write_chunk(sink, frame)
                rows += len(frame)
    if rows == 0:
        Path(path).unlink()
    return rows


_LENGTH = struct.Struct("<Q")


def _write_chunk(sink: BinaryIO, frame: pd.DataFrame) -> None:
    table = arrow_table(frame)
    buffer = pa.BufferOutputStream()
    with ipc.new_stream(buffer, table.schema) as writer:
        writer.write_table(table)
    data = buffer.getvalue()
    sink.write(_LENGTH.pack(data.size))
    sink.write(data)
