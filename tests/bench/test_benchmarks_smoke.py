"""The benchmark scripts still run and print their tables (a short smoke run; figures are not
asserted: these machines are shared and noisy)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testkit.paths import REPO_ROOT

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

ROOT = REPO_ROOT


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, script, "--smoke", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_serving_benchmark_smoke(trained_config):
    out = run("bench/serving.py", "--config", str(trained_config.path))
    for label in ("Predict sequential p50 (ms)", "Predict 8 clients (calls/s)", "PredictBatch 10000 (rows/s)"):
        line = next(line for line in out.splitlines() if line.startswith(label))
        assert len(line.split()) >= len(label.split()) + 5  # echo, echo-aio, fast, fast x2, reference (+ ratio)
    header = next(line for line in out.splitlines() if line.startswith("measure"))
    assert "fast x2" in header and "echo-aio" in header
    assert "fast/ref" in out and "Predict 8 clients / echo (1 process)" in out


def test_serving_benchmark_data_sets_smoke(trained_config):
    out = run("bench/serving.py", "--data-sets", "--config", str(trained_config.path))
    header = next(line for line in out.splitlines() if line.startswith("measure"))
    for column in ("absenteeism", "penguins, all fields set", "penguins, missing values", "all set/absenteeism",
                   "missing/absenteeism"):
        assert column in header, column
    assert "penguins.v1.PredictionService" in out  # the penguins columns called penguins' own service
    for label in ("Predict sequential p50 (ms)", "Predict 8 clients server CPU/call (us)",
                  "PredictBatch 10000 (rows/s)", "PredictBatch 10000 server CPU/row (us)"):
        line = next(line for line in out.splitlines() if line.startswith(label))
        assert len(line.split()) == len(label.split()) + 5, line  # three data sets and two ratios
    assert "Predict 32 clients" not in out and "echo" not in header  # the predictors' table is not run


BREAKDOWN_STAGES = ("decode (PredictRequest.FromString)", "interceptors (metrics, stream limit, decode guard)",
                    "servicer (request id, deadline, labels, boundary)", "predictor (FastPredictor.predict, whole)",
                    "records -> matrix (records_to_matrix)", "matrix -> arrays (matrix_to_arrays)",
                    "raw validation (bounds test of the raw matrix)", "features", "model (served model predict)",
                    "monitoring: drift window (MonitoredPredictor)", "response (build, serialize)",
                    "gRPC and everything else (total less the stages)", "total: Predict, default flags (whole server)",
                    "echo server (gRPC, decode, a constant answer)",
                    "echo spending the stages' CPU in Python (whole server)")


def figures_after(out: str, label: str, count: int) -> list[float]:
    """The `count` numbers ending the line that starts with `label` (leading spaces aside)."""
    line = next(line for line in out.splitlines() if line.strip().startswith(label + " "))
    assert len(line.split()) == len(label.split()) + count, line
    return [float(figure) for figure in line.split()[-count:]]  # each parses as a number; not asserted


def test_serving_benchmark_breakdown_smoke(trained_config):
    # --pin (a core for the servers, one for the callers) where this machine has both CPUs it names
    pin = ["--pin"] if {0, 1} <= os.sched_getaffinity(0) else []
    out = run("bench/serving.py", "--breakdown", "--config", str(trained_config.path), *pin)
    for server in ("echo", "echo, 2 workers", "echo + stages' CPU", "echo + predictor, 2 workers", "monitoring off",
                   "default", "default, 8 workers", "default + log"):
        figures_after(out, server, 7)  # CPU/call, / echo, least, most, p50, / echo, calls/s
    for stage in BREAKDOWN_STAGES:
        figures_after(out, stage, 2)  # us, / echo
    for label in ("monitoring off -> default, whole servers", "default -> default + log, whole servers",
                  "prediction log offer, in process", "predictor inside the loaded default server",
                  "predictor in process, idle 0.5 ms before each call",
                  "+ the predictor (its answer, nothing else of ours)",
                  "+ interceptors, servicer, monitoring (the default server)",
                  "more inside the server than in process"):
        figures_after(out, label, 2)
    for goal in ("Predict server CPU / echo, default flags", "Predict server CPU / echo, default + log",
                 "Predict server CPU / echo with 2 workers, default flags",
                 "Predict sequential p50 / echo p50, default flags", "echo + predictor CPU / echo, both with 2 workers"):
        figures_after(out, goal, 1)
    assert "Predict 32 clients" not in out  # the predictors' table is not run


def test_server_before_after_benchmark_smoke():
    out = run("bench/server_before_after.py", "--before", str(ROOT))  # this checkout against itself
    for label in ("Predict, 8 callers: server CPU/call (us)", "Predict, 8 callers: calls/s",
                  "Predict, 1 caller: p50 (ms)", "PredictColumns 10,000: rows/s",
                  "PredictColumns 10,000: server CPU/row (us)"):
        figures_after(out, label, 3)  # before, after, after/before


def test_reload_benchmark_smoke():
    out = run("bench/reload.py")
    for label in ("p50 (ms)", "p99 (ms)", "calls/s"):
        line = next(line for line in out.splitlines() if line.startswith(label))
        assert len(line.split()) == len(label.split()) + 3  # no swaps, swaps, ratio
    swapped = next(line for line in out.splitlines() if line.startswith("configs swapped in")).split()
    assert int(swapped[-2]) == 0 and int(swapped[-1]) >= 1
    failed = next(line for line in out.splitlines() if line.startswith("failed calls")).split()
    assert failed[-2:] == ["0", "0"]


def test_drift_benchmark_smoke(trained_config):
    out = run("bench/drift.py", "--config", str(trained_config.path))
    for label in ("Predict sequential p50 (ms)", "Predict 8 clients (calls/s)", "PredictBatch 10000 (rows/s)"):
        line = next(line for line in out.splitlines() if line.startswith(label))
        assert len(line.split()) == len(label.split()) + 5  # off, drift, drift+log, and the two ratios
    assert "drift/off" in out and "drift+log/off" in out


def test_etl_benchmark_smoke():
    out = run("bench/etl.py")
    assert "bare Hamilton feature DAG" in out and "etl_job run (everything)" in out and "ratio job/bare" in out
    for label in ("--engine dask, 2 workers: client", "scheduler", "worker 1", "worker 2", "ratio dask/local (wall)"):
        assert label in out, label


def test_startup_benchmark_smoke(trained_config):
    out = run("bench/startup.py", "--config", str(trained_config.path))
    for label in ("python -m etl_job --help", "server start to serving (1 process)",
                  "server start to serving (2 processes)"):
        line = next(line for line in out.splitlines() if line.startswith(label))
        assert len(line.split()) == len(label.split()) + 2  # min, median


def test_error_details_benchmark_smoke(trained_config):
    out = run("bench/error_details.py", "--config", str(trained_config.path))
    assert "all INVALID_ARGUMENT" in out
    for label in ("server RSS growth (MiB)", "server CPU (s)", "server CPU per batch (ms)"):
        line = next(line for line in out.splitlines() if line.startswith(label))
        float(line.split()[-1])  # a figure is printed; its value is not asserted


def test_model_kinds_benchmark_smoke():
    out = run("bench/model_kinds.py")
    header = next(line for line in out.splitlines() if line.startswith("measure"))
    assert header.split()[1:] == ["ridge", "gbt", "gbt-binary", "logistic-binary"]
    for label in ("Predict sequential p50 (ms)", "Predict 8 clients server CPU/call (us)", "PredictBatch 10000 (rows/s)",
                  "server CPU/call over ridge (us)"):
        line = next(line for line in out.splitlines() if line.startswith(label))
        assert len(line.split()) == len(label.split()) + 4, line


def test_scoring_benchmark_smoke():
    out = run("bench/offline_scoring.py", "--engines", "local,dask")
    for label in ("etl_job score --features --engine local", "etl_job score --features --engine dask"):
        line = next(line for line in out.splitlines() if label in line)
        float(line.split()[-1].replace(",", ""))  # rows/s printed; its value is not asserted
    # Not a figure: the script's comparisons, which must find every row identical.
    assert out.count("20000 rows also in the training set: 20000 identical") == 2, out
    assert out.count("2000 rows through gRPC Predict: 2000 identical") == 2, out


@pytest.mark.parametrize("data_set", ["absenteeism", "penguins"])
def test_columns_benchmark_smoke(data_set):
    out = run("bench/columns.py", "--dataset", data_set, "--rows", "500", "--features")
    for label in ("PredictBatch", "PredictColumns", "columns/records"):
        line = next(line for line in out.splitlines() if line.startswith(label))
        float(line.split()[-1].rstrip("x"))  # a figure is printed; its value is not asserted
    # Not a figure: the two methods' answers, which must be the same bits.
    assert "answers compared bit for bit: 500 rows, 0 values differ" in out, out


def test_seed_etl_benchmark_names_its_flag_without_the_seed():
    """The seed (Apache Hamilton's example) is not in the repository: without it the script says which flag
    it needs instead of failing later (its --smoke needs the seed's folder and virtualenv: bench/seed_etl.py)."""
    result = subprocess.run([sys.executable, "bench/seed_etl.py", "--smoke"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "--seed-dir" in result.stderr
