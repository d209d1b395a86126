"""The one settings object: flags, FEATURE_SERVICE_* environment variables, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from feature_service import command_line, predictor_registry, settings
from feature_service.monitoring.prediction_logger import LogSettings


def test_defaults():
    s = settings.parse(["--config", "c.pb", "--insecure"], environ={})
    assert (s.host, s.port, s.metrics_port, s.grace, s.max_batch, s.predictor, s.micro_batch_rows,
            s.reload_interval) == ("0.0.0.0", 50051, 9464, 10.0, 10_000, "fast", 0, 5.0)
    assert s.config == Path("c.pb") and s.security == "plaintext"
    assert s.processes == 1 and s.process_count == 1 and not s.reuse_port
    assert s.monitoring.drift_window == 10_000 and s.monitoring.prediction_log is None  # drift on, no log


def test_processes_0_is_one_per_available_core():
    s = settings.parse(["--config", "c.pb", "--insecure", "--processes", "0"], environ={})
    assert s.process_count == len(os.sched_getaffinity(0))


def test_every_flag_reads_its_environment_variable():
    env = {"FEATURE_SERVICE_CONFIG": "/x.pb", "FEATURE_SERVICE_PORT": "0", "FEATURE_SERVICE_METRICS_PORT": "0",
           "FEATURE_SERVICE_INSECURE": "true", "FEATURE_SERVICE_GRACE": "2.5", "FEATURE_SERVICE_WORKERS": "3",
           "FEATURE_SERVICE_MAX_BATCH": "7", "FEATURE_SERVICE_MAX_MESSAGE_BYTES": "4096",
           "FEATURE_SERVICE_HOST": "127.0.0.1", "FEATURE_SERVICE_PREDICTOR": "reference",
           "FEATURE_SERVICE_LOG_LEVEL": "DEBUG", "FEATURE_SERVICE_LOG_FORMAT": "text",
           "FEATURE_SERVICE_MICRO_BATCH_ROWS": "32",
           "FEATURE_SERVICE_METRICS_HOST": "127.0.0.3", "FEATURE_SERVICE_RELOAD_INTERVAL": "0.5",
           "FEATURE_SERVICE_MAX_STREAMS": "2", "FEATURE_SERVICE_STREAM_IDLE_TIMEOUT": "5", "FEATURE_SERVICE_PROCESSES": "3",
           "FEATURE_SERVICE_DRIFT_WINDOW": "500", "FEATURE_SERVICE_DRIFT_PSI_THRESHOLD": "0.2",
           "FEATURE_SERVICE_DRIFT_JENSEN_SHANNON_THRESHOLD": "0.03",
           "FEATURE_SERVICE_DRIFT_L_INFINITY_THRESHOLD": "0.04", "FEATURE_SERVICE_DRIFT_MIN_RECORDS": "400",
           "FEATURE_SERVICE_PREDICTION_LOG": "/log",
           "FEATURE_SERVICE_PREDICTION_LOG_SAMPLE_RATE": "0.5", "FEATURE_SERVICE_PREDICTION_LOG_ROTATE_BYTES": "1000",
           "FEATURE_SERVICE_PREDICTION_LOG_ROTATE_SECONDS": "60", "FEATURE_SERVICE_MALLOC_KEEP_MIB": "8"}
    s = settings.parse([], environ=env)
    assert (s.config, s.port, s.metrics_port, s.insecure, s.grace, s.workers, s.max_batch, s.max_message_bytes,
            s.host, s.log_level, s.predictor, s.micro_batch_rows, s.metrics_host, s.reload_interval, s.max_streams,
            s.stream_idle_timeout, s.processes, s.log_format) == (
        Path("/x.pb"), 0, 0, True, 2.5, 3, 7, 4096, "127.0.0.1", "DEBUG", "reference", 32, "127.0.0.3", 0.5, 2, 5.0, 3, "text")
    monitoring = s.monitoring
    assert (monitoring.drift_window, monitoring.thresholds.psi, monitoring.thresholds.jensen_shannon,
            monitoring.thresholds.l_infinity, monitoring.thresholds.min_records) == (500, 0.2, 0.03, 0.04, 400)
    assert monitoring.prediction_log == LogSettings(Path("/log"), 0.5, 1000, 60.0)
    assert s.malloc_keep_mib == 8
    assert {settings.env_name(flag) for flag, *_ in settings.OPTIONS} == set(env) | {
        "FEATURE_SERVICE_TLS_CERT", "FEATURE_SERVICE_TLS_KEY", "FEATURE_SERVICE_TLS_CLIENT_CA"}


def test_metrics_listen_on_the_grpc_host_unless_told_otherwise():
    env = {"FEATURE_SERVICE_CONFIG": "c.pb", "FEATURE_SERVICE_INSECURE": "1"}
    assert settings.parse([], environ=env).metrics_host == "0.0.0.0"
    assert settings.parse(["--host", "127.0.0.1"], environ=env).metrics_host == "127.0.0.1"
    assert settings.parse(["--host", "::1"], environ={**env, "FEATURE_SERVICE_METRICS_HOST": ""}).metrics_host == "::1"
    assert settings.parse(["--host", "127.0.0.1", "--metrics-host", "0.0.0.0"], environ=env).metrics_host == "0.0.0.0"


def test_flags_win_over_environment():
    s = settings.parse(["--port", "1234", "--insecure"], environ={"FEATURE_SERVICE_PORT": "9",
                                                                    "FEATURE_SERVICE_CONFIG": "c.pb"})
    assert s.port == 1234


def test_tls_settings():
    s = settings.parse(["--config", "c", "--tls-cert", "s.crt", "--tls-key", "s.key", "--tls-client-ca", "ca"], {})
    assert s.security == "mtls" and not s.insecure


@pytest.mark.parametrize("argv, words", [
    (["--config", "c"], "TLS is required"),
    (["--config", "c", "--tls-cert", "s.crt"], "TLS is required"),
    (["--config", "c", "--insecure", "--tls-cert", "a", "--tls-key", "b"], "exclude each other"),
    (["--insecure"], "--config is required"),
    (["--config", "c", "--insecure", "--max-batch", "0"], "--max-batch"),
    (["--config", "c", "--insecure", "--reload-interval", "-1"], "--reload-interval"),
    (["--config", "c", "--insecure", "--reload-interval", "nan"], "--reload-interval"),
    (["--config", "c", "--insecure", "--processes", "-1"], "--processes"),
    (["--config", "c", "--insecure", "--drift-window", "-1"], "--drift-window"),
    (["--config", "c", "--insecure", "--drift-psi-threshold", "-0.1"], "threshold"),
    (["--config", "c", "--insecure", "--prediction-log-sample-rate", "1.5"], "sample-rate"),
])
def test_refusals(argv, words):
    with pytest.raises(settings.SettingsError, match=words):
        settings.parse(argv, environ={})


def test_unknown_predictor_is_a_usage_error():
    """Exit code 2 exactly: bad flags are a usage error (docs/grpc.md, command_line.EXIT_USAGE)."""
    with pytest.raises(SystemExit) as caught:
        settings.parse(["--config", "c", "--insecure", "--predictor", "nope"], environ={})
    assert caught.value.code == command_line.EXIT_USAGE == 2
    with pytest.raises(SystemExit) as caught:  # the same through the command line's entry
        command_line.main(["serve", "--config", "c", "--insecure", "--predictor", "nope"])
    assert caught.value.code == 2


def test_predictor_registry_is_the_one_place():
    assert "reference" in predictor_registry.names()
    with pytest.raises(ValueError, match="unknown predictor"):
        predictor_registry.create("nope", None)
