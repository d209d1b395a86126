"""Error-details benchmark: what a batch of 10,000 empty records (200,000 violations, every field of
every record missing) costs one server process (fast path, 127.0.0.1): its resident memory growth
and CPU seconds over 3 such batches, each answered INVALID_ARGUMENT with capped details.

    python bench/error_details.py            # 3 batches of 10,000 empty records
    python bench/error_details.py --smoke    # 1 batch of 1,000: CI runs this so the script cannot rot

The figures were asserted in tests/feature_service/test_error_details_cap.py before (RSS growth
under 60 MiB); memory on a shared machine is noisy, so they are printed here and never asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from absenteeism.v1 import raw_record_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import build_config, machine_line, process_tree_cpu_seconds
from clients import InvalidInputError, PredictionClient
from testkit.records import VALID_ROW
from testkit.server_process import ServerProcess


def resident_mib(pid: int) -> float:
    """The process's resident set size (VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--records", type=int, default=10_000, help="empty records per batch")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--config", type=Path, help="a serving_config.pb (default: the ETL job on the sample)")
    args = parser.parse_args()
    records, batches = (1_000, 1) if args.smoke else (args.records, args.batches)
    print(machine_line())
    config = args.config or build_config() / "serving_config.pb"
    with (ServerProcess(config) as server,
          PredictionClient(server.target, insecure=True, timeout=120, retries=0) as client):
        client.predict_batch([VALID_ROW])  # warm: the first call allocates what any call needs
        rss_before, cpu_before = resident_mib(server.pid), process_tree_cpu_seconds(server.pid)
        started = time.perf_counter()
        refused = 0
        for _ in range(batches):
            try:
                client.predict_batch([raw_record_pb2.RawRecord()] * records)
            except InvalidInputError:
                refused += 1
        wall = time.perf_counter() - started
        rss_after, cpu_after = resident_mib(server.pid), process_tree_cpu_seconds(server.pid)
        client.predict_batch([VALID_ROW])  # still serving
    if refused != batches:
        raise SystemExit(f"{batches - refused} of {batches} batches of empty records were not refused")
    print(f"{batches} batches of {records} empty records ({records * 20} violations each), all INVALID_ARGUMENT")
    print(f"{'measure':<36}{'value':>10}")
    print(f"{'server RSS before (MiB)':<36}{rss_before:>10.1f}")
    print(f"{'server RSS after (MiB)':<36}{rss_after:>10.1f}")
    print(f"{'server RSS growth (MiB)':<36}{rss_after - rss_before:>10.1f}")
    print(f"{'server CPU (s)':<36}{cpu_after - cpu_before:>10.2f}")
    print(f"{'server CPU per batch (ms)':<36}{(cpu_after - cpu_before) / batches * 1000:>10.1f}")
    print(f"{'client wall per batch (ms)':<36}{wall / batches * 1000:>10.1f}")


if __name__ == "__main__":
    main()
