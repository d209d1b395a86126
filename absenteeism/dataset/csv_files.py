"""The active data set's CSV files, in its dialect (raw_schema.CsvDialect: the delimiter, which
`--delimiter` may override; line ends LF, CRLF or CR). Records are cut by counting line ends, then
parsed by Arrow: the numbers as float64 first (no strings), as text only when that fails, when a
column is no number, or when asked for.

A line end inside a quoted field (RFC 4180: a field that starts with `"`, a quote inside written
`""`) is part of the value, not a record end, as Arrow reads it: the cutters (`line_pieces` for
chunks, `csv_line_starts` for a cluster's parts) never cut there, so where the cuts fall never
changes what is read. A record is one source row however many lines it spans.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NoReturn

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from absenteeism import data_sets
from absenteeism.dataset.raw_chunk import InputFormatError, RawChunk, column_names


def delimiter() -> str:
    """The active data set's CSV delimiter."""
    return data_sets.active().table.dialect.delimiter


_CSV_BLOCK_BYTES = 1 << 20  # Arrow reads ahead several blocks: small ones keep that memory small


def csv_line_starts(path: Path, part_bytes: int) -> list[int]:
    """Byte offsets that cut a CSV file's records into parts of about `part_bytes`: the first is
    where the record after the header starts, the last is the file's size; each other one is just
    after the first record end (a line feed outside quotes) at or after the previous one plus
    `part_bytes`. Finding record ends reads the file once (a search for `"` where it has none).
    A file with CR line ends (see `csv_data_start`) is one part, [0, size): Arrow's streaming reader
    reads it whole, as `raw_input.iter_chunks` does."""
    size = Path(path).stat().st_size
    data_start = csv_data_start(path)
    if data_start is None:  # CR line ends: one part, read whole as the local engine reads it
        return [0, size]
    starts = [data_start]
    with open(path, "rb") as stream:
        while starts[-1] + part_bytes < size:
            cut = _record_end_at_or_after(stream, starts[-1], starts[-1] + part_bytes)
            if cut >= size:
                break
            starts.append(cut)
    return [*starts, size]  # [s, s] for a header alone: one part with no rows


def _record_end_at_or_after(stream: BinaryIO, start: int, target: int) -> int:
    """The offset just after the first record-ending line feed at or after `target`, `start` being
    a record start (the file's size when there is none)."""
    stream.seek(target)
    stream.readline()  # to the end of the line the target fell in
    cut = stream.tell()
    stream.seek(start)
    left = cut - start
    while left > 0:  # the usual case: no quote before the cut, so every line feed ends a record
        block = stream.read(min(left, _READ_BYTES))
        if not block or b'"' in block:
            break
        left -= len(block)
    else:
        return cut
    return _walk_to_record_end(stream, start, target)


def _walk_to_record_end(stream: BinaryIO, start: int, target: int) -> int:
    """`_record_end_at_or_after`, reading every record from `start` (the file holds quotes)."""
    stream.seek(start)
    buffer, base = b"", start  # base: the file offset of buffer[0], always a record start
    while True:
        data = stream.read(_READ_BYTES)
        buffer += data
        last_end = 0  # in buffer: just after the last record end found
        for token in _tokens().finditer(buffer):
            if token.group() == b"\n":
                if base + token.start() >= target:
                    return base + token.end()
                last_end = token.end()
            elif token.end() == len(buffer) and data:  # a quoted field that may go on
                if len(buffer) - token.start() > _MAX_QUOTED_BYTES:
                    _refuse_open_quote(stream, base + token.start())
                break
        if not data:
            return base + len(buffer)
        buffer, base = buffer[last_end:], base + last_end


def csv_chunks(path: Path, start: int, stop: int, require_label: bool, chunk_rows: int) -> Iterator[RawChunk]:
    """The lines in bytes [start, stop) of a CSV file, `chunk_rows` lines a chunk, each parsed as
    numbers first (one pass, no strings) and as text only when that fails or is asked for."""
    header = csv_header(path)
    names = csv_column_names(header, path, require_label)
    table = data_sets.active().table
    kept = [c.name for c in table.all_columns if c.name in names]
    # Numbers first only when every kept column is a required number: a text, bool or date column,
    # or a missing-value token, needs the text.
    numeric = all(table.by_name[name].numeric and not table.by_name[name].nullable for name in kept)
    number_types = {h: (pa.float64() if n in kept else pa.large_string()) for h, n in zip(header, names)}
    with open(path, "rb") as stream:
        stream.seek(start)
        for piece in line_pieces(stream, stop - start, chunk_rows):
            chunk = _csv_chunk(piece, header, names, kept, number_types if numeric else None)
            if len(chunk):  # a piece of blank lines holds no row
                yield chunk


def _csv_chunk(piece: bytes, header: list[str], names: list[str], kept: list[str],
               number_types: dict[str, pa.DataType] | None) -> RawChunk:
    def text() -> pd.DataFrame:
        return _read_csv_piece(piece, header, _csv_convert_options(header)).rename_columns(names).select(kept).to_pandas()

    if number_types is None:
        cells = text()
        return RawChunk(len(cells), None, lambda: cells)
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
                           parse_options=_parse_options(quoted=b'"' in piece), convert_options=convert)


def _parse_options(quoted: bool = True) -> pa_csv.ParseOptions:
    """The data set's dialect. Where a quoted field may hold a line end, Arrow must look for quotes
    to cut its blocks (else it cuts a block at any line end, and so inside such a field)."""
    return pa_csv.ParseOptions(delimiter=delimiter(), newlines_in_values=quoted)


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
    """The next `size` bytes of `stream` in pieces of `lines` records each (the last: what is left).
    A record is a line, or several when a quoted field holds line ends."""
    buffer, position, guess = b"", 0, 64  # guess: bytes a line, for where to look for the cut
    while True:
        cut = _after_records(buffer, position, lines, guess)
        if cut is not None:
            yield buffer[position:cut]
            guess = max(1, -(-(cut - position) // lines))
            position = cut
            continue
        quote = _open_quote(buffer, position)
        if quote is not None and len(buffer) - quote > _MAX_QUOTED_BYTES:
            _refuse_open_quote(stream, stream.tell() - len(buffer) + quote)
        data = stream.read(min(size, max(_READ_BYTES, lines * guess)))
        size -= len(data)
        if not data:
            if position < len(buffer):
                yield buffer[position:]
            return
        buffer, position = buffer[position:] + data, 0


def _tokens() -> re.Pattern[bytes]:
    """A quoted field (a `"` at a field's start, up to its closing `"`; `""` inside is a quote), or a
    line feed outside one: as Arrow's parser reads them. A quote inside an unquoted field is a
    character. A field still open at the end of the data matches to the end."""
    return _tokens_for(delimiter())


@functools.cache
def _tokens_for(separator: str) -> re.Pattern[bytes]:
    field_start = re.escape(separator.encode())
    return re.compile(rb'(?<![^' + field_start + rb'\r\n])"(?:[^"]|"")*+"?|\n')

_MAX_QUOTED_BYTES = 1 << 24  # a quoted field longer than this is taken for a quote never closed


def _after_records(data: bytes, start: int, lines: int, guess: int) -> int | None:
    """The offset just after the `lines`-th record end at or after `start` (a record start); None
    when `data` holds fewer, or when a quoted field may go on past its end."""
    cut = _after_lines(data, start, lines, guess)
    if data.find(b'"', start, len(data) if cut is None else cut) < 0:
        return cut  # no quote: every line feed ends a record
    found = 0
    for token in _tokens().finditer(data, start):
        if token.group() == b"\n":
            found += 1
            if found == lines:
                return token.end()
        elif token.end() == len(data):  # open, or closed by the last byte (which may be half of `""`)
            return None
    return None


def _open_quote(data: bytes, start: int) -> int | None:
    """Where a quoted field that runs to the end of `data` starts (from `start`, a record start)."""
    if data.find(b'"', start) < 0:
        return None
    for token in _tokens().finditer(data, start):
        if token.group() != b"\n" and token.end() == len(data):
            return token.start()
    return None


def _refuse_open_quote(stream: BinaryIO, offset: int) -> NoReturn:
    """InputFormatError for a quoted field (at byte `offset`) longer than any field the reader takes:
    a quote that is never closed."""
    name = Path(getattr(stream, "name", "the input")).name
    raise InputFormatError(f"{name}: the quoted field that starts at byte {offset} is not closed "
                           f"within {_MAX_QUOTED_BYTES:,} bytes (a quote never closed?)")


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
        header = next(csv.reader(stream, delimiter=delimiter()), None)
    if not header:
        raise InputFormatError(f"{path.name} is empty: it has no header line")
    return header


def csv_column_names(header: list[str], path: Path, require_label: bool) -> list[str]:
    """`raw_chunk.column_names` of a CSV file's header; when its columns are missing because the
    file is split at another delimiter, the message says which one the header appears to use."""
    try:
        return column_names(header, path, require_label)
    except InputFormatError as error:
        hint = _delimiter_hint(path)
        if hint is None:
            raise
        raise InputFormatError(f"{error}: {hint}") from None


_OTHER_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", ":": "colon"}


def _delimiter_hint(path: Path) -> str | None:
    """Which delimiter the header line appears to use, when another than ours finds more of the
    data set's column names in it; None when ours finds the most."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as stream:
        line = stream.readline(1 << 16)
    line = line.split("\n")[0].split("\r")[0]

    headers = data_sets.active().table.header_to_name.keys()
    separator = delimiter()

    def found(candidate: str) -> int:
        cells = next(csv.reader([line], delimiter=candidate), [])
        return len({cell.strip() for cell in cells} & headers)

    ours = found(separator)
    best = max((d for d in _OTHER_DELIMITERS if d != separator), key=found)
    if found(best) <= ours:
        return None
    return (f"the header looks {_OTHER_DELIMITERS[best]}-separated ({found(best)} of the {len(headers)} columns "
            f"are found when it is split at {best!r}, {ours} at {separator!r}); this data set's CSV uses "
            f"{separator!r}")


def csv_batches(path: Path) -> Iterator:
    """The header, then the record batches of a CSV file, every cell a string (None when empty)."""
    header = csv_header(path)
    yield header
    reader = pa_csv.open_csv(
        path, read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
        parse_options=_parse_options(), convert_options=_csv_convert_options(header))
    yield from reader


def _csv_convert_options(header: list[str]) -> pa_csv.ConvertOptions:
    return pa_csv.ConvertOptions(column_types={h: pa.large_string() for h in header},
                                 strings_can_be_null=True, null_values=[""])
