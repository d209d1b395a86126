"""The job's process entry point (`python -m etl_job`, the `etl-job` script) keeps the cyclic garbage
collector off the objects that live as long as the process: the imports' modules, classes and
functions, and at exit everything left (the interpreter's teardown would otherwise walk them all
in full collections: docs/performance.md has what that cost at 1M rows)."""

import json
import subprocess
import sys

import pytest

from testkit.paths import REPO_ROOT

pytestmark = pytest.mark.process  # starts a real process: `make test`, not `make test-fast`

_PROBE = """
import gc, json, sys
from etl_job.__main__ import main
sys.argv = ["etl_job", "generate", "--rows", "50", "--seed", "1", "--output", sys.argv[1]]
status = main()
print(json.dumps({"status": status, "enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
                  "tracked": len(gc.get_objects())}))
"""


def test_the_job_process_freezes_its_long_lived_objects(tmp_path):
    output = tmp_path / "generated.csv"
    run = subprocess.run([sys.executable, "-c", _PROBE, str(output)], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    state = json.loads(run.stdout.splitlines()[-1])
    assert state["status"] == 0 and len(output.read_text().splitlines()) == 51  # the command did its work
    assert state["enabled"]  # off during the imports only
    # the imports' objects (pandas, pandera, Hamilton, the job's own modules: ~100,000) and the run's
    assert state["frozen"] > 50_000
    assert state["tracked"] < 1_000  # left for the teardown's collections: what the probe made since
