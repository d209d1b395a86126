"""Which data set a process works on: its raw table, its feature module and its typed contract.

The runtime (both engines, the output folder, parity, drift, the prediction log, the server, the
clients) names no column: it reads them from the active data set. A process works on one data set
at a time: the job on the one `--dataset` names, the server (and every process it starts) on the
one its config names, a Dask worker on the one its task names. Until a process activates another,
the active data set is absenteeism, the project's first.

A data set is a module that defines `DATA_SET = DataSet(...)`; the known ones are listed in KNOWN.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from absenteeism.raw_schema import RawTable

DEFAULT = "absenteeism"

# name -> the module that defines its DATA_SET (imported when first asked for).
KNOWN = {
    "absenteeism": "absenteeism.absenteeism_data_set",
    "penguins": "penguins.penguin_data_set",
}


class UnknownDataSet(ValueError):
    """A data set name that is not one of KNOWN."""


@dataclass(frozen=True, eq=False)  # compared and hashed by identity
class DataSet:
    name: str
    table: RawTable  # the raw record: fields, labels, CSV dialect
    table_module: ModuleType  # where the table is defined (its source is in the config's fingerprint)
    features: ModuleType  # the Hamilton feature module: features, aggregates, labels
    records: ModuleType  # the generated *_pb2 module with its RawRecord
    service: ModuleType  # the generated *_pb2 module with its PredictRequest, ... and PredictionService
    service_grpc: ModuleType  # the generated *_pb2_grpc module (add_PredictionServiceServicer_to_server)
    sample_input: Path  # the bundled sample the job reads when no --input is given

    @property
    def service_name(self) -> str:
        """The full name of its PredictionService, as reflection and health report it."""
        return self.service.DESCRIPTOR.services_by_name["PredictionService"].full_name

    def with_delimiter(self, delimiter: str) -> DataSet:
        """The same data set reading CSV files split at `delimiter` (the job's --delimiter)."""
        return replace(self, table=replace(self.table, dialect=replace(self.table.dialect, delimiter=delimiter)))


_loaded: dict[str, DataSet] = {}
_active: list[DataSet] = []  # [the active one], once a process activates or asks


def named(name: str) -> DataSet:
    """The data set called `name`; UnknownDataSet naming the known ones otherwise."""
    if name not in KNOWN:
        raise UnknownDataSet(f"unknown data set {name!r}: the known ones are {sorted(KNOWN)}")
    if name not in _loaded:
        _loaded[name] = importlib.import_module(KNOWN[name]).DATA_SET
    return _loaded[name]


def active() -> DataSet:
    """The data set this process works on."""
    if not _active:
        _active.append(named(DEFAULT))
    return _active[0]


def activate(data_set: str | DataSet) -> DataSet:
    """Makes `data_set` (a name or a DataSet) the one this process works on, and returns it."""
    chosen = named(data_set) if isinstance(data_set, str) else data_set
    _active[:] = [chosen]
    return chosen


def of_config_name(recorded: str) -> str:
    """The data set a config's `dataset` field names (empty in configs made before data sets)."""
    return recorded or DEFAULT
