"""Closed-loop Predict load from client processes apart from the server's.

`run(target, clients, processes, seconds, requests)` starts `processes` client processes (spawned
interpreters), each running its share of `clients` callers as asyncio tasks; every caller has its
own channel, so its own TCP connection (with --processes on the server, the kernel spreads
connections, not calls), and sends its next call as soon as the last one is answered, cycling
through different real records. All processes start together at a shared wall-clock instant.
The calls are the data set's own (`data_set=`, default absenteeism): its PredictRequest, sent with
its PredictionService stub, so to `/<its package>.PredictionService/Predict`.

Besides calls/s and latency percentiles, it reports how busy each client process was (CPU seconds
/ wall seconds): a client process near 1.0 would be the bottleneck; well below it, the callers
spent their time waiting for the server.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

START_DELAY = 3.0  # seconds for every client process to start, connect and warm up


@dataclass(frozen=True)
class Load:
    calls_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    client_busy: tuple[float, ...]  # per client process: CPU seconds / wall seconds
    server_cpu_seconds: float  # the server's processes during the measured seconds (0 without `server_cpu`)
    calls: int


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _callers(target: str, callers: int, seconds: float, start_at: float, requests: list[bytes],
                   modules: tuple[str, str]) -> tuple[list[float], float, float]:
    # Imported in the spawned client process only: the parent that starts the clients needs no gRPC.
    # `modules`: the data set's *_pb2 and *_pb2_grpc modules (only these: not its feature module).
    import grpc

    pb, pb_grpc = (importlib.import_module(module) for module in modules)

    messages = [pb.PredictRequest.FromString(data) for data in requests]
    # use_local_subchannel_pool: channels of one process would otherwise share one connection
    channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(callers)]
    stubs = [pb_grpc.PredictionServiceStub(channel) for channel in channels]
    for stub in stubs:
        await stub.Predict(messages[0], wait_for_ready=True, timeout=60)
    latencies: list[float] = []
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu_before, started = _cpu_seconds(), time.perf_counter()
    stop_at = started + seconds

    async def caller(k: int) -> None:
        i = k
        while (sent := time.perf_counter()) < stop_at:
            await stubs[k].Predict(messages[i % len(messages)], timeout=60)
            latencies.append(time.perf_counter() - sent)
            i += callers

    await asyncio.gather(*(caller(k) for k in range(callers)))
    wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    for channel in channels:
        await channel.close()
    return latencies, wall, cpu


def _client_process(target, callers, seconds, start_at, requests, modules, results) -> None:
    results.put(asyncio.run(_callers(target, callers, seconds, start_at, requests, modules)))


def run(target: str, clients: int, processes: int, seconds: float, requests: list[bytes],
        server_cpu: Callable[[], float] = lambda: 0.0, start_delay: float = START_DELAY,
        data_set: str = "absenteeism") -> Load:
    """`requests`: serialized PredictRequest messages of `data_set` to cycle through; `server_cpu()`:
    the server's CPU seconds so far, read when the callers start and when the last one is done."""
    from absenteeism import data_sets  # the parent only: a client process imports the two stub modules

    chosen = data_sets.named(data_set)
    modules = (chosen.service.__name__, chosen.service_grpc.__name__)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = min(processes, clients)
    shares = [clients // processes + (k < clients % processes) for k in range(processes)]
    start_at = time.time() + start_delay
    workers = [context.Process(target=_client_process,
                               args=(target, share, seconds, start_at, requests, modules, results))
               for share in shares]
    for worker in workers:
        worker.start()
    time.sleep(max(0.0, start_at - time.time()))
    cpu_before = server_cpu()
    outcomes = [results.get(timeout=seconds + 120) for _ in workers]
    server_seconds = server_cpu() - cpu_before
    for worker in workers:
        worker.join()
    latencies = np.concatenate([np.asarray(latency) for latency, _, _ in outcomes]) * 1000
    wall = max(wall for _, wall, _ in outcomes)
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    return Load(len(latencies) / wall, float(p50), float(p90), float(p99),
                tuple(cpu / wall for _, wall, cpu in outcomes), server_seconds, len(latencies))
