"""The reference online path: raw records of one request -> features -> predictions.

Validates with the shared raw schema and runs the shared feature module through a Hamilton driver
per call, the aggregates coming from the ServingConfig. It is the straightforward definition of
what the server computes; faster paths must give identical bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from absenteeism import converters, dataflow, raw_schema
from absenteeism.model import predict_linear
from absenteeism.v1 import raw_record_pb2, serving_config_pb2


class InvalidRecords(ValueError):
    """Records break the raw schema; `violations` name each (record index, field, rule)."""

    def __init__(self, violations: Sequence[raw_schema.Violation]):
        self.violations = list(violations)
        super().__init__("; ".join(f"record {v.row}: {v.describe()}" for v in self.violations))


@dataclass(frozen=True)
class Predictions:
    features: np.ndarray  # rows x model features, float64, in model order
    predictions: np.ndarray  # rows, float64


def raise_if_invalid(missing: Sequence[raw_schema.Violation], broken: Sequence[raw_schema.Violation]) -> None:
    """Raises InvalidRecords for missing fields and broken rules (the 0 an unset field reads as is
    not judged again), sorted by record and field."""
    unset = {(v.row, v.column) for v in missing}
    violations = [*missing, *(v for v in broken if (v.row, v.column) not in unset)]
    if violations:
        raise InvalidRecords(sorted(violations, key=lambda v: (v.row, v.column)))


class ConfigPredictor:
    """What every online path reads from the ServingConfig; subclasses implement `predict`."""

    def __init__(self, config: serving_config_pb2.ServingConfig):
        self.feature_names = tuple(config.feature_names)
        self.aggregates = converters.statistics_from_message(config.statistics, dataflow.aggregate_names())
        self.intercept = config.model.intercept
        self.coefficients = tuple(config.model.coefficients)

    def predict(self, records: Sequence[raw_record_pb2.RawRecord]) -> Predictions:
        """Raises InvalidRecords if any record breaks the raw schema."""
        raise NotImplementedError

    def __call__(self, records: Sequence[raw_record_pb2.RawRecord]) -> tuple[np.ndarray, np.ndarray]:
        """The config_io.OnlinePath signature, for golden-row verification."""
        result = self.predict(records)
        return result.features, result.predictions


class ReferencePredictor(ConfigPredictor):
    """A Hamilton driver execution per call, with pandera checks, as the ETL job runs it."""

    def predict(self, records: Sequence[raw_record_pb2.RawRecord]) -> Predictions:
        frame, missing = converters.records_to_frame(records)
        raise_if_invalid(missing, raw_schema.find_violations(frame))
        matrix = dataflow.feature_matrix(dataflow.compute_features(frame, self.aggregates))
        return Predictions(matrix, predict_linear(self.intercept, self.coefficients, matrix))
