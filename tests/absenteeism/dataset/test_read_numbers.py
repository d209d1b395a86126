"""The reader's numbers path (CSV, and Parquet with integer or float64 columns): a chunk whose cells
all read as numbers is validated from those numbers alone, and that must give exactly what the text
path (parse_columns on the cells as strings, then the raw schema) gives: the same accepted rows,
values, dtypes and index, and no violation. Any chunk with a cell that is not a clean number, or a
rule broken, goes the text way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from absenteeism import absenteeism_schema
from absenteeism.dataset import csv_files, raw_writers
from absenteeism.dataset import reader as input_reader
from etl_job import synthetic, validate

# Cells that read as the same number both ways (Arrow's CSV parser trims blanks; the text path
# strips), and cells that are no clean number (the text path words their violation).
NUMBER_CELLS = [" 7", "7 ", "\t7", "+7", "7.0", "7.", "0.7e1", "70e-1", "007", "7.000000000000001"]
NOT_NUMBERS = ["", " ", "seven", "7,0", "0x7", "nan", "inf", "-inf", "7.5", "1e400", "7 7"]


def _chunks(path, chunk_rows):
    return [chunk.rows for chunk in input_reader.Reader(path, chunk_rows).chunks()]


def _assert_same_as_text_path(chunk):
    by_numbers = validate.validate_chunk(chunk)
    by_text = validate.validate(chunk.cells)
    pd.testing.assert_frame_equal(by_numbers.accepted, by_text.accepted, check_exact=True)
    for name in by_text.accepted.columns:  # bit for bit, also the sign of a zero
        assert by_numbers.accepted[name].to_numpy().tobytes() == by_text.accepted[name].to_numpy().tobytes(), name
    assert by_numbers.violations == by_text.violations
    assert by_numbers.rows_read == by_text.rows_read
    return by_numbers


@pytest.fixture
def records():
    frame = synthetic.to_frame(synthetic.generate(400, seed=11)).astype(object).map(str)
    return frame


def test_a_clean_file_is_read_as_numbers_and_validated_as_the_text_path_does(tmp_path, records):
    path = tmp_path / "clean.csv"
    raw_writers.write_csv(records, path)
    for chunk_rows in (7, 37, 400, 10_000):
        chunks = _chunks(path, chunk_rows)
        assert sum(len(chunk) for chunk in chunks) == 400
        assert all(chunk.numbers is not None for chunk in chunks)  # the numbers path was taken
        for chunk in chunks:
            _assert_same_as_text_path(chunk)


@pytest.mark.parametrize("cell", NUMBER_CELLS + NOT_NUMBERS)
def test_every_kind_of_cell_gives_what_the_text_path_gives(tmp_path, records, cell):
    records = records.copy()
    rng = np.random.default_rng(len(cell) + sum(map(ord, cell)))
    for column in ("age", "work_load_average_per_day", "son", "body_mass_index", "month_of_absence"):
        records.loc[rng.choice(len(records), size=5, replace=False), column] = cell
    path = tmp_path / "odd.csv"
    raw_writers.write_csv(records, path)
    for chunk_rows in (64, 1000):
        for chunk in _chunks(path, chunk_rows):
            _assert_same_as_text_path(chunk)


def test_minus_zero_in_a_float_column_is_read_as_zero(tmp_path, records):
    records = records.copy()
    records["work_load_average_per_day"] = "-0"
    records["body_mass_index"] = "-0.0"
    path = tmp_path / "zeros.csv"
    raw_writers.write_csv(records, path)
    [chunk] = _chunks(path, 1000)
    assert chunk.numbers is not None
    accepted = _assert_same_as_text_path(chunk).accepted
    assert not np.signbit(accepted["work_load_average_per_day"]).any()


def test_line_pieces_hold_the_lines_asked_for_and_nothing_is_lost():
    rng = np.random.default_rng(3)
    lines = [b"x" * int(n) + b"\r\n" for n in rng.integers(0, 300, size=5000)]
    data = b"".join(lines) + b"last line without an end"
    for per_piece in (1, 2, 7, 1000, 4999, 5000, 10_000):
        pieces = list(csv_files.line_pieces(_Stream(data), len(data), per_piece))
        assert b"".join(pieces) == data
        assert all(piece.count(b"\n") == per_piece and piece.endswith(b"\n") for piece in pieces[:-1])
        assert pieces[-1].count(b"\n") <= per_piece


def test_a_part_of_a_file_is_read_within_its_bytes():
    data = b"".join(b"%d;%d\n" % (i, i * i) for i in range(1000))
    start, stop = data.index(b"100;"), data.index(b"900;")
    stream = _Stream(data)
    stream.seek(start)
    assert b"".join(csv_files.line_pieces(stream, stop - start, 64)) == data[start:stop]


def test_a_file_with_cr_line_ends_reads_as_its_crlf_twin(tmp_path, records):
    crlf, cr = tmp_path / "crlf.csv", tmp_path / "cr.csv"
    raw_writers.write_csv(records, crlf)
    cr.write_bytes(crlf.read_bytes().replace(b"\r\n", b"\r"))
    read_cr, read_crlf = _chunks(cr, 100), _chunks(crlf, 100)
    assert [len(chunk) for chunk in read_cr] == [len(chunk) for chunk in read_crlf] == [100] * 4
    for a, b in zip(read_cr, read_crlf):
        pd.testing.assert_frame_equal(validate.validate_chunk(a).accepted, validate.validate_chunk(b).accepted)


class _Stream:
    """A binary stream over bytes, reading at most 1,000 bytes a call (as a pipe might)."""

    def __init__(self, data: bytes):
        self.data, self.position = data, 0

    def seek(self, position: int) -> None:
        self.position = position

    def read(self, size: int) -> bytes:
        piece = self.data[self.position:self.position + min(size, 1000)]
        self.position += len(piece)
        return piece


def test_a_closed_range_checked_by_its_extremes_decides_as_the_compiled_check():
    rng = np.random.default_rng(9)
    for name, compiled in validate._compiled(absenteeism_schema.TABLE).items():
        bounds = compiled.bounds()
        assert bounds is not None, name  # every raw rule is a closed range today: the cheap test applies
        for trial in range(200):
            values = rng.uniform(bounds.low - 2, bounds.high + 2, size=int(rng.integers(1, 50)))
            if trial % 3 == 0:
                values = np.clip(values, bounds.low, bounds.high)
            if compiled.dtype.kind == "i":
                values = np.round(values).astype(np.int64)
            elif trial % 7 == 0:
                values[rng.integers(len(values))] = np.nan
            assert validate._passes(compiled, values) == compiled.passes(values), (name, values)


def test_a_typed_parquet_file_is_read_as_numbers_and_validated_as_the_text_path_does(tmp_path):
    path = tmp_path / "typed.parquet"
    synthetic.write(synthetic.generate(300, seed=12), path)
    chunks = _chunks(path, 128)
    assert [len(chunk) for chunk in chunks] == [128, 128, 44]
    assert all(chunk.numbers is not None for chunk in chunks)
    for chunk in chunks:
        _assert_same_as_text_path(chunk)


@pytest.mark.parametrize("column, values", [
    ("work_load_average_per_day", pa.array(np.linspace(200.1, 300.3, 300), pa.float32())),  # text: float32's decimal
    ("body_mass_index", pa.array([-0.0, 25.5, None] * 100, pa.float64())),  # signed zero, nulls
    ("age", pa.array([2**53 + 1, 40, 41] * 100, pa.int64())),  # not exact in float64
    ("age", pa.array([30, 40, -3] * 100, pa.int8())),
    ("son", pa.array([True, False, True] * 100)),
    ("pet", pa.array(["1", " 2", "x"] * 100)),
    ("height", pa.array([float("nan"), 170.0, float("inf")] * 100)),
], ids=["float32", "nulls", "huge-int", "int8", "bool", "text", "nan-inf"])
def test_every_kind_of_parquet_column_gives_what_the_text_path_gives(tmp_path, column, values):
    table = synthetic.to_table(synthetic.generate(300, seed=13), headers=False)
    table = table.set_column(table.schema.get_field_index(column), column, values)
    path = tmp_path / "odd.parquet"
    pq.write_table(table, path)
    for chunk_rows in (64, 1000):
        for chunk in _chunks(path, chunk_rows):
            _assert_same_as_text_path(chunk)
