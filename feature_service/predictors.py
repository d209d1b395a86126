"""The registry of online paths: the one place that maps --predictor to a class.

Every predictor is built from a ServingConfig and has ReferencePredictor's interface:
`predict(records) -> online.Predictions` (raising online.InvalidRecords) and
`__call__(records) -> (features, predictions)` (config_io.OnlinePath, for golden-row verification).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from absenteeism import fast_path, online
from absenteeism.v1 import raw_record_pb2, serving_config_pb2


class Predictor(Protocol):
    feature_names: tuple[str, ...]

    def predict(self, records: Sequence[raw_record_pb2.RawRecord]) -> online.Predictions: ...

    def __call__(self, records: Sequence[raw_record_pb2.RawRecord]) -> tuple[np.ndarray, np.ndarray]: ...


Factory = Callable[[serving_config_pb2.ServingConfig], Predictor]

_REGISTRY: dict[str, Factory] = {
    # fast: the same Hamilton graph and functions, planned once; reference: a driver run per request.
    "fast": fast_path.FastPredictor,
    "reference": online.ReferencePredictor,
}


def names() -> list[str]:
    return sorted(_REGISTRY)


def register(name: str, factory: Factory) -> None:
    _REGISTRY[name] = factory


def create(name: str, config: serving_config_pb2.ServingConfig) -> Predictor:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown predictor {name!r}: choose one of {names()}") from None
    return factory(config)
