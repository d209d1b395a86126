"""`python -m etl_job package-model`: a model trained elsewhere, as an ONNX graph, served on the
features of a run.

A data scientist trains a model in a notebook on RUN_DIR/training_set.parquet (the rows whose
`split` is "train"; the features are the columns config.feature_names, in that order; the label is
the column named config.label, a classifier's as class indices 0..K-1) and exports it to ONNX. This
command makes from that run and that graph a new output folder, as whole as one `run` writes:

- serving_config.pb: the run's feature list, aggregates, label, provenance of its input (digest,
  files, row counts) and training profile of raw inputs and features, with the graph as
  `onnx_model` (kind "package-model"). Features and aggregates are copied, never recomputed, so
  the server computes exactly the features the model was trained on;
- training_set.parquet: the run's rows with the graph's predictions (and class probabilities),
  computed by the serving runtime (served_model.OnnxServedModel: one ONNX Runtime thread), the run's
  training set streamed in chunks, so memory stays bounded whatever its size;
- recomputed with the graph: the held-out evaluation (the run's split; a regressor against the
  training rows' mean label, a classifier against their class shares), the golden rows, the
  profile's output entries (placed on the run's own sample rows, which profile_builder.RowSample
  picks by source row alone, and counted over every row); report.json (with "packaged_from", the
  run's config id and the graph's sha256); rejects.csv copied from the run.
It is published as `run` publishes (output_folder.RunFolder): any refusal leaves --output-dir as it was.

Refusals, one line each: exit 3 for a run folder that cannot be used (a file missing, a config this
code does not verify, a training set of another config: training_set_files.config_id_of, or one
edited since: its row count, order, split or features counted into the profile; an input that is
not the run's); exit 2 for a graph that cannot be served (onnx_checks.check_model: operator
domains, external data, size cap, input [rows, features] of float or double; ZipMap outputs, which
are not tensors: convert with zipmap=False; probabilities with another number of columns than the
label has classes; a NaN or an infinity for some row; answers that differ for a record sent alone;
golden rows the server would not reproduce at boot). Every check that needs no output runs before
--output-dir is touched.

The run is read from RUN_DIR/..data resolved once, so a run published into RUN_DIR meanwhile never
mixes its files with these; the reader takes no lock, though, so such a run's clean-up may remove
the folder being read, and the packaging then fails (publishing nothing).

Class labels. Class i is what the training set's label column holds as i. When the run's model is
a classifier, its config's class_labels name the classes (its label column holds the indices).
Otherwise the run fitted a classification label node as a regression (pipeline.run fits ridge on
any label node; only the CLI refuses it) and its label column holds the node's values: the classes are then the distinct values of the
training rows, ascending, each written out as its label ("0" and "1" for a flag such as
long_absence), which is what the job itself does (training.class_labels). A regression graph for a
classification label, or the reverse, is refused (--task may only pick binary or multiclass).

The parity rows: raw records, from the run's input read again. The run folder keeps no raw input,
so the command reads the run's input (--input; by default the path the run's report names),
refuses it unless its sha256 is the config's provenance.input_sha256, and sends the rows `run`
checks (online_parity.sample_positions over the accepted rows: all of them up to --parity-rows)
one record at a time through FastPredictor, the server's path, against the packaged training set.
Golden rows and a sample of the training set's feature vectors would be cheaper but prove less:
feature vectors through the model prove that a row alone gets the bits it gets in a batch, not
that a record reaches those features in this process (the online planner, the converters and the
libraries may have changed since the run; the config's code fingerprint covers the feature module
and the raw schema only); golden records take that path but are synthetic, with no training-set
row to compare with. The run's own records prove both, for this config, as `run` proves it for its.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from absenteeism import aggregates, config_io, dataflow, onnx_checks, parity, served_model
from absenteeism.dataset import atomic, raw_input, training_set_files
from absenteeism.dataset import reader as input_reader
from absenteeism.dataset.blocks import BlockSum
from absenteeism.dataset.raw_chunk import InputFormatError
from absenteeism.online.fast import FastPredictor
from absenteeism.raw_schema import RAW_COLUMN_NAMES
from absenteeism.v1 import serving_config_pb2
from etl_job import (
    chunk_steps,
    golden,
    online_parity,
    output_folder,
    outputs,
    profile_builder,
    report,
    ridge,
    run_settings,
    serving_config,
    split,
    training,
    validate,
)
from etl_job.engine import HeldOutEvaluation
from etl_job.job_errors import BadData, ModelError
from etl_job.pipeline import RunResult
from etl_job.step_progress import StepProgress

log = logging.getLogger(__name__)

KIND = "package-model"  # OnnxModel.kind of a graph trained elsewhere (the contract names it)
HELD_OUT = training_set_files.SPLIT_VALUES[1]
TASK_NAMES: dict[int, str] = {int(task): name for name, task in training.TASKS.items()}
FLOAT_TENSORS = tuple(onnx_checks.INPUT_TYPES)  # float32 and float64: what a prediction or probability may be
INT64 = onnx.TensorProto.INT64  # a classifier's predicted class: an index into its class labels


@dataclass(frozen=True)
class PackageSettings:
    run_dir: Path  # the output folder of the run the model was trained on
    onnx_path: Path
    output_dir: Path
    input_path: Path | None = None  # the run's raw input; None: the path the run's report names
    task: str | None = None  # a key of training.TASKS; None: the label node's task
    input_name: str | None = None  # None: the graph's one input
    prediction_output: str | None = None  # None: found from the graph's outputs
    probability_output: str | None = None
    parity_rows: int = online_parity.DEFAULT_ROWS
    chunk_rows: int = input_reader.DEFAULT_CHUNK_ROWS  # rows read at a time; never changes the outputs
    progress: bool = False
    created_at: datetime | None = None  # None: now (UTC)


# -- the run -------------------------------------------------------------------------------------

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
    missing = [name for name in outputs.FILES if not (folder / name).exists()]
    if missing:
        raise BadData(f"run folder {run_dir} lacks {missing}: pass the output folder of a whole run")
    try:
        config = config_io.read_config(folder / config_io.CONFIG_FILE)
        config_io.verify_config(config)  # this code's feature module, raw schema and feature list
    except config_io.ConfigError as error:
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


# -- one pass over the training set before the model runs on it ---------------------------------

@dataclass(frozen=True)
class Scanned:
    """What the model's packaging needs to know of the training set before it writes anything."""

    train_rows: int
    test_rows: int
    label_sum: float  # the training rows' label values summed over fixed blocks (a regressor's baseline)
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
    label_sum = BlockSum(ridge.BLOCK_ROWS, lambda block: block.sum(keepdims=True))
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
        label_sum.feed(labels[~held].astype(np.float64))
        if classify:
            values, counts = np.unique(labels[~held], return_counts=True)
            train_values.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
            held_out_values.update(np.unique(labels[held]).tolist())
        frame = pd.DataFrame({name: batch.column(name).to_numpy() for name in names}, index=pd.Index(source_rows))
        sample.add(frame)
        here = online_parity.positions_within(parity_positions, start, len(frame))
        parity_rows.append(source_rows[here])
        parity_features.append(frame.iloc[here].to_numpy(dtype=np.float64))
        start += len(frame)
    if (train_rows, test_rows) != (config.evaluation.train_rows, config.evaluation.test_rows):
        raise BadData(f"run folder {run.path}: its training set has {train_rows} training and {test_rows} held-out "
                      f"rows, its config {config.evaluation.train_rows} and {config.evaluation.test_rows}")
    total = label_sum.finish()
    return Scanned(train_rows, test_rows, float(total[0]) if total is not None else 0.0, train_values,
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


# -- the graph ------------------------------------------------------------------------------------

def read_graph(path: Path) -> bytes:
    """The ONNX file's bytes (its size checked before it is read: a file over the cap is never loaded)."""
    try:
        size = Path(path).stat().st_size
        if size > onnx_checks.MAX_GRAPH_BYTES:
            raise ModelError(f"--onnx {path}: the ONNX graph is {size:,} bytes, over the cap of "
                             f"{onnx_checks.MAX_GRAPH_BYTES:,}")
        return Path(path).read_bytes()
    except OSError as error:
        raise ModelError(f"--onnx {path}: cannot be read: {error.strerror or error}") from None


def task_of(label: str, requested: str | None) -> int:
    """The task the graph is served for: the label node's, or --task when it agrees with it (a
    classification label may be served as binary or multiclass; nothing else can be evaluated)."""
    natural = dataflow.label_task(label)
    if requested is None:
        return training.TASKS[natural]
    if (requested == "regression") != (natural == "regression"):
        raise ModelError(f"--task {requested}: the run's label {label!r} is {natural}, so its graph must be a "
                         f"{'regressor' if natural == 'regression' else 'classifier'}")
    return training.TASKS[requested]


def graph_input(model, requested: str | None) -> tuple[str, str]:
    """(name, "float" or "double") of the graph's input: its one input that is not an initializer.
    The server feeds the features and nothing else, so --input-name can only name that one input."""
    initializers = {initializer.name for initializer in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    names = [value.name for value in inputs]
    if len(inputs) != 1:
        raise ModelError(f"the graph takes the inputs {names}: a served graph takes one, the features")
    if requested is not None and requested != names[0]:
        raise ModelError(f"--input-name {requested}: the graph's one input is {names[0]!r}")
    element = inputs[0].type.tensor_type.elem_type
    if element not in onnx_checks.INPUT_TYPES:
        raise ModelError(f"the graph's input {inputs[0].name!r} has element type {_type_name(element)}: the features "
                         "go in as float or double")
    return inputs[0].name, onnx_checks.INPUT_TYPES[element]


def output_names(model, task: int, prediction: str | None, probability: str | None, label: str) -> tuple[str, str]:
    """(prediction output, probability output or "") of the graph: named on the command line, or
    found by kind: a regressor's one output; a classifier's one int64 tensor (the class index) and
    its one float tensor (the probabilities)."""
    found = {value.name: value for value in model.graph.output}
    for name in (prediction, probability):
        if name is not None and name not in found:
            raise ModelError(f"the graph has no output {name!r} (its outputs are {list(found)})")
    served_as = f"label {label!r} is served as {TASK_NAMES[task]}"
    if task == serving_config_pb2.TASK_REGRESSION:
        if prediction is None:
            if len(found) != 1:
                raise ModelError(f"{served_as}, whose graph has one output, the prediction; this graph's outputs are "
                                 f"{list(found)} (a classifier?): name the prediction with --prediction-output")
            prediction = next(iter(found))
        _require_tensor(found[prediction], FLOAT_TENSORS, "a prediction")
        return prediction, ""
    tensors = {name: value.type.tensor_type.elem_type for name, value in found.items()
               if value.type.HasField("tensor_type")}
    if probability is None:
        floats = [name for name, element in tensors.items() if element in FLOAT_TENSORS]
        maps = [name for name in found if name not in tensors]
        if len(floats) != 1:
            if maps:  # what a converter's default ZipMap leaves: no probabilities tensor at all
                _require_tensor(found[maps[0]], FLOAT_TENSORS, "the probabilities")
            raise ModelError(f"{served_as}, whose graph answers a class index and its probabilities; this graph's "
                             f"outputs are {list(found)}: name the probabilities with --probability-output")
        probability = floats[0]
    if prediction is None:
        indices = [name for name, element in tensors.items() if element == INT64]
        if len(indices) != 1:
            raise ModelError(f"{served_as}, whose graph answers a class index (an int64 tensor) and its probabilities; "
                             f"this graph's outputs are {list(found)}: name the class index with --prediction-output")
        prediction = indices[0]
    _require_tensor(found[prediction], (INT64,), "the predicted class")
    _require_tensor(found[probability], FLOAT_TENSORS, "the probabilities")
    return prediction, probability


def _require_tensor(value, elements: tuple[int, ...], role: str) -> None:
    if not value.type.HasField("tensor_type"):
        raise ModelError(f"output {value.name!r} ({role}) is not a tensor but a {value.type.WhichOneof('value')} "
                         "(a ZipMap's list of maps): convert the classifier with zipmap=False, so that its "
                         "probabilities come as one [rows, classes] tensor")
    element = value.type.tensor_type.elem_type
    if element not in elements:
        raise ModelError(f"output {value.name!r} ({role}) has element type {_type_name(element)}; "
                         f"{' or '.join(_type_name(e) for e in elements)} is needed")


def _type_name(element: int) -> str:
    return onnx.TensorProto.DataType.Name(element)


def model_message(graph: bytes, *, task: int, class_labels: list[str], settings: PackageSettings,
                  run: SourceRun) -> serving_config_pb2.OnnxModel:
    """The graph as the config carries it, checked as the server checks it at boot."""
    onnx_file = settings.onnx_path
    try:
        model = onnx_checks.parse_graph(graph)
        onnx_checks.check_graph(model)  # domains and external data before anything reads the graph further
    except onnx_checks.ModelRefused as error:
        raise ModelError(f"--onnx {onnx_file}: {error}") from None
    input_name, element_type = graph_input(model, settings.input_name)
    prediction, probability = output_names(model, task, settings.prediction_output, settings.probability_output,
                                            run.config.label)
    classifier = task in served_model.CLASSIFIERS
    message = serving_config_pb2.OnnxModel(
        kind=KIND, graph=graph, input_name=input_name, input_element_type=element_type,
        prediction_output=prediction, probability_output=probability,
        class_labels=class_labels if classifier else [],
        description=(f"{model.producer_name} {model.producer_version} graph {model.graph.name!r} from "
                     f"{onnx_file.name} (sha256 {hashlib.sha256(graph).hexdigest()}), packaged onto the "
                     f"features of config {run.config_id}"))
    message.task = task  # type: ignore[assignment]  # one of training.TASKS' values
    try:
        onnx_checks.check_model(message, len(run.config.feature_names))
    except onnx_checks.ModelRefused as error:
        raise ModelError(f"--onnx {onnx_file}: {error}") from None
    if classifier:
        _check_class_count(model, probability, class_labels, run.config.label)
    return message


def _check_class_count(model, probability: str, class_labels: list[str], label: str) -> None:
    """The probabilities' declared columns against the label's classes (answers are checked too:
    check_answers, for a graph that declares no width)."""
    value = next(value for value in model.graph.output if value.name == probability)
    dims = value.type.tensor_type.shape.dim
    if len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value != len(class_labels):
        raise ModelError(f"the graph's probabilities ({probability!r}) have {dims[1].dim_value} columns, and label "
                         f"{label!r} has {len(class_labels)} classes {class_labels} in the run's training set")


def check_answers(model: served_model.ServedModel, matrix: np.ndarray, label: str) -> None:
    """The graph's outputs for some rows have the shapes the served model reads: one prediction per
    row, one probability per class (a reshape would otherwise spread one row's answers over others)."""
    assert isinstance(model, served_model.OnnxServedModel)
    answered = model.session.run(model.output_names, {model.input_name: matrix.astype(model.input_dtype)})
    rows = len(matrix)
    if np.shape(answered[0]) not in ((rows,), (rows, 1)):
        raise ModelError(f"the graph's output {model.output_names[0]!r} is {list(np.shape(answered[0]))} for {rows} "
                         f"rows: one value per row is needed")
    if model.is_classifier and np.shape(answered[1]) != (rows, len(model.class_labels)):
        raise ModelError(f"the graph's probabilities ({model.output_names[1]!r}) are {list(np.shape(answered[1]))} for "
                         f"{rows} rows, and label {label!r} has {len(model.class_labels)} classes "
                         f"{list(model.class_labels)} in the run's training set")


@contextlib.contextmanager
def model_errors() -> Iterator[None]:
    """A graph that answers a NaN, an infinity or a class it does not have for some row cannot be served."""
    try:
        yield
    except served_model.ModelOutputError as error:
        raise ModelError(f"the graph's answers cannot be served: {error}") from None
    except onnx_checks.ORT_ERRORS as error:  # a graph that loads but fails on some rows
        raise ModelError(f"ONNX Runtime fails to run the graph: {error}") from None


# -- the raw records of the parity check ----------------------------------------------------------

@dataclass(frozen=True)
class InputRead:
    parity_raw: pd.DataFrame  # the parity rows' typed raw columns, index = source row
    extracted: input_reader.Extracted
    tally: validate.Tally


def input_path_of(run: SourceRun, given: Path | None) -> Path:
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
        kept.append(accepted.loc[np.isin(accepted.index.to_numpy(), source_rows), list(RAW_COLUMN_NAMES)])
    parity_raw = pd.concat(kept) if kept else pd.DataFrame(columns=list(RAW_COLUMN_NAMES))
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


def require_parity(parity_report: parity.ParityReport) -> None:
    """Nothing is published unless every parity row got the training set's bits online. Answers
    that differ while the features agree are the graph's: it answers a record alone otherwise than
    in a batch, which the server's one-record calls would show (exit 2). Features that differ are
    not the graph's doing: the training set is not what this code makes of the run's input (exit 3)."""
    if parity_report.identical:
        return
    names = set(parity_report.mismatch_counts)
    outputs_only = all(name == served_model.PREDICTION or name.startswith("probability[") for name in names)
    if outputs_only and not parity_report.problems:
        raise ModelError("the graph answers records sent one at a time with other bits than the same rows in a "
                         f"batch, so the server would not reproduce the training set: {parity_line(parity_report)}")
    raise BadData("the online path computes other features for the run's input than its training set holds: "
                  f"{parity_line(parity_report)}")


def parity_line(parity_report: parity.ParityReport) -> str:
    """The parity report on one line: its counts, its problems, the first mismatch of each column."""
    parts = [f"{parity_report.rows_identical} of {parity_report.rows_compared} rows identical", *parity_report.problems]
    for name, count in sorted(parity_report.mismatch_counts.items(), key=lambda item: -item[1]):
        worst = parity_report.worst[name][0]
        parts.append(f"{name} differs in {count} rows, e.g. source row {worst.source_row}: "
                     f"{worst.expected!r} in the training set, {worst.got!r} online")
    return "; ".join(parts)


def one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


# -- the job --------------------------------------------------------------------------------------

def package(settings: PackageSettings) -> RunResult:
    """Checks the run, its input and the graph, then writes the new run's files into a run folder of
    its own in --output-dir and publishes it whole (as pipeline.run). A refusal before the write
    leaves --output-dir untouched; one during it (an answer for some row, parity) as it was."""
    steps = StepProgress(settings.progress)
    started = time.perf_counter()
    out = Path(settings.output_dir)
    try:
        prepared = prepare(settings, steps)
        with output_folder.RunFolder(out, outputs.FILES) as folder:
            config, metrics, parity_report = write_outputs(prepared, folder.path, steps)
            paths = {name: out / file for name, file in (
                ("rejects", outputs.REJECTS_FILE), ("training_set", outputs.TRAINING_SET_FILE),
                ("config", config_io.CONFIG_FILE), ("config_json", config_io.CONFIG_JSON_FILE),
                ("report", outputs.REPORT_FILE))}
            run_report = package_report(prepared, config, parity_report, paths,
                                        {**steps.timings, "total": time.perf_counter() - started})
            outputs.write_report(run_report, folder.path)  # last: a report naming this config marks a complete set
            folder.publish()
    finally:
        steps.close()
    log.info("packaged %s onto the features of run %s (config %s): %s", settings.onnx_path, prepared.run.path,
             prepared.run.config_id, metrics)
    return RunResult(run_report, paths)


@dataclass(frozen=True)
class Prepared:
    """Everything checked, before anything is written: the run, the graph as the job's fitted
    model, the config without its evaluation (golden rows computed), the parity rows' records."""

    settings: PackageSettings
    run: SourceRun
    scanned: Scanned
    fitted: training.Fitted
    unevaluated: serving_config_pb2.ServingConfig
    input_path: Path
    records: InputRead
    created_at: datetime


def prepare(settings: PackageSettings, steps: StepProgress) -> Prepared:
    created_at = settings.created_at or datetime.now(UTC)
    with steps.step("check_run"):
        run = read_run(settings.run_dir)
        graph = read_graph(settings.onnx_path)
        task = task_of(run.config.label, settings.task)
    with steps.step("scan"):
        positions = online_parity.sample_positions(run.accepted_rows, settings.parity_rows)
        scanned = scan(run, positions, task in served_model.CLASSIFIERS, settings.chunk_rows)
        classes = classes_of(run, scanned) if task in served_model.CLASSIFIERS else None
        onnx = model_message(graph, task=task, class_labels=classes.labels if classes else [], settings=settings,
                             run=run)
    with steps.step("extract_validate"):
        input_path = input_path_of(run, settings.input_path)
        records = read_parity_records(input_path, run, scanned.parity_source_rows, settings.chunk_rows, steps)
    fitted = packaged_model(run, onnx, scanned, classes, records.parity_raw)
    with model_errors():
        check_answers(fitted.served, golden_features(fitted), run.config.label)
        unevaluated = serving_config.build(fitted, provenance_of(run, created_at))  # the golden rows' answers
    require_same_features(run.config, unevaluated)
    return Prepared(settings, run, scanned, fitted, unevaluated, input_path, records, created_at)


def provenance_of(run: SourceRun, created_at: datetime) -> serving_config.Provenance:
    """The run's input (digest, files, row counts): the rows are the run's, only the model is new."""
    source = run.config.provenance
    return serving_config.Provenance(
        input_sha256=source.input_sha256, input_files=list(source.input_files), rows_read=source.rows.read,
        rows_rejected=source.rows.rejected, created_at=created_at)


def packaged_model(run: SourceRun, onnx: serving_config_pb2.OnnxModel, scanned: Scanned, classes: Classes | None,
                   parity_raw: pd.DataFrame) -> training.Fitted:
    """The graph as the job's own fitted model: the run's aggregates, split and rows, so that every
    step after the fit (config, golden rows, write, evaluation, parity) is the job's own code."""
    config = run.config
    fit = training.FitSettings(label=config.label, test_fraction=config.evaluation.test_fraction,
                               seed=config.evaluation.split_seed, model=KIND)
    return training.Fitted(
        aggregates=aggregates.from_message(config.statistics, dataflow.aggregate_names()), settings=fit,
        train_rows=scanned.train_rows, test_rows=scanned.test_rows,
        baseline=scanned.label_sum / scanned.train_rows, parity_raw=parity_raw,
        parity_features=scanned.parity_features, rows=run.accepted_rows, onnx=onnx,
        classes=classes.values if classes else None, class_shares=classes.shares if classes else None)


def golden_features(fitted: training.Fitted) -> np.ndarray:
    """The golden records' features: rows every config answers, whatever its training set."""
    return dataflow.feature_matrix(dataflow.compute_features(golden.golden_frame(), dict(fitted.aggregates)))


def write_outputs(prepared: Prepared, work: Path, steps: StepProgress):
    """The config, training set and rejects into `work`, as pipeline._run writes them: the training
    set while the parity check runs in the background, the config only once it passed."""
    run, fitted = prepared.run, prepared.fitted
    profiler = profile_builder.ProfileBuilder.resumed(run.config.profile, prepared.scanned.sample_features)
    with model_errors():
        profiler.place_outputs(fitted.served)
        with online_parity.Background(prepared.unevaluated, fitted.parity_raw, fitted.parity_features,
                                      fitted.predict(fitted.parity_features), prepared.settings.parity_rows) as check:
            with steps.step("load"):
                metrics = write_training_set(run, fitted, profiler, work, prepared.settings.chunk_rows, steps)
            with steps.step("parity"):
                try:
                    parity_report = check.result()
                except online_parity.ParityError as error:  # rows the online path refuses: not the graph's doing
                    raise BadData(f"the run's input is not what its training set was made of: "
                                  f"{one_line(str(error))}") from None
    log.info("online parity: %s", parity_report.summary())
    require_parity(parity_report)
    with steps.step("write_config"):
        config = serving_config.with_evaluation(prepared.unevaluated, fitted, metrics, profiler.message())
        require_boots(config)
        outputs.write_config(config, work)
        with atomic.atomic_path(work / outputs.REJECTS_FILE) as tmp:
            shutil.copyfile(run.folder / outputs.REJECTS_FILE, tmp)
    return config, metrics, parity_report


def package_report(prepared: Prepared, config: serving_config_pb2.ServingConfig, parity_report, paths: dict[str, Path],
                   timings: dict[str, float]) -> dict:
    """report.json as `run` writes it (the input read again gives its counts), and where the model came from."""
    run, settings, records = prepared.run, prepared.settings, prepared.records
    run_report = report.build(
        input_path=prepared.input_path, extracted=records.extracted, tally=records.tally,
        max_reject_fraction=run.report.get("rows", {}).get("max_reject_fraction",
                                                           run_settings.DEFAULT_MAX_REJECT_FRACTION),
        config=config, timings=timings, created_at=prepared.created_at, outputs=paths)
    run_report["packaged_from"] = {"run": str(run.path), "config_id": run.config_id,
                                   "onnx_file": str(settings.onnx_path),
                                   "onnx_sha256": hashlib.sha256(prepared.unevaluated.onnx_model.graph).hexdigest()}
    run_report["online_parity"] = parity_report.as_dict()
    return run_report


def require_same_features(source: serving_config_pb2.ServingConfig, packaged: serving_config_pb2.ServingConfig) -> None:
    """The promise that packaging never changes features or aggregates, kept by a check, not by trust."""
    if list(packaged.feature_names) != list(source.feature_names) or packaged.statistics != source.statistics \
            or packaged.label != source.label:
        raise RuntimeError("the packaged config's features, aggregates or label differ from the run's")


def require_boots(config: serving_config_pb2.ServingConfig) -> None:
    """The config as the server boots it: verified, and its golden rows reproduced by FastPredictor."""
    try:
        config_io.verify_config(config, FastPredictor(config))
    except config_io.ConfigError as error:
        raise ModelError(f"the packaged config would not boot: {error}") from None


def write_training_set(run: SourceRun, fitted: training.Fitted, profiler: profile_builder.ProfileBuilder, work: Path,
                       chunk_rows: int, steps: StepProgress) -> dict[str, float]:
    """The training set's rows again, with the graph's answers (chunk_steps.write_chunk, as every
    engine writes them); the held-out metrics. The features are counted again too and must give the
    run's profile: a training set that is not what the run wrote is refused."""
    names, label = list(run.config.feature_names), run.config.label
    model = chunk_steps.write_model(fitted)
    evaluation = HeldOutEvaluation(fitted)
    feature_counts = [np.zeros_like(entry.counts) for entry in profiler.features]
    outputs.make_output_folders(work)
    columns = ["source_row", *names, label, training_set_files.SPLIT_COLUMN]
    with outputs.training_set_writer(work, model.empty_table()) as append:
        for batch in steps.rows(training_set_batches(run, columns, chunk_rows), "write", run.accepted_rows):
            rows = chunk_steps.CompactRows(batch.column("source_row").to_numpy(),
                                           [batch.column(name).to_numpy() for name in names],
                                           batch.column(label).to_numpy(), held_out_of(batch))
            written = chunk_steps.write_chunk(rows, model, profiler.features, profiler.outputs)
            evaluation.feed(written)
            profiler.add_counts(outputs=written.output_counts)
            for total, counts in zip(feature_counts, written.feature_counts, strict=True):
                total += counts
            append(written.table)
    if not all(np.array_equal(total, entry.counts) for total, entry in zip(feature_counts, profiler.features,
                                                                          strict=True)):
        raise BadData(f"run folder {run.path}: its training set's features do not count into its config's "
                      "training profile: the training set is not the one the run wrote")
    return evaluation.metrics()
