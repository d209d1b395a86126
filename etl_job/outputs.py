"""Load: the job's output files, written into the run's own folder (output_folder.py publishes them
all at once), each through a temp file, fsync and rename, so no file is ever seen half written.
The report names the config's content_sha256: a report that matches the config says the set is
complete.
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from absenteeism import config_io, dataflow, parity, served_model
from absenteeism.dataset import atomic, training_set_files
from absenteeism.dataset.blocks import table_blocks
from etl_job import report_page
from etl_job.validate import REJECT_COLUMNS

REJECTS_FILE = "rejects.csv"
TRAINING_SET_FILE = "training_set.parquet"
REPORT_FILE = "report.json"
REPORT_HTML_FILE = report_page.REPORT_HTML_FILE
PREDICTION_COLUMN = parity.PREDICTION
FILES = (REJECTS_FILE, TRAINING_SET_FILE, config_io.CONFIG_FILE, config_io.CONFIG_JSON_FILE, REPORT_HTML_FILE,
         REPORT_FILE)
# What a run must hold to be rolled back to or packaged: all but report.html, which is for people
# and which runs published before it existed lack (their link then dangles until a newer run).
REQUIRED_FILES = tuple(name for name in FILES if name != REPORT_HTML_FILE)


@contextlib.contextmanager
def rejects_writer(output_dir: Path) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Yields `append(frame)`: the rejects of each chunk go to the temp file as they come, after a
    header line written first (no rejected row still makes a valid CSV); the file is renamed into
    place (complete) when the block ends, and removed if it fails."""
    path = Path(output_dir) / REJECTS_FILE
    with atomic.atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as stream:
        csv.writer(stream, lineterminator="\n").writerow(REJECT_COLUMNS)

        def append(rejects: pd.DataFrame) -> None:
            if len(rejects):
                rejects.to_csv(stream, index=False, header=False)

        yield append


def write_rejects_part(path: Path, rejects: pd.DataFrame) -> None:
    """Reject lines without a header (one part of rejects.csv, see concatenate_rejects), atomically."""
    with atomic.atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as stream:
        rejects.to_csv(stream, index=False, header=False)


def concatenate_rejects(output_dir: Path, parts: list[Path]) -> None:
    """rejects.csv: the header line, then the parts' lines in order (bytes copied, not parsed)."""
    path = Path(output_dir) / REJECTS_FILE
    with atomic.atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as stream:
        csv.writer(stream, lineterminator="\n").writerow(REJECT_COLUMNS)
        stream.flush()
        for part in parts:
            with open(part, "rb") as source:
                shutil.copyfileobj(source, stream.buffer)


def has_rejected_rows(output_dir: Path) -> bool:
    """True when the folder's rejects.csv exists and holds a line below its header."""
    path = Path(output_dir) / REJECTS_FILE
    if not path.is_file():
        return False
    with open(path, encoding="utf-8") as stream:
        return stream.readline() != "" and stream.readline() != ""


def training_set_table(source_rows: np.ndarray, matrix: np.ndarray, label: str, labels: np.ndarray,
                       answered: served_model.ModelOutputs, held_out: np.ndarray,
                       class_labels: Sequence[str] = ()) -> pa.Table:
    """source_row, the features in model order (float64), the label (named after its node; a
    classifier's: the class index), the model's prediction, a classifier's probability of each class
    ("probability[<class label>]"), and which side of the split the row is on ("train" or "held_out")."""
    columns = {"source_row": pa.array(np.asarray(source_rows, dtype=np.int64))}
    for j, name in enumerate(dataflow.model_features()):
        columns[name] = pa.array(np.ascontiguousarray(matrix[:, j], dtype=np.float64))
    columns[label] = pa.array(labels if labels.dtype.kind == "f" else np.asarray(labels, dtype=np.int64))
    names = [PREDICTION_COLUMN, *map(served_model.probability_name, class_labels)]
    for name, values in zip(names, served_model.output_columns(answered), strict=True):
        columns[name] = pa.array(np.ascontiguousarray(values, dtype=np.float64))
    columns[training_set_files.SPLIT_COLUMN] = pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(held_out, dtype=np.int8)), pa.array(training_set_files.SPLIT_VALUES))
    return pa.table(columns)


def empty_training_set(label: str, label_dtype: np.dtype, class_labels: Sequence[str]) -> pa.Table:
    """A training set of no row, with the columns of one that has rows: a part file of no row holds it."""
    probabilities = np.empty((0, len(class_labels))) if class_labels else None
    return training_set_table(np.empty(0), np.empty((0, len(dataflow.model_features()))), label,
                              np.empty(0, dtype=label_dtype), served_model.ModelOutputs(np.empty(0), probabilities),
                              np.empty(0, dtype=bool), class_labels)


ROW_GROUP_ROWS = 1 << 18  # fixed, so the file's bytes do not depend on the job's chunk size


def part_file(folder: Path, part: int) -> Path:
    """A Parquet data set is a folder of part files (as Spark and Dask write one): their names sort
    in source-row order, so `pandas.read_parquet` of the folder reads one table in that order."""
    return Path(folder) / f"part-{part:05d}.parquet"


def training_set_part(output_dir: Path, part: int) -> Path:
    """The local engine writes one part of the training set, the Dask engine one per part of the input."""
    return part_file(Path(output_dir) / TRAINING_SET_FILE, part)


def make_output_folders(output_dir: Path) -> None:
    (Path(output_dir) / TRAINING_SET_FILE).mkdir(exist_ok=True)


@contextlib.contextmanager
def training_set_writer(output_dir: Path, empty: pa.Table, part: int = 0) -> Iterator[Callable[[pa.Table], None]]:
    """Yields `append(table)`: the `part`-th file of the training set (parquet_part_writer). The
    training set's folder must exist (make_output_folders)."""
    with parquet_part_writer(Path(output_dir) / TRAINING_SET_FILE, empty, part) as append:
        yield append


@contextlib.contextmanager
def parquet_part_writer(folder: Path, empty: pa.Table, part: int = 0) -> Iterator[Callable[[pa.Table], None]]:
    """Yields `append(table)`: chunks are written in row groups of ROW_GROUP_ROWS to a temp file,
    renamed into place as `folder`/part-NNNNN.parquet when the block ends (removed if it fails).
    A part of no row holds `empty`'s columns."""
    path = part_file(folder, part)
    groups = table_blocks(ROW_GROUP_ROWS)
    with atomic.atomic_path(path) as tmp:
        writer: list[pq.ParquetWriter] = []

        def write(tables) -> None:
            for table in tables:
                if not writer:
                    # No dictionary for source_row: every value differs, so Arrow would build one per
                    # page only to drop it (half the write's time at 1M rows); the other columns keep it.
                    dictionary = [name for name in table.column_names if name != "source_row"]
                    writer.append(pq.ParquetWriter(tmp, table.schema, use_dictionary=dictionary))
                writer[0].write_table(table.combine_chunks(), row_group_size=max(1, len(table)))  # pages as one run

        try:
            yield lambda table: write(groups.feed(table))
            write(groups.flush())
            if not writer:  # no row: still a Parquet file, with the columns of every other part (`empty`)
                write([empty])
        finally:
            if writer:
                writer[0].close()


def write_config(config, output_dir: Path) -> Path:
    """The config, and beside the training set's parts the id of the config they belong to."""
    folder = Path(output_dir) / TRAINING_SET_FILE
    schema = pq.read_schema(min(folder.glob("part-*.parquet")))
    training_set_files.write_identity(folder, schema, config.content_sha256)
    return config_io.write_config(config, Path(output_dir))


def write_report(report: dict, output_dir: Path) -> Path:
    """report.html, then report.json (last: a report naming the config marks a complete set)."""
    report_page.write(report, output_dir)
    path = Path(output_dir) / REPORT_FILE
    atomic.write_text(path, json.dumps(report, indent=2) + "\n")
    return path
