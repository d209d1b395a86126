"""The prediction log's files: what the server writes (feature_service/monitoring/prediction_logger.py) and the
parity replay reads (clients/log_replay.py).

A folder of Parquet files, `predictions-<UTC start>-<pid>-<n>.parquet`, each complete: a file is
written under a hidden temp name (`.predictions-...parquet.tmp`) and renamed when it is closed,
so a reader that lists `predictions-*.parquet` never sees half a file. One row per logged
prediction: `logged_at` (UTC, microseconds), `config_id`, the raw record's fields (typed as in the
raw schema), the model features (float64, model order; the file's metadata lists them), the
prediction (float64), `probabilities` (a classifier's, in its class-label order; empty for a
regressor; files of releases before classifiers lack the column) and `request_id` (string: the id
that joins the record to a label arriving later, feature_service/monitoring/request_ids.py; null
for a record served outside a call; files of releases before request ids lack the column).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from absenteeism import data_sets

LOGGED_AT, CONFIG_ID, PREDICTION, PROBABILITIES = "logged_at", "config_id", "prediction", "probabilities"
REQUEST_ID = "request_id"  # the last column: added after the others, so older files differ only by lacking it
PREFIX, SUFFIX, TEMP_SUFFIX = "predictions-", ".parquet", ".tmp"
FEATURES_KEY = b"absenteeism.feature_names"  # schema metadata: the feature columns, in model order


def schema(feature_names: Sequence[str]) -> pa.Schema:
    fields = [pa.field(LOGGED_AT, pa.timestamp("us", tz="UTC")), pa.field(CONFIG_ID, pa.string()),
              *(pa.field(c.name, pa.int64() if c.frame_dtype == "int64" else pa.float64())
                for c in data_sets.active().table.columns),
              *(pa.field(name, pa.float64()) for name in feature_names), pa.field(PREDICTION, pa.float64()),
              pa.field(PROBABILITIES, pa.list_(pa.float64())), pa.field(REQUEST_ID, pa.string())]
    return pa.schema(fields, metadata={FEATURES_KEY: json.dumps(list(feature_names)).encode()})


def table(logged_at_us: np.ndarray, config_ids: Sequence[str], raw: np.ndarray, features: np.ndarray,
          predictions: np.ndarray, feature_names: Sequence[str], probabilities: Sequence[np.ndarray],
          request_ids: Sequence[str | None] | None = None) -> pa.Table:
    """Rows of the log: raw is rows x request fields float64 (as converters.records_to_matrix or
    numeric_view read a record: every int32 value is exact in it; a text category is its code), features rows x feature_names, probabilities one
    array per row (empty for a regressor's), request_ids one per row (None: all null)."""
    target = schema(feature_names)
    columns = [pa.array(logged_at_us, type=target.field(LOGGED_AT).type), pa.array(config_ids, type=pa.string())]
    columns += [pa.array(raw[:, j].astype(np.int64) if c.frame_dtype == "int64" else np.ascontiguousarray(raw[:, j]))
                for j, c in enumerate(data_sets.active().table.columns)]
    columns += [pa.array(np.ascontiguousarray(features[:, j])) for j in range(len(feature_names))]
    columns.append(pa.array(predictions))
    lengths = np.fromiter((len(row) for row in probabilities), dtype=np.int32, count=len(probabilities))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = np.concatenate(probabilities) if len(probabilities) else np.empty(0)
    columns.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.float64())))
    columns.append(pa.array(request_ids if request_ids is not None else [None] * len(predictions), type=pa.string()))
    return pa.Table.from_arrays(columns, schema=target)


def existing_files(folder: Path) -> list[Path]:
    """complete_files, or ValueError when the folder holds none."""
    files = complete_files(folder)
    if not files:
        raise ValueError(f"{folder} holds no prediction log file ({PREFIX}*{SUFFIX})")
    return files


def complete_files(folder: Path) -> list[Path]:
    """The log's complete files, oldest first (by name: start time, process, number)."""
    return sorted(p for p in Path(folder).glob(f"{PREFIX}*{SUFFIX}") if p.is_file())


def read_file(path: Path) -> tuple[pa.Table, tuple[str, ...]]:
    """A log file's rows and its feature columns (model order); ValueError if it is not a log file."""
    rows = pq.read_table(path)
    metadata = rows.schema.metadata or {}
    if FEATURES_KEY not in metadata:
        raise ValueError(f"{path} is not a prediction log file (its schema lacks the feature list)")
    return rows, tuple(json.loads(metadata[FEATURES_KEY]))
