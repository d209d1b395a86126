"""The drift measures against formulas written here one bin at a time with Python's math module
(and scipy for Jensen-Shannon), empty bins included."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import distance

from absenteeism import divergence

# (training counts, serving counts): equal, shifted, an empty bin on either side, disjoint.
CASES = {
    "same": ([10, 20, 30, 40], [1, 2, 3, 4]),
    "shifted": ([50, 30, 15, 5], [5, 15, 30, 50]),
    "empty_in_serving": ([25, 25, 25, 25], [40, 30, 30, 0]),
    "empty_in_training": ([0, 50, 30, 20], [10, 40, 30, 20]),
    "empty_on_both_sides": ([0, 60, 40, 0], [0, 20, 80, 0]),
    "disjoint": ([7, 0, 0], [0, 0, 3]),
}


def _shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts]


def psi_by_hand(training: list[int], serving: list[int], empty: float = 1e-4) -> float:
    total = 0.0
    for p, q in zip(_shares(training), _shares(serving)):
        p, q = max(p, empty), max(q, empty)  # a bin empty on one side counts as `empty` there
        total += (q - p) * math.log(q / p)
    return total


def l_infinity_by_hand(training: list[int], serving: list[int]) -> float:
    return max(abs(p - q) for p, q in zip(_shares(training), _shares(serving)))


def jensen_shannon_by_hand(training: list[int], serving: list[int]) -> float:
    total = 0.0
    for p, q in zip(_shares(training), _shares(serving)):
        m = (p + q) / 2
        total += (p * math.log2(p / m) if p else 0.0) + (q * math.log2(q / m) if q else 0.0)
    return total / 2


@pytest.mark.parametrize("training,serving", CASES.values(), ids=CASES.keys())
def test_each_measure_equals_its_formula(training, serving):
    t, s = np.array(training), np.array(serving)
    assert divergence.psi(t, s) == pytest.approx(psi_by_hand(training, serving), rel=1e-12, abs=1e-15)
    assert divergence.l_infinity(t, s) == pytest.approx(l_infinity_by_hand(training, serving), rel=1e-12, abs=1e-15)
    expected = jensen_shannon_by_hand(training, serving)
    assert divergence.jensen_shannon(t, s) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # scipy's Jensen-Shannon distance is the square root of the divergence (base 2 here).
    assert divergence.jensen_shannon(t, s) == pytest.approx(distance.jensenshannon(t, s, base=2) ** 2,
                                                            rel=1e-9, abs=1e-12)


def test_the_same_distribution_is_zero_and_disjoint_ones_are_at_the_maximum():
    same_t, same_s = (np.array(c) for c in CASES["same"])
    assert divergence.psi(same_t, same_s) == pytest.approx(0.0, abs=1e-15)
    assert divergence.jensen_shannon(same_t, same_s) == pytest.approx(0.0, abs=1e-15)
    assert divergence.l_infinity(same_t, same_s) == pytest.approx(0.0, abs=1e-15)
    apart_t, apart_s = (np.array(c) for c in CASES["disjoint"])
    assert divergence.jensen_shannon(apart_t, apart_s) == pytest.approx(1.0, rel=1e-12)
    assert divergence.l_infinity(apart_t, apart_s) == 1.0


def test_an_empty_bin_counts_as_the_documented_share():
    """PSI with one bin empty in serving: its term is (EMPTY_SHARE - p) * ln(EMPTY_SHARE / p)."""
    training, serving = np.array([50, 50]), np.array([100, 0])
    p, q = 0.5, divergence.EMPTY_SHARE
    expected = (1.0 - 0.5) * math.log(1.0 / 0.5) + (q - p) * math.log(q / p)
    assert divergence.EMPTY_SHARE == 1e-4
    assert divergence.psi(training, serving) == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(divergence.psi(serving, training))
