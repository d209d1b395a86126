"""Reload benchmark: Predict latency while the config is swapped every second, against no swaps,
side by side, in one server process (fast path) on 127.0.0.1.

    python bench/reload.py            # full run (about 2 minutes)
    python bench/reload.py --smoke    # a few seconds: CI runs this so the script cannot rot

Two real configs are built by the ETL job (the bundled sample, ridge alpha 1 and 25). Each round
measures a quiet phase, then a phase in which a new config file is renamed over --config and the
server gets SIGHUP every second (the reload reads, verifies with golden rows, builds the predictor
and swaps while the calls go on). The clients are asyncio tasks on one channel, in one process; the
rounds alternate so that a drift of the machine's load hits both columns alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absenteeism.dataset import atomic
from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import prediction_service_pb2_grpc as pb_grpc
from bench.common import SAMPLE, build_config, machine_line, sample_records
from testkit.server_process import ServerProcess


async def _calls(target: str, records, clients: int, duration: float) -> tuple[list[float], int, set[str]]:
    """Latencies (s) of every call, the failures, and the config ids that answered."""
    requests = [pb.PredictRequest(record=r) for r in records]
    seconds: list[float] = []
    failures = 0
    config_ids: set[str] = set()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.PredictionServiceStub(channel)
        await stub.Predict(requests[0])
        stop_at = time.perf_counter() + duration

        async def client(offset: int) -> None:
            nonlocal failures
            i = offset
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                try:
                    response = await stub.Predict(requests[i % len(requests)], timeout=30)
                    seconds.append(time.perf_counter() - start)
                    config_ids.add(response.config_id)
                except grpc.RpcError:
                    failures += 1
                i += clients

        await asyncio.gather(*(client(c) for c in range(clients)))
    return seconds, failures, config_ids


@dataclass
class Phase:
    """What one phase ("no swaps" or "swaps") measured, summed over the rounds."""

    seconds: list[float] = field(default_factory=list)  # latency of every answered call
    failures: int = 0
    ids: set[str] = field(default_factory=set)  # config ids that answered
    swaps: int = 0  # configs loaded, from the server's log
    elapsed: float = 0.0
    refused: int = 0  # reloads refused (the "swaps" phase's, read at the end)
    reload_ms: list[float] = field(default_factory=list)  # likewise


class Swapper:
    """Every `period` seconds: rename the other config over --config, then SIGHUP the server."""

    def __init__(self, server: ServerProcess, path: Path, configs: list[bytes], period: float = 1.0):
        self.server, self.path, self.configs, self.period = server, path, configs, period
        self.swaps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.swaps += 1
            atomic.write_bytes(self.path, self.configs[self.swaps % 2])
            self.server.signal(signal.SIGHUP)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def logged(server: ServerProcess, event: str) -> list[dict]:
    return [json.loads(line) for line in list(server.logs) if line.startswith("{") and f'"{event}"' in line]


def measure(configs: list[bytes], records, clients: int, phase_seconds: float, rounds: int) -> dict[str, Phase]:
    path = Path(tempfile.mkdtemp(prefix="bench-reload-")) / "serving_config.pb"
    atomic.write_bytes(path, configs[0])
    figures = {phase: Phase() for phase in ("no swaps", "swaps")}
    # watching off: the swaps come from SIGHUP alone, exactly once a second
    with ServerProcess(path, "--reload-interval", "0") as server:
        for _ in range(rounds):
            for phase in ("no swaps", "swaps"):
                loaded_before = len(logged(server, "config_loaded"))
                if phase == "swaps":
                    with Swapper(server, path, configs):
                        seconds, failures, ids = asyncio.run(_calls(server.target, records, clients, phase_seconds))
                else:
                    seconds, failures, ids = asyncio.run(_calls(server.target, records, clients, phase_seconds))
                time.sleep(0.5)  # the last reload's log line
                phase_figures = figures[phase]
                phase_figures.seconds += seconds
                phase_figures.failures += failures
                phase_figures.ids |= ids
                phase_figures.swaps += len(logged(server, "config_loaded")) - loaded_before
                phase_figures.elapsed += phase_seconds
        refused = len(logged(server, "config_reload_refused"))
        reload_ms = [line["reload_ms"] for line in logged(server, "config_loaded")]
    figures["swaps"].refused = refused
    figures["swaps"].reload_ms = reload_ms
    return figures


def report(figures: dict[str, Phase], clients: int) -> None:
    quiet, busy = figures["no swaps"], figures["swaps"]

    def row(label: str, a: float, b: float) -> None:
        print(f"{label:<34}{a:>14.3f}{b:>14.3f}" + (f"{b / a:>11.2f}x" if a > 0 else ""))

    print(f"{'Predict, ' + str(clients) + ' clients':<34}{'no swaps':>14}{'swap every 1s':>14}{'swaps/none':>12}")
    for q in (50, 99):
        row(f"p{q} (ms)", float(np.percentile(np.asarray(quiet.seconds) * 1000, q)),
            float(np.percentile(np.asarray(busy.seconds) * 1000, q)))
    row("calls/s", len(quiet.seconds) / quiet.elapsed, len(busy.seconds) / busy.elapsed)
    print(f"{'failed calls':<34}{quiet.failures:>14}{busy.failures:>14}")
    print(f"{'configs swapped in':<34}{quiet.swaps:>14}{busy.swaps:>14}")
    print(f"config ids that answered during swaps: {len(busy.ids)}; reloads refused: {busy.refused}")
    if busy.reload_ms:
        print(f"reload (read, verify, build, swap) ms: p50 {np.percentile(busy.reload_ms, 50):.1f}, "
              f"max {max(busy.reload_ms):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="short phases: checks the script runs")
    parser.add_argument("--clients", type=int, default=8, help="concurrent Predict callers (default: %(default)s)")
    args = parser.parse_args()
    print(machine_line())
    first = (build_config() / "serving_config.pb").read_bytes()
    second = (build_config(SAMPLE, "--alpha", "25") / "serving_config.pb").read_bytes()
    figures = measure([first, second], sample_records(), args.clients,
                      phase_seconds=2.5 if args.smoke else 15.0, rounds=1 if args.smoke else 4)
    report(figures, args.clients)


if __name__ == "__main__":
    main()
