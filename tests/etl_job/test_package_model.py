"""package-model: a model trained outside the job on a run's training set, exported to ONNX, served
on that run's features. Real libraries throughout: runs of the job on the bundled sample, LightGBM
models trained here on their training sets and converted by onnxmltools, graphs built with
onnx.helper for what a converter would never write, the command through cli.main.

What is held: the packaged config boots (verified, its golden rows reproduced by FastPredictor);
features, aggregates and the rest of the run are the run's; predictions, probabilities, held-out
metrics and the profile's outputs are what the serving runtime and the job's own metrics give;
every refusal is one line with its exit code, and leaves the output folder as it was."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from onnx import TensorProto, helper

from absenteeism import classification_metrics, config_io, dataflow, onnx_checks, profile_bins, served_model
from absenteeism.aggregates import from_message
from absenteeism.dataset import reader, training_set_files
from absenteeism.online.fast import FastPredictor
from absenteeism.v1 import serving_config_pb2
from etl_job import cli, output_folder, pipeline, profile_builder, run_settings, training
from testkit.bits import assert_same_bits
from testkit.run_outputs import config_without_time, training_set_parts

lightgbm = pytest.importorskip("lightgbm", reason="the [models] extra trains the models packaged here")
onnxmltools = pytest.importorskip("onnxmltools", reason="the [models] extra converts them")

FEATURES = 17
LGBM = {"num_threads": 1, "deterministic": True, "force_row_wise": True, "n_estimators": 50, "verbose": -1}


# -- runs and models --------------------------------------------------------------------------------

def _run(out: Path, label: str = "absence_hours") -> Path:
    """The job on the bundled sample (ridge). The pipeline is called, not the CLI: the CLI refuses
    ridge for a classification label (a ridge on long_absence is a linear probability model), and
    until --model gbt is in, that run is the one a classifier of long_absence is packaged onto: its
    label column holds the label's values, 0 and 1, which are the class indices."""
    pipeline.run(run_settings.RunSettings(output_dir=out, fit=training.FitSettings(label=label)))
    return out


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("run") / "absence_hours")


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("run") / "long_absence", "long_absence")


def _config(out: Path) -> serving_config_pb2.ServingConfig:
    return config_io.read_config(out / config_io.CONFIG_FILE)


def _training_set(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "training_set.parquet")


def _train_rows(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """What the data scientist fits on: the training rows' features (config order) and label."""
    config, frame = _config(run), _training_set(run)
    train = frame[frame["split"] == "train"]
    return train[list(config.feature_names)].to_numpy(np.float32), train[config.label].to_numpy()


def _lightgbm_onnx(model, path: Path, zipmap: bool = False) -> Path:
    """As a notebook exports it: features as float32 [rows, 17], ai.onnx opset 15."""
    from onnxmltools.convert.common.data_types import FloatTensorType

    graph = onnxmltools.convert_lightgbm(model, initial_types=[("features", FloatTensorType([None, FEATURES]))],
                                         target_opset=15, zipmap=zipmap)
    path.write_bytes(graph.SerializeToString())
    return path


@pytest.fixture(scope="module")
def regressor(regression_run, tmp_path_factory) -> Path:
    matrix, labels = _train_rows(regression_run)
    return _lightgbm_onnx(lightgbm.LGBMRegressor(**LGBM).fit(matrix, labels),
                          tmp_path_factory.mktemp("onnx") / "regressor.onnx")


@pytest.fixture(scope="module")
def classifier(binary_run, tmp_path_factory) -> Path:
    matrix, labels = _train_rows(binary_run)
    return _lightgbm_onnx(lightgbm.LGBMClassifier(**LGBM).fit(matrix, labels),
                          tmp_path_factory.mktemp("onnx") / "classifier.onnx")


def _package(run: Path, graph: Path, out: Path, *extra: str) -> int:
    return cli.main(["package-model", "--run", str(run), "--onnx", str(graph), "--output-dir", str(out),
                     "--no-progress", *extra])


@pytest.fixture(scope="module")
def packaged_regressor(regression_run, regressor, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("packaged") / "regressor"
    assert _package(regression_run, regressor, out) == 0
    return out


@pytest.fixture(scope="module")
def packaged_classifier(binary_run, classifier, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("packaged") / "classifier"
    assert _package(binary_run, classifier, out) == 0
    return out


def _graph(path: Path, nodes, *, width: int = FEATURES, initializers=(), opsets=(("", 15),)) -> Path:
    """A regressor graph by hand: input "features" [rows, width] float, output "variable" [rows, 1]."""
    graph = helper.make_graph(nodes, "by_hand", [helper.make_tensor_value_info("features", TensorProto.FLOAT,
                                                                               [None, width])],
                              [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
                              initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, version) for domain, version in opsets])
    model.ir_version = 8  # opset 15's
    path.write_bytes(model.SerializeToString())
    return path


def _column(name: str, j: int) -> tuple[list, list]:
    """Nodes that take feature j as [rows, 1] into `name`."""
    return [helper.make_node("Slice", ["features", f"{name}_start", f"{name}_end", f"{name}_axis"], [name])], [
        helper.make_tensor(f"{name}_start", TensorProto.INT64, [1], [j]),
        helper.make_tensor(f"{name}_end", TensorProto.INT64, [1], [j + 1]),
        helper.make_tensor(f"{name}_axis", TensorProto.INT64, [1], [1])]


def _feature_index(name: str) -> int:
    from absenteeism import features

    return features.MODEL_FEATURES.index(name)


# -- what a packaged model is -----------------------------------------------------------------------

def test_a_lightgbm_regressor_boots_and_its_training_set_is_the_serving_runtimes(regression_run, regressor,
                                                                                  packaged_regressor):
    source, config = _config(regression_run), _config(packaged_regressor)
    config_io.verify_config(config, FastPredictor(config))  # what the server does at boot
    model = config.onnx_model
    assert config.format_version == config_io.ONNX_FORMAT_VERSION and not config.HasField("model")
    assert (model.kind, model.task, model.input_name, model.input_element_type, model.prediction_output) == (
        "package-model", serving_config_pb2.TASK_REGRESSION, "features", "float", "variable")
    assert model.graph == regressor.read_bytes() and not model.class_labels

    # Features and aggregates are the run's, never recomputed; so are its rows and its input.
    assert list(config.feature_names) == list(source.feature_names)
    assert config.statistics == source.statistics and config.label == source.label == "absence_hours"
    for name in ("input_sha256", "input_files", "rows", "code"):
        assert getattr(config.provenance, name) == getattr(source.provenance, name), name
    assert (config.evaluation.train_rows, config.evaluation.test_rows, config.evaluation.split_seed) == (
        source.evaluation.train_rows, source.evaluation.test_rows, source.evaluation.split_seed)

    before, after = _training_set(regression_run), _training_set(packaged_regressor)
    assert list(after.columns) == list(before.columns)
    for name in after.columns.drop(["prediction", "split"]):
        assert after[name].dtype == before[name].dtype
        assert after[name].to_numpy().tobytes() == before[name].to_numpy().tobytes(), name
    assert (after["split"] == before["split"]).all()
    served = served_model.OnnxServedModel(model, len(config.feature_names))
    features = after[list(config.feature_names)].to_numpy()
    assert_same_bits(after["prediction"], served.predict(features).predictions)  # every row, bit for bit
    assert not (after["prediction"].to_numpy() == before["prediction"].to_numpy()).all()  # a new model

    # The held-out errors from the training set, and the baseline the run had (the same mean label).
    held = after[after["split"] == "held_out"]
    errors = held["absence_hours"].to_numpy(np.float64) - held["prediction"].to_numpy()
    assert config.evaluation.mae == np.abs(errors).sum() / len(held)
    assert config.evaluation.rmse == np.sqrt((errors ** 2).sum() / len(held))
    assert_same_bits([config.evaluation.baseline_mae, config.evaluation.baseline_rmse],
                     [source.evaluation.baseline_mae, source.evaluation.baseline_rmse])

    # The training set names the new config; rejects are the run's; the report says where it came from.
    assert training_set_files.config_id_of(packaged_regressor / "training_set.parquet") == config.content_sha256
    assert (packaged_regressor / "rejects.csv").read_bytes() == (regression_run / "rejects.csv").read_bytes()
    report = json.loads((packaged_regressor / "report.json").read_text())
    assert report["packaged_from"]["config_id"] == source.content_sha256
    assert report["packaged_from"]["onnx_sha256"] == hashlib.sha256(regressor.read_bytes()).hexdigest()
    assert report["config"]["content_sha256"] == config.content_sha256 and report["model"]["kind"] == "package-model"
    assert report["online_parity"]["identical"] and report["online_parity"]["rows_compared"] == len(after)
    assert report["rows"] == json.loads((regression_run / "report.json").read_text())["rows"]
    for name in ("serving_config.pb", "training_set.parquet", "report.json", "rejects.csv"):
        assert os.readlink(packaged_regressor / name) == f"..data/{name}"  # published as run publishes


def test_the_profile_keeps_the_runs_entries_and_places_the_outputs_on_its_sample(regression_run, packaged_regressor):
    """Raw inputs and features: the run's entries, counts and all. Prediction: placed as `run` places
    it, on the run's sample rows (here computed from the raw input, as the job does), and counted
    over every row of the training set."""
    source, config = _config(regression_run), _config(packaged_regressor)
    before, after = profile_bins.from_message(source.profile), profile_bins.from_message(config.profile)
    assert config.profile.row_count == source.profile.row_count == source.provenance.rows.accepted
    kept = [entry for entry in before if entry.source != profile_bins.PREDICTION]
    assert [e.name for e in after[:len(kept)]] == [e.name for e in kept]
    for old, new in zip(kept, after, strict=False):
        assert old.counts.tolist() == new.counts.tolist() and str(old.edges) == str(new.edges), old.name

    sample = profile_builder.RowSample()
    sample.add(reader.read_valid(run_settings.SAMPLE_INPUT))
    aggregates = from_message(config.statistics, dataflow.aggregate_names())
    expected = profile_builder.ProfileBuilder(sample.rows(), aggregates)
    expected.place_outputs(served_model.served_model(config))
    (prediction,) = after[len(kept):]
    assert prediction.name == "prediction" and prediction.edges.tolist() == expected.outputs[0].edges.tolist()
    assert prediction.counts.tolist() == prediction.count(_training_set(packaged_regressor)["prediction"]).tolist()


def test_a_lightgbm_classifier_is_packaged_onto_a_run_of_a_binary_label(binary_run, classifier, packaged_classifier):
    source, config = _config(binary_run), _config(packaged_classifier)
    config_io.verify_config(config, FastPredictor(config))  # golden rows' probabilities included
    model = config.onnx_model
    assert source.label == config.label == "long_absence" and source.HasField("model")  # a ridge run
    assert model.task == serving_config_pb2.TASK_BINARY_CLASSIFICATION
    assert (list(model.class_labels), model.prediction_output, model.probability_output) == (
        ["0", "1"], "label", "probabilities")
    assert all(len(row.probabilities) == 2 for row in config.golden_rows)

    frame = _training_set(packaged_classifier)
    assert list(frame.columns[-5:]) == ["long_absence", "prediction", "probability[0]", "probability[1]", "split"]
    assert frame["long_absence"].to_numpy().tobytes() == _training_set(binary_run)["long_absence"].to_numpy().tobytes()
    answered = served_model.OnnxServedModel(model, FEATURES).predict(frame[list(config.feature_names)].to_numpy())
    assert_same_bits(frame["prediction"], answered.predictions)
    assert_same_bits(frame[["probability[0]", "probability[1]"]], answered.probabilities)

    # The job's classification metrics over the held-out rows, against the training rows' class shares.
    train, held = frame[frame["split"] == "train"], frame[frame["split"] == "held_out"]
    expected = classification_metrics.HeldOutClassification(np.bincount(train["long_absence"]) / len(train))
    expected.feed(held["long_absence"].to_numpy(), held[["probability[0]", "probability[1]"]].to_numpy())
    for name, value in expected.metrics().items():
        assert_same_bits(getattr(config.evaluation, name), value)
    report = json.loads((packaged_classifier / "report.json").read_text())
    assert set(report["metrics"]) >= {"log_loss", "accuracy", "roc_auc", "baseline_log_loss"}
    assert [entry.name for entry in profile_bins.from_message(config.profile)][-3:] == [
        "prediction", "probability[0]", "probability[1]"]


def test_a_packaged_classifier_packaged_again_takes_its_class_labels_and_gives_the_same_outputs(
        packaged_classifier, classifier, tmp_path):
    """Onto a classifier's run the classes are its config's (its label column holds class indices):
    the same graph again gives the same training set, byte for byte, and the same config but for
    its time and where it says it came from."""
    again = tmp_path / "again"
    assert _package(packaged_classifier, classifier, again) == 0
    assert training_set_parts(again / "training_set.parquet") == training_set_parts(
        packaged_classifier / "training_set.parquet")
    first, second = _config(packaged_classifier), _config(again)
    for config in (first, second):
        config.onnx_model.ClearField("description")  # names the config it was packaged from
        config.provenance.ClearField("created_at")
        config.ClearField("content_sha256")
    assert first == second


def test_the_chunk_size_never_changes_the_outputs(regression_run, regressor, packaged_regressor, tmp_path):
    small = tmp_path / "small"
    assert _package(regression_run, regressor, small, "--chunk-rows", "7") == 0
    assert training_set_parts(small / "training_set.parquet") == training_set_parts(
        packaged_regressor / "training_set.parquet")
    assert config_without_time(small) == config_without_time(packaged_regressor)


def test_a_run_folder_can_be_replaced_by_its_packaged_model(regression_run, regressor, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(regression_run, run, symlinks=True)
    source = _config(run)
    assert _package(run, regressor, run) == 0
    config = _config(run)
    assert config.HasField("onnx_model") and config.statistics == source.statistics
    assert len(list((run / output_folder.RUNS).glob("*.lock"))) == 2  # the replaced run is kept as history


# -- refusals ---------------------------------------------------------------------------------------

def _listing(folder: Path) -> dict | None:
    """Every entry under `folder`: links with their targets, files with their bytes."""
    if not os.path.lexists(folder):
        return None
    listing: dict[str, tuple] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            listing[name] = ("link", os.readlink(path))
        elif path.is_dir():
            listing[name] = ("dir",)
        else:
            listing[name] = ("file", path.read_bytes())
    return listing


def _refused(run: Path, graph: Path, out: Path, capsys, *extra: str) -> tuple[int, str]:
    """The exit code and the one line the command says, with `out` left as it was."""
    capsys.readouterr()
    before = _listing(out)
    code = _package(run, graph, out, *extra)
    said = capsys.readouterr().err.rstrip("\n").splitlines()  # log lines first, the refusal last
    assert _listing(out) == before
    assert said[-1].startswith("etl_job: ") and [line for line in said if line.startswith("etl_job: ")] == said[-1:]
    return code, said[-1]


@pytest.fixture()
def published(packaged_regressor, tmp_path) -> Path:
    """An output folder holding a published run, for the refusals to leave as it is."""
    out = tmp_path / "published"
    shutil.copytree(packaged_regressor, out, symlinks=True)
    return out


def test_a_custom_operator_domain_is_refused(regression_run, published, tmp_path, capsys):
    nodes, initializers = _column("age", _feature_index("age_zero_mean_unit_variance"))
    nodes.append(helper.make_node("Shout", ["age"], ["variable"], domain="com.example"))
    graph = _graph(tmp_path / "custom.onnx", nodes, initializers=initializers,
                   opsets=(("", 15), ("com.example", 1)))
    code, line = _refused(regression_run, graph, published, capsys)
    assert code == cli.EXIT_USAGE and "operator domain(s) ['com.example'] are not allowed" in line
    fresh = tmp_path / "fresh"
    assert _refused(regression_run, graph, fresh, capsys)[0] == cli.EXIT_USAGE
    assert not fresh.exists()  # refused before the output folder is touched


def test_a_graph_of_another_width_is_refused(regression_run, published, tmp_path, capsys):
    nodes, initializers = _column("first", 0)
    nodes.append(helper.make_node("Identity", ["first"], ["variable"]))
    graph = _graph(tmp_path / "narrow.onnx", nodes, width=5, initializers=initializers)
    code, line = _refused(regression_run, graph, published, capsys)
    assert code == cli.EXIT_USAGE and "must be [rows, 17]" in line and "it is ['?', 5]" in line


def test_a_graph_over_the_size_cap_is_refused(regression_run, regressor, published, capsys, monkeypatch):
    monkeypatch.setattr(onnx_checks, "MAX_GRAPH_BYTES", 1000)
    code, line = _refused(regression_run, regressor, published, capsys)
    assert code == cli.EXIT_USAGE and f"{regressor.stat().st_size:,} bytes, over the cap of 1,000" in line


def test_a_zipmap_classifier_is_refused_naming_zipmap_false(binary_run, published, tmp_path, capsys):
    matrix, labels = _train_rows(binary_run)
    graph = _lightgbm_onnx(lightgbm.LGBMClassifier(**LGBM).fit(matrix, labels), tmp_path / "zipmap.onnx", zipmap=True)
    code, line = _refused(binary_run, graph, published, capsys)
    assert code == cli.EXIT_USAGE and "not a tensor" in line and "zipmap=False" in line


def test_a_classifier_of_another_class_count_is_refused(binary_run, published, tmp_path, capsys):
    matrix, _ = _train_rows(binary_run)
    three = lightgbm.LGBMClassifier(**LGBM).fit(matrix, np.arange(len(matrix)) % 3)
    code, line = _refused(binary_run, _lightgbm_onnx(three, tmp_path / "three.onnx"), published, capsys)
    assert code == cli.EXIT_USAGE
    assert "output 'probabilities' holds 3 class probabilities; the config has 2 class labels" in line


def test_a_regressor_for_a_classification_label_is_refused(binary_run, regressor, published, capsys):
    code, line = _refused(binary_run, regressor, published, capsys)
    assert code == cli.EXIT_USAGE and "binary_classification" in line and "['variable']" in line
    code, line = _refused(binary_run, regressor, published, capsys, "--task", "regression")
    assert code == cli.EXIT_USAGE and "--task regression: the run's label 'long_absence' is binary_classification" in line


def test_a_graph_answering_nan_for_a_golden_row_is_refused(regression_run, published, tmp_path, capsys):
    nodes, initializers = _column("age", _feature_index("age_zero_mean_unit_variance"))
    nodes.append(helper.make_node("Sqrt", ["age"], ["variable"]))  # NaN below the mean age
    code, line = _refused(regression_run, _graph(tmp_path / "sqrt.onnx", nodes, initializers=initializers),
                          published, capsys)
    assert code == cli.EXIT_USAGE and "holds a NaN or an infinity" in line


def test_a_graph_answering_infinity_for_one_training_row_is_refused_and_nothing_is_published(
        regression_run, published, tmp_path, capsys):
    """Finite for every golden record, infinite for the rows of one age no golden record has: found
    while the training set is written, inside the run's own folder, which is then removed."""
    from etl_job import golden

    frame = _training_set(regression_run)
    column = "age_zero_mean_unit_variance"
    golden_ages = set(golden.golden_frame()["age"])
    accepted = reader.read_valid(run_settings.SAMPLE_INPUT)
    row = next(r for r in frame["source_row"] if accepted.loc[r, "age"] not in golden_ages)
    pole = np.float32(frame.set_index("source_row").loc[row, column])
    nodes, initializers = _column("age", _feature_index(column))
    nodes += [helper.make_node("Sub", ["age", "pole"], ["distance"]),
              helper.make_node("Reciprocal", ["distance"], ["variable"])]
    initializers.append(helper.make_tensor("pole", TensorProto.FLOAT, [1], [float(pole)]))
    code, line = _refused(regression_run, _graph(tmp_path / "pole.onnx", nodes, initializers=initializers),
                          published, capsys)
    assert code == cli.EXIT_USAGE and "holds a NaN or an infinity" in line


def test_a_graph_whose_answer_depends_on_its_batch_is_refused_by_the_parity_check(
        regression_run, published, tmp_path, capsys):
    """A row's age minus the batch's mean age: 0 for a record alone, something else in a batch. The
    served answers would not be the training set's: nothing is published."""
    nodes, initializers = _column("age", _feature_index("age_zero_mean_unit_variance"))
    nodes += [helper.make_node("ReduceMean", ["age"], ["batch_mean"], axes=[0], keepdims=1),
              helper.make_node("Sub", ["age", "batch_mean"], ["variable"])]
    code, line = _refused(regression_run, _graph(tmp_path / "batch.onnx", nodes, initializers=initializers),
                          published, capsys)
    assert code == cli.EXIT_USAGE and "records sent one at a time with other bits" in line


def test_a_training_set_of_another_config_is_refused(regression_run, binary_run, regressor, published, tmp_path,
                                                      capsys):
    mixed = tmp_path / "mixed"
    shutil.copytree(os.path.realpath(regression_run / output_folder.CURRENT), mixed)
    shutil.rmtree(mixed / "training_set.parquet")
    shutil.copytree(binary_run / "training_set.parquet", mixed / "training_set.parquet")
    code, line = _refused(mixed, regressor, published, capsys)
    assert code == cli.EXIT_BAD_DATA
    assert f"belongs to config {_config(binary_run).content_sha256}, not to its serving_config.pb" in line


def test_a_run_folder_missing_a_file_is_refused(regression_run, regressor, published, tmp_path, capsys):
    partial = tmp_path / "partial"
    shutil.copytree(os.path.realpath(regression_run / output_folder.CURRENT), partial)
    (partial / "rejects.csv").unlink()
    code, line = _refused(partial, regressor, published, capsys)
    assert code == cli.EXIT_BAD_DATA and "lacks ['rejects.csv']" in line


def test_an_input_that_is_not_the_runs_is_refused(regression_run, regressor, published, tmp_path, capsys):
    other = tmp_path / "other.csv"
    other.write_bytes(run_settings.SAMPLE_INPUT.read_bytes() + b"\r\n")
    code, line = _refused(regression_run, regressor, published, capsys, "--input", str(other))
    assert code == cli.EXIT_BAD_DATA and f"--input {other} is not the input of run" in line


def test_a_training_set_edited_after_the_run_is_refused(regression_run, regressor, published, tmp_path, capsys):
    """Its config id still matches, but one row's feature was flipped: its features no longer count
    into the run's profile (nor match what the online path computes from the run's input)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    edited = tmp_path / "edited"
    shutil.copytree(os.path.realpath(regression_run / output_folder.CURRENT), edited)
    part = edited / "training_set.parquet" / "part-00000.parquet"
    table = pq.read_table(part)
    flags = table.column("has_pet").to_numpy().copy()
    flags[0] = 1.0 - flags[0]
    pq.write_table(table.set_column(table.schema.get_field_index("has_pet"), "has_pet", pa.array(flags)), part)
    code, line = _refused(edited, regressor, published, capsys)
    assert code == cli.EXIT_BAD_DATA and "is not the one the run wrote" in line


@pytest.mark.parametrize(("option", "said"), [
    (("--input-name", "rows"), "--input-name rows: the graph's one input is 'features'"),
    (("--prediction-output", "score"), "the graph has no output 'score' (its outputs are ['variable'])"),
])
def test_names_the_graph_does_not_have_are_refused(regression_run, regressor, published, capsys, option, said):
    code, line = _refused(regression_run, regressor, published, capsys, *option)
    assert code == cli.EXIT_USAGE and said in line
