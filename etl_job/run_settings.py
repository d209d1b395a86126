"""What a run of the job is asked to do, in one object every engine reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from absenteeism import data_sets
from absenteeism.dataset import partitions
from absenteeism.dataset import reader as input_reader
from etl_job import online_parity, output_folder, training

SAMPLE_INPUT = data_sets.named(data_sets.DEFAULT).sample_input  # the default data set's bundled sample
DEFAULT_OUTPUT_DIR = Path("build")
DEFAULT_MAX_REJECT_FRACTION = 0.05


@dataclass(frozen=True)
class DaskSettings:
    scheduler: str | None = None  # tcp://HOST:PORT of a running cluster; None: a LocalCluster of our own
    workers: int = 2  # worker processes of our own LocalCluster
    connect_timeout: float = 10.0  # seconds to reach the scheduler
    part_bytes: int = partitions.DEFAULT_PART_BYTES  # input bytes per part (a task); outputs do not depend on it


@dataclass(frozen=True)
class RunSettings:
    input_path: Path | None = None  # None: the data set's bundled sample (see `source`)
    output_dir: Path = DEFAULT_OUTPUT_DIR
    max_reject_fraction: float = DEFAULT_MAX_REJECT_FRACTION
    fit: training.FitSettings = field(default_factory=training.FitSettings)
    parity_rows: int = online_parity.DEFAULT_ROWS  # rows checked through the single-record online path
    progress: bool = False
    created_at: datetime | None = None  # None: now (UTC)
    chunk_rows: int = input_reader.DEFAULT_CHUNK_ROWS  # rows per chunk; outputs do not depend on it
    engine: str = "local"  # "local" (this process: local_engine.py) or "dask" (a cluster: dask_engine.py)
    dask: DaskSettings = field(default_factory=DaskSettings)
    data_set: str = data_sets.DEFAULT  # the data set the input holds (data_sets.KNOWN)
    delimiter: str | None = None  # its CSV files' delimiter, when not the data set's own
    keep: int = output_folder.DEFAULT_KEEP  # published runs kept in the output folder (>= 1), for `runs rollback`

    def source(self) -> Path:
        """The input: `input_path`, or the data set's bundled sample."""
        return data_sets.named(self.data_set).sample_input if self.input_path is None else Path(self.input_path)

    def chosen_data_set(self) -> data_sets.DataSet:
        """The data set this run works on, with --delimiter applied."""
        chosen = data_sets.named(self.data_set)
        return chosen if self.delimiter is None else chosen.with_delimiter(self.delimiter)
