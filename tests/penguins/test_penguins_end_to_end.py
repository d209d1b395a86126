"""The penguins data set end to end, through real processes: the job on the table as its authors
publish it (comma-separated, quoted commas, NA, text, dates, Yes/No), both engines, the server on
its config with its typed service, the clients' parity in three modes, grpcurl, the prediction log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from absenteeism import config_io, data_sets
from absenteeism.dataset import reader
from absenteeism.online import converters
from clients import PredictionClient
from testkit.paths import REPO_ROOT
from testkit.records import VALID_ROW
from testkit.run_outputs import assert_same_outputs
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

SAMPLE = data_sets.named("penguins").sample_input
SERVICE = "penguins.v1.PredictionService"


def run_job(output: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etl_job", "run", "--dataset", "penguins", "--output-dir",
                           str(output), "--no-progress", *extra], capture_output=True, text=True, timeout=600,
                          cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def penguins_run(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("penguins") / "out"
    result = run_job(output)
    assert result.returncode == 0, result.stderr
    return output


def test_the_job_accepts_every_row_whose_missing_values_the_schema_allows(penguins_run):
    report = json.loads((penguins_run / "report.json").read_text())
    assert {k: report["rows"][k] for k in ("read", "accepted", "rejected")} == {"read": 344, "accepted": 342,
                                                                              "rejected": 2}
    raw = pd.read_csv(SAMPLE, keep_default_na=False)
    missing_sex = raw["Sex"] == "NA"
    assert missing_sex.sum() == 11  # the table has 11 rows without a sex: 9 of them have a body mass
    rejects = pd.read_csv(penguins_run / "rejects.csv", keep_default_na=False)
    # The two rejected rows have no body mass (the label); their other NAs are allowed.
    assert rejects[["source_row", "column", "rule"]].values.tolist() == [[4, "body_mass_g", "required"],
                                                                         [272, "body_mass_g", "required"]]
    training = pd.read_parquet(penguins_run / "training_set.parquet")
    assert len(training) == 342 and training["sex_missing"].sum() == 9
    config = config_io.read_config(penguins_run / "serving_config.pb")
    assert config.dataset == "penguins" and config.label == "body_mass"
    assert all(row.record_bytes and not row.HasField("record") for row in config.golden_rows)


def test_the_dask_engine_gives_the_local_runs_outputs(penguins_run, tmp_path):
    result = run_job(tmp_path / "dask", "--engine", "dask", "--workers", "2", "--part-bytes", "8192")
    assert result.returncode == 0, result.stderr
    data_sets.activate("penguins")  # the config's golden records are read as penguins records
    try:
        assert_same_outputs(penguins_run, tmp_path / "dask")
    finally:
        data_sets.activate(data_sets.DEFAULT)


@pytest.mark.parametrize("server_flags", [("--predictor", "fast"), ("--predictor", "reference"),
                                          ("--micro-batch-rows", "64")], ids=["fast", "reference", "micro-batching"])
def test_the_server_gives_the_training_sets_bits_in_all_three_modes_and_its_log_replays(penguins_run, tmp_path,
                                                                                        server_flags):
    log = tmp_path / "log"
    log.mkdir()
    with ServerProcess(penguins_run / "serving_config.pb", "--prediction-log", str(log),
                       "--prediction-log-sample-rate", "1", *server_flags) as server:
        result = subprocess.run([sys.executable, "-m", "clients", "parity", "--target", server.target, "--insecure",
                                 "--dataset", "penguins", "--training-set", str(penguins_run / "training_set.parquet"),
                                 "--input", str(SAMPLE), "--no-progress"],
                                capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for mode in ("predict", "batch", "stream"):
        assert f"[{mode}] rows compared: 342, rows identical: 342 (100%)" in result.stdout, result.stdout
    replay = subprocess.run([sys.executable, "-m", "clients", "parity", "--prediction-log", str(log), "--config",
                             str(penguins_run / "serving_config.pb")],
                            capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert f"{3 * 342} logged records replayed" in replay.stdout and "PARITY: identical" in replay.stdout


def accepted_records() -> list:
    """The penguins records of the table's rows the schema accepts, as a client sends them."""
    data_sets.activate("penguins")
    try:
        accepted = reader.read_valid(SAMPLE)
        return converters.frame_to_records(accepted.loc[:, list(data_sets.active().table.column_names)])
    finally:
        data_sets.activate(data_sets.DEFAULT)


def grpcurl(target: str, method: str, body: dict | None = None) -> subprocess.CompletedProcess:
    binary = Path(sys.executable).parent / "grpcurl"
    data = ["-d", json.dumps(body)] if body is not None else []
    return subprocess.run([str(binary), "-plaintext", *data, target, *([method] if method else ["list"])],
                          capture_output=True, text=True, timeout=60)


def test_grpcurl_sees_the_typed_service_answers_missing_fields_and_refuses_naming_the_field(penguins_run):
    with ServerProcess(penguins_run / "serving_config.pb") as server:
        listed = grpcurl(server.target, "")
        answered = grpcurl(server.target, f"{SERVICE}/Predict", {"record": {
            "sample_number": 7, "island": "Dream", "clutch_completion": True, "date_egg": "2008-11-20",
            "sex": "FEMALE", "comments": "Nest never observed with full clutch — ñ"}, "include_features": True})
        unknown = grpcurl(server.target, f"{SERVICE}/Predict", {"record": {
            "sample_number": 7, "island": "Atlantis", "clutch_completion": True, "date_egg": "2008-11-20"}})
        required = grpcurl(server.target, f"{SERVICE}/Predict", {"record": {
            "island": "Dream", "clutch_completion": True, "date_egg": "2008-11-20"}})
    assert listed.returncode == 0 and SERVICE in listed.stdout.split(), listed.stdout + listed.stderr
    assert answered.returncode == 0, answered.stderr
    features = {f["name"]: f.get("value", 0.0) for f in json.loads(answered.stdout)["features"]}
    # Culmen length and flipper length are absent: flagged, and imputed with the training medians.
    config = config_io.read_config(penguins_run / "serving_config.pb")
    medians = {name: value.scalar for name, value in config.statistics.values.items()}
    assert features["culmen_length_missing"] == 1.0
    assert features["culmen_length_filled"] == medians["culmen_length_median"]
    assert features["flipper_length_filled"] == medians["flipper_length_median"]
    assert features["island_dream"] == 1.0 and features["sex_missing"] == 0.0 and features["egg_in_november"] == 1.0
    for refused, field, rule in ((unknown, "record.island", "isin(['Biscoe', 'Dream', 'Torgersen'])"),
                                 (required, "record.sample_number", "required field is missing")):
        assert refused.returncode != 0 and "InvalidArgument" in refused.stderr, refused.stderr
        assert f'"field":"{field}"' in refused.stderr.replace(" ", "") and rule in refused.stderr, refused.stderr


def test_a_config_of_one_data_set_is_refused_by_a_process_working_on_another(penguins_run, trained_config):
    penguins_config = config_io.read_config(penguins_run / "serving_config.pb")
    with pytest.raises(config_io.ConfigError, match="built for data set 'penguins', not 'absenteeism'"):
        config_io.verify_config(penguins_config)
    data_sets.activate("penguins")
    try:
        with pytest.raises(config_io.ConfigError, match="built for data set 'absenteeism', not 'penguins'"):
            config_io.verify_config(trained_config.config)
        config_io.verify_config(penguins_config)  # its own data set's process verifies it
    finally:
        data_sets.activate(data_sets.DEFAULT)


def test_delimiter_reads_the_same_table_written_with_another_one(penguins_run, tmp_path):
    cells = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    semicolons = tmp_path / "penguins-semicolons.csv"
    cells.to_csv(semicolons, sep=";", index=False)
    refused = run_job(tmp_path / "refused", "--input", str(semicolons))
    assert refused.returncode == 3, refused.stderr
    assert "the header looks semicolon-separated" in refused.stderr and "this data set's CSV uses ','" in refused.stderr
    result = run_job(tmp_path / "read", "--input", str(semicolons), "--delimiter", ";")
    assert result.returncode == 0, result.stderr
    expected, got = (pd.read_parquet(out / "training_set.parquet") for out in (penguins_run, tmp_path / "read"))
    pd.testing.assert_frame_equal(got, expected)


def test_a_reload_to_another_data_sets_config_is_refused_and_the_server_keeps_serving(penguins_run, trained_config,
                                                                                      tmp_path):
    served = tmp_path / "serving_config.pb"
    served.write_bytes(trained_config.path.read_bytes())
    with ServerProcess(served, "--reload-interval", "0.2") as server:
        swapped = tmp_path / "swap.pb"
        swapped.write_bytes((penguins_run / "serving_config.pb").read_bytes())
        swapped.replace(served)
        deadline = time.monotonic() + 60
        while not (refused := [e for e in server.entries if e.get("event") == "config_reload_refused"]):
            assert time.monotonic() < deadline, "\n".join(server.logs[-20:])
            time.sleep(0.05)
        assert "built for data set 'penguins', not 'absenteeism'" in refused[0]["message"]
        with PredictionClient(server.target, insecure=True) as client:
            answer = client.predict(VALID_ROW)
    assert answer.config_id == trained_config.config.content_sha256


def test_processes_share_a_drift_window_of_text_categories_missing_values_and_dates(penguins_run):
    records = accepted_records()
    with ServerProcess(penguins_run / "serving_config.pb", "--processes", "2", "--drift-min-records", "100") as server, \
            PredictionClient(server.target, insecure=True, data_set="penguins") as client:
        for start in range(0, len(records), 50):
            client.predict_batch(records[start:start + 50])
        report = client.drift_report()
    assert report.window_records == len(records) and not report.insufficient_data
    entries = {(f.name, f.metric): f for f in report.features}
    # The training traffic again: no profiled value drifts, a text category and a nullable number included.
    assert not report.drifted, [(f.name, f.metric, f.value) for f in report.drifted]
    names = {name for name, _ in entries}
    assert {"island", "sex", "culmen_length_mm", "date_egg", "clutch_completion", "prediction"} <= names
    assert "comments" not in names  # free text is not profiled


def test_clients_predict_sends_every_row_of_the_table_with_its_missing_values(penguins_run, tmp_path):
    output = tmp_path / "predictions.csv"
    with ServerProcess(penguins_run / "serving_config.pb") as server:
        result = subprocess.run([sys.executable, "-m", "clients", "predict", "--target", server.target, "--insecure",
                                 "--dataset", "penguins", "--input", str(SAMPLE), "--output", str(output),
                                 "--no-progress"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "344 rows: 344 predicted, 0 rejected" in result.stderr  # the label is no request field
    predicted = pd.read_csv(output).set_index("source_row")["prediction"]  # pandas 3 reads floats round-trip
    training = pd.read_parquet(penguins_run / "training_set.parquet").set_index("source_row")["prediction"]
    assert predicted.loc[training.index].to_numpy().tobytes() == training.to_numpy().tobytes()


def test_a_field_gone_missing_drifts(penguins_run):
    records = accepted_records()
    for record in records:  # an upstream change: the flipper length stops arriving
        record.ClearField("flipper_length_mm")
    with ServerProcess(penguins_run / "serving_config.pb", "--drift-min-records", "100") as server, \
            PredictionClient(server.target, insecure=True, data_set="penguins") as client:
        client.predict_batch(records)
        report = client.drift_report()
    drifted = {f.name for f in report.drifted}
    assert "flipper_length_mm" in drifted and "flipper_length_filled" in drifted, drifted
    assert "island" not in drifted and "culmen_length_mm" not in drifted, drifted
