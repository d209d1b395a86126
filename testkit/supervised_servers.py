"""A server of two supervised processes, and how a test tells its children apart: each call on a
connection of its own, each child named by the "worker" field of its DEBUG "call" log lines."""

from __future__ import annotations

import time
import urllib.request

import grpc
from prometheus_client.parser import text_string_to_metric_families

from testkit.loopback import LOOPBACK
from testkit.server_process import ServerProcess


def two_processes(trained_config, *args: str, metrics_port: int = 0) -> ServerProcess:
    return ServerProcess(trained_config.path, "--processes", "2", "--log-level", "DEBUG", "--grace", "20", *args,
                         metrics_port=metrics_port)


def fresh_channel(target: str) -> grpc.Channel:
    """A channel with its own connection (channels of one process otherwise share one)."""
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def workers_that_answered(server: ServerProcess, method: str) -> set[int]:
    return {entry["worker"] for entry in server.events("call") if entry["method"] == method and entry["code"] == "OK"}


def wait_for(condition, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def metric_samples(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=10).read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
