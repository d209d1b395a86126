"""What the absenteeism features and the ridge prediction mean, written apart from the feature
module and the model code, one scalar row at a time: an oracle the tests compare the bits with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def expected_features(row: Mapping[str, float], aggregates: Mapping[str, float]) -> dict[str, float]:
    """The features' meaning, written independently of the module, one scalar row at a time."""
    reason = row["reason_for_absence"]
    expected = {
        "is_summer": float(row["month_of_absence"] in (12, 1, 2)),
        "has_pet": float(row["pet"] > 0),
        "has_children": float(row["son"] > 0),
        "age_zero_mean_unit_variance": (row["age"] - aggregates["age_mean"]) / aggregates["age_std_dev"],
        "has_disciplinary_failure": float(row["disciplinary_failure"] == 1),
        "reason_unrecorded": float(reason == 0),
        "reason_is_disease": float(1 <= reason <= 21),
        "reason_is_consultation": float(reason in (22, 23, 28)),
    }
    for day in range(2, 7):
        expected[f"day_of_the_week_{day}"] = float(row["day_of_the_week"] == day)
    for season in range(1, 5):
        expected[f"seasons_{season}"] = float(row["seasons"] == season)
    return expected


def expected_prediction(intercept: float, coefficients: Sequence[float], features: Sequence[float]) -> float:
    """intercept + c0 * x0 + c1 * x1 + ..., added left to right in float64 (Python floats are IEEE
    doubles): the order the model promises, so the bits must be equal, not close."""
    total = float(intercept)
    for coefficient, value in zip(coefficients, features, strict=True):
        total = total + float(value) * float(coefficient)
    return total
