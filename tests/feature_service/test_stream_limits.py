"""Open streams never starve unary calls and health: streams run on a pool of their own, never on a
worker, and are capped (one too many is refused with RESOURCE_EXHAUSTED); an idle stream is closed
after a timeout."""

from __future__ import annotations

import queue
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from absenteeism.online.reference import ReferencePredictor
from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import prediction_service_pb2_grpc, raw_record_pb2
from feature_service import settings
from testkit.bits import same_bits
from testkit.records import VALID_ROW
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

REQUEST = pb.PredictStreamRequest(record=raw_record_pb2.RawRecord(**VALID_ROW))


class OpenStream:
    """A PredictStream that sends what it is given and otherwise stays open, sending nothing."""

    def __init__(self, stub, timeout: float = 120):
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.call = stub.PredictStream(iter(self._outbox.get, None), timeout=timeout)

    def ask(self) -> pb.PredictStreamResponse:
        """Sends one request and waits for its response (raises the stream's error if it ended)."""
        self._outbox.put(REQUEST)
        return next(self.call)

    def close(self) -> None:
        self._outbox.put(None)  # ends the request side: the server ends the stream
        for _ in self.call:
            pass


def unary_calls_are_answered(channel) -> None:
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    assert stub.Predict(pb.PredictRequest(record=REQUEST.record), timeout=10).config_id


def test_streams_beyond_the_cap_are_refused_and_unary_calls_keep_being_served(trained_config):
    cap = 2
    # One worker: were a stream to run on it, every unary call after it would wait for its deadline.
    with ServerProcess(trained_config.path, "--workers", "1", "--max-streams", str(cap)) as server, \
            grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        streams = [OpenStream(stub) for _ in range(2 * cap)]
        answered, refused, admitted = [], [], []
        for stream in streams:  # which of them the server lets in first is up to its threads
            try:
                answered.append(stream.ask().prediction.prediction)
                admitted.append(stream)
            except grpc.RpcError as error:
                refused.append(error)
        assert len(answered) == cap and len(refused) == cap
        expected = ReferencePredictor(trained_config.config).predict([REQUEST.record]).predictions[0]
        assert all(same_bits(prediction, expected) for prediction in answered)  # the batch path's bits
        for error in refused:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "2 open streams" in error.details() and "--max-streams" in error.details()
        # The open streams sit idle, each holding a thread of their own pool: unary calls and health
        # still get the worker.
        unary_calls_are_answered(channel)
        # A closed stream frees its place.
        admitted[0].close()
        replacement = OpenStream(stub)
        assert same_bits(replacement.ask().prediction.prediction, expected)
        unary_calls_are_answered(channel)
        for stream in (admitted[1], replacement):
            stream.close()


def test_an_idle_stream_is_closed_after_the_idle_timeout(trained_config):
    with ServerProcess(trained_config.path, "--workers", "1", "--max-streams", "1", "--stream-idle-timeout", "1") \
            as server, \
            grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stream = OpenStream(stub, timeout=60)
        assert stream.ask().HasField("prediction")
        with pytest.raises(grpc.RpcError) as caught:
            next(stream.call)  # nothing more is sent: the server ends the stream
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "idle" in caught.value.details() and "--stream-idle-timeout" in caught.value.details()
        # Its place (the only one: --max-streams 1) is free again, and unary calls were never blocked.
        assert OpenStream(stub).ask().HasField("prediction")
        unary_calls_are_answered(channel)


def test_a_busy_stream_is_not_idle(trained_config):
    """A stream that keeps sending (a request every 0.5 s, each answered before the next) stays open for
    two idle timeouts and more: idle time counts from the last answer, not from the stream's start.
    The pause is a quarter of the timeout (generous), yet longer than the server's 0.25 s poll, so the
    server does check the stream's idle time between requests. The loop ends on what happened (the
    stream's age after an answer): a stream that ended within one timeout would prove nothing."""
    idle_timeout = 2.0
    with ServerProcess(trained_config.path, "--stream-idle-timeout", str(idle_timeout)) as server, \
            grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stream = OpenStream(stub, timeout=120)
        opened = time.monotonic()
        while time.monotonic() - opened < 2 * idle_timeout:
            assert stream.ask().HasField("prediction")  # raises DEADLINE_EXCEEDED if the server called it idle
            time.sleep(idle_timeout / 4)
        stream.close()  # the request side ends: the stream ends OK
        assert stream.call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("argv, words", [
    (["--max-streams", "10001"], "--max-streams"),
    (["--max-streams", "-1"], "--max-streams"),
    (["--stream-idle-timeout", "-1"], "--stream-idle-timeout"),
])
def test_stream_settings_are_checked(argv, words):
    with pytest.raises(settings.SettingsError, match=words):
        settings.parse(["--config", "c", "--insecure", *argv], environ={})


def test_stream_settings_defaults_and_environment():
    default = settings.parse(["--config", "c", "--insecure"], environ={})
    assert (default.workers, default.stream_limit, default.stream_idle_timeout) == (2, 4, 60.0)
    # The cap no longer depends on the workers: streams have threads of their own.
    assert settings.parse(["--config", "c", "--insecure", "--workers", "1", "--max-streams", "8"],
                          environ={}).stream_limit == 8
    env = {"FEATURE_SERVICE_MAX_STREAMS": "5", "FEATURE_SERVICE_STREAM_IDLE_TIMEOUT": "2.5"}
    chosen = settings.parse(["--config", "c", "--insecure"], environ=env)
    assert (chosen.stream_limit, chosen.stream_idle_timeout) == (5, 2.5)
