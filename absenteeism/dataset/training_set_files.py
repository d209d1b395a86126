"""What names the config a training set belongs to: `_common_metadata` in the training set's folder
(the Parquet data set convention, a footer with no rows that readers of the folder skip), whose
key-value metadata holds the config's id. It is written once the config is sealed (its id covers
what the training set's writing measured), with the config, before the run is published."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from absenteeism.dataset import atomic

IDENTITY_FILE = "_common_metadata"
CONFIG_ID_KEY = b"absenteeism.config_id"
SPLIT_COLUMN = "split"
SPLIT_VALUES = ("train", "held_out")  # the dictionary of the split column, in this order


def write_identity(folder: Path, schema: pa.Schema, config_id: str) -> Path:
    path = Path(folder) / IDENTITY_FILE
    with atomic.atomic_path(path) as tmp:
        pq.write_metadata(schema.with_metadata({CONFIG_ID_KEY: config_id.encode()}), tmp)
    return path


def config_id_of(folder: Path) -> str | None:
    """The id of the config the training set at `folder` belongs to; None for one written before
    training sets carried it (or a single Parquet file, which has no folder)."""
    path = Path(folder) / IDENTITY_FILE
    if not path.is_file():
        return None
    found = (pq.read_schema(path).metadata or {}).get(CONFIG_ID_KEY)
    return found.decode() if found is not None else None
