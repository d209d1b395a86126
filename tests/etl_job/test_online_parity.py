"""The job's own online parity check: a row the batch path accepted and the online path refuses is
a disagreement like a differing bit, named by source row, field and rule; nothing is published."""

from __future__ import annotations

import pickle

import pytest

from absenteeism import config_io
from absenteeism.online.fast import FastPredictor
from absenteeism.online.predictor import InvalidRecords
from absenteeism.raw_schema import Violation
from etl_job import cli, online_parity, pipeline, run_settings

AGE_RULE = Violation(row=0, column="age", rule="in_range(18, 70)", value=33)


def test_invalid_records_survive_pickling():
    """The forked check sends its error back pickled: it must arrive whole, rows and rules named."""
    error = InvalidRecords([AGE_RULE, Violation(row=3, column="pet", rule="required", value=None)])
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is InvalidRecords and str(again) == str(error)
    assert again.violations == error.violations


@pytest.fixture
def online_refuses_age_33(monkeypatch):
    """The online path refuses every record aged 33 that the batch path accepted."""
    original = FastPredictor.predict

    def refusing(self, records):
        if any(record.age == 33 for record in records):
            raise InvalidRecords([AGE_RULE])
        return original(self, records)

    monkeypatch.setattr(FastPredictor, "predict", refusing)


def test_a_row_the_online_path_refuses_stops_the_job_naming_it(tmp_path, online_refuses_age_33):
    with pytest.raises(online_parity.ParityError) as stopped:
        pipeline.run(run_settings.RunSettings(output_dir=tmp_path))
    message = str(stopped.value)
    assert "the online path refuses" in message and "age: value 33 breaks rule in_range(18, 70)" in message
    assert "source row " in message
    assert not (tmp_path / config_io.CONFIG_FILE).exists() and not (tmp_path / "training_set.parquet").exists()


def test_the_command_exits_1_naming_the_refused_rows(tmp_path, online_refuses_age_33, capsys):
    code = cli.main(["run", "--output-dir", str(tmp_path), "--no-progress"])
    stderr = capsys.readouterr().err
    assert code == cli.EXIT_INTERNAL
    assert "ParityError" in stderr and "age: value 33 breaks rule in_range(18, 70)" in stderr
    assert "AttributeError" not in stderr
    assert not (tmp_path / config_io.CONFIG_FILE).exists()
