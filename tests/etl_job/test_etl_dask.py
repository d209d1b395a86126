"""The Dask engine gives the local engine's outputs: the same rejects (bytes), the same training set
(every value's bits), the same config (but for when it was made), on a LocalCluster of its own and
on a real deployment (a `dask scheduler` and `dask worker` processes on 127.0.0.1); a worker killed
during the transform changes nothing; a scheduler that cannot be reached is exit 2 naming it."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from absenteeism import config_io
from absenteeism.dataset import blocks, partitions
from absenteeism.dataset import reader as input_reader
from etl_job import synthetic
from testkit.dask_cluster import DaskDeployment
from testkit.loopback import LOOPBACK, free_port
from testkit.paths import REPO_ROOT
from testkit.run_outputs import assert_same_outputs, content
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

ROOT = REPO_ROOT


def _job(input_path: Path, out: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etl_job", "run", "--input", str(input_path), "--output-dir", str(out),
                           "--no-progress", *extra], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def config_without_time(out: Path) -> bytes:
    config = config_io.read_config(out / config_io.CONFIG_FILE)
    config.provenance.ClearField("created_at")
    config.ClearField("content_sha256")
    return config.SerializeToString(deterministic=True)


@pytest.fixture(scope="module")
def folder_input(tmp_path_factory, real_data) -> Path:
    """The real data set split in three CSV files (its bytes as they are, CRLF), a generated CSV with
    realistic quirks, and a generated Parquet file of several row groups."""
    folder = tmp_path_factory.mktemp("input")
    header, *lines = real_data.read_bytes().split(b"\r\n")
    lines = [line for line in lines if line]
    for i, piece in enumerate(np.array_split(np.arange(len(lines)), 3)):
        (folder / f"a_real_{i}.csv").write_bytes(b"\r\n".join([header, *(lines[j] for j in piece)]) + b"\r\n")
    synthetic.write(synthetic.generate(3000, seed=11, bad_fraction=0.02), folder / "b_generated.csv")
    table = synthetic.to_table(synthetic.generate(2000, seed=12))
    pq.write_table(table, folder / "c_generated.parquet", row_group_size=300)
    return folder


@pytest.fixture(scope="module")
def local_run(folder_input, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    result = _job(folder_input, out)
    assert result.returncode == 0, result.stderr
    return out


def test_parts_read_the_rows_the_reader_reads(folder_input):
    whole = pd.concat([chunk.cells for chunk in input_reader.Reader(folder_input).chunks()])
    for part_bytes in (1, 3000, 10**9):
        parts = partitions.plan(folder_input, part_bytes)
        pieces = pd.concat([rows.cells for part in parts for rows in partitions.chunks(part, 97)])
        pieces.index = pd.RangeIndex(1, len(pieces) + 1)
        pd.testing.assert_frame_equal(pieces, whole)
    assert len(partitions.plan(folder_input, 3000)) > 10  # files cut in several parts each


def test_pieces_of_stretches_sum_to_the_block_sum_bits():
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(3000, 6))
    gram = lambda block: block.T @ block
    whole = blocks.BlockSum(256, gram)
    whole.feed(rows)
    expected = whole.finish()
    for _ in range(30):
        cuts = sorted({0, len(rows), *rng.integers(0, len(rows), size=rng.integers(0, 12)).tolist()})
        pieces = []
        for start, stop in itertools.pairwise(cuts):
            piece = blocks.PieceSum(256, gram, start)
            for chunk in np.array_split(rows[start:stop], rng.integers(1, 4)):
                piece.feed(chunk)
            pieces.append(piece.finish())
        assert np.array_equal(blocks.combine(pieces, gram).view(np.uint64), expected.view(np.uint64)), cuts


def test_local_cluster_gives_the_local_engines_outputs(folder_input, local_run, tmp_path):
    out = tmp_path / "out"
    result = _job(folder_input, out, "--engine", "dask", "--workers", "2", "--part-bytes", "20000", "--progress")
    assert result.returncode == 0, result.stderr
    assert "distributed.scheduler" not in result.stderr  # Dask's INFO lines stay out of the job's log
    for phase in ("read+validate", "number", "transform", "write"):  # a bar per phase, counting parts
        assert f"{phase} (parts)" in result.stderr, phase
    assert_same_outputs(local_run, out)
    assert len(list((out / "training_set.parquet").glob("part-*.parquet"))) > 3  # written by the workers, one part each


def test_one_row_parts_and_parts_of_rejected_rows_only(tmp_path):
    source = tmp_path / "small.csv"
    synthetic.write(synthetic.generate(120, seed=4, bad_fraction=0.04), source)
    local, dask = tmp_path / "local", tmp_path / "dask"
    assert _job(source, local).returncode == 0
    result = _job(source, dask, "--engine", "dask", "--workers", "2", "--part-bytes", "1")
    assert result.returncode == 0, result.stderr
    assert_same_outputs(local, dask)
    assert len(list((dask / "training_set.parquet").glob("part-*.parquet"))) == 120  # a part a row, rejected ones too


def test_a_ragged_line_read_by_a_worker_is_bad_data(tmp_path):
    source = tmp_path / "ragged.csv"
    synthetic.write(synthetic.generate(200, seed=5), source)
    with open(source, "a", newline="") as stream:
        stream.write("1;2;3\r\n")
    result = _job(source, tmp_path / "out", "--engine", "dask", "--workers", "1", "--part-bytes", "4000")
    assert result.returncode == 3, result.stderr
    assert "ragged.csv: cannot be read as the data set's format" in result.stderr
    assert not (tmp_path / "out" / "serving_config.pb").exists()


@pytest.fixture
def deployment():
    cluster = DaskDeployment(workers=2, cwd=ROOT)
    yield cluster
    cluster.stop()


def test_a_real_deployment_gives_the_local_engines_outputs_and_the_server_serves_them(
        folder_input, local_run, deployment, tmp_path):
    out = tmp_path / "out"
    result = _job(folder_input, out, "--engine", "dask", "--scheduler", deployment.address, "--part-bytes", "30000")
    assert result.returncode == 0, result.stderr
    assert_same_outputs(local_run, out)
    # The server verifies the Dask-built config like any other and serves its training set bit for bit.
    with ServerProcess(out / "serving_config.pb").start() as server:
        parity = subprocess.run(
            [sys.executable, "-m", "clients", "parity", "--target", server.target, "--insecure",
             "--training-set", str(out / "training_set.parquet"), "--input", str(folder_input), "--modes", "batch"],
            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert parity.returncode == 0, parity.stdout + parity.stderr


def test_a_worker_killed_during_the_transform_changes_nothing(deployment, tmp_path):
    source = tmp_path / "big.csv"
    synthetic.write(synthetic.generate(150_000, seed=21, bad_fraction=0.01), source)
    local = tmp_path / "local"
    assert _job(source, local).returncode == 0
    victim = deployment.workers[0]
    job = subprocess.Popen(
        [sys.executable, "-m", "etl_job", "run", "--input", str(source), "--output-dir", str(tmp_path / "dask"),
         "--no-progress", "--engine", "dask", "--scheduler", deployment.address, "--part-bytes", "400000"],
        stderr=subprocess.PIPE, text=True, cwd=ROOT)
    log = []
    for line in job.stderr:
        log.append(line)
        if "transform_fit ..." in line:
            victim.send_signal(signal.SIGKILL)
            break
    log.extend(job.stderr)
    assert job.wait(timeout=300) == 0, "".join(log)
    assert victim.wait(timeout=10) == -signal.SIGKILL
    assert_same_outputs(local, tmp_path / "dask")


def test_an_unreachable_scheduler_is_exit_2_naming_it(tmp_path):
    address = f"tcp://{LOOPBACK}:{free_port()}"
    started = time.monotonic()
    result = _job(ROOT / "etl_job" / "sample_data" / "absenteeism_sample.csv", tmp_path / "out",
                  "--engine", "dask", "--scheduler", address, "--connect-timeout", "2")
    assert result.returncode == 2, result.stderr
    assert f"cannot reach the Dask scheduler at {address} within 2 s" in result.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "out" / "serving_config.pb").exists()


def test_workers_running_another_feature_module_are_refused(tmp_path):
    copy = tmp_path / "code"
    for package in ("absenteeism", "etl_job", "feature_service", "clients"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    features = copy / "absenteeism" / "features.py"
    features.write_text(features.read_text() + "\n# an edit after training\n")
    cluster = DaskDeployment(workers=1, env={**os.environ, "PYTHONPATH": str(copy)}, cwd=ROOT)
    try:
        result = _job(ROOT / "etl_job" / "sample_data" / "absenteeism_sample.csv", tmp_path / "out",
                      "--engine", "dask", "--scheduler", cluster.address)
    finally:
        cluster.stop()
    assert result.returncode == 2, result.stderr
    assert "run a different feature module than this job" in result.stderr


def test_too_many_rejects_on_dask_keep_the_previous_run_and_that_runs_rejects(local_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(local_run, out, symlinks=True)
    before = {name: content(out / name) for name in ("serving_config.pb", "rejects.csv", "training_set.parquet")}
    source = tmp_path / "bad.csv"
    synthetic.write(synthetic.generate(400, seed=9, bad_fraction=0.2), source)
    result = _job(source, out, "--engine", "dask", "--workers", "1", "--part-bytes", "5000")
    assert result.returncode == 3, result.stderr
    kept = Path(result.stderr.split(" is in ")[1].split(" (")[0])
    local = _job(source, tmp_path / "local")
    assert local.returncode == 3
    local_kept = Path(local.stderr.split(" is in ")[1].split(" (")[0])
    assert kept.read_bytes() == local_kept.read_bytes()  # the same rejects as the local engine's
    assert [p.name for p in kept.parent.iterdir()] == ["rejects.csv"]  # no spill, no part left
    assert {name: content(out / name) for name in before} == before
