"""Ridge regression from sufficient statistics, so the fit streams over chunks: Z'Z with
Z = [1 | X | y] summed over fixed blocks of training rows, then one small solve. The intercept is
not penalised (X and y are centred, as scikit-learn's Ridge does)."""

from __future__ import annotations

import numpy as np

from absenteeism.dataset.blocks import BlockSum

BLOCK_ROWS = 1 << 16  # rows per folded block: fixed, so the sums do not depend on the chunk size


def gram(z: np.ndarray) -> np.ndarray:
    return z.T @ z


class NormalEquations:
    """Accumulates Z'Z over rows of [features | label]."""

    def __init__(self, n_features: int):
        self.n_features = n_features
        self._sum = BlockSum(BLOCK_ROWS, gram)

    def add(self, matrix: np.ndarray, labels: np.ndarray) -> None:
        self.feed(design_rows(matrix, labels))

    def feed(self, design: np.ndarray) -> None:
        """Rows of `design_rows`, in the training rows' order."""
        self._sum.feed(design)

    def solve(self, alpha: float) -> tuple[float, np.ndarray]:
        return solve(self._sum.finish(), self.n_features, alpha)

    def label_mean(self) -> float:
        return label_mean(self._sum.finish(), self.n_features)


def design_rows(matrix: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[1 | X | y] for some training rows: what Z'Z sums."""
    z = np.empty((matrix.shape[0], matrix.shape[1] + 2), dtype=np.float64)
    z[:, 0] = 1.0
    z[:, 1:-1] = matrix
    z[:, -1] = labels
    return z


def solve(sums: np.ndarray | None, p: int, alpha: float) -> tuple[float, np.ndarray]:
    """(intercept, coefficients) minimising |y - b - Xw|^2 + alpha |w|^2, from Z'Z summed over
    the training rows."""
    if sums is None:
        raise ValueError("no training rows")
    n, sx, sy = sums[0, 0], sums[0, 1:p + 1], sums[0, p + 1]
    sxx, sxy = sums[1:p + 1, 1:p + 1], sums[1:p + 1, p + 1]
    mean_x, mean_y = sx / n, sy / n
    centred_xx = sxx - np.outer(sx, mean_x)
    centred_xy = sxy - sx * mean_y
    coefficients = np.linalg.solve(centred_xx + alpha * np.eye(p), centred_xy)
    return float(mean_y - mean_x @ coefficients), coefficients


def label_mean(sums: np.ndarray | None, p: int) -> float:
    """The training rows' mean label, from Z'Z (its 1'y over n): summed in the fixed blocks, so it
    does not depend on the chunk size, whatever the label's dtype."""
    if sums is None:
        raise ValueError("no training rows")
    return float(sums[0, p + 1] / sums[0, 0])
