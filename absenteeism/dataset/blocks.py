"""Fixed-size blocks over a stream of row chunks: a sum folded block by block gives the same bits
whatever the chunk size that fed it, so outputs depend on the input alone, never on how it was cut."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import numpy as np
import pyarrow as pa

T = TypeVar("T")


class Rebatcher(Generic[T]):
    """Buffers row chunks (numpy arrays or Arrow tables) and yields blocks of exactly `rows` rows,
    then, at `flush`, the remainder."""

    def __init__(self, rows: int, concat: Callable[[list[T]], T]):
        if rows < 1:
            raise ValueError(f"block rows must be >= 1, got {rows}")
        self.rows = rows
        self._concat = concat
        self._pending: list[T] = []
        self._pending_rows = 0

    def feed(self, chunk: T) -> Iterator[T]:
        self._pending.append(chunk)
        self._pending_rows += len(chunk)
        if self._pending_rows < self.rows:
            return
        merged = self._concat(self._pending) if len(self._pending) > 1 else self._pending[0]
        start = 0
        while len(merged) - start >= self.rows:
            yield merged[start:start + self.rows]
            start += self.rows
        rest = merged[start:]
        self._pending, self._pending_rows = ([rest], len(rest)) if len(rest) else ([], 0)

    def flush(self) -> Iterator[T]:
        if self._pending_rows:
            yield self._concat(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_rows = [], 0


def array_blocks(rows: int) -> Rebatcher[np.ndarray]:
    return Rebatcher(rows, lambda parts: np.concatenate(parts, axis=0))


def table_blocks(rows: int) -> Rebatcher[pa.Table]:
    return Rebatcher(rows, pa.concat_tables)  # zero-copy: slices of the chunks, no combined buffer


class BlockSum:
    """sum over fixed blocks of `fold(block)`, added in arrival order: chunking-independent bits."""

    def __init__(self, rows: int, fold: Callable[[np.ndarray], np.ndarray]):
        self._blocks = array_blocks(rows)
        self._fold = fold
        self.total: np.ndarray | None = None

    def _add(self, blocks: Iterator[np.ndarray]) -> None:
        for block in blocks:
            part = self._fold(block)
            self.total = part if self.total is None else self.total + part

    def feed(self, rows: np.ndarray) -> None:
        if len(rows):
            self._add(self._blocks.feed(rows))

    def finish(self) -> np.ndarray | None:
        self._add(self._blocks.flush())
        return self.total
