"""A regressor's held-out MAE and RMSE, and those of the predict-the-training-mean baseline: what
the ETL job reports (etl_job.engine) and `python -m clients evaluate` computes on live traffic.
Summed over fixed blocks of rows in order, so the bits depend on the rows and their order only,
never on the chunking."""

from __future__ import annotations

import numpy as np

from absenteeism.dataset.blocks import BlockSum

BLOCK_ROWS = 1 << 16  # rows per folded block: fixed, so the sums do not depend on the chunk size


def errors(block: np.ndarray) -> np.ndarray:
    """block columns: truth, prediction, baseline -> sums of |e| and e^2 for model and baseline."""
    model, baseline = block[:, 0] - block[:, 1], block[:, 0] - block[:, 2]
    return np.array([np.abs(model).sum(), (model ** 2).sum(), np.abs(baseline).sum(), (baseline ** 2).sum()])


class HeldOutErrors:
    """MAE and RMSE of the model and of the predict-the-mean baseline over the held-out rows."""

    def __init__(self, baseline: float):
        self.baseline = baseline
        self.rows = 0
        self._sum = BlockSum(BLOCK_ROWS, errors)

    def feed(self, rows: np.ndarray) -> None:
        """Rows of `error_rows`, in the held-out rows' order."""
        self.rows += len(rows)
        self._sum.feed(rows)

    def metrics(self) -> dict[str, float]:
        total = self._sum.finish()
        if total is None:
            raise ValueError("no held-out rows were fed: no errors to measure")
        return error_metrics(total, self.rows)


def error_rows(truth: np.ndarray, predicted: np.ndarray, baseline: float) -> np.ndarray:
    """truth, prediction, baseline per held-out row: what the error sums fold."""
    return np.column_stack([truth, predicted, np.full(len(truth), baseline)]).astype(np.float64)


def error_metrics(total: np.ndarray, n: int) -> dict[str, float]:
    """MAE and RMSE of the model and the baseline from the error sums over `n` held-out rows."""
    return {"mae": float(total[0] / n), "rmse": float(np.sqrt(total[1] / n)),
            "baseline_mae": float(total[2] / n), "baseline_rmse": float(np.sqrt(total[3] / n))}
