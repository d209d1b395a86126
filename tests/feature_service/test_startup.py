"""Start-up: Hamilton's plugin auto-loading is off in every entry point (it imported scikit-learn,
matplotlib and pydantic plugins, most of a process's start), and the plugin the feature module
needs is loaded by hand, so the driver still builds with its pandera checks (the feature tests show
the checks still fail a run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from testkit.paths import REPO_ROOT

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

ROOT = REPO_ROOT

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
    for module in ("etl_job.cli", "feature_service.rpc.prediction_server", "clients.client_cli"):
        loaded = _probe(module)
        assert loaded == {"plugins": ["hamilton.plugins.pandas_extensions"], "sklearn": False}, module



_BLAS_PROBE = """
import json, runpy, sys
sys.argv = ["etl_job", "--help"]
try:
    runpy.run_module("etl_job", run_name="__main__")
except SystemExit:
    pass
from threadpoolctl import threadpool_info
print(json.dumps([pool["num_threads"] for pool in threadpool_info() if pool["internal_api"] == "openblas"]))
"""


def test_the_job_runs_blas_on_one_thread():
    # OpenBLAS's own default is one thread per core; its busy-waiting second thread made the
    # job's transform+fit several times slower on shared cores.
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    run = subprocess.run([sys.executable, "-c", _BLAS_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == [1]
