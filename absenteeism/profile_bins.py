"""The training profile: how each monitored value (every raw input, every model feature, the
prediction) was distributed over the accepted training rows, in bins that the batch job and the
server count into the same way. The job builds it (etl_job/profile_builder.py) and ships it in
ServingConfig.profile; the server counts its traffic into the same bins (feature_service/monitoring/drift_window.py).

Two kinds of entry:
- numeric: fixed edges e[0] < ... < e[k] (quantiles of the training values) and k + 2 bins:
  below e[0], [e[i-1], e[i]) for each i, the last one closed at e[k], above e[k];
- categorical: a fixed list of category values, one bin each, and one bin for any other value.
Values are compared as float64, as the model reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from absenteeism.v1 import serving_config_pb2

RAW_INPUT, FEATURE, PREDICTION = "raw_input", "feature", "prediction"
SOURCES = (RAW_INPUT, FEATURE, PREDICTION)
QUANTILE_BINS = 10  # numeric entries: edges at the deciles of the training values


class ProfileError(ValueError):
    """A profile message that does not describe bins (names the entry)."""


def numeric_edges(values: np.ndarray, bins: int = QUANTILE_BINS) -> np.ndarray:
    """Ascending edges at the quantiles 0, 1/bins, ..., 1 of `values` (each a value of `values`,
    not an interpolation: ages stay whole years; duplicates dropped); [v, v] when every value is v."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no values to place bin edges on")
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1), method="lower"))
    return np.repeat(edges, 2) if edges.size == 1 else edges


@dataclass(frozen=True)
class Entry:
    """One monitored value: its bins and its training counts (one per bin)."""

    name: str
    source: str  # RAW_INPUT, FEATURE or PREDICTION
    edges: np.ndarray | None  # numeric: ascending bin edges
    categories: np.ndarray | None  # categorical: ascending category values
    counts: np.ndarray  # training counts, int64, one per bin

    @property
    def numeric(self) -> bool:
        return self.edges is not None

    @property
    def bins(self) -> int:
        return len(self.edges) + 1 if self.edges is not None else len(self.category_values()) + 1

    def category_values(self) -> np.ndarray:
        """`categories` of a categorical entry (an entry has either edges or categories)."""
        if self.categories is None:
            raise ProfileError(f"training profile entry {self.name!r} has neither edges nor categories")
        return self.categories

    def bin_of(self, values: np.ndarray) -> np.ndarray:
        """The bin of each value (int64 positions into `counts`)."""
        values = np.asarray(values, dtype=np.float64)
        if self.edges is not None:
            positions = np.searchsorted(self.edges, values, side="right")
            positions[values == self.edges[-1]] = len(self.edges) - 1  # the last bin is closed
            return positions
        categories = self.category_values()
        positions = np.searchsorted(categories, values, side="left")
        known = categories[np.minimum(positions, len(categories) - 1)] == values
        return np.where(known, positions, len(categories))  # the last bin: any other value

    def count(self, values: np.ndarray) -> np.ndarray:
        """How many of `values` fall in each bin."""
        values = np.asarray(values)
        tally = _whole_number_tally(values)
        if tally is not None:  # each distinct value placed once, not each row: the same counts, cheaper
            lowest, per_value = tally
            placed = self.bin_of(np.arange(lowest, lowest + len(per_value), dtype=np.float64))
            return np.bincount(placed, weights=per_value, minlength=self.bins).astype(np.int64)
        return np.bincount(self.bin_of(values), minlength=self.bins).astype(np.int64)

    def bin_labels(self) -> list[str]:
        """A readable name per bin, for reports."""
        if self.edges is not None:
            e = [f"{v:.6g}" for v in self.edges]
            middle = [f"[{e[i - 1]}, {e[i]})" for i in range(1, len(e) - 1)] + [f"[{e[-2]}, {e[-1]}]"]
            return [f"< {e[0]}", *middle, f"> {e[-1]}"]
        return [f"{v:g}" for v in self.category_values()] + ["other"]


_TALLY_MIN_VALUES = 1024  # below it, placing every value is as cheap
_TALLY_MAX_SPAN = 1 << 16  # whole numbers spread wider are placed one by one
_EXACT = 2.0 ** 53  # whole numbers float64 holds exactly


def _whole_number_tally(values: np.ndarray) -> tuple[int, np.ndarray] | None:
    """(lowest, how many values equal lowest + i for each i) when `values` are whole numbers of a
    narrow span (counters, flags, categories, ages: most monitored values), else None."""
    if values.size < _TALLY_MIN_VALUES or values.dtype.kind not in "iuf":
        return None
    lowest, highest = values.min().item(), values.max().item()
    if not (abs(lowest) < _EXACT and abs(highest) < _EXACT) or highest - lowest > _TALLY_MAX_SPAN:
        return None  # also NaN, which compares false
    if values.dtype.kind == "f":
        whole = values.astype(np.int64)
        if not np.array_equal(whole, values):
            return None
        values = whole
    lowest = int(lowest)
    return lowest, np.bincount(values.astype(np.int64, copy=False) - lowest).astype(np.float64)


def numeric_entry(name: str, source: str, edges: np.ndarray) -> Entry:
    edges = np.asarray(edges, dtype=np.float64)
    return Entry(name, source, edges, None, np.zeros(len(edges) + 1, dtype=np.int64))


def categorical_entry(name: str, source: str, categories) -> Entry:
    categories = np.unique(np.asarray(categories, dtype=np.float64))
    return Entry(name, source, None, categories, np.zeros(len(categories) + 1, dtype=np.int64))


def to_message(entries: list[Entry], row_count: int) -> serving_config_pb2.TrainingProfile:
    profile = serving_config_pb2.TrainingProfile(row_count=row_count)
    for entry in entries:
        message = profile.entries.add(name=entry.name, source=entry.source)
        if entry.edges is not None:
            message.numeric.edges.extend(entry.edges.tolist())
            message.numeric.counts.extend(entry.counts.tolist())
        else:
            message.categorical.values.extend(entry.category_values().tolist())
            message.categorical.counts.extend(entry.counts[:-1].tolist())
            message.categorical.other_count = int(entry.counts[-1])
    return profile


def from_message(profile: serving_config_pb2.TrainingProfile) -> list[Entry]:
    """The entries of a profile message; raises ProfileError naming an entry that is not well formed."""
    entries: list[Entry] = []
    for message in profile.entries:
        kind = message.WhichOneof("kind")
        if kind == "numeric":
            edges = np.array(message.numeric.edges, dtype=np.float64)
            counts = np.array(message.numeric.counts, dtype=np.int64)
            well_formed = (edges.size >= 2 and np.isfinite(edges).all() and counts.size == edges.size + 1
                           and (np.all(np.diff(edges) > 0) or (edges.size == 2 and edges[0] == edges[1])))
            entry = Entry(message.name, message.source, edges, None, counts)
        elif kind == "categorical":
            categories = np.array(message.categorical.values, dtype=np.float64)
            counts = np.array([*message.categorical.counts, message.categorical.other_count], dtype=np.int64)
            well_formed = (categories.size >= 1 and np.isfinite(categories).all()
                           and counts.size == categories.size + 1 and np.all(np.diff(categories) > 0))
            entry = Entry(message.name, message.source, None, categories, counts)
        else:
            well_formed, entry = False, None
        if (entry is None or not well_formed or message.source not in SOURCES
                or int(entry.counts.sum()) != profile.row_count):
            raise ProfileError(f"training profile entry {message.name!r} is not well formed (bins, counts "
                               f"summing to the {profile.row_count} rows profiled, source one of {SOURCES})")
        entries.append(entry)
    return entries
