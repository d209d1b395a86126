"""`python -m clients evaluate`: the held-out rows of the job's training set, served with known
request ids and logged, joined to their true labels, give the job's own held-out MAE and RMSE bit
for bit (the same rows, in the same order, through the same sums), and unmatched labels are named."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest

from absenteeism import absenteeism_schema, dataflow, regression_metrics
from absenteeism.online import converters
from clients import PredictionClient, live_evaluation
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts a real server


def evaluate_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clients", "evaluate", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def served(trained_config, tmp_path_factory):
    """The held-out rows (source order) served with sample rate 1: half by Predict with ids
    `row-<source row>`, half by one PredictBatch named `batch` (ids `batch/<i>`); their labels file
    (in source order) plus two labels of calls never made."""
    training_set = pd.read_parquet(trained_config.path.parent / "training_set.parquet")
    held_out = training_set[training_set["split"] == "held_out"].sort_values("source_row")
    label = trained_config.config.label or dataflow.feature_module().DEFAULT_LABEL
    raw = trained_config.accepted.loc[held_out["source_row"], list(absenteeism_schema.RAW_COLUMN_NAMES)]
    records = converters.frame_to_records(raw)
    half = len(records) // 2
    folder = tmp_path_factory.mktemp("evaluate") / "log"
    with (ServerProcess(trained_config.path, "--prediction-log", str(folder),
                        "--prediction-log-sample-rate", "1") as server,
          PredictionClient(server.target, insecure=True) as client):
        ids = [client.predict(record, request_id=f"row-{row}").request_id
               for row, record in zip(held_out["source_row"][:half], records[:half])]
        ids += client.predict_batch(records[half:], request_id="batch").record_ids
    assert server.returncode == 0
    labels = pd.DataFrame({"request_id": [*ids, "never-served-1", "never-served-2"],
                           "label": [*held_out[label], 4.0, 8.0]})
    labels_path = folder.parent / "labels.csv"
    labels.to_csv(labels_path, index=False)
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


