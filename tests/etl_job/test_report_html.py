"""report.html, beside report.json in every run folder: a page that opens in a real browser
(headless chromium) without a console error or a network request, and shows every entry of the
report: each (column, rule) of the rejects with its examples, every metric and its baseline, every
coefficient, every aggregate, and a histogram per profiled value (raw inputs, features, prediction)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from etl_job import outputs, report_page
from testkit.browser import open_page

pytestmark = pytest.mark.process  # the job and chromium run as real processes


@pytest.fixture(scope="module")
def run_folder(trained_config):
    return trained_config.path.parent


@pytest.fixture(scope="module")
def report(run_folder) -> dict:
    return json.loads((run_folder / outputs.REPORT_FILE).read_text())


def expected_entries(report: dict) -> list[str]:
    """The names a person must find on the page."""
    rejects = [text for item in report["rejects"]["by_column_rule"]
               for text in (item["column"], item["rule"], *(v for v in item["examples"] if v is not None))]
    metrics = [name for name in report["metrics"] if name not in report_page.SPLIT and not name.startswith("baseline_")]
    return [*rejects, *metrics, *report["model"]["coefficients"], *report["statistics"]["aggregates"],
            *report["profile"]["entries"]]


def test_the_run_folder_holds_the_page_of_its_report(run_folder, report):
    assert (run_folder / outputs.REPORT_HTML_FILE).read_text() == report_page.render(report)
    assert report["outputs"]["report_html"] == str(run_folder / outputs.REPORT_HTML_FILE)


def test_report_html_shows_every_entry_in_a_browser_without_errors(run_folder, report):
    page = open_page(run_folder / outputs.REPORT_HTML_FILE)
    assert page.console_errors == [] and page.page_errors == []
    assert page.requests == [page.url]  # self-contained: nothing fetched at view time
    assert report["rejects"]["by_column_rule"] and report["profile"]["entries"]  # the sample has both
    missing = [name for name in expected_entries(report) if name not in page.text]
    assert missing == []
    sources = {entry["source"] for entry in report["profile"]["entries"].values()}
    assert sources == {"raw_input", "feature", "prediction"}
    page_html = (run_folder / outputs.REPORT_HTML_FILE).read_text()
    assert page_html.count("<svg") == len(report["profile"]["entries"])  # one histogram each


HOSTILE = '<script>console.error("injected")</script><img src="http://127.0.0.1:9/x" onerror="console.error(1)">'


def test_user_text_is_escaped(tmp_path, report):
    """Reject values and the input path are whatever the input holds: shown as text, never run."""
    hostile = json.loads(json.dumps(report))
    hostile["rejects"]["by_column_rule"][0]["examples"] = [HOSTILE]
    hostile["input"]["path"] = HOSTILE
    path = tmp_path / "report.html"
    path.write_text(report_page.render(hostile))
    assert "<script" not in path.read_text() and "&lt;script&gt;" in path.read_text()
    page = open_page(path)
    assert page.console_errors == [] and page.page_errors == [] and page.requests == [page.url]
    assert HOSTILE in page.text  # shown as the input wrote it


def test_the_page_of_a_run_without_rejects(tmp_path, report):
    clean = json.loads(json.dumps(report))
    clean["rejects"] = {"rows": 0, "violations": 0, "by_column_rule": [], "rows_by_file": {}}
    assert "No row was rejected." in report_page.render(clean)




def test_a_classifier_run_shows_its_importances_and_class_probabilities(tmp_path):
    """An ONNX classifier (penguins, gbt): feature importances instead of coefficients, its classes,
    log loss/accuracy/AUC beside their baselines, and a histogram per class probability."""
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "etl_job", "run", "--dataset", "penguins", "--label", "species_index",
                          "--model", "gbt", "--output-dir", str(out), "--no-progress"],
                         capture_output=True, text=True, timeout=600)  # a process of its own: another data set
    assert run.returncode == 0, run.stderr
    report = json.loads((out / outputs.REPORT_FILE).read_text())
    page = open_page(out / outputs.REPORT_HTML_FILE)
    assert page.console_errors == [] and page.page_errors == [] and page.requests == [page.url]
    expected = [*report["model"]["feature_importances"], *report["statistics"]["aggregates"],
                *report["profile"]["entries"], "log_loss", "accuracy", "roc_auc", "Feature importances"]
    assert [name for name in expected if name not in page.text] == []
    assert any(name.startswith("probability[") for name in report["profile"]["entries"])
