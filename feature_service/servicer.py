"""PredictionService: convert, delegate to the predictor, let errors.py map failures to status codes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import grpc
import numpy as np

from absenteeism import raw_schema
from absenteeism.online.predictor import Predictor, predict_valid
from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import prediction_service_pb2_grpc, serving_config_pb2
from feature_service import drift as drift_module
from feature_service import errors, streaming
from feature_service.metrics import Metrics

# Most stream requests predicted together (those already received; see streaming.py).
STREAM_BATCH = 256


def _check_deadline(context: grpc.ServicerContext) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise errors.DeadlineExceeded()


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, config: serving_config_pb2.ServingConfig, predictor: Predictor, *,
                 max_batch: int = 10_000, metrics: Metrics | None = None, drift: drift_module.Monitor | None = None):
        self._config = config
        self._drift = drift or drift_module.Unmonitored("drift monitoring is off")
        self._predictor = predictor
        self._max_batch = max_batch
        self._metrics = metrics or Metrics()
        self._config_id = config.content_sha256
        self._feature_names = list(config.feature_names)

    def on_violations(self, violations: Sequence[raw_schema.Violation]) -> None:
        self._metrics.record_violations(violations)

    def _response(self, features: np.ndarray, prediction: float, include_features: bool) -> pb.PredictResponse:
        response = pb.PredictResponse(prediction=float(prediction), config_id=self._config_id)
        if include_features:
            response.features.extend(pb.FeatureValue(name=name, value=float(value))
                                     for name, value in zip(self._feature_names, features))
        return response

    @errors.unary_boundary(errors.single_record_field)
    def Predict(self, request: pb.PredictRequest, context: grpc.ServicerContext) -> pb.PredictResponse:
        _check_deadline(context)
        result = self._predictor.predict([request.record])
        return self._response(result.features[0], result.predictions[0], request.include_features)

    @errors.unary_boundary(errors.batch_record_field)
    def PredictBatch(self, request: pb.PredictBatchRequest, context: grpc.ServicerContext) -> pb.PredictBatchResponse:
        size = len(request.records)
        self._metrics.batch_size.observe(size)
        if size > self._max_batch:
            raise errors.BatchTooLarge(size, self._max_batch)
        _check_deadline(context)
        response = pb.PredictBatchResponse(config_id=self._config_id)
        if size == 0:
            return response
        result = self._predictor.predict(request.records)  # the repeated field is a sequence: no copy
        response.predictions.extend(result.predictions.tolist())
        if request.include_features:
            response.feature_names.extend(self._feature_names)
            response.feature_values.extend(result.features.ravel(order="C").tolist())
        return response

    @errors.stream_boundary
    def PredictStream(self, request_iterator: Iterable[pb.PredictStreamRequest],
                      context: grpc.ServicerContext) -> Iterator[pb.PredictStreamResponse]:
        try:
            for batch in streaming.micro_batches(request_iterator, min(self._max_batch, STREAM_BATCH),
                                                 context.is_active):
                if not context.is_active():
                    return
                yield from self._stream_responses(batch)
        except Exception:
            if context.is_active():
                raise  # to the boundary
            # the caller went away (cancelled, deadline): nothing to answer

    def _stream_responses(self, batch: Sequence[pb.PredictStreamRequest]) -> Iterator[pb.PredictStreamResponse]:
        """One response per request, in order; invalid records get their RecordError."""
        outcome = predict_valid(self._predictor, [request.record for request in batch])
        for violations in outcome.invalid.values():
            self.on_violations(violations)
        position = {row: k for k, row in enumerate(outcome.valid)}
        self._metrics.stream_messages.labels(outcome="predicted").inc(len(outcome.valid))
        self._metrics.stream_messages.labels(outcome="rejected").inc(len(outcome.invalid))
        for i, request in enumerate(batch):
            if i in outcome.invalid:
                yield pb.PredictStreamResponse(error=errors.record_error(outcome.invalid[i]))
            else:
                k = position[i]
                yield pb.PredictStreamResponse(prediction=self._response(
                    outcome.result.features[k], outcome.result.predictions[k], request.include_features))

    @errors.unary_boundary(errors.single_record_field)
    def GetServingConfig(self, request: pb.GetServingConfigRequest,
                         context: grpc.ServicerContext) -> pb.GetServingConfigResponse:
        return pb.GetServingConfigResponse(config=self._config)

    @errors.unary_boundary(errors.single_record_field)
    def GetDriftReport(self, request: pb.GetDriftReportRequest,
                       context: grpc.ServicerContext) -> pb.GetDriftReportResponse:
        return self._drift.report().response()
