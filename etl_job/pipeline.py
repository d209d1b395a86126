"""The batch job. Two engines do steps 1-3 and the write of step 5: the local one below, in this
process, and the Dask one (dask_engine.py), on a cluster; both hand the same results to the steps
they share (parity, config, report, publish), so their outputs are the same bit for bit.

The local engine streams in chunks so memory stays bounded by the chunk size:

1. extract + validate (one read of the input): each chunk is parsed and checked; its rejects go
   to rejects.csv as they come, its accepted typed rows to a temp Arrow spill, and the columns
   the aggregates read (age) are kept;
2. analyze: the aggregate nodes of the feature module over all accepted rows; the training
   profile's bin edges from a fixed-size sample of them (profile.py);
3. transform + fit: the spill chunk by chunk through the feature module with the aggregates
   injected; ridge sufficient statistics; compact features kept for the write; raw inputs profiled;
4. parity: sampled rows through the online path, one record at a time, before anything else is written;
5. load: the training set with predictions (held-out metrics computed on the way, features and
   predictions profiled), the config, the report;
   all written into the run's own folder, then published at once (output_folder.py).

Each step is timed (report.json) and logged; with progress on, a bar walks through the steps and
another through the chunks of the long ones.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from hamilton.data_quality.base import DataValidationError
from tqdm import tqdm

from absenteeism import config_io
from absenteeism.dataset import partitions
from absenteeism.dataset import reader as input_reader
from absenteeism.dataset.read_ahead import read_ahead
from etl_job import online_parity, output_folder, outputs, report, serving_config, training
from etl_job import profile_builder
from etl_job import validate as validate_step
from etl_job.job_errors import BadData
from etl_job.ridge import HeldOutErrors
from etl_job.spill import Spill

log = logging.getLogger(__name__)

SAMPLE_INPUT = Path(__file__).parent / "sample_data" / "absenteeism_sample.csv"
DEFAULT_OUTPUT_DIR = Path("build")
DEFAULT_MAX_REJECT_FRACTION = 0.05
STEPS = ("extract_validate", "analyze", "transform_fit", "load", "parity", "write_config")


@dataclass(frozen=True)
class RunSettings:
    input_path: Path = SAMPLE_INPUT
    output_dir: Path = DEFAULT_OUTPUT_DIR
    max_reject_fraction: float = DEFAULT_MAX_REJECT_FRACTION
    fit: training.FitSettings = field(default_factory=training.FitSettings)
    parity_rows: int = online_parity.DEFAULT_ROWS  # rows checked through the single-record online path
    progress: bool = False
    created_at: datetime | None = None  # None: now (UTC)
    chunk_rows: int = input_reader.DEFAULT_CHUNK_ROWS  # rows per chunk; outputs do not depend on it
    engine: str = "local"  # "local" (this process) or "dask" (a cluster: dask_engine.py)
    dask: DaskSettings = field(default_factory=lambda: DaskSettings())


@dataclass(frozen=True)
class DaskSettings:
    scheduler: str | None = None  # tcp://HOST:PORT of a running cluster; None: a LocalCluster of our own
    workers: int = 2  # worker processes of our own LocalCluster
    connect_timeout: float = 10.0  # seconds to reach the scheduler
    part_bytes: int = partitions.DEFAULT_PART_BYTES  # input bytes per part (a task); outputs do not depend on it


@dataclass(frozen=True)
class RunResult:
    report: dict
    outputs: dict[str, Path]


class _Steps:
    """Times each step, logs it, and advances the progress bar."""

    def __init__(self, progress: bool):
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._bar = tqdm(total=len(STEPS), desc="etl", unit="step", disable=not progress)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._bar.set_description(f"etl: {name}")
        log.info("%s ...", name)
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start
        log.info("%s done in %.3f s (peak RSS so far %.0f MiB)", name, self.timings[name],
                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        self._bar.update(1)

    def rows(self, chunks: Iterable, desc: str, total: int | None = None, size: Callable = len) -> Iterator:
        """`chunks`, with a bar counting their rows (`size(chunk)` each)."""
        with tqdm(total=total, desc=desc, unit="row", unit_scale=True, leave=False,
                  disable=not self.progress) as bar:
            for chunk in chunks:
                yield chunk
                bar.update(size(chunk))

    def close(self) -> None:
        self._bar.close()


def run(settings: RunSettings) -> RunResult:
    """Runs the job into a run folder of its own and publishes it whole (output_folder.py); raises
    BadData for input that cannot make a config, leaving the output folder as it was (the rejects,
    if any, are kept aside and the message says where)."""
    out = Path(settings.output_dir)
    with output_folder.RunFolder(out, outputs.FILES) as folder:
        try:
            result = _run(settings, folder.path, out)
        except BadData as error:
            if not outputs.has_rejected_rows(folder.path):
                raise
            rejects = folder.keep(outputs.REJECTS_FILE)
            raise BadData(f"{error}; each rejected row of this run, with its column and rule, is in {rejects} "
                          f"({out} is left as it was)") from None
        folder.publish()
    return result


@dataclass
class Trained:
    """What an engine hands the shared steps: the input's counts and provenance, the fitted model
    with the rows of the parity check, the profile (its output counts still to come)."""

    tally: validate_step.Tally
    extracted: input_reader.Extracted
    fitted: training.Fitted
    profiler: profile_builder.ProfileBuilder


class LocalEngine:
    """The job in this process: one read of the input into a spill, then chunk by chunk."""

    def __init__(self, settings: RunSettings):
        self.settings = settings

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def fit(self, work: Path, steps: _Steps) -> Trained:
        settings = self.settings
        with Spill() as spill:
            with steps.step("extract_validate"):
                reader = input_reader.Reader(settings.input_path, settings.chunk_rows)
                sample = profile_builder.RowSample()
                tally, analyze_inputs = _extract_validate(reader, spill, work, steps, sample)
                extracted = reader.extracted()
                _log_tally(tally)
                validate_step.check_threshold(tally, settings.max_reject_fraction)
            with steps.step("analyze"):
                aggregates = _bad_data(training.analyze, analyze_inputs)
                del analyze_inputs
                profiler = _bad_data(profile_builder.ProfileBuilder, sample.rows(), aggregates)
                del sample
            with steps.step("transform_fit"):
                parity_positions = online_parity.sample_positions(spill.rows, settings.parity_rows)
                chunks = steps.rows(profiler.count_raw(spill.chunks()), "transform", spill.rows)
                fitted = _bad_data(training.train, chunks, aggregates=aggregates, settings=settings.fit,
                                   parity_positions=parity_positions)
                profiler.place_prediction(fitted.predict)
        return Trained(tally, extracted, fitted, profiler)

    def write_training_set(self, work: Path, trained: Trained, steps: _Steps) -> dict[str, float]:
        """The training set with predictions; returns the held-out metrics (features and
        predictions profiled on the way)."""
        fitted = trained.fitted
        errors = HeldOutErrors(fitted.baseline)
        outputs.make_output_folders(work)
        with outputs.training_set_writer(work) as append:
            for rows in steps.rows(fitted.training_rows(), "write", fitted.rows):
                errors.add(rows.labels[rows.held_out].astype(np.float64), rows.predictions[rows.held_out])
                trained.profiler.count_outputs(rows.columns, rows.predictions)
                append(outputs.training_set_table(rows.source_rows, rows.features, rows.labels, rows.predictions))
        return errors.metrics()


def _log_tally(tally: validate_step.Tally) -> None:
    log.info("rows read %d, accepted %d, rejected %d (%d violations)", tally.rows_read,
             tally.rows_accepted, tally.rejected_rows, tally.violations)


def _engine(settings: RunSettings):
    if settings.engine == "dask":
        from etl_job import dask_engine  # Dask loads only for a run that uses it

        return dask_engine.DaskEngine(settings)
    return LocalEngine(settings)


def _run(settings: RunSettings, work: Path, out: Path) -> RunResult:
    """The job's steps, writing into `work`; the paths recorded are where the files are published in `out`."""
    created_at = settings.created_at or datetime.now(timezone.utc)
    steps = _Steps(settings.progress)
    started = time.perf_counter()
    paths = {"rejects": out / outputs.REJECTS_FILE}
    try:
        with _engine(settings) as engine:
            trained = engine.fit(work, steps)
            tally, extracted, fitted, profiler = trained.tally, trained.extracted, trained.fitted, trained.profiler
            provenance = serving_config.Provenance(
                input_sha256=extracted.input_sha256, input_files=[f.path.name for f in extracted.files],
                rows_read=tally.rows_read, rows_rejected=tally.rejected_rows, created_at=created_at)
            # Statistics, model and features are all the online path reads; metrics come with the write.
            unevaluated = serving_config.build(fitted, provenance)
            with online_parity.Background(unevaluated, fitted.parity_raw, fitted.parity_features,
                                          fitted.predict(fitted.parity_features), settings.parity_rows) as check:
                with steps.step("load"):  # the training set is written (unpublished) while the check runs
                    metrics = engine.write_training_set(work, trained, steps)
                with steps.step("parity"):
                    parity_report = check.result()
            log.info("online parity: %s", parity_report.summary())
            online_parity.require_identical(parity_report)
            with steps.step("write_config"):
                paths["training_set"] = out / outputs.TRAINING_SET_FILE
                config = serving_config.with_evaluation(unevaluated, fitted, metrics, profiler.message())
                outputs.write_config(config, work)
                paths["config"] = out / config_io.CONFIG_FILE
                paths["config_json"] = out / config_io.CONFIG_JSON_FILE
                paths["report"] = out / outputs.REPORT_FILE
    finally:
        steps.close()
    timings = {**steps.timings, "total": time.perf_counter() - started}
    run_report = report.build(input_path=Path(settings.input_path), extracted=extracted, tally=tally,
                              max_reject_fraction=settings.max_reject_fraction, config=config,
                              timings=timings, created_at=created_at, outputs=paths)
    run_report["engine"] = settings.engine
    run_report["online_parity"] = parity_report.as_dict()
    outputs.write_report(run_report, work)  # last: a report naming this config marks a complete set
    return RunResult(run_report, paths)


def _extract_validate(reader: input_reader.Reader, spill: Spill, work: Path, steps: _Steps,
                      sample: profile_builder.RowSample) -> tuple[validate_step.Tally, pd.DataFrame]:
    """Pass 1: every chunk parsed and validated; rejects written, accepted rows spilled, the
    aggregates' inputs collected (a column or two of small integers), the profile's sample kept."""
    tally = validate_step.Tally()
    analyze_inputs = training.AnalyzeInputs()
    with outputs.rejects_writer(work) as append_rejects:
        # Arrow parses the next chunks in a thread (it releases the GIL) while this one is checked.
        for chunk in steps.rows(read_ahead(reader.chunks()), "read+validate", size=lambda chunk: len(chunk.rows)):
            validation = validate_step.validate_chunk(chunk.rows)
            tally.add(validation, chunk.file.name)
            append_rejects(validate_step.rejects_frame(validation.violations, chunk.file.name))
            spill.append(validation.accepted)
            sample.add(validation.accepted)
            analyze_inputs.add(validation.accepted)
    spill.finish()
    return tally, analyze_inputs.frame()

def _bad_data(function, *args, **kwargs):
    """Data that cannot train a model is bad data (exit 3), not an internal error: too few rows, or
    accepted rows whose features break a check of the feature module (say, every row the same age)."""
    try:
        return function(*args, **kwargs)
    except training.TrainingError as error:
        raise BadData(str(error)) from None
    except DataValidationError as error:
        raise BadData(f"the accepted rows break a check of the feature module: {error}") from None
