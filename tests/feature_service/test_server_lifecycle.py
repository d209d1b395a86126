"""Health follows the lifecycle; SIGTERM during traffic loses no in-flight call and exits 0."""

from __future__ import annotations

import signal
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from absenteeism import data_sets
from absenteeism.online import converters
from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import prediction_service_pb2_grpc
from feature_service.rpc.prediction_server import PredictionServer
from feature_service.settings import Settings
from testkit.bits import assert_same_bits, same_bits
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
            for service in ("", data_sets.named("absenteeism").service_name):
                assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status == SERVING
            watch = health.Watch(health_pb2.HealthCheckRequest(service=data_sets.named("absenteeism").service_name), timeout=20)
            assert next(watch).status == SERVING
            stopper = threading.Thread(target=server.stop)
            stopper.start()
            assert next(watch).status == NOT_SERVING
            stopper.join(20)
            assert not stopper.is_alive()
    finally:
        server.stop(0)


BATCH, STREAM = "/absenteeism.v1.PredictionService/PredictBatch", "/absenteeism.v1.PredictionService/PredictStream"


def test_sigterm_during_traffic_loses_no_in_flight_call(trained_config):
    """Proven by counting, not by timing: every call the server accepted (its handler ran: one DEBUG
    "call" log line each) ended OK on the server and was received OK by its caller, the stream that
    was mid-way at SIGTERM included; the callers' other calls were refused before any handler took
    them (as many as the server never logged)."""
    records = converters.frame_to_records(trained_config.accepted.iloc[:60])
    with ServerProcess(trained_config.path, "--grace", "20", "--workers", "8", "--log-level", "DEBUG") as server:
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

        unary_outcomes: list[grpc.StatusCode | str] = []
        expected = np.tile(trained_config.predictions.iloc[:60], 20)

        def run_unary(stop_at: float):  # batches of 1,200 records: a call is likely in its handler at SIGTERM
            while time.monotonic() < stop_at:
                try:
                    response = stub.PredictBatch(pb.PredictBatchRequest(records=records * 20), timeout=30)
                    code = grpc.StatusCode.OK if same_bits(response.predictions, expected) else "wrong bits"
                except grpc.RpcError as error:
                    code = error.code()
                unary_outcomes.append(code)
                if code != grpc.StatusCode.OK:
                    return

        stream_thread = threading.Thread(target=run_stream)
        stream_thread.start()
        callers = [threading.Thread(target=run_unary, args=(time.monotonic() + 4,)) for _ in range(3)]
        for caller in callers:
            caller.start()
        time.sleep(1.0)  # traffic under way (not a condition asserted on: the counts below are)
        server.signal(signal.SIGTERM)
        signalled.set()
        for thread in (stream_thread, *callers):
            thread.join(60)
        assert server.wait(60) == 0
        channel.close()

    # What the server accepted (the log is complete: the process has exited), it answered OK: a call
    # cut off by the stop would end CANCELLED here (or, answered too late, be missing from the OKs below).
    accepted = [entry for entry in server.events("call") if entry["method"] in (BATCH, STREAM)]
    cut_off = [(entry["method"], entry["code"]) for entry in accepted if entry["code"] != "OK"]
    assert accepted and not cut_off, cut_off
    assert sum(entry["method"] == STREAM for entry in accepted) == 1
    # The stream was in flight at SIGTERM: every one of its records got its answer, the training bits.
    assert len(stream_results) == len(records), stream_results[-1]
    assert all(r.HasField("prediction") for r in stream_results)
    assert_same_bits([r.prediction.prediction for r in stream_results], trained_config.predictions.iloc[:60])
    # Unary calls: each one the server accepted reached its caller OK; each other one was refused
    # before a handler took it: UNAVAILABLE, or CANCELLED when gRPC core had read it off the wire but
    # no handler had started it when the server stopped accepting. Each caller stops at its first refusal.
    assert "wrong bits" not in unary_outcomes
    ok = unary_outcomes.count(grpc.StatusCode.OK)
    refused = [code for code in unary_outcomes if code != grpc.StatusCode.OK]
    assert ok == sum(entry["method"] == BATCH for entry in accepted) and ok > 0
    assert len(refused) == len(callers)
    assert set(refused) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, refused
    events = [line for line in server.logs if '"event": "signal"' in line or '"event": "stopped"' in line]
    assert len(events) == 2 and "SIGTERM" in events[0]


def test_sigint_stops_an_idle_server_with_exit_0(trained_config):
    with ServerProcess(trained_config.path) as server:
        server.signal(signal.SIGINT)
        assert server.wait(30) == 0
