"""Offline scoring benchmark: `python -m etl_job score` over generated files, each a fresh process,
its wall time and peak resident memory (ru_maxrss read with os.wait4); its predictions compared
with the job's own training set for the rows both hold (where the job ran on that file), and a
random sample of its rows sent through gRPC to a real server on the same config, one Predict call
each, every feature and prediction compared bit for bit.

    python bench/offline_scoring.py                         # 1,000,000 and 10,000,000 rows (several minutes)
    python bench/offline_scoring.py --rows 1000000 --engines local,dask
    python bench/offline_scoring.py --smoke                 # 20,000 rows: CI runs this so the script cannot rot

The job runs on files of at most --job-max-rows rows (default 1,000,000); a larger file is scored
with the config of the largest such run. Input files are made by `python -m etl_job generate`, seed 1.
The comparisons run in a child process of their own: a process forked from one that has loaded 10M
rows would report that process's peak memory as its own (Linux carries it across exec).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absenteeism import config_io
from absenteeism.dataset import cell_parsing
from absenteeism.dataset import reader as input_reader
from absenteeism.online import converters
from absenteeism.parity import bits_differ
from bench.common import machine_line
from bench.etl import timed
from clients import PredictionClient, server_parity
from etl_job import scoring
from testkit.server_process import ServerProcess


def records_at(source: Path, rows: np.ndarray) -> list:
    """The records of source rows `rows` (sorted), read chunk by chunk as the job reads the file."""
    wanted, records = set(rows.tolist()), []
    for chunk in input_reader.Reader(source, require_label=False).chunks():
        here = [row for row in chunk.rows.index if row in wanted]
        if here:
            typed = cell_parsing.parse_numbers(chunk.rows)
            typed = typed if typed is not None else cell_parsing.parse_columns(chunk.cells)[0]
            records += converters.frame_to_records(typed.loc[here])
    return records


def differing_rows(got: np.ndarray, expected: np.ndarray) -> int:
    return int(bits_differ(got, expected).reshape(len(got), -1).any(axis=1).sum())


def through_grpc(config: Path, source: Path, scored: pd.DataFrame, sample: int) -> str:
    picked = np.sort(np.random.default_rng(7).choice(len(scored), size=min(sample, len(scored)), replace=False))
    expected = scored.iloc[picked]
    records = records_at(source, expected["source_row"].to_numpy())
    names = list(config_io.read_config(config).feature_names)
    with ServerProcess(config) as server, PredictionClient(server.target, insecure=True) as client:
        answers = server_parity.predict_one_by_one(client, records, concurrency=4, progress=False)
    differ = max(differing_rows(answers.features, expected[names].to_numpy()),
                 differing_rows(answers.predictions, expected["prediction"].to_numpy()))
    return f"{len(records)} rows through gRPC Predict: {len(records) - differ} identical"


def against_training_set(run: Path, scored: pd.DataFrame) -> str:
    training = pd.read_parquet(run / "training_set.parquet", columns=["source_row", "prediction"])
    both = training.merge(scored[["source_row", "prediction"]], on="source_row", suffixes=("", "_scored"))
    differ = differing_rows(both["prediction_scored"].to_numpy(), both["prediction"].to_numpy())
    return f"{len(both)} rows also in the training set: {len(both) - differ} identical"


def compare(run: Path | None, config: Path, data: Path, out: Path, sample: int) -> None:
    scored = pd.read_parquet(out / scoring.PREDICTIONS_FILE)
    if run is not None:
        print(f"{'':>12}   {against_training_set(run, scored)}")
    print(f"{'':>12}   {through_grpc(config, data, scored, sample)}")


def compare_in_child(run: Path | None, config: Path, data: Path, out: Path, sample: int) -> None:
    command = [sys.executable, __file__, "--compare", str(config), str(data), str(out), str(sample)]
    result = subprocess.run(command + ([str(run)] if run is not None else []), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the comparison failed:\n{result.stderr}")
    print(result.stdout, end="", flush=True)


def compare_main(argv: list[str]) -> None:
    """`--compare CONFIG DATA OUT SAMPLE [RUN]`: the comparisons, in a process of their own."""
    config, data, out, sample, *run = argv
    compare(Path(run[0]) if run else None, Path(config), Path(data), Path(out), int(sample))


def main() -> None:
    if sys.argv[1:2] == ["--compare"]:
        compare_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="row count (repeatable)")
    parser.add_argument("--engines", default="local", help="comma-separated: local, dask (default: local)")
    parser.add_argument("--job-max-rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=2000, help="rows sent through gRPC (default: 2000)")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    sizes = [20_000] if args.smoke else (args.rows or [1_000_000, 10_000_000])
    print(machine_line())
    print(f"{'rows':>12} {'command':<40} {'wall s':>9} {'peak MiB':>10} {'rows/s':>12}")
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        run = None
        for rows in sorted(sizes):
            data = Path(tmp) / f"generated_{rows}.csv"
            timed([sys.executable, "-m", "etl_job", "generate", "--rows", str(rows), "--seed", "1", "--output", str(data)])
            if rows <= args.job_max_rows or run is None:
                run = Path(tmp) / f"run_{rows}"
                wall, peak = timed([sys.executable, "-m", "etl_job", "run", "--input", str(data), "--output-dir",
                                    str(run), "--no-progress"])
                print(f"{rows:>12,} {'etl_job run (the config)':<40} {wall:>9.2f} {peak:>10.0f} {rows / wall:>12,.0f}",
                      flush=True)
            config = run / "serving_config.pb"
            for engine in args.engines.split(","):
                out = Path(tmp) / f"score_{engine}_{rows}"
                wall, peak = timed([sys.executable, "-m", "etl_job", "score", "--config", str(config), "--input",
                                    str(data), "--output-dir", str(out), "--features", "--engine", engine,
                                    "--no-progress"])
                print(f"{rows:>12,} {f'etl_job score --features --engine {engine}':<40} {wall:>9.2f} {peak:>10.0f} "
                      f"{rows / wall:>12,.0f}", flush=True)
                compare_in_child(run if run.name == f"run_{rows}" else None, config, data, out, args.sample)
                shutil.rmtree(out)
            data.unlink()


if __name__ == "__main__":
    main()
