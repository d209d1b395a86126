"""Parity for every model kind the job makes, on the real data set: the job's training set and the
server's answers over Predict, PredictBatch and PredictStream carry the same bits for features,
predictions and class probabilities, at any batch size; a server in several processes too. The
ridge default is covered by test_parity.py."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from absenteeism import config_io, served_model
from absenteeism.v1 import serving_config_pb2
from clients import PredictionClient
from testkit.paths import REPO_ROOT
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

ACCEPTED_REAL_ROWS = 737  # 740 rows, 3 quarantined (month 0)
KINDS = {
    "gbt-regression": ("gbt", "absence_hours"),
    "gbt-binary": ("gbt", "long_absence"),
    "pipeline-binary": ("testkit.estimators:scaled_logistic_regression", "long_absence"),
    "estimator-regression": ("testkit.estimators:gradient_boosting_regressor", "absence_hours"),
}


@dataclass(frozen=True)
class KindRun:
    model: str
    label: str
    output: Path
    config: serving_config_pb2.ServingConfig
    report: dict


def run_job(input_path: Path, output: Path, model: str, label: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etl_job", "run", "--input", str(input_path), "--output-dir",
                           str(output), "--model", model, "--label", label, "--no-progress", *extra],
                          capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)


@pytest.fixture(scope="module", params=sorted(KINDS))
def kind_run(request, real_data, tmp_path_factory) -> KindRun:
    model, label = KINDS[request.param]
    output = tmp_path_factory.mktemp(request.param)
    result = run_job(real_data, output, model, label)
    assert result.returncode == 0, result.stderr
    return KindRun(model, label, output, config_io.read_config(output / config_io.CONFIG_FILE),
                   json.loads((output / "report.json").read_text()))


def parity(target: str, run: KindRun, real_data: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clients", "parity", "--target", target, "--insecure",
                           "--training-set", str(run.output / "training_set.parquet"), "--input", str(real_data),
                           "--no-progress", *extra], capture_output=True, text=True, timeout=1800)


def assert_identical(result: subprocess.CompletedProcess, modes=("predict", "batch", "stream")) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    for mode in modes:
        assert (f"[{mode}] rows compared: {ACCEPTED_REAL_ROWS}, rows identical: {ACCEPTED_REAL_ROWS} (100%)"
                in result.stdout), result.stdout
    assert "PARITY: identical" in result.stdout


def test_the_config_carries_the_graph_its_task_and_its_label(kind_run):
    config, label = kind_run.config, kind_run.label
    assert config.onnx_model.kind == ("gbt" if kind_run.model == "gbt" else "estimator")
    assert config.HasField("onnx_model") and not config.HasField("model")
    assert config.format_version == config_io.ONNX_FORMAT_VERSION and config.label == label
    classifier = label == "long_absence"
    assert config.onnx_model.task == (serving_config_pb2.TASK_BINARY_CLASSIFICATION if classifier
                                      else serving_config_pb2.TASK_REGRESSION)
    assert list(config.onnx_model.class_labels) == (["0", "1"] if classifier else [])
    assert config.provenance.library_versions["onnxruntime"]
    metrics = kind_run.report["metrics"]
    assert set(metrics) >= ({"log_loss", "accuracy", "roc_auc"} if classifier else {"mae", "rmse"})
    assert kind_run.report["online_parity"]["identical"] is True
    assert kind_run.report["online_parity"]["rows_compared"] == ACCEPTED_REAL_ROWS


def test_the_training_set_holds_the_served_models_answers(kind_run):
    """Its predictions and probabilities are the graph's own, run as the server runs it."""
    config = kind_run.config
    table = pd.read_parquet(kind_run.output / "training_set.parquet")
    model = served_model.served_model(config)
    answered = model.predict(table.loc[:, list(config.feature_names)].to_numpy(dtype=np.float64))
    assert table["prediction"].to_numpy().tobytes() == answered.predictions.tobytes()
    for j, name in enumerate(served_model.output_names(model)[1:]):
        assert table[name].to_numpy().tobytes() == answered.probabilities[:, j].tobytes(), name
    assert config.label in table.columns


def test_every_row_gets_the_jobs_bits_in_all_three_modes(kind_run, real_data):
    with ServerProcess(kind_run.output / config_io.CONFIG_FILE) as server:
        assert_identical(parity(server.target, kind_run, real_data))
        for size in ("7", "64"):  # one row is the predict mode; 1,000 the batch mode's default
            assert_identical(parity(server.target, kind_run, real_data, "--modes", "batch", "--batch-size", size),
                             modes=("batch",))


def test_a_server_of_two_processes_gives_the_same_bits(kind_run, real_data):
    with ServerProcess(kind_run.output / config_io.CONFIG_FILE, "--processes", "2") as server:
        assert_identical(parity(server.target, kind_run, real_data, "--modes", "predict,batch"),
                         modes=("predict", "batch"))


def test_a_classifier_answers_its_class_and_every_probability_and_a_regressor_neither(kind_run):
    config = kind_run.config
    golden = config.golden_rows[0]
    with ServerProcess(kind_run.output / config_io.CONFIG_FILE) as server, \
            PredictionClient(server.target, insecure=True, timeout=10) as client:
        single = client.predict(golden.record)
        batch = client.predict_batch([row.record for row in config.golden_rows])
        streamed = [r.prediction for r in client.predict_stream([golden.record])]
    labels = list(config.onnx_model.class_labels)
    if not labels:
        assert single.prediction == golden.prediction and not single.predicted_class and not single.probabilities
        assert batch.probabilities is None and batch.class_labels == ()
        return
    assert list(single.probabilities) == labels
    assert list(single.probabilities.values()) == list(golden.probabilities)
    assert single.predicted_class == labels[int(golden.prediction)]
    assert batch.class_labels == tuple(labels) and batch.probabilities.shape == (len(config.golden_rows), 2)
    assert batch.probabilities.tobytes() == np.array([list(r.probabilities) for r in config.golden_rows]).tobytes()
    assert batch.predicted_classes == [labels[int(r.prediction)] for r in config.golden_rows]
    assert streamed[0] is not None and streamed[0].probabilities == single.probabilities


def test_the_profile_covers_the_models_outputs(kind_run):
    config = kind_run.config
    outputs = [(e.name, e.WhichOneof("kind")) for e in config.profile.entries if e.source == "prediction"]
    if config.onnx_model.class_labels:
        assert outputs == [("prediction", "categorical"), ("probability[0]", "numeric"), ("probability[1]", "numeric")]
        counts = next(e for e in config.profile.entries if e.name == "prediction").categorical
        assert list(counts.values) == [0.0, 1.0] and sum(counts.counts) == ACCEPTED_REAL_ROWS
    else:
        assert outputs == [("prediction", "numeric")]
