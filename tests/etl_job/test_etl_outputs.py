"""Input formats (CSV, Parquet, a folder of both), determinism, and atomic outputs."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from absenteeism import config_io
from absenteeism.dataset import atomic
from etl_job import cli, outputs, run_settings, synthetic
from testkit.run_outputs import config_without_time, content

OUTPUT_FILES = ("serving_config.pb", "serving_config.json", "training_set.parquet", "report.html", "report.json",
                "rejects.csv")


def _run(source: Path, out: Path) -> int:
    return cli.main(["run", "--input", str(source), "--output-dir", str(out), "--no-progress"])


@pytest.fixture(scope="module")
def records() -> synthetic.Records:
    return synthetic.generate(600, seed=11, bad_fraction=0.02)


def test_same_input_gives_the_same_config_and_training_set(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert _run(run_settings.SAMPLE_INPUT, first) == 0
    assert _run(run_settings.SAMPLE_INPUT, second) == 0
    created = [config_io.read_config(out / "serving_config.pb").provenance.created_at for out in (first, second)]
    assert created[0] != created[1]  # the runs are distinct runs...
    assert config_without_time(first) == config_without_time(second)  # ...with the same content
    assert pq.read_table(first / "training_set.parquet").equals(pq.read_table(second / "training_set.parquet"))
    assert (first / "rejects.csv").read_bytes() == (second / "rejects.csv").read_bytes()


def test_csv_parquet_and_folder_inputs_agree(tmp_path, records):
    csv_file, parquet_file = tmp_path / "in" / "records.csv", tmp_path / "in" / "records.parquet"
    csv_file.parent.mkdir()
    synthetic.write(records, csv_file)
    synthetic.write(records, parquet_file)
    # A folder of two files, split at row 250: rows are numbered across files in sorted order.
    folder = tmp_path / "folder"
    folder.mkdir()
    frame = synthetic.to_frame(records)
    synthetic.write(_subset(records, slice(0, 250)), folder / "a_first.csv")
    synthetic.write(_subset(records, slice(250, None)), folder / "b_second.parquet")
    (folder / "notes.txt").write_text("not an input")  # ignored: not .csv/.parquet

    results = {}
    for name, source in (("csv", csv_file), ("parquet", parquet_file), ("folder", folder)):
        assert _run(source, tmp_path / name) == 0, name
        results[name] = tmp_path / name
    training_sets = {name: pd.read_parquet(out / "training_set.parquet") for name, out in results.items()}
    pd.testing.assert_frame_equal(training_sets["csv"], training_sets["parquet"])
    pd.testing.assert_frame_equal(training_sets["csv"], training_sets["folder"])
    assert len(training_sets["csv"]) + pd.read_csv(results["csv"] / "rejects.csv")["source_row"].nunique() == len(frame)

    rejects = pd.read_csv(results["folder"] / "rejects.csv")
    assert len(rejects) > 0
    expected_file = rejects["source_row"].map(lambda row: "a_first.csv" if row <= 250 else "b_second.parquet")
    assert (rejects["source_file"] == expected_file).all()
    csv_rejects = pd.read_csv(results["csv"] / "rejects.csv")
    assert rejects.drop(columns="source_file").equals(csv_rejects.drop(columns="source_file"))

    config = config_io.read_config(results["folder"] / "serving_config.pb")
    assert list(config.provenance.input_files) == ["a_first.csv", "b_second.parquet"]
    digest = hashlib.sha256((folder / "a_first.csv").read_bytes() + (folder / "b_second.parquet").read_bytes())
    assert config.provenance.input_sha256 == digest.hexdigest()
    report = json.loads((results["folder"] / "report.json").read_text())
    assert [(f["name"], f["first_row"], f["rows"]) for f in report["input"]["files"]] == [
        ("a_first.csv", 1, 250), ("b_second.parquet", 251, 350)]


def _subset(records: synthetic.Records, rows: slice) -> synthetic.Records:
    positions = range(len(records))[rows]
    start, stop = positions.start, positions.stop
    cells = {}
    for name, (where, values) in records.cells.items():
        keep = (where >= start) & (where < stop)
        if keep.any():
            cells[name] = (where[keep] - start, values[keep])
    return synthetic.Records({name: values[rows].copy() for name, values in records.columns.items()}, cells)


def test_empty_folder_is_bad_data(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _run(tmp_path / "empty", tmp_path / "out") == 3
    assert "holds no .csv or .parquet file" in capsys.readouterr().err


def test_corrupt_parquet_is_bad_data(tmp_path, capsys):
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    assert _run(tmp_path / "broken.parquet", tmp_path / "out") == 3
    assert "broken.parquet: cannot be read as the data set's format" in capsys.readouterr().err


VICTIMS = {"training_set": "part-00000.parquet", "config": "serving_config.pb", "report": "report.json"}


@pytest.mark.parametrize("victim", sorted(VICTIMS))
def test_a_crash_mid_write_keeps_the_previous_outputs_and_leaves_no_temp_file(tmp_path, monkeypatch, victim):
    out = tmp_path / "out"
    assert _run(run_settings.SAMPLE_INPUT, out) == 0
    before = {name: content(out / name) for name in OUTPUT_FILES}
    real_atomic_path = atomic.atomic_path

    @contextlib.contextmanager
    def crashing_atomic_path(target):
        with real_atomic_path(target) as tmp:
            yield tmp
            if Path(target).name == VICTIMS[victim]:
                tmp.write_bytes(b"half a file")  # the writer dies part way, before the rename
                raise OSError("disk full")

    monkeypatch.setattr(atomic, "atomic_path", crashing_atomic_path)
    other = tmp_path / "other.csv"  # a different input: every output would change if it were written
    synthetic.write(synthetic.generate(500, seed=3), other)
    assert _run(other, out) == 1  # failing to write outputs is an internal error

    after = {name: content(out / name) for name in OUTPUT_FILES}
    assert after == before  # every file of the previous run, not only the one that failed
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(OUTPUT_FILES)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no temp file left
    assert len([p for p in (out / ".runs").iterdir() if p.is_dir()]) == 1  # the failed run's folder is gone
    config_io.verify_config(config_io.read_config(out / "serving_config.pb"))


def test_outputs_are_written_through_atomic_paths(tmp_path, monkeypatch):
    """Every output file goes through absenteeism.atomic (temp + fsync + rename)."""
    seen = []
    real = atomic.atomic_path

    def spy(target):
        seen.append(Path(target).name)
        return real(target)

    monkeypatch.setattr(atomic, "atomic_path", spy)
    assert _run(run_settings.SAMPLE_INPUT, tmp_path) == 0
    assert seen == ["rejects.csv", "part-00000.parquet", "_common_metadata", "serving_config.pb", "serving_config.json",
                    "report.html", "report.json", ".published_at"]  # the last: the run's publication time, once it is published
    assert outputs.REPORT_FILE == seen[-2]


def test_training_set_dictionary_encodes_every_column_but_source_row(tmp_path):
    # source_row never repeats: a dictionary for it was built page by page and thrown away (half
    # the write's time at 1M rows); the features, label and prediction repeat and keep theirs.
    assert _run(run_settings.SAMPLE_INPUT, tmp_path) == 0
    metadata = pq.ParquetFile(outputs.training_set_part(tmp_path, 0)).metadata
    columns = [metadata.row_group(0).column(i) for i in range(metadata.num_columns)]
    with_dictionary = {column.path_in_schema for column in columns if column.has_dictionary_page}
    assert with_dictionary == {column.path_in_schema for column in columns} - {"source_row"}
