"""The job's own train/serve parity check, in process: before a config is written, rows of the
training set go through the online path one record at a time (protobuf record -> raw schema ->
feature module -> model, exactly as the server runs it for a Predict call) and must give the same
feature bits and prediction as the batch transform did.

Every row is compared when the input has at most `rows` accepted rows; above that, `rows` rows
spread evenly over the input (always including the first and last). The parity command
(`python -m clients parity`) checks every row through a running server.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from absenteeism import features, parity
from absenteeism.online import converters
from absenteeism.online.fast import FastPredictor
from absenteeism.raw_schema import RAW_COLUMN_NAMES
from absenteeism.v1 import serving_config_pb2

DEFAULT_ROWS = 2000


class ParityError(RuntimeError):
    """The online path computes different features than the batch job: no config may be written."""


def sample_positions(total: int, rows: int) -> np.ndarray:
    if total <= rows:
        return np.arange(total)
    return np.unique(np.linspace(0, total - 1, num=rows).round().astype(np.int64))


def positions_within(positions: np.ndarray, start: int, rows: int) -> np.ndarray:
    """The sampled positions that fall among rows [start, start + rows), counted from `start`."""
    positions = np.asarray(positions, dtype=np.int64)
    return positions[(positions >= start) & (positions < start + rows)] - start


def check(config: serving_config_pb2.ServingConfig, accepted: pd.DataFrame, matrix: np.ndarray,
          predictions: np.ndarray, rows: int = DEFAULT_ROWS) -> parity.ParityReport:
    """accepted: typed raw rows (index = source row); matrix, predictions: what the batch transform
    and model gave for them. The job passes the sampled rows only (it streams; see sample_positions)."""
    positions = sample_positions(len(accepted), rows)
    records = converters.frame_to_records(accepted.iloc[positions][list(RAW_COLUMN_NAMES)])
    predictor = FastPredictor(config)
    singles = [predictor.predict([record]) for record in records]
    online_features = np.vstack([s.features for s in singles])
    online_predictions = np.concatenate([s.predictions for s in singles])
    offline = np.asarray(matrix, dtype=np.float64)[positions]
    return parity.compare(accepted.index[positions], features.MODEL_FEATURES, offline,
                          np.asarray(predictions)[positions], predictor.feature_names, online_features,
                          online_predictions)


def require_identical(report: parity.ParityReport) -> None:
    if not report.identical:
        raise ParityError("the online path computes different features than the batch job; no config written:\n"
                          + report.summary())
