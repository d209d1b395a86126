"""A missing field is never read as 0, whatever bytes arrive: unknown fields (a known field number
with the wrong wire type, or a field of a newer v1) must not hide an unset field."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from absenteeism import absenteeism_schema, raw_schema
from absenteeism.online import converters
from absenteeism.online.fast import FastPredictor
from absenteeism.online.predictor import InvalidRecords
from absenteeism.online.reference import ReferencePredictor
from absenteeism.v1 import raw_record_pb2
from testkit.records import VALID_ROW
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.process  # starts real processes: `make test`, not `make test-fast`

PREDICT = "/absenteeism.v1.PredictionService/Predict"
SON_WRONG_WIRE_TYPE = b"\x72\x00"  # field 14 (son, a varint) as an empty length-delimited field
FIELD_21 = b"\xa8\x01\x80\x80\x01"  # field 21 (not in RawRecord v1), varint: 5 bytes, as many as son + pet


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def record_bytes(*unset: str, tail: bytes = b"") -> bytes:
    """VALID_ROW's encoding without the `unset` fields, with `tail` (raw wire bytes) appended."""
    record = raw_record_pb2.RawRecord(**{k: v for k, v in VALID_ROW.items() if k not in unset})
    return record.SerializeToString() + tail


def predict_request_bytes(record: bytes) -> bytes:
    return b"\x0a" + varint(len(record)) + record  # PredictRequest.record = 1 (length-delimited)


def unknown_field(rng: np.random.Generator) -> bytes:
    """One field the RawRecord parser keeps as unknown: a RawRecord field number with a wire type
    it does not have, or a number above 20, with any wire type."""
    number = int(rng.integers(1, 40))
    wire_types = [1, 2, 5] if number <= 20 else [0, 1, 2, 5]  # RawRecord fields are varints or doubles
    if 1 <= number <= 20 and raw_record_pb2.RawRecord.DESCRIPTOR.fields_by_number[number].type == 1:  # double
        wire_types = [0, 2, 5]
    wire_type = int(rng.choice(wire_types))
    payload = {0: varint(int(rng.integers(0, 2 ** 35))), 1: bytes(8), 5: bytes(4)}.get(wire_type)
    if payload is None:
        payload = varint(n := int(rng.integers(0, 12))) + bytes(n)
    return varint(number << 3 | wire_type) + payload


def padding(size: int) -> bytes:
    """An unknown field of exactly `size` (>= 2) bytes, as if it took an unset field's place."""
    if size == 2:
        return b"\x72\x00"
    return varint(21 << 3 | 2) + varint(size - 3) + bytes(size - 3)  # field 21, length-delimited


def random_records(count: int, seed: int) -> list[raw_record_pb2.RawRecord]:
    """Parsed records with random fields unset, many with unknown fields, some padded so that their
    encoded size is what it would be with every field set."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(count):
        unset = [name for name in absenteeism_schema.RAW_COLUMN_NAMES if rng.random() < 0.1]
        data = record_bytes(*unset)
        data += b"".join(unknown_field(rng) for _ in range(int(rng.integers(0, 3))))
        if (deficit := as_if_zero_size(unset) - len(data)) >= 2 and rng.random() < 0.5:
            data += padding(deficit)
        records.append(raw_record_pb2.RawRecord.FromString(data))
    return records


def as_if_zero_size(unset) -> int:
    """VALID_ROW's encoded size with the `unset` fields set to 0 instead: what a record missing
    them would read as."""
    return raw_record_pb2.RawRecord(**{**VALID_ROW, **{name: 0 for name in unset}}).ByteSize()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_records_to_matrix_finds_unset_fields_whatever_unknown_fields_come_with_them(seed):
    records = random_records(2000, seed)
    matrix, missing = converters.records_to_matrix(records)
    names = absenteeism_schema.RAW_COLUMN_NAMES
    expected = sorted((i, name) for i, r in enumerate(records) for name in names if not r.HasField(name))
    assert sorted((v.row, v.column) for v in missing) == expected
    unset = [[name for name in names if not r.HasField(name)] for r in records]
    padded = [i for i, r in enumerate(records) if unset[i] and r.ByteSize() == as_if_zero_size(unset[i])]
    assert len(padded) > 100  # the case an encoded-size test alone gets wrong is well represented
    for i, record in enumerate(records):
        assert [matrix[i, j] for j, name in enumerate(names) if record.HasField(name)] == [
            getattr(record, name) for name in names if record.HasField(name)]


@pytest.mark.parametrize("predictor", [FastPredictor, ReferencePredictor])
@pytest.mark.parametrize("unset, tail", [(("son",), SON_WRONG_WIRE_TYPE), (("son", "pet"), FIELD_21)])
def test_both_predictors_refuse_a_missing_field_hidden_by_an_unknown_one(config, predictor, unset, tail):
    record = raw_record_pb2.RawRecord.FromString(record_bytes(*unset, tail=tail))
    assert record.ByteSize() == as_if_zero_size(unset)  # sizes alone cannot tell
    with pytest.raises(InvalidRecords) as caught:
        predictor(config).predict([record])
    assert sorted((v.column, v.rule) for v in caught.value.violations) == [(name, raw_schema.REQUIRED)
                                                                           for name in sorted(unset)]
    assert predictor(config).predict([raw_record_pb2.RawRecord.FromString(record_bytes(tail=tail))]).predictions.size == 1


@pytest.mark.parametrize("predictor", ["fast", "reference"])
def test_server_refuses_a_missing_field_hidden_by_an_unknown_one(trained_config, predictor):
    with ServerProcess(trained_config.path, "--predictor", predictor) as server, \
            grpc.insecure_channel(server.target) as channel:
        call = channel.unary_unary(PREDICT)
        for unset, tail in ((("son",), SON_WRONG_WIRE_TYPE), (("son", "pet"), FIELD_21)):
            with pytest.raises(grpc.RpcError) as caught:
                call(predict_request_bytes(record_bytes(*unset, tail=tail)), timeout=30)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
            bad_request = error_details_pb2.BadRequest()
            assert rpc_status.from_call(caught.value).details[0].Unpack(bad_request)
            assert sorted((v.field, v.description) for v in bad_request.field_violations) == [
                (f"record.{name}", f"{name}: required field is missing") for name in sorted(unset)]
        # the same unknown fields next to a complete record are ignored, as proto3 says
        answer = call(predict_request_bytes(record_bytes(tail=SON_WRONG_WIRE_TYPE + FIELD_21)), timeout=30)
        assert len(answer) > 0
