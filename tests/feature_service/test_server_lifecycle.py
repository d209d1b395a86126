"""Health follows the lifecycle; SIGTERM during traffic loses no in-flight call and exits 0."""

from __future__ import annotations

import signal
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from absenteeism.online import converters
from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import prediction_service_pb2_grpc
from feature_service.rpc.health import PREDICTION_SERVICE
from feature_service.rpc.prediction_server import PredictionServer
from feature_service.settings import Settings
from testkit.bits import assert_same_bits
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_serving_after_boot_and_not_serving_at_shutdown(trained_config):
    server = PredictionServer(Settings(config=trained_config.path, host="127.0.0.1", port=0, metrics_port=0,
                                       insecure=True, grace=5))
    port = server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", PREDICTION_SERVICE):
                assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status == SERVING
            watch = health.Watch(health_pb2.HealthCheckRequest(service=PREDICTION_SERVICE), timeout=20)
            assert next(watch).status == SERVING
            stopper = threading.Thread(target=server.stop)
            stopper.start()
            assert next(watch).status == NOT_SERVING
            stopper.join(20)
            assert not stopper.is_alive()
    finally:
        server.stop(0)


def test_sigterm_during_traffic_loses_no_in_flight_call(trained_config):
    records = converters.frame_to_records(trained_config.accepted.iloc[:60])
    with ServerProcess(trained_config.path, "--grace", "20", "--workers", "8") as server:
        channel = grpc.insecure_channel(server.target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        signalled = threading.Event()
        stream_results: list = []

        def slow_requests():  # a stream that is mid-way when SIGTERM arrives and goes on after it
            for i, record in enumerate(records):
                if i == 10:
                    signalled.wait(20)
                yield pb.PredictStreamRequest(record=record)
                time.sleep(0.02)

        def run_stream():
            try:
                stream_results.extend(stub.PredictStream(slow_requests(), timeout=60))
            except grpc.RpcError as error:
                stream_results.append(error)

        unary_outcomes: list[tuple[float, float, grpc.StatusCode]] = []

        def run_unary(stop_at: float):
            while time.monotonic() < stop_at:
                started = time.monotonic()
                try:
                    stub.PredictBatch(pb.PredictBatchRequest(records=records), timeout=30)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as error:
                    code = error.code()
                unary_outcomes.append((started, time.monotonic(), code))
                if code != grpc.StatusCode.OK:
                    return

        stream_thread = threading.Thread(target=run_stream)
        stream_thread.start()
        callers = [threading.Thread(target=run_unary, args=(time.monotonic() + 4,)) for _ in range(3)]
        for caller in callers:
            caller.start()
        time.sleep(1.0)
        signal_at = time.monotonic()
        server.signal(signal.SIGTERM)
        signalled.set()
        for thread in (stream_thread, *callers):
            thread.join(60)
        assert server.wait(60) == 0
        channel.close()

    # the stream was in flight at SIGTERM: every one of its records got its answer
    assert len(stream_results) == len(records), stream_results[-1]
    assert all(r.HasField("prediction") for r in stream_results)
    assert_same_bits([r.prediction.prediction for r in stream_results], trained_config.predictions.iloc[:60])
    # unary calls: those well under way at the signal finished; later ones were refused (UNAVAILABLE),
    # never cut off. (A call sent in the last instant before the signal may not have reached the
    # server yet, so the margin.)
    assert unary_outcomes
    for started, _, code in unary_outcomes:
        if started < signal_at - 0.25:
            assert code == grpc.StatusCode.OK
        else:
            # Refused: UNAVAILABLE, or CANCELLED when gRPC core had taken the call off the wire but
            # no handler had started it when the server stopped accepting (seen 2 runs in 6).
            assert code in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    events = [line for line in server.logs if '"event": "signal"' in line or '"event": "stopped"' in line]
    assert len(events) == 2 and "SIGTERM" in events[0]


def test_sigint_stops_an_idle_server_with_exit_0(trained_config):
    with ServerProcess(trained_config.path) as server:
        server.signal(signal.SIGINT)
        assert server.wait(30) == 0
