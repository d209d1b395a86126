"""The job and the server log the same fields, as text or as JSON (--log-format)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from absenteeism import log_lines
from etl_job import cli
from feature_service import settings


def test_text_and_json_carry_the_same_fields():
    record = logging.LogRecord("feature_service", logging.INFO, __file__, 1, "serving on %d", (50051,), None)
    record.event, record.port = "serving", 50051
    entry = json.loads(log_lines.JsonFormatter().format(record))
    text = log_lines.TextFormatter().format(record)
    assert entry["message"] == "serving on 50051" and entry["event"] == "serving" and entry["port"] == 50051
    assert text.startswith(entry["ts"] + " INFO feature_service: serving on 50051")
    assert 'event="serving"' in text and "port=50051" in text


def test_an_unknown_format_is_refused_by_both_commands(capsys):
    with pytest.raises(settings.SettingsError, match="--log-format must be one of text, json"):
        settings.parse(["--config", "c.pb", "--insecure", "--log-format", "xml"])
    with pytest.raises(SystemExit) as usage:
        cli.main(["--log-format", "xml", "run"])
    assert usage.value.code == 2 and "--log-format" in capsys.readouterr().err


@pytest.mark.process
def test_the_job_logs_json_lines_when_asked(tmp_path):
    result = subprocess.run([sys.executable, "-m", "etl_job", "--log-format", "json", "run", "--output-dir",
                             str(tmp_path), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert entries and all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e["message"].startswith("done:") for e in entries)


@pytest.mark.process
def test_the_server_logs_text_when_asked(trained_config):
    server = subprocess.Popen([sys.executable, "-m", "feature_service", "serve", "--config", str(trained_config.path),
                               "--insecure", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
                               "--log-format", "text"], stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        for line in server.stderr:
            if 'event="serving"' in line:
                break
        assert " INFO feature_service" in line and 'event="serving"' in line and not line.startswith("{")
    finally:
        server.terminate()
        server.wait(30)
