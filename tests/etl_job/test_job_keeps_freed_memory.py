"""`etl_job run|score --malloc-keep-mib`: glibc keeps that much freed memory for the job's next
chunk instead of handing it back to the kernel (absenteeism/malloc_tuning.py); 0 keeps glibc's
behaviour."""

import json
import subprocess
import sys

import pytest

from etl_job import cli
from testkit.paths import REPO_ROOT

pytestmark = [pytest.mark.process,  # runs the job in a fresh interpreter: `make test`, not `make test-fast`
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")]

SAMPLE = REPO_ROOT / "etl_job" / "sample_data" / "absenteeism_sample.csv"

# After the command (on the bundled sample): RSS (MiB) given back when a 64 MiB array is freed. glibc's
# own mmap threshold never rises above 32 MiB, so with its defaults the block is unmapped on free.
RUN_AND_FREE = """
import json, sys
import numpy as np
from etl_job.cli import main

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

status = main([*sys.argv[2:], "--no-progress", "--malloc-keep-mib", sys.argv[1]])
block = np.ones(8 * 2**20)  # 64 MiB, every page touched
held = rss()
del block
print(json.dumps({"status": status, "given_back": held - rss()}))
"""


def given_back(mib: int, *command: str) -> float:
    run = subprocess.run([sys.executable, "-c", RUN_AND_FREE, str(mib), *command],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["status"] == 0
    return result["given_back"]


def test_the_job_keeps_freed_memory_only_when_asked(tmp_path):
    run = ["run", "--input", str(SAMPLE), "--output-dir"]
    assert given_back(0, *run, str(tmp_path / "run-0")) > 48  # glibc's defaults: unmapped at once
    assert given_back(256, *run, str(tmp_path / "run-256")) < 8  # kept for the next chunk
    score = ["score", "--config", str(tmp_path / "run-0" / "serving_config.pb"), "--input", str(SAMPLE), "--output-dir"]
    assert given_back(0, *score, str(tmp_path / "score-0")) > 48
    assert given_back(256, *score, str(tmp_path / "score-256")) < 8


@pytest.mark.parametrize("command", ["run", "score"])
@pytest.mark.parametrize(("value", "said"), [("1025", "1025 is more than 1024"), ("-1", "-1 is negative")])
def test_a_keep_out_of_range_is_refused(command, value, said, capsys):
    with pytest.raises(SystemExit) as refused:
        cli.main([command, "--malloc-keep-mib", value])
    assert refused.value.code == 2 and f"--malloc-keep-mib: {said}" in capsys.readouterr().err
