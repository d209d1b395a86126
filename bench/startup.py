"""Start-up benchmark: wall time of `python -m etl_job --help`, of `import hamilton.driver` after our
package (what every entry point pays), and of a server's start until its "serving" log line, with 1
and with 2 processes; each a fresh process, several runs, min and median.

    python bench/startup.py              # 7 runs each
    python bench/startup.py --smoke      # 1 run each: CI runs this so the script cannot rot
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, build_config, machine_line
from testkit.server_process import ServerProcess


def command_seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def boot_seconds(config: Path, *flags: str) -> float:
    start = time.perf_counter()
    with ServerProcess(config, *flags):
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--config", type=Path, help="a serving_config.pb (default: the ETL job on the sample)")
    args = parser.parse_args()
    runs = 1 if args.smoke else args.runs
    print(machine_line())
    config = args.config or build_config() / "serving_config.pb"
    measures = {
        "python -m etl_job --help": lambda: command_seconds([sys.executable, "-m", "etl_job", "--help"]),
        "import absenteeism, hamilton.driver": lambda: command_seconds(
            [sys.executable, "-c", "import absenteeism, hamilton.driver"]),
        "server start to serving (1 process)": lambda: boot_seconds(config),
        "server start to serving (2 processes)": lambda: boot_seconds(config, "--processes", "2"),
    }
    print(f"{'measure':<40}{'min s':>8}{'median s':>10}")
    for label, measure in measures.items():
        seconds = [measure() for _ in range(runs)]
        print(f"{label:<40}{min(seconds):>8.2f}{statistics.median(seconds):>10.2f}")


if __name__ == "__main__":
    main()
