"""The data set's CSV format as UCI ships it: semicolon-separated, CRLF line ends, original header
names (one with a trailing space). Lines are cut by counting line ends, then parsed by Arrow:
as float64 first (no strings), as text only when that fails or is asked for.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from absenteeism.dataset.raw_chunk import ALL_COLUMNS, InputFormatError, RawChunk, column_names

CSV_SEPARATOR = ";"


CSV_LINE_END = "\r\n"


_CSV_BLOCK_BYTES = 1 << 20  # Arrow reads ahead several blocks: small ones keep that memory small


def csv_line_starts(path: Path, part_bytes: int) -> list[int]:
    """Byte offsets that cut a CSV file's data lines into parts of about `part_bytes`: the first is
    where the line after the header starts, the last is the file's size; each other one is where a
    line starts (lines hold no line breaks in this format, as the reader requires)."""
    size = Path(path).stat().st_size
    with open(path, "rb") as stream:
        stream.readline()  # the header
        starts = [stream.tell()]
        while starts[-1] + part_bytes < size:
            stream.seek(starts[-1] + part_bytes)
            stream.readline()  # to the end of the line the cut fell in
            if stream.tell() >= size:
                break
            starts.append(stream.tell())
    return [*starts, size]  # [s, s] for a header alone: one part with no rows


def csv_chunks(path: Path, start: int, stop: int, require_label: bool, chunk_rows: int) -> Iterator[RawChunk]:
    """The lines in bytes [start, stop) of a CSV file, `chunk_rows` lines a chunk, each parsed as
    numbers first (one pass, no strings) and as text only when that fails or is asked for."""
    header = csv_header(path)
    names = column_names(header, path, require_label)
    kept = [c.name for c in ALL_COLUMNS if c.name in names]
    number_types = {h: (pa.float64() if n in kept else pa.large_string()) for h, n in zip(header, names)}
    with open(path, "rb") as stream:
        stream.seek(start)
        for piece in line_pieces(stream, stop - start, chunk_rows):
            chunk = _csv_chunk(piece, header, names, kept, number_types)
            if len(chunk):  # a piece of blank lines holds no row
                yield chunk


def _csv_chunk(piece: bytes, header: list[str], names: list[str], kept: list[str],
               number_types: dict[str, pa.DataType]) -> RawChunk:
    def text() -> pd.DataFrame:
        return _read_csv_piece(piece, header, _csv_convert_options(header)).rename_columns(names).select(kept).to_pandas()

    try:
        table = _read_csv_piece(piece, header, pa_csv.ConvertOptions(column_types=number_types, null_values=[""]))
    except pa.ArrowInvalid:  # a cell that is no number (or a ragged line: the text read says so)
        cells = text()
        return RawChunk(len(cells), None, lambda: cells)
    table = table.rename_columns(names).select(kept)
    return RawChunk(table.num_rows, {name: table.column(name).to_numpy() for name in kept}, text)


def _read_csv_piece(piece: bytes, header: list[str], convert: pa_csv.ConvertOptions) -> pa.Table:
    return pa_csv.read_csv(pa.BufferReader(piece),
                           read_options=pa_csv.ReadOptions(column_names=header, block_size=_CSV_BLOCK_BYTES),
                           parse_options=pa_csv.ParseOptions(delimiter=CSV_SEPARATOR), convert_options=convert)


def csv_data_start(path: Path) -> int | None:
    """The byte offset of the line after the header; None when the header line holds a lone CR
    (a file with CR line ends: the line cutter looks for LF)."""
    with open(path, "rb") as stream:
        line = stream.readline()
        if b"\r" in line.rstrip(b"\n").rstrip(b"\r"):
            return None
        return stream.tell()


_READ_BYTES = 1 << 20


def line_pieces(stream: BinaryIO, size: int, lines: int) -> Iterator[bytes]:
    """The next `size` bytes of `stream` in pieces of `lines` lines each (the last: what is left)."""
    buffer, position, guess = b"", 0, 64  # guess: bytes a line, for where to look for the cut
    while True:
        cut = _after_lines(buffer, position, lines, guess)
        if cut is not None:
            yield buffer[position:cut]
            guess = max(1, -(-(cut - position) // lines))
            position = cut
            continue
        data = stream.read(min(size, max(_READ_BYTES, lines * guess)))
        size -= len(data)
        if not data:
            if position < len(buffer):
                yield buffer[position:]
            return
        buffer, position = buffer[position:] + data, 0


def _after_lines(data: bytes, start: int, lines: int, guess: int) -> int | None:
    """The offset just after the `lines`-th line end at or after `start`; None when `data` holds fewer.
    Counting up to a guessed offset, then stepping line by line, costs far less than finding every line end."""
    end = min(len(data), start + lines * guess)
    found = data.count(b"\n", start, end)
    position = end
    if found >= lines:
        for _ in range(found - lines + 1):
            position = data.rfind(b"\n", start, position)
        return position + 1
    for _ in range(lines - found):
        position = data.find(b"\n", position)
        if position < 0:
            return None
        position += 1
    return position


def csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as stream:
        header = next(csv.reader(stream, delimiter=CSV_SEPARATOR), None)
    if not header:
        raise InputFormatError(f"{path.name} is empty: it has no header line")
    return header


def csv_batches(path: Path) -> Iterator:
    """The header, then the record batches of a CSV file, every cell a string (None when empty)."""
    header = csv_header(path)
    yield header
    reader = pa_csv.open_csv(
        path, read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
        parse_options=pa_csv.ParseOptions(delimiter=CSV_SEPARATOR), convert_options=_csv_convert_options(header))
    yield from reader


def _csv_convert_options(header: list[str]) -> pa_csv.ConvertOptions:
    return pa_csv.ConvertOptions(column_types={h: pa.large_string() for h in header},
                                 strings_can_be_null=True, null_values=[""])
