"""What each model kind costs the server, side by side in one run: the ridge config (a linear model)
against the ONNX kinds the job makes, each served by the fast predictor in one process on
127.0.0.1 and loaded by client processes apart from it.

    python bench/model_kinds.py              # every kind, 3 rounds (about 4 minutes)
    python bench/model_kinds.py --micro-batch-rows 64   # the servers micro-batch concurrent calls
    python bench/model_kinds.py --smoke      # a few calls of each (CI runs this so the script cannot rot)

Per kind: sequential Predict p50 (one caller), server CPU per Predict call and calls/s at 8
concurrent callers, PredictBatch rows/s at 10,000 records; then each kind's server CPU per call
over ridge's (the budget for the built-in tree model is 50 us). The kinds take turns, round after
round (--rounds), so that the machine's drift spreads over all of them; each figure is the median
of its rounds, and the spread of server CPU per call (max - min over the rounds) says how far
apart two kinds must be to differ.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absenteeism.v1 import prediction_service_pb2 as pb
from bench import load
from bench.common import SAMPLE, build_config, machine_line, process_tree_cpu_seconds, sample_records
from bench.serving import batch_rows_per_second, sequential_latency
from testkit.server_process import ServerProcess

KINDS = {  # name: the job's flags
    "ridge": ("--model", "ridge"),
    "gbt": ("--model", "gbt"),
    "gbt-binary": ("--model", "gbt", "--label", "long_absence"),
    "logistic-binary": ("--model", "testkit.estimators:scaled_logistic_regression", "--label", "long_absence"),
}
CLIENTS = 8


def measure(config: Path, records, args) -> dict[str, float]:
    requests = [pb.PredictRequest(record=record).SerializeToString() for record in records]
    flags = ["--micro-batch-rows", str(args.micro_batch_rows)] if args.micro_batch_rows else []
    with ServerProcess(config, "--predictor", "fast", *flags) as running:
        sequential = sequential_latency(running.target, records, 30 if args.smoke else 3000)
        loaded = load.run(running.target, CLIENTS, args.client_processes, 0.3 if args.smoke else args.seconds,
                          requests, server_cpu=lambda: process_tree_cpu_seconds(running.pid),
                          start_delay=2.0 if args.smoke else 3.0)
        batch = batch_rows_per_second(running.target, records, 10_000, 2 if args.smoke else 10)
    return {"Predict sequential p50 (ms)": sequential["p50"],
            f"Predict {CLIENTS} clients (calls/s)": loaded.calls_per_s,
            f"Predict {CLIENTS} clients server CPU/call (us)": loaded.server_cpu_seconds / max(loaded.calls, 1) * 1e6,
            "PredictBatch 10000 (rows/s)": batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts: checks the script runs")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of load per kind and round")
    parser.add_argument("--rounds", type=int, default=3, help="turns each kind takes, alternating")
    parser.add_argument("--micro-batch-rows", type=int, default=0,
                        help="serve with --micro-batch-rows N (0: the server's default, off)")
    args = parser.parse_args()
    print(machine_line())
    records = sample_records()
    kinds = args.kinds.split(",")
    configs = {kind: build_config(SAMPLE, *KINDS[kind]) for kind in kinds}
    rounds: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(1 if args.smoke else args.rounds):
        for kind in kinds:
            rounds[kind].append(measure(configs[kind] / "serving_config.pb", records, args))
    measures = list(rounds[kinds[0]][0])
    figures = {kind: {name: statistics.median(r[name] for r in rounds[kind]) for name in measures} for kind in kinds}
    print(f"{'measure':<44}" + "".join(f"{kind:>17}" for kind in kinds))
    for name in measures:
        print(f"{name:<44}" + "".join(f"{figures[kind][name]:>17.3f}" for kind in kinds))
    cpu = f"Predict {CLIENTS} clients server CPU/call (us)"
    print(f"{'server CPU/call spread over rounds (us)':<44}"
          + "".join(f"{max(r[cpu] for r in rounds[kind]) - min(r[cpu] for r in rounds[kind]):>17.1f}" for kind in kinds))
    if "ridge" in figures:
        print(f"{'server CPU/call over ridge (us)':<44}"
              + "".join(f"{figures[kind][cpu] - figures['ridge'][cpu]:>17.1f}" for kind in kinds))


if __name__ == "__main__":
    main()
