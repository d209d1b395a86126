"""What an OnnxModel must be before anything runs it, and the one way a session is made.

A config is data: nothing in it runs as Python, and its graph runs only if it uses the standard
operator domains (ai.onnx, ai.onnx.ml: no custom operator library is ever loaded), holds all its
weights inline (external data would read files named by the config), stays under MAX_GRAPH_BYTES,
and takes exactly the config's features. The job checks a model before it writes the config, the
server again at boot.
"""

from __future__ import annotations

import onnx
import onnxruntime
from google.protobuf.message import DecodeError
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from absenteeism.v1 import serving_config_pb2

MAX_GRAPH_BYTES = 64 * 1024 * 1024  # a config must stay far below config_io's 256 MiB file cap
ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
INPUT_TYPES: dict[int, str] = {onnx.TensorProto.FLOAT: "float", onnx.TensorProto.DOUBLE: "double"}
# What ONNX Runtime raises for a graph it cannot load (each derives from Exception directly).
ORT_ERRORS = (ort_state.Fail, ort_state.InvalidGraph, ort_state.InvalidArgument, ort_state.InvalidProtobuf,
              ort_state.NotImplemented, ort_state.RuntimeException)
CLASSIFIERS = (serving_config_pb2.TASK_BINARY_CLASSIFICATION, serving_config_pb2.TASK_MULTICLASS_CLASSIFICATION)


class ModelRefused(ValueError):
    """The model cannot be served; the message names the reason."""


def session_options() -> onnxruntime.SessionOptions:
    """One intra-op and one inter-op thread, sequential: a row's answer then does not depend on the
    batch it came in (see absenteeism.served_model)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # warnings about unused initializers are not the caller's business
    return options


def session(graph: bytes) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(graph, sess_options=session_options(), providers=["CPUExecutionProvider"])


def parse_graph(graph: bytes) -> onnx.ModelProto:
    if len(graph) > MAX_GRAPH_BYTES:
        raise ModelRefused(f"the ONNX graph is {len(graph):,} bytes, over the cap of {MAX_GRAPH_BYTES:,}")
    if not graph:
        raise ModelRefused("the ONNX graph is empty")
    try:
        return onnx.load_from_string(graph)
    except DecodeError as error:
        raise ModelRefused(f"the ONNX graph does not parse: {error}") from None


def _graphs(graph: onnx.GraphProto):
    """`graph` and every subgraph of its nodes' attributes (If, Loop, Scan bodies)."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attribute.g)
            for subgraph in attribute.graphs:
                yield from _graphs(subgraph)


def check_graph(model: onnx.ModelProto) -> None:
    """Standard domains only, no external data, no local functions."""
    domains = {opset.domain for opset in model.opset_import}
    for graph in _graphs(model.graph):
        domains |= {node.domain for node in graph.node}
        for tensor in [*graph.initializer, *(node_attribute.t for node in graph.node
                                             for node_attribute in node.attribute
                                             if node_attribute.type == onnx.AttributeProto.TENSOR)]:
            if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
                raise ModelRefused(f"tensor {tensor.name!r} keeps its data outside the graph (external data): "
                                   "save the model with its weights inline")
    if model.functions:
        domains |= {function.domain for function in model.functions}
    other = sorted(domains - ALLOWED_DOMAINS)
    if other:
        raise ModelRefused(f"operator domain(s) {other} are not allowed: only ai.onnx and ai.onnx.ml "
                           "operators are served (no custom operator libraries)")


def _value_info(values, name: str, what: str) -> onnx.ValueInfoProto:
    for value in values:
        if value.name == name:
            return value
    raise ModelRefused(f"the graph has no {what} named {name!r} (it has {[v.name for v in values]})")


def _check_classifier_outputs(model: onnx.ModelProto, message: serving_config_pb2.OnnxModel) -> None:
    """The predicted class as an int64 index, the probabilities as [rows, classes] where declared."""
    label = _value_info(model.graph.output, message.prediction_output, "output").type.tensor_type
    if label.elem_type != onnx.TensorProto.INT64:
        raise ModelRefused(f"a classifier's prediction output {message.prediction_output!r} must be int64 class "
                           f"indices; it is {onnx.TensorProto.DataType.Name(label.elem_type)} (train on the "
                           "training set's label column: class indices 0..K-1)")
    dims = _value_info(model.graph.output, message.probability_output, "output").type.tensor_type.shape.dim
    width = dims[1].dim_value if len(dims) == 2 and dims[1].HasField("dim_value") else None
    if width is not None and width != len(message.class_labels):
        raise ModelRefused(f"output {message.probability_output!r} holds {width} class probabilities; the config "
                           f"has {len(message.class_labels)} class labels")


def check_model(message: serving_config_pb2.OnnxModel, feature_count: int) -> None:
    """Raises ModelRefused naming the first reason `message` cannot be served with `feature_count`
    features; also builds a session, so a graph ONNX Runtime cannot load is refused here."""
    model = parse_graph(message.graph)
    check_graph(model)
    inputs = [value for value in model.graph.input
              if value.name not in {initializer.name for initializer in model.graph.initializer}]
    if len(inputs) != 1 or inputs[0].name != message.input_name:
        raise ModelRefused(f"the graph must take one input, {message.input_name!r}; it takes "
                           f"{[value.name for value in inputs]}")
    tensor = inputs[0].type.tensor_type
    if INPUT_TYPES.get(tensor.elem_type) != message.input_element_type:
        raise ModelRefused(f"input {message.input_name!r} has element type "
                           f"{onnx.TensorProto.DataType.Name(tensor.elem_type)}; the config says "
                           f"{message.input_element_type!r} (float or double)")
    dims = tensor.shape.dim
    width = dims[1].dim_value if len(dims) == 2 and dims[1].HasField("dim_value") else None
    if width != feature_count:
        raise ModelRefused(f"input {message.input_name!r} must be [rows, {feature_count}] (one column per "
                           f"feature); it is {[d.dim_value if d.HasField('dim_value') else d.dim_param or '?' for d in dims]}")
    outputs = [message.prediction_output]
    if message.task in CLASSIFIERS:
        outputs.append(message.probability_output)
        if len(message.class_labels) < 2:
            raise ModelRefused(f"a classifier needs at least two class labels; the config has {len(message.class_labels)}")
        if message.task == serving_config_pb2.TASK_BINARY_CLASSIFICATION and len(message.class_labels) != 2:
            raise ModelRefused(f"a binary classifier has two class labels; the config has {len(message.class_labels)}")
    elif message.task != serving_config_pb2.TASK_REGRESSION:
        raise ModelRefused("the model's task is not set (regression, binary or multiclass classification)")
    for name in outputs:
        output = _value_info(model.graph.output, name, "output")
        if not output.type.HasField("tensor_type"):
            raise ModelRefused(f"output {name!r} is not a tensor (a ZipMap's map?): convert classifiers with "
                               "zipmap=False so that probabilities come as a [rows, classes] tensor")
    if message.task in CLASSIFIERS:
        _check_classifier_outputs(model, message)
    try:
        session(message.graph)
    except ORT_ERRORS as error:
        raise ModelRefused(f"ONNX Runtime cannot load the graph: {error}") from None
