"""Train/serve parity: compares feature vectors and predictions bit for bit.

Used by the batch job (offline features vs the single-record online path, in process) and by the
parity command (the training set vs a running server), so "identical" means one thing everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from absenteeism import served_model
from absenteeism.served_model import probability_name

PREDICTION = served_model.PREDICTION
WORST_KEPT = 3  # worst mismatches kept per feature


@dataclass
class Mismatch:
    source_row: int
    expected: float
    got: float


@dataclass
class ParityReport:
    feature_names: tuple[str, ...]
    rows_compared: int = 0
    rows_identical: int = 0
    mismatch_counts: dict[str, int] = field(default_factory=dict)
    worst: dict[str, list[Mismatch]] = field(default_factory=dict)  # largest |difference| first
    problems: list[str] = field(default_factory=list)  # names/order/row-count disagreements

    @property
    def identical(self) -> bool:
        return not self.problems and self.rows_compared == self.rows_identical and self.rows_compared > 0

    def merge(self, other: ParityReport) -> None:
        self.rows_compared += other.rows_compared
        self.rows_identical += other.rows_identical
        self.problems.extend(other.problems)
        for name, count in other.mismatch_counts.items():
            self.mismatch_counts[name] = self.mismatch_counts.get(name, 0) + count
            merged = self.worst.get(name, []) + other.worst.get(name, [])
            self.worst[name] = sorted(merged, key=_distance, reverse=True)[:WORST_KEPT]

    def as_dict(self) -> dict:
        return {
            "rows_compared": self.rows_compared,
            "rows_identical": self.rows_identical,
            "identical": self.identical,
            "mismatch_counts": dict(self.mismatch_counts),
            "worst": {name: [vars(m) for m in rows] for name, rows in self.worst.items()},
            "problems": list(self.problems),
        }

    def summary(self) -> str:
        lines = [f"rows compared: {self.rows_compared}, rows identical: {self.rows_identical}"
                 + (" (100%)" if self.identical else "")]
        lines += [f"problem: {p}" for p in self.problems]
        for name, count in sorted(self.mismatch_counts.items(), key=lambda kv: -kv[1]):
            examples = ", ".join(f"row {m.source_row}: expected {m.expected!r} got {m.got!r}" for m in self.worst[name])
            lines.append(f"  {name}: {count} mismatches; worst: {examples}")
        return "\n".join(lines)



def _distance(m: Mismatch) -> float:
    difference = abs(m.expected - m.got)
    return float("inf") if np.isnan(difference) else difference


def bits_differ(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """True where the float64 bit patterns of arrays or numbers differ (so -0.0 != 0.0 and NaN == the same NaN)."""
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64) != np.ascontiguousarray(
        b, dtype=np.float64).view(np.uint64)


def compare(source_rows: Sequence[int], feature_names: Sequence[str],
            expected_features: np.ndarray, expected_predictions: np.ndarray,
            got_feature_names: Sequence[str], got_features: np.ndarray, got_predictions: np.ndarray,
            *, class_labels: Sequence[str] = (), expected_probabilities: np.ndarray | None = None,
            got_probabilities: np.ndarray | None = None) -> ParityReport:
    """Compares row i of the expected (offline) arrays with row i of the got (online) arrays; a
    classifier's probabilities (rows x class_labels) too, one column per class."""
    report = ParityReport(tuple(feature_names))
    if tuple(got_feature_names) != tuple(feature_names):
        report.problems.append(f"feature names/order differ: expected {list(feature_names)}, "
                               f"got {list(got_feature_names)}")
        return report
    if got_features.shape != expected_features.shape or len(got_predictions) != len(expected_predictions):
        report.problems.append(f"shapes differ: expected {expected_features.shape}, got {got_features.shape}")
        return report
    columns = {**{name: (expected_features[:, j], got_features[:, j]) for j, name in enumerate(feature_names)},
               PREDICTION: (expected_predictions, got_predictions)}
    if class_labels:
        shape = (len(source_rows), len(class_labels))
        if expected_probabilities is None or got_probabilities is None or \
                np.shape(expected_probabilities) != shape or np.shape(got_probabilities) != shape:
            report.problems.append(f"class probabilities missing or of another shape: expected {shape}, got "
                                   f"{None if got_probabilities is None else np.shape(got_probabilities)}")
            return report
        for j, label in enumerate(class_labels):
            columns[probability_name(label)] = (expected_probabilities[:, j], got_probabilities[:, j])
    any_differs = np.zeros(len(source_rows), dtype=bool)
    rows = np.asarray(source_rows)
    for name, (expected, got) in columns.items():
        differs = bits_differ(expected, got)
        if differs.any():
            any_differs |= differs
            positions = np.flatnonzero(differs)
            report.mismatch_counts[name] = len(positions)
            found = [Mismatch(int(rows[p]), float(expected[p]), float(got[p])) for p in positions]
            report.worst[name] = sorted(found, key=_distance, reverse=True)[:WORST_KEPT]
    report.rows_compared = len(source_rows)
    report.rows_identical = int((~any_differs).sum())
    return report
