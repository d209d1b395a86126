"""The model of a ServingConfig as the job and the server both run it: a LinearModel, or an ONNX
graph in ONNX Runtime with one intra-op thread. The same config gives the same `ServedModel`, so
the training set's predictions and the server's answers come from the same code, the same graph
and the same session options: the same bits.

Why one thread: ONNX Runtime splits a tree ensemble's sum over threads differently for a batch
than for one row, so with its default threading one record alone and the same record in a batch
differ in their last bits. Processes (`--processes`, the Dask workers) use the cores instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from absenteeism.model import predict_linear
from absenteeism.v1 import serving_config_pb2

REGRESSION = serving_config_pb2.TASK_REGRESSION
PREDICTION = "prediction"
CLASSIFIERS = (serving_config_pb2.TASK_BINARY_CLASSIFICATION, serving_config_pb2.TASK_MULTICLASS_CLASSIFICATION)


@dataclass(frozen=True)
class ModelOutputs:
    """A model's answer for a batch: the prediction per row (a classifier's: the predicted class's
    index), and a classifier's class probabilities (rows x classes), both float64."""

    predictions: np.ndarray
    probabilities: np.ndarray | None = None


class ModelOutputError(ValueError):
    """The model answered something no caller may receive (a NaN, a class index out of range)."""


class ServedModel:
    """Features (rows x model features, float64) in, ModelOutputs out."""

    task: int = REGRESSION
    class_labels: tuple[str, ...] = ()

    @property
    def is_classifier(self) -> bool:
        return self.task in CLASSIFIERS

    def predict(self, matrix: np.ndarray) -> ModelOutputs:
        raise NotImplementedError


class LinearServedModel(ServedModel):
    def __init__(self, model: serving_config_pb2.LinearModel):
        self.intercept = model.intercept
        self.coefficients = tuple(model.coefficients)

    def predict(self, matrix: np.ndarray) -> ModelOutputs:
        return ModelOutputs(predict_linear(self.intercept, self.coefficients, matrix))


class OnnxServedModel(ServedModel):
    """An OnnxModel checked (absenteeism.onnx_checks) and loaded into a one-thread session."""

    def __init__(self, model: serving_config_pb2.OnnxModel, feature_count: int):
        from absenteeism import onnx_checks  # onnx and onnxruntime load only for a config that needs them

        onnx_checks.check_model(model, feature_count)
        self.message = model
        self.feature_count = feature_count
        self.task = model.task
        self.class_labels = tuple(model.class_labels)
        self.input_name = model.input_name
        self.input_dtype = np.float32 if model.input_element_type == "float" else np.float64
        self.output_names = [model.prediction_output] + ([model.probability_output] if self.is_classifier else [])

    def __reduce__(self):
        # Rebuilt (and checked again) where it is unpickled: a session does not travel (Dask workers).
        return type(self), (self.message, self.feature_count)

    @cached_property
    def session(self):
        """Built on first use: a process forked from one holding a session would share its pools."""
        from absenteeism import onnx_checks

        return onnx_checks.session(self.message.graph)

    def predict(self, matrix: np.ndarray) -> ModelOutputs:
        features = matrix.astype(self.input_dtype)
        if len(features) == 1:
            # ONNX Runtime multiplies a one-row matrix with another kernel than a matrix of several
            # rows (a matrix-vector product, which sums in another order): a linear model's or a
            # scaler's answer for a row alone then differs in its last bits from the same row's in a
            # batch. A lone row goes in twice, so that it takes the kernel of any batch.
            features = np.repeat(features, 2, axis=0)
        outputs = self.session.run(self.output_names, {self.input_name: features})
        predictions = np.asarray(outputs[0]).reshape(len(features))[:len(matrix)].astype(np.float64)
        if not self.is_classifier:
            if not np.isfinite(predictions).all():
                raise ModelOutputError(f"the model's output {self.output_names[0]!r} holds a NaN or an infinity "
                                       f"(row {int(np.flatnonzero(~np.isfinite(predictions))[0])} of {len(matrix)})")
            return ModelOutputs(predictions)
        probabilities = np.asarray(outputs[1], dtype=np.float64).reshape(len(features), len(self.class_labels))
        probabilities = probabilities[:len(matrix)]
        if not np.isfinite(probabilities).all():
            raise ModelOutputError(f"the model's output {self.output_names[1]!r} holds a NaN or an infinity")
        if len(predictions) and (predictions.min() < 0 or predictions.max() >= len(self.class_labels)):
            raise ModelOutputError(f"the model's output {self.output_names[0]!r} holds a class index outside "
                                   f"0..{len(self.class_labels) - 1}")
        return ModelOutputs(predictions, probabilities)


def served_model(config: serving_config_pb2.ServingConfig) -> ServedModel:
    """The config's model, ready to predict; onnx_checks.ModelRefused for a graph it refuses."""
    if config.HasField("onnx_model"):
        return OnnxServedModel(config.onnx_model, len(config.feature_names))
    return LinearServedModel(config.model)


def output_names(model: ServedModel) -> list[str]:
    """What a model answers, by name: "prediction", then a classifier's "probability[<label>]"s. The
    training set's columns, the profile's and the drift report's entries, the parity check's columns."""
    return [PREDICTION, *(probability_name(label) for label in model.class_labels)]


def output_columns(outputs: ModelOutputs) -> list[np.ndarray]:
    """The columns of `outputs` in output_names order."""
    if outputs.probabilities is None:
        return [outputs.predictions]
    return [outputs.predictions, *outputs.probabilities.T]


def probability_name(class_label: str) -> str:
    return f"probability[{class_label}]"
