"""Defect: a CSV file with CR-only line ends worked on the local engine but the Dask engine exited 3,
"the input holds no data rows". Now both engines give the same outputs for it, alone or in a folder
with other files, whatever the part size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from etl_job import synthetic
from testkit.paths import REPO_ROOT
from testkit.run_outputs import assert_same_outputs

pytestmark = pytest.mark.process  # runs the job in processes and a LocalCluster


def _job(input_path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etl_job", "run", "--input", str(input_path), "--output-dir", str(out),
                           "--no-progress", *extra], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


def test_a_cr_only_csv_gives_the_dask_engine_the_local_engines_outputs(tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    synthetic.write(synthetic.generate(1500, seed=21, bad_fraction=0.02), folder / "a_crlf.csv")
    synthetic.write(synthetic.generate(1200, seed=22, bad_fraction=0.02), folder / "b_cr.csv")
    cr = folder / "b_cr.csv"
    cr.write_bytes(cr.read_bytes().replace(b"\r\n", b"\r"))
    for input_path in (cr, folder):
        local = tmp_path / f"local_{input_path.name}"
        result = _job(input_path, local)
        assert result.returncode == 0, result.stderr
        for part_bytes in ("5000", "67108864"):
            dask = tmp_path / f"dask_{input_path.name}_{part_bytes}"
            result = _job(input_path, dask, "--engine", "dask", "--workers", "1", "--part-bytes", part_bytes)
            assert result.returncode == 0, result.stderr
            assert_same_outputs(local, dask)
