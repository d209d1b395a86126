"""Runs the feature module through Apache Hamilton: the analyze and transform phases.

The batch job calls `compute_aggregates` over all accepted rows and then `compute_features` with
those aggregates as overrides; the reference server path calls `compute_features` on the rows of
one request with the aggregates from its ServingConfig. Same module, same driver, same overrides.
"""

from __future__ import annotations

import gc
from functools import cache
from types import ModuleType

import numpy as np
import pandas as pd
from hamilton import base, driver

from absenteeism import aggregates as aggregate_values
from absenteeism import data_sets, graph_introspection

LABEL_TASKS = ("regression", "binary_classification", "multiclass_classification")


class LabelError(ValueError):
    """A label node that does not exist or does not say its task."""


def feature_module() -> ModuleType:
    """The active data set's feature module."""
    return data_sets.active().features


def model_features() -> tuple[str, ...]:
    """The active data set's model features, in model order."""
    return tuple(data_sets.active().features.MODEL_FEATURES)


def feature_driver() -> driver.Driver:
    """The Hamilton driver over the active data set's feature module (built once per process)."""
    return _driver(feature_module())


@cache
def _driver(module: ModuleType) -> driver.Driver:
    return driver.Builder().with_modules(module).with_adapters(base.DictResult()).build()


def aggregate_names() -> tuple[str, ...]:
    """The analyze-phase nodes, found by their tag: these values come from the config online."""
    return _aggregate_names(feature_module())


@cache
def _aggregate_names(module: ModuleType) -> tuple[str, ...]:
    return graph_introspection.stage_nodes(_driver(module).graph.nodes, module.AGGREGATE)


def analyze_columns() -> tuple[str, ...]:
    """The raw columns the aggregate nodes read: what the analyze pass collects of every row."""
    names = aggregate_names()
    if not names:
        return ()
    needed = {v.name for v in feature_driver().what_is_upstream_of(*names)}
    return tuple(name for name in data_sets.active().table.column_names if name in needed)


def label_tasks() -> dict[str, str]:
    """The label nodes (tagged stage="label") and the task each declares (its `task` tag)."""
    return _label_tasks(feature_module())


@cache
def _label_tasks(module: ModuleType) -> dict[str, str]:
    nodes = _driver(module).graph.nodes
    tasks = {name: nodes[name].tags.get("task", "") for name in
             graph_introspection.stage_nodes(nodes, module.LABEL_STAGE)}
    for name, task in tasks.items():
        if task not in LABEL_TASKS:
            raise LabelError(f"label node {name!r} has task tag {task!r}: one of {list(LABEL_TASKS)} is needed")
    return tasks


def label_task(name: str) -> str:
    """The task of label node `name`; LabelError naming the label nodes there are otherwise."""
    tasks = label_tasks()
    if name not in tasks:
        raise LabelError(f"{name!r} is not a label node of the feature module; its label nodes "
                         f"(tagged stage={feature_module().LABEL_STAGE!r}) are {sorted(tasks)}")
    return tasks[name]


def compute_label(raw: pd.DataFrame, name: str) -> np.ndarray:
    """Label node `name` over typed raw rows that carry the raw label columns (offline only).

    Raises hamilton's DataValidationError when the label breaks its check."""
    labels = {column: raw[column] for column in data_sets.active().table.label_names if column in raw.columns}
    result = feature_driver().execute([name], inputs={**_inputs(raw), **labels})
    return np.asarray(result[name])


def _inputs(raw: pd.DataFrame) -> dict[str, pd.Series]:
    # The columns present: the analyze pass hands over only the columns it collected across
    # chunks; Hamilton names any input a requested node lacks.
    return {name: raw[name] for name in data_sets.active().table.column_names if name in raw.columns}


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
    module = feature_module()
    outputs = [*module.MODEL_FEATURES, *module.GUARDS]
    result = feature_driver().execute(outputs, inputs=_inputs(raw), overrides=dict(aggregates))
    return pd.DataFrame({name: result[name] for name in module.MODEL_FEATURES}, index=raw.index)


def release_chunk_results() -> None:
    """Frees what Hamilton's executes of a chunk left behind. Each execute leaves its results (every
    node's column) in a reference cycle (a recursive closure over its dict of computed values), which
    only a cycle collection frees; they are still in the young generations when the chunk is done,
    so collecting those (about 2 ms) frees them. Without it a long input's cycles pile up in the
    oldest generation, which is seldom collected: scoring 20M rows peaked at 828 MiB instead of 350."""
    gc.collect(1)


def feature_matrix(feature_frame: pd.DataFrame) -> np.ndarray:
    """The features as the float64 matrix the model reads (rows x MODEL_FEATURES)."""
    return feature_frame.loc[:, list(model_features())].to_numpy(dtype=np.float64)
