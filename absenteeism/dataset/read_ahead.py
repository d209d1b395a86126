"""Iterates in a thread of its own, a few items ahead of the consumer: work that releases the GIL
(Arrow parsing and reading the next chunk) then overlaps the consumer's (checking this one)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`items`, produced up to `depth` ahead in a thread. An exception of the producer is raised
    here, at its place in the sequence; closing this generator (or an exception in the consumer,
    such as a SIGTERM turned into one) stops the producer after the item at hand."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def offer(entry: tuple) -> bool:
        while not stopped.is_set():
            try:
                slots.put(entry, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((_END, None))
        except BaseException as error:  # noqa: BLE001 - any failure goes to the consumer, which raises it
            offer((_END, error))

    producer = threading.Thread(target=produce, name="read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item, error = slots.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stopped.set()
        producer.join()
