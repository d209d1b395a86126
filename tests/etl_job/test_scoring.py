"""python -m etl_job score: every row the server's bits (checked through gRPC against a real server
on the real data set, the bundled sample and the penguins table), the job's own training-set
predictions for the rows both hold, the same files on both engines, the aggregates of the config
(never the input's), rows a server would refuse quarantined with their reasons, and a config a
server would refuse refused before anything is written."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hamilton.data_quality.base import DataValidationError

from absenteeism import config_io, data_sets, dataflow, served_model
from absenteeism.dataset import reader
from absenteeism.online import converters
from clients import PredictionClient, server_parity
from clients.client import InvalidInputError
from etl_job import score_steps, scoring, training, validate
from testkit.bits import assert_same_bits
from testkit.paths import REPO_ROOT
from testkit.run_outputs import content
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

PENGUINS = data_sets.named("penguins").sample_input


def run(command: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etl_job", command, "--no-progress", *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)


def score(config: Path, input_path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run("score", "--config", config, "--input", input_path, "--output-dir", out, *extra)


def scored(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / scoring.PREDICTIONS_FILE)


@pytest.fixture(scope="module")
def sample_scored(trained_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("score") / "out"
    result = score(trained_config.path, trained_config.source, out, "--features")
    assert result.returncode == 0, result.stderr
    return out


def test_every_row_is_the_training_sets_bits_and_the_rejects_are_the_jobs(trained_config, sample_scored):
    run_folder = trained_config.path.parent
    training_set = pd.read_parquet(run_folder / "training_set.parquet")
    got = scored(sample_scored)
    names = list(trained_config.config.feature_names)
    assert got.columns.tolist() == ["source_row", *names, "prediction"]
    # The sample's labels are all valid: the rows a server accepts are the rows the job trained on.
    assert got["source_row"].tolist() == training_set["source_row"].tolist()
    assert_same_bits(got[[*names, "prediction"]].to_numpy(), training_set[[*names, "prediction"]].to_numpy())
    assert (sample_scored / "rejects.csv").read_bytes() == (run_folder / "rejects.csv").read_bytes()
    report = json.loads((sample_scored / scoring.REPORT_FILE).read_text())
    job_report = json.loads((run_folder / "report.json").read_text())
    assert report["rows"]["read"] == job_report["rows"]["read"] == len(got) + report["rows"]["rejected"]
    assert report["config"]["config_id"] == trained_config.config.content_sha256
    assert report["input"]["sha256"] == job_report["input"]["sha256"]
    assert report["rejects"] == job_report["rejects"]  # by column and rule, with the same examples


def test_without_features_only_the_predictions_are_written(trained_config, sample_scored, tmp_path):
    result = score(trained_config.path, trained_config.source, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    got = scored(tmp_path / "out")
    assert got.columns.tolist() == ["source_row", "prediction"]
    assert_same_bits(got["prediction"], scored(sample_scored)["prediction"])


def test_the_dask_engine_writes_the_local_engines_bits(trained_config, sample_scored, tmp_path):
    out = tmp_path / "dask"
    result = score(trained_config.path, trained_config.source, out, "--features", "--engine", "dask",
                   "--workers", "2", "--part-bytes", "20000")
    assert result.returncode == 0, result.stderr
    assert len(list((out / scoring.PREDICTIONS_FILE).glob("part-*.parquet"))) > 2  # several parts, several tasks
    local, dask = scored(sample_scored), scored(out)
    assert dask["source_row"].tolist() == local["source_row"].tolist()
    assert_same_bits(dask.drop(columns="source_row").to_numpy(), local.drop(columns="source_row").to_numpy())
    assert content(out / "rejects.csv") == content(sample_scored / "rejects.csv")
    reports = [json.loads((folder / scoring.REPORT_FILE).read_text()) for folder in (out, sample_scored)]
    for section in ("rows", "rejects", "input"):
        assert reports[0][section] == reports[1][section], section
    assert not list((out / "..data").glob(".scored*")), "the parts' scratch files are removed"


def served(target: str, data_set: str, records: list) -> server_parity.Served:
    """The server's answers, one Predict call per record and in PredictBatch calls, which must agree."""
    with PredictionClient(target, insecure=True, data_set=data_set) as client:
        one_by_one = server_parity.predict_one_by_one(client, records, concurrency=4, progress=False)
        batched = server_parity.predict_in_batches(client, records, batch_size=97, progress=False)
    assert_same_bits(batched.features, one_by_one.features)
    assert_same_bits(batched.predictions, one_by_one.predictions)
    return one_by_one


def typed_records(source: Path, data_set: str, rows: list[int]) -> dict[int, object]:
    """The records a client would send for `rows` of `source` (numbered as the job numbers them),
    without its label; rows whose cells do not even parse as the record's types are left out."""
    data_sets.activate(data_set)
    try:
        table = data_sets.active().table
        typed = reader.read_typed(source)
        unparsed = {v.row for v in typed.unparsed if v.column not in table.label_names}
        sendable = [row for row in rows if row not in unparsed]
        records = {}
        for row in sendable:
            try:
                records[row] = converters.frame_to_records(typed.frame.loc[[row], list(table.column_names)])[0]
            except ValueError:  # beyond the field's type (an int32 of 1e20)
                pass
        return records
    finally:
        data_sets.activate(data_sets.DEFAULT)


def assert_server_gives_the_scored_bits(config_path: Path, source: Path, out: Path,
                                        data_set: str) -> tuple[int, int]:
    """Every scored row of `source` sent to a real server on `config_path`: its answers are the bits
    in `out`; every quarantined row that can be sent at all is refused by it. Returns the rows
    compared and the rows refused."""
    got = scored(out)
    rows = got["source_row"].tolist()
    records = typed_records(source, data_set, rows)
    assert list(records) == rows
    quarantined = sorted(set(pd.read_csv(out / "rejects.csv")["source_row"]))
    refused = typed_records(source, data_set, quarantined)
    with ServerProcess(config_path) as server:
        answers = served(server.target, data_set, list(records.values()))
        with PredictionClient(server.target, insecure=True, data_set=data_set) as client:
            for record in refused.values():
                with pytest.raises(InvalidInputError):
                    client.predict(record)
    config = config_io.read_config(config_path)
    assert answers.feature_names == tuple(config.feature_names)
    assert_same_bits(got[list(config.feature_names)].to_numpy(), answers.features)
    assert_same_bits(got["prediction"], answers.predictions)
    classes = [served_model.probability_name(label) for label in config.onnx_model.class_labels]
    if classes:
        assert answers.probabilities is not None
        assert_same_bits(got[classes].to_numpy(), answers.probabilities)
    return len(records), len(refused)


def test_the_server_answers_every_row_of_the_sample_with_the_scored_bits(trained_config, sample_scored):
    compared, refused = assert_server_gives_the_scored_bits(trained_config.path, trained_config.source,
                                                            sample_scored, "absenteeism")
    assert compared == 1992 and refused == 3  # of 8 quarantined rows, 5 have cells no record can hold


def test_the_server_answers_every_row_of_the_real_data_set_with_the_scored_bits(real_data, tmp_path):
    job = run("run", "--input", real_data, "--output-dir", tmp_path / "run", "--model", "gbt")
    assert job.returncode == 0, job.stderr
    result = score(tmp_path / "run" / "serving_config.pb", real_data, tmp_path / "score", "--features")
    assert result.returncode == 0, result.stderr
    compared, _ = assert_server_gives_the_scored_bits(tmp_path / "run" / "serving_config.pb", real_data,
                                                      tmp_path / "score", "absenteeism")
    # The 3 rows a server refuses are the rows the job rejected, for the same rules.
    assert compared == 737
    assert (tmp_path / "score" / "rejects.csv").read_bytes() == (tmp_path / "run" / "rejects.csv").read_bytes()
    training_set = pd.read_parquet(tmp_path / "run" / "training_set.parquet")
    both = training_set.merge(scored(tmp_path / "score"), on="source_row", suffixes=("", "_scored"))
    assert len(both) == len(training_set)
    assert_same_bits(both["prediction_scored"], both["prediction"])


def test_a_penguins_classifier_scores_the_table_with_the_servers_bits_missing_values_and_all(tmp_path):
    job = run("run", "--dataset", "penguins", "--label", "species_index", "--model", "gbt",
              "--output-dir", tmp_path / "run")
    assert job.returncode == 0, job.stderr
    config = tmp_path / "run" / "serving_config.pb"
    result = score(config, PENGUINS, tmp_path / "score", "--features", "--engine", "dask", "--workers", "2",
                   "--part-bytes", "8192")
    assert result.returncode == 0, result.stderr
    # The two rows the job could not train on lack their body mass, a label: a server answers them.
    assert assert_server_gives_the_scored_bits(config, PENGUINS, tmp_path / "score", "penguins") == (344, 0)
    got = scored(tmp_path / "score")
    assert got.columns.tolist()[-4:] == ["prediction", "probability[0]", "probability[1]", "probability[2]"]
    training_set = pd.read_parquet(tmp_path / "run" / "training_set.parquet")
    both = training_set.merge(got, on="source_row", suffixes=("", "_scored"))
    assert len(both) == 342
    for column in ("prediction", "probability[0]", "probability[1]", "probability[2]"):
        assert_same_bits(both[f"{column}_scored"], both[column])


def test_the_aggregates_are_the_configs_never_the_inputs(trained_config, sample_scored, tmp_path, monkeypatch):
    # The first 60 rows: their own aggregates (mean age, ...) differ from the training rows'.
    lines = trained_config.source.read_bytes().splitlines(keepends=True)
    head = tmp_path / "head.csv"
    head.write_bytes(b"".join(lines[:61]))
    typed = reader.read_valid(head)
    assert typed["age"].mean() != trained_config.accepted["age"].mean()

    def no_aggregates(*_args, **_kwargs):
        raise AssertionError("scoring computed an aggregate")

    monkeypatch.setattr(dataflow, "compute_aggregates", no_aggregates)
    monkeypatch.setattr(training, "analyze", no_aggregates)
    report = scoring.score(scoring.ScoreSettings(config_path=trained_config.path, input_path=head,
                                                 output_dir=tmp_path / "out", with_features=True))
    assert report["rows"]["read"] == 60
    got = scored(tmp_path / "out").set_index("source_row")
    whole = scored(sample_scored).set_index("source_row").loc[got.index]
    assert_same_bits(got.to_numpy(), whole.to_numpy())


def test_a_label_column_is_ignored_as_a_server_never_sees_one(trained_config, sample_scored, tmp_path):
    frame = pd.read_csv(trained_config.source, sep=";", dtype=str, keep_default_na=False)
    label = "Absenteeism time in hours"
    frame.loc[0, label] = "-5"  # breaks the label's rule: the job rejects the row, a server never sees it
    broken_label = tmp_path / "broken_label.csv"
    frame.to_csv(broken_label, sep=";", index=False)
    no_label = tmp_path / "no_label.csv"
    frame.drop(columns=[label]).to_csv(no_label, sep=";", index=False)
    for source in (broken_label, no_label):
        result = score(trained_config.path, source, tmp_path / source.stem, "--features")
        assert result.returncode == 0, result.stderr
        got = scored(tmp_path / source.stem)
        assert 1 in got["source_row"].tolist()
        assert_same_bits(got.drop(columns="source_row").to_numpy(),
                         scored(sample_scored).drop(columns="source_row").to_numpy())


def test_a_config_a_server_would_refuse_is_refused_and_the_output_folder_kept(trained_config, sample_scored,
                                                                             tmp_path):
    before = content(sample_scored / scoring.PREDICTIONS_FILE)
    config = config_io.read_config(trained_config.path)
    config.provenance.code.feature_module_sha256 = "0" * 64
    other_module = tmp_path / "other_module.pb"
    other_module.write_bytes(config_io.seal(config).SerializeToString())
    edited = tmp_path / "edited.pb"
    edited.write_bytes(trained_config.path.read_bytes().replace(b"ridge", b"ridgE"))
    for config_path, reason in ((other_module, "different feature module"),
                                (edited, "does not match its recorded digest")):
        result = score(config_path, trained_config.source, sample_scored)
        assert result.returncode == 78, result.stderr
        assert reason in result.stderr and str(config_path) in result.stderr, result.stderr
    assert content(sample_scored / scoring.PREDICTIONS_FILE) == before


def test_an_input_that_cannot_be_read_is_exit_3_and_the_output_folder_kept(trained_config, sample_scored):
    before = content(sample_scored / scoring.PREDICTIONS_FILE)
    result = score(trained_config.path, REPO_ROOT / "no_such_input.csv", sample_scored)
    assert result.returncode == 3 and "no_such_input.csv" in result.stderr, result.stderr
    assert content(sample_scored / scoring.PREDICTIONS_FILE) == before


# -- rows the feature module or the model refuse: quarantined, the others scored ------------------

def first_chunk(source: Path):
    return next(reader.Reader(source, chunk_rows=500, require_label=False).chunks()).rows


STANDARDIZED_AGE = "age_zero_mean_unit_variance"


def everything_rejected(rows) -> int:
    """The rows of a chunk its raw rules refuse."""
    return validate.validate_chunk(rows, training=False).rejected_rows


class RefusesOneAge(served_model.LinearServedModel):
    """The config's model, refusing (as a model answering NaN) every batch holding a row of one age."""

    def __init__(self, model, refused_value: float):
        super().__init__(model)
        self.column = list(dataflow.model_features()).index(STANDARDIZED_AGE)
        self.refused_value = refused_value

    def predict(self, matrix: np.ndarray) -> served_model.ModelOutputs:
        if (matrix[:, self.column] == self.refused_value).any():
            raise served_model.ModelOutputError("the model's output 'prediction' holds a NaN")
        return super().predict(matrix)


def test_rows_the_model_refuses_are_quarantined_alone_with_the_reason(trained_config):
    model = score_steps.scoring_model(trained_config.config, with_features=True)
    rows = first_chunk(trained_config.source)
    everything = score_steps.score_chunk(rows, model).table.to_pandas()
    value = everything[STANDARDIZED_AGE].iloc[7]
    refusing = score_steps.ScoringModel(model.aggregates, RefusesOneAge(trained_config.config.model, value), True)
    refused = score_steps.score_chunk(rows, refusing)
    of_that_age = set(everything.loc[everything[STANDARDIZED_AGE] == value, "source_row"])
    assert 1 < len(of_that_age) < 100
    assert {v.row for v in refused.validation.violations if v.rule == score_steps.MODEL_OUTPUT} == of_that_age
    assert {v.column for v in refused.validation.violations if v.row in of_that_age} == {"prediction"}
    assert refused.validation.rejected_rows == len(of_that_age) + everything_rejected(rows)
    assert_same_bits(refused.table.to_pandas().to_numpy(),
                     everything[everything[STANDARDIZED_AGE] != value].to_numpy())


def test_rows_whose_features_break_a_check_are_quarantined_alone_with_the_check(trained_config, monkeypatch):
    model = score_steps.scoring_model(trained_config.config, with_features=True)
    rows = first_chunk(trained_config.source)
    everything = score_steps.score_chunk(rows, model).table.to_pandas()
    age = int(trained_config.accepted.loc[8, "age"])
    of_that_age = set(trained_config.accepted.index[(trained_config.accepted["age"] == age)
                                                    & (trained_config.accepted.index <= 500)])
    compute = dataflow.compute_features

    def checked(raw: pd.DataFrame, aggregates):
        if (raw["age"] == age).any():
            raise DataValidationError([f"age_zero_mean_unit_variance: in_range check failed for age {age}"])
        return compute(raw, aggregates)

    monkeypatch.setattr(dataflow, "compute_features", checked)
    refused = score_steps.score_chunk(rows, model)
    quarantined = [v for v in refused.validation.violations if v.rule == score_steps.FEATURE_CHECK]
    assert 1 < len(of_that_age) < 100
    assert {v.row for v in quarantined} == of_that_age and {v.column for v in quarantined} == {"features"}
    assert all(f"in_range check failed for age {age}" in str(v.value) for v in quarantined)
    assert_same_bits(refused.table.to_pandas().to_numpy(),
                     everything[~everything["source_row"].isin(of_that_age)].to_numpy())


def test_a_chunk_leaves_none_of_its_columns_behind(trained_config):
    """Hamilton's execute leaves its results in a reference cycle; left to the oldest generation,
    those of a long input piled up (20M rows peaked at 828 MiB instead of 383)."""
    model = score_steps.scoring_model(trained_config.config, with_features=True)
    rows = first_chunk(trained_config.source)
    gc.collect()
    scored = score_steps.score_chunk(rows, model)
    left = [o for o in gc.get_objects() if isinstance(o, pd.Series) and len(o) == scored.table.num_rows]
    assert left == []
