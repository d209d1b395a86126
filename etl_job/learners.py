"""The learners beyond ridge: a model choice and the training rows in, a fitted model out as a
serving_config_pb2.OnnxModel that absenteeism.served_model runs (offline and online alike).

  gbt                       LightGBM's gradient-boosted trees, converted by onnxmltools
  package.module:function   the function's unfitted scikit-learn estimator, converted by skl2onnx

(ridge is fitted from sufficient statistics in etl_job.ridge; it is accepted here as a choice only.)

The libraries are the optional [models] extra, so they are imported inside the functions: the job's
ridge runs and the server never load them. Nothing leaves fit_onnx_model unless
absenteeism.onnx_checks accepts it, and every failure is a LearnerError naming what to change.
"""

from __future__ import annotations

import importlib
import keyword
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np

from absenteeism.v1 import serving_config_pb2

INSTALL_HINT = "pip install 'absenteeism-serving[models]'"
CHOICES = "'ridge', 'gbt' or 'package.module:function' (a dotted module path, a colon, a function name)"
INPUT_NAME = "features"
# ai.onnx opset 15 for both converters: onnxmltools' LightGBM converter goes no higher, and one
# opset for every graph means one set of operator versions to trust in the pinned runtime.
# skl2onnx takes the ai.onnx.ml version as a ceiling and writes the lowest its operators need.
OPSET = 15
SKLEARN_OPSETS = {"": OPSET, "ai.onnx.ml": 3}
SEED = 20120713  # the job's split seed (training.FitSettings.seed), for the learners' own draws
# LightGBM's settings for --model gbt. Determinism first: with deterministic, force_row_wise, one
# thread and a fixed seed, the same rows in the same order give the same trees, hence the same
# graph bytes. The rest are conservative tabular defaults: 100 trees of at most 15 leaves at 0.05,
# smaller than LightGBM's own (31 leaves at 0.1), because deeper, faster-learning trees overfit a
# few hundred rows: on the real data set's held-out rows 300 trees of 31 leaves lost to the
# predict-the-class-shares baseline (log loss 0.396 against 0.302) where these beat it (0.244) and
# beat ridge on the hours (MAE 5.76 against 6.10). Tune them with --model package.module:function.
# Each tree costs one histogram pass over the rows (17 features bin into at most 255 values each),
# so time grows linearly with the rows (10M rows: docs/etl.md).
# No bagging or column sampling: nothing to draw, nothing to tune. "gain" importances say how much
# each feature reduced the loss; LightGBM's default ("split", a count of splits) favours the one
# continuous feature, which has many more places to split than a 0/1 flag.
GBT_SETTINGS: dict[str, Any] = {
    "n_estimators": 100,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 20,
    "importance_type": "gain",
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,  # the job's processes (--processes, Dask workers) use the cores instead
    "random_state": SEED,
    "verbose": -1,  # LightGBM's own log lines ("no further splits ...") are not the job's output
}
TASK_NAMES: dict[int, str] = {
    serving_config_pb2.TASK_REGRESSION: "regression",
    serving_config_pb2.TASK_BINARY_CLASSIFICATION: "binary classification",
    serving_config_pb2.TASK_MULTICLASS_CLASSIFICATION: "multiclass classification",
}


class LearnerError(ValueError):
    """The model choice cannot give a servable model; the message says why and what to change."""


def missing(choice: str) -> str | None:
    """Why this install cannot fit `choice` (its libraries are the optional [models] extra), or None."""
    needed = ("lightgbm", "onnxmltools") if choice == "gbt" else ("sklearn", "skl2onnx")
    for name in needed:
        try:
            importlib.import_module(name)
        except ImportError as error:
            return f"--model {choice} needs {name}, which is not installed ({error}): {INSTALL_HINT}"
    return None


def parse_model_choice(text: str) -> str:
    """`text` if it names a learner: "ridge", "gbt", or "package.module:function"."""
    if text in ("ridge", "gbt"):
        return text
    module, colon, function = text.partition(":")
    names = [*module.split("."), function]
    if colon and all(name.isidentifier() and not keyword.iskeyword(name) for name in names):
        return text
    raise LearnerError(f"model choice {text!r} is not one of {CHOICES}, e.g. 'my_models.trees:make_forest'")


def fit_onnx_model(choice: str, task: int, class_labels: Sequence[str], train_matrix: np.ndarray,
                   train_labels: np.ndarray, feature_names: Sequence[str]) -> serving_config_pb2.OnnxModel:
    """Fits `choice` ("gbt" or "package.module:function") on the training rows and converts it.

    train_matrix: float32 (the engines gather it so) or float64 rows x features, in `feature_names` order. train_labels: the values
    (regression), or the class indices 0..K-1 naming `class_labels` (classification)."""
    if parse_model_choice(choice) == "ridge":
        raise LearnerError("ridge is fitted by etl_job.ridge, not converted to ONNX")
    matrix, labels = training_rows(task, class_labels, train_matrix, train_labels, feature_names)
    if choice == "gbt":
        kind, estimator = "gbt", gbt_estimator(task)
    else:
        kind, estimator = "estimator", user_estimator(choice, task)
    description = describe(estimator)
    try:
        estimator.fit(matrix, labels)
    except Exception as error:  # noqa: BLE001 - the user's estimator may raise anything
        raise LearnerError(f"fitting {description} failed: {type(error).__name__}: {first_line(error)}") from None
    graph = to_onnx_gbt(estimator, len(feature_names)) if kind == "gbt" else to_onnx_sklearn(estimator, task,
                                                                                            len(feature_names))
    prediction_output, probability_output = output_names(graph, task, description)
    message = serving_config_pb2.OnnxModel(
        kind=kind, graph=graph_bytes(graph), input_name=INPUT_NAME, input_element_type="float",
        prediction_output=prediction_output, probability_output=probability_output,
        class_labels=list(class_labels) if task != serving_config_pb2.TASK_REGRESSION else [],
        description=description, feature_importances=importances(estimator, len(feature_names)))
    message.task = task  # type: ignore[assignment]  # an int checked against the Task values above
    # Imported here: onnxruntime writes a file into $TMPDIR when it loads, which a ridge run need not.
    from absenteeism import onnx_checks

    try:
        onnx_checks.check_model(message, len(feature_names))
    except onnx_checks.ModelRefused as error:
        raise LearnerError(f"the converted {description} cannot be served: {error}") from None
    return message


def training_rows(task: int, class_labels: Sequence[str], train_matrix: np.ndarray, train_labels: np.ndarray,
                  feature_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The rows as the learners fit them: the matrix in float32, the values the float32 graph will
    see (a split threshold between two float64 values that round to one float32 would be lost), and
    the labels as float64 values or int64 class indices. Refuses what cannot train a servable model
    before the fit, which may take minutes."""
    if task not in TASK_NAMES:
        raise LearnerError(f"task {task} is not regression, binary or multiclass classification")
    matrix, labels = np.asarray(train_matrix), np.asarray(train_labels)
    if matrix.ndim != 2 or matrix.shape[1] != len(feature_names) or len(labels) != len(matrix) or not len(matrix):
        raise LearnerError(f"the training rows are {matrix.shape} with {labels.shape} labels: expected "
                           f"[rows >= 1, {len(feature_names)} features] and one label per row")
    if task == serving_config_pb2.TASK_REGRESSION:
        labels = labels.astype(np.float64)
        if not np.isfinite(labels).all():
            raise LearnerError("the training labels hold a NaN or an infinity")
        return matrix.astype(np.float32, copy=False), labels
    classes = len(class_labels)
    if classes < 2 or (task == serving_config_pb2.TASK_BINARY_CLASSIFICATION and classes != 2):
        raise LearnerError(f"{TASK_NAMES[task]} with {classes} class label(s) {list(class_labels)}")
    indices = labels.astype(np.int64)
    if not np.array_equal(indices, labels) or indices.min() < 0 or indices.max() >= classes:
        raise LearnerError(f"classification labels must be class indices 0..{classes - 1}")
    # The fitted classes_ must be exactly 0..K-1, for the graph's label output to be the index
    # into class_labels: a class with no training row would shift every index after it.
    present = np.unique(indices)
    if len(present) < 2:
        raise LearnerError(f"the training rows hold {len(present)} class ({[class_labels[i] for i in present]}): "
                           "a classifier needs at least 2")
    if len(present) != classes:
        missing = sorted(set(range(classes)) - set(present.tolist()))
        raise LearnerError(f"no training row has class(es) {[class_labels[i] for i in missing]}: "
                           "every class label needs training rows")
    return matrix.astype(np.float32, copy=False), indices


def gbt_estimator(task: int) -> Any:
    """The unfitted LightGBM estimator of --model gbt for `task`."""
    try:
        import lightgbm
    except ImportError as error:
        raise LearnerError(f"--model gbt needs LightGBM, which is not installed ({error}): {INSTALL_HINT}") from None
    if task == serving_config_pb2.TASK_REGRESSION:
        return lightgbm.LGBMRegressor(**GBT_SETTINGS)
    return lightgbm.LGBMClassifier(**GBT_SETTINGS)


def user_estimator(choice: str, task: int) -> Any:
    """What `package.module:function` returns when called, if it is an estimator for `task`,
    with any random_state it leaves unset fixed to SEED."""
    base = sklearn_base()
    module_name, _, function_name = choice.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and (module_name + ".").startswith(error.name + "."):  # the module itself, or its package
            raise LearnerError(f"--model {choice}: no module named {module_name!r} (is its folder on "
                               "PYTHONPATH, or its package installed?)") from None
        raise LearnerError(f"--model {choice}: importing {module_name!r} failed: {error}") from None
    except Exception as error:  # noqa: BLE001 - a module's import runs its code, which may raise anything
        raise LearnerError(f"--model {choice}: importing {module_name!r} failed: "
                           f"{type(error).__name__}: {first_line(error)}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise LearnerError(f"--model {choice}: module {module_name!r} has no function {function_name!r}")
    try:
        estimator = function()
    except Exception as error:  # noqa: BLE001 - the user's code
        raise LearnerError(f"--model {choice}: {function_name}() failed: "
                           f"{type(error).__name__}: {first_line(error)}") from None
    what = f"--model {choice}: {function_name}() returned {describe(estimator)}"
    if not all(callable(getattr(estimator, method, None)) for method in ("fit", "predict", "get_params")):
        raise LearnerError(f"{what}, not a scikit-learn estimator (fit, predict, get_params): return an "
                           "unfitted estimator or Pipeline")
    wanted = base.is_regressor if task == serving_config_pb2.TASK_REGRESSION else base.is_classifier
    try:
        fits_task = wanted(estimator)
    except AttributeError:  # scikit-learn reads the estimator's type from __sklearn_tags__
        raise LearnerError(f"{what}, not a scikit-learn estimator (it has no __sklearn_tags__: derive it from "
                           "sklearn.base.BaseEstimator)") from None
    if not fits_task:
        article = "a regressor" if task == serving_config_pb2.TASK_REGRESSION else "a classifier"
        raise LearnerError(f"{what}, which is not {article}, as the task ({TASK_NAMES[task]}) needs")
    # An estimator left to draw its own seed (random_state=None) would give another model from the
    # same rows at each run; the job promises the same config for the same input.
    unset = {name: SEED for name, value in estimator.get_params(deep=True).items()
             if name.split("__")[-1] == "random_state" and value is None}
    estimator.set_params(**unset)
    return estimator


def sklearn_base() -> Any:
    try:
        from sklearn import base
    except ImportError as error:
        raise LearnerError(f"--model package.module:function needs scikit-learn, which is not installed "
                           f"({error}): {INSTALL_HINT}") from None
    return base


def to_onnx_gbt(estimator: Any, feature_count: int) -> Any:
    """The fitted LightGBM estimator as an onnx.ModelProto taking [rows, feature_count] float32."""
    import onnx

    try:
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as error:
        raise LearnerError(f"--model gbt needs onnxmltools, which is not installed ({error}): {INSTALL_HINT}") from None
    try:
        # zipmap=False: a classifier's probabilities as a [rows, classes] tensor, not a list of maps
        # a name: onnxmltools names the graph with a random uuid otherwise
        graph = onnxmltools.convert_lightgbm(estimator, name=type(estimator).__name__, zipmap=False,
                                             initial_types=[(INPUT_NAME, FloatTensorType([None, feature_count]))],
                                             target_opset=OPSET)
    except Exception as error:  # noqa: BLE001 - converters raise anything, with messages up to megabytes long
        raise conversion_error(estimator, "onnxmltools", error) from None
    for output in graph.graph.output:
        tensor = output.type.tensor_type
        if tensor.elem_type == onnx.TensorProto.INT64 and [dim.dim_value for dim in tensor.shape.dim] == [1]:
            # onnxmltools declares a classifier's label output [1]; it is [rows], and ONNX Runtime
            # warns at each run of more rows that the shape differs from the declared one
            tensor.shape.dim[0].Clear()
    return graph


def to_onnx_sklearn(estimator: Any, task: int, feature_count: int) -> Any:
    """The fitted scikit-learn estimator as an onnx.ModelProto taking [rows, feature_count] float32."""
    try:
        import skl2onnx
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError as error:
        raise LearnerError(f"--model package.module:function needs skl2onnx, which is not installed ({error}): "
                           f"{INSTALL_HINT}") from None
    options = None
    if task != serving_config_pb2.TASK_REGRESSION:
        # zipmap=False (probabilities as a [rows, classes] tensor) on the classifier that makes the
        # outputs: a pipeline's final step, where skl2onnx reads it.
        options = {id(final_step(estimator)): {"zipmap": False}}
    try:
        return skl2onnx.to_onnx(estimator, initial_types=[(INPUT_NAME, FloatTensorType([None, feature_count]))],
                                target_opset=SKLEARN_OPSETS, options=options)
    except Exception as error:  # noqa: BLE001 - as in to_onnx_gbt
        raise conversion_error(estimator, "skl2onnx", error) from None


def conversion_error(estimator: Any, converter: str, error: Exception) -> LearnerError:
    libraries = (converter, "scikit-learn") if converter == "skl2onnx" else (converter, "lightgbm")
    versions = " and ".join(f"{name} {metadata.version(name)}" for name in libraries)
    cause = error.__cause__ or error.__context__
    because = f" (caused by {type(cause).__name__}: {first_line(cause)})" if cause else ""
    return LearnerError(f"{converter} cannot convert {describe(estimator)} to ONNX with {versions}: "
                        f"{type(error).__name__}: {first_line(error)}{because}. Choose another estimator, "
                        "or versions that convert it")


def graph_bytes(graph: Any) -> bytes:
    """The converted graph serialized, the same bytes for the same model in every process:
    onnxmltools lists the operator sets in the order of a Python set of (domain, version), which
    follows the process's string hash seed, so they are sorted here (in `graph` itself)."""
    import onnx

    opsets = sorted((opset.domain, opset.version) for opset in graph.opset_import)
    graph.ClearField("opset_import")
    graph.opset_import.extend(onnx.helper.make_opsetid(domain, version) for domain, version in opsets)
    return graph.SerializeToString(deterministic=True)


def output_names(graph: Any, task: int, description: str) -> tuple[str, str]:
    """(prediction output, probability output or "") of a converted graph: a regressor's one output;
    a classifier's int64 label output and its float probabilities tensor."""
    import onnx

    outputs = graph.graph.output
    if task == serving_config_pb2.TASK_REGRESSION:
        if len(outputs) != 1:
            raise LearnerError(f"the converted {description} has {len(outputs)} outputs; a regressor's has one")
        return outputs[0].name, ""
    tensors = {output.name: output.type.tensor_type.elem_type for output in outputs if output.type.HasField("tensor_type")}
    labels = [name for name, element in tensors.items() if element == onnx.TensorProto.INT64]
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
    probabilities = [name for name, element in tensors.items() if element in floats]
    if len(labels) != 1 or len(probabilities) != 1:
        raise LearnerError(f"the converted {description} has outputs {[output.name for output in outputs]}; a "
                           "classifier's are one int64 label tensor and one float probabilities tensor")
    return labels[0], probabilities[0]


def final_step(estimator: Any) -> Any:
    """The estimator that makes a (possibly nested) pipeline's outputs."""
    while hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    return estimator


def importances(estimator: Any, feature_count: int) -> list[float]:
    """The fitted estimator's feature_importances_ (a pipeline's final step's), when it has one per
    feature: a pipeline whose steps make other columns has importances of those, not of the features."""
    values = getattr(final_step(estimator), "feature_importances_", None)
    if values is None:
        return []
    values = np.asarray(values, dtype=np.float64).ravel()
    return values.tolist() if len(values) == feature_count else []


def describe(estimator: Any) -> str:
    """The estimator's repr on one line (scikit-learn's shows the settings that differ from the
    defaults, and elides past 700 characters), cut at 1,000 characters for anything else."""
    text = " ".join(repr(estimator).split())
    return text if len(text) <= 1000 else text[:999] + "…"


def first_line(error: BaseException) -> str:
    """An error's message up to its first line break, at most 300 characters: converters put whole
    attribute dumps in their messages (skl2onnx: a megabyte for a tree ensemble)."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    return text if len(text) <= 300 else text[:299] + "…"
