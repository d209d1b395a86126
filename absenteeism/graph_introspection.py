"""Questions about a Hamilton graph, asked in one place: which nodes carry a stage tag, which
validator nodes check a node, which values a check allows. The fast online path plans with them,
the job's profile and the analyze step read them; none of them runs a node."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping

from hamilton import node as hamilton_node
from hamilton.data_quality import base as dq_base
from hamilton.function_modifiers import IS_DATA_VALIDATOR_TAG

Nodes = Mapping[str, hamilton_node.Node]


def stage_nodes(nodes: Nodes, stage: str) -> tuple[str, ...]:
    """The names of the nodes tagged `stage=<stage>`, sorted."""
    return tuple(sorted(name for name, node in nodes.items() if node.tags.get("stage") == stage))


def is_validator(node: hamilton_node.Node) -> bool:
    """True for a node Hamilton made to run one check of a @check_output."""
    return bool(node.tags.get(IS_DATA_VALIDATOR_TAG))


def validator_inputs(nodes: Nodes, name: str) -> tuple[str, ...]:
    """The validator nodes among the inputs of node `name` (none for an unchecked node)."""
    return tuple(i for i in nodes[name].input_types if is_validator(nodes[i]))


def validator_of(validation_node: hamilton_node.Node) -> dq_base.DataValidator:
    """The validator a validator node calls."""
    # Private to Hamilton: its validation node holds its validator as the keyword default
    # `validator_to_call` (hamilton/function_modifiers/validation.py); tests/absenteeism/test_fast_path.py fails
    # if that changes.
    return inspect.signature(validation_node.callable).parameters["validator_to_call"].default


def allowed_values(validator: dq_base.DataValidator) -> tuple[float, ...] | None:
    """The values a pandera `isin` check of `validator` allows, sorted; None for any other check."""
    found = None
    for check in getattr(getattr(validator, "schema", None), "checks", ()):
        if check.name == "isin":
            found = tuple(sorted(float(v) for v in check.statistics["allowed_values"]))
    return found


def check_categories(nodes: Nodes, outputs: Iterable[str]) -> dict[str, tuple[float, ...]]:
    """Outputs whose check allows a fixed list of values (pandera `isin`): those values."""
    found: dict[str, tuple[float, ...]] = {}
    for name in outputs:
        for validator_node in validator_inputs(nodes, name):
            values = allowed_values(validator_of(nodes[validator_node]))
            if values is not None:
                found[name] = values
    return found
