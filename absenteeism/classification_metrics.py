"""Held-out metrics of a classifier (EvaluationMetrics' log_loss, accuracy, roc_auc) and of its
baseline, which predicts the training rows' class shares for every row (baseline_log_loss,
baseline_accuracy, baseline_roc_auc). numpy only: scikit-learn is an optional extra, and the tests
check these against it.

The rows are fed chunk by chunk and kept; everything is computed at the end from all of them, so the
metrics have the same bits whatever the chunking (ROC AUC needs every score anyway)."""

from __future__ import annotations

import itertools
import math

import numpy as np

# Log loss clips probabilities to [CLIP, 1 - CLIP], as scikit-learn did before 1.5 (its classic eps);
# scikit-learn now clips at the dtype's machine epsilon (2.2e-16 for float64). The two agree unless a
# probability is below 1e-15 or above 1 - 1e-15.
CLIP = 1e-15
FSUM_ROWS = 1 << 16  # rows converted to Python floats at a time for math.fsum


class HeldOutClassification:
    """Log loss, accuracy and ROC AUC of a classifier and of its class-shares baseline over the
    held-out rows, fed chunk by chunk in the held-out rows' order.

    Memory: every row's probabilities are kept as float64, 8 bytes x K per held-out row, and its
    label in one byte (K <= 256): 2,000,000 held-out rows x 2 classes keep 34 MB. metrics() joins
    the chunks into one array, so it briefly holds twice that (68 MB)."""

    def __init__(self, class_shares: np.ndarray):
        """class_shares: the training rows' share of each class (K >= 2), the baseline's constant
        probabilities."""
        shares = np.array(class_shares, dtype=np.float64)
        if shares.ndim != 1 or len(shares) < 2:
            raise ValueError(f"class_shares must be one share per class, at least 2, got shape {shares.shape}")
        if not ((shares >= 0) & (shares <= 1)).all() or abs(math.fsum(shares.tolist()) - 1) > 1e-9:
            raise ValueError(f"class_shares must be in [0, 1] and sum to 1, got {shares.tolist()}")
        self.class_shares = shares
        self.classes = len(shares)
        self._label_dtype = np.min_scalar_type(self.classes - 1)
        self._labels: list[np.ndarray] = []
        self._probabilities: list[np.ndarray] = []

    @property
    def rows(self) -> int:
        return sum(len(labels) for labels in self._labels)

    def feed(self, labels: np.ndarray, probabilities: np.ndarray) -> None:
        """labels: class indices 0..K-1; probabilities: rows x K, each class's predicted probability.
        Both are copied, so the caller may reuse its buffers."""
        labels, probabilities = np.asarray(labels), np.asarray(probabilities)
        k = self.classes
        if probabilities.ndim != 2 or probabilities.shape[1] != k:
            raise ValueError(f"probabilities must be rows x {k} (one column per class), got shape {probabilities.shape}")
        if labels.ndim != 1 or len(labels) != len(probabilities):
            raise ValueError(f"labels must be one per row of probabilities ({len(probabilities)} rows), "
                             f"got shape {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
        outside = (labels < 0) | (labels >= k)
        if outside.any():
            at = int(np.flatnonzero(outside)[0])
            raise ValueError(f"labels must be class indices in 0..{k - 1}, got {labels[at]} at row {at} of the chunk")
        invalid = ~((probabilities >= 0) & (probabilities <= 1)).all(axis=1)  # NaN included
        if invalid.any():
            at = int(np.flatnonzero(invalid)[0])
            raise ValueError(f"probabilities must be in [0, 1], got {probabilities[at].tolist()} "
                             f"at row {at} of the chunk")
        self._labels.append(labels.astype(self._label_dtype))
        self._probabilities.append(np.array(probabilities, dtype=np.float64))

    def _joined(self) -> tuple[np.ndarray, np.ndarray]:
        """All rows fed so far, as one array each (kept joined for the next call)."""
        if len(self._labels) > 1:
            self._labels = [np.concatenate(self._labels)]
            self._probabilities = [np.concatenate(self._probabilities)]
        return self._labels[0], self._probabilities[0]

    def metrics(self) -> dict[str, float]:
        if self.rows == 0:
            raise ValueError("no held-out rows were fed: no classification metrics to measure")
        labels, probabilities = self._joined()
        n = len(labels)
        majority = int(np.argmax(self.class_shares))
        auc = roc_auc(labels, probabilities)
        return {
            "log_loss": mean_log_loss(np.take_along_axis(probabilities, labels[:, None], axis=1)[:, 0]),
            "accuracy": int(np.count_nonzero(np.argmax(probabilities, axis=1) == labels)) / n,
            "roc_auc": auc,
            "baseline_log_loss": mean_log_loss(self.class_shares[labels]),
            "baseline_accuracy": int(np.count_nonzero(labels == majority)) / n,
            # constant scores tie every pair: each class's AUC is 0.5 when it is defined at all
            "baseline_roc_auc": math.nan if math.isnan(auc) else 0.5,
        }


def mean_log_loss(true_class_probabilities: np.ndarray) -> float:
    """Mean of -log(p) over the rows' probabilities of their true class, p clipped to
    [CLIP, 1 - CLIP]. The sum is exact (math.fsum), rounded once, taken over blocks of rows so that it
    never holds a Python float per row."""
    logs = np.clip(true_class_probabilities, CLIP, 1 - CLIP)
    np.log(logs, out=logs)
    blocks = (logs[start:start + FSUM_ROWS].tolist() for start in range(0, len(logs), FSUM_ROWS))
    return -math.fsum(itertools.chain.from_iterable(blocks)) / len(logs)


def roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Binary: the AUC of probabilities[:, 1] for class 1. Multiclass: the unweighted mean of the
    one-vs-rest AUCs of every class (scikit-learn's roc_auc_score(multi_class="ovr",
    average="macro")).

    NaN when a class is absent from the held-out rows: its one-vs-rest AUC compares its rows' scores
    with the others' and has no rows of its own to compare. (A class present alone leaves the
    others absent.)"""
    classes = probabilities.shape[1]
    if (np.bincount(labels, minlength=classes) == 0).any():
        return math.nan
    if classes == 2:
        return mann_whitney_auc(probabilities[:, 1], labels == 1)
    return math.fsum(mann_whitney_auc(probabilities[:, k], labels == k) for k in range(classes)) / classes


def mann_whitney_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The chance that a random positive row scores above a random negative one, ties counted half
    (Mann-Whitney U over positives x negatives). Each positive's negatives below it count twice and
    those equal to it once, so the sum is an exact integer and the AUC is rounded once."""
    negatives, positives = scores[~positive], scores[positive]
    negatives.sort()
    positives.sort()  # not needed for the counts; sorted queries make searchsorted faster
    doubled_wins = (int(np.searchsorted(negatives, positives, "left").sum())
                    + int(np.searchsorted(negatives, positives, "right").sum()))
    return doubled_wins / (2 * len(positives) * len(negatives))
