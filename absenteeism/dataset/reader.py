"""The input reader: a data set's cells as strings, streamed in chunks over one file or a folder of files.

Rows are numbered 1.. across the files in sorted path order (the source row of rejects.csv and of
training_set.parquet); each file's first row and row count are kept so a row can be traced to its
file. A chunk never spans two files, and its bounds depend on the input alone (a row count), so
every run cuts the same input the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pyarrow as pa

from absenteeism import data_sets
from absenteeism.dataset import cell_parsing, raw_chunk, raw_input
from absenteeism.raw_schema import Violation

log = logging.getLogger(__name__)
T = TypeVar("T")

_HASH_CHUNK = 1 << 20
DEFAULT_CHUNK_ROWS = 1 << 16  # rows in flight per step: peak memory grows with it, fixed costs per chunk shrink (docs/performance-etl.md)


@dataclass(frozen=True)
class SourceFile:
    path: Path
    first_row: int  # source row number of its first data row
    rows: int


@dataclass(frozen=True)
class Chunk:
    rows: raw_chunk.RawChunk  # index = source row (1-based)
    file: Path

    @property
    def cells(self) -> pd.DataFrame:
        """Strings (missing where empty), snake_case columns, index = source row."""
        return self.rows.cells


@dataclass(frozen=True)
class Extracted:
    """What was read: the files, their row numbering and the digest of their bytes."""

    files: tuple[SourceFile, ...]
    input_sha256: str  # over the files' bytes in sorted path order
    cells: pd.DataFrame | None = None  # the whole input, from `extract` only (the job streams instead)

    @property
    def rows_read(self) -> int:
        return sum(f.rows for f in self.files)


class Reader:
    """Reads the input once, chunk by chunk; hashes its bytes meanwhile in a thread (hashlib
    releases the GIL on large buffers, so the digest is nearly free)."""

    def __init__(self, path: Path, chunk_rows: int = DEFAULT_CHUNK_ROWS, require_label: bool = True):
        self.paths = raw_input.input_files(Path(path))
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.chunk_rows = chunk_rows
        self.require_label = require_label  # the job trains on the label; a client only sends records
        self.files: list[SourceFile] = []
        self._sha256: str | None = None
        self._hash_error: raw_chunk.InputFormatError | None = None
        self._hasher = threading.Thread(target=self._hash, name="input-sha256", daemon=True)
        self._hasher.start()

    def chunks(self) -> Iterator[Chunk]:
        next_row = 1
        for file in self.paths:
            first_row = next_row
            for rows in _read(file, self.chunk_rows, self.require_label):
                rows.index = pd.RangeIndex(next_row, next_row + len(rows))
                next_row += len(rows)
                yield Chunk(rows, file)
            self.files.append(SourceFile(file, first_row, next_row - first_row))
            log.info("read %s: %d rows", file, next_row - first_row)

    def extracted(self) -> Extracted:
        """After `chunks` is exhausted: the provenance of what was read."""
        self._hasher.join()
        if self._hash_error is not None:
            raise self._hash_error
        if self._sha256 is None:
            raise RuntimeError("the sha256 of the input files was not computed (its thread failed)")
        return Extracted(tuple(self.files), self._sha256)

    def _hash(self) -> None:
        try:
            self._sha256 = input_sha256(self.paths)
        except raw_chunk.InputFormatError as error:
            self._hash_error = error


def input_sha256(paths: list[Path]) -> str:
    """sha256 over the files' bytes in the order given (provenance's input_sha256); InputFormatError
    when one cannot be read."""
    digest = hashlib.sha256()
    try:
        for file in paths:
            with open(file, "rb") as stream:
                while chunk := stream.read(_HASH_CHUNK):
                    digest.update(chunk)
    except OSError as error:
        raise raw_chunk.InputFormatError(f"{error.filename}: cannot be read: {error.strerror}") from None
    return digest.hexdigest()


def extract(path: Path, require_label: bool = True) -> Extracted:
    """The whole input in one frame (for tools that compare against it; the job streams instead).
    Raises InputFormatError when a file is missing, unreadable or lacks columns."""
    reader = Reader(path, require_label=require_label)
    frames = [chunk.cells for chunk in reader.chunks()]
    extracted = reader.extracted()
    cells = pd.concat(frames) if len(frames) > 1 else (frames[0] if frames else pd.DataFrame())
    return Extracted(extracted.files, extracted.input_sha256, cells)


@dataclass(frozen=True)
class Typed:
    """A whole input as typed columns, index = source row, numbered as the job numbers it."""

    frame: pd.DataFrame  # cells that do not parse are left as 0: their rows are in `unparsed`
    unparsed: list[Violation]  # empty or non-numeric cells, by source row


def read_typed(path: Path, require_label: bool = False) -> Typed:
    frames, unparsed = [], []
    for chunk in Reader(path, require_label=require_label).chunks():
        typed = cell_parsing.parse_numbers(chunk.rows)
        typed, violations = (typed, []) if typed is not None else cell_parsing.parse_columns(chunk.cells)
        frames.append(typed)
        unparsed.extend(violations)
    frame = pd.concat(frames) if frames else pd.DataFrame(columns=list(data_sets.active().table.column_names))
    return Typed(frame, unparsed)


def read_valid(path: Path) -> pd.DataFrame:
    """The rows of an input that the raw schema accepts, typed, index = source row: what a client
    would send."""
    typed = read_typed(path)
    bad = {v.row for v in typed.unparsed} | {v.row for v in data_sets.active().table.find_violations(typed.frame)}
    return typed.frame.drop(index=sorted(bad))


def _read(file: Path, chunk_rows: int, require_label: bool) -> Iterator[raw_chunk.RawChunk]:
    yield from read_guarded(file, raw_input.iter_chunks(file, require_label=require_label, chunk_rows=chunk_rows))


def read_guarded(file: Path, chunks: Iterator[T]) -> Iterator[T]:
    """`chunks` (read from `file`), with any parser error as an InputFormatError naming the file."""
    with input_errors(file):
        yield from chunks


@contextlib.contextmanager
def input_errors(file: Path) -> Iterator[None]:
    """Parser errors (ragged lines, binary junk, a corrupt Parquet footer: ValueErrors or Arrow's)
    raised in the block, as an InputFormatError naming the file."""
    try:
        yield
    except raw_chunk.InputFormatError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, pa.ArrowException) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        first_line = first_line.encode("ascii", "backslashreplace").decode()  # binary junk stays printable
        raise raw_chunk.InputFormatError(f"{file.name}: cannot be read as the data set's format: {first_line}") from None
