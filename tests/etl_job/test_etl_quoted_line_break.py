"""Defect: a quoted cell with a line break changed the job's result by chunk size (`--chunk-rows 10`
exit 3 "Expected 21 columns, got 9", `--chunk-rows 11` exit 0) and by Dask part size. Now every
chunk size, every part size and both engines give the one-chunk run's outputs; the record is one
source row in rejects.csv, and the rows after it keep their record numbers."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from etl_job import synthetic
from testkit.paths import REPO_ROOT
from testkit.run_outputs import assert_same_outputs

pytestmark = pytest.mark.process  # runs the job in processes (and a LocalCluster)

ROWS = 400
QUOTED_ROW = 10


def _job(input_path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etl_job", "run", "--input", str(input_path), "--output-dir", str(out),
                           "--no-progress", *extra], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


def _input(folder: Path, outer: bytes, inner: bytes) -> Path:
    """A generated CSV whose row 10 has Age `"3<inner>3"` (a record of two lines) and row 12 Month 13."""
    path = folder / "quoted.csv"
    synthetic.write(synthetic.generate(ROWS, seed=5), path)
    header, *lines = [line for line in path.read_bytes().split(b"\r\n") if line]
    rows = [line.split(b";") for line in lines]
    rows[QUOTED_ROW - 1][8] = b'"3' + inner + b'3"'
    rows[QUOTED_ROW + 1][2] = b"13"
    path.write_bytes(outer.join([header, *(b";".join(row) for row in rows)]) + outer)
    return path


@pytest.mark.parametrize("outer,inner", [(b"\r\n", b"\n"), (b"\n", b"\r\n")], ids=["CRLF-LF", "LF-CRLF"])
def test_a_quoted_cell_with_a_line_break_gives_the_same_outputs_at_every_chunk_and_part_size(tmp_path, outer, inner):
    path = _input(tmp_path, outer, inner)
    one_chunk = tmp_path / "one_chunk"
    result = _job(path, one_chunk, "--chunk-rows", "1000000")
    assert result.returncode == 0, result.stderr
    with open(one_chunk / "rejects.csv", newline="") as stream:
        rejects = list(csv.DictReader(stream))
    assert [(r["source_row"], r["column"], r["value"]) for r in rejects] == \
        [(str(QUOTED_ROW), "age", "3" + inner.decode() + "3"), (str(QUOTED_ROW + 2), "month_of_absence", "13")]

    # (every line end in and out of quotes at every chunk and part cut: tests/absenteeism/dataset/test_quoted_line_break.py)
    for chunk_rows in (1, 9, 10, 11):  # the record alone in its chunk, first, last, inside one
        out = tmp_path / f"chunk_{chunk_rows}"
        result = _job(path, out, "--chunk-rows", str(chunk_rows))
        assert result.returncode == 0, (chunk_rows, result.stderr)
        assert_same_outputs(one_chunk, out, engine="local")

    data = path.read_bytes()
    data_start = data.index(outer) + len(outer)
    quote = data.index(b'"3' + inner) - data_start
    for part_bytes in (quote + 2, quote + 2 + len(inner)):  # the first cut's target on the break, after it
        out = tmp_path / f"dask_{part_bytes}"
        result = _job(path, out, "--engine", "dask", "--workers", "1", "--part-bytes", str(part_bytes))
        assert result.returncode == 0, (part_bytes, result.stderr)
        assert_same_outputs(one_chunk, out)

