"""Batch benchmark: the same records as PredictBatch (records) and as PredictColumns (columns), one
server process, 10,000 records a call, calls alternating, one at a time: rows/s and the server's CPU
per row (read from /proc before and after), each bit of every answer compared between the two.

    python bench/columns.py                      # absenteeism's sample, 10,000-record calls, 30 of each
    python bench/columns.py --features           # the answers with every record's features
    python bench/columns.py --dataset penguins   # text, dates and missing values
    python bench/columns.py --server-flags "--drift-window 0"   # the server without drift monitoring
    python bench/columns.py --smoke              # a few calls: CI runs this so the script cannot rot
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absenteeism import data_sets
from absenteeism.online import converters
from absenteeism.parity import bits_differ
from absenteeism.v1 import prediction_service_pb2 as pb
from bench.common import build_config, data_set_records, machine_line, process_tree_cpu_seconds
from testkit.server_process import ServerProcess

MESSAGE_BYTES = 64 << 20
LARGE_MESSAGES = [("grpc.max_send_message_length", MESSAGE_BYTES), ("grpc.max_receive_message_length", MESSAGE_BYTES)]


def timed_call(server: ServerProcess, method: Any, request: Any) -> tuple[float, float]:
    """(wall seconds, the server's CPU seconds) of one call of `method` with `request`."""
    cpu_before, start = process_tree_cpu_seconds(server.pid), time.perf_counter()
    method(request)
    return time.perf_counter() - start, process_tree_cpu_seconds(server.pid) - cpu_before


def requests(data_set: str, size: int, features: bool) -> tuple[Any, Any]:
    """The same `size` records (the data set's accepted sample rows, repeated) as a
    PredictBatchRequest and as a PredictColumnsRequest (`features`: asking for the features too)."""
    chosen = data_sets.named(data_set)
    sample = data_set_records(data_set)
    records = [sample[i % len(sample)] for i in range(size)]
    batch = chosen.service.PredictBatchRequest(records=records, include_features=features)
    columns = pb.PredictColumnsRequest(records=converters.records_to_columns(records), include_features=features)
    return batch, columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=data_sets.DEFAULT, choices=sorted(data_sets.KNOWN))
    parser.add_argument("--rows", type=int, default=10_000, help="records per call (default: 10,000)")
    parser.add_argument("--calls", type=int, default=30, help="calls of each kind (default: 30)")
    parser.add_argument("--features", action="store_true", help="ask for the features too (include_features)")
    parser.add_argument("--server-flags", default="", help='flags of feature_service serve, e.g. "--drift-window 0"')
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    calls = 2 if args.smoke else args.calls
    config = build_config(data_sets.named(args.dataset).sample_input, dataset=args.dataset) / "serving_config.pb"
    batch, columns = requests(args.dataset, args.rows, args.features)
    print(machine_line())
    print(f"{args.dataset}: {args.rows:,} records a call{' with their features' if args.features else ''}, "
          f"{calls} calls of each kind, alternating; "
          f"request bytes: records {batch.ByteSize():,}, columns {columns.ByteSize():,}")
    seconds = {"PredictBatch": 0.0, "PredictColumns": 0.0}
    cpu = dict.fromkeys(seconds, 0.0)
    with ServerProcess(config, *args.server_flags.split()) as server, \
            grpc.insecure_channel(server.target, options=LARGE_MESSAGES) as channel:
        stub = data_sets.named(args.dataset).service_grpc.PredictionServiceStub(channel)
        methods = {"PredictBatch": (stub.PredictBatch, batch), "PredictColumns": (stub.PredictColumns, columns)}
        answers = {name: method(request) for name, (method, request) in methods.items()}  # warm-up
        for _ in range(calls):
            for name, (method, request) in methods.items():
                wall, spent = timed_call(server, method, request)
                seconds[name] += wall
                cpu[name] += spent
    rows = args.rows * calls
    print(f"{'':<16} {'rows/s':>12} {'server CPU/row (us)':>20}")
    for name, wall in seconds.items():
        print(f"{name:<16} {rows / wall:>12,.0f} {cpu[name] / rows * 1e6:>20.3f}")
    # /proc counts CPU in clock ticks (10 ms): a short run may read none (nan, not a division by zero)
    cpu_ratio = cpu["PredictColumns"] / cpu["PredictBatch"] if cpu["PredictBatch"] else float("nan")
    print(f"{'columns/records':<16} {seconds['PredictBatch'] / seconds['PredictColumns']:>11.2f}x {cpu_ratio:>19.2f}x")
    first, second = answers["PredictBatch"], answers["PredictColumns"]
    differ = sum(int(bits_differ(np.asarray(getattr(first, field)), np.asarray(getattr(second, field))).sum())
                 for field in ("predictions", "feature_values", "probabilities"))
    print(f"answers compared bit for bit: {len(first.predictions):,} rows, {differ} values differ")


if __name__ == "__main__":
    main()
