"""Python client for absenteeism.v1.PredictionService: `PredictionClient` and the `python -m clients` CLI."""

import os

# gRPC's C core logs each failed TLS handshake attempt at INFO on stderr, four lines a call, before
# the client's own one-line error; ERROR (gRPC's documented default) keeps them out. It is read when
# grpc is first imported, so here; a GRPC_VERBOSITY the caller set wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from clients.client import (  # after the environment gRPC reads at its import
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
