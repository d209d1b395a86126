"""Live config reload against a real server process, with real configs built by the ETL job and real
files replaced under it: no failed call, every answer from the config it names, refusals harmless."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import grpc
import numpy as np
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from absenteeism import config_io
from absenteeism.dataset import atomic
from absenteeism.online import converters
from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import prediction_service_pb2_grpc
from clients import PredictionClient
from testkit.bits import same_bits
from testkit.loopback import free_port
from testkit.paths import REPO_ROOT
from testkit.process_control import wait_until_catches
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

ROOT = REPO_ROOT
RECORDS = 64  # the fixed records every caller sends
SWAPS = 20


@dataclass(frozen=True)
class Built:
    data: bytes  # serving_config.pb
    config_id: str
    predictions: pd.Series  # training-time prediction per accepted source row


def etl(output: Path, *args: str, cwd: Path = ROOT, env: dict | None = None) -> Built:
    run = subprocess.run([sys.executable, "-m", "etl_job", "run", "--output-dir", str(output), "--no-progress", *args],
                         capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    assert run.returncode == 0, run.stderr
    data = (output / config_io.CONFIG_FILE).read_bytes()
    predictions = pd.read_parquet(output / "training_set.parquet").set_index("source_row")["prediction"]
    return Built(data, config_io.parse_config(data, output).content_sha256, predictions)


@pytest.fixture(scope="module")
def first(trained_config) -> Built:
    return Built(trained_config.path.read_bytes(), trained_config.config.content_sha256, trained_config.predictions)


@pytest.fixture(scope="module")
def second(tmp_path_factory, first) -> Built:
    """The same sample with a stronger ridge penalty: another model, other predictions."""
    built = etl(tmp_path_factory.mktemp("etl_alpha"), "--alpha", "25")
    assert built.config_id != first.config_id
    assert (built.predictions != first.predictions).mean() > 0.9
    return built


@pytest.fixture(scope="module")
def other_module(tmp_path_factory) -> bytes:
    """A config the ETL job built with a different feature module (a copy of the code, one line added)."""
    code = tmp_path_factory.mktemp("other_code")
    for package in ("absenteeism", "etl_job"):
        shutil.copytree(ROOT / package, code / package, ignore=shutil.ignore_patterns("__pycache__"))
    with open(code / "absenteeism" / "features.py", "a") as features:
        features.write("\n# another revision of the feature module\n")
    env = {**os.environ, "PYTHONPATH": str(code)}
    return etl(tmp_path_factory.mktemp("etl_other"), cwd=code, env=env).data


@pytest.fixture(scope="module")
def records(trained_config):
    return converters.frame_to_records(trained_config.accepted.iloc[:RECORDS])


def expected(trained_config, *builds: Built) -> dict[str, np.ndarray]:
    rows = trained_config.accepted.index[:RECORDS]
    return {b.config_id: b.predictions.loc[rows].to_numpy(dtype=np.float64) for b in builds}



# ---- publishing a config, three ways -----------------------------------------------------------

class RenamedFile:
    """The ETL's way: write a temp file next to it, rename it over --config."""

    def __init__(self, folder: Path):
        self.path = folder / "serving_config.pb"

    def publish(self, data: bytes) -> None:
        atomic.write_bytes(self.path, data)


class ConfigMapVolume:
    """What the kubelet does to a mounted ConfigMap: the file is a symlink through `..data`, which is
    switched atomically to a new timestamped folder; the old folder is then removed."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / "serving_config.pb"
        self.versions = 0

    def publish(self, data: bytes) -> None:
        self.versions += 1
        version = self.folder / f"..2024_01_01_00_00_{self.versions:02d}.{os.getpid()}"
        version.mkdir()
        (version / "serving_config.pb").write_bytes(data)
        old = (self.folder / "..data").resolve() if (self.folder / "..data").exists() else None
        os.symlink(version.name, self.folder / "..data_tmp")
        os.replace(self.folder / "..data_tmp", self.folder / "..data")
        if not self.path.is_symlink():
            os.symlink("..data/serving_config.pb", self.path)
        if old is not None:
            shutil.rmtree(old)


# ---- the server's log and metrics --------------------------------------------------------------

def events(server: ServerProcess, name: str) -> list[dict]:
    found = []
    for line in list(server.logs):
        if line.startswith("{") and f'"{name}"' in line:
            entry = json.loads(line)
            if entry.get("event") == name:
                found.append(entry)
    return found


def wait_for(server: ServerProcess, name: str, count: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(found := events(server, name)) < count:
        assert time.monotonic() < deadline, f"no {count} {name} events:\n" + "\n".join(server.logs[-30:])
        time.sleep(0.02)
    return found


def metric(server: ServerProcess, pattern: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
    found = re.search("^" + pattern + r" (\S+)$", text, re.MULTILINE)
    assert found, f"{pattern} not in /metrics"
    return float(found.group(1))


def reloads(server: ServerProcess, outcome: str) -> float:
    return metric(server, re.escape(f'feature_service_config_reloads_total{{outcome="{outcome}"}}'))


# ---- traffic -----------------------------------------------------------------------------------

class Traffic:
    """8 threads calling Predict and one PredictStream, all on the fixed records, until stopped.
    Every answer is kept as (record index, prediction, config_id); every failure as the error."""

    def __init__(self, target: str, records, callers: int = 8):
        self.target, self.records, self.callers = target, records, callers
        self.answers: list[tuple[int, float, str]] = []
        self.stream_answers: list[tuple[int, float, str]] = []
        self.failures: list[object] = []
        self.stream_sent = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Self:
        self._threads = [threading.Thread(target=self._call, args=(k,)) for k in range(self.callers)]
        self._threads.append(threading.Thread(target=self._stream))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in self._threads)

    def _call(self, offset: int) -> None:
        with grpc.insecure_channel(self.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            i = offset
            while not self._stop.is_set():
                index = i % len(self.records)
                try:
                    response = stub.Predict(pb.PredictRequest(record=self.records[index]), timeout=30)
                    self.answers.append((index, response.prediction, response.config_id))
                except grpc.RpcError as error:
                    self.failures.append(("Predict", error.code(), error.details()))
                i += self.callers

    def _requests(self):
        while not self._stop.is_set():
            yield pb.PredictStreamRequest(record=self.records[self.stream_sent % len(self.records)])
            self.stream_sent += 1
            time.sleep(0.005)

    def _stream(self) -> None:
        with grpc.insecure_channel(self.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            try:
                for k, response in enumerate(stub.PredictStream(self._requests(), timeout=600)):
                    if response.HasField("error"):
                        self.failures.append(("PredictStream record", k, response.error))
                    else:
                        self.stream_answers.append((k % len(self.records), response.prediction.prediction,
                                                    response.prediction.config_id))
            except grpc.RpcError as error:
                self.failures.append(("PredictStream", error.code(), error.details()))

    def answered_by(self, answers, wanted: dict[str, np.ndarray]) -> set[str]:
        """The config ids seen; asserts each answer is its config's prediction, bit for bit."""
        for index, prediction, config_id in answers:
            assert config_id in wanted, config_id
            assert same_bits(prediction, wanted[config_id][index]), (index, prediction, config_id)
        return {config_id for _, _, config_id in answers}


def health_status(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status


# ---- the tests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("trigger, swaps, flags", [
    ("rename", SWAPS, ("--reload-interval", "0.1")),
    ("sighup", SWAPS, ("--reload-interval", "0", "--micro-batch-rows", "64")),  # watching off: SIGHUP alone swaps
    ("configmap", 6, ("--reload-interval", "0.1")),
])
def test_swaps_under_load_fail_no_call_and_never_mix_configs(trigger, swaps, flags, tmp_path, trained_config, first,
                                                             second, records):
    volume = ConfigMapVolume(tmp_path) if trigger == "configmap" else RenamedFile(tmp_path)
    volume.publish(first.data)
    builds = [first, second]
    wanted = expected(trained_config, first, second)
    with ServerProcess(volume.path, *flags, metrics_port=free_port()) as server:
        with Traffic(server.target, records) as traffic:
            time.sleep(0.3)
            for k in range(1, swaps + 1):
                volume.publish(builds[k % 2].data)
                if trigger == "sighup":
                    server.signal(signal.SIGHUP)
                loaded = wait_for(server, "config_loaded", k)
                assert loaded[-1]["config_id"] == builds[k % 2].config_id
                time.sleep(0.15)  # calls on this config, the stream goes on
        assert traffic.failures == []
        assert traffic.answered_by(traffic.answers, wanted) == {first.config_id, second.config_id}
        # one stream, open across all the swaps, answered by both
        assert traffic.answered_by(traffic.stream_answers, wanted) == {first.config_id, second.config_id}
        assert len(traffic.stream_answers) == traffic.stream_sent
        assert reloads(server, "loaded") == swaps and reloads(server, "refused") == 0
        assert health_status(server.target) == health_pb2.HealthCheckResponse.SERVING
    assert server.returncode == 0
    loaded = events(server, "config_loaded")
    assert len(loaded) == swaps and not events(server, "config_reload_refused")
    serving = events(server, "serving")[0]
    for field in ("host", "port", "metrics_host", "metrics_port", "security", "predictor", "workers"):
        assert all(line[field] == serving[field] for line in loaded), field
    assert {line["trigger"] for line in loaded} == {"signal" if trigger == "sighup" else "file"}


def test_a_refused_config_leaves_the_last_good_one_serving(tmp_path, trained_config, first, second, other_module,
                                                           records):
    volume = RenamedFile(tmp_path)
    volume.publish(first.data)
    wanted = expected(trained_config, first, second)
    with ServerProcess(volume.path, "--reload-interval", "0.5", metrics_port=free_port()) as server, \
            grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def answers_with(build: Built) -> None:
            for index in (0, 17, 63):
                response = stub.Predict(pb.PredictRequest(record=records[index]), timeout=30)
                assert response.config_id == build.config_id
                assert same_bits(response.prediction, wanted[build.config_id][index])
            assert health_status(server.target) == health_pb2.HealthCheckResponse.SERVING

        assert metric(server, f'feature_service_config_info{{config_id="{first.config_id}",created_at="[^"]+"}}') == 1
        volume.publish(first.data[: len(first.data) * 2 // 3])  # a truncated file
        refused = wait_for(server, "config_reload_refused", 1)
        assert str(volume.path) in refused[0]["message"]
        assert "truncated or corrupted" in refused[0]["message"] or "digest" in refused[0]["message"]
        assert refused[0]["config_id"] == first.config_id
        answers_with(first)

        volume.publish(other_module)
        refused = wait_for(server, "config_reload_refused", 2)
        assert "built with a different feature module" in refused[1]["message"]
        answers_with(first)
        assert (reloads(server, "refused"), reloads(server, "loaded")) == (2, 0)

        volume.publish(first.data)  # a new file, the content being served: a no-op
        wait_for(server, "config_reload_unchanged", 1)
        server.signal(signal.SIGHUP)  # asked to reload the same file: a no-op too
        wait_for(server, "config_reload_unchanged", 2)
        assert reloads(server, "unchanged") == 2 and not events(server, "config_loaded")

        # written in place, slowly: never read half-way (no refusal), loaded once complete
        with open(volume.path, "r+b") as file:
            file.truncate(0)
            for start in range(0, len(second.data), 512):
                file.write(second.data[start:start + 512])
                file.flush()
                time.sleep(0.03)
        loaded = wait_for(server, "config_loaded", 1)
        assert loaded[0]["config_id"] == second.config_id and loaded[0]["previous_config_id"] == first.config_id
        answers_with(second)
        served = stub.GetServingConfig(pb.GetServingConfigRequest(), timeout=30).config
        assert served.SerializeToString(deterministic=True) == second.data
        assert (reloads(server, "refused"), reloads(server, "loaded")) == (2, 1)
        assert metric(server, f'feature_service_config_info{{config_id="{second.config_id}",created_at="[^"]+"}}') == 1
        assert len(events(server, "config_reload_refused")) == 2
    assert server.returncode == 0


def test_sighup_while_the_server_loads_is_kept_for_after_the_boot(trained_config):
    server = ServerProcess(trained_config.path).launch()
    try:
        wait_until_catches(server.pid, signal.SIGHUP)  # handled from the start; the imports take seconds
        server.signal(signal.SIGHUP)  # its default action would kill the process
        wait_for(server, "serving", 1)
        unchanged = wait_for(server, "config_reload_unchanged", 1)  # the boot read that very file
        assert unchanged[0]["trigger"] == "signal"
    finally:
        assert server.stop() == 0, "\n".join(server.logs)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_swapped_in_config_starts_an_empty_drift_window(tmp_path, first, second, records, processes):
    """The drift window belongs to the config: traffic served by the old one is not compared with
    the new one's training profile (with --processes 2: in the windows every process shares)."""
    path = tmp_path / "serving_config.pb"
    atomic.write_bytes(path, first.data)
    with (ServerProcess(path, "--reload-interval", "0", "--processes", str(processes)) as server,
          PredictionClient(server.target, insecure=True, timeout=30) as client):
        client.predict_batch(records[:50])
        before = client.drift_report()
        assert (before.config_id, before.window_records) == (first.config_id, 50)
        atomic.write_bytes(path, second.data)
        wait_until_catches(server.pid, signal.SIGHUP)
        server.signal(signal.SIGHUP)
        wait_for(server, "config_loaded", processes)  # every process
        after = client.drift_report()
        assert (after.config_id, after.window_records) == (second.config_id, 0)
        client.predict_batch(records[:7])
        assert client.drift_report().window_records == 7
