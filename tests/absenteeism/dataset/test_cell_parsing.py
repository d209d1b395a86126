"""Extract and parse at scale: column-wise reading and number parsing (absenteeism.dataset.cell_parsing) keep the
per-cell semantics: strings stripped, empty cells missing and refused as "required", numbers
exactly as pandas' to_numeric reads them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from absenteeism.absenteeism_schema import LABEL, RAW_COLUMNS
from absenteeism.dataset import cell_parsing, raw_input, raw_writers
from absenteeism.dataset import reader as extract
from absenteeism.raw_schema import REQUIRED
from etl_job import synthetic

ODD_CELLS = ["1", "+5", "-0", ".5", "5.", "1e3", "1E-2", "inf", "nan", "3,5", "0x10", "1_000",
             "12345678901234567890123", "00012", "1.5e", "e5", "+.5e+3", "3.0", "-2.5", "239.554"]


@pytest.mark.parametrize("dtype", [object, "str"])
def test_numbers_parse_as_to_numeric_reads_them(dtype):
    raw = pd.Series(ODD_CELLS, dtype=dtype)
    fast = cell_parsing.to_numbers(raw)
    reference = pd.to_numeric(pd.Series(ODD_CELLS, dtype=object), errors="coerce").astype("float64")
    finite = np.isfinite(reference)
    assert (np.isfinite(fast) == finite).all()  # non-finite values are refused either way
    np.testing.assert_array_equal(fast[finite].to_numpy(), reference[finite].to_numpy())
    assert not np.signbit(fast[2])  # "-0" is 0.0, not -0.0


def test_cells_are_stripped_and_empty_cells_are_refused_as_required(tmp_path):
    frame = synthetic.to_frame(synthetic.generate(20, seed=2)).astype(object).map(str)
    frame.loc[0, "age"] = "  41 "
    frame.loc[1, "pet"] = "   "
    frame.loc[2, "weight"] = ""
    frame.loc[3, "son"] = "two"
    path = tmp_path / "records.csv"
    raw_writers.write_csv(frame, path)
    cells = raw_input.read_file(path, require_label=True)
    assert cells.loc[0, "age"] == "41"
    assert pd.isna(cells.loc[1, "pet"]) and pd.isna(cells.loc[2, "weight"])
    typed, violations = cell_parsing.parse_columns(cells)
    assert typed.loc[0, "age"] == 41
    assert [(v.row, v.column, v.rule, v.value) for v in violations] == [
        (3, "son", "integer", "two"), (1, "pet", REQUIRED, None), (2, "weight", REQUIRED, None)]


def test_parquet_with_typed_columns_reads_like_its_csv(tmp_path):
    records = synthetic.generate(300, seed=8)
    synthetic.write(records, tmp_path / "records.parquet")  # typed int/float columns
    synthetic.write(records, tmp_path / "records.csv")
    typed_pq, v_pq = cell_parsing.parse_columns(raw_input.read_file(tmp_path / "records.parquet", True))
    typed_csv, v_csv = cell_parsing.parse_columns(raw_input.read_file(tmp_path / "records.csv", True))
    assert v_pq == v_csv == []
    pd.testing.assert_frame_equal(typed_pq, typed_csv)
    assert list(typed_csv.columns) == [c.name for c in (*RAW_COLUMNS, LABEL)]


def test_source_rows_run_across_files_in_sorted_order(tmp_path):
    for name, seed, rows in (("b.csv", 1, 7), ("a.csv", 2, 5), ("c.parquet", 3, 4)):
        synthetic.write(synthetic.generate(rows, seed=seed), tmp_path / name)
    extracted = extract.extract(tmp_path)
    assert [(f.path.name, f.first_row, f.rows) for f in extracted.files] == [
        ("a.csv", 1, 5), ("b.csv", 6, 7), ("c.parquet", 13, 4)]
    assert list(extracted.cells.index) == list(range(1, 17))
    assert list(extract.read_typed(tmp_path).frame.index) == list(range(1, 17))  # the clients' reader numbers alike


def test_long_column_with_a_few_bad_cells_parses_slice_by_slice_like_to_numeric():
    rows = 3 * cell_parsing.CAST_SLICE + 17
    cells = np.array([str(v) for v in np.arange(rows) % 97], dtype=object)
    cells[[5, cell_parsing.CAST_SLICE + 3, rows - 1]] = ["x", "1,5", "+2e1"]
    cells[7] = None
    raw = pd.Series(cells, dtype="str")
    fast = cell_parsing.to_numbers(raw)
    reference = pd.to_numeric(pd.Series(cells, dtype=object), errors="coerce").astype("float64")
    pd.testing.assert_series_equal(fast, reference, check_names=False)
    assert np.isnan(fast[[5, 7, cell_parsing.CAST_SLICE + 3]]).all() and fast[rows - 1] == 20.0
