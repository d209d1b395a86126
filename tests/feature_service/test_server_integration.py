"""Every RPC and every kind of bad input against a real server process on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from absenteeism.online import converters
from absenteeism.v1 import prediction_service_pb2 as pb
from clients import InvalidInputError, PredictionClient, PredictionError
from testkit.bits import same_bits
from testkit.loopback import free_port
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

PREDICT = "/absenteeism.v1.PredictionService/Predict"
PREDICT_BATCH = "/absenteeism.v1.PredictionService/PredictBatch"
PREDICT_STREAM = "/absenteeism.v1.PredictionService/PredictStream"


@pytest.fixture(scope="module")
def client(plaintext_server):
    with PredictionClient(plaintext_server.target, insecure=True, timeout=30, retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def channel(plaintext_server):
    with grpc.insecure_channel(plaintext_server.target) as channel:
        yield channel


@pytest.fixture(scope="module")
def records(trained_config):
    return converters.frame_to_records(trained_config.accepted)


def record_dict(trained_config, source_row=None, **changes):
    source_row = source_row or int(trained_config.accepted.index[0])
    record = converters.record_to_dict(converters.frame_to_records(trained_config.accepted.loc[[source_row]])[0])
    record.update(changes)
    return record


def assert_serving(channel):
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING



# ---- every RPC; predictions equal the training-time ones -----------------------------------------

def test_batch_of_every_training_row_equals_training_predictions_bit_for_bit(client, records, trained_config):
    result = client.predict_batch(records, include_features=True)
    assert same_bits(result.predictions, trained_config.predictions.to_numpy())
    assert result.feature_names == tuple(trained_config.config.feature_names)
    assert same_bits(result.features, trained_config.features[list(result.feature_names)].to_numpy())
    assert result.config_id == trained_config.config.content_sha256


def test_predict_equals_training_prediction_for_that_row(client, records, trained_config):
    for position in (0, 100, 400, len(records) - 1):
        result = client.predict(records[position], include_features=True)
        assert same_bits(result.prediction, trained_config.predictions.iloc[position])
        assert same_bits(list(result.features.values()), trained_config.features.iloc[position].to_numpy())


def test_stream_equals_training_predictions_in_order(client, records, trained_config):
    results = list(client.predict_stream(records[:40]))
    assert [r.index for r in results] == list(range(40)) and all(r.ok for r in results)
    assert same_bits([r.prediction.prediction for r in results], trained_config.predictions.to_numpy()[:40])


def test_serving_config(client, trained_config):
    assert client.serving_config() == trained_config.config


# ---- bad input: documented status and details, and the server stays up --------------------------

@pytest.mark.parametrize("changes, field, words", [
    ({"age": None}, "record.age", "required field is missing"),
    ({"age": 101}, "record.age", "in_range(16, 100)"),
    ({"month_of_absence": 13}, "record.month_of_absence", "isin("),
    ({"weight": float("nan")}, "record.weight", "not_nullable"),
    ({"height": float("inf")}, "record.height", "in_range(120.0, 230.0)"),
    ({"id": -2**31}, "record.id", "in_range(1, 10000)"),
    ({"id": 10_001}, "record.id", "in_range(1, 10000)"),
    ({"id": 1_000_000}, "record.id", "in_range(1, 10000)"),
])
def test_bad_record_is_invalid_argument_naming_field_and_rule(client, channel, trained_config, changes, field, words):
    with pytest.raises(InvalidInputError) as caught:
        client.predict(record_dict(trained_config, **changes))
    error = caught.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == [field]
    assert words in error.violations[0].description and field in str(error)
    assert_serving(channel)


def test_batch_with_several_bad_records_names_each(client, channel, trained_config):
    good = record_dict(trained_config)
    batch = [good, {**good, "age": 5}, good, {**good, "weight": None, "seasons": 0}, {**good, "son": 99}]
    with pytest.raises(InvalidInputError) as caught:
        client.predict_batch(batch)
    fields = sorted(v.field for v in caught.value.violations)
    assert fields == ["records[1].age", "records[3].seasons", "records[3].weight", "records[4].son"]
    assert_serving(channel)


def test_batch_over_the_cap_is_resource_exhausted(client, channel, records):
    with pytest.raises(PredictionError) as caught:
        client.predict_batch(records[:1] * 10_001)
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "cap of 10000" in caught.value.message
    assert_serving(channel)


def test_oversized_message_is_resource_exhausted(channel, records):
    one = pb.PredictBatchRequest(records=records[:1]).SerializeToString()
    oversized = one * (17 * 1024 * 1024 // len(one) + 1)  # > 16 MiB; concatenated messages merge
    call = channel.unary_unary(PREDICT_BATCH)
    with pytest.raises(grpc.RpcError) as caught:
        call(oversized, timeout=30)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_serving(channel)


@pytest.mark.parametrize("method", [PREDICT, PREDICT_BATCH])
def test_garbage_bytes_are_invalid_argument(channel, method):
    call = channel.unary_unary(method)
    with pytest.raises(grpc.RpcError) as caught:
        call(b"\x0a\xff\xff\xff\xff\x0f garbage", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid absenteeism.v1." in caught.value.details()
    assert_serving(channel)


def test_random_bytes_never_break_the_server(channel):
    rng = np.random.default_rng(7)
    for method in (PREDICT, PREDICT_BATCH):
        call = channel.unary_unary(method)
        for size in rng.integers(1, 400, size=40):
            try:
                call(rng.bytes(int(size)), timeout=10)
                code = grpc.StatusCode.OK  # bytes that happen to decode as an empty batch
            except grpc.RpcError as error:
                code = error.code()
            assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OK), code
    assert_serving(channel)


def test_garbage_bytes_in_a_stream_end_it_with_invalid_argument(channel, records):
    call = channel.stream_stream(PREDICT_STREAM)
    good = pb.PredictStreamRequest(record=records[0]).SerializeToString()
    responses = call(iter([good, b"\x0a\xff\xff\xff\xff\x0f"]), timeout=10)
    with pytest.raises(grpc.RpcError) as caught:
        list(responses)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert_serving(channel)


def test_stream_reports_bad_records_and_goes_on(client, trained_config):
    good = record_dict(trained_config)
    results = list(client.predict_stream([good, {**good, "age": None}, good, {**good, "height": 50.0}, good]))
    assert [r.ok for r in results] == [True, False, True, False, True]
    assert [(v.field, v.rule) for v in results[1].violations] == [("age", "required")]
    assert [(v.field, v.rule) for v in results[3].violations] == [("height", "in_range(120.0, 230.0)")]


def test_deadline_is_honoured(client, channel, records):
    with pytest.raises(PredictionError) as caught:
        client.predict_batch(records * 10, timeout=0.001)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert_serving(channel)


def test_unknown_method_is_unimplemented(channel):
    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/absenteeism.v1.PredictionService/Nope")(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert_serving(channel)


# ---- metrics ---------------------------------------------------------------------------------------

def test_metrics_on_the_metrics_port(plaintext_server, client, trained_config):
    client.predict_batch(converters.frame_to_records(trained_config.accepted.iloc[:7]))
    with pytest.raises(InvalidInputError):
        client.predict(record_dict(trained_config, body_mass_index=99.0))
    url = f"http://127.0.0.1:{plaintext_server.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    assert re.search(r'feature_service_requests_total\{code="OK",method="/absenteeism.v1.PredictionService/'
                     r'PredictBatch"\} [1-9]', text)
    assert re.search(r'feature_service_requests_total\{code="INVALID_ARGUMENT",method="/absenteeism.v1.'
                     r'PredictionService/Predict"\} [1-9]', text)
    assert re.search(r'feature_service_validation_failures_total\{field="body_mass_index"\} [1-9]', text)
    assert re.search(r'feature_service_request_duration_seconds_bucket\{le="[^"]+",method="/absenteeism.v1.'
                     r'PredictionService/Predict"\}', text)
    assert re.search(r"feature_service_batch_size_count [1-9]", text)
    assert "feature_service_stream_messages_total" in text


def connects(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
        return True
    except OSError:
        return False


def test_metrics_listen_on_the_grpc_host_by_default(plaintext_server):
    # gRPC is on 127.0.0.1: /metrics is not on every address (127.0.0.2 is loopback too, and would
    # connect to a listener on 0.0.0.0)
    assert connects("127.0.0.1", plaintext_server.metrics_port)
    assert not connects("127.0.0.2", plaintext_server.metrics_port)
    serving = next(json.loads(line) for line in plaintext_server.logs if '"serving"' in line)
    assert serving["metrics_host"] == "127.0.0.1"


def test_metrics_host_is_its_own_setting(trained_config):
    with ServerProcess(trained_config.path, "--metrics-host", "127.0.0.2", metrics_port=free_port()) as server:
        assert connects("127.0.0.2", server.metrics_port) and not connects("127.0.0.1", server.metrics_port)
        text = urllib.request.urlopen(f"http://127.0.0.2:{server.metrics_port}/metrics", timeout=10).read().decode()
        assert "feature_service_requests_total" in text
        assert connects("127.0.0.1", server.port)  # gRPC stays on --host


def test_concurrent_calls_get_their_own_answers(plaintext_server, records, trained_config):
    from concurrent.futures import ThreadPoolExecutor

    expected = trained_config.predictions.to_numpy()
    slices = [(start, start + 50 + 7 * k) for k, start in enumerate(range(0, 800, 100))]

    def batch(bounds):
        with PredictionClient(plaintext_server.target, insecure=True, timeout=60) as client:
            return [client.predict_batch(records[bounds[0]:bounds[1]]).predictions for _ in range(3)]

    def singles(position):
        with PredictionClient(plaintext_server.target, insecure=True, timeout=60) as client:
            return [client.predict(records[p]).prediction for p in range(position, position + 15)]

    with ThreadPoolExecutor(12) as pool:
        batches = list(pool.map(batch, slices))
        single = list(pool.map(singles, [0, 300, 600, 900]))
    for (start, stop), results in zip(slices, batches):
        for result in results:
            assert same_bits(result, expected[start:stop])
    for position, results in zip([0, 300, 600, 900], single):
        assert same_bits(results, expected[position:position + 15])
