"""The held-out split: a per-row draw from (seed, source row), so no chunk needs to see another and
every chunking of the same input splits it the same way."""

from __future__ import annotations

import numpy as np

_MIX = np.uint64(0x9E3779B97F4A7C15)


def row_hash(source_rows: np.ndarray, seed: int) -> np.ndarray:
    """A splitmix64 hash of (seed, source row) per row (uint64): a per-row draw that does not
    depend on which chunk the row is in."""
    with np.errstate(over="ignore"):
        z = np.asarray(source_rows, dtype=np.uint64) * _MIX + np.uint64(seed) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def held_out(source_rows: np.ndarray, seed: int, test_fraction: float) -> np.ndarray:
    """True for the rows of the held-out set: the row's hash against the test fraction."""
    return (row_hash(source_rows, seed) >> np.uint64(11)).astype(np.float64) / float(1 << 53) < test_fraction
