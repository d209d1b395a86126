"""Before/after for the server: the same config served by this checkout's code and by another
checkout's (e.g. the commit before a change), side by side, measured in turns round after round,
ratios printed in one run so that they hold on a noisy machine:

- Predict, 8 callers in 4 client processes: server CPU per call (from /proc) and calls/s;
- Predict, one caller: sequential p50;
- PredictColumns of 10,000 records, one call at a time: rows/s and server CPU per row.

Each server is `python -m feature_service serve` with its defaults, started in its checkout's
folder (so it imports that checkout's code). The config is built by this checkout's job; the other
checkout must accept it (same contract and feature module).

    git worktree add /tmp/before <commit> && python bench/server_before_after.py --before /tmp/before
    python bench/server_before_after.py --before /tmp/before --rounds 5 --seconds 8
    python bench/server_before_after.py --before . --smoke     # a few calls: CI runs this so the script cannot rot
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import sys
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absenteeism import data_sets
from absenteeism.v1 import prediction_service_pb2 as pb
from bench import load
from bench.call_costs import sequential_seconds
from bench.columns import LARGE_MESSAGES, requests, timed_call
from bench.common import build_config, machine_line, percentiles, process_tree_cpu_seconds, sample_records
from testkit.server_process import ServerProcess

CLIENTS = 8
BATCH_ROWS = 10_000


def columns_figures(server: ServerProcess, request: pb.PredictColumnsRequest, calls: int) -> tuple[float, float]:
    """(rows/s, server CPU seconds a row) of `calls` PredictColumns calls, one at a time."""
    with grpc.insecure_channel(server.target, options=LARGE_MESSAGES) as channel:
        method = data_sets.named("absenteeism").service_grpc.PredictionServiceStub(channel).PredictColumns
        method(request)  # warm-up
        wall = cpu = 0.0
        for _ in range(calls):
            call_wall, call_cpu = timed_call(server, method, request)
            wall, cpu = wall + call_wall, cpu + call_cpu
    rows = BATCH_ROWS * calls
    return rows / wall, cpu / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout (its folder)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of Predict load per server and round")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if not (args.before / "feature_service").is_dir():
        raise SystemExit(f"--before {args.before}: not a checkout of this project (no feature_service folder)")
    rounds, seconds, sequential_calls, batch_calls = (1, 0.3, 20, 2) if args.smoke else (
        args.rounds, args.seconds, 1000, 30)
    config = build_config() / "serving_config.pb"
    records = sample_records()
    sequential = [pb.PredictRequest(record=records[i % len(records)]) for i in range(sequential_calls)]
    serialized = [pb.PredictRequest(record=record).SerializeToString() for record in records]
    _, columns = requests("absenteeism", BATCH_ROWS, False)
    print(machine_line())
    print(f"before: {args.before.resolve()}; after: this checkout; {rounds} round(s), servers taken in turns")
    names = ("before", "after")
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    with contextlib.ExitStack() as stack:
        servers = {"before": stack.enter_context(ServerProcess(config, cwd=args.before.resolve())),
                   "after": stack.enter_context(ServerProcess(config))}
        for _ in range(rounds):
            for name, server in servers.items():
                got = figures[name]
                got.setdefault("p50", []).append(percentiles(sequential_seconds(server.target, sequential))["p50"])
                loaded = load.run(server.target, CLIENTS, args.client_processes, seconds, serialized,
                                  server_cpu=functools.partial(process_tree_cpu_seconds, server.pid),
                                  start_delay=2.0 if args.smoke else 3.0)
                got.setdefault("cpu", []).append(loaded.server_cpu_seconds / max(loaded.calls, 1))
                got.setdefault("calls", []).append(loaded.calls_per_s)
                rows_per_s, cpu_per_row = columns_figures(server, columns, batch_calls)
                got.setdefault("rows", []).append(rows_per_s)
                got.setdefault("cpu_row", []).append(cpu_per_row)
    print(f"\nmedians over rounds{'':<34}{'before':>14}{'after':>14}{'after/before':>14}")
    for key, label, scale in (("cpu", "Predict, 8 callers: server CPU/call (us)", 1e6),
                              ("calls", "Predict, 8 callers: calls/s", 1),
                              ("p50", "Predict, 1 caller: p50 (ms)", 1),  # percentiles() reads ms
                              ("rows", f"PredictColumns {BATCH_ROWS:,}: rows/s", 1),
                              ("cpu_row", f"PredictColumns {BATCH_ROWS:,}: server CPU/row (us)", 1e6)):
        before, after = (statistics.median(figures[name][key]) * scale for name in names)
        ratio = after / before if before else float("nan")
        print(f"{label:<53}{before:>14.3f}{after:>14.3f}{ratio:>14.2f}")


if __name__ == "__main__":
    main()
