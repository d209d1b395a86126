"""The one place where protobuf records meet pandas/numpy: raw records <-> matrices, arrays and frames.

Used by the server, the clients and the tests alike, so that every side reads a record the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import attrgetter, methodcaller

import numpy as np
import pandas as pd
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.unknown_fields import UnknownFieldSet

from absenteeism.raw_schema import RAW_COLUMNS
from absenteeism.v1 import raw_record_pb2
from absenteeism.violation_table import ViolationTable

RawRecord = raw_record_pb2.RawRecord

_NUMPY_DTYPES = {c.name: np.dtype(c.dtype) for c in RAW_COLUMNS}
_FIELD_NAMES = tuple(c.name for c in RAW_COLUMNS)
_FIELD_NUMBERS = tuple(RawRecord.DESCRIPTOR.fields_by_name[name].number for name in _FIELD_NAMES)
_ALL_FIELDS = attrgetter(*_FIELD_NAMES)
_INT_FIELDS = frozenset(c.name for c in RAW_COLUMNS if c.dtype == "int64")


def _wire_layout() -> tuple[np.ndarray, int]:
    """Which columns are int32 varints, and the bytes every record spends on tags and doubles."""
    fields = [RawRecord.DESCRIPTOR.fields_by_name[name] for name in _FIELD_NAMES]
    kinds = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_DOUBLE}
    if any(f.type not in kinds or not f.has_presence for f in fields):
        raise TypeError("RawRecord fields must be optional int32 or double (records_to_matrix relies on it)")
    tags = sum(1 if f.number < 16 else 2 for f in fields)
    doubles = sum(8 for f in fields if f.type == FieldDescriptor.TYPE_DOUBLE)
    return np.array([f.type == FieldDescriptor.TYPE_INT32 for f in fields]), tags + doubles


_INT_COLUMNS, _FIXED_BYTES = _wire_layout()


def records_to_matrix(records: Sequence[RawRecord]) -> tuple[np.ndarray, ViolationTable]:
    """All fields of `records` as a float64 (records x RAW_COLUMNS) matrix, and a "required"
    violation per unset field (row = position). int32 values are exact in float64.

    Unset fields read as 0; rows with a missing field must be refused by the caller.
    """
    count = len(records)
    matrix = np.fromiter(chain.from_iterable(map(_ALL_FIELDS, records)), dtype=np.float64,
                         count=count * len(_FIELD_NAMES)).reshape(count, len(_FIELD_NAMES))
    # Presence without asking every field: a set field is always on the wire (proto3 optional), an
    # unset one never, so a record with no unknown fields whose encoded size is what its values take
    # with every field set has every field. (Unknown fields add bytes that can make up for a missing
    # field's.) Only the others are asked which fields they have.
    sizes = np.fromiter(map(methodcaller("ByteSize"), records), dtype=np.int64, count=count)
    unknown = np.fromiter(map(len, map(UnknownFieldSet, records)), dtype=np.int64, count=count)
    suspects = np.flatnonzero((sizes != _size_with_every_field_set(matrix)) | (unknown != 0))
    unset = np.zeros((suspects.size, len(_FIELD_NAMES)), dtype=bool)
    for k, i in enumerate(suspects.tolist()):
        present = {field.number for field, _ in records[i].ListFields()}
        unset[k] = [number not in present for number in _FIELD_NUMBERS]
    return matrix, ViolationTable.missing(unset, positions=suspects)


def _size_with_every_field_set(matrix: np.ndarray) -> np.ndarray:
    """Encoded bytes of each record if all its fields were set, from the values (wire format:
    a tag, then a varint for int32 (10 bytes when negative) or 8 bytes for a double)."""
    ints = matrix[:, _INT_COLUMNS]
    varint_bytes = np.where(ints < 0, 10, 1 + (ints >= 1 << 7) + (ints >= 1 << 14) + (ints >= 1 << 21)
                            + (ints >= 1 << 28))
    return _FIXED_BYTES + varint_bytes.sum(axis=1, dtype=np.int64)


def matrix_to_arrays(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """The columns of a records_to_matrix matrix, each with its raw schema dtype."""
    return {name: matrix[:, j].astype(_NUMPY_DTYPES[name]) for j, name in enumerate(_FIELD_NAMES)}


def records_to_arrays(records: Sequence[RawRecord]) -> tuple[dict[str, np.ndarray], ViolationTable]:
    """Typed column arrays of `records` and the missing-field violations (see records_to_matrix)."""
    matrix, missing = records_to_matrix(records)
    return matrix_to_arrays(matrix), missing


def records_to_frame(records: Sequence[RawRecord]) -> tuple[pd.DataFrame, ViolationTable]:
    """records_to_arrays as a DataFrame (index 0..n-1)."""
    columns, missing = records_to_arrays(records)
    return pd.DataFrame(columns), missing


def frame_to_records(frame: pd.DataFrame) -> list[RawRecord]:
    """One RawRecord per row; a null cell (or a column not in the frame) leaves the field unset."""
    present = [c.name for c in RAW_COLUMNS if c.name in frame.columns]
    records = []
    for row in frame[present].itertuples(index=False):
        record = RawRecord()
        for name, value in zip(present, row):
            if pd.isna(value):
                continue
            setattr(record, name, int(value) if name in _INT_FIELDS else float(value))
        records.append(record)
    return records


def record_to_dict(record: RawRecord) -> dict[str, float | int | None]:
    """A record as a plain dict (None for unset fields), for logs, reports and CLIs."""
    # HasField's stub takes a Literal of RawRecord's field names; RAW_COLUMNS' names are those fields.
    return {c.name: (getattr(record, c.name) if record.HasField(c.name) else None)  # type: ignore[arg-type]
            for c in RAW_COLUMNS}
