"""What a new user meets at the client's command line: a TLS mismatch said in one line with what to
pass (no C-core noise), a closed pipe ended quietly, --version, the exit codes in --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from absenteeism import release
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`


def clients(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clients", *args], capture_output=True, text=True, timeout=120)


def test_a_tls_client_against_a_plaintext_server_is_told_to_pass_insecure(plaintext_server, certificates):
    result = clients("drift", "--target", plaintext_server.target, "--ca-cert", str(certificates["ca"]))
    assert result.returncode == 1
    assert "hint: the server speaks plaintext: pass --insecure" in result.stderr
    assert "ssl_transport_security" not in result.stderr  # the C core's lines stay quiet
    assert len(result.stderr.strip().splitlines()) == 2, result.stderr


def test_a_plaintext_client_against_a_tls_server_is_told_to_pass_the_ca(trained_config, certificates):
    with ServerProcess(trained_config.path, "--tls-cert", str(certificates["server.crt"]), "--tls-key",
                       str(certificates["server.key"]), insecure=False) as server:
        result = clients("drift", "--target", server.target, "--insecure")
    assert result.returncode == 1
    assert "hint: the server may require TLS: pass --ca-cert" in result.stderr


def test_a_reader_that_goes_away_ends_the_output_quietly(plaintext_server, trained_config):
    process = subprocess.Popen([sys.executable, "-m", "clients", "predict", "--target", plaintext_server.target,
                                "--insecure", "--input", str(trained_config.source), "--include-features",
                                "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()  # like `| head -1`: one line, then the reader is gone
    process.stdout.close()
    stderr = process.stderr.read().decode()
    code = process.wait(120)
    assert first.startswith(b"source_row")
    assert code == 141, stderr
    assert "Broken pipe" not in stderr and "Traceback" not in stderr and "error:" not in stderr


def test_version_and_exit_codes_in_help():
    version = clients("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"python -m clients {release.version()}"
    text = clients("--help").stdout
    for code in ("0", "1", "2", "3", "4", "5", "141"):
        assert f"\n  {code} " in text, code
    server = subprocess.run([sys.executable, "-m", "feature_service", "serve", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert "exit codes:" in server.stdout and "\n  78 " in server.stdout
    served_version = subprocess.run([sys.executable, "-m", "feature_service", "--version"], capture_output=True,
                                    text=True, timeout=120)
    assert served_version.stdout.strip() == f"python -m feature_service {release.version()}"
