"""Records made from a raw schema alone (etl_job.schema_records): seeded, in the data set's own
dialect, every good row accepted by the job and exactly the broken rows rejected, the CLI's
`generate --dataset`, and edge records that cover the schema and pass (or break just one rule of)
the server's validation."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pytest

from absenteeism import absenteeism_schema, data_sets, violation_table
from absenteeism.dataset import raw_input
from absenteeism.dataset.reader import Reader
from absenteeism.online import converters
from absenteeism.raw_schema import REQUIRED, RawColumn, RawTable, parse_date
from absenteeism.violation_table import ViolationTable
from etl_job import cli, schema_records, validate
from penguins import penguin_schema
from testkit.paths import REPO_ROOT

PENGUINS = penguin_schema.TABLE
ROWS = 3000
UNSUPPORTED = RawTable((RawColumn("count", "Count", "int64", pa.Check.in_range(0, 9)),
                        RawColumn("weight", "Weight", "float64", pa.Check.greater_than(0.0))),
                       (RawColumn("label", "Label", "int64", pa.Check.isin([0, 1])),))
UNSUPPORTED_MESSAGE = "cannot generate values for column weight: its rule greater_than is not isin or in_range"


@pytest.fixture()
def activate():
    """Activates a data set for the test (the job's readers and validation read the active one),
    and the one active before afterwards."""
    previous = data_sets.active()
    yield data_sets.activate
    data_sets.activate(previous)


def _validated(path: Path) -> tuple[int, dict[int, set[str]]]:
    """The job's extract and validate steps over a file: rows accepted, and the columns of the
    violations of each rejected row by 0-based position."""
    reader = Reader(path)
    accepted, rejected = 0, defaultdict(set)
    for chunk in reader.chunks():
        validation = validate.validate_chunk(chunk.rows)
        accepted += len(validation.accepted)
        for violation in validation.violations:
            rejected[violation.row - 1].add(violation.column)  # source rows count from 1
    reader.extracted()
    return accepted, dict(rejected)


def _job(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etl_job", *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO_ROOT)


# ---- seeded, and following each rule ------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    paths = [tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"]
    made = []
    for path, seed in zip(paths, (42, 42, 43)):
        records = schema_records.generate_records(PENGUINS, 500, seed, bad_fraction=0.1)
        schema_records.write_csv(records.cells, PENGUINS, path)
        made.append(records)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()
    pd.testing.assert_frame_equal(made[0].defects, made[1].defects)
    assert list(made[0].bad_rows) != list(made[2].bad_rows)


def test_cells_follow_each_columns_kind_and_rule():
    cells = schema_records.generate_frame(PENGUINS, ROWS, seed=1)
    assert list(cells.columns) == [c.csv_header for c in PENGUINS.all_columns]
    assert len(cells) == ROWS
    for column in PENGUINS.all_columns:
        values = cells[column.csv_header]
        missing = values == "NA"
        if column.nullable:
            assert 0.06 < missing.mean() < 0.14, column.name  # about 10%
        else:
            assert not missing.any(), column.name
        present = values[~missing]
        assert (present != "").all() and (present == present.str.strip()).all(), column.name
        if column.text_categories:
            assert set(present) == set(column.text_categories), column.name  # every category, nothing else
    assert set(cells["Clutch Completion"]) == {"Yes", "No"}
    assert 0.45 < (cells["Clutch Completion"] == "Yes").mean() < 0.55
    dates = cells["Date Egg"]
    assert dates.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert dates.map(parse_date).between(penguin_schema.FIRST_DATE, penguin_schema.LAST_DATE).all()
    flippers = cells["Flipper Length (mm)"][cells["Flipper Length (mm)"] != "NA"]
    assert flippers.str.fullmatch(r"\d+").all() and flippers.astype(int).between(150, 250).all()
    culmen = cells["Culmen Length (mm)"][cells["Culmen Length (mm)"] != "NA"]
    assert all(repr(float(text)) == text for text in culmen)  # the text reads back as the same float
    assert culmen.astype(float).between(20.0, 70.0).all() and culmen.str.fullmatch(r"\d+\.\d{1,2}").all()
    comments = cells["Comments"][cells["Comments"] != "NA"]
    assert comments.str.contains(",").any() and comments.str.contains('"').any()
    assert comments.map(lambda text: not text.isascii()).any()


# ---- the job's validation: every good row accepted, exactly the broken ones rejected -------------


@pytest.mark.parametrize("name", ["penguins", "absenteeism"])
def test_every_good_row_is_accepted_by_the_job(tmp_path, activate, name):
    table = activate(name).table
    path = tmp_path / "records.csv"
    schema_records.write_csv(schema_records.generate_frame(table, ROWS, seed=5), table, path)
    accepted, rejected = _validated(path)
    assert rejected == {}
    assert accepted == ROWS


@pytest.mark.parametrize(("name", "suffix"), [("penguins", ".csv"), ("penguins", ".parquet"),
                                              ("absenteeism", ".csv")])
def test_rejected_rows_are_exactly_the_broken_ones(tmp_path, activate, name, suffix):
    table = activate(name).table
    records = schema_records.generate_records(table, ROWS, seed=8, bad_fraction=0.2)
    path = tmp_path / f"records{suffix}"
    schema_records.write(records.cells, table, path)
    accepted, rejected = _validated(path)
    defects = records.defects
    assert len(defects) == round(ROWS * 0.2) and defects["row"].is_unique
    # Each broken row is rejected for the column it was broken in, and no other row is.
    assert rejected == {row: {column} for row, column in zip(defects["row"], defects["column"])}
    assert accepted == ROWS - len(defects)
    kinds = set(defects["kind"])
    expected = {"outside_rule", "required_empty", "not_a_number"}
    if name == "penguins":
        expected |= {"not_a_date", "not_a_bool"}
    assert expected <= kinds


def test_defects_are_written_in_their_rows_and_columns():
    records = schema_records.generate_records(PENGUINS, 400, seed=2, bad_fraction=0.25)
    by_name = {c.name: c.csv_header for c in PENGUINS.all_columns}
    for row, column, kind, cell in records.defects.itertuples(index=False):
        assert records.cells.at[row, by_name[column]] == cell
        if kind == "required_empty":
            assert cell in ("", "NA") and not PENGUINS.by_name[column].nullable


# ---- files --------------------------------------------------------------------------------------


def test_csv_round_trips_quoted_commas_and_non_ascii(tmp_path, activate):
    activate("penguins")
    cells = schema_records.generate_frame(PENGUINS, 500, seed=4, bad_fraction=0.1)
    path = tmp_path / "records.csv"
    schema_records.write_csv(cells, PENGUINS, path)
    data = path.read_bytes()
    assert data.startswith(b"Sample Number,Island,") and data.endswith(b"\n") and b"\r" not in data
    assert b'"' in data and b'""' in data  # quoted cells, a quote inside one doubled
    # Python's csv reader gives back every cell as it was, header first.
    with open(path, encoding="utf-8", newline="") as stream:
        lines = list(csv.reader(stream))
    assert lines[0] == list(cells.columns)
    assert lines[1:] == cells.to_numpy().tolist()
    # So does the job's reader (stripped text, an empty cell missing): commas, quotes and non-ASCII intact.
    read = raw_input.read_file(path, require_label=True)
    expected = cells.rename(columns=PENGUINS.header_to_name).astype(object)
    expected = expected.where(expected != "", None)
    assert read.astype(object).equals(expected)
    comments = read["comments"].dropna()
    assert comments.str.contains(",").any() and comments.str.contains('"').any()
    assert comments.str.contains("Ünïcode ✓", regex=False).any()


def test_csv_is_written_in_the_tables_dialect(tmp_path):
    table = absenteeism_schema.TABLE
    path = tmp_path / "records.csv"
    schema_records.write_csv(schema_records.generate_frame(table, 50, seed=3), table, path)
    lines = path.read_bytes().split(b"\r\n")
    assert lines[0].decode() == ";".join(c.csv_header for c in table.all_columns)  # "Work load Average/day " too
    assert lines[-1] == b"" and len(lines) == 52  # CRLF after every line
    assert all(line.count(b";") == len(table.all_columns) - 1 for line in lines[:-1])


# ---- rules the generator cannot read ------------------------------------------------------------


def test_a_rule_that_is_not_isin_or_in_range_is_refused_naming_the_column():
    with pytest.raises(ValueError, match=re.escape(UNSUPPORTED_MESSAGE)):
        schema_records.generate_frame(UNSUPPORTED, 10, seed=0)
    with pytest.raises(ValueError, match=re.escape(UNSUPPORTED_MESSAGE)):
        schema_records.edge_records(UNSUPPORTED)


def test_generate_exits_2_for_a_data_set_whose_rules_it_cannot_read(tmp_path, activate, monkeypatch, capsys):
    broken = dataclasses.replace(data_sets.named("penguins"), name="broken", table=UNSUPPORTED)
    named = data_sets.named
    monkeypatch.setitem(data_sets.KNOWN, "broken", "not.imported")
    monkeypatch.setattr(data_sets, "named", lambda name: broken if name == "broken" else named(name))
    output = tmp_path / "records.csv"
    assert cli.main(["generate", "--dataset", "broken", "--rows", "10", "--output", str(output)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"etl_job: {UNSUPPORTED_MESSAGE}"
    assert not output.exists()


# ---- the generate command -----------------------------------------------------------------------


def test_generate_for_absenteeism_is_the_realistic_generator(tmp_path):
    default, named = tmp_path / "default.csv", tmp_path / "named.csv"
    assert cli.main(["generate", "--rows", "300", "--seed", "4", "--bad-fraction", "0.01",
                     "--output", str(default)]) == 0
    assert cli.main(["generate", "--dataset", "absenteeism", "--rows", "300", "--seed", "4", "--bad-fraction",
                     "0.01", "--output", str(named)]) == 0
    assert named.read_bytes() == default.read_bytes()


@pytest.mark.process
def test_generate_dataset_penguins_writes_a_file_the_job_accepts(tmp_path):
    path = tmp_path / "penguins.csv"
    generated = _job("generate", "--dataset", "penguins", "--rows", "400", "--seed", "9", "--output", str(path))
    assert generated.returncode == 0, generated.stderr
    # What the module writes for the same arguments, byte for byte.
    reference = tmp_path / "reference.csv"
    schema_records.write_csv(schema_records.generate_frame(PENGUINS, 400, seed=9), PENGUINS, reference)
    assert path.read_bytes() == reference.read_bytes()
    run = _job("run", "--dataset", "penguins", "--input", str(path), "--output-dir", str(tmp_path / "out"),
               "--no-progress")
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["rows"]["read"], report["rows"]["accepted"], report["rows"]["rejected"]) == (400, 400, 0)


@pytest.mark.process
def test_generate_bad_fraction_rows_are_the_jobs_rejects(tmp_path):
    path = tmp_path / "penguins.parquet"
    generated = _job("generate", "--dataset", "penguins", "--rows", "500", "--seed", "12", "--bad-fraction", "0.2",
                     "--output", str(path))
    assert generated.returncode == 0, generated.stderr
    run = _job("run", "--dataset", "penguins", "--input", str(path), "--output-dir", str(tmp_path / "out"),
               "--no-progress", "--max-reject-fraction", "0.5")
    assert run.returncode == 0, run.stderr
    defects = schema_records.generate_records(PENGUINS, 500, seed=12, bad_fraction=0.2).defects
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv", keep_default_na=False, dtype=str)
    assert sorted({(int(row) - 1, column) for row, column in zip(rejects["source_row"], rejects["column"])}) == \
        sorted(zip(defects["row"].tolist(), defects["column"].tolist()))
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["rows"]["accepted"], report["rows"]["rejected"]) == (400, 100)


# ---- edge records -------------------------------------------------------------------------------


def _request_violations(records: list[dict[str, object]]) -> list:
    """The violations the server's reference path finds in request dicts (active data set)."""
    messages = [converters.raw_record(**{k: v for k, v in record.items() if v is not None}) for record in records]
    arrays, missing = converters.records_to_arrays(messages)
    return list(ViolationTable.merged(missing, violation_table.find(pd.DataFrame(arrays))))


def test_edge_records_cover_every_category_range_end_and_missing_value():
    records = schema_records.edge_records(PENGUINS)
    assert records == schema_records.edge_records(PENGUINS)  # deterministic
    assert all(list(record) == list(PENGUINS.column_names) for record in records)  # request fields, no label
    taken = {name: [record[name] for record in records] for name in PENGUINS.column_names}
    assert set(penguin_schema.ISLANDS) <= set(taken["island"]) and set(penguin_schema.SEXES) <= set(taken["sex"])
    assert {True, False} <= set(taken["clutch_completion"])
    assert {"2000-01-01", "2030-12-31"} <= set(taken["date_egg"])  # the first and last allowed date
    for column in PENGUINS.columns:
        if column.check is not None and column.check.name == "in_range" and column.dtype != "date":
            statistics = column.check.statistics
            assert {statistics["min_value"], statistics["max_value"]} <= set(taken[column.name]), column.name
        if column.nullable:
            assert None in taken[column.name], column.name
    assert "" in taken["comments"] and any(isinstance(t, str) and not t.isascii() for t in taken["comments"])
    assert isinstance(taken["sample_number"][0], int) and isinstance(taken["culmen_length_mm"][0], float)


def test_edge_records_pass_the_servers_validation(activate):
    activate("penguins")
    assert _request_violations(schema_records.edge_records(PENGUINS)) == []


def test_invalid_edge_records_each_break_just_their_fields_rule(activate):
    activate("penguins")
    invalid = schema_records.invalid_edge_records(PENGUINS)
    assert invalid == schema_records.invalid_edge_records(PENGUINS)
    for record, field, kind in invalid:
        [violation] = _request_violations([record])
        assert (violation.column, violation.rule.split("(")[0]) == (field, kind), (record, violation)
    broken = {(field, kind) for _, field, kind in invalid}
    required = {c.name for c in PENGUINS.columns if not c.nullable}
    assert {field for field, kind in broken if kind == REQUIRED} == required
    assert {("island", "isin"), ("sex", "isin"), ("date_egg", "date"), ("date_egg", "in_range")} <= broken
    ranges = [c.name for c in PENGUINS.columns if c.check is not None and c.check.name == "in_range"]
    assert all(sum(1 for _, f, k in invalid if (f, k) == (name, "in_range")) == 2 for name in ranges)
