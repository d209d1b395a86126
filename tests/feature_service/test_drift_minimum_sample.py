"""A drift monitor raises no alarm it cannot back: below --drift-min-records records (default 2,000)
the report, the gauges and `clients drift` say "insufficient data" and mark no entry drifted; from
there on, samples of the model's own training rows raise no false alarm."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from absenteeism.online import converters
from absenteeism.online.fast import FastPredictor
from clients import PredictionClient
from feature_service import settings
from feature_service.monitoring.drift_window import DEFAULT_MIN_RECORDS, Comparison, Thresholds, row_width
from testkit.loopback import free_port
from testkit.server_process import ServerProcess
from testkit.supervised_servers import metric_samples


def window_rows(config, frame) -> np.ndarray:
    """What the server's window holds for these raw rows: raw values, features, prediction."""
    result = FastPredictor(config).predict(converters.frame_to_records(frame))
    rows = np.empty((len(frame), row_width(len(config.feature_names))))
    raw_width = rows.shape[1] - result.features.shape[1] - 1
    rows[:, :raw_width], rows[:, raw_width:-1], rows[:, -1] = result.raw, result.features, result.predictions
    return rows


@pytest.fixture(scope="module")
def training_window_rows(trained_config) -> np.ndarray:
    return window_rows(trained_config.config, trained_config.accepted)


def test_below_the_minimum_nothing_is_judged_however_far_the_values(trained_config):
    drifted = trained_config.accepted.iloc[:300].assign(age=60, day_of_the_week=2)
    report = Comparison(trained_config.config, Thresholds()).report(window_rows(trained_config.config, drifted))
    assert report.insufficient_data and report.min_records == DEFAULT_MIN_RECORDS == 2_000
    assert any(e.value > e.threshold for e in report.entries)  # far from training: still not an alarm
    assert not any(e.drifted for e in report.entries)
    response = report.response()
    assert response.insufficient_data and response.min_records == 2_000 and not any(f.drifted for f in response.features)


def test_from_the_minimum_on_samples_of_training_rows_raise_no_alarm_and_real_drift_does(trained_config,
                                                                                          training_window_rows):
    comparison = Comparison(trained_config.config, Thresholds())
    rng = np.random.default_rng(7)
    for _ in range(20):
        sample = training_window_rows[rng.integers(0, len(training_window_rows), DEFAULT_MIN_RECORDS)]
        report = comparison.report(sample)
        assert not report.insufficient_data
        assert not [e.name for e in report.entries if e.drifted]
    shifted = trained_config.accepted.sample(DEFAULT_MIN_RECORDS, replace=True, random_state=1).assign(age=60)
    report = comparison.report(window_rows(trained_config.config, shifted))
    assert {"age", "age_zero_mean_unit_variance"} <= {e.name for e in report.entries if e.drifted}


def test_a_minimum_above_the_window_or_below_1_is_refused():
    with pytest.raises(settings.SettingsError, match="--drift-min-records must be in 1..--drift-window"):
        settings.parse(["--config", "c.pb", "--insecure", "--drift-window", "500"])  # the default 2,000 > 500
    with pytest.raises(settings.SettingsError, match="--drift-min-records must be in 1..--drift-window"):
        settings.parse(["--config", "c.pb", "--insecure", "--drift-min-records", "0"])
    assert settings.parse(["--config", "c.pb", "--insecure", "--drift-window", "500",
                           "--drift-min-records", "500"]).monitoring.thresholds.min_records == 500


@pytest.mark.process
def test_a_server_says_insufficient_data_in_the_report_the_gauges_and_the_cli(trained_config):
    port = free_port()
    drifted = trained_config.accepted.iloc[:300].assign(age=60, day_of_the_week=2)
    with ServerProcess(trained_config.path, metrics_port=port) as server, \
            PredictionClient(server.target, insecure=True) as client:
        client.predict_batch(converters.frame_to_records(drifted))
        report = client.drift_report()
        samples = metric_samples(port)
        cli = subprocess.run([sys.executable, "-m", "clients", "drift", "--target", server.target, "--insecure"],
                             capture_output=True, text=True, timeout=60)
    assert report.insufficient_data and report.min_records == 2_000 and report.window_records == 300
    assert report.features and not report.drifted
    assert samples[("feature_service_drift_insufficient_data", ())] == 1
    assert samples[("feature_service_drift_drifted_entries", ())] == 0
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "insufficient data: 300 records in the window, 2000 needed before drift is judged" in cli.stdout
    assert "DRIFT" not in cli.stdout
