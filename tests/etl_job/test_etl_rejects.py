"""Quarantine: each kind of bad cell is rejected with its row, file, column and rule; the reject
threshold and the exit codes (2 usage, 3 bad data, 1 internal)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from absenteeism import raw_schema
from absenteeism.absenteeism_schema import LABEL, RAW_COLUMNS
from absenteeism.dataset import raw_writers
from etl_job import cli, local_engine, synthetic

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

ROWS = 200


@pytest.fixture()
def clean_frame() -> pd.DataFrame:
    """Valid records as strings (the way a file holds them)."""
    frame = synthetic.to_frame(synthetic.generate(ROWS, seed=7))
    return frame.astype(object).map(str)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    raw_writers.write_csv(frame, path)
    return path


def _run(tmp_path: Path, source: Path, *extra: str) -> int:
    return cli.main(["run", "--input", str(source), "--output-dir", str(tmp_path / "out"), "--no-progress", *extra])


# (column, bad cell, rule the reject must name); rows are 0-based positions in the frame.
BAD_CELLS = [
    ("month_of_absence", "0", "isin([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])"),
    ("age", "130", "in_range(16, 100)"),
    ("age", "7", "in_range(16, 100)"),
    ("weight", "", "required"),
    ("hit_target", "abc", "integer"),
    ("body_mass_index", "n/a", "number"),
    ("son", "2.5", "integer"),
    ("day_of_the_week", "7", "isin([2, 3, 4, 5, 6])"),
    ("disciplinary_failure", "2", "isin([0, 1])"),
    ("absenteeism_time_in_hours", "-1", "in_range(0, 744)"),  # the label is validated too
    ("absenteeism_time_in_hours", "", "required"),
]


def test_each_kind_of_bad_cell_is_rejected_with_its_rule(tmp_path, clean_frame, capsys):
    for position, (column, cell, _) in enumerate(BAD_CELLS):
        clean_frame.loc[10 * position + 3, column] = cell
    source = _write(clean_frame, tmp_path / "records.csv")
    assert _run(tmp_path, source, "--max-reject-fraction", "0.2") == 0
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv", keep_default_na=False, dtype=str)
    got = [(int(r.source_row), r.column, r.value, r.rule) for r in rejects.itertuples()]
    expected = [(10 * p + 3 + 1, column, cell, rule) for p, (column, cell, rule) in enumerate(BAD_CELLS)]
    assert got == expected
    assert (rejects["source_file"] == "records.csv").all()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["rows"] == {"read": ROWS, "accepted": ROWS - len(BAD_CELLS), "rejected": len(BAD_CELLS),
                              "rejected_fraction": len(BAD_CELLS) / ROWS, "max_reject_fraction": 0.2}
    by_rule = {(item["column"], item["rule"]): item["count"] for item in report["rejects"]["by_column_rule"]}
    assert by_rule[("age", "in_range(16, 100)")] == 2
    assert by_rule[("absenteeism_time_in_hours", "required")] == 1
    examples = {(item["column"], item["rule"]): item["examples"] for item in report["rejects"]["by_column_rule"]}
    assert examples[("age", "in_range(16, 100)")] == ["130", "7"]  # as written, in row order
    assert examples[("hit_target", "integer")] == ["abc"] and examples[("weight", "required")] == [None]
    training_set = pd.read_parquet(tmp_path / "out" / "training_set.parquet")
    assert not set(training_set["source_row"]) & {row for row, *_ in expected}


def test_a_row_with_several_faults_is_one_rejected_row_with_each_fault(tmp_path, clean_frame):
    clean_frame.loc[5, ["age", "pet", "seasons"]] = ["200", "x", ""]
    source = _write(clean_frame, tmp_path / "records.csv")
    assert _run(tmp_path, source) == 0
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv", keep_default_na=False, dtype=str)
    assert [(r.source_row, r.column, r.rule) for r in rejects.itertuples()] == [
        ("6", "seasons", "required"), ("6", "age", "in_range(16, 100)"), ("6", "pet", "integer")]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["rows"]["rejected"], report["rejects"]["violations"]) == (1, 3)


def test_unparseable_cell_is_reported_once_not_also_as_a_range_fault(tmp_path, clean_frame):
    clean_frame.loc[0, "month_of_absence"] = "March"  # parse failure; the 0 placeholder must not add isin
    source = _write(clean_frame, tmp_path / "records.csv")
    assert _run(tmp_path, source) == 0
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv", keep_default_na=False, dtype=str)
    assert rejects[["source_row", "column", "rule", "value"]].values.tolist() == [
        ["1", "month_of_absence", "integer", "March"]]


def test_reject_fraction_over_threshold_exits_3_and_still_writes_rejects(tmp_path, clean_frame, capsys):
    for row in range(30):  # 15% of the rows
        clean_frame.loc[row, "month_of_absence"] = "0"
    source = _write(clean_frame, tmp_path / "records.csv")
    assert _run(tmp_path, source, "--max-reject-fraction", "0.1") == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "bad data: 30 of 200 rows (15.00%) broke the raw schema, more than the allowed 10.00%" in err
    rejects_file = Path(re.search(r"is in (\S+/rejects\.csv) ", err).group(1))  # kept aside, the message says where
    rejects = pd.read_csv(rejects_file)
    assert len(rejects) == 30 and set(rejects["column"]) == {"month_of_absence"}
    assert not (tmp_path / "out" / "serving_config.pb").exists()
    assert not (tmp_path / "out" / "rejects.csv").exists()  # nothing published
    # The same data passes with a looser threshold.
    assert _run(tmp_path, source, "--max-reject-fraction", "0.15") == 0


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("ID;Age\r\n1;30\r\n", "missing columns"),
    ("", "records.csv is empty: it has no header line"),
    (";".join(c.csv_header for c in RAW_COLUMNS) + ";Absenteeism time in hours\r\n1;2;3\r\n",
     "records.csv: cannot be read as the data set's format: CSV parse error"),
    ("ID;Age\r\n\xff\xfe\x00\x81;\x9c\r\n", "cannot be read"),
], ids=["missing-file", "missing-columns", "empty-file", "ragged-line", "binary-junk"])
def test_unreadable_input_exits_3_with_one_clear_message(tmp_path, capsys, content, message):
    source = tmp_path / "records.csv"
    if content is not None:
        source.write_bytes(content.encode("latin-1"))
    assert _run(tmp_path, source) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if line.startswith("etl_job:")]) == 1
    assert message in err[-1] and err[-1].startswith("etl_job: bad data: ")
    assert err[-1].isprintable()


def test_input_without_data_rows_exits_3(tmp_path, clean_frame, capsys):
    source = _write(clean_frame.iloc[:0], tmp_path / "records.csv")
    assert _run(tmp_path, source) == 3
    assert "no data rows" in capsys.readouterr().err


def test_data_that_cannot_train_exits_3(tmp_path, clean_frame, capsys):
    clean_frame["age"] = "40"  # every row the same age: age cannot be standardized
    source = _write(clean_frame, tmp_path / "records.csv")
    assert _run(tmp_path, source) == 3
    err = capsys.readouterr().err
    assert "break a check of the feature module" in err and "age_zero_mean_unit_variance" in err


@pytest.mark.parametrize("argv", [
    ["run", "--max-reject-fraction", "1.5"],
    ["run", "--test-fraction", "0"],
    ["run", "--alpha", "-1"],
    ["run", "--alpha", "inf"],
    ["run", "--seed", "x"],
    ["run", "--no-such-option"],
    ["generate", "--rows", "10"],  # --output is required
    [],
])
def test_bad_usage_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_generate_to_an_unknown_suffix_is_bad_usage(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["generate", "--rows", "5", "--output", str(tmp_path / "records.txt")])
    assert exit_info.value.code == 2
    assert "expected a .csv or .parquet" in capsys.readouterr().err


def test_internal_error_exits_1_with_one_line(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(local_engine, "train", broken)
    assert cli.main(["run", "--output-dir", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "etl_job: internal error: RuntimeError: boom" in err
    assert "Traceback" not in err


def test_exit_code_3_from_a_real_process(tmp_path):
    done = subprocess.run([sys.executable, "-m", "etl_job", "run", "--input", str(tmp_path / "absent.csv"),
                           "--output-dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines()[-1] == f"etl_job: bad data: input {tmp_path / 'absent.csv'} does not exist"


def _with_header_duplicated(path: Path, header: str, copy_as: str) -> None:
    """Rewrites a CSV with column `header` repeated right after itself, named `copy_as`."""
    lines = path.read_bytes().decode().split("\r\n")
    position = lines[0].split(";").index(header)
    rows = []
    for number, line in enumerate(lines):
        cells = line.split(";") if line else []
        if cells:
            cells.insert(position + 1, cells[position] if number else copy_as)
        rows.append(";".join(cells))
    path.write_bytes("\r\n".join(rows).encode())


@pytest.mark.parametrize("copy_as", ["Age", "Age "], ids=["same", "trailing-space"])
def test_a_duplicated_column_in_a_csv_header_is_bad_data_naming_it(tmp_path, clean_frame, capsys, copy_as):
    source = _write(clean_frame, tmp_path / "records.csv")
    _with_header_duplicated(source, "Age", copy_as)
    assert _run(tmp_path, source) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "etl_job: bad data: records.csv: column 'age' appears 2 times in the header"


def test_a_duplicated_column_in_a_parquet_file_is_bad_data_naming_it(tmp_path, clean_frame, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(clean_frame, preserve_index=False)
    names = [c.csv_header for c in (*RAW_COLUMNS, LABEL)]
    table = pa.table([*table.columns, table.column("son")], names=[*names, "Son"])
    pq.write_table(table, tmp_path / "records.parquet")
    assert _run(tmp_path, tmp_path / "records.parquet") == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "etl_job: bad data: records.parquet: column 'son' appears 2 times in the header"


def test_a_number_too_large_for_its_column_is_rejected_showing_the_input_text(tmp_path, clean_frame):
    """Integers beyond int64 (and 1e20 for an integer label) are shown as written, not as a wrapped int64."""
    huge = {0: ("age", "99999999999999999999"), 1: ("id", "9223372036854775808"),
            2: ("absenteeism_time_in_hours", "1e20"), 3: ("age", "-99999999999999999999"),
            4: ("weight", "1e400")}
    for position, (column, cell) in huge.items():
        clean_frame.loc[position, column] = cell
    source = _write(clean_frame, tmp_path / "records.csv")
    assert _run(tmp_path, source, "--max-reject-fraction", "0.1") == 0
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv", keep_default_na=False, dtype=str)
    rules = {c.name: raw_schema.rule_text(c.check) for c in (*RAW_COLUMNS, LABEL)}
    expected = [(str(p + 1), column, cell, rules[column]) for p, (column, cell) in huge.items()]
    expected[-1] = ("5", "weight", "1e400", "number")  # not finite: not a number at all
    assert [(r.source_row, r.column, r.value, r.rule) for r in rejects.itertuples()] == expected
    assert all(cell in description for (_, _, cell, _), description in zip(expected, rejects["description"]))
