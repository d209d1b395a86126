"""Online drift, through real server processes: what the server served lately against the training
profile of its config. Every value the server reports is checked against an independent numpy/scipy
computation from the profile's training counts and the values this test itself sent and got back."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from scipy.spatial import distance

from absenteeism import absenteeism_schema, config_io
from absenteeism.online import converters
from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import prediction_service_pb2_grpc
from clients import PredictionClient, PredictionError
from testkit.loopback import free_port
from testkit.server_process import ServerProcess
from testkit.supervised_servers import fresh_channel, two_processes, wait_for, workers_that_answered

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

AGE_OR_DAY = {"age", "age_zero_mean_unit_variance", "day_of_the_week", "day_of_the_week_2", "day_of_the_week_3",
              "day_of_the_week_4", "day_of_the_week_5", "day_of_the_week_6"}
THRESHOLDS = {"psi": 0.1, "jensen_shannon": 0.01, "l_infinity": 0.05}  # the documented defaults


# These tests check the values over a few hundred records: judged from 100 on (the default minimum,
# 2,000 records, is tested on its own in test_drift_minimum_sample.py).
JUDGED = ("--drift-min-records", "100")


@pytest.fixture(scope="module")
def training_rows(trained_config) -> pd.DataFrame:
    return trained_config.accepted.loc[:, list(absenteeism_schema.RAW_COLUMN_NAMES)]


def served(client: PredictionClient, rows: pd.DataFrame, how: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    """Sends `rows` in order (one PredictBatch per 500 rows, or one Predict each); the features and
    predictions the server answered."""
    records = converters.frame_to_records(rows)
    if how == "single":
        answers = [client.predict(record, include_features=True) for record in records]
        return (np.array([list(a.features.values()) for a in answers]), np.array([a.prediction for a in answers]))
    batches = [client.predict_batch(records[i:i + 500], include_features=True) for i in range(0, len(records), 500)]
    return np.vstack([b.features for b in batches]), np.concatenate([b.predictions for b in batches])


def expected_drift(config, rows: pd.DataFrame, features: np.ndarray, predictions: np.ndarray
                   ) -> dict[tuple[str, str], float]:
    """(name, metric) -> value, from the config's training counts and the values served, computed here."""
    values = {**{name: rows[name].to_numpy(np.float64) for name in rows.columns},
              **{name: features[:, j] for j, name in enumerate(config.feature_names)}, "prediction": predictions}
    result = {}
    for entry in config.profile.entries:
        v = values[entry.name]
        if entry.WhichOneof("kind") == "numeric":
            e = list(entry.numeric.edges)
            training = np.array(entry.numeric.counts, dtype=np.float64)
            bins = ([v < e[0]] + [(v >= e[i - 1]) & (v < e[i]) for i in range(1, len(e) - 1)]
                    + [(v >= e[-2]) & (v <= e[-1]), v > e[-1]])
            serving = np.array([b.sum() for b in bins], dtype=np.float64)
            p, q = training / training.sum(), serving / serving.sum()
            pe, qe = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
            result[(entry.name, "psi")] = float(np.sum((qe - pe) * np.log(qe / pe)))
            result[(entry.name, "jensen_shannon")] = float(distance.jensenshannon(p, q, base=2) ** 2)
        else:
            categories = list(entry.categorical.values)
            training = np.array([*entry.categorical.counts, entry.categorical.other_count], dtype=np.float64)
            inside = [(v == c).sum() for c in categories]
            serving = np.array([*inside, len(v) - sum(inside)], dtype=np.float64)
            result[(entry.name, "l_infinity")] = float(np.abs(training / training.sum() - serving / serving.sum()).max())
    return result


def assert_report_is(report, expected: dict[tuple[str, str], float], window_records: int, config) -> None:
    assert report.config_id == config.content_sha256
    assert report.window_records == window_records
    assert [(f.name, f.metric) for f in report.features] == list(expected)  # profile order, every entry
    for f in report.features:
        assert f.value == pytest.approx(expected[(f.name, f.metric)], rel=1e-9, abs=1e-12), (f.name, f.metric)
        assert f.threshold == THRESHOLDS[f.metric] and f.drifted == (f.value > f.threshold)


def aged_on_mondays(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(age=60, day_of_the_week=2)


def test_training_rows_replayed_give_no_drift(trained_config, training_rows):
    config = trained_config.config
    with ServerProcess(trained_config.path, *JUDGED) as server, PredictionClient(server.target, insecure=True) as client:
        assert client.drift_report().features == [] and client.drift_report().window_records == 0
        features, predictions = served(client, training_rows.iloc[:400], how="single")  # Predict ...
        more = served(client, training_rows.iloc[400:])  # ... and PredictBatch
        report = client.drift_report()
    features, predictions = np.vstack([features, more[0]]), np.concatenate([predictions, more[1]])
    assert_report_is(report, expected_drift(config, training_rows, features, predictions), len(training_rows), config)
    assert all(f.value == 0.0 for f in report.features) and not report.drifted  # the very training distribution


def test_age_60_on_mondays_drifts_the_age_and_day_entries_and_nothing_else(trained_config, training_rows):
    config = trained_config.config
    drifted_rows = aged_on_mondays(training_rows)
    with ServerProcess(trained_config.path, *JUDGED) as server, PredictionClient(server.target, insecure=True) as client:
        features, predictions = served(client, drifted_rows)
        report = client.drift_report()
        cli = subprocess.run([sys.executable, "-m", "clients", "drift", "--target", server.target, "--insecure"],
                             capture_output=True, text=True, timeout=60)
    assert_report_is(report, expected_drift(config, drifted_rows, features, predictions), len(drifted_rows), config)
    # The prediction is computed from age and the day: it moves with them. Every other entry sees
    # exactly its training rows.
    assert {f.name for f in report.drifted} == AGE_OR_DAY | {"prediction"}
    assert all(f.drifted for f in report.features if f.name in AGE_OR_DAY | {"prediction"})
    assert all(f.value == 0.0 for f in report.features if f.name not in AGE_OR_DAY | {"prediction"})
    # The CLI: a table with the drifted rows first, exit code 5.
    assert cli.returncode == 5, cli.stderr
    lines = cli.stdout.splitlines()
    assert lines[0].split() == ["name", "source", "metric", "value", "threshold", "drifted"]
    marks = [line.split()[-1] for line in lines[1:1 + len(report.features)]]
    assert marks == ["DRIFT"] * len(report.drifted) + ["ok"] * (len(report.features) - len(report.drifted))
    assert f"{len(report.drifted)} of {len(report.features)} entries DRIFTED" in lines[-1]


@pytest.mark.parametrize("flags", [("--predictor", "reference"), ("--micro-batch-rows", "16")])
def test_every_online_path_feeds_the_window(trained_config, training_rows, flags):
    records = converters.frame_to_records(training_rows)
    with ServerProcess(trained_config.path, *flags, *JUDGED) as server, \
            PredictionClient(server.target, insecure=True) as client:
        if flags[0] == "--predictor":  # the reference path reads no raw matrix of its own: the monitor converts
            assert all(result.ok for result in client.predict_stream(records))
        else:  # concurrent single calls, computed together
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(client.predict, records))
        report = client.drift_report()
    assert report.window_records == len(records)
    assert report.features and all(f.value == 0.0 for f in report.features)  # every record counted once


def test_the_window_slides(trained_config, training_rows):
    config = trained_config.config
    with ServerProcess(trained_config.path, "--drift-window", "500", *JUDGED) as server, \
            PredictionClient(server.target, insecure=True) as client:
        first = served(client, training_rows)
        assert_report_is(client.drift_report(), expected_drift(
            config, training_rows.iloc[-500:], first[0][-500:], first[1][-500:]), 500, config)

        drifted_rows = aged_on_mondays(training_rows.iloc[:300])
        second = served(client, drifted_rows, how="single")  # the window: 200 training rows, then these 300
        window_rows = pd.concat([training_rows.iloc[-200:], drifted_rows])
        mixed = client.drift_report()
        assert_report_is(mixed, expected_drift(config, window_rows, np.vstack([first[0][-200:], second[0]]),
                                               np.concatenate([first[1][-200:], second[1]])), 500, config)
        assert {f.name for f in mixed.drifted} >= AGE_OR_DAY

        third = served(client, training_rows.iloc[1000:1500])  # pushes every drifted record out
        after = client.drift_report()
    assert_report_is(after, expected_drift(config, training_rows.iloc[1000:1500], *third), 500, config)
    assert not {f.name for f in after.drifted} & {"age", "day_of_the_week"}


def _scrape(port: int) -> dict:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_gauges_say_what_the_rpc_says(trained_config, training_rows):
    metrics_port = free_port()
    with ServerProcess(trained_config.path, *JUDGED, metrics_port=metrics_port) as server, \
            PredictionClient(server.target, insecure=True) as client:
        empty = _scrape(metrics_port)  # an empty window: no value yet
        assert empty["feature_service_drift"].samples == [] and empty["feature_service_drift_window_records"].samples[0].value == 0
        served(client, pd.concat([training_rows.iloc[:1000], aged_on_mondays(training_rows.iloc[1000:1300])]))
        report = client.drift_report()
        families = _scrape(metrics_port)
        assert client.drift_report() == report  # no traffic in between: the same report
    gauges = {(s.labels["name"], s.labels["metric"]): s.value for s in families["feature_service_drift"].samples}
    assert gauges == {(f.name, f.metric): f.value for f in report.features}  # every value, exactly
    thresholds = {(s.labels["name"], s.labels["metric"]): s.value
                  for s in families["feature_service_drift_threshold"].samples}
    assert thresholds == {(f.name, f.metric): f.threshold for f in report.features}
    assert families["feature_service_drift_drifted_entries"].samples[0].value == len(report.drifted) > 0
    assert families["feature_service_drift_window_records"].samples[0].value == report.window_records == 1300


def test_thresholds_are_flags(trained_config, training_rows):
    with ServerProcess(trained_config.path, *JUDGED, "--drift-psi-threshold", "1e9", "--drift-jensen-shannon-threshold", "1",
                       "--drift-l-infinity-threshold", "1") as server, \
            PredictionClient(server.target, insecure=True) as client:
        served(client, aged_on_mondays(training_rows.iloc[:200]))
        report = client.drift_report()
        cli = subprocess.run([sys.executable, "-m", "clients", "drift", "--target", server.target, "--insecure"],
                             capture_output=True, text=True, timeout=60)
    assert {f.metric: f.threshold for f in report.features} == {"psi": 1e9, "jensen_shannon": 1, "l_infinity": 1}
    assert not report.drifted and cli.returncode == 0, cli.stdout  # nothing can be above 1 (JSD, L-inf)
    assert "no drift in" in cli.stdout


def test_no_drift_report_without_monitoring_or_without_a_profile(trained_config, training_rows, tmp_path):
    legacy = config_io.ServingConfig()
    legacy.CopyFrom(trained_config.config)
    legacy.ClearField("profile")  # what releases before drift monitoring wrote
    legacy_path = config_io.write_config(config_io.seal(legacy), tmp_path)
    for config, flags, reason in ((trained_config.path, ("--drift-window", "0"), "--drift-window 0"),
                                  (legacy_path, (), "no training profile")):
        with ServerProcess(config, *flags) as server, PredictionClient(server.target, insecure=True) as client:
            served(client, training_rows.iloc[:10])  # serving is not affected
            with pytest.raises(PredictionError) as refused:
                client.drift_report()
            cli = subprocess.run([sys.executable, "-m", "clients", "drift", "--target", server.target, "--insecure"],
                                 capture_output=True, text=True, timeout=60)
        assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION and reason in refused.value.message
        assert cli.returncode == 1 and reason in cli.stderr


def test_several_processes_report_the_traffic_of_all_of_them(trained_config, training_rows):
    config, rows, port = trained_config.config, training_rows.iloc[:600], free_port()
    records = converters.frame_to_records(rows)
    with two_processes(trained_config, *JUDGED, metrics_port=port) as server:
        answers, reports = [], []
        for start in range(0, len(records), 20):  # 30 connections: the kernel spreads them over both processes
            with fresh_channel(server.target) as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                answers.append(stub.PredictBatch(pb.PredictBatchRequest(records=records[start:start + 20],
                                                                        include_features=True), timeout=20))
        wait_for(lambda: workers_that_answered(server, "/absenteeism.v1.PredictionService/PredictBatch") == {0, 1},
                 10, "both processes to serve some of the records")
        for _ in range(6):  # whichever process answers
            with fresh_channel(server.target) as channel:
                reports.append(prediction_service_pb2_grpc.PredictionServiceStub(channel).GetDriftReport(
                    pb.GetDriftReportRequest(), timeout=20))
        families = _scrape(port)
    features = np.vstack([np.reshape(a.feature_values, (-1, len(a.feature_names))) for a in answers])
    predictions = np.concatenate([a.predictions for a in answers])
    expected = expected_drift(config, rows, features, predictions)
    for report in reports:
        assert report.window_records == len(records) and report.config_id == config.content_sha256
        assert {(f.name, f.metric): f.value for f in report.features} == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert reports[1:] == reports[:-1]  # one report, whichever process answers
    gauges = {(s.labels["name"], s.labels["metric"]): s.value for s in families["feature_service_drift"].samples}
    assert gauges == {(f.name, f.metric): f.value for f in reports[0].features}  # the supervisor's /metrics
    assert families["feature_service_drift_window_records"].samples[0].value == len(records)
