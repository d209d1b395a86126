"""Adaptive micro-batching: concurrent small predict calls are computed together.

Group commit, with no timer: a call that finds no batch in progress computes at once (an idle
server adds no wait); calls that arrive while a batch is computing queue up, and the next caller to
take the lead computes all of them in one predictor call (at most `max_rows` records). A row's
result does not depend on its batch (features are element-wise, the model sums column by column),
so batching changes speed only: the parity tests run through it.

Off by default (--micro-batch-rows 0): where the per-call work is small, the hand-off between
threads can cost more than the shared computation saves (bench/serving.py measures both; the
README has the figures).

Errors stay with the call that caused them: each call with an invalid record gets the violations of
its own records (renumbered from 0); the others get their predictions (predict_valid).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from absenteeism.online.converters import ColumnBatch
from absenteeism.online.predictor import InvalidRecords, Predictions, predict_valid
from absenteeism.raw_schema import Violation


@dataclass
class _Call:
    records: Sequence[Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Predictions | None = None
    error: BaseException | None = None


class MicroBatchingPredictor:
    """Wraps a predictor (same interface); calls with more than `max_rows` records go straight through."""

    def __init__(self, predictor, max_rows: int = 64, on_batch: Callable[[int, int], None] | None = None):
        self._predictor = predictor
        self.feature_names = predictor.feature_names
        self._max_rows = max_rows
        self._on_batch = on_batch or (lambda calls, rows: None)  # metrics hook: (calls, rows) per batch
        self._lock = threading.Lock()
        self._pending: list[_Call] = []
        self._leading = False

    def predict(self, records: Sequence[Any]) -> Predictions:
        if len(records) > self._max_rows or isinstance(records, ColumnBatch):  # columns are one batch already
            return self._predictor.predict(records)
        call = _Call(records)
        with self._lock:
            self._pending.append(call)
            lead = not self._leading
            if lead:
                self._leading = True
        if lead:
            self._lead()
        call.done.wait()
        if call.error is not None:
            raise call.error
        if call.result is None:
            raise RuntimeError("micro-batching finished a call with neither a result nor an error")
        return call.result

    def _lead(self) -> None:
        """Computes batches until none is pending, then gives up the lead."""
        while True:
            with self._lock:
                batch = self._take()
                if not batch:
                    self._leading = False
                    return
            self._compute(batch)

    def _take(self) -> list[_Call]:
        taken: list[_Call] = []
        rows = 0
        while self._pending and (not taken or rows + len(self._pending[0].records) <= self._max_rows):
            call = self._pending.pop(0)
            taken.append(call)
            rows += len(call.records)
        return taken

    def _compute(self, batch: list[_Call]) -> None:
        try:
            self._on_batch(len(batch), sum(len(c.records) for c in batch))
            outcome = predict_valid(self._predictor, [r for c in batch for r in c.records])
            position = {row: k for k, row in enumerate(outcome.valid)}
            start = 0
            for call in batch:
                end = start + len(call.records)
                own = [Violation(v.row - start, v.column, v.rule, v.value)
                       for row in range(start, end) for v in outcome.invalid.get(row, ())]
                if own:
                    call.error = InvalidRecords(own)
                elif call.records:
                    if outcome.result is None:
                        raise RuntimeError("predict_valid returned no predictions for records it found valid")
                    call.result = outcome.result.rows(position[start], position[start] + len(call.records))
                else:
                    call.result = Predictions(np.empty((0, len(self.feature_names))), np.empty(0))
                call.done.set()
                start = end
        except BaseException as error:  # noqa: BLE001 - handed to every waiting caller, never lost
            for call in batch:
                if not call.done.is_set():
                    call.error = error
                    call.done.set()
