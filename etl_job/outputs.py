"""Load: the job's output files, each written atomically (temp file, fsync, rename), so a crash
leaves the previous file whole and no temp file behind.

Order matters for readers of a folder mid-run: rejects.csv, then training_set.parquet, then the
config (binary + JSON), and report.json last; the report names the config's content_sha256, so a
report that matches the config says the set is complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from absenteeism import atomic, config_io, features
from absenteeism.raw_schema import LABEL

REJECTS_FILE = "rejects.csv"
TRAINING_SET_FILE = "training_set.parquet"
REPORT_FILE = "report.json"
PREDICTION_COLUMN = "prediction"


def write_rejects(rejects: pd.DataFrame, output_dir: Path) -> Path:
    path = Path(output_dir) / REJECTS_FILE
    with atomic.atomic_path(path) as tmp:
        rejects.to_csv(tmp, index=False)
    return path


def training_set_table(accepted: pd.DataFrame, matrix: np.ndarray, predictions: np.ndarray) -> pa.Table:
    """source_row, the features in model order (float64), the label, the model's prediction."""
    columns = {"source_row": pa.array(accepted.index.to_numpy(dtype=np.int64))}
    for j, name in enumerate(features.MODEL_FEATURES):
        columns[name] = pa.array(np.ascontiguousarray(matrix[:, j], dtype=np.float64))
    columns[LABEL.name] = pa.array(accepted[LABEL.name].to_numpy(dtype=np.int64))
    columns[PREDICTION_COLUMN] = pa.array(np.asarray(predictions, dtype=np.float64))
    return pa.table(columns)


def write_training_set(table: pa.Table, output_dir: Path) -> Path:
    path = Path(output_dir) / TRAINING_SET_FILE
    with atomic.atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def write_config(config, output_dir: Path) -> Path:
    return config_io.write_config(config, Path(output_dir))


def write_report(report: dict, output_dir: Path) -> Path:
    path = Path(output_dir) / REPORT_FILE
    atomic.write_text(path, json.dumps(report, indent=2) + "\n")
    return path
