"""The three command lines as console scripts: declared in the wheel, each the same main() as its
`python -m`, each runnable from the project venv; the server's script installs its signal
handlers before the slow imports, as `python -m feature_service` does."""

from __future__ import annotations

import configparser
import importlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from absenteeism import release

pytestmark = pytest.mark.process  # builds a wheel and starts processes: `make test`, not `make test-fast`

SCRIPTS = {
    "etl-job": ("etl_job.__main__:main", "etl_job"),
    "feature-service": ("feature_service.__main__:main", "feature_service"),
    "absenteeism-client": ("clients.__main__:main", "clients"),
}
BIN = Path(sys.executable).parent


def _script(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{path} is missing: reinstall the project (make setup, or pip install -e '.[dev,dask,viz]')"
    return str(path)


def test_the_wheel_declares_the_console_scripts(built_wheel):
    entry_points = configparser.ConfigParser()
    entry_points.read_string(built_wheel.read(".dist-info/entry_points.txt"))
    assert dict(entry_points["console_scripts"]) == {name: target for name, (target, _) in SCRIPTS.items()}


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_runs_the_main_python_dash_m_runs(name):
    target, package = SCRIPTS[name]
    module, function = target.split(":")
    assert module == f"{package}.__main__"  # the one main() both ways start
    assert callable(getattr(importlib.import_module(module), function))


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_installed_script_answers_help(name):
    result = subprocess.run([_script(name), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {name} ")  # named as it was started, not `python -m ...`
    assert "exit codes" in result.stdout
    version = subprocess.run([_script(name), "--version"], capture_output=True, text=True, timeout=120)
    assert version.stdout.strip() == f"{name} {release.version()}"


def test_the_server_script_catches_sigterm_while_its_modules_load(trained_config):
    from testkit.process_control import wait_until_catches
    from testkit.server_process import ServerProcess

    server = ServerProcess(trained_config.path)
    assert server.command[1:3] == ["-m", "feature_service"]
    server.command[:3] = [_script("feature-service")]
    server.launch()
    wait_until_catches(server.pid, signal.SIGTERM)  # handler in place, imports still ahead
    server.signal(signal.SIGTERM)
    assert server.wait(60) == 0, "\n".join(server.logs)
    events = [json.loads(line)["event"] for line in server.logs if line.startswith("{")]
    assert events == ["signal", "stopped"], server.logs
