"""The framework over every data set it knows: records made from each raw schema alone (its golden
records: every category, the ends and quartiles of every range, a missing value in every nullable
field, empty and non-ASCII free text) and each data set's own rows go through both online
predictors with the same bits as the batch path, and a file's rows read as a request's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from absenteeism import config_io, data_sets, dataflow
from absenteeism.dataset import reader
from absenteeism.online import converters
from absenteeism.online.fast import FastPredictor
from absenteeism.online.predictor import InvalidRecords
from absenteeism.online.reference import ReferencePredictor
from etl_job import golden, pipeline, run_settings, schema_records
from testkit.bits import assert_same_bits

DATA_SETS = sorted(data_sets.KNOWN)


@pytest.fixture(scope="module", params=DATA_SETS)
def built(request, tmp_path_factory) -> tuple[str, Path]:
    """The job run in this process on the data set's bundled sample: (name, output folder)."""
    out = tmp_path_factory.mktemp(request.param) / "out"
    data_sets.activate("penguins" if request.param == "absenteeism" else "absenteeism")  # another one
    try:
        # No input_path: the data set's own bundled sample, whichever data set was active before.
        pipeline.run(run_settings.RunSettings(data_set=request.param, output_dir=out))
    finally:
        data_sets.activate(data_sets.DEFAULT)
    return request.param, out


@pytest.fixture
def active(built):
    name, out = built
    data_sets.activate(name)
    yield name, out, config_io.read_config(out / config_io.CONFIG_FILE)
    data_sets.activate(data_sets.DEFAULT)


def test_schema_made_records_give_the_batch_paths_bits_on_both_predictors(active):
    _, _, config = active
    records = converters.golden_records(config)
    assert len(records) == len(config.golden_rows) >= 3
    table = data_sets.active().table
    for column in table.columns:  # what the golden records are made of: every kind of edge
        values = [converters.record_to_dict(r)[column.name] for r in records]
        if column.nullable:
            assert None in values, column.name
        if column.text_categories:
            assert set(column.text_categories) <= set(values), column.name
    expected = np.array([row.features for row in config.golden_rows])
    for predictor in (FastPredictor(config), ReferencePredictor(config)):
        result = predictor.predict(records)
        assert_same_bits(result.features, expected)
        assert_same_bits(result.predictions, np.array([row.prediction for row in config.golden_rows]))


def test_every_accepted_row_of_the_sample_is_the_training_sets_on_both_predictors(active):
    _, out, config = active
    table = data_sets.active().table
    accepted = reader.read_valid(data_sets.active().sample_input)
    training = pd.read_parquet(out / "training_set.parquet").set_index("source_row")
    rows = accepted.loc[training.index, list(table.column_names)]
    records = converters.frame_to_records(rows)
    expected = training.loc[:, list(config.feature_names)].to_numpy(dtype=np.float64)
    for predictor in (FastPredictor(config), ReferencePredictor(config)):
        result = predictor.predict(records)
        assert_same_bits(result.features, expected)
        assert_same_bits(result.predictions, training["prediction"].to_numpy(dtype=np.float64))


def test_a_files_rows_read_as_a_requests_records(active):
    """Typed columns from the file (the job's reader) and from the same rows sent as records (the
    server's converters): the same dtypes and bits, missing values included."""
    table = data_sets.active().table
    accepted = reader.read_valid(data_sets.active().sample_input)
    rows = accepted.loc[:, list(table.column_names)]
    arrays, missing = converters.records_to_arrays(converters.frame_to_records(rows))
    assert len(missing) == 0
    for column in table.columns:
        from_file, from_request = rows[column.name].to_numpy(), arrays[column.name]
        if column.dtype == "str":
            assert [None if pd.isna(v) else v for v in from_file] == from_request.tolist(), column.name
        else:
            assert from_request.dtype == from_file.dtype, column.name
            assert_same_bits(from_request, from_file)


def test_the_golden_frame_covers_each_columns_rules(active):
    frame = golden.golden_frame()
    for column in data_sets.active().table.columns:
        assert frame[column.name].dtype == column.frame_dtype, column.name


def test_edge_records_give_the_batch_paths_bits_and_invalid_ones_the_same_refusals_on_both_predictors(active):
    _, _, config = active
    table = data_sets.active().table
    records = [converters.to_request_record(fields) for fields in schema_records.edge_records(table)]
    fast, reference = FastPredictor(config), ReferencePredictor(config)
    arrays, _ = converters.records_to_arrays(records)
    batch = dataflow.feature_matrix(dataflow.compute_features(pd.DataFrame(arrays), reference.aggregates))
    for predictor in (fast, reference):
        assert_same_bits(predictor.predict(records).features, batch)
    invalid = schema_records.invalid_edge_records(table)
    assert {edge.field for edge in invalid} >= {c.name for c in table.columns if not c.nullable}
    for edge in invalid:
        refusals = []
        for predictor in (fast, reference):
            with pytest.raises(InvalidRecords) as refused:
                predictor.predict([converters.to_request_record(edge.record)])
            refusals.append([(v.row, v.column, v.rule, v.value) for v in refused.value.violations])
        assert refusals[0] == refusals[1], edge
        assert [(column, rule.split("(")[0]) for _, column, rule, _ in refusals[0]] == [(edge.field, edge.rule)], edge


def columns_of(records: list) -> converters.ColumnBatch:
    """The records as a client sends them in PredictColumns, read as the server reads them."""
    message = converters.records_to_columns(records)
    return converters.ColumnBatch(type(message).FromString(message.SerializeToString()))


def assert_same_arrays(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for name, values in expected.items():
        assert got[name].dtype == values.dtype, name
        if values.dtype == object:
            assert got[name].tolist() == values.tolist(), name
        else:
            assert_same_bits(got[name], values)


def test_records_sent_as_columns_are_read_as_the_records_and_answered_with_their_bits(active):
    _, _, config = active
    table = data_sets.active().table
    accepted = reader.read_valid(data_sets.active().sample_input).loc[:, list(table.column_names)]
    edge = [converters.to_request_record(fields) for fields in schema_records.edge_records(table)]
    for records in (converters.golden_records(config), edge, converters.frame_to_records(accepted)):
        batch = columns_of(records)
        arrays, missing = converters.records_to_arrays(batch)
        expected_arrays, expected_missing = converters.records_to_arrays(records)
        assert_same_arrays(arrays, expected_arrays)
        assert list(missing) == list(expected_missing)
        assert [converters.record_to_dict(r) for r in batch[:]] == [converters.record_to_dict(r) for r in records]
        for predictor in (FastPredictor(config), ReferencePredictor(config)):
            by_columns, by_records = predictor.predict(batch), predictor.predict(records)
            assert_same_bits(by_columns.features, by_records.features)
            assert_same_bits(by_columns.predictions, by_records.predictions)
    # A typed frame sent column by column (null cells unset, dates as their days): the same records.
    assert_same_arrays(converters.records_to_arrays(converters.ColumnBatch(converters.frame_to_columns(accepted)))[0],
                       converters.records_to_arrays(converters.frame_to_records(accepted))[0])


def test_invalid_records_sent_as_columns_are_refused_as_the_records_are(active):
    _, _, config = active
    invalid = schema_records.invalid_edge_records(data_sets.active().table)
    records = [converters.to_request_record(edge.record) for edge in invalid]
    for predictor in (FastPredictor(config), ReferencePredictor(config)):
        refusals = []
        for sent in (records, columns_of(records)):
            with pytest.raises(InvalidRecords) as refused:
                predictor.predict(sent)
            refusals.append([(v.row, v.column, v.rule, v.value) for v in refused.value.violations])
        assert refusals[0] == refusals[1]
        assert {row for row, *_ in refusals[0]} == set(range(len(records)))


def test_a_column_that_cannot_be_read_is_refused_naming_it(active):
    table = data_sets.active().table
    records = [converters.to_request_record(fields) for fields in schema_records.edge_records(table)]
    first = table.columns[0].name

    def refusal(edit) -> str:
        message = converters.records_to_columns(records)
        edit(message)
        with pytest.raises(converters.ColumnsError) as refused:
            converters.ColumnBatch(message)
        return str(refused.value)

    assert refusal(lambda m: setattr(m.columns[0], "field", "no_such_field")).startswith(
        "records.columns[0]: 'no_such_field' is not a field of")
    assert refusal(lambda m: m.columns.append(m.columns[0])).startswith(
        f"records.columns[{len(table.columns)}]: a second column of field {first!r}")
    assert f"{len(records) - 1} values of field {first!r} for {len(records)} rows" in refusal(
        lambda m: setattr(m, "rows", len(records)) or getattr(m.columns[0], m.columns[0].WhichOneof("values")).values.pop())
    assert "presence flags" in refusal(lambda m: m.columns[0].present.extend([True]))
    sent = converters.records_to_columns(records).columns[0].WhichOneof("values")
    other = "strings" if sent != "strings" else "doubles"
    assert f"field {first!r} is sent as {sent}, not {other}" in refusal(
        lambda m: getattr(m.columns[0], other).SetInParent())
