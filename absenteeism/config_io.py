"""ServingConfig I/O: seal (content digest), write atomically, read, and verify.

A server never serves with a config it cannot verify: every check below raises ConfigError with a
message that says what is wrong and how to fix it.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from absenteeism import data_sets, dataflow, parity, profile_bins
from absenteeism.dataset import atomic
from absenteeism.online import converters
from absenteeism.v1 import serving_config_pb2

if TYPE_CHECKING:
    from absenteeism.online.predictor import Predictor

ServingConfig = serving_config_pb2.ServingConfig

FORMAT_VERSION = 1
ONNX_FORMAT_VERSION = 2  # a config whose model is an ONNX graph: older releases refuse it
CONFIG_FILE = "serving_config.pb"
CONFIG_JSON_FILE = "serving_config.json"
# A config of today's feature module is about 50 KiB; the cap leaves room for models shipped as data.
MAX_CONFIG_BYTES = 256 * 1024 * 1024


class ConfigError(Exception):
    """The config cannot be used; the message says why and what to do."""


def content_digest(config: ServingConfig) -> str:
    """sha256 of the deterministic serialization with content_sha256 cleared."""
    unsealed = ServingConfig()
    unsealed.CopyFrom(config)
    unsealed.ClearField("content_sha256")
    return hashlib.sha256(unsealed.SerializeToString(deterministic=True)).hexdigest()


def seal(config: ServingConfig) -> ServingConfig:
    config.content_sha256 = content_digest(config)
    return config


def code_fingerprint() -> serving_config_pb2.CodeFingerprint:
    """sha256 of the source of the active data set's feature module and raw table."""
    data_set = data_sets.active()
    return serving_config_pb2.CodeFingerprint(
        feature_module_sha256=_source_sha256(data_set.features),
        raw_schema_sha256=_source_sha256(data_set.table_module),
    )


def _source_sha256(module) -> str:
    source = inspect.getsourcefile(module)
    if source is None:
        raise RuntimeError(f"the source file of {module.__name__} is not found: no code fingerprint")
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()


def to_json(config: ServingConfig) -> str:
    return json_format.MessageToJson(config, preserving_proto_field_name=True, indent=2) + "\n"


def write_config(config: ServingConfig, output_dir: Path) -> Path:
    """Writes the binary config and its JSON view, each atomically; returns the binary's path."""
    path = Path(output_dir) / CONFIG_FILE
    atomic.write_bytes(path, config.SerializeToString(deterministic=True))
    atomic.write_text(Path(output_dir) / CONFIG_JSON_FILE, to_json(config))
    return path


def read_config(path: Path) -> ServingConfig:
    return parse_config(read_config_bytes(path), path)


def read_config_bytes(path: Path) -> bytes:
    """The file's bytes; ConfigError naming the file and the problem when it cannot be read. Only a
    regular file of at most MAX_CONFIG_BYTES is read: a FIFO would block the reader (non-blocking
    open, then fstat, so opening one does not wait for a writer) and a device never ends."""
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(descriptor, "rb") as stream:
            status = os.fstat(stream.fileno())
            if stat.S_ISDIR(status.st_mode):
                raise IsADirectoryError
            if not stat.S_ISREG(status.st_mode):
                raise ConfigError(f"config file {path} is not a regular file ({_file_kind(status.st_mode)}): "
                                  "pass the serving_config.pb file the ETL job wrote")
            if status.st_size > MAX_CONFIG_BYTES:
                raise ConfigError(f"config file {path} holds {status.st_size} bytes, more than the "
                                  f"{MAX_CONFIG_BYTES} a config may hold: it is not a ServingConfig the ETL job wrote")
            data = stream.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:  # grown while read
            raise ConfigError(f"config file {path} grew past {MAX_CONFIG_BYTES} bytes while it was read")
        return data
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist: run the ETL job (python -m etl_job run) "
                          "to build it") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory: pass the path of the serving_config.pb "
                          "file the ETL job wrote in it") from None
    except PermissionError:
        raise ConfigError(f"config file {path} cannot be read: permission denied for uid {os.geteuid()}; "
                          "make it (and its folders) readable by the server's user") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror or error}") from None


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def parse_config(data: bytes, path: Path) -> ServingConfig:
    """Parses the bytes read from `path` (named in the messages)."""
    if not data:
        raise ConfigError(f"config file {path} is empty: rerun the ETL job to rebuild it")
    config = ServingConfig()
    try:
        config.ParseFromString(data)
    except DecodeError as error:
        raise ConfigError(f"config file {path} is not a valid ServingConfig ({error}): it is truncated or "
                          "corrupted; rerun the ETL job to rebuild it") from None
    return config


def verify_config(config: ServingConfig, predictor: Predictor | None = None) -> None:
    """Raises ConfigError unless `config` is intact, built by this code, and (when `predictor` is
    given) reproduces its golden rows bit for bit through it."""
    if config.format_version not in (FORMAT_VERSION, ONNX_FORMAT_VERSION):
        raise ConfigError(f"config format version {config.format_version} is not a supported version "
                          f"({FORMAT_VERSION} or {ONNX_FORMAT_VERSION}): rerun the ETL job with this release")
    if not config.content_sha256 or config.content_sha256 != content_digest(config):
        raise ConfigError("config content does not match its recorded digest (content_sha256): the file is "
                          "corrupted or was edited; rerun the ETL job to rebuild it")
    built_for, running_set = data_sets.of_config_name(config.dataset), data_sets.active().name
    if built_for != running_set:
        raise ConfigError(f"config was built for data set {built_for!r}, not {running_set!r}")
    running, recorded = code_fingerprint(), config.provenance.code
    if recorded.feature_module_sha256 != running.feature_module_sha256:
        raise ConfigError("config was built with a different feature module: rerun the ETL job")
    if recorded.raw_schema_sha256 != running.raw_schema_sha256:
        raise ConfigError("config was built with a different raw schema: rerun the ETL job")
    if tuple(config.feature_names) != dataflow.model_features():
        raise ConfigError(f"config feature list {list(config.feature_names)} differs from this code's "
                          f"{list(dataflow.model_features())}: rerun the ETL job")
    _verify_statistics(config.statistics)
    _verify_model(config)
    if config.HasField("profile"):  # configs of earlier releases have none: served, without a drift report
        try:
            profile_bins.from_message(config.profile)
        except profile_bins.ProfileError as error:
            raise ConfigError(f"config {error}: rerun the ETL job") from None
    if predictor is not None:
        verify_golden_rows(config, predictor)


def _verify_statistics(statistics: serving_config_pb2.AggregateStatistics) -> None:
    if statistics.row_count == 0:
        raise ConfigError("config has no aggregate statistics: rerun the ETL job")
    names = dataflow.aggregate_names()
    if names and not statistics.values:
        raise ConfigError("config carries its aggregates in the format of an earlier release (not by name): "
                          "rebuild the config with this release (rerun the ETL job)")
    missing = sorted(set(names) - set(statistics.values))
    if missing:
        raise ConfigError(f"config lacks the aggregates {missing} of this feature module: rerun the ETL job")
    for name in names:
        carried = statistics.values[name]
        values = carried.vector.values if carried.WhichOneof("kind") == "vector" else [carried.scalar]
        if not all(math.isfinite(v) for v in values):
            raise ConfigError(f"config aggregate {name} is not finite: rerun the ETL job")


def _verify_model(config: ServingConfig) -> None:
    has_graph = config.HasField("onnx_model")
    if has_graph == config.HasField("model") or has_graph != (config.format_version == ONNX_FORMAT_VERSION):
        raise ConfigError("config must carry one model: a linear model (format version 1) or an ONNX graph "
                          "(format version 2): rerun the ETL job")
    if has_graph:
        from absenteeism import onnx_checks  # onnx and onnxruntime load only for a config that needs them

        try:
            onnx_checks.check_model(config.onnx_model, len(config.feature_names))
        except onnx_checks.ModelRefused as error:
            raise ConfigError(f"config model refused: {error}") from None
        return
    model = config.model
    if len(model.coefficients) != len(config.feature_names):
        raise ConfigError(f"config model has {len(model.coefficients)} coefficients for "
                          f"{len(config.feature_names)} features: rerun the ETL job")
    if not all(math.isfinite(v) for v in (model.intercept, *model.coefficients)):
        raise ConfigError("config model has a parameter that is not finite (intercept or a coefficient): "
                          "rerun the ETL job")


def verify_golden_rows(config: ServingConfig, predictor: Predictor) -> None:
    if not config.golden_rows:
        raise ConfigError("config carries no golden rows to self-test with: rerun the ETL job")
    try:
        result = predictor.predict(converters.golden_records(config))
    except Exception as error:  # noqa: BLE001 - whatever the reason, this config cannot be served
        raise ConfigError(f"the golden rows cannot be computed with this config ({type(error).__name__}: "
                          f"{error}): code and config disagree; rerun the ETL job") from None
    feature_matrix, predictions = result.features, result.predictions
    for i, row in enumerate(config.golden_rows):
        expected = np.asarray(row.features, dtype=np.float64)
        if expected.shape != feature_matrix[i].shape:
            differing = list(config.feature_names)
        else:
            differing = [name for name, differs in zip(config.feature_names,
                                                       parity.bits_differ(feature_matrix[i], expected)) if differs]
        if differing:
            raise ConfigError(f"golden row {i} gives features {differing} that differ "
                              "from the ones the ETL job recorded: code and config disagree; rerun the ETL job")
        if parity.bits_differ(predictions[i], row.prediction).any():
            raise ConfigError(f"golden row {i} predicts {float(predictions[i])!r}, the ETL "
                              f"job recorded {row.prediction!r}: code and config disagree; rerun the ETL job")
        got = result.probabilities[i] if result.probabilities is not None else np.empty(0)
        expected = np.asarray(row.probabilities, dtype=np.float64)
        if got.shape != expected.shape or parity.bits_differ(got, expected).any():
            raise ConfigError(f"golden row {i} gives class probabilities {got.tolist()}, the ETL job recorded "
                              f"{expected.tolist()}: the model runs differently here (another ONNX Runtime "
                              "version or session options?); rerun the ETL job")
