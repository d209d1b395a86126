"""The work the Dask engine does on one part of the input (absenteeism.dataset.partitions), on a
worker: plain functions of plain data, so a task retried on another worker gives the same result.
Each chunk of a part goes through the same body as in the local engine (chunk_steps.py); what is
here is how a part keeps the results (spill files, the pieces of the block sums) and numbers its rows.

A part's rows are numbered as the local engine numbers them once the rows before the part are
known: each function that needs source rows takes that offset. Everything a task writes goes into
the run's folder, which the client and every worker reach at the same path (a shared filesystem):
the spills under `.spill/` (removed before the run is published, or with the run's folder), the
parts of rejects.csv, the parts of the training set. Files are written atomically, so a task that
is run twice (a worker lost) replaces its file with the same content.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from absenteeism import dataflow, regression_metrics
from absenteeism.aggregates import AggregateValue
from absenteeism.dataset import partitions
from absenteeism.dataset.blocks import Pieces, PieceSum
from absenteeism.profile_bins import Entry
from absenteeism.raw_schema import Violation
from etl_job import (
    chunk_steps,
    outputs,
    profile_builder,
    ridge,
    training,
    validate,
)
from etl_job.spill import read_frames, write_frames
from etl_job.split import held_out

SPILL = ".spill"


def spill_folder(work: Path) -> Path:
    return Path(work) / SPILL


def _in_run(work: Path) -> Path:
    """The run's spill folder; a task of a run that already ended (its folder removed) stops here
    instead of writing into a folder nobody removes."""
    folder = spill_folder(work)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is gone: the run this task belongs to has ended")
    return folder


@dataclass
class Extract:
    """A part read and validated; held by the worker that made it."""

    part: partitions.Part
    tally: validate.Tally
    violations: list[Violation]  # rows numbered from 1 within the part
    analyze: dict[str, np.ndarray]  # the aggregates' input columns of the accepted rows
    spill: Path | None  # accepted typed rows, index numbered within the part; None when none


def extract(part: partitions.Part, work: Path, chunk_rows: int) -> Extract:
    folder = _in_run(work)
    collected = chunk_steps.Collected()
    violations: list[Violation] = []

    def accepted() -> Iterator[pd.DataFrame]:
        for rows in partitions.chunks(part, chunk_rows):
            validation = chunk_steps.validate_and_collect(rows, part.path.name, collected)
            violations.extend(validation.violations)
            yield validation.accepted

    spill = folder / f"accepted-{part.index:05d}.arrow"
    rows = write_frames(spill, accepted())
    return Extract(part, collected.tally, violations, collected.analyze_inputs.arrays(), spill if rows else None)


def tally_of(extract: Extract) -> validate.Tally:
    return extract.tally


def analyze_inputs_of(extract: Extract) -> dict[str, np.ndarray]:
    return extract.analyze


def analyze(inputs: list[dict[str, np.ndarray]]) -> dict[str, AggregateValue]:
    """The aggregates over every part's columns, put together in part order: the local engine's
    columns, bit for bit, so the aggregate nodes see the same arrays."""
    columns = training.AnalyzeInputs()
    for part in inputs:
        columns.add_arrays(part)
    return training.analyze(columns.frame())


def _accepted(extract: Extract, row_offset: int) -> Iterator[pd.DataFrame]:
    """The part's accepted rows, index = source row."""
    if extract.spill is None:
        return
    for frame in read_frames(extract.spill):
        frame.index = frame.index + row_offset
        yield frame


@dataclass
class Placed:
    """A part once its rows are numbered: where its rejects went, its rows of the profile's sample
    (candidates), and how many of its accepted rows train and how many are held out."""

    rejects: Path | None
    candidates: pd.DataFrame
    train_rows: int
    test_rows: int


def place(extract: Extract, row_offset: int, work: Path, fit: training.FitSettings,
          sample_size: int | None = None) -> Placed:
    folder = _in_run(work)
    rejects = None
    if extract.violations:
        numbered = tuple(Violation(v.row + row_offset, v.column, v.rule, v.value) for v in extract.violations)
        rejects = folder / f"rejects-{extract.part.index:05d}.csv"
        outputs.write_rejects_part(rejects, validate.rejects_frame(numbered, extract.part.path.name))
    sample = profile_builder.RowSample(sample_size)
    train_rows = test_rows = 0
    for frame in _accepted(extract, row_offset):
        sample.add(frame)
        test = held_out(frame.index.to_numpy(), fit.seed, fit.test_fraction)
        test_rows += int(test.sum())
        train_rows += int((~test).sum())
    return Placed(rejects, sample.candidates(), train_rows, test_rows)


def counts_of(placed: Placed) -> tuple[Path | None, int, int]:
    return placed.rejects, placed.train_rows, placed.test_rows


def candidates_of(placed: Placed) -> pd.DataFrame:
    return placed.candidates


def merge_candidates(first: pd.DataFrame, second: pd.DataFrame, sample_size: int | None = None) -> pd.DataFrame:
    return profile_builder.RowSample.merged([first, second], sample_size).candidates()


def sample_rows(candidates: pd.DataFrame, sample_size: int | None = None) -> pd.DataFrame:
    return profile_builder.RowSample.merged([candidates], sample_size).rows()


def concatenate_rejects(work: Path, parts: list[Path]) -> None:
    outputs.concatenate_rejects(work, parts)


@dataclass
class Transformed:
    """A part's features (in a spill), its share of the fit and of the raw profile, its parity rows."""

    features: Path | None
    normal: Pieces  # of Z'Z over the training rows, in their global order
    raw_counts: list[np.ndarray]
    parity_raw: pd.DataFrame
    parity_features: np.ndarray


@dataclass(frozen=True)
class Offsets:
    """Rows before a part: read (source rows), accepted, training, held out."""

    rows: int
    accepted: int
    train: int
    test: int


def transform(extract: Extract, offsets: Offsets, aggregates: dict[str, AggregateValue],
              raw_entries: list[Entry], fit: training.FitSettings, parity_positions: np.ndarray,
              work: Path) -> Transformed:
    """Each chunk of the part through chunk_steps.transform_chunk; Z'Z of the training rows in the
    fit's fixed blocks; the compact rows spilled for the write."""
    folder = _in_run(work)
    normal = PieceSum(ridge.BLOCK_ROWS, ridge.gram, offsets.train)
    raw_counts = [np.zeros_like(entry.counts) for entry in raw_entries]
    seen = 0
    parity_raw, parity_features = [], []

    def compact() -> Iterator[pd.DataFrame]:
        nonlocal seen
        for chunk in _accepted(extract, offsets.rows):
            done = chunk_steps.transform_chunk(chunk, aggregates, fit, raw_entries, parity_positions, seen)
            normal.feed(done.design)
            for total, counts in zip(raw_counts, done.raw_counts, strict=True):
                total += counts
            parity_raw.append(done.parity_raw)
            parity_features.append(done.parity_features)
            seen += len(chunk)
            yield done.compact.frame()

    path = folder / f"features-{extract.part.index:05d}.arrow"
    rows = write_frames(path, compact())
    return Transformed(path if rows else None, normal.finish(), raw_counts,
                       *training.parity_rows(parity_raw, parity_features))


def fit_share_of(transformed: Transformed) -> tuple[list[np.ndarray], pd.DataFrame, np.ndarray]:
    return (transformed.raw_counts, transformed.parity_raw,
            transformed.parity_features)


def pieces_of(transformed: Transformed) -> Pieces:
    return transformed.normal


def merge_gram_pieces(first: Pieces, second: Pieces) -> Pieces:
    return first.merge(second, ridge.gram)


def merge_error_pieces(first: Pieces, second: Pieces) -> Pieces:
    return first.merge(second, regression_metrics.errors)


def gram_total(pieces: Pieces) -> np.ndarray | None:
    return pieces.total(ridge.gram)


def error_total(pieces: Pieces) -> np.ndarray | None:
    return pieces.total(regression_metrics.errors)


def training_rows_of(transformed: Transformed) -> tuple[np.ndarray, np.ndarray]:
    """The part's training rows' features (float32) and label values, in source order, from its
    spill: for a learner other than ridge, which fits on all of them in the job's process."""
    matrices, labels = [], []
    for frame in read_frames(transformed.features) if transformed.features is not None else ():
        rows = chunk_steps.CompactRows.from_frame(frame)
        matrices.append(rows.training_matrix())
        labels.append(rows.labels[~rows.held_out])
    return (np.vstack(matrices) if matrices else np.empty((0, len(dataflow.model_features())), dtype=np.float32),
            np.concatenate(labels) if labels else np.empty(0))


@dataclass
class Written:
    errors: Pieces  # of a regressor's held-out errors, in the held-out rows' global order
    held_out_classes: np.ndarray  # a classifier's held-out class indices (empty for a regressor)
    held_out_probabilities: np.ndarray  # and their probabilities
    feature_counts: list[np.ndarray]  # per feature entry of the profile, its bins' counts
    output_counts: list[np.ndarray]  # per output entry of the profile (prediction, probabilities)


def write(transformed: Transformed, index: int, test_offset: int, model: chunk_steps.WriteModel,
          feature_entries: list[Entry], output_entries: list[Entry], work: Path) -> Written:
    """The part's training set file (predictions included), its held-out errors (or classes and
    probabilities), its profile counts: each spilled chunk through chunk_steps.write_chunk."""
    _in_run(work)
    errors = PieceSum(regression_metrics.BLOCK_ROWS, regression_metrics.errors, test_offset)
    classes: list[np.ndarray] = []
    probabilities: list[np.ndarray] = []
    feature_counts = [np.zeros_like(entry.counts) for entry in feature_entries]
    output_counts = [np.zeros_like(entry.counts) for entry in output_entries]
    with outputs.training_set_writer(work, model.empty_table(), index) as append:
        for frame in read_frames(transformed.features) if transformed.features is not None else ():
            written = chunk_steps.write_chunk(chunk_steps.CompactRows.from_frame(frame), model, feature_entries,
                                              output_entries)
            if written.error_rows is not None:
                errors.feed(written.error_rows)
            if written.held_out_classes is not None and written.held_out_probabilities is not None:
                classes.append(written.held_out_classes)
                probabilities.append(written.held_out_probabilities)
            for total, counts in zip([*feature_counts, *output_counts],
                                     [*written.feature_counts, *written.output_counts], strict=True):
                total += counts
            append(written.table)
    width = len(model.served.class_labels)
    return Written(errors.finish(), np.concatenate(classes) if classes else np.empty(0, np.int64),
                   np.vstack(probabilities) if probabilities else np.empty((0, width)), feature_counts, output_counts)


def written_counts(written: Written) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return written.feature_counts, written.output_counts


def written_errors(written: Written) -> Pieces:
    return written.errors


def written_classes(written: Written) -> tuple[np.ndarray, np.ndarray]:
    return written.held_out_classes, written.held_out_probabilities
