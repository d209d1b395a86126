"""Defect: a comma-separated export gave `missing columns [all 21]` with no hint. The job's message
(exit 3, bad data) now names the delimiter the header appears to use, on both engines."""

from __future__ import annotations

import subprocess
import sys

import pytest

from etl_job import synthetic
from testkit.paths import REPO_ROOT

pytestmark = pytest.mark.process  # runs the job in processes (and a LocalCluster)


@pytest.mark.parametrize("name,delimiter,engine", [("comma", b",", "local"), ("comma", b",", "dask"),
                                                   ("tab", b"\t", "local"), ("tab", b"\t", "dask")])
def test_the_job_names_the_delimiter_a_csv_header_appears_to_use(tmp_path, name, delimiter, engine):
    path = tmp_path / f"{name}.csv"
    synthetic.write(synthetic.generate(200, seed=4), path)
    path.write_bytes(path.read_bytes().replace(b";", delimiter))
    result = subprocess.run([sys.executable, "-m", "etl_job", "run", "--input", str(path), "--output-dir",
                             str(tmp_path / "out"), "--no-progress", "--engine", engine, "--workers", "1"],
                            capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"etl_job: bad data: {name}.csv: missing columns ['id', "), last
    assert last.endswith(f"the header looks {name}-separated (21 of the 21 columns are found when it is split at "
                         f"{delimiter.decode()!r}, 0 at ';'); this data set's CSV uses ';'"), last
    assert not (tmp_path / "out" / "serving_config.pb").exists()
