"""Extract: the input's cells as strings, one frame over one file or a folder of files.

Rows are numbered 1.. across the files in sorted path order (the source row of rejects.csv and of
training_set.parquet); each file's first and last row are kept so a row can be traced to its file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from absenteeism import dataset_format
from etl_job.errors import BadData

log = logging.getLogger(__name__)

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceFile:
    path: Path
    first_row: int  # source row number of its first data row
    rows: int


@dataclass(frozen=True)
class Extracted:
    cells: pd.DataFrame  # strings (missing where empty), snake_case columns, index = source row (1-based)
    files: tuple[SourceFile, ...]
    input_sha256: str  # over the files' bytes in sorted path order

    @property
    def rows_read(self) -> int:
        return sum(f.rows for f in self.files)

    def without_cells(self) -> Extracted:
        """The same provenance without the cells, so they can be freed once validated (GBs at 10M rows)."""
        return dataclasses.replace(self, cells=self.cells.iloc[:0])

    def file_names(self, rows: np.ndarray) -> np.ndarray:
        """The base name of the file each source row came from."""
        starts = np.array([f.first_row for f in self.files])
        names = np.array([f.path.name for f in self.files], dtype=object)
        return names[np.searchsorted(starts, np.asarray(rows, dtype=np.int64), side="right") - 1]


def extract(path: Path, progress: bool = False) -> Extracted:
    """Reads every input file; raises BadData when a file is missing, unreadable or lacks columns."""
    try:
        paths = dataset_format.input_files(Path(path))
    except dataset_format.InputFormatError as error:
        raise BadData(str(error)) from None
    digest = hashlib.sha256()
    frames, files, next_row = [], [], 1
    for file in tqdm(paths, desc="extract", unit="file", disable=not progress or len(paths) < 2, leave=False):
        _hash_into(digest, file)
        frame = _read(file)
        frame.index = pd.RangeIndex(next_row, next_row + len(frame))
        files.append(SourceFile(file, next_row, len(frame)))
        frames.append(frame)
        next_row += len(frame)
        log.info("read %s: %d rows", file, len(frame))
    cells = frames[0] if len(frames) == 1 else pd.concat(frames)
    return Extracted(cells, tuple(files), digest.hexdigest())


def _read(file: Path) -> pd.DataFrame:
    try:
        return dataset_format.read_file(file, require_label=True)
    except dataset_format.InputFormatError as error:
        raise BadData(str(error)) from None
    except (OSError, UnicodeDecodeError, ValueError, pa.ArrowException) as error:
        # Parser errors (ragged lines, binary junk, a corrupt Parquet footer) are ValueErrors or Arrow's.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        first_line = first_line.encode("ascii", "backslashreplace").decode()  # binary junk stays printable
        raise BadData(f"{file.name}: cannot be read as the data set's format: {first_line}") from None


def _hash_into(digest, file: Path) -> None:
    try:
        with open(file, "rb") as stream:
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError as error:
        raise BadData(f"{file}: cannot be read: {error.strerror}") from None
