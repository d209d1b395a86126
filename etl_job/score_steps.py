"""Offline scoring, one chunk at a time: the body every engine calls (this process, or a Dask
worker through the part tasks below), so both engines give the same bits by construction.

A chunk's rows are checked by the rules a server applies to a request (a label column of the input
is ignored), their features computed by the feature module with the config's aggregates injected
(never recomputed), their predictions by the config's model. A row is quarantined with its
reasons when it breaks a raw rule, or when its features break a check of the feature module or
the model answers it with something no caller may receive (a server refuses such a call too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from hamilton.data_quality.base import DataValidationError
from pyarrow import ipc

from absenteeism import aggregates as aggregates_module
from absenteeism import dataflow, served_model
from absenteeism.aggregates import AggregateValue
from absenteeism.dataset import atomic, partitions
from absenteeism.dataset.raw_chunk import RawChunk
from absenteeism.raw_schema import Violation
from absenteeism.v1 import serving_config_pb2
from etl_job import outputs, validate

SOURCE_ROW = "source_row"
FEATURE_CHECK = "feature check"  # the rule of a row whose features break a check of the feature module
MODEL_OUTPUT = "model output"  # the rule of a row the model answers with a NaN or an unknown class
SCORED = ".scored"  # the run folder's scratch space for the Dask engine's parts


@dataclass(frozen=True)
class ScoringModel:
    """What scoring a chunk needs of a config; pickled to the Dask workers."""

    aggregates: dict[str, AggregateValue]
    served: served_model.ServedModel
    with_features: bool  # the feature columns are written too (--features)

    def table(self, source_rows: np.ndarray, matrix: np.ndarray, answered: served_model.ModelOutputs) -> pa.Table:
        """source_row, the features in model order (with --features), the prediction and a
        classifier's probability of each class, named as in the training set."""
        columns = {SOURCE_ROW: pa.array(np.asarray(source_rows, dtype=np.int64))}
        if self.with_features:
            for j, name in enumerate(dataflow.model_features()):
                columns[name] = pa.array(np.ascontiguousarray(matrix[:, j], dtype=np.float64))
        for name, values in zip(served_model.output_names(self.served), served_model.output_columns(answered), strict=True):
            columns[name] = pa.array(np.ascontiguousarray(values, dtype=np.float64))
        return pa.table(columns)

    def empty_table(self) -> pa.Table:
        probabilities = np.empty((0, len(self.served.class_labels))) if self.served.class_labels else None
        return self.table(np.empty(0), np.empty((0, len(dataflow.model_features()))),
                          served_model.ModelOutputs(np.empty(0), probabilities))


def scoring_model(config: serving_config_pb2.ServingConfig, with_features: bool) -> ScoringModel:
    return ScoringModel(aggregates_module.from_message(config.statistics, dataflow.aggregate_names()),
                        served_model.served_model(config), with_features)


@dataclass(frozen=True)
class ScoredChunk:
    table: pa.Table  # the scored rows, in source order
    # what the chunk came to, as the job's Tally counts it: its rows, those scored (accepted) and
    # every reason a row was quarantined, by row
    validation: validate.Validation


def score_chunk(rows: RawChunk, model: ScoringModel) -> ScoredChunk:
    """One chunk (index = source row) checked, transformed and predicted."""
    validation = validate.validate_chunk(rows, training=False)
    answers, faults = _answered(validation.accepted, model)
    if faults:
        validation = validate.Validation(validation.accepted.drop(index=[v.row for v in faults]),
                                         tuple(sorted((*validation.violations, *faults), key=lambda v: v.row)),
                                         validation.rows_read)
    tables = [model.table(part.index.to_numpy(), matrix, answered) for part, matrix, answered in answers]
    table = pa.concat_tables(tables) if tables else model.empty_table()
    del answers
    dataflow.release_chunk_results()
    return ScoredChunk(table, validation)


Answer = tuple[pd.DataFrame, np.ndarray, served_model.ModelOutputs]


def _answered(rows: pd.DataFrame, model: ScoringModel) -> tuple[list[Answer], list[Violation]]:
    """The rows' features and model outputs, in runs of consecutive rows; a run that fails is cut
    in two until each failing row stands alone and is quarantined with the reason (rare: a check
    of the feature module or the model refusing a row)."""
    if not len(rows):
        return [], []
    try:
        matrix = dataflow.feature_matrix(dataflow.compute_features(rows, model.aggregates))
        return [(rows, matrix, model.served.predict(matrix))], []
    except DataValidationError as error:
        rule, reason = FEATURE_CHECK, _first_line(error)
    except served_model.ModelOutputError as error:
        rule, reason = MODEL_OUTPUT, _first_line(error)
    if len(rows) == 1:
        return [], [Violation(rows.index[0], "features" if rule == FEATURE_CHECK else "prediction", rule, reason)]
    half = len(rows) // 2
    first, first_faults = _answered(rows.iloc[:half], model)
    second, second_faults = _answered(rows.iloc[half:], model)
    return first + second, first_faults + second_faults


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# -- the Dask engine's part tasks -----------------------------------------------------------------

@dataclass(frozen=True)
class PartScored:
    """A part scored by a worker: its tally, its violations (rows numbered from 1 within the part)
    and its scored rows in a scratch file, numbered the same way."""

    part: partitions.Part
    tally: validate.Tally
    violations: tuple[Violation, ...]
    scratch: Path


def score_part(part: partitions.Part, work: Path, chunk_rows: int, model: ScoringModel) -> PartScored:
    scratch = Path(work) / SCORED / f"scored-{part.index:05d}.arrow"
    tally = validate.Tally()
    violations: list[Violation] = []
    with atomic.atomic_path(scratch) as tmp, ipc.new_file(str(tmp), model.empty_table().schema) as sink:
        for rows in partitions.chunks(part, chunk_rows, require_label=False):
            scored = score_chunk(rows, model)
            sink.write_table(scored.table)
            tally.add(scored.validation, part.path.name)
            violations.extend(scored.validation.violations)
    return PartScored(part, tally, tuple(violations), scratch)


def tally_of(scored: PartScored) -> validate.Tally:
    return scored.tally


def place_part(scored: PartScored, row_offset: int, work: Path, model: ScoringModel, predictions: str,
               reject_parts: Path) -> Path | None:
    """The part's rows numbered as source rows: its part file of the predictions written, its
    rejects written as one part of rejects.csv (returned; None when it has none)."""
    with pa.OSFile(str(scored.scratch)) as source:
        table = ipc.open_file(source).read_all()
    shifted = table.set_column(0, SOURCE_ROW, pa.array(table.column(0).to_numpy() + row_offset))
    with outputs.parquet_part_writer(Path(work) / predictions, model.empty_table(), scored.part.index) as append:
        append(shifted)
    scored.scratch.unlink()
    if not scored.violations:
        return None
    numbered = tuple(Violation(v.row + row_offset, v.column, v.rule, v.value) for v in scored.violations)
    rejects = Path(reject_parts) / f"rejects-{scored.part.index:05d}.csv"
    outputs.write_rejects_part(rejects, validate.rejects_frame(numbered, scored.part.path.name))
    return rejects
