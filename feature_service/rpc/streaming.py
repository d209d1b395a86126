"""Micro-batching for PredictStream: whatever requests have already arrived are predicted together.

A reader thread drains the request iterator into a queue; each step takes one request (waiting for
it) plus every request already queued, up to `limit`. An interactive stream (one request at a time)
sees no added latency; a client that streams a file gets batch throughput. Responses stay one per
request, in order: the servicer answers each batch before it takes the next.

An open stream holds a worker thread even when it sends nothing, so a stream that stays idle is
ended (StreamIdle); how many may be open at once is interceptors/stream_limit.py's job.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


class StreamIdle(Exception):
    def __init__(self, seconds: float):
        super().__init__(f"stream idle for {seconds:g} s (--stream-idle-timeout): closed by the server; "
                         "open a new stream when there is more to send")


def micro_batches(requests: Iterable[T], limit: int, is_active: Callable[[], bool],
                  poll_seconds: float = 0.25, idle_seconds: float = 0.0) -> Iterator[list[T]]:
    """Lists of consecutive requests, in order. An exception raised by `requests` is raised after
    the requests before it were yielded; stops when `is_active()` turns false. With `idle_seconds`
    > 0, raises StreamIdle when no request came for that long after the last batch was answered."""
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
    waiting_since = time.monotonic()
    while True:
        try:
            item = pending.get(timeout=poll_seconds)
        except queue.Empty:
            if not is_active():
                return
            if idle_seconds and time.monotonic() - waiting_since >= idle_seconds:
                raise StreamIdle(idle_seconds) from None
            continue
        batch: list[T] = []
        while True:
            if item is _END or isinstance(item, _Failure):
                if batch:
                    yield batch
                if isinstance(item, _Failure):
                    raise item.error
                return  # _END
            batch.append(item)
            if len(batch) >= limit:
                break
            try:
                item = pending.get_nowait()
            except queue.Empty:
                break
        yield batch
        waiting_since = time.monotonic()  # idle time counts from the last answer
