"""Python client for absenteeism.v1.PredictionService: `PredictionClient` and the `python -m clients` CLI."""

from clients.client import (
    BatchPrediction,
    DriftReport,
    FeatureDrift,
    FieldViolation,
    InvalidInputError,
    Prediction,
    PredictionClient,
    PredictionError,
    StreamResult,
    TlsOptions,
)

__all__ = [
    "BatchPrediction",
    "DriftReport",
    "FeatureDrift",
    "FieldViolation",
    "InvalidInputError",
    "Prediction",
    "PredictionClient",
    "PredictionError",
    "StreamResult",
    "TlsOptions",
]
