"""Fixed-size blocks over a stream of row chunks: a sum folded block by block gives the same bits
whatever the chunk size that fed it, so outputs depend on the input alone, never on how it was cut."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, Self, TypeVar

import numpy as np
import pyarrow as pa


class _Rows(Protocol):
    """What a chunk of rows offers: its row count, and slices of its rows."""

    def __len__(self) -> int: ...
    def __getitem__(self, rows: slice, /) -> Self: ...


T = TypeVar("T", bound=_Rows)


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


@dataclass
class Pieces:
    """What one stretch of a row stream contributes to a BlockSum over the whole stream: the fixed
    blocks inside it, folded, and the rows of the blocks it cuts (at most one at each end), by
    block index. Merging the pieces of adjacent stretches, in stream order, and then `total` gives
    the bits BlockSum gives over the whole stream."""

    block_rows: int
    folded: dict[int, np.ndarray] = field(default_factory=dict)
    cut: dict[int, np.ndarray] = field(default_factory=dict)

    def merge(self, later: Pieces, fold: Callable[[np.ndarray], np.ndarray]) -> Pieces:
        """These pieces followed by those of the stretch right after them."""
        merged = Pieces(self.block_rows, {**self.folded, **later.folded}, dict(self.cut))
        for block, rows in later.cut.items():
            merged.cut[block] = np.concatenate([merged.cut[block], rows], axis=0) if block in merged.cut else rows
            if len(merged.cut[block]) == self.block_rows:
                merged.folded[block] = fold(merged.cut.pop(block))
        return merged

    def total(self, fold: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | None:
        """The sum, once these are the pieces of the whole stream (a cut block left is its last)."""
        folded = {**self.folded, **{block: fold(rows) for block, rows in self.cut.items()}}
        total = None
        for block in sorted(folded):
            total = folded[block] if total is None else total + folded[block]
        return total


class PieceSum:
    """Builds the Pieces of a stretch that starts at row `start` of the whole stream."""

    def __init__(self, rows: int, fold: Callable[[np.ndarray], np.ndarray], start: int):
        self.rows, self._fold = rows, fold
        self._block = start // rows  # index of the block the next rows fall in
        self._head_rows = (-start) % rows  # rows that complete a block begun before this stretch
        self._head: list[np.ndarray] = []
        self._blocks = array_blocks(rows)
        self.pieces = Pieces(rows)

    def feed(self, rows: np.ndarray) -> None:
        if self._head_rows:
            taken = rows[: self._head_rows]
            self._head.append(taken)
            self._head_rows -= len(taken)
            rows = rows[len(taken):]
            if self._head_rows == 0:
                self.pieces.cut[self._block] = np.concatenate(self._head, axis=0)
                self._block, self._head = self._block + 1, []
        if len(rows):
            self._add(self._blocks.feed(rows))

    def _add(self, blocks: Iterator[np.ndarray]) -> None:
        for block in blocks:
            if len(block) == self.rows:
                self.pieces.folded[self._block] = self._fold(block)
            else:
                self.pieces.cut[self._block] = block
            self._block += 1

    def finish(self) -> Pieces:
        if self._head:  # the stretch ended inside the block it began in
            self.pieces.cut[self._block] = np.concatenate(self._head, axis=0)
            self._head = []
        self._add(self._blocks.flush())
        return self.pieces


def combine(pieces: list[Pieces], fold: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | None:
    """The sum over the whole stream, from the pieces of its consecutive stretches (in order)."""
    if not pieces:
        return None
    merged = pieces[0]
    for later in pieces[1:]:
        merged = merged.merge(later, fold)
    return merged.total(fold)
