"""Parity on live traffic: every record of a prediction log (the server's --prediction-log) that was
served with a given config is recomputed through the batch path (the feature module run by a
Hamilton driver with the config's aggregates, then the model) and compared bit for bit with the
features, prediction and (a classifier's) class probabilities the server logged.

Used by `python -m clients parity --prediction-log DIR --config CONFIG`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from absenteeism import aggregates, config_io, data_sets, dataflow, parity, served_model
from absenteeism.dataset import prediction_log_files as log_format


@dataclass
class Replay:
    config_id: str
    files: dict[str, parity.ParityReport] = field(default_factory=dict)  # file name -> its comparison
    other_configs: Counter = field(default_factory=Counter)  # records logged under other configs (not compared)

    @property
    def total(self) -> parity.ParityReport:
        merged = parity.ParityReport(())
        for report in self.files.values():
            merged.merge(report)
        return merged

    @property
    def identical(self) -> bool:
        return bool(self.files) and all(report.identical for report in self.files.values())

    def summary(self) -> str:
        total = self.total
        lines = [f"config {self.config_id}: {total.rows_compared} logged records replayed through the batch path "
                 f"in {len(self.files)} file(s), {total.rows_identical} identical"
                 + ("" if self.identical else " (expected: the batch path; got: as logged; rows of each file from 0)")]
        lines += [f"skipped {count} records logged under config {other}" for other, count in self.other_configs.items()]
        for name, report in self.files.items():
            if not report.identical:
                lines.append(f"{name}: " + report.summary().replace("\n", f"\n{' ' * (len(name) + 2)}"))
        return "\n".join(lines)


def replay(folder: Path, config_path: Path) -> Replay:
    """Raises ValueError (bad usage/input) when the log holds no record of that config, and
    config_io.ConfigError when the config cannot be verified with this code."""
    config = config_io.read_config(config_path)
    data_sets.activate(data_sets.of_config_name(config.dataset))  # the log holds that data set's records
    config_io.verify_config(config)  # the same feature module and raw schema as the code replaying it
    values = aggregates.from_message(config.statistics, dataflow.aggregate_names())
    model = served_model.served_model(config)
    files = log_format.existing_files(folder)
    result = Replay(config.content_sha256)
    for path in files:
        table, feature_names = log_format.read_file(path)
        frame = table.to_pandas()
        mine = frame[log_format.CONFIG_ID] == config.content_sha256
        result.other_configs.update(frame.loc[~mine, log_format.CONFIG_ID].tolist())
        if mine.any():
            result.files[path.name] = _compare(frame.loc[mine], feature_names, config, values, model)
    if not result.files:
        raise ValueError(f"no record in {folder} was served with config {config.content_sha256} "
                         f"(records of configs {sorted(result.other_configs)})")
    return result


def _compare(logged, feature_names, config, values, model: served_model.ServedModel) -> parity.ParityReport:
    """Each row recomputed offline ("expected") vs as logged ("got"), named by its row in the file (from 0)."""
    table = data_sets.active().table
    # Logged as numbers (RawColumn.as_numbers): a text category as its code, free text not kept.
    raw = pd.DataFrame({c.name: c.from_numbers(logged[c.name].to_numpy()) for c in table.columns}, index=logged.index)
    rows = logged.index.to_numpy()
    violations = table.find_violations(raw)
    if violations:  # the batch path refuses such a record: the log does not hold what was served
        report = parity.ParityReport(tuple(config.feature_names), rows_compared=len(logged))
        report.problems.extend(f"row {v.row}: {v.describe()} (refused by the raw schema)" for v in violations[:5])
        report.rows_identical = len(logged) - len({v.row for v in violations})
        return report
    offline = dataflow.feature_matrix(dataflow.compute_features(raw, values))
    answered = model.predict(offline)
    online = logged.loc[:, list(feature_names)].to_numpy(dtype=np.float64)
    logged_probabilities = None
    if model.is_classifier:
        column = logged.get(log_format.PROBABILITIES)
        width = len(model.class_labels)
        if column is not None and all(len(row) == width for row in column):
            logged_probabilities = np.vstack(column.to_list()) if len(column) else np.empty((0, width))
    return parity.compare(rows, config.feature_names, offline, answered.predictions, feature_names, online,
                          logged[log_format.PREDICTION].to_numpy(dtype=np.float64), class_labels=model.class_labels,
                          expected_probabilities=answered.probabilities, got_probabilities=logged_probabilities)
