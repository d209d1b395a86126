"""The batch job: extract -> validate -> analyze/transform/fit (training.train) -> load.

Each step is timed (report.json) and logged; with progress on, a bar walks through the steps.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from absenteeism import config_io, dataflow
from etl_job import extract as extract_step
from etl_job import online_parity, outputs, report, training
from etl_job import validate as validate_step
from etl_job.errors import BadData

log = logging.getLogger(__name__)

SAMPLE_INPUT = Path(__file__).parent / "sample_data" / "absenteeism_sample.csv"
DEFAULT_OUTPUT_DIR = Path("build")
DEFAULT_MAX_REJECT_FRACTION = 0.05
STEPS = ("extract", "validate", "train", "parity", "load")


@dataclass(frozen=True)
class RunSettings:
    input_path: Path = SAMPLE_INPUT
    output_dir: Path = DEFAULT_OUTPUT_DIR
    max_reject_fraction: float = DEFAULT_MAX_REJECT_FRACTION
    fit: training.FitSettings = field(default_factory=training.FitSettings)
    parity_rows: int = online_parity.DEFAULT_ROWS  # rows checked through the single-record online path
    progress: bool = False
    created_at: datetime | None = None  # None: now (UTC)


@dataclass(frozen=True)
class RunResult:
    report: dict
    outputs: dict[str, Path]


class _Steps:
    """Times each step, logs it, and advances the progress bar."""

    def __init__(self, progress: bool):
        self.timings: dict[str, float] = {}
        self._bar = tqdm(total=len(STEPS), desc="etl", unit="step", disable=not progress)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._bar.set_description(f"etl: {name}")
        log.info("%s ...", name)
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start
        log.info("%s done in %.3f s", name, self.timings[name])
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def run(settings: RunSettings) -> RunResult:
    """Runs the job; raises BadData for input that cannot make a config (rejects.csv is still written)."""
    created_at = settings.created_at or datetime.now(timezone.utc)
    out = Path(settings.output_dir)
    steps = _Steps(settings.progress)
    started = time.perf_counter()
    try:
        with steps.step("extract"):
            extracted = extract_step.extract(settings.input_path, progress=settings.progress)
        with steps.step("validate"):
            validation = validate_step.validate(extracted.cells)
            extracted = extracted.without_cells()
            rejects = validate_step.rejects_frame(validation.violations, extracted.file_names)
            log.info("rows read %d, accepted %d, rejected %d (%d violations)", validation.rows_read,
                     len(validation.accepted), validation.rejected_rows, len(validation.violations))
            paths = {"rejects": outputs.write_rejects(rejects, out)}
            validate_step.check_threshold(validation, settings.max_reject_fraction)
        with steps.step("train"):
            try:
                result = training.train(
                    validation.accepted, settings=settings.fit, input_sha256=extracted.input_sha256,
                    input_files=[f.path.name for f in extracted.files], rows_read=validation.rows_read,
                    rows_rejected=validation.rejected_rows, created_at=created_at)
            except training.TrainingError as error:
                raise BadData(str(error)) from None
            table = outputs.training_set_table(validation.accepted, dataflow.feature_matrix(result.features),
                                               result.predictions)
        with steps.step("parity"):
            parity_report = online_parity.check(result.config, validation.accepted, result.features,
                                                result.predictions, settings.parity_rows)
            log.info("online parity: %s", parity_report.summary())
            online_parity.require_identical(parity_report)
        with steps.step("load"):
            paths["training_set"] = outputs.write_training_set(table, out)
            paths["config"] = outputs.write_config(result.config, out)
            paths["config_json"] = out / config_io.CONFIG_JSON_FILE
            paths["report"] = out / outputs.REPORT_FILE
    finally:
        steps.close()
    timings = {**steps.timings, "total": time.perf_counter() - started}
    run_report = report.build(input_path=Path(settings.input_path), extracted=extracted, validation=validation,
                              max_reject_fraction=settings.max_reject_fraction, config=result.config,
                              timings=timings, created_at=created_at, outputs=paths)
    run_report["online_parity"] = parity_report.as_dict()
    outputs.write_report(run_report, out)  # last: a report naming this config marks a complete set
    return RunResult(run_report, paths)
