"""The data set's file formats: read raw records from CSV (as UCI ships it) or Parquet, one file or a
folder of files, and write the CSV format back (the sample generator uses it).

UCI's CSV: semicolon-separated, CRLF line ends, original header names (one with a trailing
space). Headers are stripped and mapped to the snake_case names of RawRecord.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

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
    chunks = list(iter_chunks(path, require_label))
    if not chunks:  # a header and no rows
        return pd.DataFrame()
    frame = (pd.concat(chunks) if len(chunks) > 1 else chunks[0]).reset_index(drop=True)
    return frame.apply(_clean_cells)


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


def iter_chunks(path: Path, require_label: bool = False, chunk_rows: int = 1 << 18) -> Iterator[pd.DataFrame]:
    """One file's cells in chunks of `chunk_rows` rows (the last one shorter), streamed: memory stays
    bounded by the chunk size. Columns as `read_file` names them; CSV cells are left unstripped
    (`parse_columns` strips what it must). Chunks depend on the file's content alone."""
    path = Path(path)
    csv_file = path.suffix.lower() == ".csv"
    batches = _csv_batches(path) if csv_file else _parquet_batches(path, chunk_rows)
    yield from _frames(batches, path, require_label, chunk_rows, csv_file)


def iter_part_chunks(path: Path, start: int, stop: int, require_label: bool = False,
                     chunk_rows: int = 1 << 18) -> Iterator[pd.DataFrame]:
    """The cells of one part of a file in chunks, as `iter_chunks` gives the whole file's: for a
    CSV file the lines in bytes [start, stop) (`start` at a line start after the header, see
    `csv_line_starts`), for Parquet the row groups [start, stop). The parts of a file put together
    give the file's rows, in order."""
    path = Path(path)
    csv_file = path.suffix.lower() == ".csv"
    batches = _csv_range_batches(path, start, stop) if csv_file else _parquet_batches(path, chunk_rows, range(start, stop))
    yield from _frames(batches, path, require_label, chunk_rows, csv_file)


def header_names(path: Path, require_label: bool = False) -> list[str]:
    """The snake_case column names of a file's header; InputFormatError as `iter_chunks` raises it."""
    path = Path(path)
    batches = _csv_batches(path) if path.suffix.lower() == ".csv" else _parquet_batches(path, 1)
    return _column_names(next(batches), path, require_label)


def csv_line_starts(path: Path, part_bytes: int) -> list[int]:
    """Byte offsets that cut a CSV file's data lines into parts of about `part_bytes`: the first is
    where the line after the header starts, the last is the file's size; each other one is where a
    line starts (lines hold no line breaks in this format, as the reader requires)."""
    size = Path(path).stat().st_size
    with open(path, "rb") as stream:
        stream.readline()
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


def _frames(batches: Iterator, path: Path, require_label: bool, chunk_rows: int, csv_file: bool) -> Iterator[pd.DataFrame]:
    names = _column_names(next(batches), path, require_label)
    kept = [c.name for c in _ALL_COLUMNS if c.name in names]
    blocks = table_blocks(chunk_rows)

    def frames(tables):
        for table in tables:
            frame = table.rename_columns(names).select(kept).to_pandas()
            if not csv_file:
                frame = pd.DataFrame({name: _clean_cells(frame[name]) for name in kept}, index=frame.index)
            yield frame

    for batch in batches:
        yield from frames(blocks.feed(pa.Table.from_batches([batch])))
    yield from frames(blocks.flush())


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


def _csv_range_batches(path: Path, start: int, stop: int) -> Iterator:
    """As `_csv_batches`, for the data lines in bytes [start, stop) only (read into memory: a part
    is a bounded slice of the file)."""
    header = _csv_header(path)
    yield header
    with open(path, "rb") as stream:
        stream.seek(start)
        data = stream.read(stop - start)
    if not data.strip():
        return
    yield from pa_csv.open_csv(
        pa.BufferReader(data), read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES, column_names=header),
        parse_options=pa_csv.ParseOptions(delimiter=CSV_SEPARATOR), convert_options=_csv_convert_options(header))


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
