"""`python -m clients drift --html FILE` against a real server on 127.0.0.1 after real traffic:
a page that opens in headless chromium without a console error or a network request, with every
monitored value, drifted ones first, each with its metrics, thresholds and training bins beside
the window's; and a window too small to judge says so."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from absenteeism import absenteeism_schema, data_sets, profile_bins
from absenteeism.online import converters
from clients import PredictionClient, drift_page
from clients.client import DriftReport, FeatureDrift
from clients.drift_report import EXIT_DRIFT, ordered
from feature_service.monitoring import drift_window
from testkit.browser import open_page
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # a real server, the CLI and chromium run as processes

AGED = {"age": 60, "day_of_the_week": 2}  # as tests/feature_service/test_drift.py: drifts age, the day, the prediction


def test_the_drift_page_of_a_live_window(trained_config, tmp_path):
    rows = trained_config.accepted.loc[:, list(absenteeism_schema.RAW_COLUMN_NAMES)]
    records = converters.frame_to_records(rows.assign(**AGED))
    page_path = tmp_path / "drift.html"
    with ServerProcess(trained_config.path, "--drift-min-records", "100") as server, \
            PredictionClient(server.target, insecure=True) as client:
        for i in range(0, len(records), 500):
            client.predict_batch(records[i:i + 500])
        report = client.drift_report()
        cli = subprocess.run([sys.executable, "-m", "clients", "drift", "--target", server.target, "--insecure",
                              "--html", str(page_path)], capture_output=True, text=True, timeout=60)
    assert cli.returncode == EXIT_DRIFT, cli.stderr  # the exit code of `drift` without --html
    assert report.drifted and not report.insufficient_data

    page = open_page(page_path)
    assert page.console_errors == [] and page.page_errors == []
    assert page.requests == [page.url]
    names = list(dict.fromkeys(f.name for f in ordered(report)))
    assert [name for name in names if name not in page.text] == []
    assert f"{len({f.name for f in report.drifted})} of {len(names)} values drifted" in page.text
    # Cards in the CLI table's order: drifted values first.
    html = page_path.read_text()
    assert re.findall(r'id="drift-([^"]+)"', html) == names
    drifted = {f.name for f in report.drifted}
    assert set(names[:len(drifted)]) == drifted
    assert html.count("<svg") == len(names)  # every value's bins, training beside the window
    for f in report.features:
        assert f"{f.threshold:g}" in page.text and f.metric in page.text


def _client_report(comparison: drift_window.Comparison, rows: np.ndarray) -> DriftReport:
    """What the client makes of the RPC's response (PredictionClient.drift_report)."""
    response = comparison.report(rows).response()
    return DriftReport([FeatureDrift(f.name, f.source, f.metric, f.value, f.threshold, f.drifted,
                                     tuple(f.window_counts)) for f in response.features],
                       response.window_records, response.config_id, response.min_records, response.insufficient_data)


def test_a_window_too_small_to_judge_says_so(trained_config):
    names = data_sets.active().table.column_names
    raw = np.column_stack([trained_config.accepted[name].to_numpy(np.float64) for name in names])
    rows = np.column_stack([raw, trained_config.features.to_numpy(np.float64),
                            trained_config.predictions.to_numpy(np.float64)])[:50]
    comparison = drift_window.Comparison(trained_config.config, drift_window.Thresholds(min_records=100))
    report = _client_report(comparison, rows)
    assert report.insufficient_data and report.features
    html = drift_page.render(report, ordered(report), trained_config.config)
    assert "Insufficient data:" in html and "50 records in the window" in html and ">DRIFT<" not in html
    assert html.count("not judged") >= len(profile_bins.from_message(trained_config.config.profile))


def test_a_server_without_window_counts_still_gets_a_page(trained_config):
    """A server older than FeatureDrift.window_counts: metrics without histograms, said plainly."""
    report = DriftReport([FeatureDrift("age", "raw_input", "psi", 0.5, 0.1, True)], 3000, trained_config.config.content_sha256,
                         2000, False)
    html = drift_page.render(report, report.features, trained_config.config)
    assert "sent no window counts" in html and "<svg" not in html
