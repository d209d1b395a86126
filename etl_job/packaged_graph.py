"""The ONNX graph of a model trained elsewhere (etl_job.package_model): read under the size cap,
the task it is served for, its input and outputs found or checked against the command line, the
OnnxModel message the config carries, checked as the server checks it at boot, and the shapes and
values of its answers. Whatever is wrong here is the graph's: ModelError (exit 2).

A regression graph for a classification label, or the reverse, is refused (--task may only pick
binary or multiclass).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from absenteeism import dataflow, onnx_checks, served_model
from absenteeism.v1 import serving_config_pb2
from etl_job import training
from etl_job.job_errors import ModelError, unservable_answers

KIND = "package-model"  # OnnxModel.kind of a graph trained elsewhere (the contract names it)
TASK_NAMES: dict[int, str] = {int(task): name for name, task in training.TASKS.items()}
FLOAT_TENSORS = tuple(onnx_checks.INPUT_TYPES)  # float32 and float64: what a prediction or probability may be
INT64 = onnx.TensorProto.INT64  # a classifier's predicted class: an index into its class labels


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


def model_message(graph: bytes, *, onnx_file: Path, task: int, class_labels: list[str],
                  run_config: serving_config_pb2.ServingConfig, input_name: str | None,
                  prediction_output: str | None, probability_output: str | None) -> serving_config_pb2.OnnxModel:
    """The graph as the config carries it, checked as the server checks it at boot. `run_config` is
    the config of the run it is packaged onto; the names are the command line's (--input-name,
    --prediction-output, --probability-output; None: found from the graph)."""
    try:
        model = onnx_checks.parse_graph(graph)
        onnx_checks.check_graph(model)  # domains and external data before anything reads the graph further
    except onnx_checks.ModelRefused as error:
        raise ModelError(f"--onnx {onnx_file}: {error}") from None
    input_name, element_type = graph_input(model, input_name)
    prediction, probability = output_names(model, task, prediction_output, probability_output, run_config.label)
    classifier = task in served_model.CLASSIFIERS
    message = serving_config_pb2.OnnxModel(
        kind=KIND, graph=graph, input_name=input_name, input_element_type=element_type,
        prediction_output=prediction, probability_output=probability,
        class_labels=class_labels if classifier else [],
        description=(f"{model.producer_name} {model.producer_version} graph {model.graph.name!r} from "
                     f"{onnx_file.name} (sha256 {hashlib.sha256(graph).hexdigest()}), packaged onto the "
                     f"features of config {run_config.content_sha256}"))
    message.task = task  # type: ignore[assignment]  # one of training.TASKS' values
    try:
        onnx_checks.check_model(message, len(run_config.feature_names))
    except onnx_checks.ModelRefused as error:
        raise ModelError(f"--onnx {onnx_file}: {error}") from None
    return message


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
        with unservable_answers("the graph's"):
            yield
    except onnx_checks.ORT_ERRORS as error:  # a graph that loads but fails on some rows
        raise ModelError(f"ONNX Runtime fails to run the graph: {error}") from None

