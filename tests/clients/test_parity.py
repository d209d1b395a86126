"""Train/serve parity, the promise of the project: the ETL job's features and predictions equal the
server's, bit for bit, for every row, over Predict, PredictBatch and PredictStream, on both
online paths; and the job checks the online path itself before it writes a config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from absenteeism import aggregates, config_io, dataflow, features, parity
from absenteeism.absenteeism_schema import RAW_COLUMNS
from absenteeism.online import converters
from clients import PredictionClient
from etl_job import online_parity, pipeline, run_settings
from testkit.paths import REPO_ROOT
from testkit.records import VALID_ROW
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

ROOT = REPO_ROOT


def run_etl(input_path: Path, output: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "etl_job", "run", "--input", str(input_path), "--output-dir",
                             str(output), "--no-progress"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr


def test_parity_refuses_the_training_set_of_another_run_naming_both_configs(trained_config, tmp_path):
    """The same data and code, another run: another config id. Comparing would report mismatches
    that are no skew; parity refuses up front, naming both ids (exit 2)."""
    run_etl(trained_config.source, tmp_path)
    other = config_io.read_config(tmp_path / config_io.CONFIG_FILE).content_sha256
    assert other != trained_config.config.content_sha256
    with ServerProcess(trained_config.path) as server:
        result = parity_command(server.target, tmp_path, trained_config.source)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"belongs to config {other}, the server serves config {trained_config.config.content_sha256}" in result.stderr
    assert "PARITY" not in result.stdout


def parity_command(target: str, output: Path, input_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clients", "parity", "--target", target, "--insecure",
                           "--training-set", str(output / "training_set.parquet"), "--input", str(input_path),
                           "--no-progress", *extra], capture_output=True, text=True, timeout=1800)


def assert_identical(result: subprocess.CompletedProcess, rows: int) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    for mode in ("predict", "batch", "stream"):
        assert f"[{mode}] rows compared: {rows}, rows identical: {rows} (100%)" in result.stdout, result.stdout
    assert "PARITY: identical" in result.stdout


@pytest.mark.parametrize("predictor", ["fast", "reference"])
def test_parity_on_the_bundled_sample_in_all_three_modes(trained_config, predictor):
    output = trained_config.path.parent
    with ServerProcess(trained_config.path, "--predictor", predictor) as server:
        result = parity_command(server.target, output, trained_config.source)
    assert_identical(result, len(trained_config.accepted))


def test_parity_on_the_real_data_set(tmp_path, real_data):
    run_etl(real_data, tmp_path)
    with ServerProcess(tmp_path / config_io.CONFIG_FILE) as server:
        result = parity_command(server.target, tmp_path, real_data)
    assert_identical(result, 737)  # 740 rows, 3 quarantined (month 0)


@pytest.mark.slow
def test_parity_on_100k_synthetic_rows_through_the_fast_path(tmp_path):
    data = tmp_path / "synthetic.csv"
    subprocess.run([sys.executable, "-m", "etl_job", "generate", "--rows", "100000", "--seed", "42", "--output",
                    str(data)], check=True, capture_output=True, timeout=600)
    run_etl(data, tmp_path / "out")
    rows = len(pd.read_parquet(tmp_path / "out" / "training_set.parquet", columns=["source_row"]))
    assert rows >= 99_000
    with ServerProcess(tmp_path / "out" / config_io.CONFIG_FILE, "--predictor", "fast") as server:
        result = parity_command(server.target, tmp_path / "out", data, "--batch-size", "5000")
    assert_identical(result, rows)


def test_the_parity_command_reports_a_single_flipped_bit(trained_config, tmp_path):
    table = pd.read_parquet(trained_config.path.parent / "training_set.parquet")
    column = "age_zero_mean_unit_variance"
    table.loc[5, column] = np.nextafter(table.loc[5, column], np.inf)  # one ulp
    table.to_parquet(tmp_path / "training_set.parquet", index=False)
    with ServerProcess(trained_config.path) as server:
        result = parity_command(server.target, tmp_path, trained_config.source, "--modes", "batch")
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"{column}: 1 mismatches" in result.stdout
    assert f"row {table.loc[5, 'source_row']}" in result.stdout
    assert "PARITY: MISMATCH" in result.stdout


def test_compare_catches_names_in_another_order():
    names = features.MODEL_FEATURES
    matrix = np.zeros((2, len(names)))
    report = parity.compare([1, 2], names, matrix, np.zeros(2), tuple(reversed(names)), matrix, np.zeros(2))
    assert not report.identical and "order differ" in report.problems[0]


def test_compare_tells_negative_zero_from_zero():
    names = ("a",)
    report = parity.compare([7], names, np.array([[0.0]]), np.zeros(1), names, np.array([[-0.0]]), np.zeros(1))
    assert report.mismatch_counts == {"a": 1} and report.rows_identical == 0


CATEGORICAL_VALUES = {
    "reason_for_absence": range(29), "month_of_absence": range(1, 13), "day_of_the_week": range(2, 7),
    "seasons": range(1, 5), "disciplinary_failure": (0, 1), "education": range(1, 5), "social_drinker": (0, 1),
    "social_smoker": (0, 1), "son": range(21), "pet": range(51),
}


def test_one_row_requests_for_every_category_value_match_the_batch_path(trained_config, plaintext_server):
    """Every value of every categorical input, seen in training or not, one request each."""
    rows = [{**VALID_ROW, column: value} for column, values in CATEGORICAL_VALUES.items() for value in values]
    frame = pd.DataFrame(rows).astype({c.name: c.dtype for c in RAW_COLUMNS})
    injected = aggregates.from_message(trained_config.config.statistics, dataflow.aggregate_names())
    offline = dataflow.feature_matrix(dataflow.compute_features(frame, injected))
    with PredictionClient(plaintext_server.target, insecure=True, timeout=10) as client:
        responses = [client.predict(record, include_features=True) for record in converters.frame_to_records(frame)]
    for i, response in enumerate(responses):
        assert tuple(response.features) == features.MODEL_FEATURES
        online = np.array(list(response.features.values()), dtype=np.float64)
        assert np.array_equal(online.view(np.uint64), offline[i].view(np.uint64)), rows[i]


def test_the_job_records_its_own_online_parity_check(trained_config):
    import json

    report = json.loads((trained_config.path.parent / "report.json").read_text())
    assert report["online_parity"]["identical"] is True
    assert report["online_parity"]["rows_compared"] == len(trained_config.accepted)


def test_the_job_writes_no_config_when_the_online_path_disagrees(tmp_path, monkeypatch):
    from absenteeism.online.fast import FastPredictor

    original = FastPredictor.predict

    def skewed(self, records):
        result = original(self, records)
        result.features[:, 0] += 1.0  # the online path computes is_summer differently
        return result

    monkeypatch.setattr(FastPredictor, "predict", skewed)
    with pytest.raises(online_parity.ParityError, match="is_summer"):
        pipeline.run(run_settings.RunSettings(output_dir=tmp_path))
    assert not (tmp_path / config_io.CONFIG_FILE).exists()
    assert not (tmp_path / "training_set.parquet").exists()


def test_a_feature_function_changed_after_training_makes_the_server_refuse_the_old_config(trained_config, tmp_path):
    """Run the server from a copy of the code whose has_pet now counts pets above 1."""
    code = tmp_path / "code"
    for package in ("absenteeism", "feature_service"):
        shutil.copytree(ROOT / package, code / package, ignore=shutil.ignore_patterns("__pycache__"))
    module = code / "absenteeism" / "features.py"
    source = module.read_text()
    assert "return (pet > 0).astype(\"int64\")" in source
    module.write_text(source.replace("return (pet > 0).astype(\"int64\")", "return (pet > 1).astype(\"int64\")"))
    # PYTHONPATH puts the changed copy ahead of the installed project.
    server = ServerProcess(trained_config.path, env={"PYTHONPATH": str(code)})
    refused = subprocess.run(server.command, env=server.env, capture_output=True, text=True, timeout=120,
                             cwd=tmp_path)
    assert refused.returncode == 78, refused.stderr
    assert "config was built with a different feature module: rerun the ETL job" in refused.stderr


def test_a_parity_check_process_that_dies_is_an_error_not_a_pass(monkeypatch):
    monkeypatch.setattr(online_parity, "check", lambda *args, **kwargs: os._exit(9))
    with online_parity.Background() as check, pytest.raises(RuntimeError, match="exit code 9"):
        check.result()


def test_a_parity_check_error_that_does_not_pickle_reaches_the_job_in_words(monkeypatch):
    class Unpicklable(Exception):
        def __reduce__(self):
            raise TypeError("cannot pickle")

    def fail(*args, **kwargs):
        raise Unpicklable("the online path broke")

    monkeypatch.setattr(online_parity, "check", fail)
    with online_parity.Background() as check, pytest.raises(RuntimeError, match="the online path broke"):
        check.result()
