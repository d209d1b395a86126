"""read_ahead: the same items in the same order, the producer's error at its place, and a consumer
that stops early stops the producer too (no thread left behind, nothing read past what it needs)."""

from __future__ import annotations

import threading

import pytest

from absenteeism.dataset.read_ahead import read_ahead


def test_items_come_in_order():
    assert list(read_ahead(iter(range(1000)), depth=3)) == list(range(1000))


def test_an_error_of_the_producer_is_raised_after_the_items_before_it():
    def items():
        yield from range(5)
        raise ValueError("line 6 is ragged")

    seen = []
    with pytest.raises(ValueError, match="line 6 is ragged"):
        for item in read_ahead(items()):
            seen.append(item)  # noqa: PERF402  (the items before the error are what is checked)
    assert seen == [0, 1, 2, 3, 4]


def test_a_consumer_that_stops_stops_the_producer():
    produced = []

    def items():
        for i in range(10_000):
            produced.append(i)
            yield i

    ahead = read_ahead(items(), depth=2)
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()
    assert not any(t.name == "read-ahead" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 3 + 2 + 1  # taken, queued, and the one being offered
