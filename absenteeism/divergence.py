"""How far a distribution of counts over fixed bins moved from another one (training -> serving).

- PSI, the population stability index: sum over bins of (q - p) * ln(q / p), p the training share
  of a bin, q the serving share; a bin empty on one side counts as a share of EMPTY_SHARE there
  (the usual convention, else one empty bin makes it infinite).
- Jensen-Shannon divergence, base 2 (0 = same distribution, 1 = disjoint): the mean of the
  Kullback-Leibler divergences of p and q from their average m = (p + q) / 2.
- L-infinity distance: the largest difference of a bin's share, max |p - q| (TFDV's measure for
  categorical features).
"""

from __future__ import annotations

import numpy as np

EMPTY_SHARE = 1e-4


def shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    return counts / counts.sum()


def psi(training: np.ndarray, serving: np.ndarray) -> float:
    p = np.maximum(shares(training), EMPTY_SHARE)
    q = np.maximum(shares(serving), EMPTY_SHARE)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(training: np.ndarray, serving: np.ndarray) -> float:
    p, q = shares(training), shares(serving)
    m = (p + q) / 2
    return float((_kullback_leibler(p, m) + _kullback_leibler(q, m)) / 2)


def _kullback_leibler(p: np.ndarray, m: np.ndarray) -> float:
    present = p > 0  # 0 * log(0) = 0; m > 0 wherever p > 0
    return float(np.sum(p[present] * np.log2(p[present] / m[present])))


def l_infinity(training: np.ndarray, serving: np.ndarray) -> float:
    return float(np.max(np.abs(shares(training) - shares(serving))))
