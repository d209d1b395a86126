"""Start-up: Hamilton's plugin auto-loading is off in every entry point (it imported scikit-learn,
matplotlib and pydantic plugins, most of a process's start), and the plugin the feature module
needs is loaded by hand, so the driver still builds with its pandera checks (the feature tests show
the checks still fail a run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import json, sys
import {module}
from absenteeism import dataflow
dataflow.feature_driver()
print(json.dumps({{"plugins": sorted(m for m in sys.modules if m.startswith("hamilton.plugins.")),
                   "sklearn": "sklearn" in sys.modules}}))
"""


def _probe(module: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "HAMILTON_AUTOLOAD_EXTENSIONS"}
    run = subprocess.run([sys.executable, "-c", _PROBE.format(module=module)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def test_job_server_and_cli_load_only_the_pandas_plugin():
    for module in ("etl_job.cli", "feature_service.server", "clients.cli"):
        loaded = _probe(module)
        assert loaded == {"plugins": ["hamilton.plugins.pandas_extensions"], "sklearn": False}, module

