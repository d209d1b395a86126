"""--processes N, the cases an adversarial pass found: a SIGTERM at any phase of a supervised boot
stops it (exit 0), nothing is left in the temp folder after any kind of stop, a refused config on
disk never costs a process, and /metrics says which config the children serve."""

from __future__ import annotations

import os
import re
import signal
import tempfile
import time
from pathlib import Path

import pytest

from absenteeism import config_io
from absenteeism.dataset import atomic
from absenteeism.online import converters
from clients import PredictionClient
from testkit.loopback import free_port
from testkit.process_control import wait_until_catches
from testkit.server_process import ServerProcess
from testkit.supervised_servers import is_running, metric_samples, two_processes, wait_for

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`


def temp_folders_of(pid: int) -> list[Path]:
    return sorted(p for p in Path(tempfile.gettempdir()).iterdir() if re.match(rf"feature_service-\w+-{pid}-", p.name))


def config_info(port: int) -> dict[str, str]:
    """config_id -> created_at of each config feature_service_config_info says is served."""
    samples = metric_samples(port)
    return {dict(labels)["config_id"]: dict(labels)["created_at"]
            for (name, labels), value in samples.items() if name == "feature_service_config_info" and value == 1}


# SIGINT in the imports phase is left out: Python's own SIGINT handler (KeyboardInterrupt) is in
# place from the interpreter's start, so "catches SIGINT" cannot tell when __main__'s handler is.
@pytest.mark.parametrize("phase,signum", [("imports", signal.SIGTERM), ("starting children", signal.SIGTERM),
                                          ("serving", signal.SIGTERM), ("starting children", signal.SIGINT),
                                          ("serving", signal.SIGINT)])
def test_a_stop_at_any_phase_of_a_supervised_boot_exits_0_and_leaves_nothing(trained_config, phase, signum):
    server = ServerProcess(trained_config.path, "--processes", "2", metrics_port=free_port()).launch()
    wait_until_catches(server.pid, signum)  # __main__'s early handler: the modules still load
    if phase == "starting children":
        wait_for(lambda: server.events("processes_starting"), 30, "the children starting")
    elif phase == "serving":
        wait_for(lambda: server.events("serving"), 60, "the supervisor serving")
    server.signal(signum)
    assert server.wait(60) == 0, "\n".join(server.logs)
    if phase == "imports":
        assert not server.events("serving") and not server.events("processes_starting")
    assert not temp_folders_of(server.pid)
    assert not any("Traceback" in line for line in server.logs)


def test_a_supervisor_killed_outright_leaves_folders_the_next_one_removes(trained_config):
    with two_processes(trained_config, metrics_port=free_port()) as first:
        left = temp_folders_of(first.pid)
        assert {p.name.split("-")[1] for p in left} == {"drift", "metrics", "config"}
        children = first.serving_entry["pids"]
        first.signal(signal.SIGKILL)
        assert first.wait(30) == -signal.SIGKILL
        wait_for(lambda: not any(is_running(pid) for pid in children), 60, "the orphaned children to stop")
    assert all(folder.exists() for folder in left)  # nobody could clean up
    with two_processes(trained_config) as second:
        swept = {entry["path"] for entry in second.events("temp_swept")}
        assert {str(folder) for folder in left} <= swept
        assert not any(folder.exists() for folder in left)
    assert not temp_folders_of(second.pid)


def test_metrics_name_the_config_the_children_serve_before_and_after_a_reload(trained_config, tmp_path):
    path = tmp_path / "serving_config.pb"
    atomic.write_bytes(path, trained_config.path.read_bytes())
    newer = config_io.parse_config(trained_config.path.read_bytes(), path)
    newer.provenance.created_at.FromSeconds(newer.provenance.created_at.seconds + 3600)  # another config id
    config_io.seal(newer)
    port = free_port()
    with ServerProcess(path, "--processes", "2", "--reload-interval", "0", metrics_port=port) as server:
        first_id = trained_config.config.content_sha256
        assert config_info(port) == {first_id: trained_config.config.provenance.created_at.ToJsonString()}
        atomic.write_bytes(path, newer.SerializeToString(deterministic=True))
        server.signal(signal.SIGHUP)
        wait_for(lambda: len(server.events("config_loaded")) == 2, 60, "both children to load the new config")
        wait_for(lambda: config_info(port) == {newer.content_sha256: newer.provenance.created_at.ToJsonString()},
                 30, "the metric to name the new config")


def test_a_refused_config_on_disk_never_costs_a_process(trained_config, tmp_path):
    """A truncated file renamed over --config is refused (the old config keeps serving); a child
    killed then is replaced by one that boots on the config the supervisor last verified, not on
    the bad file: no exit 78, no backoff, both processes serving again."""
    path = tmp_path / "serving_config.pb"
    good = trained_config.path.read_bytes()
    atomic.write_bytes(path, good)
    port = free_port()
    records = converters.frame_to_records(trained_config.accepted.iloc[:5])
    with ServerProcess(path, "--processes", "2", "--reload-interval", "0.2", metrics_port=port) as server:
        atomic.write_bytes(path, good[: len(good) // 2])
        wait_for(lambda: len(server.events("config_reload_refused")) >= 2, 60, "both children to refuse the file")
        victim = server.serving_entry["pids"][0]
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(lambda: server.events("process_serving")[2:], 60, "the replacement to serve")
        assert replaced[0]["pid"] != victim
        assert not [e for e in server.events("process_exited") if e.get("exit_code") == 78]
        wait_for(lambda: metric_samples(port)[("feature_service_processes", ())] == 2, 30, "two processes serving")
        assert config_info(port) == {trained_config.config.content_sha256:
                                     trained_config.config.provenance.created_at.ToJsonString()}
        with PredictionClient(server.target, insecure=True) as client:
            for record in records:
                assert client.predict(record).config_id == trained_config.config.content_sha256
        time.sleep(0.5)  # a few more polls of the bad file: refused again, never a crash
        assert len(server.events("process_exited")) == 1
