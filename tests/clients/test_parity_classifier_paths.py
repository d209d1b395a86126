"""A classifier along every path a team takes: trained by the job (`--model gbt --label
long_absence`), retrained outside the job in LightGBM on the run's training set and packaged
(`package-model`), served, and checked: every accepted row of the real data set through gRPC in all
three modes, the prediction log replayed with its class probabilities, the drift report covering
the predicted class and each class's probability."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightgbm
import numpy as np
import onnxmltools
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from onnxmltools.convert.common.data_types import FloatTensorType

from absenteeism import config_io
from absenteeism.dataset import prediction_log_files as log_format
from absenteeism.dataset.reader import read_valid
from absenteeism.online import converters
from clients import PredictionClient
from testkit.paths import REPO_ROOT
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

ACCEPTED_REAL_ROWS = 737


def command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def classifier_run(real_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gbt-binary")
    result = command("-m", "etl_job", "run", "--input", str(real_data), "--output-dir", str(out), "--model", "gbt",
                     "--label", "long_absence", "--no-progress")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def packaged(classifier_run, real_data, tmp_path_factory) -> Path:
    """A LightGBM classifier trained as a notebook would, on the run's training rows, exported with
    onnxmltools and packaged onto the run's features."""
    folder = tmp_path_factory.mktemp("packaged")
    config = config_io.read_config(classifier_run / config_io.CONFIG_FILE)
    rows = pd.read_parquet(classifier_run / "training_set.parquet")
    train = rows[rows["split"] == "train"]
    model = lightgbm.LGBMClassifier(n_estimators=60, num_threads=1, deterministic=True, force_row_wise=True,
                                    verbose=-1)
    model.fit(train[list(config.feature_names)].to_numpy("float32"), train[config.label])
    graph = onnxmltools.convert_lightgbm(model, initial_types=[("features", FloatTensorType([None, 17]))],
                                         target_opset=15, zipmap=False)
    (folder / "model.onnx").write_bytes(graph.SerializeToString())
    result = command("-m", "etl_job", "package-model", "--run", str(classifier_run), "--onnx",
                     str(folder / "model.onnx"), "--input", str(real_data), "--output-dir", str(folder / "out"),
                     "--no-progress")
    assert result.returncode == 0, result.stderr
    return folder / "out"


def test_a_packaged_lightgbm_classifier_serves_every_row_with_the_training_sets_bits(packaged, real_data):
    config = config_io.read_config(packaged / config_io.CONFIG_FILE)
    assert config.onnx_model.kind == "package-model" and list(config.onnx_model.class_labels) == ["0", "1"]
    with ServerProcess(packaged / config_io.CONFIG_FILE) as server:
        result = command("-m", "clients", "parity", "--target", server.target, "--insecure", "--training-set",
                         str(packaged / "training_set.parquet"), "--input", str(real_data), "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    for mode in ("predict", "batch", "stream"):
        assert (f"[{mode}] rows compared: {ACCEPTED_REAL_ROWS}, rows identical: {ACCEPTED_REAL_ROWS} (100%)"
                in result.stdout), result.stdout


def test_a_classifiers_logged_probabilities_replay_bit_for_bit_and_a_skewed_one_is_named(
        classifier_run, real_data, tmp_path):
    folder, config_path = tmp_path / "log", classifier_run / config_io.CONFIG_FILE
    records = converters.frame_to_records(read_valid(real_data))
    with ServerProcess(config_path, "--prediction-log", str(folder), "--prediction-log-sample-rate", "1") as server, \
            PredictionClient(server.target, insecure=True, timeout=30) as client:
        for record in records[:100]:
            client.predict(record)
        client.predict_batch(records[100:])
    logged = pd.concat([pq.read_table(path).to_pandas() for path in log_format.complete_files(folder)])
    assert len(logged) == len(records) and all(len(row) == 2 for row in logged[log_format.PROBABILITIES])

    def replay(log: Path) -> subprocess.CompletedProcess:
        return command("-m", "clients", "parity", "--prediction-log", str(log), "--config", str(config_path))

    result = replay(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(records)} identical" in result.stdout

    victim = log_format.complete_files(folder)[0]
    table = pq.read_table(victim)
    probabilities = table.column(log_format.PROBABILITIES).to_pylist()
    probabilities[3][1] = float(np.nextafter(probabilities[3][1], 2.0))  # one ulp on one class's probability
    index = table.schema.get_field_index(log_format.PROBABILITIES)
    pq.write_table(table.set_column(index, table.schema.field(index),
                                    pa.array(probabilities, type=pa.list_(pa.float64()))), victim)
    result = replay(folder)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "probability[1]: 1 mismatches; worst: row 3:" in result.stdout


def test_the_drift_report_covers_the_predicted_class_and_each_probability(classifier_run, real_data):
    records = converters.frame_to_records(read_valid(real_data))
    with ServerProcess(classifier_run / config_io.CONFIG_FILE, "--drift-min-records", "100") as server, \
            PredictionClient(server.target, insecure=True, timeout=30) as client:
        client.predict_batch(records)
        report = client.drift_report()
    outputs = {(entry.name, entry.metric): entry for entry in report.features if entry.source == "prediction"}
    assert set(outputs) == {("prediction", "l_infinity"), ("probability[0]", "psi"),
                            ("probability[0]", "jensen_shannon"), ("probability[1]", "psi"),
                            ("probability[1]", "jensen_shannon")}
    assert report.window_records == ACCEPTED_REAL_ROWS and not report.insufficient_data
    # the served records are the training rows themselves: no output has drifted
    assert not any(entry.drifted for entry in outputs.values()), outputs
    assert all(entry.value < entry.threshold / 2 for entry in outputs.values()), outputs
