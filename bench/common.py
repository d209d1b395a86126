"""Shared pieces of the benchmark scripts: a config built by the real ETL job, records to send,
a server started on loopback, percentiles. Benchmarks print figures; they assert nothing."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.message import Message

from absenteeism import data_sets
from absenteeism.dataset import reader
from absenteeism.online import converters
from absenteeism.v1 import raw_record_pb2

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "etl_job" / "sample_data" / "absenteeism_sample.csv"


def machine_line() -> str:
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}")


def build_config(input_path: Path = SAMPLE, *job_flags: str, dataset: str = data_sets.DEFAULT) -> Path:
    """Runs the ETL job of data set `dataset` on `input_path` (with `job_flags`, e.g. --alpha 25) into
    a temp folder; returns the folder."""
    out = Path(tempfile.mkdtemp(prefix="bench-etl-"))
    subprocess.run([sys.executable, "-m", "etl_job", "run", "--dataset", dataset, "--input", str(input_path),
                    "--output-dir", str(out), "--no-progress", *job_flags], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return out


def sample_records(input_path: Path = SAMPLE) -> list[raw_record_pb2.RawRecord]:
    """The valid records of the input, as a client would send them."""
    return converters.frame_to_records(reader.read_valid(input_path))


def data_set_records(name: str, input_path: Path | None = None) -> list[Message]:
    """The valid records of `input_path` (default: the data set's bundled sample) as a client of data
    set `name` sends them (its own RawRecord). The process's active data set is left as it was."""
    previous = data_sets.active()
    chosen = data_sets.activate(name)
    try:
        return converters.frame_to_records(reader.read_valid(input_path or chosen.sample_input))
    finally:
        data_sets.activate(previous)


def served(config: Path) -> tuple[Any, Any, Any]:
    """(settings, the config message, its predictor): `config` read, its data set activated and
    verified as feature_service does at boot, without a server or monitoring."""
    # imported here: most benchmarks run the server as a process and need none of it in theirs
    from feature_service.settings import Settings
    from feature_service.verified_config import activate_data_set_of, load_verified

    settings, data = Settings(config=config, insecure=True), config.read_bytes()
    activate_data_set_of(settings, data)
    message, predictor = load_verified(settings, data)
    return settings, message, predictor


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid` and its living descendants (Linux /proc)."""
    total, pending, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending += [int(child) for child in children.read().split()]
        except (OSError, IndexError):
            pass  # gone meanwhile
    return total


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50/p90/p99 in milliseconds."""
    values = np.asarray(seconds) * 1000
    return {f"p{q}": float(np.percentile(values, q)) for q in (50, 90, 99)}
