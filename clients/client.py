"""A small typed client: deadlines, retries with exponential backoff on UNAVAILABLE, TLS/mTLS, and
errors that name every bad field (parsed from the google.rpc.BadRequest detail)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import EllipsisType
from typing import Any, Self, TypeVar

import grpc
import numpy as np
import pandas as pd
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from absenteeism import data_sets
from absenteeism.online import converters
from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import raw_record_pb2, serving_config_pb2

RawRecord = raw_record_pb2.RawRecord
RecordLike = RawRecord | Mapping[str, Any]  # or another data set's RawRecord
T = TypeVar("T")
Timeout = float | EllipsisType | None  # per call: ... = the client's default, None = no deadline
# gRPC metadata naming a predict call (docs/grpc.md): sent when the caller gives one, else the server
# assigns one; returned in the trailing metadata (Predict, PredictBatch) or initial metadata (PredictStream).
REQUEST_ID_KEY = "x-request-id"


@dataclass(frozen=True)
class FieldViolation:
    field: str  # "record.age", "records[3].age" (unary/batch) or "age" (stream)
    description: str  # names the rule, e.g. "age: value 5 breaks rule in_range(16, 100)"
    rule: str = ""  # only the stream's RecordError carries the bare rule

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class PredictionError(Exception):
    """A call failed; `code` is the gRPC status code, `violations` the bad fields (if any)."""

    def __init__(self, code: grpc.StatusCode, message: str, violations: Sequence[FieldViolation] = ()):
        self.code = code
        self.message = message
        self.violations = list(violations)
        lines = [f"{code.name}: {message}"] + [f"  {v}" for v in self.violations]
        super().__init__("\n".join(lines))

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> PredictionError:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        message = error.details() if hasattr(error, "details") else str(error)
        violations: list[FieldViolation] = []
        try:
            status = rpc_status.from_call(error)
        except ValueError:  # inconsistent trailers: keep the plain status
            status = None
        if status is not None:
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad_request = error_details_pb2.BadRequest()
                    detail.Unpack(bad_request)
                    violations.extend(FieldViolation(v.field, v.description) for v in bad_request.field_violations)
        kind = InvalidInputError if code == grpc.StatusCode.INVALID_ARGUMENT else cls
        return kind(code, message or "", violations)


class InvalidInputError(PredictionError):
    """INVALID_ARGUMENT: the request broke the raw schema; `violations` say where and how."""


@dataclass(frozen=True)
class Prediction:
    prediction: float  # a classifier's: the index of predicted_class among its class labels
    features: dict[str, float]  # model order; empty unless include_features
    config_id: str
    predicted_class: str = ""  # a classifier's; empty for a regressor
    probabilities: dict[str, float] = field(default_factory=dict)  # a classifier's, by class label, in order
    # What the server's prediction log names this record: the call's id (Predict), `<id>/<index>` (PredictStream).
    request_id: str = ""


@dataclass(frozen=True)
class BatchPrediction:
    predictions: np.ndarray  # one per record, request order
    feature_names: tuple[str, ...]  # empty unless include_features
    features: np.ndarray | None  # (records x features) or None
    config_id: str
    class_labels: tuple[str, ...] = ()  # a classifier's; empty for a regressor
    probabilities: np.ndarray | None = None  # a classifier's (records x class_labels)
    request_id: str = ""  # the call's id: the server's prediction log names record i `<request_id>/<i>`

    @property
    def predicted_classes(self) -> list[str]:
        return [self.class_labels[int(i)] for i in self.predictions] if self.class_labels else []

    @property
    def record_ids(self) -> list[str]:
        """The id the prediction log gives each record, in request order."""
        return [f"{self.request_id}/{i}" for i in range(len(self.predictions))]


@dataclass(frozen=True)
class FeatureDrift:
    """One monitored value (raw input, feature or the prediction) compared with training by one metric."""

    name: str
    source: str  # "raw_input", "feature" or "prediction"
    metric: str  # "psi", "jensen_shannon" or "l_infinity"
    value: float
    threshold: float
    drifted: bool
    # The window's records in each bin of the value's training profile entry, in the profile's order
    # (empty from a server older than the field)
    window_counts: tuple[int, ...] = ()


@dataclass(frozen=True)
class DriftReport:
    features: list[FeatureDrift]  # as the server lists them: raw inputs, features, prediction
    window_records: int
    config_id: str
    min_records: int = 0  # the window's minimum before anything is judged (0: a server that has none)
    insufficient_data: bool = False  # fewer records than that: no entry is marked drifted

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.drifted]


@dataclass(frozen=True)
class StreamResult:
    """One response of PredictStream: a prediction, or the reasons the record was refused."""

    index: int  # position of the record in the input
    prediction: Prediction | None = None
    violations: list[FieldViolation] = field(default_factory=list)
    error_message: str = ""
    request_id: str = ""  # `<the stream's id>/<index>`: what the prediction log names this record

    @property
    def ok(self) -> bool:
        return self.prediction is not None


@dataclass(frozen=True)
class TlsOptions:
    """root_certificates: CA that signed the server (None: system roots); client cert+key: mutual TLS."""

    root_certificates: bytes | None = None
    client_certificate: bytes | None = None
    client_key: bytes | None = None
    server_name_override: str | None = None  # when the certificate's name differs from the target host

    @classmethod
    def from_files(cls, ca: str | Path | None = None, cert: str | Path | None = None, key: str | Path | None = None,
                   server_name_override: str | None = None) -> TlsOptions:
        read = lambda p: Path(p).read_bytes() if p else None
        return cls(read(ca), read(cert), read(key), server_name_override)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.root_certificates, self.client_key, self.client_certificate)


def to_record(record: RecordLike, record_type: type = RawRecord) -> Any:
    """A RawRecord of `record_type` (a data set's RawRecord class; absenteeism's by default)."""
    if not isinstance(record, Mapping):
        return record
    # field names and value types are only known at runtime: the RawRecord constructor checks each
    values: dict[str, Any] = {name: value for name, value in record.items() if value is not None}
    return record_type(**values)


def _prediction(response: pb.PredictResponse, request_id: str = "") -> Prediction:
    return Prediction(response.prediction, {f.name: f.value for f in response.features}, response.config_id,
                      response.predicted_class, {p.class_label: p.probability for p in response.probabilities},
                      request_id)


def _metadata(request_id: str | None) -> tuple[tuple[str, str], ...] | None:
    if request_id is None:
        return None
    if not (request_id.isascii() and request_id.isprintable()):  # gRPC itself cannot send it in a header
        raise ValueError(f"request_id {request_id!r}: {REQUEST_ID_KEY} must be printable ASCII")
    return ((REQUEST_ID_KEY, request_id),)


def _request_id(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The id the server named the call with ("" from a server of a release before request ids)."""
    return next((str(value) for key, value in metadata or () if key == REQUEST_ID_KEY), "")


class PredictionClient:
    """PredictionClient("host:50051", insecure=True) or PredictionClient(target, tls=TlsOptions(...)).

    timeout: default deadline per call in seconds (a stream: for the whole stream; None = none).
    retries: extra attempts on UNAVAILABLE (at most 4), by gRPC's own retry policy (the channel's
    service config: exponential backoff from `backoff` seconds, x2 each, capped at `max_backoff`, with
    jitter); a stream is retried while nothing of it has been received. wait_for_ready: calls wait
    (within their deadline) for a server that is not up yet instead of failing at once.
    """

    def __init__(self, target: str, *, insecure: bool = False, tls: TlsOptions | None = None,
                 timeout: float | None = 10.0, stream_timeout: float | None = None, retries: int = 3,
                 backoff: float = 0.1, max_backoff: float = 5.0, max_message_bytes: int = 64 * 1024 * 1024,
                 wait_for_ready: bool = False, data_set: str = data_sets.DEFAULT):
        if insecure == (tls is not None):
            raise ValueError("pass exactly one of insecure=True or tls=TlsOptions(...)")
        if not 0 <= retries <= MAX_RETRIES:
            raise ValueError(f"retries must be in 0..{MAX_RETRIES}: gRPC's retry policy makes at most "
                             f"{MAX_RETRIES + 1} attempts (use wait_for_ready to wait for a server to come up)")
        options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # the channel's own reconnect backoff follows ours, so a retry really tries again
            ("grpc.initial_reconnect_backoff_ms", max(1, int(backoff * 1000))),
            ("grpc.max_reconnect_backoff_ms", max(1, int(max_backoff * 1000))),
            ("grpc.enable_retries", 1 if retries else 0)]
        # The data set's typed PredictionService: its requests carry its RawRecord; the answers are
        # the framework's messages, the same for every data set.
        served = data_sets.named(data_set)
        self._requests, self._record_type, self._data_set = served.service, served.records.RawRecord, served
        if retries:
            options.append(("grpc.service_config", retry_service_config(retries, backoff, max_backoff,
                                                                        served.service_name)))
        if tls is not None and tls.server_name_override:
            options.append(("grpc.ssl_target_name_override", tls.server_name_override))
        self._channel = (grpc.insecure_channel(target, options=options) if tls is None  # i.e. insecure (checked above)
                         else grpc.secure_channel(target, tls.credentials(), options=options))
        self._stub = served.service_grpc.PredictionServiceStub(self._channel)
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.wait_for_ready = wait_for_ready

    # -- lifecycle
    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- calls
    def predict(self, record: RecordLike, *, include_features: bool = False, timeout: Timeout = ...,
                request_id: str | None = None) -> Prediction:
        """request_id: what the server's prediction log names the record (None: the server assigns
        one); the returned Prediction's request_id is the one used."""
        request = self._requests.PredictRequest(record=self._record(record), include_features=include_features)
        response, call_id = self._named_call(self._stub.Predict, request, timeout, request_id)
        return _prediction(response, call_id)

    def predict_batch(self, records: Iterable[RecordLike], *, include_features: bool = False,
                      timeout: Timeout = ..., request_id: str | None = None) -> BatchPrediction:
        """request_id: the call's id (None: the server assigns one); the log names record i `<id>/<i>`."""
        request = self._requests.PredictBatchRequest(records=[self._record(r) for r in records],
                                                     include_features=include_features)
        response, call_id = self._named_call(self._stub.PredictBatch, request, timeout, request_id)
        return _batch_prediction(response, call_id)

    def predict_columns(self, records: pd.DataFrame | Sequence[RecordLike], *, include_features: bool = False,
                        timeout: Timeout = ..., request_id: str | None = None) -> BatchPrediction:
        """PredictColumns: the records sent as columns, the answers of predict_batch for a fraction of
        the server's work. `records`: a typed frame (converters.frame_to_columns: null cells unset,
        dates as their days) or records."""
        if isinstance(records, pd.DataFrame):
            columns = converters.frame_to_columns(records, self._data_set)
        else:
            columns = converters.records_to_columns([self._record(r) for r in records])
        request = pb.PredictColumnsRequest(records=columns, include_features=include_features)
        response, call_id = self._named_call(self._stub.PredictColumns, request, timeout, request_id)
        return _batch_prediction(response, call_id)

    def serving_config(self, *, timeout: Timeout = ...) -> serving_config_pb2.ServingConfig:
        return self._unary(self._stub.GetServingConfig, pb.GetServingConfigRequest(), timeout).config

    def drift_report(self, *, timeout: Timeout = ...) -> DriftReport:
        """The server's drift report (GetDriftReport); FAILED_PRECONDITION when it monitors no drift."""
        response = self._unary(self._stub.GetDriftReport, pb.GetDriftReportRequest(), timeout)
        features = [FeatureDrift(f.name, f.source, f.metric, f.value, f.threshold, f.drifted, tuple(f.window_counts))
                    for f in response.features]
        return DriftReport(features, response.window_records, response.config_id, response.min_records,
                           response.insufficient_data)

    def predict_stream(self, records: Iterable[RecordLike], *, include_features: bool = False,
                       timeout: Timeout = ..., request_id: str | None = None) -> Iterator[StreamResult]:
        """One StreamResult per record, in order; refused records carry their violations. request_id:
        the stream's id (None: the server assigns one); the log names record i `<id>/<i>`, and each
        result carries that name."""
        timeout = self.stream_timeout if timeout is ... else timeout
        requests = (self._requests.PredictStreamRequest(record=self._record(r), include_features=include_features)
                    for r in records)
        try:
            call = self._stub.PredictStream(requests, timeout=timeout, wait_for_ready=self.wait_for_ready,
                                            metadata=_metadata(request_id))
            call_id: str | None = None
            for index, response in enumerate(call):
                if call_id is None:  # sent before the first answer
                    call_id = _request_id(call.initial_metadata())
                yield self._stream_result(index, response, f"{call_id}/{index}" if call_id else "")
        except grpc.RpcError as error:
            raise PredictionError.from_rpc_error(error) from None

    @staticmethod
    def _stream_result(index: int, response: pb.PredictStreamResponse, record_id: str = "") -> StreamResult:
        if response.HasField("prediction"):
            return StreamResult(index, prediction=_prediction(response.prediction, record_id), request_id=record_id)
        violations = [FieldViolation(v.field, v.description, v.rule) for v in response.error.field_violations]
        return StreamResult(index, violations=violations, error_message=response.error.message, request_id=record_id)

    def _record(self, record: RecordLike) -> Any:
        return to_record(record, self._record_type)

    def _named_call(self, method, request, timeout: Timeout, request_id: str | None) -> tuple[Any, str]:
        """A unary predict call with its request id: (response, the id the server used)."""
        try:
            response, call = method.with_call(request, timeout=self.timeout if timeout is ... else timeout,
                                              wait_for_ready=self.wait_for_ready, metadata=_metadata(request_id))
        except grpc.RpcError as error:
            raise PredictionError.from_rpc_error(error) from None
        return response, _request_id(call.trailing_metadata())

    def _unary(self, method: Callable[..., T], request, timeout: Timeout) -> T:
        try:
            return method(request, timeout=self.timeout if timeout is ... else timeout,
                          wait_for_ready=self.wait_for_ready)
        except grpc.RpcError as error:
            raise PredictionError.from_rpc_error(error) from None


def _batch_prediction(response: Any, call_id: str) -> BatchPrediction:
    """A PredictBatchResponse or PredictColumnsResponse (the same fields) as a BatchPrediction."""
    predictions = np.asarray(response.predictions, dtype=np.float64)
    names = tuple(response.feature_names)
    matrix = (np.asarray(response.feature_values, dtype=np.float64).reshape(len(predictions), len(names))
              if names else None)
    labels = tuple(response.class_labels)
    probabilities = (np.asarray(response.probabilities, dtype=np.float64).reshape(len(predictions), len(labels))
                     if labels else None)
    return BatchPrediction(predictions, names, matrix, response.config_id, labels, probabilities, call_id)


MAX_RETRIES = 4  # gRPC's retry policy caps maxAttempts at 5


def retry_service_config(retries: int, backoff: float, max_backoff: float,
                         service: str = "absenteeism.v1.PredictionService") -> str:
    """The channel's service config: every call of `service` (a full name) retried on UNAVAILABLE."""
    return json.dumps({"methodConfig": [{
        "name": [{"service": service}],
        "retryPolicy": {"maxAttempts": retries + 1, "initialBackoff": f"{backoff:g}s",
                        "maxBackoff": f"{max_backoff:g}s", "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"]}}]})
