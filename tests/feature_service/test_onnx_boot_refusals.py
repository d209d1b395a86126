"""A config whose model is an ONNX graph is data the server checks before it runs any of it: a custom
operator domain, external data, a graph over the cap, an input that is not the config's features, a
second model, a graph that does not answer the golden rows' bits are each refused at boot (exit 78)
with the reason; the sealed digest covers the graph's bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from absenteeism import config_io, onnx_checks
from absenteeism.dataset import atomic
from etl_job import pipeline, run_settings, training
from feature_service.processes.lone_server import EXIT_CONFIG
from testkit.boot_checks import refusal_lines
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`


@pytest.fixture(scope="module")
def gbt_config(tmp_path_factory):
    output = tmp_path_factory.mktemp("gbt")
    pipeline.run(run_settings.RunSettings(output_dir=output, fit=training.FitSettings(model="gbt")))
    return config_io.read_config(output / config_io.CONFIG_FILE)


def written(config, folder: Path, seal: bool = True) -> Path:
    path = folder / config_io.CONFIG_FILE
    sealed = config_io.seal(config) if seal else config
    atomic.write_bytes(path, sealed.SerializeToString(deterministic=True))
    return path


def with_graph(config, graph: onnx.ModelProto):
    changed = type(config)()
    changed.CopyFrom(config)
    changed.onnx_model.graph = graph.SerializeToString()
    return changed


def refused(path: Path, *words: str) -> None:
    server = ServerProcess(path)
    assert server.run_to_exit(60) == EXIT_CONFIG, "\n".join(server.logs)
    lines = refusal_lines(server)
    assert lines and all(word in lines[0] for word in words), lines
    assert not any("Traceback" in line for line in server.logs)


def test_the_gbt_config_itself_boots(gbt_config, tmp_path):
    with ServerProcess(written(gbt_config, tmp_path, seal=False)) as server:
        assert server.events("serving")


def test_a_node_of_a_custom_operator_domain_is_refused(gbt_config, tmp_path):
    graph = onnx.load_from_string(gbt_config.onnx_model.graph)
    graph.graph.node.append(helper.make_node("Exfiltrate", [gbt_config.onnx_model.input_name], ["unused"],
                                             domain="com.example"))
    graph.opset_import.append(helper.make_opsetid("com.example", 1))
    refused(written(with_graph(gbt_config, graph), tmp_path), "config model refused",
            "operator domain(s) ['com.example'] are not allowed")


def test_weights_in_an_external_file_are_refused(gbt_config, tmp_path):
    graph = onnx.load_from_string(gbt_config.onnx_model.graph)
    weights = numpy_helper.from_array(np.ones(1, dtype=np.float32), "w")
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    weights.external_data.add(key="location", value="../../etc/passwd")
    graph.graph.initializer.append(weights)
    refused(written(with_graph(gbt_config, graph), tmp_path), "external data")


def test_a_graph_over_the_cap_is_refused(gbt_config, tmp_path):
    graph = onnx.load_from_string(gbt_config.onnx_model.graph)
    padding = onnx_checks.MAX_GRAPH_BYTES // 4 + 1
    graph.graph.initializer.append(helper.make_tensor("padding", TensorProto.FLOAT, [padding], b"\0" * (4 * padding),
                                                      raw=True))
    refused(written(with_graph(gbt_config, graph), tmp_path), "over the cap of")


def test_an_input_of_another_width_is_refused(gbt_config, tmp_path):
    graph = onnx.load_from_string(gbt_config.onnx_model.graph)
    graph.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 16
    refused(written(with_graph(gbt_config, graph), tmp_path), "must be [rows, 17]")


def test_a_graph_that_answers_other_bits_than_the_golden_rows_is_refused(gbt_config, tmp_path):
    """The trees' leaf values scaled: the graph loads, but its answers are not the ones recorded."""
    graph = onnx.load_from_string(gbt_config.onnx_model.graph)
    ensemble = next(node for node in graph.graph.node if node.op_type.startswith("TreeEnsemble"))
    leaves = next(a for a in ensemble.attribute if a.name == "target_weights")
    leaves.floats[:] = [v * 1.5 for v in leaves.floats]
    refused(written(with_graph(gbt_config, graph), tmp_path), "golden row 0 predicts")


def test_a_config_carrying_both_models_is_refused(gbt_config, tmp_path):
    both = type(gbt_config)()
    both.CopyFrom(gbt_config)
    both.model.intercept = 1.0
    refused(written(both, tmp_path), "must carry one model")


def test_an_edited_graph_without_a_new_seal_breaks_the_digest(gbt_config, tmp_path):
    graph = onnx.load_from_string(gbt_config.onnx_model.graph)
    graph.doc_string = "edited"
    refused(written(with_graph(gbt_config, graph), tmp_path, seal=False), "does not match its recorded digest")
