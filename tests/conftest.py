"""Shared fixtures. Append yours; keep each small."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from absenteeism import config_io, dataflow
from absenteeism.absenteeism_schema import RAW_DTYPES
from absenteeism.dataset import reader
from etl_job import local_engine, serving_config, training
from testkit.paths import require_real_data
from testkit.records import VALID_ROW


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
def real_data() -> Path:
    """The real data set (../shared/data): skipped without it, except in CI, where that fails."""
    return require_real_data()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> dict[str, Path]:
    """CA, server (localhost/127.0.0.1) and client certs signed by it, and a client cert of another CA."""
    from testkit.certificates import make_certificates

    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def plaintext_server(trained_config):
    """A real server process on 127.0.0.1 (plaintext, metrics on a free port), shared by a module."""
    from testkit.loopback import free_port
    from testkit.server_process import ServerProcess

    with ServerProcess(trained_config.path, metrics_port=free_port()) as server:
        yield server


@pytest.fixture(scope="session")
def config():
    """A config fitted in process on 200 valid rows around testkit.records.VALID_ROW (no job run)."""
    rng = np.random.default_rng(3)
    rows = [{**VALID_ROW, "age": int(rng.integers(20, 60)), "day_of_the_week": int(rng.integers(2, 7)),
             "seasons": int(rng.integers(1, 5)), "reason_for_absence": int(rng.integers(0, 29)),
             "absenteeism_time_in_hours": int(rng.integers(0, 40))} for _ in range(200)]
    accepted = pd.DataFrame(rows, index=range(1, 201)).astype({**RAW_DTYPES, "absenteeism_time_in_hours": "int64"})
    fitted = local_engine.train([accepted], aggregates=training.analyze(accepted[list(dataflow.analyze_columns())]),
                                settings=training.FitSettings(), parity_positions=np.empty(0, np.int64)).fitted
    return serving_config.build(fitted, serving_config.Provenance(
        input_sha256="0" * 64, input_files=["t.csv"], rows_read=200, rows_rejected=0,
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
