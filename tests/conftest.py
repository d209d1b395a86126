"""Shared fixtures. Append yours; keep each small."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from absenteeism import config_io, dataset_format, raw_schema

DATA_SET = Path("/work/shared/data/Absenteeism_at_work.csv")


@dataclass(frozen=True)
class TrainedConfig:
    path: Path  # serving_config.pb
    accepted: pd.DataFrame  # typed accepted rows, index = 1-based source row
    predictions: pd.Series  # training-time prediction per accepted row (same index)
    features: pd.DataFrame  # training-time model features per accepted row (same index)
    config: object  # the ServingConfig message


@pytest.fixture(scope="session")
def trained_config(tmp_path_factory) -> TrainedConfig:
    """A ServingConfig trained on the real data set, with what training computed for each row.

    TODO: switch to `python -m etl_job run --input <bundled sample> --output-dir ...` once the ETL CLI lands."""
    from etl_job import training

    cells = dataset_format.read_file(DATA_SET, require_label=True)
    cells.index = pd.RangeIndex(1, len(cells) + 1)
    typed, violations = dataset_format.parse_columns(cells)
    violations += raw_schema.find_violations(typed, raw_schema.TRAINING_SCHEMA)
    accepted = typed.drop(index=sorted({v.row for v in violations}))
    result = training.train(
        accepted, settings=training.FitSettings(), input_sha256=hashlib.sha256(DATA_SET.read_bytes()).hexdigest(),
        input_files=[DATA_SET.name], rows_read=len(cells), rows_rejected=len(cells) - len(accepted),
        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    path = config_io.write_config(result.config, tmp_path_factory.mktemp("config"))
    return TrainedConfig(path, accepted, pd.Series(result.predictions, index=accepted.index), result.features,
                         result.config)


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
