"""streaming.micro_batches: order kept, batches bounded, errors after the requests before them."""

from __future__ import annotations

import threading

import pytest

from feature_service.rpc.streaming import micro_batches


def test_everything_in_order_within_the_limit():
    batches = list(micro_batches(iter(range(1000)), limit=64, is_active=lambda: True))
    assert [x for batch in batches for x in batch] == list(range(1000))
    assert all(1 <= len(batch) <= 64 for batch in batches)


def test_an_error_comes_after_the_requests_before_it():
    def requests():
        yield from range(5)
        raise ValueError("bad bytes")

    seen = []
    with pytest.raises(ValueError, match="bad bytes"):
        for batch in micro_batches(requests(), limit=100, is_active=lambda: True):
            seen.extend(batch)
    assert seen == list(range(5))


def test_a_slow_stream_is_answered_one_by_one():
    gate = threading.Semaphore(0)

    def requests():
        for i in range(3):
            gate.acquire()
            yield i

    batches = micro_batches(requests(), limit=100, is_active=lambda: True)
    for i in range(3):
        gate.release()
        assert next(batches) == [i]
    with pytest.raises(StopIteration):
        gate.release()
        next(batches)


def test_stops_when_the_call_is_no_longer_active():
    blocked = threading.Event()

    def requests():
        blocked.wait(10)
        yield from ()

    assert list(micro_batches(requests(), limit=10, is_active=lambda: False, poll_seconds=0.01)) == []
    blocked.set()
