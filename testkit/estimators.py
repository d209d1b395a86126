"""Estimator factories for `--model testkit.estimators:<function>` in tests: what a user's module
gives the job, an unfitted scikit-learn estimator per call, and the things the job must refuse."""

from __future__ import annotations

from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


def scaled_logistic_regression() -> Pipeline:
    """A classifier pipeline: skl2onnx must be told zipmap=False on its final step."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000))


def gradient_boosting_regressor() -> GradientBoostingRegressor:
    """Random by design (subsample < 1: each tree sees a random 80% of the rows) and without a
    random_state: the job fixes the seed, or the same rows would give another graph at each run."""
    return GradientBoostingRegressor(n_estimators=60, max_depth=3, learning_rate=0.1, subsample=0.8)


def hist_gradient_boosting_regressor() -> HistGradientBoostingRegressor:
    """Fits, but skl2onnx 1.20 cannot convert scikit-learn 1.9's HistGradientBoosting* (its tree
    attributes come out as booleans where ONNX wants ints): the job must say so, not crash."""
    return HistGradientBoostingRegressor(max_iter=20)


def not_an_estimator() -> dict[str, str]:
    """A function that returns something else than an estimator (here the name of one)."""
    return {"model": "GradientBoostingRegressor"}
