"""The data set's file formats: read raw records from CSV (as UCI ships it) or Parquet, one file or a
folder of files, and write the CSV format back (the sample generator uses it).

UCI's CSV: semicolon-separated, CRLF line ends, original header names (one with a trailing
space). Headers are stripped and mapped to the snake_case names of RawRecord.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from absenteeism.dataset import atomic
from absenteeism.dataset.blocks import table_blocks
from absenteeism.raw_schema import LABEL, RAW_COLUMNS, REQUIRED, Violation

CSV_SEPARATOR = ";"
CSV_LINE_END = "\r\n"
_ALL_COLUMNS = (*RAW_COLUMNS, LABEL)
HEADER_TO_NAME = {c.csv_header: c.name for c in _ALL_COLUMNS}
SUFFIXES = (".csv", ".parquet")


class InputFormatError(ValueError):
    """A file cannot be read as raw records at all (unknown format, missing columns)."""


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
    return frame.apply(_clean_cells)


class RawChunk:
    """Rows of one file, two ways. `numbers`: the columns the job reads, as float64, when every one
    of their cells is a plain number (Arrow's CSV number parser, which trims blanks and then parses
    as `_cast_numbers` does), else None. `cells`: the cells as the input wrote them, as strings,
    made only when asked: a chunk with a bad cell needs them to word its violations."""

    def __init__(self, rows: int, numbers: dict[str, np.ndarray] | None, text: Callable[[], pd.DataFrame]):
        self.index: pd.Index = pd.RangeIndex(rows)
        self.numbers = numbers
        self._text = text
        self._cells: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.index)

    @property
    def cells(self) -> pd.DataFrame:
        """Strings (missing where empty; CSV cells unstripped), snake_case columns, index = `index`."""
        if self._cells is None:
            self._cells = self._text()
        self._cells.index = self.index
        return self._cells


def _column_names(headers, path: Path, require_label: bool) -> list[str]:
    """The snake_case name of each header (stripped); InputFormatError when a column the job reads
    is missing or appears more than once (which of the two would hold the data?)."""
    names = [HEADER_TO_NAME.get(str(h).strip(), str(h).strip()) for h in headers]
    counts = Counter(names)
    repeated = [f"column {c.name!r} appears {counts[c.name]} times" for c in _ALL_COLUMNS if counts[c.name] > 1]
    if repeated:
        raise InputFormatError(f"{path.name}: {', '.join(repeated)} in the header")
    needed = [c.name for c in RAW_COLUMNS] + ([LABEL.name] if require_label else [])
    absent = [name for name in needed if name not in counts]
    if absent:
        raise InputFormatError(f"{path.name}: missing columns {absent}")
    return names


def _clean_cells(column: pd.Series) -> pd.Series:
    """Cells as stripped strings, missing where empty: column-wise, as a per-cell map is slow on
    millions of rows. (With pandas 3's string dtype "missing" is NaN; with object columns, None.)"""
    text = column.astype(str).str.strip()
    return text.where(column.notna() & (text != ""), None)


_CSV_BLOCK_BYTES = 1 << 20  # Arrow reads ahead several blocks: small ones keep that memory small


def iter_chunks(path: Path, require_label: bool = False, chunk_rows: int = 1 << 18) -> Iterator[RawChunk]:
    """One file's rows in chunks of `chunk_rows` rows (CSV: lines; the last chunk shorter), streamed:
    memory stays bounded by the chunk size. Columns as `read_file` names them; CSV cells are left
    unstripped (`parse_columns` strips what it must). Chunks depend on the file's content alone."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        yield from _text_chunks(_parquet_batches(path, chunk_rows), path, require_label, chunk_rows)
        return
    start = _csv_data_start(path)
    if start is None:  # line ends the line cutter cannot see: Arrow's streaming reader, as text only
        yield from _text_chunks(_csv_batches(path), path, require_label, chunk_rows)
        return
    yield from _csv_chunks(path, start, path.stat().st_size, require_label, chunk_rows)


def iter_part_chunks(path: Path, start: int, stop: int, require_label: bool = False,
                     chunk_rows: int = 1 << 18) -> Iterator[RawChunk]:
    """The rows of one part of a file in chunks, as `iter_chunks` gives the whole file's: for a
    CSV file the lines in bytes [start, stop) (`start` at a line start after the header, see
    `csv_line_starts`), for Parquet the row groups [start, stop). The parts of a file put together
    give the file's rows, in order."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        yield from _csv_chunks(path, start, stop, require_label, chunk_rows)
    else:
        yield from _text_chunks(_parquet_batches(path, chunk_rows, range(start, stop)), path, require_label, chunk_rows)


def header_names(path: Path, require_label: bool = False) -> list[str]:
    """The snake_case column names of a file's header; InputFormatError as `iter_chunks` raises it."""
    path = Path(path)
    header = _csv_header(path) if path.suffix.lower() == ".csv" else next(_parquet_batches(path, 1))
    return _column_names(header, path, require_label)


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


def parquet_row_groups(path: Path) -> list[int]:
    """The row count of each row group of a Parquet file."""
    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


def _text_chunks(batches: Iterator, path: Path, require_label: bool, chunk_rows: int) -> Iterator[RawChunk]:
    """Chunks of cells as text only, from the header and the record batches of a file."""
    names = _column_names(next(batches), path, require_label)
    kept = [c.name for c in _ALL_COLUMNS if c.name in names]
    blocks = table_blocks(chunk_rows)
    csv_file = path.suffix.lower() == ".csv"

    def chunks(tables):
        for table in tables:
            table = table.rename_columns(names).select(kept)
            if csv_file:
                frame = table.to_pandas()
                yield RawChunk(len(frame), None, lambda frame=frame: frame)
            else:
                yield RawChunk(table.num_rows, _parquet_numbers(table), lambda table=table: _parquet_text(table))

    for batch in batches:
        yield from chunks(blocks.feed(pa.Table.from_batches([batch])))
    yield from chunks(blocks.flush())


def _parquet_numbers(table: pa.Table) -> dict[str, np.ndarray] | None:
    """The columns as float64 when each is a whole-number or float64 column without nulls: the
    values the text path reads back from their decimal text (float32 is not: its text is the
    float32's shortest decimal, which is not its float64 value)."""
    exact = all((pa.types.is_integer(c.type) or pa.types.is_float64(c.type)) and c.null_count == 0
                for c in table.columns)
    return {name: table.column(name).to_numpy().astype(np.float64) for name in table.column_names} if exact else None


def _parquet_text(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    return pd.DataFrame({name: _clean_cells(frame[name]) for name in frame.columns}, index=frame.index)


def _csv_chunks(path: Path, start: int, stop: int, require_label: bool, chunk_rows: int) -> Iterator[RawChunk]:
    """The lines in bytes [start, stop) of a CSV file, `chunk_rows` lines a chunk, each parsed as
    numbers first (one pass, no strings) and as text only when that fails or is asked for."""
    header = _csv_header(path)
    names = _column_names(header, path, require_label)
    kept = [c.name for c in _ALL_COLUMNS if c.name in names]
    number_types = {h: (pa.float64() if n in kept else pa.large_string()) for h, n in zip(header, names)}
    with open(path, "rb") as stream:
        stream.seek(start)
        for piece in _line_pieces(stream, stop - start, chunk_rows):
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


def _csv_data_start(path: Path) -> int | None:
    """The byte offset of the line after the header; None when the header line holds a lone CR
    (a file with CR line ends: the line cutter looks for LF)."""
    with open(path, "rb") as stream:
        line = stream.readline()
        if b"\r" in line.rstrip(b"\n").rstrip(b"\r"):
            return None
        return stream.tell()


_READ_BYTES = 1 << 20


def _line_pieces(stream: BinaryIO, size: int, lines: int) -> Iterator[bytes]:
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


def _csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as stream:
        header = next(csv.reader(stream, delimiter=CSV_SEPARATOR), None)
    if not header:
        raise InputFormatError(f"{path.name} is empty: it has no header line")
    return header


def _csv_batches(path: Path) -> Iterator:
    """The header, then the record batches of a CSV file, every cell a string (None when empty)."""
    header = _csv_header(path)
    yield header
    reader = pa_csv.open_csv(
        path, read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
        parse_options=pa_csv.ParseOptions(delimiter=CSV_SEPARATOR), convert_options=_csv_convert_options(header))
    yield from reader


def _csv_convert_options(header: list[str]) -> pa_csv.ConvertOptions:
    return pa_csv.ConvertOptions(column_types={h: pa.large_string() for h in header},
                                 strings_can_be_null=True, null_values=[""])


def _parquet_batches(path: Path, batch_rows: int, row_groups: range | None = None) -> Iterator:
    parquet = pq.ParquetFile(path)
    yield parquet.schema_arrow.names
    yield from parquet.iter_batches(batch_size=batch_rows, row_groups=row_groups)


def parse_columns(cells: pd.DataFrame) -> tuple[pd.DataFrame, list[Violation]]:
    """Typed columns from string cells, and a violation for each empty or unparseable cell.

    Cells may carry surrounding whitespace (the chunked reader leaves it, trimming costs more than
    parsing): a cell is read as its stripped text, and a violation shows the stripped text.
    Cells that fail are left as 0 in the typed frame; the violations name their rows (index labels),
    which the caller must refuse.
    """
    typed = {}
    violations: list[Violation] = []
    for column in _ALL_COLUMNS:
        if column.name not in cells.columns:
            continue
        raw = cells[column.name]
        numbers = _to_numbers(raw).to_numpy(dtype=np.float64, copy=True)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(numbers)
            if column.dtype == "int64":
                bad |= numbers != np.floor(numbers)
        positions = np.flatnonzero(bad)  # few; boolean-indexing every column costs more
        # (none in most chunks: an empty .iloc lookup alone costs ~0.7 ms a column)
        for label, value in zip(raw.index[positions], raw.iloc[positions]) if len(positions) else ():
            text = value.strip() if isinstance(value, str) else value
            if pd.isna(value) or text == "":  # an empty cell: None, or NaN in a pandas 3 string column
                violations.append(Violation(row=label, column=column.name, rule=REQUIRED, value=None))
                continue
            rule = "integer" if column.dtype == "int64" else "number"
            violations.append(Violation(row=label, column=column.name, rule=rule, value=text))
        if len(positions):
            numbers[positions] = 0.0
        if column.dtype == "int64":
            # Integers beyond int64 would wrap around; at its edge they still break every rule of the
            # schema (the violation shows the cell as written: validate takes it from the input).
            np.clip(numbers, _INT64_LOW, _INT64_HIGH, out=numbers)
        typed[column.name] = numbers.astype(column.dtype)
    return pd.DataFrame(typed, index=cells.index), violations


def parse_numbers(chunk: RawChunk) -> pd.DataFrame | None:
    """What `parse_columns(chunk.cells)` gives when it finds no violation, from the chunk's numbers
    alone; None when it would find one (or the chunk has no numbers): only the text can word it."""
    if chunk.numbers is None:
        return None
    typed = {}
    for column in _ALL_COLUMNS:
        if column.name not in chunk.numbers:
            continue
        numbers = chunk.numbers[column.name]
        if column.dtype == "int64":
            if len(numbers) and not (_INT64_LOW <= numbers.min() and numbers.max() <= _INT64_HIGH):  # also NaN
                return None
            values = numbers.astype(np.int64)
            if not np.array_equal(values, numbers):  # a fraction
                return None
        else:
            values = numbers + 0.0  # a copy; "-0" reads as 0.0, as in _to_numbers
            if not np.isfinite(values).all():
                return None
        typed[column.name] = values
    return pd.DataFrame(typed, index=chunk.index)


_INT64_LOW, _INT64_HIGH = float(-2**63), float(2**63 - 1024)  # the float64 values an int64 holds exactly

# What pd.to_numeric reads as a finite number; anything else (also inf, nan) is refused anyway.
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def _to_numbers(raw: pd.Series) -> pd.Series:
    """`pd.to_numeric(raw.str.strip(), errors="coerce")` as float64 (NaN where unparseable),
    in Arrow for string cells: to_numeric goes cell by cell in Python."""
    if raw.dtype == object or isinstance(raw.dtype, pd.StringDtype):
        try:
            text = pa.array(raw, type=pa.large_string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # cells that are not strings: the general path
            return pd.to_numeric(raw, errors="coerce").astype("float64")
        # + 0.0: "-0" reads as 0.0, as to_numeric (an integer) gives it.
        return pd.Series(_cast_numbers(text) + 0.0, index=raw.index, dtype="float64", copy=False)
    return pd.to_numeric(raw, errors="coerce").astype("float64")


_SLICE = 1 << 15


def _cast_numbers(text: pa.Array) -> np.ndarray:
    """Arrow's cast to float64, which refuses a whole array for one bad (or padded) cell: then slice
    by slice, stripping the cells of a failing slice and nulling its non-numbers with a regex
    (costly, so only where needed)."""
    try:
        return pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        pass
    numbers = np.empty(len(text), dtype=np.float64)
    for start in range(0, len(text), _SLICE):
        piece = text.slice(start, _SLICE)
        try:
            cast = pc.cast(piece, pa.float64())
        except pa.ArrowInvalid:
            piece = pc.utf8_trim_whitespace(piece)
            try:
                cast = pc.cast(piece, pa.float64())
            except pa.ArrowInvalid:
                cast = pc.cast(pc.if_else(pc.match_substring_regex(piece, _NUMBER), piece, None), pa.float64())
        numbers[start:start + len(piece)] = cast.to_numpy(zero_copy_only=False)
    return numbers


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Writes `frame` (snake_case columns) in the data set's CSV format, atomically."""
    columns = [c for c in _ALL_COLUMNS if c.name in frame.columns]
    out = frame[[c.name for c in columns]].copy()
    out.columns = [c.csv_header + (" " if c.name == "work_load_average_per_day" else "") for c in columns]
    with atomic.atomic_path(Path(path)) as tmp:
        out.to_csv(tmp, sep=CSV_SEPARATOR, index=False, lineterminator=CSV_LINE_END,
                   float_format=None)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic.atomic_path(Path(path)) as tmp:
        frame.to_parquet(tmp, index=False)
