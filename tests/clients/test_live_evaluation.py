"""`python -m clients evaluate`: the held-out rows of the job's training set, served with known
request ids and logged, joined to their true labels, give the job's own held-out MAE and RMSE bit
for bit (the same rows, in the same order, through the same sums), and unmatched labels are named."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from absenteeism import absenteeism_schema, config_io, dataflow, regression_metrics
from absenteeism.dataset import reader
from absenteeism.online import converters
from clients import PredictionClient, live_evaluation
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts a real server


def evaluate_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clients", "evaluate", *args], capture_output=True, text=True,
                          timeout=300)


def serve_held_out(config_path: Path, typed: pd.DataFrame, folder: Path) -> tuple[Path, pd.DataFrame, str]:
    """The held-out rows of the run that wrote `config_path` (source order; raw cells from `typed`,
    the typed input frame by source row) served with sample rate 1 into the log `folder`: half by
    Predict with ids `row-<source row>`, half by one PredictBatch named `batch` (ids `batch/<i>`).
    Returns their labels file (source order; a classifier's labels as class labels) with two more
    labels of calls never made, the held-out rows, and the label column."""
    config = config_io.read_config(config_path)
    training_set = pd.read_parquet(config_path.parent / "training_set.parquet")
    held_out = training_set[training_set["split"] == "held_out"].sort_values("source_row")
    label = config.label or dataflow.feature_module().DEFAULT_LABEL
    raw = typed.loc[held_out["source_row"], list(absenteeism_schema.RAW_COLUMN_NAMES)]
    records = converters.frame_to_records(raw)
    half = len(records) // 2
    with (ServerProcess(config_path, "--prediction-log", str(folder), "--prediction-log-sample-rate", "1") as server,
          PredictionClient(server.target, insecure=True) as client):
        ids = [client.predict(record, request_id=f"row-{row}").request_id
               for row, record in zip(held_out["source_row"][:half], records[:half])]
        ids += client.predict_batch(records[half:], request_id="batch").record_ids
    assert server.returncode == 0
    class_labels = list(config.onnx_model.class_labels) if config.HasField("onnx_model") else []
    truth = [class_labels[i] for i in held_out[label]] if class_labels else held_out[label].tolist()
    extra = class_labels[:2] if class_labels else [4.0, 8.0]
    labels = pd.DataFrame({"request_id": [*ids, "never-served-1", "never-served-2"], "label": [*truth, *extra]})
    labels_path = folder.parent / "labels.csv"
    labels.to_csv(labels_path, index=False)
    return labels_path, held_out, label


@pytest.fixture(scope="module")
def served(trained_config, tmp_path_factory):
    """The bundled sample's run (ridge, absence_hours): its held-out rows served and labelled."""
    folder = tmp_path_factory.mktemp("evaluate") / "log"
    labels_path, held_out, label = serve_held_out(trained_config.path, trained_config.accepted, folder)
    return folder, labels_path, held_out, label


def test_live_mae_and_rmse_equal_the_jobs_on_the_same_rows_bit_for_bit(trained_config, served):
    folder, labels_path, held_out, label = served
    result = live_evaluation.evaluate(folder, labels_path, trained_config.path)
    errors = regression_metrics.HeldOutErrors(math.nan)  # the training set's own predictions, as the job sums them
    errors.feed(regression_metrics.error_rows(held_out[label].to_numpy(float), held_out["prediction"].to_numpy(float), math.nan))
    expected = errors.metrics()
    assert result.joined == len(held_out) > 0
    assert result.live == {"mae": expected["mae"], "rmse": expected["rmse"]}  # bit for bit
    evaluation = trained_config.config.evaluation  # the job's evaluation on the same (held-out) rows
    assert evaluation.test_rows == len(held_out)
    assert (result.live["mae"], result.live["rmse"]) == (evaluation.mae, evaluation.rmse)
    assert result.unmatched_labels == ["never-served-1", "never-served-2"] and result.unlabelled == 0
    assert result.training["mae"] == evaluation.mae and result.training["baseline_mae"] == evaluation.baseline_mae


def test_the_cli_reports_the_join_and_both_evaluations(trained_config, served):
    folder, labels_path, held_out, _ = served
    result = evaluate_cli("--prediction-log", str(folder), "--labels", str(labels_path),
                          "--config", str(trained_config.path))
    assert result.returncode == 0, result.stderr
    evaluation = trained_config.config.evaluation
    assert (f"{len(held_out)} labels joined to logged predictions; 2 labels without a logged prediction "
            "(e.g. never-served-1, never-served-2); 0 logged predictions without a label") in result.stdout
    assert f"training (held-out, {evaluation.test_rows} rows)" in result.stdout
    mae_line = next(line for line in result.stdout.splitlines() if line.startswith("mae "))
    assert mae_line.split()[1:3] == [f"{evaluation.mae:.6g}", f"{evaluation.mae:.6g}"]  # live, then training
    without_config = evaluate_cli("--prediction-log", str(folder), "--labels", str(labels_path))
    assert without_config.returncode == 0 and "training (pass --config)" in without_config.stdout


def test_bad_input_is_exit_2_with_one_line(trained_config, served, tmp_path):
    folder, labels_path, _, _ = served
    wrong_columns = tmp_path / "wrong.csv"
    wrong_columns.write_text("id,hours\na,1\n")
    unknown_ids = tmp_path / "unknown.csv"
    unknown_ids.write_text("request_id,label\nnobody,1\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {("--prediction-log", str(folder), "--labels", str(wrong_columns)): "no column request_id, label",
             ("--prediction-log", str(folder), "--labels", str(unknown_ids)): "no request id of --labels",
             ("--prediction-log", str(empty), "--labels", str(labels_path)): "holds no prediction log file",
             ("--prediction-log", str(folder), "--labels", str(tmp_path / "absent.csv")): "absent.csv"}
    for args, message in cases.items():
        result = evaluate_cli(*args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    usage = evaluate_cli("--prediction-log", str(folder))
    assert usage.returncode == 2 and "--labels" in usage.stderr


def test_an_old_log_without_request_ids_cannot_be_joined(trained_config, served, tmp_path):
    import pyarrow.parquet as pq

    from absenteeism.dataset import prediction_log_files as log_format

    folder, labels_path, _, _ = served
    old = tmp_path / "old"
    old.mkdir()
    for path in log_format.complete_files(folder):
        pq.write_table(pq.read_table(path).drop_columns([log_format.REQUEST_ID]), old / path.name)
    result = evaluate_cli("--prediction-log", str(old), "--labels", str(labels_path))
    assert result.returncode == 2 and "has request ids" in result.stderr




def _job(real_data: Path, out: Path, *args: str) -> Path:
    run = subprocess.run([sys.executable, "-m", "etl_job", "run", "--input", str(real_data), "--output-dir", str(out),
                          "--no-progress", *args], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    return out / config_io.CONFIG_FILE


def test_on_the_real_data_set_the_live_evaluation_is_the_jobs(real_data, tmp_path):
    """The issue's demonstration: the real data set's held-out rows with their true labels, a
    regressor (ridge, absence_hours) and a classifier (gbt, long_absence: class labels in the labels
    file): `clients evaluate` prints the job's own held-out figures, bit for bit."""
    typed = reader.read_typed(real_data).frame
    for name, args in {"ridge": (), "gbt": ("--model", "gbt", "--label", "long_absence")}.items():
        config_path = _job(real_data, tmp_path / name / "run", *args)
        folder = tmp_path / name / "log"
        labels_path, held_out, _ = serve_held_out(config_path, typed, folder)
        evaluation = config_io.read_config(config_path).evaluation
        result = live_evaluation.evaluate(folder, labels_path, config_path)
        assert result.joined == len(held_out) == evaluation.test_rows > 0, name
        assert result.unmatched_labels == ["never-served-1", "never-served-2"], name
        names = ("mae", "rmse") if name == "ridge" else ("log_loss", "accuracy", "roc_auc")
        assert result.live == {metric: getattr(evaluation, metric) for metric in names}, name  # bit for bit
        assert result.training == {key: getattr(evaluation, key) for metric in names
                                   for key in (metric, f"baseline_{metric}")}, name
        cli = evaluate_cli("--prediction-log", str(folder), "--labels", str(labels_path), "--config", str(config_path))
        assert cli.returncode == 0 and f"{len(held_out)} labels joined" in cli.stdout, cli.stdout + cli.stderr
        assert all(any(line.startswith(f"{metric} ") for line in cli.stdout.splitlines()) for metric in names)
