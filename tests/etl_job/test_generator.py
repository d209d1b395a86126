"""The synthetic record generator: seeded, the data set's exact file format, realistic, fast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from absenteeism import absenteeism_schema, raw_schema
from absenteeism.absenteeism_schema import LABEL, RAW_COLUMNS
from absenteeism.dataset import cell_parsing, raw_input, raw_writers
from etl_job import cli, run_settings, synthetic

HEADER = ("ID;Reason for absence;Month of absence;Day of the week;Seasons;Transportation expense;"
          "Distance from Residence to Work;Service time;Age;Work load Average/day ;Hit target;"
          "Disciplinary failure;Education;Son;Social drinker;Social smoker;Pet;Weight;Height;Body mass index;"
          "Absenteeism time in hours")
EMPLOYEE_ATTRIBUTES = ("transportation_expense", "distance_from_residence_to_work", "service_time", "age",
                       "education", "son", "social_drinker", "social_smoker", "pet", "weight", "height",
                       "body_mass_index")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic.to_frame(synthetic.generate(50_000, seed=5))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    paths = [tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"]
    for path, seed in zip(paths, (42, 42, 43)):
        assert cli.main(["generate", "--rows", "3000", "--seed", str(seed), "--bad-fraction", "0.01",
                         "--output", str(path)]) == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_csv_format_is_the_data_sets(tmp_path):
    path = tmp_path / "records.csv"
    synthetic.write(synthetic.generate(500, seed=1, bad_fraction=0.05), path)
    data = path.read_bytes()
    lines = data.split(b"\r\n")
    assert lines[0].decode() == HEADER
    assert lines[-1] == b"" and len(lines) == 502  # CRLF after every line, the last one too
    assert b"\n" not in data.replace(b"\r\n", b"") and b'"' not in data
    assert all(line.count(b";") == 20 for line in lines[:-1])
    # Identical to what the data set's own writer (raw_writers.write_csv) writes for the same records.
    reference = tmp_path / "reference.csv"
    raw_writers.write_csv(synthetic.to_frame(synthetic.generate(500, seed=1, bad_fraction=0.05)), reference)
    assert data == reference.read_bytes()


def test_real_file_has_the_same_header_and_line_ends(real_data):
    first_line = real_data.read_bytes().split(b"\r\n", 1)[0]
    assert first_line.decode() == HEADER


def test_clean_records_pass_the_training_schema(frame):
    typed, parse_failures = cell_parsing.parse_columns(frame.astype(object).map(str))
    assert parse_failures == []
    assert absenteeism_schema.TABLE.find_violations(typed, training=True) == []
    assert list(frame.columns) == [c.name for c in (*RAW_COLUMNS, LABEL)]


def test_employees_have_fixed_attributes(frame):
    per_employee = frame.groupby("id")[list(EMPLOYEE_ATTRIBUTES)].nunique()
    assert (per_employee == 1).all().all()
    # About ROWS_PER_EMPLOYEE absences each, some employees far more often than others.
    counts = frame["id"].value_counts()
    assert 0.9 * 50_000 / synthetic.ROWS_PER_EMPLOYEE < len(counts) <= 50_000 / synthetic.ROWS_PER_EMPLOYEE
    assert counts.max() > 5 * counts.median()
    # Weight follows from height and body mass index, as in the data set.
    implied_bmi = frame["weight"] / (frame["height"] / 100.0) ** 2
    assert (abs(implied_bmi - frame["body_mass_index"]) < 1.0).all()
    assert (frame["service_time"] <= frame["age"] - 18).all()


def test_distributions_look_like_the_data_set(frame):
    employees = frame.drop_duplicates("id")
    assert 33 < employees["age"].mean() < 41 and 4 < employees["age"].std() < 10
    assert 165 < employees["height"].mean() < 180
    assert set(frame["month_of_absence"]) == set(range(1, 13))
    assert set(frame["day_of_the_week"]) == {2, 3, 4, 5, 6}
    assert frame["day_of_the_week"].value_counts(normalize=True)[5] < frame["day_of_the_week"].value_counts(
        normalize=True)[2]  # fewer Thursdays than Mondays, as in the data set
    # Seasons follow the months as the data set codes them (1 from late June, 4 from late September, ...).
    by_month = frame.groupby("month_of_absence")["seasons"].agg(set).to_dict()
    assert by_month[1] == {2} and by_month[4] == {3} and by_month[7] == {1} and by_month[10] == {4}
    assert by_month[3] == {2, 3} and by_month[6] == {3, 1} and by_month[9] == {1, 4} and by_month[12] == {4, 2}
    assert 0.03 < frame["disciplinary_failure"].mean() < 0.08


def test_label_depends_on_the_features_with_a_heavy_tail(frame):
    hours = frame[LABEL.name]
    assert 4 < hours.mean() < 10 and hours.median() <= 8
    assert hours.max() >= 80 and 0.02 < (hours >= 16).mean() < 0.15  # multi-day absences are rare but long
    assert (hours[frame["disciplinary_failure"] == 1] == 0).all()
    reason = frame["reason_for_absence"]
    disease = hours[(reason >= 1) & (reason <= 21)].mean()
    consultation = hours[reason.isin([22, 23, 28])].mean()
    assert disease > 2 * consultation
    monday, friday = hours[frame["day_of_the_week"] == 2].mean(), hours[frame["day_of_the_week"] == 6].mean()
    assert monday > friday
    assert hours[frame["age"] >= 45].mean() > hours[frame["age"] <= 30].mean()


@pytest.mark.parametrize("bad_fraction", [0.01, 0.2])
def test_bad_fraction_injects_each_kind_of_quirk_in_that_many_rows(tmp_path, bad_fraction):
    rows = 5000
    path = tmp_path / "records.csv"
    synthetic.write(synthetic.generate(rows, seed=9, bad_fraction=bad_fraction), path)
    cells = raw_input.read_file(path, require_label=True)
    typed, violations = cell_parsing.parse_columns(cells)
    violations += absenteeism_schema.TABLE.find_violations(typed, training=True)
    assert len({v.row for v in violations}) == round(rows * bad_fraction)
    rules = {(v.column, v.rule) for v in violations}
    assert ("month_of_absence", "isin([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])") in rules
    assert ("age", "in_range(16, 100)") in rules
    assert any(rule == raw_schema.REQUIRED for _, rule in rules)
    assert any(rule in ("integer", "number") for _, rule in rules)


def test_parquet_output_holds_the_same_records(tmp_path):
    records = synthetic.generate(1000, seed=4, bad_fraction=0.02)
    synthetic.write(records, tmp_path / "records.csv")
    synthetic.write(records, tmp_path / "records.parquet")
    from_csv = raw_input.read_file(tmp_path / "records.csv", require_label=True)
    from_parquet = raw_input.read_file(tmp_path / "records.parquet", require_label=True)
    pd.testing.assert_frame_equal(from_csv, from_parquet)


def test_bundled_sample_is_what_the_generator_makes(tmp_path):
    path = tmp_path / "sample.csv"
    synthetic.write(synthetic.generate(synthetic.SAMPLE_ROWS, synthetic.SAMPLE_SEED, synthetic.SAMPLE_BAD_FRACTION),
                    path)
    assert path.read_bytes() == run_settings.SAMPLE_INPUT.read_bytes()


def test_a_million_rows_are_written_whole(tmp_path):
    """How long it takes is a benchmark's figure (bench/etl.py prints the generator's time)."""
    records = synthetic.generate(1_000_000, seed=1, bad_fraction=0.001)
    synthetic.write(records, tmp_path / "million.csv")
    assert (tmp_path / "million.csv").read_bytes().count(b"\r\n") == 1_000_001


def test_employee_ids_stay_within_the_raw_schema_however_many_rows():
    records = synthetic.generate(250_000, seed=3)  # 12,500 employees at 20 rows each: more than ids allow
    ids = records.columns["id"]
    assert ids.min() >= 1 and ids.max() == synthetic.MAX_EMPLOYEE_ID == 10_000
    assert synthetic.employee_count(10**9) == 10_000


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="rows"):
        synthetic.generate(-1, seed=0)
    with pytest.raises(ValueError, match="bad_fraction"):
        synthetic.generate(10, seed=0, bad_fraction=1.5)
    assert len(synthetic.generate(0, seed=0)) == 0
    np.testing.assert_array_equal(synthetic.generate(10, seed=0).columns["id"] >= 1, True)


def test_chunked_generation_is_seeded_shares_employees_and_spreads_quirks(tmp_path):
    rows, bad_fraction = 2500, 0.01
    chunks = list(synthetic.generate_chunks(rows, seed=6, bad_fraction=bad_fraction, chunk_rows=1000))
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    again = list(synthetic.generate_chunks(rows, seed=6, bad_fraction=bad_fraction, chunk_rows=1000))
    for first, second in zip(chunks, again):
        for name in first.columns:
            np.testing.assert_array_equal(first.columns[name], second.columns[name])
    # Later chunks draw their own rows, not a copy of the first chunk's.
    assert not np.array_equal(chunks[0].columns["age"][:500], chunks[2].columns["age"])
    # One staff for the whole file: an employee's attributes are the same in every chunk.
    clean = synthetic.generate_chunks(rows, seed=6, chunk_rows=1000)
    frame = synthetic.to_frame(synthetic._concat(list(clean)))
    per_employee = frame.groupby("id")[list(EMPLOYEE_ATTRIBUTES)].nunique()
    assert (per_employee == 1).all().all()
    assert frame["id"].nunique() > 100
    # Streaming the chunks writes what writing them all at once does; quirks total round(rows * fraction).
    path = tmp_path / "streamed.csv"
    synthetic.write_chunks(iter(chunks), path)
    whole = tmp_path / "whole.csv"
    synthetic.write(synthetic._concat(chunks), whole)
    assert path.read_bytes() == whole.read_bytes()
    cells = raw_input.read_file(path, require_label=True)
    typed, violations = cell_parsing.parse_columns(cells)
    violations += absenteeism_schema.TABLE.find_violations(typed, training=True)
    assert len({v.row for v in violations}) == round(rows * bad_fraction)


def test_chunked_parquet_with_quirks_is_all_text_and_reads_like_its_csv(tmp_path):
    chunks = list(synthetic.generate_chunks(2500, seed=6, bad_fraction=0.01, chunk_rows=1000))
    synthetic.write_chunks(iter(chunks), tmp_path / "records.parquet", all_text=True)
    synthetic.write_chunks(iter(chunks), tmp_path / "records.csv")
    from_csv = raw_input.read_file(tmp_path / "records.csv", require_label=True)
    from_parquet = raw_input.read_file(tmp_path / "records.parquet", require_label=True)
    pd.testing.assert_frame_equal(from_csv, from_parquet)
