"""Assembles the sealed ServingConfig: the aggregates, the model, the feature list, provenance and
golden rows; the held-out evaluation and the training profile are added once the training set has
been written."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from absenteeism import aggregates, config_io, data_sets, dataflow
from absenteeism.v1 import serving_config_pb2
from etl_job import golden
from etl_job.training import Fitted

LIBRARIES = ("numpy", "pandas", "pandera", "apache-hamilton", "protobuf", "pyarrow", "grpcio")
# ...and for a model that is an ONNX graph, the runtime that computed its predictions (and the
# learners and converters that made it, when installed).
ONNX_LIBRARIES = ("onnx", "onnxruntime", "scikit-learn", "lightgbm", "skl2onnx", "onnxmltools")


@dataclass(frozen=True)
class Provenance:
    input_sha256: str
    input_files: Sequence[str]
    rows_read: int
    rows_rejected: int
    created_at: datetime


def library_versions(onnx: bool = False) -> dict[str, str]:
    versions = {name: importlib.metadata.version(name) for name in LIBRARIES}
    for name in ONNX_LIBRARIES if onnx else ():
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass  # a model packaged from a graph made elsewhere needs no learner here
    return versions


def build(fitted: Fitted, provenance: Provenance) -> serving_config_pb2.ServingConfig:
    """The sealed config without evaluation: all that the online path reads (the parity check
    runs on it)."""
    config = serving_config_pb2.ServingConfig(
        # A config whose model is a graph is refused by releases that would read it as a linear model.
        format_version=config_io.FORMAT_VERSION if fitted.onnx is None else config_io.ONNX_FORMAT_VERSION,
        feature_names=list(dataflow.model_features()),
        statistics=aggregates.to_message(fitted.aggregates, fitted.rows),
        golden_rows=golden.golden_rows(fitted.aggregates, fitted.served),
        label=fitted.settings.label_node,
        dataset=data_sets.active().name,
    )
    if fitted.onnx is not None:
        config.onnx_model.CopyFrom(fitted.onnx)
    else:
        assert fitted.linear is not None
        config.model.CopyFrom(fitted.linear)
    recorded = config.provenance
    recorded.input_sha256 = provenance.input_sha256
    recorded.input_files.extend(sorted(provenance.input_files))
    recorded.rows.read, recorded.rows.accepted = provenance.rows_read, fitted.rows
    recorded.rows.rejected = provenance.rows_rejected
    recorded.code.CopyFrom(config_io.code_fingerprint())
    recorded.library_versions.update(library_versions(onnx=fitted.onnx is not None))
    recorded.created_at.FromDatetime(provenance.created_at)
    recorded.project_version = importlib.metadata.version("absenteeism-serving")
    return config_io.seal(config)


def with_evaluation(config: serving_config_pb2.ServingConfig, fitted: Fitted, metrics: dict[str, float],
                    profile: serving_config_pb2.TrainingProfile) -> serving_config_pb2.ServingConfig:
    """`config` with the held-out metrics and the training profile, sealed again."""
    evaluated = serving_config_pb2.ServingConfig()
    evaluated.CopyFrom(config)
    evaluated.profile.CopyFrom(profile)
    settings = fitted.settings
    evaluated.evaluation.CopyFrom(serving_config_pb2.EvaluationMetrics(
        train_rows=fitted.train_rows, test_rows=fitted.test_rows, test_fraction=settings.test_fraction,
        split_seed=settings.seed, **metrics))
    return config_io.seal(evaluated)
