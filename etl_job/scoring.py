"""python -m etl_job score: a config's raw schema, feature module and model over a file or a folder
of files, without a server, giving the server's bits for every row.

The config is verified first exactly as a server verifies it at boot (feature_service's
verified_predictor: this code's feature module and raw schema, its golden rows reproduced bit for
bit), its data set made this process's. The input is then scored chunk by chunk, in bounded
memory, on this process or a Dask cluster (score_steps.py has the one body both call); rows
that a server would refuse are quarantined in rejects.csv with their reasons. The outputs are
published all at once into the output folder as a job's run is (output_folder.py):

    predictions.parquet/part-*.parquet  source_row, [features], prediction, [probability[<class>]]
    rejects.csv                          one line per broken rule of a quarantined row
    score_report.json                    the config, the input, the counts and rejects (as report.json
                                         words them), the timings (last)
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from absenteeism import config_io, data_sets
from absenteeism.dataset import atomic, partitions
from absenteeism.dataset import reader as input_reader
from absenteeism.dataset.read_ahead import read_ahead
from absenteeism.v1 import serving_config_pb2
from etl_job import output_folder, outputs, score_steps, validate
from etl_job import report as run_report
from etl_job.engine import log_tally
from etl_job.run_settings import DaskSettings, RunSettings
from etl_job.step_progress import StepProgress

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.parquet"
REPORT_FILE = "score_report.json"
FILES = (PREDICTIONS_FILE, outputs.REJECTS_FILE, REPORT_FILE)
DEFAULT_KEEP = 1  # a scoring's predictions are as large as its input: keep only the published one


@dataclass(frozen=True)
class ScoreSettings:
    config_path: Path
    input_path: Path
    output_dir: Path
    with_features: bool = False  # the feature columns beside the predictions (--features)
    chunk_rows: int = input_reader.DEFAULT_CHUNK_ROWS  # rows per chunk; outputs do not depend on it
    engine: str = "local"  # "local" (this process) or "dask" (the parts of the input as Dask tasks)
    dask: DaskSettings = field(default_factory=DaskSettings)
    delimiter: str | None = None  # the input's CSV delimiter, when not the data set's own
    keep: int = DEFAULT_KEEP  # published scorings kept in the output folder (>= 1)
    progress: bool = False


def verified_config(settings: ScoreSettings) -> serving_config_pb2.ServingConfig:
    """The config, once it passes the server's boot checks; its data set made this process's.
    Raises config_io.ConfigError naming the file and the reason."""
    from feature_service.verified_config import verified_predictor  # the server's own check

    config = config_io.read_config(settings.config_path)
    try:
        chosen = data_sets.named(data_sets.of_config_name(config.dataset))
    except data_sets.UnknownDataSet as error:
        raise config_io.ConfigError(f"config file {settings.config_path}: {error}: this release cannot score it") from None
    data_sets.activate(chosen if settings.delimiter is None else chosen.with_delimiter(settings.delimiter))
    try:
        verified_predictor(config, "fast")
    except config_io.ConfigError as error:
        raise config_io.ConfigError(f"config file {settings.config_path}: {error}") from None
    return config


def score(settings: ScoreSettings) -> dict:
    """Scores the input into a folder of its own and publishes it whole; returns the report.
    Raises ConfigError for a config a server would refuse, InputFormatError for an unreadable
    input; the output folder is then left as it was."""
    created_at = datetime.now(UTC)
    started = time.perf_counter()
    steps = StepProgress(settings.progress)
    try:
        with steps.step("verify_config"):
            config = verified_config(settings)
            model = score_steps.scoring_model(config, settings.with_features)
        out = Path(settings.output_dir)
        with output_folder.RunFolder(out, FILES, history=settings.keep) as folder:
            (folder.path / PREDICTIONS_FILE).mkdir()
            with steps.step("score"):
                if settings.engine == "dask":
                    tally, extracted = _score_on_dask(settings, model, folder.path, steps)
                else:
                    tally, extracted = _score_here(settings, model, folder.path, steps)
            log_tally(tally)
            report = {
                "created_at": created_at.isoformat(),
                "config": {"path": str(settings.config_path), "config_id": config.content_sha256,
                           "dataset": data_sets.active().name, "label": config.label,
                           "model": config.onnx_model.kind if config.HasField("onnx_model") else config.model.kind},
                "input": run_report.input_summary(settings.input_path, extracted),
                "rows": {"read": tally.rows_read, "scored": tally.rows_accepted, "rejected": tally.rejected_rows},
                "rejects": run_report.reject_summary(tally),
                "features": settings.with_features,
                "engine": settings.engine,
                "outputs": {name: str(out / name) for name in FILES},
                "timings_seconds": {**{step: round(seconds, 4) for step, seconds in steps.timings.items()},
                                    "total": round(time.perf_counter() - started, 4)},
            }
            atomic.write_text(folder.path / REPORT_FILE, json.dumps(report, indent=2) + "\n")
            folder.publish()
    finally:
        steps.close()
    return report


def _score_here(settings: ScoreSettings, model: score_steps.ScoringModel, work: Path,
                steps: StepProgress) -> tuple[validate.Tally, input_reader.Extracted]:
    tally = validate.Tally()
    reader = input_reader.Reader(settings.input_path, settings.chunk_rows, require_label=False)
    with outputs.rejects_writer(work) as append_rejects, \
            outputs.parquet_part_writer(work / PREDICTIONS_FILE, model.empty_table()) as append:
        # Arrow parses the next chunks in a thread (it releases the GIL) while this one is scored.
        for chunk in steps.rows(read_ahead(reader.chunks()), "score", size=lambda chunk: len(chunk.rows)):
            scored = score_steps.score_chunk(chunk.rows, model)
            append(scored.table)
            append_rejects(validate.rejects_frame(scored.validation.violations, chunk.file.name))
            tally.add(scored.validation, chunk.file.name)
    return tally, reader.extracted()


def _score_on_dask(settings: ScoreSettings, model: score_steps.ScoringModel, work: Path,
                   steps: StepProgress) -> tuple[validate.Tally, input_reader.Extracted]:
    """Each part of the input scored by a worker (its rows numbered within the part), then, with
    the rows before each part known, placed: its predictions' part file and its rejects written."""
    from etl_job import dask_engine

    cluster = RunSettings(data_set=data_sets.active().name, delimiter=settings.delimiter, dask=settings.dask)
    work = work.resolve()  # as the workers reach it
    scratch, reject_parts = work / score_steps.SCORED, work / score_steps.SCORED / "rejects"
    reject_parts.mkdir(parents=True)
    try:
        with dask_engine.DaskEngine(cluster) as engine:
            client = engine.client
            parts = partitions.plan(settings.input_path, settings.dask.part_bytes, require_label=False)
            files = list(dict.fromkeys(part.path for part in parts))
            digest = client.submit(input_reader.input_sha256, files, pure=False)
            shared = client.scatter(model, broadcast=True)  # an ONNX graph is sent once
            scored = client.map(score_steps.score_part, parts, work=work, chunk_rows=settings.chunk_rows,
                                model=shared, pure=False)
            tallies = dask_engine.gather(steps, client.map(score_steps.tally_of, scored), "score")
            rows = [part_tally.rows_read for part_tally in tallies]
            offsets = np.concatenate([[0], np.cumsum(rows)]).astype(int)
            placed = [client.submit(score_steps.place_part, part, int(offset), work, shared, PREDICTIONS_FILE,
                                    reject_parts, pure=False) for part, offset in zip(scored, offsets)]
            rejects = dask_engine.gather(steps, placed, "place")
            outputs.concatenate_rejects(work, [path for path in rejects if path is not None])
            tally = validate.Tally()
            for part_tally in tallies:  # in part order: the examples are the local engine's
                tally.merge(part_tally)
            extracted = input_reader.Extracted(dask_engine.source_files(parts, rows), digest.result())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return tally, extracted

