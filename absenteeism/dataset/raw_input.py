"""Reads raw records from a file or a folder of files (CSV as UCI ships it, or Parquet) in chunks
of rows, whole or one part of a file at a time (absenteeism.dataset.partitions).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa

from absenteeism import data_sets
from absenteeism.dataset.blocks import table_blocks
from absenteeism.dataset.csv_files import csv_batches, csv_chunks, csv_column_names, csv_data_start, csv_header
from absenteeism.dataset.parquet_files import parquet_batches, parquet_numbers, parquet_text
from absenteeism.dataset.raw_chunk import InputFormatError, RawChunk, clean_cells, column_names

SUFFIXES = (".csv", ".parquet")


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
    """One file's cells as stripped strings (missing where empty), snake_case columns, index
    0..n-1: the chunked read (`iter_chunks`) put together."""
    chunks = [chunk.cells for chunk in iter_chunks(path, require_label)]
    if not chunks:  # a header and no rows
        return pd.DataFrame()
    frame = (pd.concat(chunks) if len(chunks) > 1 else chunks[0]).reset_index(drop=True)
    return frame.apply(clean_cells)


def iter_chunks(path: Path, require_label: bool = False, chunk_rows: int = 1 << 18) -> Iterator[RawChunk]:
    """One file's rows in chunks of `chunk_rows` rows (CSV: lines; the last chunk shorter), streamed:
    memory stays bounded by the chunk size. Columns as `read_file` names them; CSV cells are left
    unstripped (`parse_columns` strips what it must). Chunks depend on the file's content alone."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        yield from _text_chunks(parquet_batches(path, chunk_rows), path, require_label, chunk_rows)
        return
    start = csv_data_start(path)
    if start is None:  # line ends the line cutter cannot see: Arrow's streaming reader, as text only
        yield from _text_chunks(csv_batches(path), path, require_label, chunk_rows)
        return
    yield from csv_chunks(path, start, path.stat().st_size, require_label, chunk_rows)


def iter_part_chunks(path: Path, start: int, stop: int, require_label: bool = False,
                     chunk_rows: int = 1 << 18) -> Iterator[RawChunk]:
    """The rows of one part of a file in chunks, as `iter_chunks` gives the whole file's: for a
    CSV file the records in bytes [start, stop) (`start` at a record start after the header, see
    `csv_line_starts`; a file with CR line ends is one part, [0, size), read whole), for Parquet the row groups [start, stop). The parts of a file put together
    give the file's rows, in order."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        if csv_data_start(path) is None:  # CR line ends: the file is one part (csv_line_starts)
            if (start, stop) != (0, path.stat().st_size):
                raise ValueError(f"{path.name}: a file with CR line ends is read whole, not bytes [{start}, {stop})")
            yield from iter_chunks(path, require_label, chunk_rows)
            return
        yield from csv_chunks(path, start, stop, require_label, chunk_rows)
    else:
        yield from _text_chunks(parquet_batches(path, chunk_rows, range(start, stop)), path, require_label, chunk_rows)


def header_names(path: Path, require_label: bool = False) -> list[str]:
    """The snake_case column names of a file's header; InputFormatError as `iter_chunks` raises it."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return csv_column_names(csv_header(path), path, require_label)
    return column_names(next(parquet_batches(path, 1)), path, require_label)


def _text_chunks(batches: Iterator, path: Path, require_label: bool, chunk_rows: int) -> Iterator[RawChunk]:
    """Chunks of cells as text only, from the header and the record batches of a file."""
    csv_file = path.suffix.lower() == ".csv"
    names = (csv_column_names if csv_file else column_names)(next(batches), path, require_label)
    kept = [c.name for c in data_sets.active().table.all_columns if c.name in names]
    blocks = table_blocks(chunk_rows)

    def chunks(tables: Iterable[pa.Table]) -> Iterator[RawChunk]:
        for table in tables:
            table = table.rename_columns(names).select(kept)
            if csv_file:
                frame = table.to_pandas()
                yield RawChunk(len(frame), None, _returning(frame))
            else:
                yield RawChunk(table.num_rows, parquet_numbers(table), functools.partial(parquet_text, table))

    for batch in batches:
        yield from chunks(blocks.feed(pa.Table.from_batches([batch])))
    yield from chunks(blocks.flush())


def _returning(frame: pd.DataFrame) -> Callable[[], pd.DataFrame]:
    """A RawChunk's `text` for cells already made: gives `frame` itself."""
    return lambda: frame
