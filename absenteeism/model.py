"""The prediction math. Its parameters are data read from ServingConfig.model: no pickle, no code."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def predict_linear(intercept: float, coefficients: Sequence[float], features: np.ndarray) -> np.ndarray:
    """intercept + sum_j coefficients[j] * features[:, j], for a (rows x features) float64 matrix.

    Summed column by column in model order, so a row's prediction has the same bits whether it is
    predicted alone or among a million rows (a BLAS matrix product may sum in another order).
    """
    if features.ndim != 2 or features.shape[1] != len(coefficients):
        raise ValueError(f"expected a (rows x {len(coefficients)}) feature matrix, got shape {features.shape}")
    prediction = np.full(features.shape[0], float(intercept), dtype=np.float64)
    for j, coefficient in enumerate(coefficients):
        prediction = prediction + features[:, j] * float(coefficient)
    return prediction
