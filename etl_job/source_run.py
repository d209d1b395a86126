"""The run a model is packaged onto (etl_job.package_model): its published folder read and checked
whole, its training set streamed and checked against its config, its label's classes, and its raw
input read again for the parity check. Whatever is wrong here is the run's: BadData (exit 3).

The run is read from RUN_DIR/..data resolved once, so a run published into RUN_DIR meanwhile never
mixes its files with these; the reader takes no lock, though, so such a run's clean-up may remove
the folder being read, and the packaging then fails (publishing nothing).

Class labels. Class i is what the training set's label column holds as i. When the run's model is
a classifier, its config's class_labels name the classes (its label column holds the indices).
Otherwise the run fitted a classification label node as a regression (pipeline.run fits ridge on
any label node; only the CLI refuses it) and its label column holds the node's values: the classes
are then the distinct values of the training rows, ascending, each written out as its label ("0"
and "1" for a flag such as long_absence), which is what the job itself does (training.class_labels).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from absenteeism import config_io, data_sets, served_model
from absenteeism.dataset import raw_input, training_set_files
from absenteeism.dataset import reader as input_reader
from absenteeism.dataset.raw_chunk import InputFormatError
from absenteeism.v1 import serving_config_pb2
from etl_job import online_parity, output_folder, outputs, profile_builder, ridge, split, training, validate
from etl_job.job_errors import BadData
from etl_job.step_progress import StepProgress

HELD_OUT = training_set_files.SPLIT_VALUES[1]


# -- the run's folder -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceRun:
    """A published run, every file read from that run's own folder."""

    path: Path  # as given (--run), for messages
    folder: Path  # the run's folder: RUN_DIR/..data resolved once
    config: serving_config_pb2.ServingConfig
    report: dict
    parts: list[Path]  # the training set's part files, in source-row order

    @property
    def config_id(self) -> str:
        return self.config.content_sha256

    @property
    def accepted_rows(self) -> int:
        return self.config.provenance.rows.accepted


def read_run(run_dir: Path) -> SourceRun:
    """The run published at `run_dir`, checked whole; BadData naming what is wrong (exit 3)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BadData(f"--run {run_dir} is not a folder: pass the --output-dir of a run")
    # `..data` resolved once: a run published into RUN_DIR meanwhile cannot mix its files with
    # these (the readers' rule in docs/etl.md). A plain folder (a copy of a run) is read as it is.
    current = run_dir / output_folder.CURRENT
    folder = Path(os.path.realpath(current)) if os.path.lexists(current) else run_dir
    missing = [name for name in outputs.REQUIRED_FILES if not (folder / name).exists()]
    if missing:
        raise BadData(f"run folder {run_dir} lacks {missing}: pass the output folder of a whole run")
    try:
        config = config_io.read_config(folder / config_io.CONFIG_FILE)
        data_sets.activate(data_sets.of_config_name(config.dataset))  # the run's raw input is that data set's
        config_io.verify_config(config)  # this code's feature module, raw schema and feature list
    except (config_io.ConfigError, data_sets.UnknownDataSet) as error:
        raise BadData(f"run folder {run_dir}: {error}") from None
    if not config.label:
        raise BadData(f"run folder {run_dir}: its config names no label node (a release before label nodes "
                      "made it): rerun the job")
    if not config.HasField("profile"):
        raise BadData(f"run folder {run_dir}: its config has no training profile (a release before drift "
                      "monitoring made it): rerun the job")
    run_report = _read_report(folder / outputs.REPORT_FILE, run_dir)
    if run_report.get("config", {}).get("content_sha256") != config.content_sha256:
        raise BadData(f"run folder {run_dir}: report.json names another config than serving_config.pb: "
                      "the folder mixes two runs")
    return SourceRun(run_dir, folder, config, run_report, _training_set_parts(folder, run_dir, config))


def _read_report(path: Path, run_dir: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadData(f"run folder {run_dir}: report.json cannot be read: {error}") from None


def _training_set_parts(folder: Path, run_dir: Path, config: serving_config_pb2.ServingConfig) -> list[Path]:
    """The training set's parts, once it is known to be this config's, whole, with the columns read here."""
    training_set = folder / outputs.TRAINING_SET_FILE
    found = training_set_files.config_id_of(training_set)
    if found != config.content_sha256:
        raise BadData(f"run folder {run_dir}: its training set belongs to config {found or '(none named)'}, "
                      f"not to its serving_config.pb ({config.content_sha256}): rerun the job")
    parts = sorted(training_set.glob("part-*.parquet"))
    if not parts:
        raise BadData(f"run folder {run_dir}: its training set has no part file")
    rows = sum(pq.ParquetFile(part).metadata.num_rows for part in parts)
    if rows != config.provenance.rows.accepted:
        raise BadData(f"run folder {run_dir}: its training set holds {rows} rows, its config says "
                      f"{config.provenance.rows.accepted} were accepted: a part file is missing or foreign")
    needed = ["source_row", *config.feature_names, config.label, training_set_files.SPLIT_COLUMN]
    absent = [name for name in needed if name not in pq.read_schema(parts[0]).names]
    if absent:
        raise BadData(f"run folder {run_dir}: its training set lacks the columns {absent}")
    return parts


def training_set_batches(run: SourceRun, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
    """The run's training set, `rows` rows at a time (the last batch of each part shorter)."""
    for part in run.parts:
        with pq.ParquetFile(part) as file:
            yield from file.iter_batches(batch_size=rows, columns=columns)


def held_out_of(batch: pa.RecordBatch) -> np.ndarray:
    """The rows of `batch` on the held-out side of the split (its split column: train or held_out)."""
    column = batch.column(training_set_files.SPLIT_COLUMN)
    values = column.dictionary_decode() if pa.types.is_dictionary(column.type) else column
    held = pc.fill_null(pc.equal(values, HELD_OUT), False).to_numpy(zero_copy_only=False)
    train = pc.fill_null(pc.equal(values, training_set_files.SPLIT_VALUES[0]), False).to_numpy(zero_copy_only=False)
    if not (held | train).all():
        raise BadData(f"the run's training set has split values other than {list(training_set_files.SPLIT_VALUES)}")
    return held


# -- one pass over the training set before the model runs on it -----------------------------------

@dataclass(frozen=True)
class Scanned:
    """What the model's packaging needs to know of the training set before it writes anything."""

    train_rows: int
    test_rows: int
    label_mean: float  # the training rows' mean label from Z'Z, as the run computed it (a regressor's baseline)
    train_values: Counter  # classification labels: training rows per label value
    held_out_values: frozenset  # classification labels: the label values of the held-out rows
    sample_features: np.ndarray  # the profile's sample rows (profile_builder.RowSample), their features
    parity_features: np.ndarray  # the parity rows' features, in source-row order
    parity_source_rows: np.ndarray


def scan(run: SourceRun, parity_positions: np.ndarray, classify: bool, chunk_rows: int) -> Scanned:
    """The split's counts and the label's values (checked against the config), the profile's sample
    and the parity rows, in one streamed pass."""
    config, label = run.config, run.config.label
    names = list(config.feature_names)
    sample = profile_builder.RowSample(columns=names)
    normal = ridge.NormalEquations(len(names))  # the run's own sums: its baseline's very bits
    train_values: Counter = Counter()
    held_out_values: set = set()
    parity_rows, parity_features = [], []
    train_rows = test_rows = start = 0
    last_row = 0
    for batch in training_set_batches(run, ["source_row", *names, label, training_set_files.SPLIT_COLUMN], chunk_rows):
        source_rows = batch.column("source_row").to_numpy()
        if len(source_rows) and (source_rows[0] <= last_row or (np.diff(source_rows) <= 0).any()):
            raise BadData(f"run folder {run.path}: its training set is not in source-row order")
        last_row = source_rows[-1] if len(source_rows) else last_row
        held = held_out_of(batch)
        # The split is a hash of (seed, source row): a training set whose rows say otherwise was edited.
        if not np.array_equal(held, split.held_out(source_rows, config.evaluation.split_seed,
                                                   config.evaluation.test_fraction)):
            raise BadData(f"run folder {run.path}: its training set's split is not its config's")
        labels = batch.column(label).to_numpy()
        train_rows += int((~held).sum())
        test_rows += int(held.sum())
        if classify:
            values, counts = np.unique(labels[~held], return_counts=True)
            train_values.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
            held_out_values.update(np.unique(labels[held]).tolist())
        frame = pd.DataFrame({name: batch.column(name).to_numpy() for name in names}, index=pd.Index(source_rows))
        normal.add(frame.to_numpy(dtype=np.float64)[~held], labels[~held])
        sample.add(frame)
        here = online_parity.positions_within(parity_positions, start, len(frame))
        parity_rows.append(source_rows[here])
        parity_features.append(frame.iloc[here].to_numpy(dtype=np.float64))
        start += len(frame)
    if (train_rows, test_rows) != (config.evaluation.train_rows, config.evaluation.test_rows):
        raise BadData(f"run folder {run.path}: its training set has {train_rows} training and {test_rows} held-out "
                      f"rows, its config {config.evaluation.train_rows} and {config.evaluation.test_rows}")
    return Scanned(train_rows, test_rows, normal.label_mean() if train_rows else 0.0, train_values,
                   frozenset(held_out_values), sample.rows().to_numpy(dtype=np.float64),
                   np.vstack(parity_features), np.concatenate(parity_rows))


@dataclass(frozen=True)
class Classes:
    """A classifier's classes: the label column's value of each class index, their labels, and the
    training rows' share of each (the baseline of the held-out metrics)."""

    values: np.ndarray  # what the training set's label column holds for class i, ascending
    labels: list[str]
    shares: np.ndarray


def classes_of(run: SourceRun, scanned: Scanned) -> Classes:
    """The rule in the module's docstring: the run's class labels, or the training rows' values."""
    source = run.config.onnx_model if run.config.HasField("onnx_model") else None
    if source is not None and source.task in served_model.CLASSIFIERS:
        values = np.arange(len(source.class_labels))  # the label column holds class indices
        labels = list(source.class_labels)
    else:
        values = np.array(sorted(scanned.train_values))
        labels = training.class_labels(values)
    if len(values) < 2:
        raise BadData(f"label {run.config.label!r} takes {len(values)} value(s) in the training rows: "
                      "nothing to classify")
    unknown = sorted((set(scanned.train_values) | scanned.held_out_values) - set(values.tolist()))
    if unknown:
        raise BadData(f"label {run.config.label!r} takes the value(s) {unknown} in the run's training set, "
                      f"which are none of its classes {labels}")
    counts = np.array([scanned.train_values.get(value, 0) for value in values.tolist()], dtype=np.float64)
    return Classes(values, labels, counts / counts.sum())


# -- the raw records of the parity check ----------------------------------------------------------

@dataclass(frozen=True)
class InputRead:
    """The run's input read again: the parity rows' raw records, and what the reading counted (for
    the new run's report)."""

    parity_raw: pd.DataFrame  # the parity rows' typed raw columns, index = source row
    extracted: input_reader.Extracted
    tally: validate.Tally


def input_path_of(run: SourceRun, given: Path | None) -> Path:
    """The run's raw input: --input, or the path the run's report names."""
    if given is not None:
        return Path(given)
    named = run.report.get("input", {}).get("path")
    if not named:
        raise BadData(f"run folder {run.path}: its report names no input: pass the run's input with --input")
    return Path(named)


def read_parity_records(path: Path, run: SourceRun, source_rows: np.ndarray, chunk_rows: int,
                        steps: StepProgress) -> InputRead:
    """The run's input read again, as the job read it (validated chunk by chunk, the same numbering
    of source rows); the accepted rows `source_rows` kept. Refused unless it is the run's input."""
    expected = run.config.provenance.input_sha256
    try:
        digest = input_reader.input_sha256(raw_input.input_files(path))
    except InputFormatError as error:
        raise BadData(f"--input: {error} (the run's input, which the parity check reads again)") from None
    if digest != expected:
        raise BadData(f"--input {path} is not the input of run {run.path}: its sha256 is {digest}, the run read "
                      f"{expected}")
    reader = input_reader.Reader(path, chunk_rows)
    tally = validate.Tally()
    kept = []
    for chunk in steps.rows(reader.chunks(), "read+validate", run.config.provenance.rows.read,
                            size=lambda chunk: len(chunk.rows)):
        validation = validate.validate_chunk(chunk.rows)
        tally.add(validation, chunk.file.name)
        accepted = validation.accepted
        kept.append(accepted.loc[np.isin(accepted.index.to_numpy(), source_rows), list(data_sets.active().table.column_names)])
    parity_raw = pd.concat(kept) if kept else pd.DataFrame(columns=list(data_sets.active().table.column_names))
    # The same bytes and the same raw schema (the config's fingerprint) accept the same rows: a
    # difference means the training set is not this input's.
    if tally.rows_accepted != run.accepted_rows or tally.rows_read != run.config.provenance.rows.read:
        raise BadData(f"--input {path}: this code reads {tally.rows_read} rows and accepts {tally.rows_accepted}, "
                      f"the run read {run.config.provenance.rows.read} and accepted {run.accepted_rows}")
    if not np.array_equal(parity_raw.index.to_numpy(), source_rows):
        missing = np.setdiff1d(source_rows, parity_raw.index.to_numpy())
        raise BadData(f"--input {path}: source row(s) {missing[:5].tolist()} of the run's training set are not "
                      "accepted rows of its input")
    return InputRead(parity_raw, reader.extracted(), tally)
