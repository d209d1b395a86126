"""The prediction math. Its parameters are data read from ServingConfig.model: no pickle, no code."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def predict_linear(intercept: float, coefficients: Sequence[float], features: np.ndarray) -> np.ndarray:
    """intercept + coefficients[0] * features[:, 0] + coefficients[1] * features[:, 1] + ..., for a
    (rows x features) float64 matrix.

    Added left to right, one row at a time (a cumulative sum is sequential), so a row's prediction
    has the same bits whether it is predicted alone or among a million rows (a BLAS matrix product
    or a pairwise sum may add in another order).
    """
    if features.ndim != 2 or features.shape[1] != len(coefficients):
        raise ValueError(f"expected a (rows x {len(coefficients)}) feature matrix, got shape {features.shape}")
    if features.shape[0] >= _COLUMN_BY_COLUMN_ROWS:
        # The same additions in the same order, a column at a time: far cheaper on many rows.
        total = np.full(features.shape[0], intercept, dtype=np.float64)
        for j, coefficient in enumerate(np.asarray(coefficients, dtype=np.float64)):
            total += features[:, j] * coefficient
        return total
    terms = np.empty((features.shape[0], features.shape[1] + 1), dtype=np.float64)
    terms[:, 0] = intercept
    np.multiply(features, np.asarray(coefficients, dtype=np.float64), out=terms[:, 1:])
    return np.cumsum(terms, axis=1)[:, -1]


_COLUMN_BY_COLUMN_ROWS = 64  # below it, one cumulative sum costs fewer numpy calls
