"""Compares the outputs of two ETL runs: files byte for byte, the training set bit for bit, the
config and report but for what says when and where they were made."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from absenteeism import config_io

VARYING_REPORT_KEYS = {"created_at", "config", "outputs", "timings_seconds", "engine"}


def content(path: Path) -> bytes | dict[str, bytes]:
    """A file's bytes, or a folder's files' bytes by name (training_set.parquet is a folder of parts)."""
    path = Path(path)
    if path.is_dir():
        return {part.name: part.read_bytes() for part in sorted(path.iterdir())}
    return path.read_bytes()


def training_set_parts(folder: Path) -> dict[str, bytes]:
    """The bytes of the training set's part files by name: its rows, without the file that names
    its config (whose id changes with the config's creation time)."""
    return {part.name: part.read_bytes() for part in sorted(Path(folder).glob("part-*.parquet"))}


def config_without_time(out: Path) -> bytes:
    """The config's bytes without its creation time and the digest that covers it."""
    config = config_io.read_config(out / "serving_config.pb")
    config.provenance.ClearField("created_at")
    config.ClearField("content_sha256")
    return config.SerializeToString(deterministic=True)


def assert_same_outputs(local: Path, dask: Path, engine: str = "dask") -> None:
    """The outputs of run `dask` (of `engine`) are those of the local run `local`, but for time."""
    assert content(dask / "rejects.csv") == content(local / "rejects.csv")
    expected, got = pd.read_parquet(local / "training_set.parquet"), pd.read_parquet(dask / "training_set.parquet")
    assert list(got.columns) == list(expected.columns) and got["source_row"].is_monotonic_increasing
    for name in expected.columns:  # bit patterns, not values: -0.0 and 0.0 differ
        assert got[name].dtype == expected[name].dtype, name
        if isinstance(expected[name].dtype, pd.CategoricalDtype):  # the split: its codes and their names
            assert list(got[name].cat.categories) == list(expected[name].cat.categories), name
            got_values, expected_values = got[name].cat.codes.to_numpy(), expected[name].cat.codes.to_numpy()
        else:
            got_values, expected_values = got[name].to_numpy(), expected[name].to_numpy()
        assert got_values.tobytes() == expected_values.tobytes(), name
    assert config_without_time(dask) == config_without_time(local)
    local_report, dask_report = (json.loads((out / "report.json").read_text()) for out in (local, dask))
    assert dask_report["engine"] == engine and local_report["engine"] == "local"
    assert {k: v for k, v in dask_report.items() if k not in VARYING_REPORT_KEYS} == \
        {k: v for k, v in local_report.items() if k not in VARYING_REPORT_KEYS}
    assert not (Path(os.path.realpath(dask / "report.json")).parent / ".spill").exists()  # spills gone
