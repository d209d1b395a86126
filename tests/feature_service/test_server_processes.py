"""--processes 2: a supervisor and two real server processes sharing one port (feature_service/processes/supervisor.py).

Which child answers a connection is the kernel's choice (SO_REUSEPORT hashes each connection), so
the tests open a fresh connection per call and tell the children apart by the "worker" field of
their DEBUG "call" log lines."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from absenteeism.online import converters
from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import prediction_service_pb2_grpc
from testkit.bits import same_bits
from testkit.loopback import LOOPBACK, free_port
from testkit.server_process import ServerProcess
from testkit.supervised_servers import (
    fresh_channel,
    is_running,
    metric_samples,
    two_processes,
    wait_for,
    workers_that_answered,
)

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

PREDICT = "/absenteeism.v1.PredictionService/Predict"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"



def predict_on_fresh_channels(server: ServerProcess, records, timeout: float = 20) -> list[float]:
    predictions = []
    for record in records:
        with fresh_channel(server.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(pb.PredictRequest(record=record), timeout=timeout, wait_for_ready=True)
            predictions.append(response.prediction)
    return predictions


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


@pytest.fixture(scope="module")
def supervised(trained_config):
    with two_processes(trained_config, metrics_port=free_port()) as server:
        yield server


def test_both_children_serve_predict_health_and_reflection(supervised, trained_config):
    pids = supervised.serving_entry["pids"]
    assert len(set(pids)) == 2 and all(parent_of(pid) == supervised.pid for pid in pids)
    records = converters.frame_to_records(trained_config.accepted.iloc[:40])
    assert same_bits(predict_on_fresh_channels(supervised, records), trained_config.predictions.iloc[:40].to_numpy())
    for _ in range(40):
        with fresh_channel(supervised.target) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=20)
            assert check.status == health_pb2.HealthCheckResponse.SERVING
            answers = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=20)
            services = {s.name for s in next(answers).list_services_response.service}
            assert "absenteeism.v1.PredictionService" in services
    # the "call" line is written after the answer: give the last ones a moment
    for method in (PREDICT, HEALTH_CHECK, REFLECTION):
        wait_for(lambda method=method: workers_that_answered(supervised, method) == {0, 1}, 10,
                 f"both children to answer {method}")


def predict_calls_per_child(server: ServerProcess) -> list[int]:
    calls = [entry["worker"] for entry in server.events("call") if entry["method"] == PREDICT]
    return [calls.count(0), calls.count(1)]


def test_metrics_are_summed_over_the_children(supervised, trained_config):
    key = ("feature_service_requests_total", (("code", "OK"), ("method", PREDICT)))
    count = ("feature_service_request_duration_seconds_count", (("method", PREDICT),))
    before, calls_before = metric_samples(supervised.metrics_port), predict_calls_per_child(supervised)
    predict_on_fresh_channels(supervised, converters.frame_to_records(trained_config.accepted.iloc[:30]))
    wait_for(lambda: sum(predict_calls_per_child(supervised)) == sum(calls_before) + 30, 10, "the call lines")
    assert all(after > earlier for after, earlier in zip(predict_calls_per_child(supervised), calls_before))
    after = metric_samples(supervised.metrics_port)  # both children took part in these 30 calls
    assert after[key] - before.get(key, 0) == 30
    assert after[count] - before.get(count, 0) == 30
    assert after[("feature_service_processes", ())] == 2


def test_a_killed_child_is_replaced_while_the_other_keeps_answering(trained_config):
    records = converters.frame_to_records(trained_config.accepted.iloc[:20])
    expected = trained_config.predictions.iloc[:20].to_numpy()
    with two_processes(trained_config, metrics_port=free_port()) as server:
        victim, survivor = server.serving_entry["pids"]
        os.kill(victim, signal.SIGKILL)
        answered_during_gap, deadline = 0, time.monotonic() + 60
        while not server.events("process_serving")[2:]:  # the replacement's report (after the first two)
            assert same_bits(predict_on_fresh_channels(server, records[:5]), expected[:5])
            answered_during_gap += 5
            assert time.monotonic() < deadline, "no replacement"
        assert answered_during_gap > 0
        exited, = server.events("process_exited")
        assert (exited["worker"], exited["pid"], exited["exit_code"], exited["restarts"]) == (0, victim, -9, 1)
        replacement = server.events("process_serving")[2]
        assert replacement["worker"] == 0 and replacement["pid"] not in (victim, survivor)
        assert is_running(survivor) and not is_running(victim)
        assert same_bits(predict_on_fresh_channels(server, records), expected)
        wait_for(lambda: any(e["pid"] == replacement["pid"] for e in server.events("call")), 10,
                 "the replacement to answer")
        samples = metric_samples(server.metrics_port)
        assert samples[("feature_service_process_restarts_total", (("worker", "0"),))] == 1
        assert samples[("feature_service_process_restarts_total", (("worker", "1"),))] == 0
        assert samples[("feature_service_processes", ())] == 2
    assert server.returncode == 0


def test_sigterm_drains_every_child_and_exits_0(trained_config):
    records = converters.frame_to_records(trained_config.accepted.iloc[:8])
    expected = trained_config.predictions.iloc[:8].to_numpy()
    streams = 16  # one connection each: both children hold some (all on one child: 2**-15)
    with two_processes(trained_config, "--max-streams", str(streams)) as server:
        signalled = threading.Event()
        first_answered = threading.Semaphore(0)
        results: list = [None] * streams

        def stream(slot: int) -> None:
            def requests():
                yield pb.PredictStreamRequest(record=records[0])
                signalled.wait(30)
                for record in records[1:]:  # sent after SIGTERM, on the open stream
                    time.sleep(0.05)
                    yield pb.PredictStreamRequest(record=record)

            with fresh_channel(server.target) as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                answers = stub.PredictStream(requests(), timeout=60)
                try:
                    collected = [next(answers).prediction.prediction]
                    first_answered.release()
                    collected += [answer.prediction.prediction for answer in answers]
                    results[slot] = collected
                except grpc.RpcError as error:
                    results[slot] = error

        threads = [threading.Thread(target=stream, args=(slot,)) for slot in range(streams)]
        for thread in threads:
            thread.start()
        for _ in range(streams):
            assert first_answered.acquire(timeout=60)  # every stream is open and answered once
        server.signal(signal.SIGTERM)
        signalled.set()
        for thread in threads:
            thread.join(60)
        assert server.wait(60) == 0
    for collected in results:
        assert not isinstance(collected, Exception), collected
        assert same_bits(collected, expected)
    assert workers_that_answered(server, "/absenteeism.v1.PredictionService/PredictStream") == {0, 1}
    assert {entry["worker"] for entry in server.events("stopped") if "worker" in entry} == {0, 1}
    assert server.events("stopped")[-1]["clean"] is True


def test_bad_config_exits_78_before_any_child_starts(tmp_path, trained_config):
    broken = tmp_path / "serving_config.pb"
    broken.write_bytes(trained_config.path.read_bytes()[:-7])
    server = ServerProcess(broken, "--processes", "2")
    assert server.run_to_exit() == 78
    assert server.events("config_refused")
    assert not server.events("process_started") and not any("worker" in entry for entry in server.entries)


def test_a_port_in_use_exits_1_before_any_child_starts(trained_config):
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen()
        server = ServerProcess(trained_config.path, "--processes", "2")
        server.command[server.command.index("--port") + 1] = str(holder.getsockname()[1])
        assert server.run_to_exit() == 1
    assert server.events("bind_failed") and not server.events("process_started")


def test_children_stop_when_the_supervisor_is_killed(trained_config):
    with two_processes(trained_config) as server:
        pids = server.serving_entry["pids"]
        server.signal(signal.SIGKILL)
        wait_for(lambda: not any(is_running(pid) for pid in pids), 60, "the orphaned children to stop")
