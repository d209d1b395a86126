"""Server benchmark: the fast path and the reference path (a Hamilton driver per request), side
by side in one run, each in its own server process on 127.0.0.1, with the same client.

    python bench/serving.py            # full run (about 2 minutes)
    python bench/serving.py --smoke    # a few calls of each kind: CI runs this so the script cannot rot

Also measures bench/echo_server.py, a gRPC server of the same contract that does no work: the
floor this machine allows. Prints sequential Predict latency (p50/p90/p99), Predict throughput at 1, 8 and 32 concurrent
clients (asyncio tasks on one channel, in one client process), and PredictBatch rows/s at batch
sizes 1, 100 and 10,000, then the fast/reference ratios. Client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absenteeism.v1 import prediction_service_pb2 as pb  # noqa: E402
from absenteeism.v1 import prediction_service_pb2_grpc as pb_grpc  # noqa: E402
from bench.common import build_config, machine_line, percentiles, sample_records  # noqa: E402
from feature_service.testing import ServerProcess  # noqa: E402


def sequential_latency(target: str, records, calls: int) -> dict[str, float]:
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.PredictionServiceStub(channel)
        requests = [pb.PredictRequest(record=records[i % len(records)]) for i in range(calls)]
        for request in requests[: min(200, calls)]:  # warm-up
            stub.Predict(request)
        seconds = []
        for request in requests:
            start = time.perf_counter()
            stub.Predict(request)
            seconds.append(time.perf_counter() - start)
    return percentiles(seconds)


async def _concurrent(target: str, records, clients: int, duration: float) -> dict[str, float]:
    requests = [pb.PredictRequest(record=r) for r in records]
    seconds: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.PredictionServiceStub(channel)
        await stub.Predict(requests[0])
        stop_at = time.perf_counter() + duration

        async def client(offset: int) -> None:
            i = offset
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                await stub.Predict(requests[i % len(requests)])
                seconds.append(time.perf_counter() - start)
                i += clients

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        elapsed = time.perf_counter() - started
    return {"calls_per_s": len(seconds) / elapsed, **percentiles(seconds)}


def throughput(target: str, records, clients: int, duration: float) -> dict[str, float]:
    return asyncio.run(_concurrent(target, records, clients, duration))


def batch_rows_per_second(target: str, records, size: int, repeats: int) -> float:
    batch = [records[i % len(records)] for i in range(size)]
    request = pb.PredictBatchRequest(records=batch)
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20),
                                                ("grpc.max_receive_message_length", 64 << 20)]) as channel:
        stub = pb_grpc.PredictionServiceStub(channel)
        stub.PredictBatch(request)
        start = time.perf_counter()
        for _ in range(repeats):
            stub.PredictBatch(request)
        return size * repeats / (time.perf_counter() - start)


def echo_server() -> ServerProcess:
    """bench/echo_server.py, started like the real server (it prints the same "serving" line)."""
    server = ServerProcess(None)
    server.command = [sys.executable, str(Path(__file__).resolve().parent / "echo_server.py")]
    return server


def measure(predictor: str, config: Path, records, smoke: bool) -> dict[str, object]:
    results: dict[str, object] = {}
    if predictor == "echo":
        server = echo_server()
    elif predictor == "fast-batched":
        server = ServerProcess(config, "--predictor", "fast", "--micro-batch-rows", "64")
    else:
        server = ServerProcess(config, "--predictor", predictor)
    with server:
        results["sequential"] = sequential_latency(server.target, records, 30 if smoke else 3000)
        for clients in (1, 8, 32):
            results[f"clients_{clients}"] = throughput(server.target, records, clients, 0.3 if smoke else 8.0)
        for size, repeats in ((1, 2000), (100, 300), (10_000, 10)):
            results[f"batch_{size}"] = batch_rows_per_second(
                server.target, records, size, 2 if smoke else repeats)
    return results


def report(figures: dict[str, dict[str, object]]) -> None:
    names = list(figures)
    compared = [n for n in ("fast", "reference") if n in names]
    print(f"{'measure':<36}" + "".join(f"{n:>16}" for n in names)
          + (f"{'fast/ref':>10}" if len(compared) == 2 else ""))

    def row(label: str, values: list[float], better_high: bool) -> None:
        line = f"{label:<36}" + "".join(f"{v:>16.3f}" for v in values)
        if len(compared) == 2:
            fast, reference = (values[names.index(n)] for n in compared)
            if min(fast, reference) > 0:
                line += f"{(fast / reference if better_high else reference / fast):>9.1f}x"
        print(line)

    for q in ("p50", "p90", "p99"):
        row(f"Predict sequential {q} (ms)", [figures[n]["sequential"][q] for n in names], better_high=False)
    for clients in (1, 8, 32):
        key = f"clients_{clients}"
        row(f"Predict {clients} clients (calls/s)", [figures[n][key]["calls_per_s"] for n in names], True)
        row(f"Predict {clients} clients p99 (ms)", [figures[n][key]["p99"] for n in names], False)
    for size in (1, 100, 10_000):
        row(f"PredictBatch {size} (rows/s)", [figures[n][f"batch_{size}"] for n in names], True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts: checks the script runs")
    parser.add_argument("--predictors", default="fast,fast-batched,reference,echo",
                        help="servers to measure: fast (the default server), fast-batched (--micro-batch-rows 64), "
                             "reference (--predictor reference), echo (bench/echo_server.py, no work at all)")
    parser.add_argument("--config", type=Path, help="a serving_config.pb to use (default: the ETL job is run on "
                                                    "the bundled sample first)")
    args = parser.parse_args()
    print(machine_line())
    config = args.config or build_config() / "serving_config.pb"
    records = sample_records()
    figures = {name: measure(name, config, records, args.smoke)
               for name in args.predictors.split(",")}
    report(figures)


if __name__ == "__main__":
    main()
