"""Chunked processing: the job's outputs are a function of the input alone, never of the chunk size
(fixed-size blocks for every floating-point sum, fixed row groups, a per-row split); rejects keep
their source rows in any chunk; the streaming pieces (rebatching, ridge from sufficient statistics,
held-out split) agree with their whole-frame equivalents."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from absenteeism import absenteeism_schema, aggregates, config_io, dataflow
from absenteeism.dataset import blocks, cell_parsing, raw_writers
from etl_job import cli, outputs, profile_builder, ridge, synthetic
from etl_job.split import held_out
from testkit.run_outputs import config_without_time, content, training_set_parts

ROWS = 3000


def _run(source: Path, out: Path, *extra: str) -> int:
    return cli.main(["run", "--input", str(source), "--output-dir", str(out), "--no-progress", *extra])


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("in") / "records.csv"
    synthetic.write(synthetic.generate(ROWS, seed=21, bad_fraction=0.01), path)
    return path


def test_outputs_do_not_depend_on_the_chunk_size(tmp_path, source, monkeypatch):
    # Small blocks, row groups and profile sample, so that chunks cut through them in every way.
    monkeypatch.setattr(ridge, "BLOCK_ROWS", 256)
    monkeypatch.setattr(outputs, "ROW_GROUP_ROWS", 500)
    monkeypatch.setattr(profile_builder, "SAMPLE_ROWS", 400)
    runs = {}
    for chunk_rows in (100_000, 1000, 333, 97):
        out = tmp_path / f"chunks_{chunk_rows}"
        assert _run(source, out, "--chunk-rows", str(chunk_rows)) == 0
        runs[chunk_rows] = out
    reference = runs.pop(100_000)  # the whole file in one chunk
    report = json.loads((reference / "report.json").read_text())
    assert report["rows"]["rejected"] == 30 and report["rows"]["read"] == ROWS
    assert pq.ParquetFile(outputs.training_set_part(reference, 0)).metadata.num_row_groups == 6
    for chunk_rows, out in runs.items():
        assert config_without_time(out) == config_without_time(reference), chunk_rows
        assert training_set_parts(out / "training_set.parquet") == training_set_parts(reference / "training_set.parquet")
        assert (out / "rejects.csv").read_bytes() == (reference / "rejects.csv").read_bytes()
        other = json.loads((out / "report.json").read_text())
        for key in ("rows", "rejects", "statistics", "metrics", "model", "online_parity", "profile"):
            assert other[key] == report[key], (chunk_rows, key)


def test_a_reject_in_the_middle_of_a_later_chunk_keeps_its_source_row(tmp_path):
    frame = synthetic.to_frame(synthetic.generate(1000, seed=3)).astype(object).map(str)
    bad = {650: ("age", "130"), 651: ("pet", " x "), 999: ("weight", "")}  # 0-based positions
    for position, (column, cell) in bad.items():
        frame.loc[position, column] = cell
    path = tmp_path / "records.csv"
    raw_writers.write_csv(frame, path)
    assert _run(path, tmp_path / "out", "--chunk-rows", "100") == 0
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv", keep_default_na=False, dtype=str)
    assert [(int(r.source_row), r.column, r.value) for r in rejects.itertuples()] == [
        (651, "age", "130"), (652, "pet", "x"), (1000, "weight", "")]
    training_set = pd.read_parquet(tmp_path / "out" / "training_set.parquet")
    assert set(training_set["source_row"]) == set(range(1, 1001)) - {651, 652, 1000}
    # The rows around them are intact: the features of row 653 are those of its raw cells.
    config = config_io.read_config(tmp_path / "out" / "serving_config.pb")
    typed, _ = cell_parsing.parse_columns(frame.loc[[652]])
    typed.index = [653]
    injected = aggregates.from_message(config.statistics, dataflow.aggregate_names())
    expected = dataflow.feature_matrix(dataflow.compute_features(typed, injected))[0]
    row = training_set.set_index("source_row").loc[653, list(config.feature_names)].to_numpy()
    np.testing.assert_array_equal(row, expected)


def test_rebatcher_cuts_exact_blocks_whatever_the_feeding():
    values = np.arange(1000)
    for pieces in ([1000], [1] * 1000, [7, 300, 1, 692], [250, 250, 250, 250]):
        batcher = blocks.array_blocks(256)
        got, start = [], 0
        for size in pieces:
            got.extend(batcher.feed(values[start:start + size]))
            start += size
        got.extend(batcher.flush())
        assert [len(b) for b in got] == [256, 256, 256, 232]
        np.testing.assert_array_equal(np.concatenate(got), values)


def test_ridge_from_sufficient_statistics_equals_scikit_learn():
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(5)
    matrix = np.column_stack([rng.integers(0, 2, (5000, 6)), rng.normal(0, 1, 5000)]).astype(np.float64)
    labels = 3.0 + matrix @ rng.normal(0, 2, 7) + rng.normal(0, 1, 5000)
    normal = ridge.NormalEquations(7)
    for start in range(0, 5000, 777):
        normal.add(matrix[start:start + 777], labels[start:start + 777])
    intercept, coefficients = normal.solve(alpha=2.5)
    reference = linear_model.Ridge(alpha=2.5).fit(matrix, labels)
    np.testing.assert_allclose(coefficients, reference.coef_, rtol=1e-9, atol=1e-9)
    assert intercept == pytest.approx(reference.intercept_, rel=1e-9)


def test_held_out_split_is_a_per_row_draw():
    rows = np.arange(1, 100_001)
    test = held_out(rows, seed=7, test_fraction=0.2)
    assert 0.19 < test.mean() < 0.21
    np.testing.assert_array_equal(held_out(rows[500:900], seed=7, test_fraction=0.2), test[500:900])  # any chunk
    other_seed = held_out(rows, seed=8, test_fraction=0.2)
    assert (other_seed != test).mean() > 0.2


def test_the_pre_screen_that_lets_clean_chunks_skip_pandera_agrees_with_pandera():
    from etl_job import validate

    typed = synthetic.to_frame(synthetic.generate(300, seed=4)).astype(
        {**absenteeism_schema.RAW_DTYPES, absenteeism_schema.LABEL.name: "int64"})  # as parse_columns types them
    assert validate._all_pass(typed) and absenteeism_schema.TABLE.find_violations(typed, training=True) == []
    for column, value in (("month_of_absence", 0), ("age", 101), ("age", 15), ("weight", 250.5),
                          ("absenteeism_time_in_hours", 745), ("day_of_the_week", 7), ("son", -1)):
        broken = typed.copy()
        broken.loc[17, column] = value
        violations = absenteeism_schema.TABLE.find_violations(broken, training=True)
        assert not validate._all_pass(broken) and [(v.row, v.column) for v in violations] == [(17, column)]


def test_a_folder_read_in_small_chunks_numbers_rows_across_files_as_in_one_piece(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    synthetic.write(synthetic.generate(230, seed=31, bad_fraction=0.03), folder / "a.csv")
    synthetic.write(synthetic.generate(170, seed=32, bad_fraction=0.03), folder / "b.parquet")
    assert _run(folder, tmp_path / "whole") == 0
    assert _run(folder, tmp_path / "small", "--chunk-rows", "50") == 0
    assert training_set_parts(tmp_path / "small" / "training_set.parquet") == \
        training_set_parts(tmp_path / "whole" / "training_set.parquet")
    assert content(tmp_path / "small" / "rejects.csv") == content(tmp_path / "whole" / "rejects.csv")
    assert config_without_time(tmp_path / "small") == config_without_time(tmp_path / "whole")
    report = json.loads((tmp_path / "small" / "report.json").read_text())
    assert [(f["name"], f["first_row"], f["rows"]) for f in report["input"]["files"]] == [
        ("a.csv", 1, 230), ("b.parquet", 231, 170)]
    rejects = pd.read_csv(tmp_path / "small" / "rejects.csv")
    assert set(rejects["source_file"]) == {"a.csv", "b.parquet"}
    assert ((rejects["source_row"] > 230) == (rejects["source_file"] == "b.parquet")).all()


def test_a_transformed_chunk_leaves_none_of_its_columns_behind(trained_config):
    """Hamilton's execute leaves its results in a reference cycle: the transform frees them per
    chunk, or a long input's pile up in the oldest generation, seldom collected."""
    from etl_job import chunk_steps, training

    statistics = trained_config.config.statistics
    accepted = trained_config.accepted.iloc[:1500]
    gc.collect()
    chunk_steps.transform_chunk(accepted, aggregates.from_message(statistics, dataflow.aggregate_names()),
                                training.FitSettings(), [], np.array([], dtype=np.int64), 0)
    assert [o for o in gc.get_objects() if isinstance(o, pd.Series) and len(o) == len(accepted)] == []


def test_the_job_reads_65536_rows_a_chunk_unless_told():
    # Half the per-chunk fixed costs (Hamilton runs, checks, profile bins) of 32,768 for ~25 MiB more
    # at 1M rows (docs/performance.md); the outputs do not depend on it (the test above).
    args = cli.build_parser().parse_args(["run"])
    assert args.chunk_rows == 65_536
