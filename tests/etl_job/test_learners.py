"""etl_job.learners with the real libraries: LightGBM and scikit-learn fit, onnxmltools and skl2onnx
convert, ONNX Runtime runs the graph through absenteeism.served_model as the job and the server do.
The rows are the project's: the feature module's 17 features (16 flags, standardized age) of
synthetic records, and their hours of absence."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import onnx
import pytest
from scipy.stats import spearmanr

from absenteeism import dataflow, features, onnx_checks
from absenteeism.absenteeism_schema import LABEL
from absenteeism.dataset import cell_parsing
from absenteeism.served_model import OnnxServedModel
from absenteeism.v1 import serving_config_pb2
from etl_job import learners, synthetic
from testkit.bits import assert_same_bits
from testkit.paths import REPO_ROOT

REGRESSION = serving_config_pb2.TASK_REGRESSION
BINARY = serving_config_pb2.TASK_BINARY_CLASSIFICATION
MULTICLASS = serving_config_pb2.TASK_MULTICLASS_CLASSIFICATION
FEATURES = features.MODEL_FEATURES
TRAIN_ROWS = 600
BATCH_SIZES = (1, 7, 64, 1000)


@dataclass(frozen=True)
class Rows:
    matrix: np.ndarray  # float64, rows x FEATURES
    hours: np.ndarray  # float64


def project_rows(count: int, seed: int) -> Rows:
    """The features the job computes for `count` synthetic records, and their label."""
    frame = synthetic.to_frame(synthetic.generate(count, seed=seed))
    typed, failures = cell_parsing.parse_columns(frame.astype(object).map(str))
    assert failures == []
    feature_frame = dataflow.compute_features(typed, dataflow.compute_aggregates(typed))
    return Rows(dataflow.feature_matrix(feature_frame), typed[LABEL.name].to_numpy(np.float64))


def standard_rows() -> Rows:
    return project_rows(TRAIN_ROWS + 1100, seed=7)  # 600 to train on, 1,100 to predict (1,000 + a remainder)


@pytest.fixture(scope="module")
def rows() -> Rows:
    return standard_rows()


@dataclass(frozen=True)
class Case:
    choice: str
    task: int
    class_labels: tuple[str, ...] = ()

    def labels(self, hours: np.ndarray) -> np.ndarray:
        """The label column the job would give the learner: hours, or class indices."""
        if self.task == REGRESSION:
            return hours
        if self.task == BINARY:
            return (hours > 4).astype(np.int64)  # index 1: "long"
        return np.digitize(hours, [2.5, 7.5]).astype(np.int64)  # <= 2, 3..7, >= 8 hours

    def fit(self, rows: Rows, stop: int = TRAIN_ROWS) -> serving_config_pb2.OnnxModel:
        return learners.fit_onnx_model(self.choice, self.task, self.class_labels, rows.matrix[:stop],
                                       self.labels(rows.hours[:stop]), FEATURES)


CASES = {
    "gbt-regression": Case("gbt", REGRESSION),
    "gbt-binary": Case("gbt", BINARY, ("short", "long")),
    "gbt-multiclass": Case("gbt", MULTICLASS, ("short", "medium", "long")),
    "pipeline-binary": Case("testkit.estimators:scaled_logistic_regression", BINARY, ("short", "long")),
    "gradient-boosting-regression": Case("testkit.estimators:gradient_boosting_regressor", REGRESSION),
}


@pytest.fixture(scope="module")
def fitted(rows) -> dict[str, serving_config_pb2.OnnxModel]:
    return {name: case.fit(rows) for name, case in CASES.items()}


@pytest.mark.parametrize("name", CASES)
def test_the_model_is_servable_and_says_what_it_is(name, fitted):
    case, message = CASES[name], fitted[name]
    onnx_checks.check_model(message, len(FEATURES))
    assert message.kind == ("gbt" if case.choice == "gbt" else "estimator")
    assert (message.task, tuple(message.class_labels)) == (case.task, case.class_labels)
    assert (message.input_name, message.input_element_type) == ("features", "float")
    assert bool(message.probability_output) == (case.task != REGRESSION)
    expected_class = {"gbt": "LGBMRegressor" if case.task == REGRESSION else "LGBMClassifier",
                      "pipeline-binary": "Pipeline(", "gradient-boosting-regression": "GradientBoostingRegressor("}
    assert expected_class[case.choice if case.choice == "gbt" else name] in message.description
    assert "\n" not in message.description and len(message.description) < 1000


@pytest.mark.parametrize("name", CASES)
def test_a_row_gets_the_same_bits_alone_and_in_any_batch(name, fitted, rows):
    model = OnnxServedModel(fitted[name], len(FEATURES))
    matrix = rows.matrix[TRAIN_ROWS:]
    alone = [model.predict(matrix[i:i + 1]) for i in range(len(matrix))]
    for size in BATCH_SIZES:
        batches = [model.predict(matrix[start:start + size]) for start in range(0, len(matrix), size)]
        assert_same_bits(np.concatenate([b.predictions for b in batches]), [a.predictions[0] for a in alone])
        if model.is_classifier:
            assert_same_bits(np.concatenate([b.probabilities for b in batches]), [a.probabilities[0] for a in alone])
    assert len(set(np.concatenate([a.predictions for a in alone]).tolist())) > 1  # not a constant model


@pytest.mark.parametrize("name", CASES)
def test_the_graph_declares_one_answer_per_row(name, fitted):
    # onnxmltools declares LightGBM's label output [1], and ONNX Runtime warns at each batch then.
    graph = onnx.load_from_string(fitted[name].graph)
    for output in graph.graph.output:
        assert output.type.tensor_type.shape.dim[0].dim_value == 0, (output.name, output.type)  # rows: not fixed


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.task != REGRESSION])
def test_a_classifier_answers_a_class_index_and_probabilities_summing_to_one(name, fitted, rows):
    case = CASES[name]
    outputs = OnnxServedModel(fitted[name], len(FEATURES)).predict(rows.matrix[TRAIN_ROWS:])
    assert outputs.probabilities.shape == (len(outputs.predictions), len(case.class_labels))
    np.testing.assert_allclose(outputs.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (outputs.probabilities >= 0).all()
    # The label output is the index of the most probable class (class_labels order), not a label.
    assert set(outputs.predictions.tolist()) <= set(range(len(case.class_labels)))
    top = np.sort(outputs.probabilities, axis=1)
    clear = top[:, -1] - top[:, -2] > 1e-6  # no tie between the two most probable classes
    np.testing.assert_array_equal(outputs.predictions[clear], outputs.probabilities[clear].argmax(axis=1))


@pytest.mark.parametrize("name", CASES)
def test_the_model_beats_the_training_baseline_on_held_out_rows(name, fitted, rows):
    # Also shows that labels, classes and feature order reached the fit as the job gives them.
    case = CASES[name]
    truth, train = case.labels(rows.hours[TRAIN_ROWS:]), case.labels(rows.hours[:TRAIN_ROWS])
    outputs = OnnxServedModel(fitted[name], len(FEATURES)).predict(rows.matrix[TRAIN_ROWS:])
    if case.task == REGRESSION:
        # Hours are heavy-tailed (a few absences of days): the squared error improves a little, the
        # order a lot (a fit on shuffled labels gets a rank correlation of 0.03 to 0.19 here).
        assert np.mean((outputs.predictions - truth) ** 2) < np.mean((train.mean() - truth) ** 2)
        assert spearmanr(outputs.predictions, truth).statistic > 0.35
    else:
        majority = np.bincount(train).argmax()
        assert np.mean(outputs.predictions == truth) > np.mean(truth == majority) + 0.05


@pytest.mark.parametrize("name", CASES)
def test_the_graph_answers_what_the_fitted_estimator_answers(name, fitted, rows):
    # The same estimator, fitted here on the same float32 rows, against the converted graph.
    case = CASES[name]
    estimator = (learners.gbt_estimator(case.task) if case.choice == "gbt"
                 else learners.user_estimator(case.choice, case.task))
    estimator.fit(rows.matrix[:TRAIN_ROWS].astype(np.float32), case.labels(rows.hours[:TRAIN_ROWS]))
    matrix = rows.matrix[TRAIN_ROWS:]
    outputs = OnnxServedModel(fitted[name], len(FEATURES)).predict(matrix)
    if case.task == REGRESSION:
        np.testing.assert_allclose(outputs.predictions, estimator.predict(matrix.astype(np.float32)), atol=1e-4)
    else:
        np.testing.assert_allclose(outputs.probabilities, estimator.predict_proba(matrix.astype(np.float32)), atol=1e-5)
        assert np.mean(outputs.predictions == estimator.predict(matrix.astype(np.float32))) > 0.995


def test_importances_are_per_feature_in_feature_order(fitted):
    for name in ("gbt-regression", "gbt-binary", "gbt-multiclass", "gradient-boosting-regression"):
        importances = np.asarray(fitted[name].feature_importances)
        assert importances.shape == (len(FEATURES),) and (importances >= 0).all() and importances.sum() > 0
        # The synthetic hours depend most on the reason for absence: its flags lead, wherever they sit.
        top_two = {FEATURES[i] for i in np.argsort(importances)[-2:]}
        assert top_two & {"reason_is_disease", "reason_is_consultation", "reason_unrecorded"}, (name, top_two)
    assert list(fitted["pipeline-binary"].feature_importances) == []  # a logistic regression reports none


@pytest.mark.parametrize("name", ["gbt-regression", "gbt-multiclass", "gradient-boosting-regression"])
def test_the_same_rows_give_the_same_graph_bytes_and_other_rows_another(name, fitted, rows):
    case = CASES[name]
    assert case.fit(rows).graph == fitted[name].graph
    assert case.fit(rows, stop=TRAIN_ROWS - 1).graph != fitted[name].graph


def test_the_operator_sets_are_listed_in_one_order(fitted):
    graph = onnx.load_from_string(fitted["gbt-multiclass"].graph)
    assert [opset.domain for opset in graph.opset_import] == ["", "ai.onnx.ml"]
    reordered = onnx.ModelProto()
    reordered.CopyFrom(graph)
    reordered.ClearField("opset_import")
    reordered.opset_import.extend(reversed(graph.opset_import))
    assert reordered.SerializeToString() != fitted["gbt-multiclass"].graph
    assert learners.graph_bytes(reordered) == fitted["gbt-multiclass"].graph


def test_an_unset_random_state_is_fixed_to_the_jobs_seed(fitted):
    # testkit's GradientBoostingRegressor subsamples rows and leaves random_state unset.
    assert f"random_state={learners.SEED}" in fitted["gradient-boosting-regression"].description


DETERMINISM_SCRIPT = """
import hashlib, sys
from tests.etl_job.test_learners import CASES, standard_rows
rows = standard_rows()
for name in ("gbt-multiclass", "gradient-boosting-regression"):
    print(name, hashlib.sha256(CASES[name].fit(rows).graph).hexdigest())
"""


@pytest.mark.process  # fresh interpreters with other string hash seeds
def test_the_graph_bytes_do_not_depend_on_the_process(fitted):
    # onnxmltools names a graph with a random uuid unless given a name, and lists the operator sets
    # in the order of a Python set: with hash seeds 1 and 20 its two orders (checked with the
    # pinned versions), so one of them is not this process's, whichever this process's is.
    expected = "".join(f"{name} {hashlib.sha256(fitted[name].graph).hexdigest()}\n"
                       for name in ("gbt-multiclass", "gradient-boosting-regression"))
    for seed in ("1", "20"):
        result = subprocess.run([sys.executable, "-c", DETERMINISM_SCRIPT], capture_output=True, text=True,
                                timeout=300, cwd=REPO_ROOT, env={**os.environ, "PYTHONHASHSEED": seed})
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected


@pytest.mark.parametrize("text", ["ridge", "gbt", "testkit.estimators:scaled_logistic_regression", "models:make",
                                  "my_models.trees:make_forest_2"])
def test_model_choices(text):
    assert learners.parse_model_choice(text) == text


@pytest.mark.parametrize("text", ["", "GBT", "lasso", " gbt", "testkit.estimators", "testkit.estimators:",
                                  ":make", "testkit..estimators:make", "testkit.estimators:make:more",
                                  "testkit.estimators:2make", "testkit/estimators.py:make", "my-models:make",
                                  "testkit.class:make", "testkit.estimators:make()"])
def test_other_model_choices_are_refused_naming_the_three_forms(text):
    with pytest.raises(learners.LearnerError) as refused:
        learners.parse_model_choice(text)
    assert repr(text) in str(refused.value)
    assert "'ridge', 'gbt' or 'package.module:function'" in str(refused.value)


def refusal(rows: Rows, choice: str, task: int = REGRESSION, class_labels: tuple[str, ...] = (),
            labels: np.ndarray | None = None, matrix: np.ndarray | None = None) -> str:
    matrix = rows.matrix[:TRAIN_ROWS] if matrix is None else matrix
    labels = rows.hours[:TRAIN_ROWS] if labels is None else labels
    with pytest.raises(learners.LearnerError) as refused:
        learners.fit_onnx_model(choice, task, class_labels, matrix, labels, FEATURES)
    return str(refused.value)


def test_ridge_is_not_fitted_here(rows):
    assert "etl_job.ridge" in refusal(rows, "ridge")


def test_a_module_that_does_not_exist(rows):
    message = refusal(rows, "testkit.no_such_module:make")
    assert "no module named 'testkit.no_such_module'" in message and "PYTHONPATH" in message


def test_a_function_that_does_not_exist(rows):
    assert "module 'testkit.estimators' has no function 'no_such_function'" in refusal(
        rows, "testkit.estimators:no_such_function")


def test_a_function_that_returns_no_estimator(rows):
    message = refusal(rows, "testkit.estimators:not_an_estimator")
    assert "not_an_estimator() returned {'model': 'GradientBoostingRegressor'}" in message
    assert "not a scikit-learn estimator" in message


def test_a_regressor_for_a_classification_task(rows):
    message = refusal(rows, "testkit.estimators:gradient_boosting_regressor", BINARY, ("short", "long"),
                      (rows.hours[:TRAIN_ROWS] > 4).astype(np.int64))
    assert "returned GradientBoostingRegressor(" in message
    assert "not a classifier, as the task (binary classification) needs" in message


def test_a_classifier_for_a_regression_task(rows):
    message = refusal(rows, "testkit.estimators:scaled_logistic_regression")
    assert "returned Pipeline(" in message and "not a regressor, as the task (regression) needs" in message


def test_an_estimator_skl2onnx_cannot_convert_is_refused_naming_it_and_the_versions(rows):
    message = refusal(rows, "testkit.estimators:hist_gradient_boosting_regressor")
    assert message.startswith("skl2onnx cannot convert HistGradientBoostingRegressor(max_iter=20, random_state=")
    assert f"skl2onnx {metadata.version('skl2onnx')} and scikit-learn {metadata.version('scikit-learn')}" in message
    assert "Expected an int, got a boolean" in message  # the underlying error
    assert len(message) < 1500 and "\n" not in message  # not the megabyte of node attributes skl2onnx reports


@pytest.mark.parametrize("choice", ["gbt", "testkit.estimators:scaled_logistic_regression"])
def test_a_classifier_needs_two_classes_in_its_rows(rows, choice):
    one_class = np.zeros(TRAIN_ROWS, dtype=np.int64)
    assert "hold 1 class (['short']): a classifier needs at least 2" in refusal(
        rows, choice, BINARY, ("short", "long"), one_class)


def test_every_class_label_needs_training_rows(rows):
    # A missing class would shift the indices of the classes after it.
    two_of_three = (rows.hours[:TRAIN_ROWS] > 4).astype(np.int64) * 2  # classes 0 and 2, no 1
    assert "no training row has class(es) ['medium']" in refusal(rows, "gbt", MULTICLASS,
                                                                  ("short", "medium", "long"), two_of_three)


@pytest.mark.parametrize(("task", "class_labels", "labels", "expected"), [
    (BINARY, ("short", "medium", "long"), np.arange(TRAIN_ROWS) % 3, "binary classification with 3 class label(s)"),
    (MULTICLASS, ("all",), np.zeros(TRAIN_ROWS), "multiclass classification with 1 class label(s)"),
    (BINARY, ("short", "long"), np.arange(TRAIN_ROWS) % 3, "class indices 0..1"),
    (BINARY, ("short", "long"), (np.arange(TRAIN_ROWS) % 2) - 0.5, "class indices 0..1"),
    (REGRESSION, (), np.full(TRAIN_ROWS, np.nan), "NaN or an infinity"),
    (serving_config_pb2.TASK_UNSPECIFIED, (), np.zeros(TRAIN_ROWS), "task 0 is not regression"),
])
def test_labels_that_cannot_train_the_task(rows, task, class_labels, labels, expected):
    assert expected in refusal(rows, "gbt", task, class_labels, labels)


def test_rows_that_do_not_match_the_features(rows):
    assert "expected [rows >= 1, 17 features]" in refusal(rows, "gbt", matrix=rows.matrix[:TRAIN_ROWS, :16])
    assert "expected [rows >= 1, 17 features]" in refusal(rows, "gbt", labels=rows.hours[:10])


@pytest.mark.parametrize(("choice", "module"), [("gbt", "lightgbm"), ("gbt", "onnxmltools"),
                                                ("testkit.estimators:scaled_logistic_regression", "skl2onnx")])
def test_a_missing_models_extra_names_it(rows, monkeypatch, choice, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import <module>` now raises ImportError
    message = refusal(rows, choice, BINARY, ("short", "long"), (rows.hours[:TRAIN_ROWS] > 4).astype(np.int64))
    assert "pip install 'absenteeism-serving[models]'" in message and module in message


def test_importing_the_learners_loads_none_of_the_models_extra():
    code = ("import sys, etl_job.learners\n"
            "print(sorted(m for m in ('lightgbm', 'sklearn', 'skl2onnx', 'onnxmltools') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr
