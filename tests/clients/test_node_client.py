"""The generated Node.js client (clients/node) against a real server, driven from pytest so that
`make test` covers it: installs the npm dependencies when they are missing (`npm ci`, from the
committed package-lock.json), then runs `npm test` (tsc, the generated-code staleness check and
the node:test suite) with an absenteeism server's address in ABSENTEEISM_SERVER_ADDRESS and a
penguins server's (penguins.v1.PredictionService, typed penguins records) in PENGUINS_SERVER_ADDRESS."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from absenteeism import config_io
from testkit.paths import REPO_ROOT
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

ROOT = REPO_ROOT
NODE_DIR = ROOT / "clients" / "node"
# Node tests in clients/node/test: the suite must run at least these, not merely "not fail".
MIN_NODE_TESTS = 18


def npm() -> str:
    found = shutil.which("npm")
    if found is None:
        pytest.fail("npm not found: the Node client test needs Node.js >= 20 and npm on PATH")
    return found


def node_modules_current() -> bool:
    """npm ci has run for the committed lock file (npm writes node_modules/.package-lock.json)."""
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    return installed.exists() and installed.stat().st_mtime >= (NODE_DIR / "package-lock.json").stat().st_mtime


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if not node_modules_current():
        result = subprocess.run([npm(), "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    return NODE_DIR / "node_modules"


@pytest.fixture(scope="module")
def penguins_server(tmp_path_factory):
    """A real server on a config `python -m etl_job run --dataset penguins` built from its bundled table."""
    output = tmp_path_factory.mktemp("penguins-node")
    run = subprocess.run([sys.executable, "-m", "etl_job", "run", "--dataset", "penguins", "--output-dir", str(output),
                          "--no-progress"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    with ServerProcess(output / config_io.CONFIG_FILE) as server:
        yield server


def test_node_client_against_a_real_server(node_modules, plaintext_server, penguins_server) -> None:
    # loopback only: no proxy from the environment may carry the client's calls elsewhere
    env = {key: value for key, value in os.environ.items()
           if key.lower() not in ("grpc_proxy", "http_proxy", "https_proxy", "all_proxy")}
    env.update(ABSENTEEISM_SERVER_ADDRESS=plaintext_server.target, PENGUINS_SERVER_ADDRESS=penguins_server.target,
               PYTHON=sys.executable)
    result = subprocess.run([npm(), "test"], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"npm test failed:\n{output[-8000:]}"
    passed = re.search(r"^# pass (\d+)$", result.stdout, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", result.stdout, re.MULTILINE)
    assert passed and failed, f"no node:test summary in the output:\n{output[-4000:]}"
    assert int(failed.group(1)) == 0
    assert int(passed.group(1)) >= MIN_NODE_TESTS, output[-4000:]
    for name in ("reproduces every golden row bit for bit", "answers column-wise, in request order, bit for bit",
                 "a bad record gets an error and the stream goes on", "returns the sealed config",
                 "INVALID_ARGUMENT with a google.rpc.BadRequest naming it",
                 "the committed generated client is up to date with protos/",
                 # penguins.v1: typed records against a penguins server
                 "reproduces every penguins golden row bit for bit from typed records",
                 "a typed record with missing nullable fields and a text category gives the Python client's bits",
                 "an unknown island is INVALID_ARGUMENT with a google.rpc.BadRequest naming record.island",
                 "typed penguins records answer column-wise, in request order, bit for bit"):
        assert re.search(rf"^\s*ok \d+ - .*{re.escape(name)}", result.stdout, re.MULTILINE), f"{name!r} did not pass"
