"""The batch job's run: an engine (engine.py) does extract + validate, analyze, transform + fit
and the write of the training set, in this process (local_engine.py) or on a Dask cluster
(dask_engine.py); the steps every engine shares are here:

- parity: sampled rows through the online path, one record at a time, in the background while
  the engine writes the training set, before anything else is written;
- config: the ServingConfig (statistics, model, features, provenance, evaluation, profile);
- report: report.html, then report.json, last (a report naming the config marks a complete set);
- publish: all written into the run's own folder, then published at once (output_folder.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from absenteeism import config_io, data_sets
from etl_job import (
    local_engine,
    online_parity,
    output_folder,
    outputs,
    report,
    serving_config,
)
from etl_job.engine import Engine
from etl_job.job_errors import BadData, unservable_answers
from etl_job.run_settings import RunSettings
from etl_job.step_progress import StepProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    report: dict
    outputs: dict[str, Path]


def run(settings: RunSettings) -> RunResult:
    """Runs the job into a run folder of its own and publishes it whole (output_folder.py); raises
    BadData for input that cannot make a config, leaving the output folder as it was (the rejects,
    if any, are kept aside and the message says where)."""
    data_sets.activate(settings.chosen_data_set())
    out = Path(settings.output_dir)
    with output_folder.RunFolder(out, outputs.FILES, history=settings.keep) as folder:
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


def engine_for(settings: RunSettings) -> Engine:
    if settings.engine == "dask":
        from etl_job import dask_engine  # only here: its import is a cost the local engine need not pay

        return dask_engine.DaskEngine(settings)
    return local_engine.LocalEngine(settings)


def _run(settings: RunSettings, work: Path, out: Path) -> RunResult:
    """The job's steps, writing into `work`; the paths recorded are where the files are published in `out`."""
    created_at = settings.created_at or datetime.now(UTC)
    steps = StepProgress(settings.progress)
    started = time.perf_counter()
    paths = {"rejects": out / outputs.REJECTS_FILE}
    try:
        with engine_for(settings) as engine, unservable_answers("the model's"):
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
                paths["report_html"] = out / outputs.REPORT_HTML_FILE
    finally:
        steps.close()
    timings = {**steps.timings, "total": time.perf_counter() - started}
    run_report = report.build(input_path=settings.source(), extracted=extracted, tally=tally,
                              max_reject_fraction=settings.max_reject_fraction, config=config,
                              timings=timings, created_at=created_at, outputs=paths)
    run_report["engine"] = settings.engine
    run_report["online_parity"] = parity_report.as_dict()
    outputs.write_report(run_report, work)  # last: a report naming this config marks a complete set
    return RunResult(run_report, paths)
