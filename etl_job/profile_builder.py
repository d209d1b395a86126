"""Builds the training profile (absenteeism/profile_bins.py) in bounded memory, the same whatever the
chunk size:

1. extract + validate: a fixed-size sample of the accepted rows is kept, the rows with the smallest
   hash of their source row (a bottom-k sample: the same rows however the input is chunked);
2. after analyze: bin edges of the numeric raw inputs and features at the quantiles of the sample
   (its features computed with the aggregates injected, as everywhere); categorical entries take
   their categories from the raw schema and from the features' own checks (pandera `isin`);
3. transform: every accepted raw row is counted into its bins, chunk by chunk;
4. after the fit: the prediction's edges from the sample's predictions;
5. load: every row's features and prediction are counted as the training set is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from absenteeism import data_sets, dataflow, graph_introspection, profile_bins, raw_schema, served_model
from absenteeism.aggregates import AggregateValue
from absenteeism.v1 import serving_config_pb2
from etl_job.split import row_hash

SAMPLE_ROWS = 100_000  # rows the edges are placed on (~16 MB of raw values)
SAMPLE_SEED = 0x5A4D  # fixed: the same input always gives the same sample


class RowSample:
    """The `size` accepted rows with the smallest hash of (SAMPLE_SEED, source row), kept while the
    rows stream by: at most twice `size` rows are held, and once `size` are, a chunk's rows whose
    hash is above the largest kept one are not even copied. The rows are picked by source row alone,
    so the same rows are picked from a run's raw input (its raw columns, the default `columns`) and
    from its training set (the features: etl_job.source_run)."""

    def __init__(self, size: int | None = None, columns: Iterable[str] | None = None):
        self.size = SAMPLE_ROWS if size is None else size
        self.columns = list(data_sets.active().table.column_names if columns is None else columns)
        self._parts: list[pd.DataFrame] = []
        self._held = 0
        self._bound = np.iinfo(np.uint64).max  # a row hashed above it cannot be among the `size` smallest

    def add(self, accepted: pd.DataFrame) -> None:
        """accepted: typed raw rows, index = source row."""
        hashes = row_hash(accepted.index.to_numpy(), SAMPLE_SEED)
        keep = hashes <= self._bound
        if not keep.any():
            return
        part = accepted.loc[keep, self.columns]  # a copy: drops the chunk's block
        part.insert(len(part.columns), "_hash", hashes[keep])
        self._parts.append(part)
        self._held += len(part)
        if self._held > 2 * self.size:
            # The size-th smallest hash, from the hashes alone: no two source rows hash alike
            # (splitmix64 is a bijection), so this keeps exactly the rows `_smallest` would.
            hashes = np.concatenate([part["_hash"].to_numpy() for part in self._parts])
            self._bound = np.partition(hashes, self.size - 1)[self.size - 1]
            self._parts = [part[part["_hash"].to_numpy() <= self._bound] for part in self._parts]
            self._held = self.size

    def _smallest(self) -> pd.DataFrame:
        rows = pd.concat(self._parts)
        order = np.lexsort((rows.index.to_numpy(), rows["_hash"].to_numpy()))  # by hash, then source row
        return rows.iloc[order[: self.size]]

    def candidates(self) -> pd.DataFrame:
        """The rows of this stream that can be in the sample of a larger one (with their hash)."""
        return self._smallest() if self._parts else pd.DataFrame()

    @classmethod
    def merged(cls, candidates: Iterable[pd.DataFrame], size: int | None = None) -> RowSample:
        """The sample of a stream, from the `candidates` of its parts: the same rows as one
        RowSample over the whole stream holds."""
        sample = cls(size)
        sample._parts = [part for part in candidates if len(part)]
        return sample

    def rows(self) -> pd.DataFrame:
        """The sampled rows (`columns`), in source-row order."""
        if not self._parts:
            return pd.DataFrame(columns=self.columns)
        return self._smallest().drop(columns="_hash").sort_index()


@cache
def feature_categories() -> dict[str, tuple[float, ...]]:
    """Model features whose check allows a fixed list of values (pandera `isin`): those values."""
    return graph_introspection.check_categories(dataflow.feature_driver().graph.nodes, dataflow.model_features())


def raw_categories(column: raw_schema.RawColumn) -> tuple[float, ...] | None:
    """The categories of a raw input whose rule is a fixed list (a text category: its code)."""
    if column.dtype == "str":
        return tuple(float(k) for k in range(len(column.text_categories))) if column.text_categories else None
    if column.check is not None and column.check.name == "isin":
        statistics = column.check.statistics
        if statistics is None:
            raise ValueError(f"the isin check of raw column {column.name} has no statistics (allowed_values)")
        return tuple(sorted(float(v) for v in statistics["allowed_values"]))
    return None


class ProfileBuilder:
    """Holds the entries while their counts are summed; `message()` once every row is counted."""

    def __init__(self, sample: pd.DataFrame, aggregates: dict[str, AggregateValue]):
        self.raw = [self._entry(c.name, profile_bins.RAW_INPUT, raw_categories(c), c.as_numbers(sample[c.name]))
                    for c in data_sets.active().table.columns if c.dtype != "str" or c.text_categories]  # not free text
        self._sample_features = dataflow.feature_matrix(dataflow.compute_features(sample, aggregates))
        categories = feature_categories()
        self.features = [self._entry(name, profile_bins.FEATURE, categories.get(name), self._sample_features[:, j])
                         for j, name in enumerate(dataflow.model_features())]
        self.outputs: list[profile_bins.Entry] = []  # placed with the model (place_outputs)
        self.rows = 0

    @classmethod
    def resumed(cls, profile: serving_config_pb2.TrainingProfile, sample_features: np.ndarray) -> ProfileBuilder:
        """A builder holding the raw inputs' and features' entries of an earlier run's profile, counts
        and all, for a new model over the same rows (etl_job.package_model): only its outputs are
        placed (on `sample_features`, the features of that run's sample rows) and counted."""
        entries = profile_bins.from_message(profile)
        builder = cls.__new__(cls)  # not __init__: the entries come counted, not from a sample of raw rows
        builder.raw = [entry for entry in entries if entry.source == profile_bins.RAW_INPUT]
        builder.features = [entry for entry in entries if entry.source == profile_bins.FEATURE]
        builder._sample_features = np.asarray(sample_features, dtype=np.float64)
        builder.outputs = []
        builder.rows = profile.row_count
        return builder

    @staticmethod
    def _entry(name: str, source: str, categories, sample_values) -> profile_bins.Entry:
        if categories is not None:
            return profile_bins.categorical_entry(name, source, categories)
        values = np.asarray(sample_values)
        if values.dtype.kind == "f":
            values = values[~np.isnan(values)]  # a missing value counts in the last bin; edges come from the others
        return profile_bins.numeric_entry(name, source, profile_bins.numeric_edges(values))

    def add_counts(self, raw: list[np.ndarray] | None = None, features: list[np.ndarray] | None = None,
                   outputs: list[np.ndarray] | None = None, rows: int = 0) -> None:
        """Counts of some rows (chunk_steps.transform_chunk and write_chunk count a chunk), added in."""
        if outputs is not None and not self.outputs:
            raise RuntimeError("the outputs' bins are not placed yet (place_outputs)")
        for entries, counts in ((self.raw, raw), (self.features, features), (self.outputs, outputs)):
            for entry, part in zip(entries, counts or (), strict=counts is not None):
                entry.counts[:] += part
        self.rows += rows

    def place_outputs(self, model: served_model.ServedModel) -> None:
        """The entries of the model's answers (served_model.output_names), their numeric edges from
        the sample's answers with the fitted model; a classifier's predicted class counted by class."""
        columns = served_model.output_columns(model.predict(self._sample_features))
        self.outputs = [profile_bins.numeric_entry(name, profile_bins.PREDICTION, profile_bins.numeric_edges(values))
                        for name, values in zip(served_model.output_names(model), columns, strict=True)]
        if model.is_classifier:
            self.outputs[0] = profile_bins.categorical_entry(
                served_model.PREDICTION, profile_bins.PREDICTION, tuple(float(i) for i in range(len(model.class_labels))))

    def message(self) -> serving_config_pb2.TrainingProfile:
        if not self.outputs:
            raise RuntimeError("the outputs' bins are not placed yet (place_outputs)")
        return profile_bins.to_message([*self.raw, *self.features, *self.outputs], self.rows)


def as_json(message: serving_config_pb2.TrainingProfile) -> dict:
    """For report.json: per entry its kind, bins and training counts."""
    entries = {}
    for entry in profile_bins.from_message(message):
        described: dict[str, Any] = {"source": entry.source, "kind": "numeric" if entry.numeric else "categorical"}
        described.update({"edges": entry.edges.tolist()} if entry.edges is not None
                         else {"categories": entry.category_values().tolist()})
        described["counts"] = dict(zip(entry.bin_labels(), entry.counts.tolist()))
        entries[entry.name] = described
    return {"row_count": message.row_count, "entries": entries}
