"""Server benchmark: the floor, our server with 1 and with N processes, and the reference path, side
by side in one run, each server on 127.0.0.1, loaded by client processes apart from it.

    python bench/serving.py                        # full run (about 4 minutes)
    python bench/serving.py --processes 1,2        # our server with 1 and 2 processes (the default)
    python bench/serving.py --smoke                # a few calls of each kind (8 callers only): CI runs this so the script cannot rot
    python bench/serving.py --data-sets            # instead: text and missing-value fields (about 1.5 minutes)
    python bench/serving.py --breakdown            # instead: where the server's CPU per Predict goes (about 9 minutes)
    python bench/serving.py --breakdown --pin      # the same, every server on CPU 0 and its callers on CPU 1

Servers (--predictors): `echo` is bench/echo_server.py, the same contract doing no work with gRPC's
thread server (what feature_service uses): the floor of a Python gRPC server process here;
`echo-aio` the same on grpc.aio; `fast` is our server (`fast xN`: with --processes N);
`fast-batched` adds --micro-batch-rows 64; `reference` is --predictor reference (a Hamilton driver per call).

Prints sequential Predict latency (one caller, in this process), Predict throughput and latency at
1, 8 and 32 concurrent callers (bench/load.py: each caller its own channel and connection, spread
over client processes apart from the server's), the server's CPU per call, how busy the busiest
client process was, and PredictBatch rows/s at 1, 100 and 10,000 records; then each column against
the echo floor, and fast/reference.

With --data-sets, the per-record cost of text and missing-value fields instead: three servers, each
`fast` in one process on its own data set's config (built by the job) and typed service, side by
side: `absenteeism` (its sample's records: 20 numeric fields, every one set, read as one float64
matrix), `penguins, all fields set` (the accepted rows of penguins-raw.csv with every field set:
text categories, a bool, a date as text, numbers and free text) and `penguins, missing values` (the
same records with every nullable field cleared). For each: sequential Predict p50, calls/s and the
server's CPU per Predict with 8 callers, PredictBatch of 10,000 records in rows/s and the server's CPU
per row; then each penguins column over absenteeism's.

With --breakdown, the server's CPU per Predict call stage by stage against the echo's, and the
goal ratios of issue 27 (bench/call_costs.py says how).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absenteeism import data_sets
from bench import call_costs, load
from bench.common import (
    build_config,
    data_set_records,
    machine_line,
    percentiles,
    process_tree_cpu_seconds,
    sample_records,
)
from testkit.server_process import ServerProcess

CLIENTS = (1, 8, 32)
GOAL_CLIENTS = 8


@dataclass
class Figures:
    """One server's measurements."""

    sequential: dict[str, float]  # Predict latency percentiles (ms), one call at a time
    loads: dict[int, load.Load] = field(default_factory=dict)  # by concurrent clients
    batch_rows_per_s: dict[int, float] = field(default_factory=dict)  # PredictBatch, by records per call


def contract(data_set: str) -> tuple[ModuleType, ModuleType]:
    """The data set's request messages (*_pb2) and PredictionService stub (*_pb2_grpc) modules."""
    chosen = data_sets.named(data_set)
    return chosen.service, chosen.service_grpc


def sequential_latency(target: str, records, calls: int, data_set: str = data_sets.DEFAULT) -> dict[str, float]:
    pb, pb_grpc = contract(data_set)
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


def batch_cost(target: str, records, size: int, repeats: int, data_set: str = data_sets.DEFAULT,
               server_cpu: Callable[[], float] = lambda: 0.0) -> tuple[float, float]:
    """PredictBatch of `size` records, `repeats` times after one warm-up call: (rows/s, the server's
    CPU seconds per row, from `server_cpu()` read before and after; 0 without it)."""
    pb, pb_grpc = contract(data_set)
    batch = [records[i % len(records)] for i in range(size)]
    request = pb.PredictBatchRequest(records=batch)
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20),
                                                ("grpc.max_receive_message_length", 64 << 20)]) as channel:
        stub = pb_grpc.PredictionServiceStub(channel)
        stub.PredictBatch(request)
        cpu_before, start = server_cpu(), time.perf_counter()
        for _ in range(repeats):
            stub.PredictBatch(request)
        seconds, cpu = time.perf_counter() - start, server_cpu() - cpu_before
        return size * repeats / seconds, cpu / (size * repeats)


def batch_rows_per_second(target: str, records, size: int, repeats: int) -> float:
    return batch_cost(target, records, size, repeats)[0]


def server(name: str, config: Path) -> ServerProcess:
    if name.startswith("echo"):
        process = ServerProcess(None)  # started like the real server: it prints the same "serving" line
        process.command = [sys.executable, str(Path(__file__).resolve().parent / "echo_server.py")]
        if name == "echo-aio":
            process.command.append("--aio")
        return process
    if name == "fast-batched":
        return ServerProcess(config, "--predictor", "fast", "--micro-batch-rows", "64")
    if name.startswith("fast x"):
        return ServerProcess(config, "--predictor", "fast", "--processes", name.removeprefix("fast x"))
    return ServerProcess(config, "--predictor", name)


def measure(name: str, config: Path, records, args) -> Figures:
    pb, _ = contract(data_sets.DEFAULT)
    requests = [pb.PredictRequest(record=record).SerializeToString() for record in records]
    with server(name, config) as running:
        results = Figures(sequential_latency(running.target, records, 30 if args.smoke else 3000))
        for clients in (GOAL_CLIENTS,) if args.smoke else CLIENTS:
            results.loads[clients] = load.run(
                running.target, clients, args.client_processes, 0.3 if args.smoke else args.seconds, requests,
                server_cpu=lambda: process_tree_cpu_seconds(running.pid), start_delay=2.0 if args.smoke else 3.0)
        for size, repeats in ((1, 2000), (100, 300), (10_000, 10)):
            results.batch_rows_per_s[size] = batch_rows_per_second(running.target, records, size,
                                                                   2 if args.smoke else repeats)
    return results


def report(figures: dict[str, Figures]) -> None:
    names = list(figures)
    compared = [n for n in ("fast", "reference") if n in names]
    print(f"{'measure':<44}" + "".join(f"{n:>14}" for n in names) + (f"{'fast/ref':>10}" if len(compared) == 2 else ""))

    def row(label: str, values: list[float], better_high: bool | None, digits: int = 3) -> None:
        line = f"{label:<44}" + "".join(f"{v:>14.{digits}f}" for v in values)
        if len(compared) == 2 and better_high is not None:
            fast, reference = (values[names.index(n)] for n in compared)
            if min(fast, reference) > 0:
                line += f"{(fast / reference if better_high else reference / fast):>9.1f}x"
        print(line)

    for q in ("p50", "p90", "p99"):
        row(f"Predict sequential {q} (ms)", [figures[n].sequential[q] for n in names], False)
    measured = [c for c in CLIENTS if c in figures[names[0]].loads]
    for clients in measured:
        loads = [figures[n].loads[clients] for n in names]
        row(f"Predict {clients} clients (calls/s)", [x.calls_per_s for x in loads], True, 1)
        row(f"Predict {clients} clients p50 (ms)", [x.p50_ms for x in loads], False)
        row(f"Predict {clients} clients p99 (ms)", [x.p99_ms for x in loads], False)
        row(f"Predict {clients} clients server CPU/call (us)",
            [x.server_cpu_seconds / max(x.calls, 1) * 1e6 for x in loads], None, 1)
        row(f"Predict {clients} clients busiest client process", [max(x.client_busy) for x in loads], None, 2)
    for size in (1, 100, 10_000):
        row(f"PredictBatch {size} (rows/s)", [figures[n].batch_rows_per_s[size] for n in names], True, 1)
    if "echo" in names:
        for clients in measured:
            floor = figures["echo"].loads[clients].calls_per_s
            row(f"Predict {clients} clients / echo (1 process)",
                [figures[n].loads[clients].calls_per_s / floor for n in names], None, 2)


# ---- --data-sets: the per-record cost of text and missing-value fields ------------------------------------


@dataclass(frozen=True)
class Workload:
    """One column of the data-set comparison: a data set's config and the records sent to it."""

    label: str
    short: str  # its ratio column's name: "<short>/absenteeism"
    data_set: str
    config: Path
    records: list


def data_set_workloads(args) -> tuple[list[Workload], str]:
    """The three columns, and a line saying which records each sends."""
    absenteeism_config = args.config or build_config() / "serving_config.pb"
    absenteeism_records = sample_records()
    penguins = data_sets.named("penguins")
    penguins_config = build_config(penguins.sample_input, dataset="penguins") / "serving_config.pb"
    accepted = data_set_records("penguins")
    every_field = [column.name for column in penguins.table.columns]
    nullable = [column.name for column in penguins.table.columns if column.nullable]
    complete = [record for record in accepted if all(record.HasField(name) for name in every_field)]
    missing = []
    for record in complete:
        cleared = type(record)()
        cleared.CopyFrom(record)
        for name in nullable:
            cleared.ClearField(name)
        missing.append(cleared)
    described = (f"records: absenteeism, the {len(absenteeism_records)} sample rows; penguins, the {len(complete)} of "
                 f"{len(accepted)} accepted rows of {penguins.sample_input.name} with every field set; missing values: "
                 f"the same {len(complete)} without {', '.join(nullable)}")
    return [Workload("absenteeism", "absenteeism", "absenteeism", absenteeism_config, absenteeism_records),
            Workload("penguins, all fields set", "all set", "penguins", penguins_config, complete),
            Workload("penguins, missing values", "missing", "penguins", penguins_config, missing)], described


def measure_data_set(workload: Workload, args) -> dict[str, float]:
    pb, _ = contract(workload.data_set)
    requests = [pb.PredictRequest(record=record).SerializeToString() for record in workload.records]
    with ServerProcess(workload.config, "--predictor", "fast") as running:
        def server_cpu() -> float:
            return process_tree_cpu_seconds(running.pid)

        sequential = sequential_latency(running.target, workload.records, 30 if args.smoke else 3000,
                                        data_set=workload.data_set)
        loaded = load.run(running.target, GOAL_CLIENTS, args.client_processes, 0.3 if args.smoke else args.seconds,
                          requests, server_cpu=server_cpu, start_delay=2.0 if args.smoke else 3.0,
                          data_set=workload.data_set)
        rows_per_s, cpu_per_row = batch_cost(running.target, workload.records, 10_000, 2 if args.smoke else 10,
                                             data_set=workload.data_set, server_cpu=server_cpu)
    cpu_per_call = loaded.server_cpu_seconds / max(loaded.calls, 1)
    return {"Predict sequential p50 (ms)": sequential["p50"],
            f"Predict {GOAL_CLIENTS} clients (calls/s)": loaded.calls_per_s,
            f"Predict {GOAL_CLIENTS} clients server CPU/call (us)": cpu_per_call * 1e6,
            "PredictBatch 10000 (rows/s)": rows_per_s,
            "PredictBatch 10000 server CPU/row (us)": cpu_per_row * 1e6}


def report_data_sets(workloads: list[Workload], figures: list[dict[str, float]]) -> None:
    """Side by side, then each column after the first over the first (absenteeism)."""
    base = workloads[0]
    print(f"{'measure':<40}" + "".join(f"{w.label:>26}" for w in workloads)
          + "".join(f"{w.short + '/' + base.short:>22}" for w in workloads[1:]))
    for name, reference in figures[0].items():
        values = [measured[name] for measured in figures]
        digits = 3 if "(ms)" in name else 1
        print(f"{name:<40}" + "".join(f"{value:>26.{digits}f}" for value in values)
              + "".join(f"{(value / reference if reference > 0 else float('nan')):>22.2f}" for value in values[1:]))


def data_set_comparison(args) -> None:
    workloads, described = data_set_workloads(args)
    services = dict.fromkeys(data_sets.named(w.data_set).service_name for w in workloads)
    print(f"data sets: one server each (fast predictor, 1 process) on its data set's config and service "
          f"({', '.join(services)}); {GOAL_CLIENTS} callers in {args.client_processes} client processes, "
          f"each its own connection")
    print(described)
    report_data_sets(workloads, [measure_data_set(workload, args) for workload in workloads])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts: checks the script runs")
    parser.add_argument("--predictors", default="echo,echo-aio,fast,reference",
                        help="servers to measure (see above); `fast` is measured at every --processes count")
    parser.add_argument("--processes", default="1,2",
                        help="process counts of our server (`fast`): 1 is the plain server, N > 1 runs --processes N")
    parser.add_argument("--client-processes", type=int, default=4,
                        help="client processes sharing the concurrent callers (each caller its own connection)")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of load per measurement")
    parser.add_argument("--config", type=Path, help="a serving_config.pb to use (default: the ETL job is run on "
                                                    "the bundled sample first); with --data-sets, absenteeism's")
    parser.add_argument("--data-sets", action="store_true",
                        help="instead of the predictors: absenteeism against penguins with every field set and "
                             "with its nullable fields missing, side by side (the fast predictor, 1 process)")
    parser.add_argument("--breakdown", action="store_true",
                        help="instead of the predictors: the server's CPU per Predict, stage by stage, against the "
                             "echo's (bench/call_costs.py)")
    parser.add_argument("--pin", action="store_true",
                        help="with --breakdown: every server thread on CPU 0, this process and the client "
                             "processes on CPU 1 (a server with a core of its own, as when its callers are elsewhere)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="with --breakdown: rounds of load on each server, taken in turns (median reported)")
    args = parser.parse_args()
    if args.pin and not {call_costs.SERVER_CPU, call_costs.CLIENT_CPU} <= os.sched_getaffinity(0):
        parser.error(f"--pin needs CPUs {call_costs.SERVER_CPU} and {call_costs.CLIENT_CPU}")
    print(machine_line())
    if args.data_sets:
        data_set_comparison(args)
        return
    if args.breakdown:
        call_costs.breakdown(args.config or build_config() / "serving_config.pb", sample_records(), args)
        return
    print(f"load: {args.client_processes} client processes (fewer for fewer callers), each caller its own connection")
    config = args.config or build_config() / "serving_config.pb"
    records = sample_records()
    names: list[str] = []
    for name in args.predictors.split(","):
        if name == "fast":
            names += ["fast" if n == "1" else f"fast x{n}" for n in args.processes.split(",")]
        else:
            names.append(name)
    figures = {name: measure(name, config, records, args) for name in names}
    report(figures)


if __name__ == "__main__":
    main()
