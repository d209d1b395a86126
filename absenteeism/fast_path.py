"""The fast online path: the same Hamilton graph and node callables, planned once at boot.

At boot the feature driver's graph is walked once from the model features (and guards) back to
the raw inputs, with the aggregates as overrides, into a topologically ordered list of steps.
Per request, each step calls its Hamilton node's callable on small numpy arrays: the functions of
the shared feature module compute, and Hamilton's own check_output nodes decide what a failed
check means. Only the pandera validators are swapped for compiled predicates (fast_checks), and
the raw schema is compiled the same way. No per-request driver, no pandas.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from absenteeism import converters, dataflow, features, raw_schema
from absenteeism.fast_checks import CompiledSchema, FastValidator, find_column_violations, range_bounds
from absenteeism.model import predict_linear
from absenteeism.online import ConfigPredictor, Predictions, raise_if_invalid
from absenteeism.v1 import raw_record_pb2, serving_config_pb2

_DQ_RESULTS_TAG = "hamilton.data_quality.contains_dq_results"


@dataclass(frozen=True)
class Check:
    """One of Hamilton's validator nodes of a checked function, with its validator compiled."""

    node_name: str
    node_call: Callable[..., Any]  # Hamilton's validation node (takes validator_to_call= and the value)
    validator: FastValidator


@dataclass(frozen=True)
class Step:
    """Computes one node: a function of the module (`checks` empty), or a checked output whose
    value is its `_raw` node's, once every check passes."""

    name: str
    call: Callable[..., Any]  # the node's callable: the module's function, or Hamilton's final check node
    inputs: tuple[str, ...]  # positional inputs; for a checked output, the one raw node
    checks: tuple[Check, ...] = ()

    def run(self, values: dict[str, Any]) -> Any:
        if not self.checks:
            return self.call(*[values[name] for name in self.inputs])
        raw = values[self.inputs[0]]
        if all(check.validator.compiled.passes(raw) for check in self.checks):
            return raw
        # A check failed: Hamilton's own nodes say what that means (importance "fail" raises).
        results = {c.node_name: c.node_call(validator_to_call=c.validator, **{self.inputs[0]: raw})
                   for c in self.checks}
        return self.call(**{self.inputs[0]: raw}, **results)


def plan(outputs: Sequence[str], given: set[str]) -> list[Step]:
    """Steps that compute `outputs` from the `given` values, in dependency order."""
    nodes = dataflow.feature_driver().graph.nodes
    ordered: list[Step] = []
    seen: set[str] = set(given)

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        node = nodes[name]
        inputs = tuple(node.input_types)
        validators = tuple(i for i in inputs if nodes[i].tags.get(_DQ_RESULTS_TAG))
        values = tuple(i for i in inputs if i not in validators)
        for dependency in values:
            visit(dependency)
        if validators:
            if len(values) != 1:
                raise ValueError(f"checked node {name} has inputs {values}: expected its one raw node")
            checks = tuple(Check(v, nodes[v].callable, FastValidator(_validator_of(nodes[v]))) for v in validators)
            ordered.append(Step(name, node.callable, values, checks))
        else:
            if tuple(inspect.signature(node.callable).parameters)[:len(inputs)] != inputs:
                raise ValueError(f"node {name}: parameters are not in input order, cannot call positionally")
            ordered.append(Step(name, node.callable, inputs))

    for output in outputs:
        visit(output)
    return ordered


def _validator_of(validation_node) -> Any:
    # Hamilton's validation node takes its validator as the keyword default `validator_to_call`.
    return inspect.signature(validation_node.callable).parameters["validator_to_call"].default


def _matrix_bounds() -> tuple[np.ndarray, np.ndarray] | None:
    """[low, high] per raw column (records_to_matrix order) when every raw rule is a closed range."""
    bounds = []
    for column in raw_schema.RAW_COLUMNS:
        checks = raw_schema.RAW_SCHEMA.columns[column.name].checks
        found = [range_bounds(check, np.dtype(column.dtype)) for check in checks]
        if len(found) != 1 or found[0] is None:
            return None
        bounds.append(found[0])
    return np.array([b.low for b in bounds]), np.array([b.high for b in bounds])


class FastPredictor(ConfigPredictor):
    """Same interface and same bits as online.ReferencePredictor."""

    def __init__(self, config: serving_config_pb2.ServingConfig):
        super().__init__(config)
        self.raw_checks = tuple((c.name, CompiledSchema.from_pandera(raw_schema.RAW_SCHEMA.columns[c.name]))
                                for c in raw_schema.RAW_COLUMNS)
        self.raw_bounds = _matrix_bounds()
        self.steps = plan((*features.MODEL_FEATURES, *features.GUARDS),
                          set(raw_schema.RAW_COLUMN_NAMES) | set(self.aggregates))
        # Checked outputs whose checks are all closed bounds are checked together, in one pass.
        self.bounded_steps = [s for s in self.steps if s.checks and all(
            c.validator.compiled.bounds() is not None for c in s.checks)]
        self.bounded = {s.name for s in self.bounded_steps}
        schemas = [(s.inputs[0], c.validator.compiled) for s in self.bounded_steps for c in s.checks]
        self.bounded_inputs = [name for name, _ in schemas]
        self.bounded_dtypes = [schema.dtype for _, schema in schemas]
        self.bounded_low = np.array([schema.bounds().low for _, schema in schemas])
        self.bounded_high = np.array([schema.bounds().high for _, schema in schemas])

    def predict(self, records: Sequence[raw_record_pb2.RawRecord]) -> Predictions:
        matrix, missing = converters.records_to_matrix(records)
        arrays = converters.matrix_to_arrays(matrix)
        if missing or not self._all_within_bounds(matrix):
            raise_if_invalid(missing, find_column_violations(self.raw_checks, arrays))
        values: dict[str, Any] = {**arrays, **self.aggregates}
        for step in self.steps:
            values[step.name] = values[step.inputs[0]] if step.name in self.bounded else step.run(values)
        if not self._outputs_within_bounds(values):
            for step in self.bounded_steps:  # Hamilton's check nodes raise at the first failing output
                step.run(values)
        matrix = np.column_stack([values[name] for name in features.MODEL_FEATURES]).astype(np.float64)
        return Predictions(matrix, predict_linear(self.intercept, self.coefficients, matrix))

    def _outputs_within_bounds(self, values: dict[str, Any]) -> bool:
        if not self.bounded_inputs:
            return True
        outputs = [values[name] for name in self.bounded_inputs]
        if [output.dtype for output in outputs] != self.bounded_dtypes:
            return False
        stacked = np.column_stack(outputs).astype(np.float64)  # int64 flags and counts are exact in float64
        return bool(((stacked >= self.bounded_low) & (stacked <= self.bounded_high)).all())

    def _all_within_bounds(self, matrix: np.ndarray) -> bool:
        """One vectorised test of every raw rule; False (also for NaN) sends the records through
        the per-column checks, which name each violation."""
        if self.raw_bounds is None:
            return False
        low, high = self.raw_bounds
        return bool(((matrix >= low) & (matrix <= high)).all())
