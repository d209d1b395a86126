"""Shared fixtures. Append yours; keep each small."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from absenteeism import config_io
from absenteeism.dataset import reader


@dataclass(frozen=True)
class TrainedConfig:
    path: Path  # serving_config.pb
    source: Path  # the raw input the ETL job read (the bundled sample)
    accepted: pd.DataFrame  # typed accepted raw rows, index = 1-based source row
    predictions: pd.Series  # training-time prediction per accepted row (same index)
    features: pd.DataFrame  # training-time model features per accepted row (same index)
    config: object  # the ServingConfig message


@pytest.fixture(scope="session")
def trained_config(tmp_path_factory) -> TrainedConfig:
    """`python -m etl_job run` on the bundled sample, and what it computed for each accepted row."""
    from etl_job import run_settings

    output = tmp_path_factory.mktemp("etl")
    run = subprocess.run([sys.executable, "-m", "etl_job", "run", "--output-dir", str(output), "--no-progress"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    training_set = pd.read_parquet(output / "training_set.parquet").set_index("source_row")
    config = config_io.read_config(output / config_io.CONFIG_FILE)
    typed = reader.read_typed(run_settings.SAMPLE_INPUT).frame
    return TrainedConfig(output / config_io.CONFIG_FILE, run_settings.SAMPLE_INPUT, typed.loc[training_set.index],
                         training_set["prediction"], training_set[list(config.feature_names)], config)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> dict[str, Path]:
    """CA, server (localhost/127.0.0.1) and client certs signed by it, and a client cert of another CA."""
    from feature_service.testing import make_certificates

    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def plaintext_server(trained_config):
    """A real server process on 127.0.0.1 (plaintext, metrics on a free port), shared by a module."""
    from feature_service.testing import ServerProcess, free_port

    with ServerProcess(trained_config.path, metrics_port=free_port()) as server:
        yield server


def content(path: Path) -> bytes | dict[str, bytes]:
    """A file's bytes, or a folder's files' bytes by name (training_set.parquet is a folder of parts)."""
    path = Path(path)
    if path.is_dir():
        return {part.name: part.read_bytes() for part in sorted(path.iterdir())}
    return path.read_bytes()
