"""PredictionClient against real servers: calls, readable errors, deadlines, retries on UNAVAILABLE."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from absenteeism.online import converters
from absenteeism.v1 import prediction_service_pb2_grpc
from clients import InvalidInputError, PredictionClient, PredictionError
from testkit.bits import assert_same_bits
from testkit.loopback import free_port
from testkit.records import VALID_ROW
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`


@pytest.fixture(scope="module")
def records(trained_config):
    return converters.frame_to_records(trained_config.accepted.iloc[:20])


def test_every_method(plaintext_server, records, trained_config):
    """Every method gives the training set's predictions (and features) bit for bit, not merely `==`."""
    with PredictionClient(plaintext_server.target, insecure=True) as client:
        single = client.predict(records[0], include_features=True)
        assert_same_bits(single.prediction, trained_config.predictions.iloc[0])
        assert list(single.features) == list(trained_config.config.feature_names)
        assert_same_bits(list(single.features.values()), trained_config.features.iloc[0])
        batch = client.predict_batch(records)
        assert_same_bits(batch.predictions, trained_config.predictions.iloc[:20])
        assert batch.features is None and batch.feature_names == ()
        streamed = list(client.predict_stream(iter(records), include_features=True))  # any iterable
        assert_same_bits([r.prediction.prediction for r in streamed], trained_config.predictions.iloc[:20])
        assert_same_bits([list(r.prediction.features.values()) for r in streamed], trained_config.features.iloc[:20])
        assert client.serving_config().content_sha256 == single.config_id == batch.config_id


def test_records_may_be_dicts(plaintext_server, records, trained_config):
    with PredictionClient(plaintext_server.target, insecure=True) as client:
        as_dict = converters.record_to_dict(records[3])
        assert_same_bits(client.predict(as_dict).prediction, trained_config.predictions.iloc[3])


def test_errors_name_each_field_readably(plaintext_server, records):
    bad = converters.record_to_dict(records[0]) | {"age": 5, "pet": None}
    with (PredictionClient(plaintext_server.target, insecure=True) as client,
          pytest.raises(InvalidInputError) as caught):
        client.predict_batch([records[0], bad])
    error = caught.value
    assert isinstance(error, PredictionError) and error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, v.description) for v in error.violations] == [
        ("records[1].age", "age: value 5 breaks rule in_range(16, 100)"),
        ("records[1].pet", "pet: required field is missing")]
    text = str(error)
    assert text.startswith("INVALID_ARGUMENT: ")
    assert "\n  records[1].age: age: value 5 breaks rule in_range(16, 100)" in text
    assert "\n  records[1].pet: pet: required field is missing" in text


def test_deadline(plaintext_server, records):
    with (PredictionClient(plaintext_server.target, insecure=True, timeout=0.0005, retries=0) as client,
          pytest.raises(PredictionError) as caught):
        client.predict_batch(records * 50)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers every call UNAVAILABLE (an overloaded or draining server), counting the attempts."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}

    def _refuse(self, method: str, context) -> None:
        self.attempts[method] = self.attempts.get(method, 0) + 1
        context.abort(grpc.StatusCode.UNAVAILABLE, "try again")

    def GetServingConfig(self, request, context):
        self._refuse("GetServingConfig", context)

    def PredictStream(self, request_iterator, context):
        self._refuse("PredictStream", context)


@pytest.mark.parametrize("retries", [0, 1, 3, 4])
def test_unavailable_is_retried_by_grpcs_retry_policy_then_raised(retries):
    """The channel's service config retries UNAVAILABLE `retries` times: the server sees exactly
    retries + 1 attempts of a unary call and of a stream that received nothing."""
    servicer = Unavailable()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with PredictionClient(f"127.0.0.1:{port}", insecure=True, timeout=30, retries=retries, backoff=0.01,
                              max_backoff=0.05) as client:
            with pytest.raises(PredictionError) as caught:
                client.serving_config()
            with pytest.raises(PredictionError) as streamed:
                list(client.predict_stream(iter([VALID_ROW])))  # a one-shot iterable: gRPC buffers it
    finally:
        server.stop(None)
    assert caught.value.code == streamed.value.code == grpc.StatusCode.UNAVAILABLE
    assert servicer.attempts == {"GetServingConfig": retries + 1, "PredictStream": retries + 1}


def test_retries_beyond_grpcs_cap_are_refused():
    with pytest.raises(ValueError, match="retries must be in 0..4"):
        PredictionClient("127.0.0.1:1", insecure=True, retries=5)


def test_a_client_waits_for_a_server_that_is_not_up_yet(trained_config, records):
    port = free_port()
    outcome = {}

    def call():
        with PredictionClient(f"127.0.0.1:{port}", insecure=True, timeout=90, wait_for_ready=True) as client:
            outcome["prediction"] = client.predict(records[0], include_features=True)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.5)  # the first attempts fail: nothing listens yet
    with ServerProcess(trained_config.path, "--port", str(port)):
        caller.join(90)
    assert_same_bits(outcome["prediction"].prediction, trained_config.predictions.iloc[0])
    assert_same_bits(list(outcome["prediction"].features.values()), trained_config.features.iloc[0])


def test_client_needs_a_security_choice():
    with pytest.raises(ValueError, match="exactly one"):
        PredictionClient("127.0.0.1:1")
