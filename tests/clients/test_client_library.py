"""PredictionClient against real servers: calls, readable errors, deadlines, retries on UNAVAILABLE."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from absenteeism.online import converters
from clients import InvalidInputError, PredictionClient, PredictionError
from testkit.bits import assert_same_bits
from testkit.loopback import free_port
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


def test_unavailable_is_retried_with_backoff_then_raised():
    port = free_port()  # nothing listens there
    with PredictionClient(f"127.0.0.1:{port}", insecure=True, timeout=20, retries=3, backoff=0.2) as client:
        started = time.monotonic()
        with pytest.raises(PredictionError) as caught:
            client.serving_config()
        elapsed = time.monotonic() - started
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert elapsed >= (0.2 + 0.4 + 0.8) * 0.5  # three backoffs, jitter at most halves each


def test_retries_until_the_server_comes_up(trained_config, records):
    port = free_port()
    outcome = {}

    def call():
        with PredictionClient(f"127.0.0.1:{port}", insecure=True, timeout=90, retries=30, backoff=0.25,
                              max_backoff=2.0) as client:
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
