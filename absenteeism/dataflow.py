"""Runs the feature module through Apache Hamilton: the analyze and transform phases.

The batch job calls `compute_aggregates` over all accepted rows and then `compute_features` with
those aggregates as overrides; the reference server path calls `compute_features` on the rows of
one request with the aggregates from its ServingConfig. Same module, same driver, same overrides.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
from hamilton import base, driver

from absenteeism import aggregates as aggregate_values
from absenteeism import features, graph_introspection
from absenteeism.raw_schema import RAW_COLUMN_NAMES


@cache
def feature_driver() -> driver.Driver:
    """The Hamilton driver over the feature module (built once per process)."""
    return driver.Builder().with_modules(features).with_adapters(base.DictResult()).build()


@cache
def aggregate_names() -> tuple[str, ...]:
    """The analyze-phase nodes, found by their tag: these values come from the config online."""
    return graph_introspection.stage_nodes(feature_driver().graph.nodes, features.AGGREGATE)


@cache
def analyze_columns() -> tuple[str, ...]:
    """The raw columns the aggregate nodes read: what the analyze pass collects of every row."""
    needed = {v.name for v in feature_driver().what_is_upstream_of(*aggregate_names())}
    return tuple(name for name in RAW_COLUMN_NAMES if name in needed)


def _inputs(raw: pd.DataFrame) -> dict[str, pd.Series]:
    # The columns present: the analyze pass hands over only the columns it collected across
    # chunks; Hamilton names any input a requested node lacks.
    return {name: raw[name] for name in RAW_COLUMN_NAMES if name in raw.columns}


def compute_aggregates(raw: pd.DataFrame) -> dict[str, aggregate_values.AggregateValue]:
    """Analyze: the aggregate nodes over `raw` (valid, typed raw rows), as the server will read them
    back from the config. Raises AggregateError for a value that cannot travel in the config."""
    if not aggregate_names():
        return {}
    result = feature_driver().execute(list(aggregate_names()), inputs=_inputs(raw))
    return aggregate_values.round_trip({name: aggregate_values.normalize(name, result[name])
                                        for name in aggregate_names()})


def compute_features(raw: pd.DataFrame, aggregates: dict[str, aggregate_values.AggregateValue]) -> pd.DataFrame:
    """Transform: the model features of every row of `raw`, in model order, indexed like `raw`.

    Raises hamilton's DataValidationError when a feature breaks its check.
    """
    missing = set(aggregate_names()) - set(aggregates)
    if missing:
        raise ValueError(f"aggregate statistics missing: {sorted(missing)}")
    outputs = [*features.MODEL_FEATURES, *features.GUARDS]
    result = feature_driver().execute(outputs, inputs=_inputs(raw), overrides=dict(aggregates))
    return pd.DataFrame({name: result[name] for name in features.MODEL_FEATURES}, index=raw.index)


def feature_matrix(feature_frame: pd.DataFrame) -> np.ndarray:
    """The features as the float64 matrix the model reads (rows x MODEL_FEATURES)."""
    return feature_frame.loc[:, list(features.MODEL_FEATURES)].to_numpy(dtype=np.float64)
