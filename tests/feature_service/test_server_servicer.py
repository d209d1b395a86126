"""Unit tests of the servicer with grpcio-testing: no network, real predictor, real error boundary."""

from __future__ import annotations

import grpc
import grpc_testing
import numpy as np
import pytest
from google.rpc import error_details_pb2, status_pb2

from absenteeism.online import converters
from absenteeism.online import predictor as online
from absenteeism.online.reference import ReferencePredictor
from absenteeism.v1 import prediction_service_pb2 as pb
from feature_service import predictor_registry
from feature_service.monitoring import drift_window
from feature_service.monitoring.metrics import Metrics
from feature_service.rpc import status_mapping
from feature_service.rpc.prediction_servicer import PredictionServicer
from feature_service.serving_state import Serving, ServingState
from testkit.bits import assert_same_bits

SERVICE = pb.DESCRIPTOR.services_by_name["PredictionService"]


@pytest.fixture(scope="module")
def config(trained_config):
    return trained_config.config


@pytest.fixture()
def metrics():
    return Metrics()


def make_server(config, predictor=None, max_batch=100, metrics=None):
    serving = Serving.of(config, predictor or predictor_registry.create("reference", config),
                         drift_window.Unmonitored("drift monitoring is off in these tests"))
    servicer = PredictionServicer(ServingState(serving), max_batch=max_batch, metrics=metrics)
    return grpc_testing.server_from_dictionary({SERVICE: servicer}, grpc_testing.strict_real_time())


@pytest.fixture()
def server(config, metrics):
    return make_server(config, metrics=metrics)


def unary(server, method, request, timeout=None):
    rpc = server.invoke_unary_unary(SERVICE.methods_by_name[method], (), request, timeout)
    return rpc.termination()


def bad_request(status: grpc.Status) -> list[tuple[str, str]]:
    blob = dict(status.trailing_metadata)["grpc-status-details-bin"]
    found = error_details_pb2.BadRequest()
    assert status_pb2.Status.FromString(blob).details[0].Unpack(found)
    return [(v.field, v.description) for v in found.field_violations]


def invalid(config, records) -> online.InvalidRecords:
    """The error the predictor raises for `records`. (grpcio-testing's context drops the trailers on
    abort, so the BadRequest detail is checked on status_mapping.to_status here and over the wire elsewhere.)"""
    try:
        ReferencePredictor(config).predict(records)
    except online.InvalidRecords as error:
        return error
    raise AssertionError("records are valid")


def with_field(record, **changes):
    copy = pb.PredictRequest().record.__class__()
    copy.CopyFrom(record)
    for name, value in changes.items():
        copy.ClearField(name) if value is None else setattr(copy, name, value)
    return copy


def test_predict_reproduces_golden_row_bits(server, config):
    golden = config.golden_rows[0]
    response, _, code, _ = unary(server, "Predict", pb.PredictRequest(record=golden.record, include_features=True))
    assert code == grpc.StatusCode.OK
    assert np.float64(response.prediction).tobytes() == np.float64(golden.prediction).tobytes()
    assert [f.name for f in response.features] == list(config.feature_names)
    assert np.array_equal(np.array([f.value for f in response.features]).view(np.uint64),
                          np.array(golden.features).view(np.uint64))
    assert response.config_id == config.content_sha256


def test_predict_without_features_sends_none(server, config):
    response, _, code, _ = unary(server, "Predict", pb.PredictRequest(record=config.golden_rows[0].record))
    assert code == grpc.StatusCode.OK and not response.features


@pytest.mark.parametrize("change, field, words", [
    ({"age": None}, "record.age", "required field is missing"),
    ({"age": 5}, "record.age", "in_range(16, 100)"),
    ({"day_of_the_week": 7}, "record.day_of_the_week", "isin([2, 3, 4, 5, 6])"),
])
def test_predict_invalid_field_is_invalid_argument_with_bad_request(server, config, metrics, change, field, words):
    record = with_field(config.golden_rows[0].record, **change)
    _, _, code, details = unary(server, "Predict", pb.PredictRequest(record=record))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in details and words in details
    status = status_mapping.to_status(invalid(config, [record]), "Predict", status_mapping.single_record_field)
    violations = bad_request(status)
    assert [f for f, _ in violations] == [field]
    assert words in violations[0][1]
    column = field.split(".")[1]
    assert metrics.validation_failures.labels(field=column)._value.get() == 1


def test_predict_empty_request_names_every_field(server, config):
    _, _, code, details = unary(server, "Predict", pb.PredictRequest())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "20 invalid field(s)" in details
    status = status_mapping.to_status(invalid(config, [pb.PredictRequest().record]), "Predict", status_mapping.single_record_field)
    assert len(bad_request(status)) == 20


def test_batch_is_columnar_and_matches_single_predictions(server, config):
    records = [g.record for g in config.golden_rows]
    response, _, code, _ = unary(server, "PredictBatch", pb.PredictBatchRequest(records=records, include_features=True))
    assert code == grpc.StatusCode.OK
    assert list(response.feature_names) == list(config.feature_names)
    k = len(response.feature_names)
    assert len(response.predictions) == len(records) and len(response.feature_values) == len(records) * k
    for i, golden in enumerate(config.golden_rows):  # bits: a served 0.0 that came back -0.0 fails here
        assert_same_bits(response.predictions[i], golden.prediction)
        assert_same_bits(response.feature_values[i * k:(i + 1) * k], golden.features)


def test_batch_names_every_bad_record(server, config, metrics):
    good = config.golden_rows[0].record
    records = [good, with_field(good, age=5), good, with_field(good, weight=None, seasons=9)]
    _, _, code, details = unary(server, "PredictBatch", pb.PredictBatchRequest(records=records))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "records[3].weight" in details
    status = status_mapping.to_status(invalid(config, records), "PredictBatch", status_mapping.batch_record_field)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(f for f, _ in bad_request(status)) == ["records[1].age", "records[3].seasons", "records[3].weight"]
    assert metrics.validation_failures.labels(field="weight")._value.get() == 1


def test_batch_over_cap_is_resource_exhausted(config, metrics):
    server = make_server(config, max_batch=3, metrics=metrics)
    records = [config.golden_rows[0].record] * 4
    _, _, code, details = unary(server, "PredictBatch", pb.PredictBatchRequest(records=records))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "cap of 3" in details
    assert metrics.batch_size._sum.get() == 4


def test_empty_batch_is_empty(server):
    response, _, code, _ = unary(server, "PredictBatch", pb.PredictBatchRequest())
    assert code == grpc.StatusCode.OK and not response.predictions


def test_stream_answers_each_record_in_order_and_survives_bad_ones(server, config):
    good = [g.record for g in config.golden_rows[:3]]
    bad = with_field(good[0], age=200)
    rpc = server.invoke_stream_stream(SERVICE.methods_by_name["PredictStream"], (), None)
    for record in (good[0], bad, good[1], good[2]):
        rpc.send_request(pb.PredictStreamRequest(record=record, include_features=True))
    rpc.requests_closed()
    responses = [rpc.take_response() for _ in range(4)]
    _, code, _ = rpc.termination()
    assert code == grpc.StatusCode.OK
    assert [r.WhichOneof("result") for r in responses] == ["prediction", "error", "prediction", "prediction"]
    for response, golden in ((responses[0], config.golden_rows[0]), (responses[2], config.golden_rows[1]),
                             (responses[3], config.golden_rows[2])):  # bit for bit, features too
        assert_same_bits(response.prediction.prediction, golden.prediction)
        assert_same_bits([f.value for f in response.prediction.features], golden.features)
    (violation,) = responses[1].error.field_violations
    assert (violation.field, violation.rule) == ("age", "in_range(16, 100)")
    assert "200" in violation.description


def test_get_serving_config_returns_the_config(server, config):
    response, _, code, _ = unary(server, "GetServingConfig", pb.GetServingConfigRequest())
    assert code == grpc.StatusCode.OK  # byte for byte: every float of it keeps its bits
    assert response.config.SerializeToString(deterministic=True) == config.SerializeToString(deterministic=True)


class Exploding:
    feature_names = ()

    def predict(self, records):
        raise RuntimeError("secret internals")


def test_unexpected_error_is_internal_without_details(config, caplog):
    server = make_server(config, predictor=Exploding())
    _, _trailing, code, details = unary(server, "Predict", pb.PredictRequest(record=config.golden_rows[0].record))
    assert code == grpc.StatusCode.INTERNAL
    assert details == status_mapping.INTERNAL_MESSAGE and "secret" not in details
    assert "secret internals" in caplog.text  # the trace goes to the server log


def test_unexpected_error_in_stream_is_internal(config):
    server = make_server(config, predictor=Exploding())
    rpc = server.invoke_stream_stream(SERVICE.methods_by_name["PredictStream"], (), None)
    rpc.send_request(pb.PredictStreamRequest(record=config.golden_rows[0].record))
    rpc.requests_closed()
    _, code, details = rpc.termination()
    assert code == grpc.StatusCode.INTERNAL and details == status_mapping.INTERNAL_MESSAGE


def test_passed_deadline_is_deadline_exceeded(server, config):
    records = [config.golden_rows[0].record]
    _, _, code, _ = unary(server, "PredictBatch", pb.PredictBatchRequest(records=records), timeout=0.0)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_records_round_trip_through_converters(config):
    record = config.golden_rows[0].record
    assert converters.frame_to_records(converters.records_to_frame([record])[0])[0] == record


def test_a_zero_prediction_is_served_as_plus_zero_by_every_call(config):
    """A model of zeros predicts +0.0 for every row (0.0 + 0.0 * x, added from a +0.0 intercept):
    Predict, PredictBatch and PredictStream must answer +0.0, not -0.0, which == would let pass."""
    zeros = pb.GetServingConfigResponse().config.__class__()
    zeros.CopyFrom(config)
    zeros.model.intercept = 0.0
    zeros.model.coefficients[:] = [0.0] * len(zeros.model.coefficients)
    server = make_server(zeros)
    records = [g.record for g in config.golden_rows[:5]]
    single, _, code, _ = unary(server, "Predict", pb.PredictRequest(record=records[0]))
    batch, _, batch_code, _ = unary(server, "PredictBatch", pb.PredictBatchRequest(records=records))
    rpc = server.invoke_stream_stream(SERVICE.methods_by_name["PredictStream"], (), None)
    for record in records:
        rpc.send_request(pb.PredictStreamRequest(record=record))
    rpc.requests_closed()
    streamed = [rpc.take_response().prediction.prediction for _ in records]
    assert code == batch_code == rpc.termination()[1] == grpc.StatusCode.OK
    assert_same_bits([single.prediction, *batch.predictions, *streamed], [0.0] * (1 + 2 * len(records)))
