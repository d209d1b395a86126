"""Error details stay readable whatever the batch: the BadRequest lists the first violations within a
size cap and says how many it leaves out, so gRPC clients (which refuse trailers over 8 KiB) get
INVALID_ARGUMENT with details, and a batch of 10,000 empty records leaves the server serving. (What
such a batch costs the server in memory and CPU is measured by bench/error_details.py, not asserted.)"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2, status_pb2

from absenteeism import absenteeism_schema, raw_schema
from absenteeism.online.reference import ReferencePredictor
from absenteeism.v1 import raw_record_pb2
from absenteeism.violation_table import ViolationTable
from clients import InvalidInputError, PredictionClient
from feature_service.rpc import status_mapping
from testkit.bits import assert_same_bits
from testkit.records import VALID_ROW
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

TRAILER_LIMIT = 8 * 1024  # grpc's default max_metadata_size (soft limit) for a receiving client


@pytest.fixture(scope="module")
def server(trained_config):
    with ServerProcess(trained_config.path) as server:
        yield server


@pytest.fixture(scope="module")
def client(server):
    with PredictionClient(server.target, insecure=True, timeout=60, retries=0) as client:
        yield client


def listed_and_summary(error: InvalidInputError):
    *listed, summary = error.violations
    assert summary.field == "records"
    return listed, summary


def test_165_bad_records_give_invalid_argument_with_readable_details(client):
    batch = [{**VALID_ROW, "age": 101}] * 165  # one violation each
    with pytest.raises(InvalidInputError) as caught:
        client.predict_batch(batch)
    error = caught.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    listed, summary = listed_and_summary(error)
    assert [v.field for v in listed] == [f"records[{i}].age" for i in range(len(listed))]
    assert all("in_range(16, 100)" in v.description for v in listed)
    assert 0 < len(listed) <= status_mapping.MAX_LISTED_VIOLATIONS
    left_out = 165 - len(listed)
    assert f"{left_out} more invalid field(s) not listed" in summary.description
    assert "165 invalid field(s) in 165 record(s)" in error.message
    assert f"{left_out} left out" in error.message


def test_10000_empty_records_give_invalid_argument_and_the_server_serves_on(client, trained_config):
    """Capped details for 200,000 violations, and afterwards VALID_ROW still gets the batch path's
    prediction bit for bit."""
    for _ in range(3):
        with pytest.raises(InvalidInputError) as caught:
            client.predict_batch([raw_record_pb2.RawRecord()] * 10_000)
    error = caught.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    listed, summary = listed_and_summary(error)
    names = sorted(absenteeism_schema.RAW_COLUMN_NAMES)  # in record order, then field name order
    assert [(v.field, v.description) for v in listed] == [
        (f"records[{k // 20}].{names[k % 20]}", f"{names[k % 20]}: required field is missing")
        for k in range(len(listed))]
    left_out = 200_000 - len(listed)
    assert f"{left_out} more invalid field(s) not listed" in summary.description
    assert "200000 invalid field(s) in 10000 record(s)" in error.message and f"{left_out} left out" in error.message
    expected = ReferencePredictor(trained_config.config).predict([raw_record_pb2.RawRecord(**VALID_ROW)]).predictions
    assert_same_bits(client.predict(VALID_ROW).prediction, expected[0])  # still serving, the same bits


def longest_violations(records: int) -> ViolationTable:
    """Every field of every record broken, with the longest value text there is, in record order."""
    rows = np.arange(records)
    broken = [ViolationTable.broken(c.name, raw_schema.rule_text(c.check), rows,
                                    np.full(records, -2.0 ** 31 if c.dtype == "int64" else -1.7976931348623157e308))
              for c in absenteeism_schema.RAW_COLUMNS]
    return ViolationTable.merged(ViolationTable.missing(np.zeros((0, len(absenteeism_schema.RAW_COLUMNS)), dtype=bool)),
                                 ViolationTable.concat(broken))


@pytest.mark.parametrize("records", [1, 5, 10_000])
@pytest.mark.parametrize("field_path", [status_mapping.single_record_field, status_mapping.batch_record_field])
def test_the_status_trailers_stay_under_the_client_limit_for_any_number_of_violations(records, field_path):
    table = longest_violations(records)
    status = status_mapping.bad_request_status(table, field_path)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    trailers = dict(status.trailing_metadata)
    size = sum(len(k) + len(v) + 32 for k, v in trailers.items()) + len("grpc-message") + len(status.details) + 32
    assert size < TRAILER_LIMIT * 3 // 4
    detail = error_details_pb2.BadRequest()
    assert status_pb2.Status.FromString(trailers["grpc-status-details-bin"]).details[0].Unpack(detail)
    listed = len(detail.field_violations)
    if records == 1:  # a single record's violations always fit whole
        assert listed == len(table) == 20
    else:
        assert detail.field_violations[-1].description.startswith(f"{len(table) - listed + 1} more invalid field(s)")
        assert f"{len(table) - listed + 1} left out" in status.details


def test_a_table_reads_like_the_violations_it_holds():
    missing = np.zeros((3, len(absenteeism_schema.RAW_COLUMNS)), dtype=bool)
    missing[1, [0, 13]] = True  # id and son unset in record 1
    broken = ViolationTable.concat([
        ViolationTable.broken("id", "in_range(1, 10000)", np.array([1, 2]), np.array([0.0, 0.0])),
        ViolationTable.broken("age", "in_range(16, 100)", np.array([2]), np.array([5.0]))])
    merged = ViolationTable.merged(ViolationTable.missing(missing), broken)
    assert [(v.row, v.column, v.rule, v.value) for v in merged] == [
        (1, "id", "required", None), (1, "son", "required", None),
        (2, "age", "in_range(16, 100)", 5), (2, "id", "in_range(1, 10000)", 0)]
    assert merged.record_count() == 2 and merged.counts_by_column() == {"id": 2, "son": 1, "age": 1}
    assert [v.column for v in merged.first(2)] == ["id", "son"]
