"""The values of the feature module's aggregate nodes, as they travel: each a float or a 1-D array
of float64, finite, carried by node name in ServingConfig.statistics.values.

The job hands the feature module the values as read back from their message form (`round_trip`),
exactly as the server reads them from its config, so both sides inject the same bits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from numbers import Real

import numpy as np

from absenteeism.v1 import serving_config_pb2

AggregateValue = float | np.ndarray
ALLOWED = "a float or a 1-D array of floats, every value finite"


class AggregateError(ValueError):
    """An aggregate node returned something that cannot travel in the config."""


def normalize(name: str, value: object) -> AggregateValue:
    """`value` as it travels (float, or float64 1-D array); raises AggregateError naming the node."""
    if isinstance(value, Real) and not isinstance(value, (bool, np.bool_, int, np.integer)):
        result: AggregateValue = float(value)
        finite = math.isfinite(result)
    elif isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind == "f":
        result = value.astype(np.float64)
        finite = bool(np.isfinite(result).all())
    else:
        described = (f"an array of shape {value.shape} and dtype {value.dtype}" if isinstance(value, np.ndarray)
                     else f"a value of type {type(value).__name__}")
        raise AggregateError(f"aggregate node {name!r} returned {described}: it must return {ALLOWED}")
    if not finite:
        raise AggregateError(f"aggregate node {name!r} returned a value that is not finite ({value!r}): "
                             f"it must return {ALLOWED}")
    return result


def to_message(values: Mapping[str, AggregateValue], row_count: int) -> serving_config_pb2.AggregateStatistics:
    statistics = serving_config_pb2.AggregateStatistics(row_count=row_count)
    for name, value in values.items():
        value = normalize(name, value)
        if isinstance(value, np.ndarray):
            statistics.values[name].vector.values.extend(value.tolist())
        else:
            statistics.values[name].scalar = value
    return statistics


def from_message(statistics: serving_config_pb2.AggregateStatistics, names: Iterable[str]) -> dict[str, AggregateValue]:
    """The values of `names` as the feature module receives them; raises KeyError for one not carried."""
    values: dict[str, AggregateValue] = {}
    for name in names:
        if name not in statistics.values:
            raise KeyError(name)
        carried = statistics.values[name]
        kind = carried.WhichOneof("kind")
        values[name] = (np.array(carried.vector.values, dtype=np.float64) if kind == "vector"
                        else float(carried.scalar))
    return values


def round_trip(values: Mapping[str, AggregateValue]) -> dict[str, AggregateValue]:
    """`values` through their message form: what the server will read from the config."""
    return from_message(to_message(values, row_count=0), values)


def as_json(values: Mapping[str, AggregateValue]) -> dict[str, float | list[float]]:
    """For report.json: scalars as numbers, vectors as lists."""
    return {name: value.tolist() if isinstance(value, np.ndarray) else value for name, value in sorted(values.items())}
