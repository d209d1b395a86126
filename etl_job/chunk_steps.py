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

from absenteeism import data_sets, dataflow, regression_metrics, served_model
from absenteeism.aggregates import AggregateValue
from absenteeism.dataset.raw_chunk import RawChunk
from absenteeism.profile_bins import Entry
from etl_job import online_parity, outputs, ridge, training, validate
from etl_job.split import held_out

HELD_OUT = "_held_out"  # the held-out mask's column in a frame of CompactRows
LABEL_VALUES = "_label"  # the label's column there


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
    labels: np.ndarray  # the label node's values
    held_out: np.ndarray

    def __len__(self) -> int:
        return len(self.source_rows)

    def matrix(self) -> np.ndarray:
        """The features as the float64 matrix the model reads (column-major)."""
        out = np.empty((len(self), len(self.columns)), dtype=np.float64, order="F")
        for j, column in enumerate(self.columns):
            out[:, j] = column
        return out

    def training_matrix(self) -> np.ndarray:
        """The training rows' features in float32, the values the learners fit on and the float32
        graph reads: a learner's copy of every training row costs half the float64 matrix's memory."""
        train = ~self.held_out
        out = np.empty((int(train.sum()), len(self.columns)), dtype=np.float32)
        for j, column in enumerate(self.columns):
            out[:, j] = column[train]  # flags are exact, a float64 feature rounds as float64 -> float32 does
        return out

    def frame(self) -> pd.DataFrame:
        """For a spill file (etl_job.spill keeps dtypes and index)."""
        columns: dict[str, np.ndarray] = dict(zip(dataflow.model_features(), self.columns, strict=True))
        columns[LABEL_VALUES] = self.labels
        columns[HELD_OUT] = self.held_out
        return pd.DataFrame(columns, index=pd.Index(self.source_rows))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> CompactRows:
        return cls(frame.index.to_numpy(), [frame[name].to_numpy() for name in dataflow.model_features()],
                   frame[LABEL_VALUES].to_numpy(), frame[HELD_OUT].to_numpy())


@dataclass(frozen=True)
class TransformedChunk:
    design: np.ndarray  # [1 | X | y] of the training rows: what the fit's Z'Z sums (ridge.py)
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
    table = data_sets.active().table
    raw_counts = [entry.count(table.by_name[entry.name].as_numbers(chunk[entry.name].to_numpy())) for entry in raw_entries]
    matrix = dataflow.feature_matrix(dataflow.compute_features(chunk, aggregates))
    labels = dataflow.compute_label(chunk, fit.label_node)
    source_rows = chunk.index.to_numpy(dtype=np.int64)
    test = held_out(source_rows, fit.seed, fit.test_fraction)
    train = ~test
    here = online_parity.positions_within(parity_positions, start, len(chunk))
    compact = CompactRows(training.narrow(source_rows),
                          [training.narrow(matrix[:, j]) for j in range(matrix.shape[1])],
                          training.narrow(labels), test)
    dataflow.release_chunk_results()
    return TransformedChunk(
        design=ridge.design_rows(matrix[train], labels[train]),
        train_rows=int(train.sum()), test_rows=int(test.sum()), raw_counts=raw_counts,
        parity_raw=chunk.iloc[here][list(data_sets.active().table.column_names)], parity_features=matrix[here], compact=compact)


# -- write ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WriteModel:
    """What the write step needs of the fitted model; pickled to the Dask workers."""

    served: served_model.ServedModel
    label: str
    baseline: float  # a regressor's predict-the-mean baseline
    classes: np.ndarray | None  # a classifier's label values, ascending (training.Fitted.classes)

    def class_index(self, labels: np.ndarray) -> np.ndarray:
        assert self.classes is not None
        return training.class_index(self.classes, labels, self.label)

    def empty_table(self) -> pa.Table:
        """The training set's columns, for a part of no row."""
        dtype = training.label_dtype(self.label) if self.classes is None else np.dtype(np.int64)
        return outputs.empty_training_set(self.label, dtype, self.served.class_labels)


def write_model(fitted: training.Fitted) -> WriteModel:
    return WriteModel(fitted.served, fitted.settings.label_node, fitted.baseline, fitted.classes)


@dataclass(frozen=True)
class WrittenChunk:
    table: pa.Table  # the chunk's rows of the training set
    error_rows: np.ndarray | None  # a regressor's held-out truth, prediction, baseline: what the error sums fold
    held_out_classes: np.ndarray | None  # a classifier's held-out class indices and
    held_out_probabilities: np.ndarray | None  # their probabilities: what its metrics read
    feature_counts: list[np.ndarray]  # per feature entry of the profile, its bins' counts
    output_counts: list[np.ndarray]  # per output entry (prediction, each class's probability), its counts


def write_chunk(rows: CompactRows, model: WriteModel, feature_entries: Sequence[Entry],
                output_entries: Sequence[Entry]) -> WrittenChunk:
    """The chunk's predictions, its training-set table, its held-out errors (or a classifier's
    held-out classes and probabilities) and its features and outputs counted into the profile's bins."""
    matrix = rows.matrix()
    answered = model.served.predict(matrix)
    test = rows.held_out
    if model.classes is None:
        labels = rows.labels.astype(np.float64 if rows.labels.dtype.kind == "f" else np.int64)  # narrowed back
        error_rows = regression_metrics.error_rows(labels[test].astype(np.float64), answered.predictions[test], model.baseline)
        classes = probabilities = None
    else:
        labels = model.class_index(rows.labels)
        assert answered.probabilities is not None
        error_rows, classes, probabilities = None, labels[test], answered.probabilities[test]
    table = outputs.training_set_table(rows.source_rows.astype(np.int64), matrix, model.label, labels, answered,
                                       test, model.served.class_labels)
    return WrittenChunk(
        table=table, error_rows=error_rows, held_out_classes=classes, held_out_probabilities=probabilities,
        # each feature counted from its narrowed column: the same counts as from the float64 matrix, faster
        feature_counts=[entry.count(values) for entry, values in zip(feature_entries, rows.columns, strict=True)],
        output_counts=[entry.count(values) for entry, values in
                       zip(output_entries, served_model.output_columns(answered), strict=True)])
