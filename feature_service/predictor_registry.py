"""The registry of online paths: the one place that maps --predictor to a class.

Every entry implements absenteeism.online.predictor.Predictor and is built from a ServingConfig.
"""

from __future__ import annotations

from collections.abc import Callable

from absenteeism.online.fast import FastPredictor
from absenteeism.online.predictor import Predictor
from absenteeism.online.reference import ReferencePredictor
from absenteeism.v1 import serving_config_pb2

Factory = Callable[[serving_config_pb2.ServingConfig], Predictor]

_REGISTRY: dict[str, Factory] = {
    # fast: the same Hamilton graph and functions, planned once; reference: a driver run per request.
    "fast": FastPredictor,
    "reference": ReferencePredictor,
}


def names() -> list[str]:
    return sorted(_REGISTRY)


def create(name: str, config: serving_config_pb2.ServingConfig) -> Predictor:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown predictor {name!r}: choose one of {names()}") from None
    return factory(config)
