"""Defect: a quoted cell with a line break changed the result by chunk size (the cutter split at
every line end, quoted or not). A line end inside a quoted field (RFC 4180) is part of the value: the
chunk cutter and the cluster's part boundaries never cut there, so every chunk size and part size
reads the same records as one chunk does; a record spanning lines is one source row."""

from __future__ import annotations

import csv
import io
import itertools

import pandas as pd
import pytest

from absenteeism.dataset import csv_files, partitions
from absenteeism.dataset import reader as input_reader
from absenteeism.dataset.raw_chunk import InputFormatError
from etl_job import synthetic

ROWS = 14
QUOTED_ROW = 10  # 1-based data row whose Age holds a line break
LINE_ENDS = {"LF": b"\n", "CRLF": b"\r\n"}
INNER_ENDS = {"LF": b"\n", "CRLF": b"\r\n", "CR": b"\r"}


def _quoted_csv(tmp_path, outer: bytes, inner: bytes, rows: int = ROWS):
    """A generated CSV (line ends `outer`) whose row QUOTED_ROW has Age `"3<inner>3"`, row 4 a quoted
    Age without a break, row 6 a quoted ID with a doubled quote inside and row 12 a quote inside an
    unquoted cell (a plain character, as Arrow reads it)."""
    path = tmp_path / "generated.csv"
    synthetic.write(synthetic.generate(rows, seed=5), path)
    header, *lines = [line for line in path.read_bytes().split(b"\r\n") if line]
    assert len(lines) == rows

    def set_cell(row: int, column: int, value: bytes) -> None:
        cells = lines[row - 1].split(b";")
        cells[column] = value
        lines[row - 1] = b";".join(cells)

    set_cell(QUOTED_ROW, 8, b'"3' + inner + b'3"')
    set_cell(4, 8, b'"33"')
    set_cell(6, 0, b'"1""1"')
    set_cell(12, 0, b'1"1')
    path.write_bytes(outer.join([header, *lines]) + outer)
    return path


def _cells(path, chunk_rows: int) -> pd.DataFrame:
    return pd.concat([chunk.cells for chunk in input_reader.Reader(path, chunk_rows=chunk_rows).chunks()])


@pytest.mark.parametrize("outer,inner", list(itertools.product(LINE_ENDS, INNER_ENDS)))
def test_a_quoted_cell_with_a_line_break_reads_the_same_at_every_chunk_size(tmp_path, outer, inner):
    path = _quoted_csv(tmp_path, LINE_ENDS[outer], INNER_ENDS[inner])
    whole = _cells(path, 10**6)
    assert list(whole.index) == list(range(1, ROWS + 1))  # a record is one source row, however many lines
    assert whole.loc[QUOTED_ROW, "age"] == "3" + INNER_ENDS[inner].decode() + "3"
    assert whole.loc[QUOTED_ROW + 1, "id"] == _cells(path, 1).loc[QUOTED_ROW + 1, "id"]
    assert whole.loc[6, "id"] == '1"1' and whole.loc[12, "id"] == '1"1'
    for chunk_rows in range(1, ROWS + 2):  # the break at every position relative to a cut
        pd.testing.assert_frame_equal(_cells(path, chunk_rows), whole)


@pytest.mark.parametrize("outer,inner", list(itertools.product(LINE_ENDS, INNER_ENDS)))
def test_a_quoted_cell_with_a_line_break_reads_the_same_at_every_part_size(tmp_path, outer, inner):
    path = _quoted_csv(tmp_path, LINE_ENDS[outer], INNER_ENDS[inner])
    whole = _cells(path, 10**6)
    data = path.read_bytes()
    quote = data.index(b'"3' + INNER_ENDS[inner])
    data_start = data.index(LINE_ENDS[outer]) + len(LINE_ENDS[outer])
    # every part size that puts the first cut's target anywhere from a line before the quoted
    # field to a line after it, and sizes that cut every record
    near = range(quote - data_start - 70, quote - data_start + 70)
    for part_bytes in itertools.chain(range(1, 8), near):
        parts = partitions.plan(path, part_bytes)
        for part in parts[1:]:
            assert not (quote < part.start <= quote + 4), part_bytes  # never inside the quoted field
        pieces = pd.concat([rows.cells for part in parts for rows in partitions.chunks(part, 3)])
        pieces.index = pd.RangeIndex(1, len(pieces) + 1)
        pd.testing.assert_frame_equal(pieces, whole)


def _records(piece: bytes) -> int:
    return sum(1 for _ in csv.reader(io.StringIO(piece.decode(), newline=""), delimiter=";"))


@pytest.mark.parametrize("inner", INNER_ENDS)
def test_line_pieces_count_records_not_lines(inner):
    ends = INNER_ENDS[inner]
    lines = [(b'%d;"a%sb";"x""%sy"\r\n' % (i, ends, ends)) if i % 7 == 3 else b"%d;ab;c\r\n" % i for i in range(200)]
    data = b"".join(lines)
    for per_piece in (1, 2, 3, 7, 50, 199, 200, 1000):
        stream = io.BytesIO(data)
        pieces = list(csv_files.line_pieces(stream, len(data), per_piece))
        assert b"".join(pieces) == data
        assert [_records(piece) for piece in pieces[:-1]] == [per_piece] * (len(pieces) - 1)
        assert 1 <= _records(pieces[-1]) <= per_piece


def test_a_quote_never_closed_is_one_clear_error_whatever_the_chunk_size(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_files, "_MAX_QUOTED_BYTES", 2000)
    path = _quoted_csv(tmp_path, b"\r\n", b"\n", rows=200)
    data = path.read_bytes()
    data = data.replace(b'\n1"1;', b"\n11;")  # no quote after row 10's
    path.write_bytes(data.replace(b'"3\n3"', b'"3\n3', 1))  # the quote of row 10 never closes
    messages = set()
    for chunk_rows in (1, 9, 10, 11, 1000):
        with pytest.raises(InputFormatError) as error:
            _cells(path, chunk_rows)
        messages.add(str(error.value))
    for part_bytes in (1, 600, 700, 5000):
        with pytest.raises(InputFormatError) as error:
            partitions.plan(path, part_bytes)
        messages.add(str(error.value))
    [message] = messages
    assert "generated.csv: the quoted field that starts at byte" in message and "not closed" in message
