"""The one place where protobuf records meet pandas/numpy: raw records <-> matrices, arrays and frames.

Used by the server, the clients and the tests alike, so that every side reads a record the same way.
Records are the active data set's RawRecord. A data set whose fields are all required numbers
(absenteeism) is read through one float64 matrix; any other field by field, with its kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from itertools import chain
from operator import attrgetter, methodcaller
from typing import Any, overload

import numpy as np
import pandas as pd
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from absenteeism import data_sets
from absenteeism.data_sets import DataSet
from absenteeism.raw_schema import DATE_RULE, RawColumn, days_to_date, parse_date
from absenteeism.v1 import raw_record_pb2
from absenteeism.violation_table import NO_VIOLATIONS, ViolationTable


class _Layout:
    """How the records of one data set are read."""

    def __init__(self, data_set: DataSet):
        self.record_type = data_set.records.RawRecord
        self.columns = data_set.table.columns
        self.names = data_set.table.column_names
        self.all_fields = attrgetter(*self.names)
        self.numpy_dtypes = {c.name: np.dtype(c.frame_dtype) for c in self.columns}
        fields = [self.record_type.DESCRIPTOR.fields_by_name[name] for name in self.names]
        self.numbers = tuple(f.number for f in fields)
        kinds = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_DOUBLE}
        # records_to_matrix's presence test relies on every field being an optional int32 or double.
        self.matrix = data_set.table.all_numeric and all(f.type in kinds and f.has_presence for f in fields)
        tags = sum(1 if f.number < 16 else 2 for f in fields)
        doubles = sum(8 for f in fields if f.type == FieldDescriptor.TYPE_DOUBLE)
        self.int_columns = np.array([f.type == FieldDescriptor.TYPE_INT32 for f in fields])
        self.fixed_bytes = tags + doubles
        self.value_kinds = {f.name: _VALUE_KINDS[f.type] for f in fields}  # each field's RecordColumns kind
        # A record listing as many set fields as the table has columns has them all.
        self.only_columns = len(self.record_type.DESCRIPTOR.fields) == len(self.names)
        # matrix_to_arrays casts the columns of one dtype together: each dtype with its columns'
        # positions; the casts' rows one after another, in column order, are at `cast_order`.
        dtypes = [self.numpy_dtypes[name] for name in self.names]
        self.dtype_groups = [(dtype, np.array([j for j, d in enumerate(dtypes) if d == dtype]))
                             for dtype in dict.fromkeys(dtypes)]
        cast_rows = [j for _, positions in self.dtype_groups for j in positions.tolist()]
        self.cast_order = [cast_rows.index(j) for j in range(len(dtypes))]


# The Column.values case a field of each type is sent in (record_columns.proto).
_VALUE_KINDS = {FieldDescriptor.TYPE_INT32: "integers", FieldDescriptor.TYPE_INT64: "integers",
                FieldDescriptor.TYPE_DOUBLE: "doubles", FieldDescriptor.TYPE_BOOL: "bools",
                FieldDescriptor.TYPE_STRING: "strings"}


@cache
def _layout_of(data_set: DataSet) -> _Layout:
    return _Layout(data_set)


def _layout() -> _Layout:
    return _layout_of(data_sets.active())


def raw_record(**fields: Any) -> Message:
    """A RawRecord of the active data set."""
    return _layout().record_type(**fields)


def to_request_record(fields: dict[str, Any]) -> Message:
    """A RawRecord of the active data set from a dict as a client writes one (None: unset)."""
    return raw_record(**{name: value for name, value in fields.items() if value is not None})


def records_to_matrix(records: Sequence[Message]) -> tuple[np.ndarray, ViolationTable]:
    """All fields of `records` as a float64 (records x request fields) matrix, and a "required"
    violation per unset field (row = position). int32 values are exact in float64. Only for a data
    set whose fields are all required numbers (see `reads_as_matrix`).

    Unset fields read as 0; rows with a missing field must be refused by the caller.
    """
    layout = _layout()
    if not layout.matrix:
        raise TypeError(f"the records of data set {data_sets.active().name!r} are not all numbers: "
                        "read them with records_to_arrays")
    if isinstance(records, ColumnBatch):
        return records.matrix()
    if len(records) == 1:
        return _one_record_matrix(layout, records[0])
    count, width = len(records), len(layout.names)
    matrix = np.fromiter(chain.from_iterable(map(layout.all_fields, records)), dtype=np.float64,
                         count=count * width).reshape(count, width)
    # Presence without asking every field: a set field is always on the wire (proto3 optional), an
    # unset one never, so a record with no unknown fields whose encoded size is what its values take
    # with every field set has every field. (Unknown fields add bytes that can make up for a missing
    # field's.) Only the others are asked which fields they have.
    sizes = np.fromiter(map(methodcaller("ByteSize"), records), dtype=np.int64, count=count)
    unknown = np.fromiter(map(len, map(UnknownFieldSet, records)), dtype=np.int64, count=count)
    suspects = np.flatnonzero((sizes != _size_with_every_field_set(layout, matrix)) | (unknown != 0))
    if not suspects.size:
        return matrix, NO_VIOLATIONS
    unset = np.zeros((suspects.size, width), dtype=bool)
    for k, i in enumerate(suspects.tolist()):
        present = {field.number for field, _ in records[i].ListFields()}
        unset[k] = [number not in present for number in layout.numbers]
    return matrix, ViolationTable.missing(unset, positions=suspects)


def _one_record_matrix(layout: _Layout, record: Message) -> tuple[np.ndarray, ViolationTable]:
    """records_to_matrix of one record (a Predict call): the record lists its set fields, which
    costs less than the batch's vectorised presence test does for one record."""
    matrix = np.array([layout.all_fields(record)], dtype=np.float64)
    present = record.ListFields()
    if layout.only_columns and len(present) == len(layout.numbers):
        return matrix, NO_VIOLATIONS
    numbers = {field.number for field, _ in present}
    return matrix, ViolationTable.missing(np.array([[number not in numbers for number in layout.numbers]]))


def reads_as_matrix() -> bool:
    """True when the active data set's records are read through records_to_matrix."""
    return _layout().matrix


def _size_with_every_field_set(layout: _Layout, matrix: np.ndarray) -> np.ndarray:
    """Encoded bytes of each record if all its fields were set, from the values (wire format:
    a tag, then a varint for int32 (10 bytes when negative) or 8 bytes for a double)."""
    ints = matrix[:, layout.int_columns]
    varint_bytes = np.where(ints < 0, 10, 1 + (ints >= 1 << 7) + (ints >= 1 << 14) + (ints >= 1 << 21)
                            + (ints >= 1 << 28))
    return layout.fixed_bytes + varint_bytes.sum(axis=1, dtype=np.int64)


def matrix_to_arrays(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """The columns of a records_to_matrix matrix, each with its raw schema dtype: one cast per
    dtype, each column a contiguous row of its cast (as a column's own cast would be)."""
    layout = _layout()
    cast_rows = [*chain.from_iterable(matrix.take(positions, axis=1).T.astype(dtype, order="C")
                                      for dtype, positions in layout.dtype_groups)]
    return dict(zip(layout.names, [cast_rows[k] for k in layout.cast_order], strict=True))


def records_to_arrays(records: Sequence[Message]) -> tuple[dict[str, np.ndarray], ViolationTable]:
    """Typed column arrays of `records` (RawColumn.frame_dtype; text as object arrays, None where
    missing) and the violations found reading them: a "required" one per unset required field, a
    date rule per text that is no calendar date. Unset required fields read as 0, "" or False."""
    if _layout().matrix:
        matrix, missing = records_to_matrix(records)
        return matrix_to_arrays(matrix), missing
    if isinstance(records, ColumnBatch):
        return records.arrays()
    return _field_arrays(records)


def _field_arrays(records: Sequence[Message]) -> tuple[dict[str, np.ndarray], ViolationTable]:
    layout = _layout()
    count = len(records)
    unset = np.zeros((count, len(layout.columns)), dtype=bool)
    arrays: dict[str, np.ndarray] = {}
    broken = []
    for j, column in enumerate(layout.columns):
        present = np.fromiter((record.HasField(column.name) for record in records), dtype=bool, count=count)
        if not column.nullable:
            unset[:, j] = ~present
        values = [getattr(record, column.name) for record in records]
        arrays[column.name], bad = _typed(column, values, present)
        if bad.size:
            broken.append(ViolationTable.broken(column.name, DATE_RULE, bad, np.array(values, dtype=object)[bad]))
    return arrays, ViolationTable.concat([ViolationTable.missing(unset), *broken])


def _typed(column: RawColumn, values: list[Any], present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A column's values with its frame dtype, and the positions of dates that do not parse."""
    bad = np.empty(0, dtype=np.int64)
    if column.dtype == "str":
        typed = np.array(column.read_text(values), dtype=object)
        typed[~present] = None
        return typed, bad
    if column.dtype == "date":
        days, bad = dates_to_days(values, present)
        numbers = days.astype(np.float64)
    else:
        numbers = np.array(values, dtype=np.float64)
    if column.nullable and column.frame_dtype == "float64":
        numbers[~present] = np.nan
        return numbers, bad
    return numbers.astype(column.frame_dtype), bad


class ColumnsError(ValueError):
    """A RecordColumns message that cannot be read as the data set's records; `field` names the part
    of the request at fault (e.g. "records.columns[2]")."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.description = message


class ColumnBatch(Sequence[Any]):
    """Records sent as columns (a RecordColumns message), read once: in place of a sequence of
    records, records_to_matrix and records_to_arrays give what they give for the same records, bit
    for bit (each column through the same conversions), without a record object. Raises
    ColumnsError for a column that is not a field, repeats one, is sent in another kind than its
    field's type, or holds a number of values other than `rows`."""

    def __init__(self, message: Any):
        layout = _layout()
        self.rows = int(message.rows)
        self._columns: dict[str, tuple[Any, np.ndarray | None]] = {}  # values, presence (None: all set)
        for j, column in enumerate(message.columns):
            where = f"records.columns[{j}]"
            kind = layout.value_kinds.get(column.field)
            if kind is None:
                raise ColumnsError(where, f"{column.field!r} is not a field of {layout.record_type.DESCRIPTOR.full_name}")
            if column.field in self._columns:
                raise ColumnsError(where, f"a second column of field {column.field!r}")
            sent = column.WhichOneof("values")
            if sent is not None and sent != kind:
                raise ColumnsError(where, f"field {column.field!r} is sent as {kind}, not {sent}")
            values = getattr(column, kind).values
            if len(values) != self.rows:
                raise ColumnsError(where, f"{len(values)} values of field {column.field!r} for {self.rows} rows")
            if len(column.present) not in (0, self.rows):
                raise ColumnsError(where, f"{len(column.present)} presence flags of field {column.field!r} for "
                                          f"{self.rows} rows (send none when every record sets it)")
            self._columns[column.field] = (values, np.array(column.present, dtype=bool) if len(column.present) else None)

    def __len__(self) -> int:
        return self.rows

    @overload
    def __getitem__(self, index: int) -> Message: ...

    @overload
    def __getitem__(self, index: slice) -> list[Message]: ...

    def __getitem__(self, index: int | slice) -> Message | list[Message]:
        """Record `index` as a RawRecord (for what reads records one at a time; the hot paths read
        the columns whole)."""
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.rows))]
        i = range(self.rows)[index]
        record = _layout().record_type()
        for name, (values, present) in self._columns.items():
            if present is None or present[i]:
                setattr(record, name, values[i])
        return record

    def _column(self, name: str, default: Any) -> tuple[Any, np.ndarray]:
        """A field's values and presence; a field without a column: `default` everywhere, unset."""
        if name not in self._columns:
            return [default] * self.rows, np.zeros(self.rows, dtype=bool)
        values, present = self._columns[name]
        return values, np.ones(self.rows, dtype=bool) if present is None else present

    def matrix(self) -> tuple[np.ndarray, ViolationTable]:
        """What records_to_matrix gives for the same records (unset fields read as 0)."""
        names = _layout().names
        matrix = np.empty((self.rows, len(names)), dtype=np.float64)
        unset = np.zeros((self.rows if self.incomplete() else 0, len(names)), dtype=bool)
        for j, name in enumerate(names):
            values, present = self._column(name, 0)
            matrix[:, j] = np.asarray(values, dtype=np.float64)  # int32 values are exact in float64
            if len(unset):
                unset[:, j] = ~present
        if len(unset):
            matrix[unset] = 0.0
        return matrix, ViolationTable.missing(unset)

    def incomplete(self) -> bool:
        """Whether some record leaves some field unset (most batches: none, and no mask is needed)."""
        for name in _layout().names:
            present = self._columns[name][1] if name in self._columns else np.zeros(1, dtype=bool)
            if present is not None and not present.all():
                return True
        return False

    def arrays(self) -> tuple[dict[str, np.ndarray], ViolationTable]:
        """What records_to_arrays gives for the same records (through the same _typed)."""
        columns = _layout().columns
        unset = np.zeros((self.rows, len(columns)), dtype=bool)
        arrays: dict[str, np.ndarray] = {}
        broken = []
        for j, column in enumerate(columns):
            values, present = self._column(column.name, "" if column.dtype in ("str", "date") else 0)
            if not column.nullable:
                unset[:, j] = ~present
            values = list(values) if column.dtype in ("str", "date") else values
            arrays[column.name], bad = _typed(column, values, present)
            if bad.size:
                broken.append(ViolationTable.broken(column.name, DATE_RULE, bad, np.array(values, dtype=object)[bad]))
        return arrays, ViolationTable.concat([ViolationTable.missing(unset), *broken])


def records_to_columns(records: Sequence[Message]) -> Any:
    """The RecordColumns message of `records` (RawRecords of one data set): one column per field
    that any record sets, with presence flags where some record leaves it unset."""
    from absenteeism.v1 import record_columns_pb2  # the contract's; imported where columns are built

    message = record_columns_pb2.RecordColumns(rows=len(records))
    for field in records[0].DESCRIPTOR.fields if len(records) else ():
        present = [record.HasField(field.name) for record in records]
        if any(present):
            column = message.columns.add(field=field.name)
            getattr(column, _VALUE_KINDS[field.type]).values.extend(getattr(record, field.name) for record in records)
            if not all(present):
                column.present.extend(present)
    return message


def frame_to_columns(frame: pd.DataFrame, data_set: DataSet | None = None) -> Any:
    """The RecordColumns message of a typed frame's rows (as frame_to_records reads them: a null
    cell leaves the field unset, a date is its days), column by column; `data_set`: the frame's
    (default: the active one)."""
    from absenteeism.v1 import record_columns_pb2  # the contract's; imported where columns are built

    layout = _layout_of(data_set or data_sets.active())
    message = record_columns_pb2.RecordColumns(rows=len(frame))
    for column in layout.columns:
        if column.name not in frame.columns:
            continue
        cells = frame[column.name]
        present = cells.notna().to_numpy()
        if not present.any():
            continue
        kept = cells.where(present, _UNSET[column.dtype])
        if column.dtype == "date":
            values: list[Any] = [days_to_date(int(days)) if set_ else "" for days, set_ in zip(kept, present)]
        elif column.dtype == "str":
            values = [str(text) for text in kept]
        else:
            values = kept.to_numpy().astype(_SENT_AS[column.dtype]).tolist()
        entry = message.columns.add(field=column.name)
        getattr(entry, layout.value_kinds[column.name]).values.extend(values)
        if not present.all():
            entry.present.extend(present.tolist())
    return message


_UNSET = {"int64": 0, "float64": 0.0, "bool": False, "date": 0, "str": ""}  # a value where a cell is null
_SENT_AS = {"int64": np.int64, "float64": np.float64, "bool": bool}


def dates_to_days(texts: Sequence[Any], present: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Whole days since 1970-01-01 of ISO dates "YYYY-MM-DD" (int64; 0 where absent or not a date),
    and the positions of present texts that are not a calendar date."""
    days = np.zeros(len(texts), dtype=np.int64)
    bad = []
    for i, text in enumerate(texts):
        if present is not None and not present[i]:
            continue
        parsed = parse_date(text)
        if parsed is None:
            bad.append(i)
        else:
            days[i] = parsed
    return days, np.array(bad, dtype=np.int64)


def records_to_frame(records: Sequence[Message]) -> tuple[pd.DataFrame, ViolationTable]:
    """records_to_arrays as a DataFrame (index 0..n-1)."""
    columns, missing = records_to_arrays(records)
    return pd.DataFrame(columns), missing


def frame_to_records(frame: pd.DataFrame) -> list[Any]:
    """One RawRecord per row; a null cell (or a column not in the frame) leaves the field unset."""
    layout = _layout()
    present = [c for c in layout.columns if c.name in frame.columns]
    records = []
    for row in frame[[c.name for c in present]].itertuples(index=False):
        record = layout.record_type()
        for column, value in zip(present, row):
            if pd.isna(value):
                continue
            setattr(record, column.name, request_value(column, value))
        records.append(record)
    return records


def request_value(column: RawColumn, value: Any) -> Any:
    """A typed value (a frame's: a date as its days) as a RawRecord field takes it."""
    if column.dtype == "int64":
        return int(value)
    if column.dtype == "float64":
        return float(value)
    if column.dtype == "bool":
        return bool(value)
    if column.dtype == "date":
        return days_to_date(int(value))
    return str(value)


def golden_record_fields(record: Message) -> dict[str, Any]:
    """A GoldenRow's record fields: `record` for absenteeism.v1's RawRecord (as configs always had
    it), else `record_bytes`, the active data set's record serialized deterministically."""
    if isinstance(record, raw_record_pb2.RawRecord):
        return {"record": record}
    return {"record_bytes": record.SerializeToString(deterministic=True)}


def golden_records(config: Any) -> list[Message]:
    """The golden records of a ServingConfig, as the active data set's RawRecords."""
    record_type = _layout().record_type
    return [row.record if row.HasField("record") else record_type.FromString(row.record_bytes)
            for row in config.golden_rows]


def record_to_dict(record: Message) -> dict[str, Any]:
    """A record as a plain dict (None for unset fields), for logs, reports and CLIs."""
    return {name: (getattr(record, name) if record.HasField(name) else None) for name in _layout().names}


def raw_numbers(records: Sequence[Message]) -> np.ndarray:
    """The records' request fields as monitoring reads them (records_to_matrix's matrix, or
    numeric_view of their arrays)."""
    if _layout().matrix:
        return records_to_matrix(records)[0]
    return numeric_view(records_to_arrays(records)[0])


def numeric_view(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The request fields as one float64 (records x fields) matrix: what monitoring bins and the
    prediction log keeps (RawColumn.as_numbers)."""
    columns = _layout().columns
    return np.column_stack([column.as_numbers(arrays[column.name]) for column in columns])
