"""ETL benchmark: the full job (extract, validate + quarantine, analyze, transform, fit, write the
config, the training set and the report) against a bare Hamilton run of the feature DAG over the
same file, side by side, each a fresh process; and the same job with the Dask engine on a cluster
of its own (a `dask scheduler` process and `--dask-workers` `dask worker` processes on 127.0.0.1,
one thread each). Wall time and peak resident memory of every process (ru_maxrss read with
os.wait4 for the job; the kernel's VmHWM for the scheduler and the workers, read before they stop).

    python bench/etl.py                      # 1,000,000 and 10,000,000 rows (several minutes)
    python bench/etl.py --rows 1000000
    python bench/etl.py --engines local      # without the Dask engine
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

from bench.common import ROOT, machine_line
from testkit.dask_cluster import DaskDeployment


def timed(command: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process run in `cwd` (with `env`, default this process's
    environment); its logs are shown only if it fails."""
    with tempfile.TemporaryFile() as logs:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=logs)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            logs.seek(0)
            sys.stderr.write(logs.read().decode(errors="replace"))
            raise SystemExit(f"{' '.join(command)} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return elapsed, usage.ru_maxrss / 1024


def generated_input(folder: Path, rows: int) -> tuple[Path, tuple[float, float]]:
    """A CSV of `rows` generated records in `folder` (the project's generator, seed 1), and what
    generating it took (wall seconds, peak MiB)."""
    data = folder / f"generated_{rows}.csv"
    return data, timed([sys.executable, "-m", "etl_job", "generate", "--rows", str(rows), "--seed", "1",
                        "--output", str(data)])


def peak_mib(pid: int) -> float:
    """The peak resident memory of a living process so far (Linux: VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def dask_peaks(cluster) -> list[tuple[str, float]]:
    return [("  scheduler", peak_mib(cluster.scheduler.pid))] + [
        (f"  worker {i + 1}", peak_mib(worker.pid)) for i, worker in enumerate(cluster.workers)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="row count (repeatable)")
    parser.add_argument("--engines", default="local,dask", help="comma-separated: local, dask (default: both)")
    parser.add_argument("--dask-workers", type=int, default=2, help="worker processes of the Dask cluster (default: 2)")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    sizes = [20_000] if args.smoke else (args.rows or [1_000_000, 10_000_000])
    engines = args.engines.split(",")
    print(machine_line())
    print(f"{'rows':>12} {'job':<36} {'wall s':>9} {'peak MiB':>10}")
    with tempfile.TemporaryDirectory(prefix="bench-etl-") as tmp:
        for rows in sizes:
            data, generated = generated_input(Path(tmp), rows)
            print(f"{rows:>12,} {'etl_job generate (the input)':<36} {generated[0]:>9.2f} {generated[1]:>10.0f}")
            job = [sys.executable, "-m", "etl_job", "run", "--input", str(data), "--no-progress"]
            bare = timed([sys.executable, "bench/bare_hamilton.py", str(data)])
            print(f"{rows:>12,} {'bare Hamilton feature DAG':<36} {bare[0]:>9.2f} {bare[1]:>10.0f}")
            if "local" in engines:
                full = timed([*job, "--output-dir", str(Path(tmp) / f"local_{rows}")])
                print(f"{rows:>12,} {'etl_job run (everything)':<36} {full[0]:>9.2f} {full[1]:>10.0f}")
                print(f"{'':>12} {'ratio job/bare':<36} {full[0] / bare[0]:>8.2f}x {full[1] / bare[1]:>9.2f}x")
            if "dask" in engines:
                # One BLAS thread, as the job sets it for itself and its own LocalCluster (etl_job/__main__).
                cluster = DaskDeployment(args.dask_workers, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}, cwd=ROOT)
                try:
                    client = timed([*job, "--output-dir", str(Path(tmp) / f"dask_{rows}"), "--engine", "dask",
                                    "--scheduler", cluster.address])
                    peaks = dask_peaks(cluster)
                finally:
                    cluster.stop()
                print(f"{rows:>12,} {f'--engine dask, {args.dask_workers} workers: client':<36} "
                      f"{client[0]:>9.2f} {client[1]:>10.0f}")
                for name, peak in peaks:
                    print(f"{'':>12} {name:<36} {'':>9} {peak:>10.0f}")
                if "local" in engines:
                    print(f"{'':>12} {'ratio dask/local (wall)':<36} {client[0] / full[0]:>8.2f}x")
            data.unlink()


if __name__ == "__main__":
    main()
