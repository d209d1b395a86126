"""Defect: the Dask scheduler lost in the middle of a run was exit 1, "internal error:
FutureCancelledError". It is now exit 2 naming the scheduler, as when it cannot be reached; the
output folder keeps its previous run and the run's folder is removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from etl_job import synthetic
from testkit.dask_cluster import DaskDeployment
from testkit.paths import REPO_ROOT
from testkit.run_outputs import content

pytestmark = pytest.mark.process  # a real `dask scheduler`, `dask worker` processes and the job


def _job(input_path: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "etl_job", "run", "--input", str(input_path), "--output-dir", str(out),
            "--no-progress", *extra]


def _published(out: Path) -> dict:
    return {name: content(out / name) for name in ("serving_config.pb", "serving_config.json", "report.json",
                                                   "rejects.csv", "training_set.parquet")}


@pytest.mark.parametrize("step", ["extract_validate", "transform_fit"])
def test_the_dask_scheduler_lost_mid_run_is_exit_2_naming_it(tmp_path, step):
    out = tmp_path / "out"
    sample = REPO_ROOT / "etl_job" / "sample_data" / "absenteeism_sample.csv"
    previous = subprocess.run(_job(sample, out), capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert previous.returncode == 0, previous.stderr
    before = _published(out)
    runs_before = sorted(os.listdir(out / ".runs"))
    source = tmp_path / "big.csv"
    synthetic.write(synthetic.generate(300_000, seed=31, bad_fraction=0.01), source)

    cluster = DaskDeployment(workers=2, cwd=REPO_ROOT)
    try:
        job = subprocess.Popen(_job(source, out, "--engine", "dask", "--scheduler", cluster.address,
                                    "--part-bytes", "1000000", "--connect-timeout", "3"),
                               stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        assert job.stderr is not None
        log = []
        for line in job.stderr:
            log.append(line)
            if f"{step} ..." in line:
                cluster.scheduler.send_signal(signal.SIGKILL)
                break
        log.extend(job.stderr)
        code = job.wait(timeout=120)
    finally:
        cluster.stop()
    stderr = "".join(log)
    assert code == 2, stderr
    last = stderr.strip().splitlines()[-1]
    assert f"lost the Dask scheduler at {cluster.address}" in last, stderr
    assert "internal error" not in stderr
    assert _published(out) == before  # the previous run, byte for byte
    assert sorted(os.listdir(out / ".runs")) == runs_before  # no run folder left
