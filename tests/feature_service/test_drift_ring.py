"""The drift window's ring holds the last records served, whole, whether they came alone or in
batches (ones larger than the window included), and concurrent calls claim rows apart."""

from __future__ import annotations

import threading

import numpy as np

from absenteeism import data_sets
from feature_service.monitoring.drift_window import Window

RAW = len(data_sets.active().table.column_names)
FEATURES, CLASSES, SIZE = 3, 2, 7


def records(first: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`count` records numbered from `first`: every value of record k is k (the prediction too)."""
    numbers = np.arange(first, first + count, dtype=np.float64)[:, None]
    return (np.repeat(numbers, RAW, axis=1), np.repeat(numbers, FEATURES, axis=1), numbers[:, 0],
            np.repeat(numbers, CLASSES, axis=1))


def test_the_window_holds_the_last_records_whole_alone_or_in_batches():
    window = Window(np.full((SIZE, RAW + FEATURES + CLASSES + 1), np.nan), FEATURES, CLASSES)
    sent = 0
    for count in (1, 3, 10, 5, 1, 1, 20, 6, 2):
        window.add(*records(sent, count))
        sent += count
        rows = window.snapshot()
        assert (rows == rows[:, :1]).all()  # every value of a row belongs to one record
        np.testing.assert_array_equal(np.sort(rows[:, -1]), np.arange(max(0, sent - SIZE), sent))


def test_concurrent_calls_claim_rows_apart():
    calls, count = 8, 50
    window = Window(np.full((calls * count, RAW + FEATURES + 1), np.nan), FEATURES)
    start = threading.Barrier(calls)

    def call(k: int) -> None:
        start.wait()
        for first in range(k * count, (k + 1) * count, 5):  # five records a call
            window.add(*records(first, 5)[:3])

    threads = [threading.Thread(target=call, args=(k,)) for k in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    predictions = np.sort(window.snapshot()[:, -1])
    np.testing.assert_array_equal(predictions, np.arange(calls * count))  # none lost, none written twice
