"""The work on one chunk of rows, one body per step, called by every engine: the local engine
(local_engine.py) keeps what each returns in memory, the Dask engine (part_tasks.py) in a part's
spill files and block pieces. The same function on the same rows gives the same bits, so the
engines agree by construction, not by keeping two copies alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from absenteeism import dataflow, features
from absenteeism.aggregates import AggregateValue
from absenteeism.dataset.raw_chunk import RawChunk
from absenteeism.model import predict_linear
from absenteeism.profile_bins import Entry
from absenteeism.raw_schema import LABEL, RAW_COLUMN_NAMES
from etl_job import online_parity, outputs, ridge, training, validate
from etl_job.split import held_out

HELD_OUT = "_held_out"  # the held-out mask's column in a frame of CompactRows


# -- extract + validate -----------------------------------------------------------------------

@dataclass
class Collected:
    """What extract + validate keeps of the chunks it has seen: their counts and the columns the
    aggregates read (a column or two of small integers)."""

    tally: validate.Tally = field(default_factory=validate.Tally)
    analyze_inputs: training.AnalyzeInputs = field(default_factory=training.AnalyzeInputs)


def validate_and_collect(rows: RawChunk, file_name: str, collected: Collected) -> validate.Validation:
    """One chunk of `file_name` parsed and validated, counted into `collected`, its accepted rows'
    aggregate inputs kept; the caller places the rejects and spills the accepted rows."""
    validation = validate.validate_chunk(rows)
    collected.tally.add(validation, file_name)
    collected.analyze_inputs.add(validation.accepted)
    return validation


# -- transform (+ the fit's share) ------------------------------------------------------------

@dataclass(frozen=True)
class CompactRows:
    """A chunk's rows as the write step needs them: source rows, each feature and the label in
    its narrowest exact dtype (flags as int8 keep many rows small), which rows are held out."""

    source_rows: np.ndarray
    columns: list[np.ndarray]  # one per model feature, in model order
    labels: np.ndarray
    held_out: np.ndarray

    def __len__(self) -> int:
        return len(self.source_rows)

    def matrix(self) -> np.ndarray:
        """The features as the float64 matrix the model reads (column-major)."""
        out = np.empty((len(self), len(self.columns)), dtype=np.float64, order="F")
        for j, column in enumerate(self.columns):
            out[:, j] = column
        return out

    def frame(self) -> pd.DataFrame:
        """For a spill file (etl_job.spill keeps dtypes and index)."""
        columns: dict[str, np.ndarray] = dict(zip(features.MODEL_FEATURES, self.columns, strict=True))
        columns[LABEL.name] = self.labels
        columns[HELD_OUT] = self.held_out
        return pd.DataFrame(columns, index=pd.Index(self.source_rows))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> CompactRows:
        return cls(frame.index.to_numpy(), [frame[name].to_numpy() for name in features.MODEL_FEATURES],
                   frame[LABEL.name].to_numpy(), frame[HELD_OUT].to_numpy())


@dataclass(frozen=True)
class TransformedChunk:
    design: np.ndarray  # [1 | X | y] of the training rows: what the fit's Z'Z sums (ridge.py)
    train_label_sum: int
    train_rows: int
    test_rows: int
    raw_counts: list[np.ndarray]  # per raw entry of the profile, its bins' counts
    parity_raw: pd.DataFrame  # the chunk's rows at the parity positions (raw columns)
    parity_features: np.ndarray
    compact: CompactRows


def transform_chunk(chunk: pd.DataFrame, aggregates: dict[str, AggregateValue], fit: training.FitSettings,
                    raw_entries: Sequence[Entry], parity_positions: np.ndarray, start: int) -> TransformedChunk:
    """Accepted typed raw rows (index = source row) through the feature module with the aggregates
    injected (as the server runs them), split, counted into the raw profile's bins; `start` is the
    chunk's first position in the stream `parity_positions` are counted in."""
    raw_counts = [entry.count(chunk[entry.name].to_numpy()) for entry in raw_entries]
    matrix = dataflow.feature_matrix(dataflow.compute_features(chunk, aggregates))
    labels = chunk[LABEL.name].to_numpy()
    source_rows = chunk.index.to_numpy(dtype=np.int64)
    test = held_out(source_rows, fit.seed, fit.test_fraction)
    train = ~test
    here = online_parity.positions_within(parity_positions, start, len(chunk))
    compact = CompactRows(training.narrow(source_rows),
                          [training.narrow(matrix[:, j]) for j in range(matrix.shape[1])],
                          training.narrow(labels), test)
    return TransformedChunk(
        design=ridge.design_rows(matrix[train], labels[train]), train_label_sum=int(labels[train].sum()),
        train_rows=int(train.sum()), test_rows=int(test.sum()), raw_counts=raw_counts,
        parity_raw=chunk.iloc[here][list(RAW_COLUMN_NAMES)], parity_features=matrix[here], compact=compact)


# -- write ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WrittenChunk:
    table: pa.Table  # the chunk's rows of the training set
    error_rows: np.ndarray  # truth, prediction, baseline of the held-out rows: what the error sums fold
    feature_counts: list[np.ndarray]  # per feature entry of the profile, its bins' counts
    prediction_counts: np.ndarray


def write_chunk(rows: CompactRows, intercept: float, coefficients: Sequence[float], baseline: float,
                feature_entries: Sequence[Entry], prediction_entry: Entry) -> WrittenChunk:
    """The chunk's predictions, its training-set table, its held-out errors and its features and
    predictions counted into the profile's bins."""
    matrix = rows.matrix()
    labels = rows.labels.astype(np.int64)
    predictions = predict_linear(intercept, coefficients, matrix)
    test = rows.held_out
    return WrittenChunk(
        table=outputs.training_set_table(rows.source_rows.astype(np.int64), matrix, labels, predictions, test),
        error_rows=ridge.error_rows(labels[test].astype(np.float64), predictions[test], baseline),
        # each feature counted from its narrowed column: the same counts as from the float64 matrix, faster
        feature_counts=[entry.count(values) for entry, values in zip(feature_entries, rows.columns, strict=True)],
        prediction_counts=prediction_entry.count(predictions))
