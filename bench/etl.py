"""ETL benchmark: the full job (extract, validate + quarantine, analyze, transform, fit, write the
config, the training set and the report) against a bare Hamilton run of the feature DAG over the
same file, side by side, each a fresh process. Wall time and peak resident memory (the process's
ru_maxrss, read with os.wait4).

    python bench/etl.py                      # 1,000,000 and 10,000,000 rows (several minutes)
    python bench/etl.py --rows 1000000
    python bench/etl.py --smoke              # 20,000 rows: CI runs this so the script cannot rot

The input files are made by the project's own generator (python -m etl_job generate), seed 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, machine_line  # noqa: E402


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process; its logs are shown only if it fails."""
    with tempfile.TemporaryFile() as logs:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=logs)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            logs.seek(0)
            sys.stderr.write(logs.read().decode(errors="replace"))
            raise SystemExit(f"{' '.join(command)} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="row count (repeatable)")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    sizes = [20_000] if args.smoke else (args.rows or [1_000_000, 10_000_000])
    print(machine_line())
    print(f"{'rows':>12} {'job':<28} {'wall s':>9} {'peak MiB':>10}")
    with tempfile.TemporaryDirectory(prefix="bench-etl-") as tmp:
        for rows in sizes:
            data = Path(tmp) / f"generated_{rows}.csv"
            subprocess.run([sys.executable, "-m", "etl_job", "generate", "--rows", str(rows), "--seed", "1",
                            "--output", str(data)], check=True, cwd=ROOT, capture_output=True)
            bare = timed([sys.executable, "bench/bare_hamilton.py", str(data)])
            full = timed([sys.executable, "-m", "etl_job", "run", "--input", str(data), "--output-dir",
                          str(Path(tmp) / f"out_{rows}"), "--no-progress"])
            for name, (wall, peak) in (("bare Hamilton feature DAG", bare), ("etl_job run (everything)", full)):
                print(f"{rows:>12,} {name:<28} {wall:>9.2f} {peak:>10.0f}")
            print(f"{'':>12} {'ratio job/bare':<28} {full[0] / bare[0]:>8.2f}x {full[1] / bare[1]:>9.2f}x")
            data.unlink()


if __name__ == "__main__":
    main()
