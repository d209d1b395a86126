"""The one settings object: flags, FEATURE_SERVICE_* environment variables, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from feature_service import predictors, settings


def test_defaults():
    s = settings.parse(["--config", "c.pb", "--insecure"], environ={})
    assert (s.host, s.port, s.metrics_port, s.grace, s.max_batch, s.predictor, s.micro_batch_rows,
            s.reload_interval) == ("0.0.0.0", 50051, 9464, 10.0, 10_000, "fast", 0, 5.0)
    assert s.config == Path("c.pb") and s.security == "plaintext"
    assert s.processes == 1 and s.process_count == 1 and not s.reuse_port


def test_processes_0_is_one_per_available_core():
    s = settings.parse(["--config", "c.pb", "--insecure", "--processes", "0"], environ={})
    assert s.process_count == len(os.sched_getaffinity(0))


def test_every_flag_reads_its_environment_variable():
    env = {"FEATURE_SERVICE_CONFIG": "/x.pb", "FEATURE_SERVICE_PORT": "0", "FEATURE_SERVICE_METRICS_PORT": "0",
           "FEATURE_SERVICE_INSECURE": "true", "FEATURE_SERVICE_GRACE": "2.5", "FEATURE_SERVICE_WORKERS": "3",
           "FEATURE_SERVICE_MAX_BATCH": "7", "FEATURE_SERVICE_MAX_MESSAGE_BYTES": "4096",
           "FEATURE_SERVICE_HOST": "127.0.0.1", "FEATURE_SERVICE_PREDICTOR": "reference",
           "FEATURE_SERVICE_LOG_LEVEL": "DEBUG", "FEATURE_SERVICE_MICRO_BATCH_ROWS": "32",
           "FEATURE_SERVICE_METRICS_HOST": "127.0.0.3", "FEATURE_SERVICE_RELOAD_INTERVAL": "0.5",
           "FEATURE_SERVICE_MAX_STREAMS": "2", "FEATURE_SERVICE_STREAM_IDLE_TIMEOUT": "5", "FEATURE_SERVICE_PROCESSES": "3"}
    s = settings.parse([], environ=env)
    assert (s.config, s.port, s.metrics_port, s.insecure, s.grace, s.workers, s.max_batch, s.max_message_bytes,
            s.host, s.log_level, s.predictor, s.micro_batch_rows, s.metrics_host, s.reload_interval, s.max_streams,
            s.stream_idle_timeout, s.processes) == (
        Path("/x.pb"), 0, 0, True, 2.5, 3, 7, 4096, "127.0.0.1", "DEBUG", "reference", 32, "127.0.0.3", 0.5, 2, 5.0, 3)
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
])
def test_refusals(argv, words):
    with pytest.raises(settings.SettingsError, match=words):
        settings.parse(argv, environ={})


def test_unknown_predictor_is_a_usage_error():
    with pytest.raises(SystemExit):
        settings.parse(["--config", "c", "--insecure", "--predictor", "nope"], environ={})


def test_predictor_registry_is_the_one_place():
    assert "reference" in predictors.names()
    with pytest.raises(ValueError, match="unknown predictor"):
        predictors.create("nope", None)
