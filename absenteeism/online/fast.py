"""The fast online path: the same Hamilton graph and node callables, planned once at boot.

At boot the feature driver's graph is walked once from the model features (and guards) back to
the raw inputs, with the aggregates as overrides, into a topologically ordered list of steps.
Per request, each step calls its Hamilton node on small numpy arrays, with the keyword arguments
Hamilton itself would pass (positionally where that is the same call and cheaper): the functions
of the shared feature module compute, whatever modifier made their nodes, and Hamilton's own
check_output nodes decide what a failed check means. Only pandera validators are swapped for
compiled predicates (compiled_checks); any other validator runs as it is, on a Series. The raw
schema is compiled the same way. No per-request driver.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
from hamilton import node as hamilton_node
from hamilton.data_quality import base as dq_base

from absenteeism import data_sets, dataflow, graph_introspection
from absenteeism.compiled_checks import (
    Bounds,
    CompiledSchema,
    FastValidator,
    UnsupportedCheck,
    find_column_violations,
    range_bounds,
)
from absenteeism.online import converters
from absenteeism.online.predictor import ConfigPredictor, Predictions, raise_if_invalid
from absenteeism.v1 import serving_config_pb2


class UnplannableNode(ValueError):
    """A node of the feature module the fast path cannot run as Hamilton would: refused at boot."""


class SeriesValidator:
    """Any other Hamilton validator, run as it is on the value (numpy arrays as a Series)."""

    def __init__(self, original: dq_base.DataValidator):
        self.original = original
        self.importance = original.importance

    def name(self) -> str:
        return self.original.name()

    def validate(self, values: Any) -> dq_base.ValidationResult:
        return self.original.validate(pd.Series(values) if isinstance(values, np.ndarray) else values)

    def passes(self, values: Any) -> bool:
        return self.validate(values).passes

    def bounds(self) -> Bounds | None:
        return None


def _fast_validator(original: dq_base.DataValidator) -> FastValidator | SeriesValidator:
    try:
        return FastValidator(original)
    except (AttributeError, UnsupportedCheck, TypeError):  # not a pandera Series schema, or not compilable
        return SeriesValidator(original)


@dataclass(frozen=True)
class Check:
    """One of Hamilton's validator nodes of a checked function, with its validator swapped."""

    node: hamilton_node.Node  # Hamilton's validation node (takes validator_to_call= and the value)
    validator: FastValidator | SeriesValidator


@dataclass(frozen=True)
class Step:
    """Computes one node: a function of the module (`checks` empty), or a checked output whose
    value is its `_raw` node's, once every check passes."""

    name: str
    call: Callable[..., Any]  # the node's callable: the module's function, or Hamilton's final check node
    inputs: tuple[str, ...]  # for a checked output, the one raw node
    positional: bool = False  # the callable's leading parameters are `inputs`, in order
    checks: tuple[Check, ...] = ()

    def run(self, values: dict[str, Any]) -> Any:
        if not self.checks:
            if self.positional:
                return self.call(*[values[name] for name in self.inputs])
            return self.call(**{name: values[name] for name in self.inputs})
        raw = values[self.inputs[0]]
        if all(check.validator.passes(raw) for check in self.checks):
            return raw
        # A check failed: Hamilton's own nodes say what that means (importance "fail" raises).
        results = {c.node.name: c.node(validator_to_call=c.validator, **{self.inputs[0]: raw}) for c in self.checks}
        return self.call(**{self.inputs[0]: raw}, **results)

    def computation(self) -> Callable[[dict[str, Any]], Any]:
        """`run` as one callable of the values, in its cheapest form (the same call)."""
        if self.checks or not self.positional or not self.inputs:
            return self.run
        call, read = self.call, itemgetter(*self.inputs)
        if len(self.inputs) == 1:
            return lambda values: call(read(values))
        return lambda values: call(*read(values))


def plan(outputs: Sequence[str], given: set[str]) -> list[Step]:
    """Steps that compute `outputs` from the `given` values, in dependency order; raises
    UnplannableNode naming a node that needs a value that is not given."""
    nodes = dataflow.feature_driver().graph.nodes
    ordered: list[Step] = []
    seen: set[str] = set(given)

    def visit(name: str, needed_by: str) -> None:
        if name in seen:
            return
        node = nodes.get(name)
        if node is None or node.user_defined:
            raise UnplannableNode(f"node {needed_by} needs {name!r}, which is neither a raw record field nor an "
                                  "aggregate: the server cannot compute it from a request")
        seen.add(name)
        inputs = tuple(node.input_types)
        validators = graph_introspection.validator_inputs(nodes, name)
        values = tuple(i for i in inputs if i not in validators)
        for dependency in values:
            visit(dependency, name)
        if validators:
            if len(values) != 1:
                raise UnplannableNode(f"checked node {name} has inputs {values}: expected its one raw node")
            checks = tuple(Check(nodes[v], _fast_validator(graph_introspection.validator_of(nodes[v]))) for v in validators)
            ordered.append(Step(name, node.callable, values, checks=checks))
        else:
            ordered.append(Step(name, node.callable, inputs, positional=_takes_positionally(node.callable, inputs)))

    for output in outputs:
        visit(output, output)
    return ordered


def _takes_positionally(function: Callable[..., Any], inputs: tuple[str, ...]) -> bool:
    """True for a plain function whose parameters are exactly `inputs` in order (most module
    functions): a positional call is the same call and cheaper. Generated callables (@parameterize,
    @extract_columns, ...) take keywords."""
    parameters = list(inspect.signature(function).parameters.values())
    return (tuple(p.name for p in parameters) == inputs
            and all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters))


def _matrix_bounds() -> tuple[np.ndarray, np.ndarray] | None:
    """[low, high] per raw column (records_to_matrix order) when the records are read as a matrix
    and every raw rule is a closed range."""
    if not converters.reads_as_matrix():
        return None
    table = data_sets.active().table
    bounds = []
    for column in table.columns:
        checks = table.schema.columns[column.name].checks
        found = [range_bounds(check, np.dtype(column.dtype)) for check in checks]
        if len(found) != 1 or found[0] is None:
            return None
        bounds.append(found[0])
    return np.array([b.low for b in bounds]), np.array([b.high for b in bounds])


def _float64_rows(columns: list[Any], rows: int) -> np.ndarray | None:
    """The columns cast to float64 into one buffer, a row each (columns x rows), when every column is
    a 1-D numeric array of `rows` values (else None): one cast of each, cheaper than column_stack."""
    if all(isinstance(c, np.ndarray) and c.shape == (rows,) and c.dtype.kind in "biuf" for c in columns):
        return np.concatenate(columns, dtype=np.float64, casting="unsafe").reshape(len(columns), rows)
    return None


def float64_columns(columns: list[Any], rows: int) -> np.ndarray:
    """np.column_stack(columns).astype(np.float64): the same matrix (C order), cheaper."""
    stacked = _float64_rows(columns, rows)
    if stacked is None:
        return np.column_stack(columns).astype(np.float64)
    return np.ascontiguousarray(stacked.T)


def _closed_bounds(validator: FastValidator | SeriesValidator) -> tuple[FastValidator, Bounds]:
    """A validator of a bounded step (a compiled check whose meaning is closed bounds) and its bounds."""
    bounds = validator.bounds()
    if not isinstance(validator, FastValidator) or bounds is None:
        raise ValueError(f"validator {validator.name()} is not a compiled check with closed bounds")
    return validator, bounds


class FastPredictor(ConfigPredictor):
    """Same interface and same bits as reference.ReferencePredictor."""

    def __init__(self, config: serving_config_pb2.ServingConfig):
        super().__init__(config)
        table, module = data_sets.active().table, dataflow.feature_module()
        self.raw_checks = tuple((c.name, CompiledSchema.from_pandera(table.schema.columns[c.name], dates=c.dtype == "date"))
                                for c in table.columns)
        self.raw_bounds = _matrix_bounds()
        self.matrix_records = converters.reads_as_matrix()
        self.model_features = tuple(module.MODEL_FEATURES)
        self.steps = plan((*module.MODEL_FEATURES, *module.GUARDS), set(table.column_names) | set(self.aggregates))
        # Checked outputs whose checks are all closed bounds are checked together, in one pass.
        self.bounded_steps = [s for s in self.steps if s.checks and all(
            c.validator.bounds() is not None for c in s.checks)]
        self.bounded = {s.name for s in self.bounded_steps}
        bounded = [(s.inputs[0], *_closed_bounds(c.validator)) for s in self.bounded_steps for c in s.checks]
        self.bounded_inputs = [name for name, _, _ in bounded]
        self.bounded_dtypes = [validator.compiled.dtype for _, validator, _ in bounded]
        self.bounded_low = np.array([[bounds.low] for _, _, bounds in bounded])  # a row per output
        self.bounded_high = np.array([[bounds.high] for _, _, bounds in bounded])
        # Per call, a bounded step's value is its raw node's (read by name): its checks run together
        # after the steps.
        self.computations = [(s.name, itemgetter(s.inputs[0]) if s.name in self.bounded else s.computation())
                             for s in self.steps]
        # When every model feature is a bounded output, the model's matrix is made of their rows of
        # the bounds test (the same float64 casts, so the same bits).
        first_row = {name: k for k, name in reversed(list(enumerate(self.bounded_inputs)))}
        raw_of = {s.name: s.inputs[0] for s in self.bounded_steps}
        self.model_rows = (np.array([first_row[raw_of[name]] for name in self.model_features])
                           if all(name in raw_of for name in self.model_features) else None)

    def predict(self, records: Sequence[Any]) -> Predictions:
        if self.matrix_records:
            raw, missing = converters.records_to_matrix(records)
            arrays = converters.matrix_to_arrays(raw)
            if missing or not self._all_within_bounds(raw):
                raise_if_invalid(missing, find_column_violations(self.raw_checks, arrays))
        else:
            arrays, missing = converters.records_to_arrays(records)
            raise_if_invalid(missing, find_column_violations(self.raw_checks, arrays))
            raw = converters.numeric_view(arrays)
        values = self.computed(arrays)
        matrix = self.model_matrix(values, self.checked(values, len(raw)), len(raw))
        return Predictions.of(matrix, self.model.predict(matrix), raw)

    # The stages of predict after reading the records (bench/call_costs.py times each).

    def computed(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        """Every planned step's value from the raw columns and the aggregates."""
        values: dict[str, Any] = {**arrays, **self.aggregates}
        for name, compute in self.computations:
            values[name] = compute(values)
        return values

    def checked(self, values: dict[str, Any], rows: int) -> np.ndarray | None:
        """The bounded outputs' float64 rows when they all pass at once; otherwise Hamilton's check
        nodes judge them (and raise at the first failing output) and None."""
        checked = self._bounded_rows(values, rows)
        if checked is None:
            for step in self.bounded_steps:
                step.run(values)
        return checked

    def model_matrix(self, values: dict[str, Any], checked: np.ndarray | None, rows: int) -> np.ndarray:
        if checked is not None and self.model_rows is not None:
            return np.ascontiguousarray(checked[self.model_rows].T)
        return float64_columns([values[name] for name in self.model_features], rows)

    def _bounded_rows(self, values: dict[str, Any], rows: int) -> np.ndarray | None:
        """The bounded outputs cast to float64, a row each, when each is a plain array of its
        declared dtype and within its bounds; None sends them through Hamilton's check nodes."""
        if not self.bounded_inputs:
            return None
        outputs = [values[name] for name in self.bounded_inputs]
        if [output.dtype for output in outputs] != self.bounded_dtypes:
            return None
        stacked = _float64_rows(outputs, rows)  # int64 flags and counts are exact in float64
        if stacked is None or not ((stacked >= self.bounded_low) & (stacked <= self.bounded_high)).all():
            return None
        return stacked

    def _all_within_bounds(self, matrix: np.ndarray) -> bool:
        """One vectorised test of every raw rule; False (also for NaN) sends the records through
        the per-column checks, which name each violation."""
        if self.raw_bounds is None:
            return False
        low, high = self.raw_bounds
        return bool(((matrix >= low) & (matrix <= high)).all())
