"""The job with every model kind: the Dask engine gives the local engine's outputs bit for bit; a
session with ONNX Runtime's default threading is caught by the job's own parity check and nothing
is published; the choices are checked before any row is read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from absenteeism import config_io, onnx_checks
from etl_job import online_parity, pipeline, run_settings, training
from testkit.paths import REPO_ROOT
from testkit.run_outputs import assert_same_outputs

pytestmark = pytest.mark.process  # starts a cluster and job processes: `make test`, not `make test-fast`

KINDS = [("gbt", "absence_hours"), ("gbt", "long_absence"),
         ("testkit.estimators:scaled_logistic_regression", "long_absence")]


def run(input_path: Path, output: Path, model: str, label: str, **settings) -> pipeline.RunResult:
    return pipeline.run(run_settings.RunSettings(input_path=input_path, output_dir=output,
                                                 fit=training.FitSettings(model=model, label=label), **settings))


@pytest.mark.parametrize(("model", "label"), KINDS)
def test_the_dask_engine_gives_the_local_outputs_for_every_model_kind(real_data, tmp_path, model, label):
    run(real_data, tmp_path / "local", model, label)
    # small parts: the training rows are gathered from several workers, the write runs in several
    run(real_data, tmp_path / "dask", model, label, engine="dask",
        dask=run_settings.DaskSettings(workers=2, part_bytes=16_384))
    assert_same_outputs(tmp_path / "local", tmp_path / "dask")


def test_default_threading_is_caught_by_the_jobs_parity_check(real_data, tmp_path, monkeypatch):
    """With ONNX Runtime's own thread pool a tree ensemble sums its trees in another order for one
    row than in a batch: the job's one-record-at-a-time check names the mismatch, nothing is published."""
    def default_threading():
        options = onnx_checks.onnxruntime.SessionOptions()
        options.log_severity_level = 3
        return options

    monkeypatch.setattr(onnx_checks, "session_options", default_threading)
    with pytest.raises(online_parity.ParityError, match=r"prediction: \d+ mismatches"):
        run(real_data, tmp_path, "gbt", "absence_hours")
    assert not (tmp_path / config_io.CONFIG_FILE).exists()
    assert not (tmp_path / "training_set.parquet").exists()


def job(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etl_job", "run", "--no-progress", *args], capture_output=True,
                          text=True, timeout=300, cwd=REPO_ROOT)


@pytest.mark.parametrize(("args", "message"), [
    (["--label", "long_absence"], "--model ridge fits a regression, and label 'long_absence' is binary_classification"),
    (["--label", "hours"], "'hours' is not a label node of the feature module; its label nodes"),
    (["--model", "not a module"], "model choice 'not a module' is not one of"),
    (["--model", "gbt", "--label", "is_summer"], "'is_summer' is not a label node"),
])
def test_a_choice_that_cannot_work_is_usage_before_any_row_is_read(tmp_path, args, message):
    result = job("--output-dir", str(tmp_path), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not any(tmp_path.iterdir())


def test_an_estimator_that_does_not_convert_is_exit_2_naming_it_and_publishes_nothing(tmp_path):
    result = job("--output-dir", str(tmp_path), "--model", "testkit.estimators:hist_gradient_boosting_regressor")
    assert result.returncode == 2, result.stderr
    assert "etl_job: model: --model testkit.estimators:hist_gradient_boosting_regressor" in result.stderr
    assert "HistGradientBoostingRegressor" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / config_io.CONFIG_FILE).exists()


def test_a_learner_over_the_row_cap_is_refused_naming_the_flag(tmp_path):
    result = job("--output-dir", str(tmp_path), "--model", "gbt", "--max-fit-rows", "10")
    assert result.returncode == 3, result.stderr
    assert "over the cap of 10 (--max-fit-rows" in result.stderr
