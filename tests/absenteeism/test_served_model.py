"""The model a config carries, as the job and the server run it: an ONNX graph is checked before it
runs (standard operator domains only, weights inline, a size cap, the config's features as its
input, tensors out) and answers the same bits whatever the batch; a NaN answer is refused."""

from __future__ import annotations

import pickle

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from absenteeism import onnx_checks, served_model
from absenteeism.v1 import serving_config_pb2

FEATURES = 17


def linear_graph(width: int = FEATURES, *, domain: str = "", element=TensorProto.FLOAT,
                 operator: str = "MatMul", output_type=None) -> bytes:
    """y = x @ w + 0.5, as a small graph: [rows, width] in, [rows, 1] out."""
    dtype = np.float32 if element == TensorProto.FLOAT else np.float64
    weights = numpy_helper.from_array(np.linspace(-1, 1, width, dtype=dtype).reshape(width, 1), "w")
    bias = numpy_helper.from_array(np.array([0.5], dtype=dtype), "b")
    nodes = [helper.make_node(operator, ["x", "w"], ["xw"], domain=domain), helper.make_node("Add", ["xw", "b"], ["y"])]
    output = output_type or helper.make_tensor_value_info("y", element, [None, 1])
    graph = helper.make_graph(nodes, "linear", [helper.make_tensor_value_info("x", element, [None, width])],
                              [output], [weights, bias])
    opsets = [helper.make_opsetid("", 15)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8).SerializeToString()


def regression(graph: bytes, element_type: str = "float") -> serving_config_pb2.OnnxModel:
    return serving_config_pb2.OnnxModel(kind="package-model", graph=graph, input_name="x",
                                        input_element_type=element_type, task=serving_config_pb2.TASK_REGRESSION,
                                        prediction_output="y")


def rows(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, FEATURES))


def test_a_checked_graph_answers_what_it_computes():
    model = served_model.OnnxServedModel(regression(linear_graph()), FEATURES)
    matrix = rows(5)
    expected = (matrix.astype(np.float32) @ np.linspace(-1, 1, FEATURES, dtype=np.float32) + np.float32(0.5))
    answered = model.predict(matrix)
    assert answered.probabilities is None and answered.predictions.dtype == np.float64
    np.testing.assert_allclose(answered.predictions, expected, rtol=1e-6)


def test_one_row_at_a_time_and_any_batch_give_the_same_bits():
    model = served_model.OnnxServedModel(regression(linear_graph()), FEATURES)
    matrix = rows(1000)
    whole = model.predict(matrix).predictions
    for size in (1, 7, 64):
        pieces = np.concatenate([model.predict(matrix[i:i + size]).predictions for i in range(0, len(matrix), size)])
        assert pieces.tobytes() == whole.tobytes(), size


def test_a_model_pickles_to_a_model_with_the_same_bits():
    """The Dask engine sends the model to its workers: the session is rebuilt there."""
    model = served_model.OnnxServedModel(regression(linear_graph()), FEATURES)
    matrix = rows(50)
    model.predict(matrix)  # a session exists now: it must not travel
    copy = pickle.loads(pickle.dumps(model))
    assert copy.predict(matrix).predictions.tobytes() == model.predict(matrix).predictions.tobytes()


def test_the_session_has_one_thread_each_way():
    options = onnx_checks.session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)


def test_a_custom_operator_domain_is_refused_naming_it():
    with pytest.raises(onnx_checks.ModelRefused, match=r"com\.example.*only ai\.onnx and ai\.onnx\.ml"):
        onnx_checks.check_model(regression(linear_graph(domain="com.example", operator="MyMatMul")), FEATURES)


def test_a_graph_keeping_its_weights_in_an_external_file_is_refused():
    model = onnx.load_from_string(linear_graph())
    weights = model.graph.initializer[0]
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    weights.external_data.add(key="location", value="/etc/weights.bin")
    with pytest.raises(onnx_checks.ModelRefused, match="external data"):
        onnx_checks.check_model(regression(model.SerializeToString()), FEATURES)


def test_an_input_of_another_width_is_refused():
    with pytest.raises(onnx_checks.ModelRefused, match=r"must be \[rows, 17\].*it is \['\?', 16\]"):
        onnx_checks.check_model(regression(linear_graph(width=16)), FEATURES)


def test_an_input_of_another_element_type_than_the_config_says_is_refused():
    with pytest.raises(onnx_checks.ModelRefused, match="element type DOUBLE; the config says 'float'"):
        onnx_checks.check_model(regression(linear_graph(element=TensorProto.DOUBLE)), FEATURES)


def test_a_double_graph_runs_on_float64_features():
    model = served_model.OnnxServedModel(regression(linear_graph(element=TensorProto.DOUBLE), "double"), FEATURES)
    matrix = rows(3)
    expected = matrix @ np.linspace(-1, 1, FEATURES) + 0.5
    np.testing.assert_allclose(model.predict(matrix).predictions, expected, rtol=1e-13)  # float32 would be ~1e-7 off


def test_a_graph_over_the_cap_is_refused(monkeypatch):
    graph = linear_graph()
    monkeypatch.setattr(onnx_checks, "MAX_GRAPH_BYTES", len(graph) - 1)
    with pytest.raises(onnx_checks.ModelRefused, match=f"{len(graph):,} bytes, over the cap of {len(graph) - 1:,}"):
        onnx_checks.check_model(regression(graph), FEATURES)


def test_a_classifier_whose_probabilities_are_not_a_tensor_is_refused():
    """skl2onnx's and onnxmltools' default ZipMap answers a list of maps: no [rows, classes] tensor."""
    graph = linear_graph(output_type=helper.make_value_info("y", helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, None))))
    message = regression(graph)
    with pytest.raises(onnx_checks.ModelRefused, match="zipmap=False"):
        onnx_checks.check_model(message, FEATURES)


def test_a_classifier_needs_two_class_labels_or_more():
    message = regression(linear_graph())
    message.task = serving_config_pb2.TASK_BINARY_CLASSIFICATION
    message.probability_output = "y"
    message.class_labels[:] = ["yes"]
    with pytest.raises(onnx_checks.ModelRefused, match="at least two class labels"):
        onnx_checks.check_model(message, FEATURES)


def test_bytes_that_are_no_graph_are_refused():
    with pytest.raises(onnx_checks.ModelRefused, match="does not parse"):
        onnx_checks.check_model(regression(b"\x12\xff\xff not a graph"), FEATURES)


def test_a_nan_answer_is_refused_naming_the_row():
    """log(x[0]) is NaN for a negative first feature: no caller may receive that."""
    nodes = [helper.make_node("Slice", ["x", "start", "end", "axis"], ["first"]),
             helper.make_node("Log", ["first"], ["y"])]
    constants = [numpy_helper.from_array(np.array([v], dtype=np.int64), name)
                 for name, v in (("start", 0), ("end", 1), ("axis", 1))]
    graph = helper.make_graph(nodes, "log", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, FEATURES])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])], constants)
    model = served_model.OnnxServedModel(
        regression(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], ir_version=8).SerializeToString()),
        FEATURES)
    matrix = np.ones((4, FEATURES))
    assert np.isfinite(model.predict(matrix).predictions).all()
    matrix[2, 0] = -1.0
    with pytest.raises(served_model.ModelOutputError, match=r"NaN or an infinity \(row 2 of 4\)"):
        model.predict(matrix)


def test_a_linear_model_answers_as_before():
    linear = serving_config_pb2.LinearModel(intercept=1.5, coefficients=[2.0] * FEATURES)
    matrix = rows(4)
    answered = served_model.LinearServedModel(linear).predict(matrix)
    assert answered.probabilities is None
    np.testing.assert_allclose(answered.predictions, 1.5 + 2.0 * matrix.sum(axis=1))


def test_output_names_and_columns_line_up():
    answered = served_model.ModelOutputs(np.array([1.0, 0.0]), np.array([[0.2, 0.8], [0.9, 0.1]]))

    class TwoClasses(served_model.ServedModel):
        task = serving_config_pb2.TASK_BINARY_CLASSIFICATION
        class_labels = ("no", "yes")

    assert served_model.output_names(TwoClasses()) == ["prediction", "probability[no]", "probability[yes]"]
    columns = served_model.output_columns(answered)
    assert [c.tolist() for c in columns] == [[1.0, 0.0], [0.2, 0.9], [0.8, 0.1]]
