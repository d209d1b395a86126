"""Adaptive micro-batching: concurrent small predict calls are computed together.

Group commit, with no timer: a call that finds no batch in progress computes at once (an idle
server adds no wait); calls that arrive while a batch is computing queue up, and the next caller to
take the lead computes all of them in one predictor call (at most `max_rows` records). A row's
result does not depend on its batch (features are element-wise, the model sums column by column),
so batching changes speed only: the parity tests run through it.

Off by default (--micro-batch-rows 0): on this project's 2-core machines the hand-off between
threads cost more than the shared computation saved (bench/serving.py prints both). It is for
machines with more cores, or models whose per-call work is larger.

Errors stay with the call that caused them: when a combined batch is refused, each call gets the
violations of its own records (renumbered from 0), and the calls without violations are computed
again without the bad ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from absenteeism import online
from absenteeism.raw_schema import Violation
from absenteeism.v1 import raw_record_pb2


@dataclass
class _Call:
    records: Sequence[raw_record_pb2.RawRecord]
    done: threading.Event = field(default_factory=threading.Event)
    result: online.Predictions | None = None
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

    def predict(self, records: Sequence[raw_record_pb2.RawRecord]) -> online.Predictions:
        if len(records) > self._max_rows:
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
        return call.result

    def __call__(self, records):
        result = self.predict(records)
        return result.features, result.predictions

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
        taken, rows = [], 0
        while self._pending and (not taken or rows + len(self._pending[0].records) <= self._max_rows):
            call = self._pending.pop(0)
            taken.append(call)
            rows += len(call.records)
        return taken

    def _compute(self, batch: list[_Call]) -> None:
        try:
            self._on_batch(len(batch), sum(len(c.records) for c in batch))
            try:
                self._deliver(batch, self._predictor.predict([r for c in batch for r in c.records]))
            except online.InvalidRecords as error:
                valid = self._refuse(batch, error.violations)
                if valid:
                    self._deliver(valid, self._predictor.predict([r for c in valid for r in c.records]))
        except BaseException as error:  # noqa: BLE001 - handed to every waiting caller, never lost
            for call in batch:
                if not call.done.is_set():
                    call.error = error
                    call.done.set()

    @staticmethod
    def _deliver(calls: list[_Call], result: online.Predictions) -> None:
        start = 0
        for call in calls:
            end = start + len(call.records)
            call.result = online.Predictions(result.features[start:end], result.predictions[start:end])
            start = end
            call.done.set()

    @staticmethod
    def _refuse(batch: list[_Call], violations: Sequence[Violation]) -> list[_Call]:
        """Gives each call with violations its own InvalidRecords; returns the calls without any."""
        offsets = np.cumsum([0] + [len(c.records) for c in batch])
        own: dict[int, list[Violation]] = {}
        for v in violations:
            index = int(np.searchsorted(offsets, v.row, side="right") - 1)
            own.setdefault(index, []).append(Violation(v.row - int(offsets[index]), v.column, v.rule, v.value))
        for index, found in own.items():
            batch[index].error = online.InvalidRecords(found)
            batch[index].done.set()
        return [call for i, call in enumerate(batch) if i not in own]
