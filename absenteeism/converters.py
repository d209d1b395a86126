"""The one place where protobuf meets pandas/numpy: raw records <-> frames, statistics <-> messages.

Used by the server, the clients and the tests alike, so that every side reads a record the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from absenteeism.raw_schema import RAW_COLUMNS, REQUIRED, Violation
from absenteeism.v1 import raw_record_pb2, serving_config_pb2

RawRecord = raw_record_pb2.RawRecord

_NUMPY_DTYPES = {c.name: np.dtype(c.dtype) for c in RAW_COLUMNS}
_INT_FIELDS = frozenset(c.name for c in RAW_COLUMNS if c.dtype == "int64")


def records_to_frame(records: Sequence[RawRecord]) -> tuple[pd.DataFrame, list[Violation]]:
    """A typed frame of `records` (index 0..n-1) and a "required" violation per unset field.

    Unset fields are filled with 0 in the frame only so that it stays typed; rows with a missing
    field must be refused by the caller (the violations name them).
    """
    columns = {}
    missing: list[Violation] = []
    for column in RAW_COLUMNS:
        name = column.name
        values = np.zeros(len(records), dtype=_NUMPY_DTYPES[name])
        for i, record in enumerate(records):
            if record.HasField(name):
                values[i] = getattr(record, name)
            else:
                missing.append(Violation(row=i, column=name, rule=REQUIRED, value=None))
        columns[name] = values
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
    return {c.name: (getattr(record, c.name) if record.HasField(c.name) else None) for c in RAW_COLUMNS}


def statistics_to_message(
    aggregates: dict[str, float], ddof: int, row_count: int
) -> serving_config_pb2.AggregateStatistics:
    return serving_config_pb2.AggregateStatistics(
        age_mean=aggregates["age_mean"], age_std_dev=aggregates["age_std_dev"], std_ddof=ddof, row_count=row_count
    )


def statistics_from_message(
    statistics: serving_config_pb2.AggregateStatistics, names: Iterable[str]
) -> dict[str, float]:
    """The aggregate overrides the feature module needs, read by name from the config's statistics."""
    return {name: float(getattr(statistics, name)) for name in names}
