"""The grpcurl commands of docs/grpc.md, run verbatim (address swapped) against real servers."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from absenteeism.absenteeism_schema import RAW_COLUMN_NAMES
from absenteeism.online import converters
from clients import PredictionClient
from testkit.bits import assert_same_bits
from testkit.paths import REPO_ROOT
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

DOC = REPO_ROOT / "docs" / "grpc.md"
DOC_ADDRESS = "localhost:50051"


def grpcurl() -> str:
    found = Path(sys.executable).parent / "grpcurl"
    return str(found) if found.exists() else (shutil.which("grpcurl") or pytest.fail("grpcurl is not installed"))


def documented_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.startswith("grpcurl ")]


def run(command: str, target: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    argv = shlex.split(command.replace(DOC_ADDRESS, target))
    return subprocess.run([grpcurl(), *argv[1:]], capture_output=True, text=True, timeout=60, cwd=cwd)


def one(commands: list[str], *words: str) -> str:
    (found,) = [c for c in commands if all(w in c for w in words)]
    return found


@pytest.fixture(scope="module")
def commands() -> list[str]:
    found = documented_commands()
    assert len(found) == 8, found
    return found


def test_list(plaintext_server, commands):
    result = run(one(commands, " list", "-plaintext"), plaintext_server.target)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["absenteeism.v1.PredictionService", "grpc.health.v1.Health",
                                     "grpc.reflection.v1alpha.ServerReflection"]


def test_describe(plaintext_server, commands):
    result = run(one(commands, "describe absenteeism.v1.PredictionService"), plaintext_server.target)
    assert result.returncode == 0, result.stderr
    for method in ("Predict", "PredictBatch", "PredictStream", "GetServingConfig", "GetDriftReport"):
        assert f"rpc {method} (" in result.stdout
    result = run(one(commands, "describe absenteeism.v1.RawRecord"), plaintext_server.target)
    assert result.returncode == 0 and "optional int32 age = 9;" in result.stdout


def test_health_check(plaintext_server, commands):
    result = run(one(commands, "grpc.health.v1.Health/Check"), plaintext_server.target)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "SERVING"}


def test_predict_with_json_body_equals_training_prediction(plaintext_server, commands, trained_config):
    """The documented JSON call gives the training set's row 1 bit for bit. grpcurl prints a double 0.0
    as `0` and -0.0 as `-0`, which json.loads would read as the same int 0: numbers are read as floats."""
    result = run(one(commands, "Predict", "include_features"), plaintext_server.target)
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout, parse_int=float)
    assert_same_bits(response["prediction"], trained_config.predictions.loc[1])  # the body is the sample's row 1
    assert [f["name"] for f in response["features"]] == list(trained_config.config.feature_names)
    assert_same_bits([f["value"] for f in response["features"]], trained_config.features.loc[1])


def test_drift_report(plaintext_server, commands, trained_config):
    records = converters.frame_to_records(trained_config.accepted.loc[:, list(RAW_COLUMN_NAMES)].iloc[:20])
    with PredictionClient(plaintext_server.target, insecure=True) as client:
        client.predict_batch(records)
    result = run(one(commands, "GetDriftReport"), plaintext_server.target)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["config_id"] == trained_config.config.content_sha256 and int(report["window_records"]) >= 20
    numeric = sum(e.WhichOneof("kind") == "numeric" for e in trained_config.config.profile.entries)
    assert len(report["features"]) == len(trained_config.config.profile.entries) + numeric  # PSI and JSD each
    assert {f["metric"] for f in report["features"]} == {"psi", "jensen_shannon", "l_infinity"}


def test_invalid_predict_shows_bad_request(plaintext_server, commands):
    result = run(one(commands, '"age": 5}}'), plaintext_server.target)
    assert result.returncode != 0
    assert "Code: InvalidArgument" in result.stderr
    assert "google.rpc.BadRequest" in result.stderr and '"field":"record.age"' in result.stderr
    assert "in_range(16, 100)" in result.stderr


def test_mutual_tls_list(trained_config, certificates, commands):
    folder = certificates["ca"].parent  # the documented file names are the fixture's
    with ServerProcess(trained_config.path, "--tls-cert", str(certificates["server.crt"]), "--tls-key",
                       str(certificates["server.key"]), "--tls-client-ca", str(certificates["ca"]),
                       insecure=False) as server:
        command = one(commands, "-cacert")
        result = run(command, server.target, cwd=folder)
        assert result.returncode == 0, result.stderr
        assert "absenteeism.v1.PredictionService" in result.stdout.split()
        refused = run(command.replace(" -cert client.crt -key client.key", ""), server.target, cwd=folder)
        assert refused.returncode != 0
