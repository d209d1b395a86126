"""PredictColumns through a real server process: every row of the real data set and of the penguins
table (text, dates, missing values) answered with the bits of one Predict call per record; the
records and a typed frame sent as columns alike; columns that cannot be read refused naming the
column; invalid records named by record and field; the prediction log names and replays them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from absenteeism import data_sets
from absenteeism.dataset import reader
from absenteeism.online import converters
from absenteeism.v1 import prediction_service_pb2 as pb
from absenteeism.v1 import record_columns_pb2
from clients import PredictionClient, server_parity
from clients.client import InvalidInputError, PredictionError
from etl_job import schema_records
from testkit.bits import assert_same_bits
from testkit.paths import REPO_ROOT
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`


def typed_rows(source: Path, data_set: str) -> pd.DataFrame:
    """The rows of `source` a server accepts, typed, with the request fields only."""
    data_sets.activate(data_set)
    try:
        return reader.read_valid(source).loc[:, list(data_sets.active().table.column_names)]
    finally:
        data_sets.activate(data_sets.DEFAULT)


def records_of(frame: pd.DataFrame, data_set: str) -> list:
    data_sets.activate(data_set)
    try:
        return converters.frame_to_records(frame)
    finally:
        data_sets.activate(data_sets.DEFAULT)


def assert_columns_answer_as_predict(target: str, data_set: str, frame: pd.DataFrame) -> None:
    records = records_of(frame, data_set)
    with PredictionClient(target, insecure=True, data_set=data_set) as client:
        one_by_one = server_parity.predict_one_by_one(client, records, concurrency=4, progress=False)
        for sent in (records, frame):  # the records, and the typed frame, as columns
            columns = client.predict_columns(sent, include_features=True)
            assert columns.feature_names == one_by_one.feature_names
            assert_same_bits(columns.features, one_by_one.features)
            assert_same_bits(columns.predictions, one_by_one.predictions)
        plain = client.predict_columns(records)
        assert plain.features is None and not plain.feature_names
        assert_same_bits(plain.predictions, one_by_one.predictions)


def test_every_row_of_the_real_data_set_is_answered_with_predicts_bits(trained_config, real_data):
    frame = typed_rows(real_data, "absenteeism")
    assert len(frame) == 737
    with ServerProcess(trained_config.path) as server:
        assert_columns_answer_as_predict(server.target, "absenteeism", frame)


def test_records_at_the_edges_of_every_range_are_answered_with_predicts_bits(plaintext_server):
    table = data_sets.named("absenteeism").table
    frame = pd.DataFrame(schema_records.edge_records(table)).astype({c.name: c.frame_dtype for c in table.columns})
    assert_columns_answer_as_predict(plaintext_server.target, "absenteeism", frame)


@pytest.fixture(scope="module")
def penguins_config(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("penguins") / "out"
    result = subprocess.run([sys.executable, "-m", "etl_job", "run", "--dataset", "penguins", "--output-dir", str(out),
                             "--no-progress"], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    return out / "serving_config.pb"


def test_penguins_rows_with_and_without_their_missing_values_are_answered_with_predicts_bits(penguins_config):
    frame = typed_rows(data_sets.named("penguins").sample_input, "penguins")
    nullable = [c.name for c in data_sets.named("penguins").table.columns if c.nullable]
    cleared = frame.copy()
    cleared.loc[cleared.index[::2], nullable] = None  # every other row without any optional value
    data_sets.activate("penguins")
    try:  # records as a client writes them: every category, both ends of every range, None where allowed
        edge_records = [converters.to_request_record(fields)
                        for fields in schema_records.edge_records(data_sets.active().table)]
    finally:
        data_sets.activate(data_sets.DEFAULT)
    with ServerProcess(penguins_config) as server:
        for rows in (frame, cleared):
            assert_columns_answer_as_predict(server.target, "penguins", rows)
        with PredictionClient(server.target, insecure=True, data_set="penguins") as client:
            one_by_one = server_parity.predict_one_by_one(client, edge_records, concurrency=2, progress=False)
            columns = client.predict_columns(edge_records, include_features=True)
        assert_same_bits(columns.features, one_by_one.features)
        assert_same_bits(columns.predictions, one_by_one.predictions)


def refusal(target: str, columns: record_columns_pb2.RecordColumns) -> tuple[grpc.StatusCode, list[tuple[str, str]]]:
    with grpc.insecure_channel(target) as channel:
        stub = data_sets.named("absenteeism").service_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.PredictColumns(pb.PredictColumnsRequest(records=columns))
    status = rpc_status.from_call(refused.value)
    fields = []
    for detail in status.details if status is not None else ():
        bad_request = error_details_pb2.BadRequest()
        detail.Unpack(bad_request)
        fields += [(v.field, v.description) for v in bad_request.field_violations]
    return refused.value.code(), fields


def test_columns_that_cannot_be_read_are_refused_naming_the_column_and_the_server_serves_on(plaintext_server,
                                                                                             trained_config):
    records = converters.frame_to_records(trained_config.accepted.iloc[:3].loc[:, list(
        data_sets.named("absenteeism").table.column_names)])
    good = converters.records_to_columns(records)

    def edited(edit) -> record_columns_pb2.RecordColumns:
        message = record_columns_pb2.RecordColumns()
        message.CopyFrom(good)
        edit(message)
        return message

    unknown = edited(lambda m: setattr(m.columns[2], "field", "shoe_size"))
    assert refusal(plaintext_server.target, unknown) == (grpc.StatusCode.INVALID_ARGUMENT, [
        ("records.columns[2]", "'shoe_size' is not a field of absenteeism.v1.RawRecord")])
    short = edited(lambda m: m.columns[1].integers.values.pop())
    assert refusal(plaintext_server.target, short) == (grpc.StatusCode.INVALID_ARGUMENT, [
        ("records.columns[1]", "2 values of field 'reason_for_absence' for 3 rows")])
    as_doubles = edited(lambda m: m.columns[0].doubles.values.extend([1.0, 2.0, 3.0]))
    assert refusal(plaintext_server.target, as_doubles) == (grpc.StatusCode.INVALID_ARGUMENT, [
        ("records.columns[0]", "field 'id' is sent as integers, not doubles")])
    # Readable columns, invalid records: named by record and field, as PredictBatch names them.
    age = [column.field for column in good.columns].index("age")
    old = edited(lambda m: m.columns[age].integers.values.__setitem__(1, 150))
    without_age = edited(lambda m: m.columns[age].present.extend([True, False, True]))
    assert refusal(plaintext_server.target, old) == (grpc.StatusCode.INVALID_ARGUMENT, [
        ("records[1].age", "age: value 150 breaks rule in_range(16, 100)")])
    assert refusal(plaintext_server.target, without_age) == (grpc.StatusCode.INVALID_ARGUMENT, [
        ("records[1].age", "age: required field is missing")])
    with PredictionClient(plaintext_server.target, insecure=True) as client:
        assert len(client.predict_columns(records).predictions) == 3  # and it serves on
        assert len(client.predict_columns([]).predictions) == 0


def test_more_rows_than_max_batch_are_refused(trained_config):
    records = converters.frame_to_records(trained_config.accepted.iloc[:5].loc[:, list(
        data_sets.named("absenteeism").table.column_names)])
    with ServerProcess(trained_config.path, "--max-batch", "4") as server, \
            PredictionClient(server.target, insecure=True) as client:
        with pytest.raises(PredictionError) as refused:
            client.predict_columns(records)
        assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(InvalidInputError):
            client.predict_columns([*records[:3], converters.raw_record(age=40)])
        assert len(client.predict_columns(records[:4]).predictions) == 4


def test_records_sent_as_columns_are_logged_by_request_id_and_replay(trained_config, tmp_path):
    folder = tmp_path / "log"
    records = converters.frame_to_records(trained_config.accepted.iloc[:50].loc[:, list(
        data_sets.named("absenteeism").table.column_names)])
    with ServerProcess(trained_config.path, "--prediction-log", str(folder), "--prediction-log-sample-rate", "1",
                       "--micro-batch-rows", "64") as server, PredictionClient(server.target, insecure=True) as client:
        answered = client.predict_columns(records, request_id="columns:1")
    assert server.returncode == 0
    logged = pd.concat(pd.read_parquet(path) for path in sorted(folder.glob("*.parquet"))).set_index("request_id")
    assert sorted(logged.index) == sorted(answered.record_ids)
    assert_same_bits(logged.loc[answered.record_ids, "prediction"].to_numpy(), answered.predictions)
    assert np.array_equal(logged.loc[answered.record_ids, "age"].to_numpy(), [r.age for r in records])
    replay = subprocess.run([sys.executable, "-m", "clients", "parity", "--prediction-log", str(folder), "--config",
                             str(trained_config.path)], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert replay.returncode == 0 and "PARITY: identical" in replay.stdout, replay.stdout + replay.stderr
