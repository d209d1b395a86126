"""Defect: a CSV file with CR-only line ends read on the local engine but gave the Dask engine no
data rows (its part boundaries were found by looking for LF). Such a file is now one part, read
whole by Arrow's streaming reader as the local engine reads it: the same rows, whatever the part size."""

from __future__ import annotations

import pandas as pd
import pytest

from absenteeism.dataset import partitions
from absenteeism.dataset import reader as input_reader
from etl_job import synthetic


@pytest.mark.parametrize("quoted_break", [False, True], ids=["plain", "quoted-CR"])
def test_a_cr_only_file_gives_its_parts_the_rows_the_reader_reads(tmp_path, quoted_break):
    path = tmp_path / "cr.csv"
    synthetic.write(synthetic.generate(500, seed=8, bad_fraction=0.02), path)
    data = path.read_bytes().replace(b"\r\n", b"\r")
    if quoted_break:  # a CR inside a quoted field is part of the value
        header, first, *rest = data.split(b"\r")
        cells = first.split(b";")
        cells[8] = b'"3\r3"'
        data = b"\r".join([header, b";".join(cells), *rest])
    path.write_bytes(data)
    whole = pd.concat([chunk.cells for chunk in input_reader.Reader(path, chunk_rows=64).chunks()])
    assert len(whole) == 500
    for part_bytes in (1, 1000, 10**9):
        parts = partitions.plan(path, part_bytes)
        assert [(part.start, part.stop) for part in parts] == [(0, len(data))]
        pieces = pd.concat([rows.cells for part in parts for rows in partitions.chunks(part, 97)])
        pieces.index = pd.RangeIndex(1, len(pieces) + 1)
        pd.testing.assert_frame_equal(pieces, whole)
    if quoted_break:
        assert whole.loc[1, "age"] == "3\r3"
