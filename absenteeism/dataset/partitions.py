"""An input cut into parts that separate processes can read on their own: a CSV file at record
starts into byte ranges of about `part_bytes` (a file with CR line ends: one part), a Parquet file
into runs of whole row groups. The parts, in order, hold the input's rows in the order the chunked reader (reader.py) reads them, so
a row's source number is the rows of the parts before it plus its position in its part.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from absenteeism.dataset import csv_files, parquet_files, raw_chunk, raw_input, reader

DEFAULT_PART_BYTES = 64 << 20  # CSV bytes per part; a Parquet part takes row groups up to as many rows / 64


@dataclass(frozen=True)
class Part:
    index: int  # position among the input's parts
    path: Path
    start: int  # CSV: byte offset of its first line; Parquet: its first row group
    stop: int  # CSV: byte offset after its last line; Parquet: after its last row group


def plan(path: Path, part_bytes: int = DEFAULT_PART_BYTES, require_label: bool = True) -> list[Part]:
    """The parts of a file or of a folder's files (sorted, as the reader takes them). Reads the
    headers: InputFormatError for a file the reader would refuse (format, missing or repeated columns)."""
    if part_bytes < 1:
        raise ValueError(f"part_bytes must be >= 1, got {part_bytes}")
    parts: list[Part] = []
    for file in raw_input.input_files(Path(path)):
        file = file.resolve()
        with reader.input_errors(file):
            raw_input.header_names(file, require_label)
            ranges = _ranges(file, part_bytes)
        for start, stop in ranges:
            parts.append(Part(len(parts), file, start, stop))
    return parts


def _ranges(file: Path, part_bytes: int) -> list[tuple[int, int]]:
    if file.suffix.lower() == ".csv":
        starts = csv_files.csv_line_starts(file, part_bytes)
        return list(itertools.pairwise(starts))
    groups = parquet_files.parquet_row_groups(file)
    part_rows = max(1, part_bytes // 64)
    ranges, start, rows = [], 0, 0
    for i, count in enumerate(groups):
        if rows and rows + count > part_rows:
            ranges.append((start, i))
            start, rows = i, 0
        rows += count
    ranges.append((start, len(groups)))
    return ranges


def chunks(part: Part, chunk_rows: int, require_label: bool = True) -> Iterator[raw_chunk.RawChunk]:
    """The part's rows in chunks (as reader.Reader gives them), index = position in the part, 1-based."""
    next_row = 1
    pieces = raw_input.iter_part_chunks(part.path, part.start, part.stop, require_label, chunk_rows)
    for rows in reader.read_guarded(part.path, pieces):
        rows.index = pd.RangeIndex(next_row, next_row + len(rows))
        next_row += len(rows)
        yield rows
