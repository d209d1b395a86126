"""The reference online path: a Hamilton driver run per call, with pandera checks, as the batch job
runs the feature module. It is the plain definition of what the server computes; faster paths must
give identical bits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from absenteeism import dataflow, violation_table
from absenteeism.online import converters
from absenteeism.online.predictor import ConfigPredictor, Predictions, raise_if_invalid


class ReferencePredictor(ConfigPredictor):
    def predict(self, records: Sequence[Any]) -> Predictions:
        """`records`: the active data set's RawRecords."""
        arrays, missing = converters.records_to_arrays(records)
        frame = pd.DataFrame(arrays)
        raise_if_invalid(missing, violation_table.find(frame))
        matrix = dataflow.feature_matrix(dataflow.compute_features(frame, self.aggregates))
        return Predictions.of(matrix, self.model.predict(matrix))
