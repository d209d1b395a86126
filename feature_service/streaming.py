"""Micro-batching for PredictStream: whatever requests have already arrived are predicted together.

A reader thread drains the request iterator into a queue; each step takes one request (waiting for
it) plus every request already queued, up to `limit`. An interactive stream (one request at a time)
sees no added latency; a client that streams a file gets batch throughput. Responses stay one per
request, in order: the servicer answers each batch before it takes the next.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


def micro_batches(requests: Iterable[T], limit: int, is_active: Callable[[], bool],
                  poll_seconds: float = 0.25) -> Iterator[list[T]]:
    """Lists of consecutive requests, in order. An exception raised by `requests` is raised after
    the requests before it were yielded; stops when `is_active()` turns false."""
    pending: queue.SimpleQueue = queue.SimpleQueue()

    def read() -> None:
        try:
            for request in requests:
                pending.put(request)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            pending.put(_Failure(error))
        else:
            pending.put(_END)

    threading.Thread(target=read, name="stream-reader", daemon=True).start()
    while True:
        try:
            item = pending.get(timeout=poll_seconds)
        except queue.Empty:
            if not is_active():
                return
            continue
        batch: list[T] = []
        while True:
            if item is _END or isinstance(item, _Failure):
                if batch:
                    yield batch
                if item is _END:
                    return
                raise item.error
            batch.append(item)
            if len(batch) >= limit:
                break
            try:
                item = pending.get_nowait()
            except queue.Empty:
                break
        yield batch
