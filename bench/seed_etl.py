"""Seed ETL benchmark (issue 27, goal 4): the full job (`python -m etl_job run`: extract, validate +
quarantine, analyze, transform, fit, write the config, the training set and the report) against the
ETL of the seed this project grew out of, as shipped, in its own environment: each a fresh process,
alternating, on the same generated file. Wall time and peak resident memory (ru_maxrss, os.wait4)
of every run, the medians over the rounds (of each column) and the ratios job/seed (of the medians).

The seed is not part of this repository. Get it from GitHub, apache/hamilton (formerly
DAGWorks-Inc/hamilton), folder
examples/feature_engineering/feature_engineering_multiple_contexts/scenario_1/ (measured at the
repository's commit 4e5dfdf0b730266863a430ef1d2205eca198af13; the folder last changed in
1049b8c6f65442eae8bc1387c5eeb3857b0b5574), and give it its own virtualenv with its requirements.txt:

    git clone https://github.com/apache/hamilton /tmp/hamilton
    cp -r /tmp/hamilton/examples/feature_engineering/feature_engineering_multiple_contexts/scenario_1 /work/seed/
    python3.11 -m venv /work/seed/.venv
    /work/seed/.venv/bin/pip install -r /work/seed/scenario_1/requirements.txt

    python bench/seed_etl.py --seed-dir /work/seed/scenario_1              # 1,000,000 and 10,000,000 rows
    python bench/seed_etl.py --seed-dir /work/seed/scenario_1 --rows 1000000 --rounds 3
    python bench/seed_etl.py --seed-dir /work/seed/scenario_1 --smoke      # 20,000 rows, 1 round

The seed's ETL is its etl.py run as a script, whose source location is hard-coded (the UCI file of
another example); so the seed's interpreter runs the lines of etl.py's `__main__` block, with only
the source location replaced by the generated file: its own `etl.create_data_set` (a Hamilton
driver over its `offline_loader` and `features` modules: `visualize_execution` of the DAG, then
`execute` of its model_x_features plus age_mean and age_std_dev: read the `;`-separated CSV, rename
the columns, build the ID-month-day string index, the features with their pandera checks, one
DataFrame), the two aggregates read back from it, and `print` of the frame. It runs in a fresh
temporary folder (its `visualize_execution` writes ./offline_execution.dot there when graphviz is
installed; the seed's requirements.txt does not ask for it, so Hamilton only logs a warning).

The input files are made by the project's own generator (python -m etl_job generate), seed 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, machine_line
from bench.etl import generated_input, timed

# The `__main__` block of the seed's etl.py, line for line, with only `_source_location` taken from argv.
SEED_MAIN = """\
import sys
sys.path.insert(0, sys.argv[1])
import etl
_source_location = sys.argv[2]
_data_set_df = etl.create_data_set(_source_location)
_age_mean = _data_set_df["age_mean"].values[0]
_age_std_dev = _data_set_df["age_std_dev"].values[0]
print(_data_set_df)
"""

SEED_VERSIONS = """\
from importlib.metadata import version
import platform
print(f"Python {platform.python_version()}, " + ", ".join(
    f"{name} {version(name)}" for name in ("sf-hamilton", "pandas", "pandera", "numpy")))
"""


def seed_python(seed_dir: Path, given: Path | None) -> Path:
    """The seed's interpreter: --seed-python, else a .venv beside or inside the seed's folder."""
    candidates = [given] if given else [seed_dir.parent / ".venv" / "bin" / "python",
                                        seed_dir / ".venv" / "bin" / "python"]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise SystemExit(f"no Python for the seed at {' or '.join(map(str, candidates))}: "
                     "give its virtualenv's interpreter with --seed-python")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-dir", type=Path,
                        help="the seed's scenario_1 folder (etl.py, offline_loader.py, features.py): see the docstring")
    parser.add_argument("--seed-python", type=Path,
                        help="the interpreter of the seed's own virtualenv (default: .venv beside or in --seed-dir)")
    parser.add_argument("--rows", type=int, action="append", help="row count (repeatable)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, alternating (default: 3)")
    parser.add_argument("--smoke", action="store_true", help="20,000 rows, 1 round")
    args = parser.parse_args()
    if args.seed_dir is None or not (args.seed_dir / "etl.py").is_file():
        raise SystemExit(f"--seed-dir must name the seed's scenario_1 folder (with etl.py); got {args.seed_dir}: "
                         f"see `python {Path(__file__).name} --help` and the docstring for where to get it")
    seed_dir = args.seed_dir.resolve()
    python = seed_python(seed_dir, args.seed_python)
    sizes, rounds = ([20_000], 1) if args.smoke else (args.rows or [1_000_000, 10_000_000], args.rounds)

    # Importing the project (bench.common) turned Hamilton's extension autoloading off in os.environ
    # (absenteeism/__init__.py); the seed runs as it would on its own, with autoloading on.
    seed_env = {k: v for k, v in os.environ.items() if k != "HAMILTON_AUTOLOAD_EXTENSIONS"}
    print(machine_line())
    versions = subprocess.run([str(python), "-c", SEED_VERSIONS], capture_output=True, text=True, check=True,
                              env=seed_env)
    print(f"seed: {seed_dir} ({versions.stdout.strip()})")
    print(f"{'rows':>12} {'round':<8} {'seed wall s':>11} {'seed MiB':>9} {'job wall s':>11} {'job MiB':>9} "
          f"{'job/seed wall':>14} {'job/seed MiB':>13}")
    with tempfile.TemporaryDirectory(prefix="bench-seed-etl-") as tmp:
        for rows in sizes:
            data, generated = generated_input(Path(tmp), rows)
            print(f"{rows:>12,} {'input':<8} generated in {generated[0]:.2f} s")
            seed_runs, job_runs = [], []
            for round_ in range(rounds):
                work = Path(tmp) / f"round_{rows}_{round_}"
                (work / "seed").mkdir(parents=True)
                commands = {"seed": ([str(python), "-c", SEED_MAIN, str(seed_dir), str(data)], work / "seed", seed_env),
                            "job": ([sys.executable, "-m", "etl_job", "run", "--input", str(data),
                                     "--output-dir", str(work / "job"), "--no-progress"], ROOT, None)}
                order = ("seed", "job") if round_ % 2 == 0 else ("job", "seed")  # who goes first alternates
                measured = {name: timed(*commands[name]) for name in order}
                shutil.rmtree(work)
                seed_runs.append(measured["seed"])
                job_runs.append(measured["job"])
                (seed_wall, seed_mib), (job_wall, job_mib) = seed_runs[-1], job_runs[-1]
                print(f"{rows:>12,} {round_ + 1:<8} {seed_wall:>11.2f} {seed_mib:>9.0f} {job_wall:>11.2f} "
                      f"{job_mib:>9.0f} {job_wall / seed_wall:>13.2f}x {job_mib / seed_mib:>12.2f}x")
            seed_wall, seed_mib = (statistics.median(r[i] for r in seed_runs) for i in (0, 1))
            job_wall, job_mib = (statistics.median(r[i] for r in job_runs) for i in (0, 1))
            print(f"{rows:>12,} {'median':<8} {seed_wall:>11.2f} {seed_mib:>9.0f} {job_wall:>11.2f} "
                  f"{job_mib:>9.0f} {job_wall / seed_wall:>13.2f}x {job_mib / seed_mib:>12.2f}x")
            data.unlink()


if __name__ == "__main__":
    main()
