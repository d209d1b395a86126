"""The Dask worker plugin that makes a run's data set the one its workers work on (data_sets is
per process): registered before any task, it runs on every worker, also on one that joins later.
Two runs on one cluster at once must use the same data set."""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from absenteeism import data_sets


class ActivateDataSet(WorkerPlugin):
    name = "etl_job-data-set"  # registering again replaces it: a cluster works on one run's data set

    def __init__(self, data_set: str, delimiter: str | None):
        self.data_set = data_set
        self.delimiter = delimiter

    def setup(self, worker: Any) -> None:
        chosen = data_sets.named(self.data_set)
        data_sets.activate(chosen if self.delimiter is None else chosen.with_delimiter(self.delimiter))
