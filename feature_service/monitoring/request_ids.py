"""Request ids: what joins a logged prediction to the label that arrives later (`python -m clients
evaluate`).

A caller may name its call with the gRPC metadata `x-request-id` (1..128 printable ASCII
characters); without one the server assigns a uuid4 hex. Predict and PredictBatch return the id in
their trailing metadata (sent with the status: no extra message on the wire), PredictStream in its
initial metadata (once, before the first response, so that a client can label each answer as it
arrives). A refused id is INVALID_ARGUMENT naming the key.

The prediction log's `request_id` of a record: the call's id for Predict; `<id>/<i>` for record i
(from 0) of PredictBatch and for message i (from 0, counting refused messages) of PredictStream.

The servicer names the records of each predictor call (`Labelled`, a thread-local: the call's own
thread runs the predictor, micro-batching included), and MonitoredPredictor reads the names of the
records it logs (`current`). Formatting `<id>/<i>` is left to the log's writer thread, for the
sampled records only.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

KEY = "x-request-id"
MAX_LENGTH = 128


class BadRequestId(ValueError):
    """The caller's x-request-id cannot be used (INVALID_ARGUMENT)."""

    def __init__(self, reason: str):
        super().__init__(f"metadata {KEY}: {reason}")
        self.reason = reason


def _check(value: str) -> str:
    if not value:
        raise BadRequestId("empty: send 1 to 128 printable ASCII characters, or no x-request-id to have one assigned")
    if len(value) > MAX_LENGTH:
        raise BadRequestId(f"{len(value)} characters, over the cap of {MAX_LENGTH}")
    if not value.isascii() or not value.isprintable():
        raise BadRequestId("not printable ASCII")
    return value


def of_call(metadata: Sequence[tuple[str, Any]] | None) -> str:
    """The id of a call with this invocation metadata: the caller's (checked) or a new uuid4 hex."""
    found = None
    for key, value in metadata or ():
        if key == KEY:
            if found is not None:
                raise BadRequestId("sent more than once: send one id per call")
            found = value if isinstance(value, str) else value.decode("ascii", "replace")
    return uuid.uuid4().hex if found is None else _check(found)


class Labels:
    """The names of the records of one predictor call: `call_id` alone (first None: one record,
    Predict) or `<call_id>/<first + k>` for record k."""

    __slots__ = ("call_id", "first", "records")

    def __init__(self, call_id: str, records: Sequence[Any], first: int | None = None):
        self.call_id, self.records, self.first = call_id, records, first

    def of(self, records: Sequence[Any]) -> tuple[str, np.ndarray | None]:
        """(call id, indices) of `records`: these records, or a part of them in order (the valid
        records of a stream's micro-batch, found by identity: the same objects are passed on).
        Only asked when the log is on."""
        if self.first is None:
            return self.call_id, None
        indices = np.arange(self.first, self.first + len(self.records), dtype=np.int64)
        if len(records) == len(self.records):
            return self.call_id, indices
        position = {id(record): k for k, record in enumerate(self.records)}
        return self.call_id, np.array([indices[position[id(record)]] if id(record) in position else -1
                                       for record in records], dtype=np.int64)


_local = threading.local()


class Labelled:
    """Names the records predicted in the `with` block (this thread): first_index None for one
    record named by the call id (Predict), else `<call_id>/<first_index + k>` for record k."""

    __slots__ = ("_labels",)

    def __init__(self, call_id: str, records: Sequence[Any], first_index: int | None = None):
        self._labels = Labels(call_id, records, first_index)

    def __enter__(self) -> None:
        _local.labels = self._labels

    def __exit__(self, *exc: object) -> None:
        _local.labels = None


def current() -> Labels | None:
    """The labels set by the servicer in this thread (None outside a call: nothing to name)."""
    return getattr(_local, "labels", None)


def names(call_id: str | None, indices: np.ndarray | None, count: int) -> list[str | None]:
    """The logged ids of `count` records (the log's writer thread): see the module's doc."""
    if call_id is None:
        return [None] * count
    if indices is None:
        return [call_id] * count
    return [f"{call_id}/{i}" if i >= 0 else None for i in indices.tolist()]
