"""`make run` installs the core only, and rebuilds the config only when what it is made of changed;
`make setup` (behind make test/lint) installs every extra. Run in a copy of the checkout, with a
stand-in venv whose python is this one (nothing is installed anywhere)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit.checkout import checkout_copy

pytestmark = pytest.mark.process  # runs make and the job: `make test`, not `make test-fast`

MAKE = shutil.which("make")


def _make(source: Path, *args: str) -> str:
    result = subprocess.run([MAKE, "--no-print-directory", "VENV=venv", *args], cwd=source, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def checkout(tmp_path) -> Path:
    return checkout_copy(tmp_path)


def _stand_in_venv(source: Path, *stamps: str) -> None:
    python = source / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    for stamp in stamps:
        (source / "venv" / stamp).touch()


def _age(paths, seconds: float = 10) -> None:
    """Sets each file's mtime `seconds` in the past (copies are all 'now': make compares mtimes)."""
    past = time.time() - seconds
    for path in paths:
        os.utime(path, (past, past))


def test_make_run_on_a_fresh_clone_installs_the_core_only(checkout):
    planned = _make(checkout, "-n", "run")
    assert "-m venv venv" in planned
    installs = [line for line in planned.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs == ["venv/bin/python -m pip install --quiet -e ."], planned
    assert "etl_job run --output-dir build" in planned and "feature_service serve" in planned


def test_make_test_installs_every_extra(checkout):
    planned = _make(checkout, "-n", "test")
    assert "pip install --quiet -e '.[dev,dask,viz,models]'" in planned
    assert "-m pytest" in planned


def test_make_etl_runs_the_job_once_and_again_only_when_its_inputs_change(checkout):
    _age(p for p in checkout.rglob("*") if p.is_file())
    _stand_in_venv(checkout, ".installed-run")
    first = _make(checkout, "etl")
    assert "-m etl_job run --output-dir build" in first
    assert (checkout / "build" / "serving_config.pb").is_file()

    assert "etl_job run" not in _make(checkout, "-n", "etl"), "the config was rebuilt with nothing changed"
    assert "etl_job run" not in _make(checkout, "-n", "run")  # run = etl (nothing to do) + serve
    assert "feature_service serve" in _make(checkout, "-n", "run")

    for changed in ("etl_job/sample_data/absenteeism_sample.csv", "absenteeism/features.py", "etl_job/ridge.py",
                    "pyproject.toml"):
        (checkout / changed).touch()
        assert "etl_job run" in _make(checkout, "-n", "etl"), f"{changed} changed, the config was not rebuilt"
        _age([checkout / changed], 5)
    assert "etl_job run" not in _make(checkout, "-n", "etl")
