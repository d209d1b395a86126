"""What monitoring costs a call: the same server with monitoring off (--drift-window 0), with drift
monitoring (the default), and with drift plus the prediction log (at --log-rate: the server's
default share, or 1 for the worst case: every prediction logged), side by side in one run, each in
its own server process on 127.0.0.1.

    python bench/drift.py                 # full run (about 3 minutes)
    python bench/drift.py --log-rate 1    # the log's worst case
    python bench/drift.py --smoke         # a few calls of each kind: CI runs this so the script cannot rot

The servers run at the same time and are measured in turns (rounds of sequential Predict calls,
then each concurrency level, then each batch size), so that a noisy neighbour slows them alike.
Prints Predict p50/p90/p99, Predict calls/s with 8 concurrent clients and PredictBatch rows/s, then
each monitored server relative to the unmonitored one (goal: Predict p50 at most 5% slower).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import prediction_service_pb2_grpc as pb_grpc
from bench import load
from bench.common import build_config, machine_line, percentiles, sample_records
from bench.serving import batch_rows_per_second
from feature_service.settings import Settings
from testkit.server_process import ServerProcess


def servers(config: Path, log_folder: Path, log_rate: float) -> dict[str, ServerProcess]:
    return {
        "off": ServerProcess(config, "--drift-window", "0"),
        "drift": ServerProcess(config),
        "drift+log": ServerProcess(config, "--prediction-log", str(log_folder),
                                   "--prediction-log-sample-rate", str(log_rate)),
    }


def sequential_seconds(stub, requests) -> list[float]:
    seconds = []
    for request in requests:
        start = time.perf_counter()
        stub.Predict(request)
        seconds.append(time.perf_counter() - start)
    return seconds


def measure(running: dict[str, ServerProcess], records, smoke: bool) -> dict[str, dict[str, float]]:
    rounds, calls = (2, 20) if smoke else (10, 500)
    requests = [pb.PredictRequest(record=records[i % len(records)]) for i in range(calls)]
    channels = {name: grpc.insecure_channel(server.target) for name, server in running.items()}
    stubs = {name: pb_grpc.PredictionServiceStub(channel) for name, channel in channels.items()}
    seconds: dict[str, list[float]] = {name: [] for name in running}
    for stub in stubs.values():
        sequential_seconds(stub, requests[: min(200, calls)])  # warm-up (and the drift window is no longer empty)
    for _ in range(rounds):
        for name, stub in stubs.items():
            seconds[name] += sequential_seconds(stub, requests)
    for channel in channels.values():
        channel.close()
    figures = {name: percentiles(values) for name, values in seconds.items()}
    serialized = [request.SerializeToString() for request in requests]
    for name, server in running.items():  # 8 callers in 2 client processes apart from the servers
        figures[name]["clients_8"] = load.run(server.target, 8, 2, 0.3 if smoke else 8.0, serialized,
                                              start_delay=2.0 if smoke else 3.0).calls_per_s
    for name, server in running.items():
        figures[name]["batch_10000"] = batch_rows_per_second(server.target, records, 10_000, 2 if smoke else 10)
    return figures


def report(figures: dict[str, dict[str, float]]) -> None:
    names = list(figures)
    print(f"{'measure':<34}" + "".join(f"{n:>14}" for n in names)
          + "".join(f"{n + '/off':>16}" for n in names if n != "off"))
    rows = [("Predict sequential p50 (ms)", "p50"), ("Predict sequential p90 (ms)", "p90"),
            ("Predict sequential p99 (ms)", "p99"), ("Predict 8 clients (calls/s)", "clients_8"),
            ("PredictBatch 10000 (rows/s)", "batch_10000")]
    for label, key in rows:
        base = figures["off"][key]
        line = f"{label:<34}" + "".join(f"{figures[n][key]:>14.3f}" for n in names)
        line += "".join(f"{figures[n][key] / base:>15.3f}x" for n in names if n != "off")
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts: checks the script runs")
    parser.add_argument("--config", type=Path, help="a serving_config.pb to use (default: the ETL job is run on "
                                                    "the bundled sample first)")
    parser.add_argument("--log-rate", type=float, default=Settings.prediction_log_sample_rate,
                        help="--prediction-log-sample-rate of the drift+log server (default: the server's default)")
    args = parser.parse_args()
    print(machine_line() + f"; drift+log logs a share of {args.log_rate:g} of predictions")
    config = args.config or build_config() / "serving_config.pb"
    records = sample_records()
    with tempfile.TemporaryDirectory(prefix="bench-drift-log-") as log_folder:
        running = servers(config, Path(log_folder), args.log_rate)
        try:
            for server in running.values():
                server.start()
            figures = measure(running, records, args.smoke)
        finally:
            for server in running.values():
                server.stop()
    report(figures)


if __name__ == "__main__":
    main()
