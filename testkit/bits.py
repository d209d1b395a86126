"""Bit-for-bit float comparison for tests: the project promises identical bits, and `==` is not that
(`-0.0 == 0.0`, while NaN != NaN). Built on absenteeism.parity.bits_differ, the comparison parity uses."""

from __future__ import annotations

import numpy as np

from absenteeism.parity import bits_differ


def same_bits(got, expected) -> bool:
    """True when `got` and `expected` (floats, sequences, arrays or pandas objects) have the same shape
    and the same float64 bit pattern element by element."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return got.shape == expected.shape and not bits_differ(got, expected).any()


def assert_same_bits(got, expected) -> None:
    """Asserts same_bits, showing the first differing element's values and bit patterns when not."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"shape {got.shape} != expected {expected.shape}"
    differ = np.atleast_1d(bits_differ(got, expected))
    if differ.any():
        at = int(np.flatnonzero(differ)[0])
        g, e = np.atleast_1d(got).ravel()[at], np.atleast_1d(expected).ravel()[at]
        raise AssertionError(f"{int(differ.sum())} of {differ.size} value(s) differ in bits; first at {at}: "
                             f"got {g!r} ({np.float64(g).view(np.uint64):#018x}), "
                             f"expected {e!r} ({np.float64(e).view(np.uint64):#018x})")
