"""The seam every online path implements: records in, features and predictions out, invalid records
refused with every (record, field, rule) they break.

`ConfigPredictor` reads what every path needs from a ServingConfig; `predict_valid` is the one place
that splits a batch into the records that can be predicted and those that are refused (the
servicer's stream and the micro-batcher both use it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from absenteeism import aggregates as aggregates_module
from absenteeism import dataflow, raw_schema, served_model
from absenteeism.served_model import ModelOutputs
from absenteeism.v1 import serving_config_pb2
from absenteeism.violation_table import ViolationTable


class InvalidRecords(ValueError):
    """Records break the raw schema; `table` names each (record index, field, rule)."""

    def __init__(self, violations: ViolationTable | Iterable[raw_schema.Violation]):
        self.table = violations if isinstance(violations, ViolationTable) else ViolationTable.of(violations)
        shown = self.table.first(5)
        more = len(self.table) - len(shown)
        super().__init__("; ".join(f"record {v.row}: {v.describe()}" for v in shown)
                         + (f"; and {more} more" if more else ""))

    def __reduce__(self):
        # Rebuilt from its table: the default (the class called with the message) would pass the
        # message where a table belongs. The job's forked parity check sends it back this way.
        return type(self), (self.table,)

    @property
    def violations(self) -> list[raw_schema.Violation]:
        """Every violation as an object: for small batches (a stream's, a micro-batch's); large
        ones are read through `table`, whose cost stays bounded."""
        return list(self.table)


@dataclass(frozen=True)
class Predictions:
    features: np.ndarray  # rows x model features, float64, in model order
    predictions: np.ndarray  # rows, float64 (a classifier's: the predicted class's index)
    # The records' raw values (rows x request fields, float64: records_to_matrix's matrix, or
    # converters.numeric_view) when the path has them at hand; None otherwise. Monitoring reads them.
    raw: np.ndarray | None = None
    probabilities: np.ndarray | None = None  # a classifier's: rows x classes, float64

    @classmethod
    def of(cls, features: np.ndarray, answered: ModelOutputs, raw: np.ndarray | None = None) -> Predictions:
        return cls(features, answered.predictions, raw, answered.probabilities)

    def rows(self, start: int, stop: int) -> Predictions:
        raw = None if self.raw is None else self.raw[start:stop]
        probabilities = None if self.probabilities is None else self.probabilities[start:stop]
        return Predictions(self.features[start:stop], self.predictions[start:stop], raw, probabilities)


class Predictor(Protocol):
    feature_names: tuple[str, ...]

    def predict(self, records: Sequence[Any]) -> Predictions:
        """Raises InvalidRecords if any record breaks the raw schema."""


def raise_if_invalid(missing: ViolationTable, broken: ViolationTable) -> None:
    """Raises InvalidRecords for missing fields and broken rules (the 0 an unset field reads as is
    not judged again), sorted by record and field."""
    if len(missing) or len(broken):
        raise InvalidRecords(ViolationTable.merged(missing, broken))


class ConfigPredictor:
    """What every online path reads from the ServingConfig; subclasses implement `predict`."""

    def __init__(self, config: serving_config_pb2.ServingConfig):
        self.feature_names = tuple(config.feature_names)
        self.aggregates = aggregates_module.from_message(config.statistics, dataflow.aggregate_names())
        self.model = served_model.served_model(config)

    def predict(self, records: Sequence[Any]) -> Predictions:
        """Raises InvalidRecords if any record breaks the raw schema."""
        raise NotImplementedError


@dataclass(frozen=True)
class PartlyValid:
    """The predictions of the valid records (in order), and the violations of the others by position."""

    valid: list[int]
    result: Predictions | None  # None when no record is valid
    invalid: dict[int, list[raw_schema.Violation]]


def predict_valid(predictor: Predictor, records: Sequence[Any]) -> PartlyValid:
    """Predicts the records that are valid and reports the others; never raises InvalidRecords.

    Validation comes first in every path, so a refused batch costs its validation and nothing more
    before the valid records are predicted."""
    try:
        return PartlyValid(list(range(len(records))), predictor.predict(records), {})
    except InvalidRecords as error:
        invalid: dict[int, list[raw_schema.Violation]] = {}
        for violation in error.violations:
            invalid.setdefault(violation.row, []).append(violation)
    valid = [i for i in range(len(records)) if i not in invalid]
    return PartlyValid(valid, predictor.predict([records[i] for i in valid]) if valid else None, invalid)
