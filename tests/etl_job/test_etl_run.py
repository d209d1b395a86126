"""The ETL job end to end, on the bundled sample and on the real data set: outputs exist and agree
with each other, with the input, and with an independent computation of the statistics."""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from absenteeism import aggregates, config_io, dataflow, features
from absenteeism.absenteeism_schema import LABEL, RAW_COLUMNS
from absenteeism.dataset import training_set_files
from absenteeism.online.reference import ReferencePredictor
from etl_job import cli, run_settings, step_progress
from etl_job.split import held_out
from etl_job.training import FitSettings
from testkit.feature_oracle import expected_features, expected_prediction
from testkit.paths import REAL_DATA, require_real_data

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

AGE_HEADER = next(c.csv_header for c in RAW_COLUMNS if c.name == "age")


def _inputs():
    yield pytest.param(run_settings.SAMPLE_INPUT, id="sample")
    yield pytest.param(REAL_DATA, id="real")


@pytest.fixture(scope="module", params=list(_inputs()))
def job(request, tmp_path_factory):
    source = request.param if request.param != REAL_DATA else require_real_data()
    out = tmp_path_factory.mktemp("etl")
    assert cli.main(["run", "--input", str(source), "--output-dir", str(out), "--no-progress"]) == 0
    return source, out


def _raw_rows(path: Path) -> list[dict[str, str]]:
    """The input's data rows read with the csv module alone (header names stripped), 1-based."""
    with open(path, newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream, delimiter=";"))
    header = [h.strip() for h in rows[0]]
    return [dict(zip(header, row)) for row in rows[1:]]


def test_all_outputs_are_written(job):
    _, out = job
    for name in ("serving_config.pb", "serving_config.json", "training_set.parquet", "report.json", "rejects.csv"):
        file = out / name / "part-00000.parquet" if name == "training_set.parquet" else out / name
        assert file.is_file() and file.stat().st_size > 0, name
        assert os.readlink(out / name) == f"..data/{name}"  # published through the one link of the run
    assert sorted(p.name for p in (out / "training_set.parquet").iterdir()) == ["_common_metadata", "part-00000.parquet"]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_counts_add_up_and_match_the_input(job):
    source, out = job
    report = json.loads((out / "report.json").read_text())
    config = config_io.read_config(out / "serving_config.pb")
    rejects = pd.read_csv(out / "rejects.csv")
    training_set = pd.read_parquet(out / "training_set.parquet")
    rows = report["rows"]
    assert rows["read"] == len(_raw_rows(source))
    assert rows["accepted"] + rows["rejected"] == rows["read"]
    assert rows["rejected"] == rejects["source_row"].nunique() > 0
    assert len(training_set) == rows["accepted"]
    assert (config.provenance.rows.read, config.provenance.rows.accepted, config.provenance.rows.rejected) == (
        rows["read"], rows["accepted"], rows["rejected"])
    # Every source row is either in the training set or rejected, never both.
    accepted, rejected = set(training_set["source_row"]), set(rejects["source_row"])
    assert not accepted & rejected
    assert accepted | rejected == set(range(1, rows["read"] + 1))
    assert sum(item["count"] for item in report["rejects"]["by_column_rule"]) == len(rejects)
    assert report["config"]["content_sha256"] == config.content_sha256


def test_rejects_carry_reasons(job):
    source, out = job
    rejects = pd.read_csv(out / "rejects.csv", keep_default_na=False)
    assert list(rejects.columns) == ["source_row", "source_file", "column", "rule", "value", "description"]
    assert (rejects["source_file"] == source.name).all()
    known = {c.name for c in (*RAW_COLUMNS, LABEL)}
    assert set(rejects["column"]) <= known
    assert (rejects["rule"] != "").all()
    for row in rejects.itertuples():
        assert row.description.startswith(f"{row.column}: ")
    raw = _raw_rows(source)
    if source == REAL_DATA:  # three records have month 0
        assert list(rejects["source_row"]) == [738, 739, 740]
        assert set(rejects["column"]) == {"month_of_absence"}
    for row in rejects.itertuples():  # the value recorded is the one in the file
        header = next(c.csv_header for c in (*RAW_COLUMNS, LABEL) if c.name == row.column)
        assert raw[row.source_row - 1][header].strip() == str(row.value)


def test_statistics_equal_an_independent_computation(job):
    source, out = job
    training_set = pd.read_parquet(out / "training_set.parquet")
    raw = _raw_rows(source)
    ages = [int(raw[r - 1][AGE_HEADER]) for r in training_set["source_row"]]
    config = config_io.read_config(out / "serving_config.pb")
    report = json.loads((out / "report.json").read_text())
    carried = config.statistics.values
    age_mean, age_std_dev = carried["age_mean"].scalar, carried["age_std_dev"].scalar
    assert config.statistics.row_count == len(ages) and set(carried) == {"age_mean", "age_std_dev"}
    assert age_mean == pytest.approx(statistics.fmean(ages), rel=1e-12)
    assert age_std_dev == pytest.approx(statistics.pstdev(ages), rel=1e-12)  # population: ddof 0
    assert report["statistics"]["aggregates"] == {"age_mean": age_mean, "age_std_dev": age_std_dev}
    standardized = (np.array(ages) - age_mean) / age_std_dev
    np.testing.assert_array_equal(training_set["age_zero_mean_unit_variance"].to_numpy(), standardized)


def test_training_set_layout_label_and_predictions(job):
    source, out = job
    training_set = pd.read_parquet(out / "training_set.parquet")
    config = config_io.read_config(out / "serving_config.pb")
    # The label column is named after the label node (the default: absence_hours, the raw hours as recorded).
    assert config.label == "absence_hours"
    assert list(training_set.columns) == ["source_row", *features.MODEL_FEATURES, config.label, "prediction", "split"]
    # Which side of the split each row is on, as the job's split function puts it, and whose config it is.
    test = held_out(training_set["source_row"].to_numpy(), FitSettings().seed, FitSettings().test_fraction)
    assert training_set["split"].astype(str).tolist() == ["held_out" if t else "train" for t in test]
    assert training_set_files.config_id_of(out / "training_set.parquet") == config.content_sha256
    assert all(training_set[name].dtype == np.float64 for name in features.MODEL_FEATURES)
    assert training_set["source_row"].is_monotonic_increasing
    raw = _raw_rows(source)
    labels = [int(raw[r - 1][LABEL.csv_header]) for r in training_set["source_row"]]
    assert training_set[config.label].tolist() == labels
    matrix = training_set[list(features.MODEL_FEATURES)].to_numpy()
    model = config.model
    expected = np.array([expected_prediction(model.intercept, model.coefficients, row) for row in matrix])
    assert training_set["prediction"].to_numpy().view(np.uint64).tolist() == expected.view(np.uint64).tolist()


def test_golden_rows_carry_the_features_and_prediction_an_independent_computation_gives(job):
    """Each golden row's features and prediction, recomputed from its raw record by the oracle
    (testkit.feature_oracle, written apart from the feature module and the model), bit for bit."""
    _, out = job
    config = config_io.read_config(out / "serving_config.pb")
    carried = {name: value.scalar for name, value in config.statistics.values.items()}
    assert len(config.golden_rows) > 1
    for golden_row in config.golden_rows:
        record = {c.name: getattr(golden_row.record, c.name) for c in RAW_COLUMNS}
        meaning = expected_features(record, carried)
        expected = np.array([meaning[name] for name in features.MODEL_FEATURES], dtype=np.float64)
        assert list(config.feature_names) == list(features.MODEL_FEATURES)
        assert np.asarray(golden_row.features).view(np.uint64).tolist() == expected.view(np.uint64).tolist(), record
        prediction = expected_prediction(config.model.intercept, config.model.coefficients, expected)
        assert np.float64(golden_row.prediction).view(np.uint64) == np.float64(prediction).view(np.uint64), record


def test_golden_rows_copy_no_input_row_and_take_every_category_value(job):
    """GetServingConfig hands the golden rows to any caller: they are built from the raw schema,
    never from the input (which holds health data); together they take every allowed value of
    every category column and both ends of every range."""
    source, out = job
    config = config_io.read_config(out / "serving_config.pb")
    golden_records = {tuple(getattr(g.record, c.name) for c in RAW_COLUMNS) for g in config.golden_rows}
    inputs = set()
    for row in _raw_rows(source):
        try:
            inputs.add(tuple(float(row[c.csv_header.strip()]) for c in RAW_COLUMNS))
        except ValueError:  # a cell the job refuses (empty, '?'): not a row that could be copied
            continue
    assert len(inputs) > 600  # distinct rows (the real data set repeats some)
    assert not {tuple(float(v) for v in record) for record in golden_records} & inputs
    for position, column in enumerate(RAW_COLUMNS):
        taken = {record[position] for record in golden_records}
        statistics_ = column.check.statistics
        if column.check.name == "isin":
            assert taken == set(statistics_["allowed_values"]), column.name
        else:
            assert {statistics_["min_value"], statistics_["max_value"]} <= taken, column.name


def test_config_verifies_against_the_reference_online_path(job):
    source, out = job
    config = config_io.read_config(out / "serving_config.pb")
    config_io.verify_config(config, ReferencePredictor(config))
    assert list(config.provenance.input_files) == [source.name]
    assert config.provenance.input_sha256 == __import__("hashlib").sha256(source.read_bytes()).hexdigest()
    assert config.provenance.created_at.seconds > 0
    # The JSON view says the same as the binary.
    assert json.loads((out / "serving_config.json").read_text())["content_sha256"] == config.content_sha256


def test_model_beats_the_mean_baseline(job):
    _, out = job
    metrics = json.loads((out / "report.json").read_text())["metrics"]
    assert metrics["rmse"] < metrics["baseline_rmse"]
    assert metrics["test_rows"] + metrics["train_rows"] == json.loads((out / "report.json").read_text())["rows"]["accepted"]


def test_report_times_every_step(job):
    _, out = job
    timings = json.loads((out / "report.json").read_text())["timings_seconds"]
    assert set(timings) == {*step_progress.STEPS, "total"}
    assert all(seconds >= 0 for seconds in timings.values())
    assert timings["total"] >= sum(timings[s] for s in step_progress.STEPS) - 1e-3


def test_bare_run_uses_the_bundled_sample_and_build_dir(tmp_path):
    """`python -m etl_job run` with no options, as the README runs it (in a fresh working folder)."""
    done = subprocess.run([sys.executable, "-m", "etl_job", "run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # logs go to stderr
    assert "2000 rows read" in done.stderr
    assert (tmp_path / "build" / "serving_config.pb").is_file()
    report = json.loads((tmp_path / "build" / "report.json").read_text())
    assert report["input"]["files"][0]["name"] == run_settings.SAMPLE_INPUT.name


def test_feature_matrix_of_training_set_matches_dataflow(job):
    """The training set holds exactly what the feature module computes for the accepted rows."""
    source, out = job
    training_set = pd.read_parquet(out / "training_set.parquet")
    config = config_io.read_config(out / "serving_config.pb")
    from absenteeism.dataset import reader

    typed = reader.read_typed(source).frame.loc[training_set["source_row"]]
    injected = aggregates.from_message(config.statistics, dataflow.aggregate_names())
    matrix = dataflow.feature_matrix(dataflow.compute_features(typed, injected))
    np.testing.assert_array_equal(matrix, training_set[list(features.MODEL_FEATURES)].to_numpy())


def test_progress_bars_go_to_stderr_only_when_asked(tmp_path, capsys):
    assert cli.main(["run", "--output-dir", str(tmp_path / "with"), "--progress"]) == 0
    shown = capsys.readouterr()
    assert shown.out == ""
    assert f"{len(step_progress.STEPS)}/{len(step_progress.STEPS)}" in shown.err and "etl: load" in shown.err
    assert cli.main(["run", "--output-dir", str(tmp_path / "without"), "--no-progress"]) == 0
    assert "etl: load" not in capsys.readouterr().err
