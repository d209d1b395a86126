"""The server refuses to boot with a config it cannot verify (exit 78, one message), refuses to run
without transport security unless asked for plaintext (exit 2), and boots from the environment."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import struct
import tempfile
from pathlib import Path

import pytest

from absenteeism import config_io
from absenteeism.v1 import serving_config_pb2
from feature_service.processes.lone_server import EXIT_CONFIG
from testkit.boot_checks import as_non_root, refusal_lines
from testkit.process_control import wait_until_catches
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`


def resealed(config, edit) -> bytes:
    copy = serving_config_pb2.ServingConfig()
    copy.CopyFrom(config)
    edit(copy)
    return config_io.seal(copy).SerializeToString(deterministic=True)


def flip_intercept_bit(data: bytes, config) -> bytes:
    at = data.index(struct.pack("<d", config.model.intercept))
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def reversed_features(config):
    names = list(config.feature_names)[::-1]
    del config.feature_names[:]
    config.feature_names.extend(names)


def failing_golden_row(config):
    config.golden_rows[0].prediction += 1e-9


BAD_CONFIGS = {
    # name: (bytes of the file, None = no file), words of the one message
    "missing": (lambda data, cfg: None, "does not exist"),
    "empty": (lambda data, cfg: b"", "is empty"),
    "truncated": (lambda data, cfg: data[: len(data) - 5], "truncated or corrupted"),
    "corrupted_byte": (flip_intercept_bit, "does not match its recorded digest"),
    "other_feature_code": (lambda data, cfg: resealed(cfg, lambda c: setattr(
        c.provenance.code, "feature_module_sha256", "0" * 64)), "built with a different feature module"),
    "other_raw_schema": (lambda data, cfg: resealed(cfg, lambda c: setattr(
        c.provenance.code, "raw_schema_sha256", "1" * 64)), "built with a different raw schema"),
    "failing_golden_rows": (lambda data, cfg: resealed(cfg, failing_golden_row), "golden row 0"),
    "wrong_feature_list": (lambda data, cfg: resealed(cfg, reversed_features), "feature list"),
    "unknown_format_version": (lambda data, cfg: resealed(cfg, lambda c: setattr(c, "format_version", 99)),
                               "format version 99"),
}


@pytest.fixture(scope="module")
def refused(trained_config, tmp_path_factory) -> dict[str, tuple[Path, ServerProcess]]:
    """Every bad config, each booted by its own server process; the processes run side by side."""
    folder = tmp_path_factory.mktemp("bad_configs")
    launched = {}
    for name, (make, _) in BAD_CONFIGS.items():
        content = make(trained_config.path.read_bytes(), trained_config.config)
        path = folder / f"{name}.pb"
        if content is not None:
            path.write_bytes(content)
        launched[name] = (path, ServerProcess(path).launch())
    for _, server in launched.values():
        server.wait(timeout=120)
    return launched


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_is_refused_with_its_message(name, refused):
    path, server = refused[name]
    words = BAD_CONFIGS[name][1]
    assert server.returncode == EXIT_CONFIG, "\n".join(server.logs)
    refusals = [json.loads(line) for line in server.logs if line.startswith("{") and "config_refused" in line]
    assert len(refusals) == 1 and words in refusals[0]["message"], "\n".join(server.logs)
    assert refusals[0]["config"] == str(path)
    assert "rerun the ETL job" in refusals[0]["message"] or "etl_job" in refusals[0]["message"]
    assert any(line.startswith("feature_service: ") and words in line and str(path) in line for line in server.logs)
    assert not any('"serving"' in line for line in server.logs)


def test_refuses_to_start_without_tls_or_insecure(trained_config):
    server = ServerProcess(trained_config.path, insecure=False)
    assert server.run_to_exit() == 2
    assert any("TLS is required" in line for line in server.logs)


def test_unreadable_tls_file_is_refused(trained_config, tmp_path):
    server = ServerProcess(trained_config.path, "--tls-cert", str(tmp_path / "no.crt"), "--tls-key",
                           str(tmp_path / "no.key"), insecure=False)
    assert server.run_to_exit() == EXIT_CONFIG
    assert any("cannot read TLS file" in line for line in server.logs)


def test_port_in_use_exits_1(trained_config):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ServerProcess(trained_config.path, "--port", str(taken.getsockname()[1]))
        assert server.run_to_exit() == 1
    assert any("cannot listen on 127.0.0.1:" in line for line in server.logs)


def test_metrics_port_in_use_exits_1(trained_config):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ServerProcess(trained_config.path, metrics_port=taken.getsockname()[1])
        assert server.run_to_exit() == 1
    assert any("cannot serve metrics on 127.0.0.1:" in line for line in server.logs)


def test_boots_from_environment_variables(trained_config):
    env = {"FEATURE_SERVICE_CONFIG": str(trained_config.path), "FEATURE_SERVICE_GRACE": "1",
           "FEATURE_SERVICE_MAX_BATCH": "5"}
    with ServerProcess(None, env=env) as server:
        serving = next(json.loads(line) for line in server.logs if '"serving"' in line)
        assert serving["port"] == server.port and serving["config_id"] == trained_config.config.content_sha256
        assert serving["security"] == "plaintext"
    assert server.returncode == 0
    assert any('"grace_seconds": 1.0' in line for line in server.logs)


def test_unreadable_config_exits_78_naming_the_file(trained_config):
    folder = Path(tempfile.mkdtemp(prefix="unreadable-config-"))  # not under pytest's 0700 root folder
    try:
        folder.chmod(0o755)
        path = folder / "serving_config.pb"
        path.write_bytes(trained_config.path.read_bytes())
        path.chmod(0o000)
        server = as_non_root(ServerProcess(path))
        assert server.run_to_exit() == EXIT_CONFIG, "\n".join(server.logs)
        assert [line for line in refusal_lines(server) if str(path) in line and "permission denied" in line]
        assert any('"config_refused"' in line for line in server.logs)
        assert not any("bind_failed" in line or "Traceback" in line for line in server.logs)
    finally:
        shutil.rmtree(folder)


def test_a_directory_as_config_exits_78_saying_so(trained_config):
    server = ServerProcess(trained_config.path.parent)
    assert server.run_to_exit() == EXIT_CONFIG, "\n".join(server.logs)
    (line,) = refusal_lines(server)
    assert f"{trained_config.path.parent} is a directory" in line and "does not exist" not in line


def test_golden_record_that_breaks_the_raw_schema_exits_78(trained_config, tmp_path):
    path = tmp_path / "bad_golden_record.pb"
    path.write_bytes(resealed(trained_config.config, lambda c: setattr(c.golden_rows[0].record, "age", 5)))
    server = ServerProcess(path)
    assert server.run_to_exit() == EXIT_CONFIG, "\n".join(server.logs)
    (line,) = refusal_lines(server)
    assert f"config file {path}: the golden rows cannot be computed" in line and "age" in line
    assert not any("Traceback" in line for line in server.logs)


def tls_case(certificates, tmp_path, case):
    """(flags, file named in the message, words) for a broken TLS file."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    cert, key = certificates["server.crt"], certificates["server.key"]
    return {
        "garbage_cert": (["--tls-cert", garbage, "--tls-key", key], garbage, "holds no PEM certificate"),
        "garbage_key": (["--tls-cert", cert, "--tls-key", garbage], garbage, "not an unencrypted PEM private key"),
        "mismatched_key": (["--tls-cert", cert, "--tls-key", certificates["client.key"]], certificates["client.key"],
                           "does not match the certificate"),
        "garbage_client_ca": (["--tls-cert", cert, "--tls-key", key, "--tls-client-ca", garbage], garbage,
                              "holds no PEM certificate"),
    }[case]


@pytest.mark.parametrize("case", ["garbage_cert", "garbage_key", "mismatched_key", "garbage_client_ca"])
def test_unusable_tls_file_exits_78_naming_it(trained_config, certificates, tmp_path, case):
    flags, named, words = tls_case(certificates, tmp_path, case)
    server = ServerProcess(trained_config.path, *map(str, flags), insecure=False)
    assert server.run_to_exit() == EXIT_CONFIG, "\n".join(server.logs)
    (line,) = refusal_lines(server)
    assert str(named) in line and words in line
    assert not any("Failed to bind" in line for line in server.logs)


def test_sigterm_while_the_server_loads_is_a_clean_stop(trained_config):
    server = ServerProcess(trained_config.path).launch()
    # Its handler comes first; the imports then take seconds (a stop before them would be a death
    # without a word). Sent now, the signal lands in the imports: no boot, a clean stop.
    wait_until_catches(server.pid, signal.SIGTERM)
    server.signal(signal.SIGTERM)
    assert server.wait(60) == 0, "\n".join(server.logs)
    events = [json.loads(line)["event"] for line in server.logs if line.startswith("{")]
    assert events == ["signal", "stopped"] and '"SIGTERM"' in server.logs[0]
