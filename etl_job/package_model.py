"""`python -m etl_job package-model`: a model trained elsewhere, as an ONNX graph, served on the
features of a run.

A data scientist trains a model in a notebook on RUN_DIR/training_set.parquet (the rows whose
`split` is "train"; the features are the columns config.feature_names, in that order; the label is
the column named config.label, a classifier's as class indices 0..K-1) and exports it to ONNX. This
command makes from that run and that graph a new output folder, as whole as one `run` writes:

- serving_config.pb: the run's feature list, aggregates, label, provenance of its input (digest,
  files, row counts) and training profile of raw inputs and features, with the graph as
  `onnx_model` (kind "package-model"). Features and aggregates are copied, never recomputed, so
  the server computes exactly the features the model was trained on;
- training_set.parquet: the run's rows with the graph's predictions (and class probabilities),
  computed by the serving runtime (served_model.OnnxServedModel: one ONNX Runtime thread), the run's
  training set streamed in chunks, so memory stays bounded whatever its size;
- recomputed with the graph: the held-out evaluation (the run's split; a regressor against the
  training rows' mean label, a classifier against their class shares), the golden rows, the
  profile's output entries (placed on the run's own sample rows, which profile_builder.RowSample
  picks by source row alone, and counted over every row); report.json (with "packaged_from", the
  run's config id and the graph's sha256); rejects.csv copied from the run.
It is published as `run` publishes (output_folder.RunFolder): any refusal leaves --output-dir as it was.

Refusals, one line each: exit 3 for a run folder that cannot be used (a file missing, a config this
code does not verify, a training set of another config: training_set_files.config_id_of, or one
edited since: its row count, order, split or features counted into the profile; an input that is
not the run's); exit 2 for a graph that cannot be served (onnx_checks.check_model: operator
domains, external data, size cap, input [rows, features] of float or double; ZipMap outputs, which
are not tensors: convert with zipmap=False; probabilities with another number of columns than the
label has classes; a NaN or an infinity for some row; answers that differ for a record sent alone;
golden rows the server would not reproduce at boot). Every check that needs no output runs before
--output-dir is touched.

The run (its folder, training set, classes and input: etl_job.source_run) and the graph (what the
command infers and checks about it: etl_job.packaged_graph) each have their module; this one runs
the command and writes the new run.

The parity rows: raw records, from the run's input read again. The run folder keeps no raw input,
so the command reads the run's input (--input; by default the path the run's report names),
refuses it unless its sha256 is the config's provenance.input_sha256, and sends the rows `run`
checks (online_parity.sample_positions over the accepted rows: all of them up to --parity-rows)
one record at a time through FastPredictor, the server's path, against the packaged training set.
Golden rows and a sample of the training set's feature vectors would be cheaper but prove less:
feature vectors through the model prove that a row alone gets the bits it gets in a batch, not
that a record reaches those features in this process (the online planner, the converters and the
libraries may have changed since the run; the config's code fingerprint covers the feature module
and the raw schema only); golden records take that path but are synthetic, with no training-set
row to compare with. The run's own records prove both, for this config, as `run` proves it for its.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from absenteeism import aggregates, config_io, dataflow, parity, served_model
from absenteeism.dataset import atomic, training_set_files
from absenteeism.dataset import reader as input_reader
from absenteeism.online.fast import FastPredictor
from absenteeism.v1 import serving_config_pb2
from etl_job import (
    chunk_steps,
    golden,
    online_parity,
    output_folder,
    outputs,
    packaged_graph,
    profile_builder,
    report,
    run_settings,
    serving_config,
    source_run,
    training,
)
from etl_job.engine import HeldOutEvaluation
from etl_job.job_errors import BadData, ModelError
from etl_job.pipeline import RunResult
from etl_job.step_progress import StepProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackageSettings:
    run_dir: Path  # the output folder of the run the model was trained on
    onnx_path: Path
    output_dir: Path
    input_path: Path | None = None  # the run's raw input; None: the path the run's report names
    task: str | None = None  # a key of training.TASKS; None: the label node's task
    input_name: str | None = None  # None: the graph's one input
    prediction_output: str | None = None  # None: found from the graph's outputs
    probability_output: str | None = None
    parity_rows: int = online_parity.DEFAULT_ROWS
    chunk_rows: int = input_reader.DEFAULT_CHUNK_ROWS  # rows read at a time; never changes the outputs
    progress: bool = False
    created_at: datetime | None = None  # None: now (UTC)


# -- the parity check's verdict -------------------------------------------------------------------

def require_parity(parity_report: parity.ParityReport) -> None:
    """Nothing is published unless every parity row got the training set's bits online. Answers
    that differ while the features agree are the graph's: it answers a record alone otherwise than
    in a batch, which the server's one-record calls would show (exit 2). Features that differ are
    not the graph's doing: the training set is not what this code makes of the run's input (exit 3)."""
    if parity_report.identical:
        return
    names = set(parity_report.mismatch_counts)
    outputs_only = all(name == served_model.PREDICTION or name.startswith("probability[") for name in names)
    if outputs_only and not parity_report.problems:
        raise ModelError("the graph answers records sent one at a time with other bits than the same rows in a "
                         f"batch, so the server would not reproduce the training set: {parity_line(parity_report)}")
    raise BadData("the online path computes other features for the run's input than its training set holds: "
                  f"{parity_line(parity_report)}")


def parity_line(parity_report: parity.ParityReport) -> str:
    """The parity report on one line: its counts, its problems, the first mismatch of each column."""
    parts = [f"{parity_report.rows_identical} of {parity_report.rows_compared} rows identical", *parity_report.problems]
    for name, count in sorted(parity_report.mismatch_counts.items(), key=lambda item: -item[1]):
        worst = parity_report.worst[name][0]
        parts.append(f"{name} differs in {count} rows, e.g. source row {worst.source_row}: "
                     f"{worst.expected!r} in the training set, {worst.got!r} online")
    return "; ".join(parts)


def one_line(text: str) -> str:
    """`text` on one line: every refusal is one line."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


# -- the job --------------------------------------------------------------------------------------

def package(settings: PackageSettings) -> RunResult:
    """Checks the run, its input and the graph, then writes the new run's files into a run folder of
    its own in --output-dir and publishes it whole (as pipeline.run). A refusal before the write
    leaves --output-dir untouched; one during it (an answer for some row, parity) as it was."""
    steps = StepProgress(settings.progress)
    started = time.perf_counter()
    out = Path(settings.output_dir)
    try:
        prepared = prepare(settings, steps)
        with output_folder.RunFolder(out, outputs.FILES) as folder:
            config, metrics, parity_report = write_outputs(prepared, folder.path, steps)
            paths = {name: out / file for name, file in (
                ("rejects", outputs.REJECTS_FILE), ("training_set", outputs.TRAINING_SET_FILE),
                ("config", config_io.CONFIG_FILE), ("config_json", config_io.CONFIG_JSON_FILE),
                ("report", outputs.REPORT_FILE), ("report_html", outputs.REPORT_HTML_FILE))}
            run_report = package_report(prepared, config, parity_report, paths,
                                        {**steps.timings, "total": time.perf_counter() - started})
            outputs.write_report(run_report, folder.path)  # last: a report naming this config marks a complete set
            folder.publish()
    finally:
        steps.close()
    log.info("packaged %s onto the features of run %s (config %s): %s", settings.onnx_path, prepared.run.path,
             prepared.run.config_id, metrics)
    return RunResult(run_report, paths)


@dataclass(frozen=True)
class Prepared:
    """Everything checked, before anything is written: the run, the graph as the job's fitted
    model, the config without its evaluation (golden rows computed), the parity rows' records."""

    settings: PackageSettings
    run: source_run.SourceRun
    scanned: source_run.Scanned
    fitted: training.Fitted
    unevaluated: serving_config_pb2.ServingConfig
    input_path: Path
    records: source_run.InputRead
    created_at: datetime


def prepare(settings: PackageSettings, steps: StepProgress) -> Prepared:
    created_at = settings.created_at or datetime.now(UTC)
    with steps.step("check_run"):
        run = source_run.read_run(settings.run_dir)
        graph = packaged_graph.read_graph(settings.onnx_path)
        task = packaged_graph.task_of(run.config.label, settings.task)
    with steps.step("scan"):
        positions = online_parity.sample_positions(run.accepted_rows, settings.parity_rows)
        scanned = source_run.scan(run, positions, task in served_model.CLASSIFIERS, settings.chunk_rows)
        classes = source_run.classes_of(run, scanned) if task in served_model.CLASSIFIERS else None
        onnx = packaged_graph.model_message(
            graph, onnx_file=settings.onnx_path, task=task, class_labels=classes.labels if classes else [],
            run_config=run.config, input_name=settings.input_name, prediction_output=settings.prediction_output,
            probability_output=settings.probability_output)
    with steps.step("extract_validate"):
        input_path = source_run.input_path_of(run, settings.input_path)
        records = source_run.read_parity_records(input_path, run, scanned.parity_source_rows, settings.chunk_rows,
                                                 steps)
    fitted = packaged_model(run, onnx, scanned, classes, records.parity_raw)
    with packaged_graph.model_errors():
        packaged_graph.check_answers(fitted.served, golden_features(fitted), run.config.label)
        unevaluated = serving_config.build(fitted, provenance_of(run, created_at))  # the golden rows' answers
    require_same_features(run.config, unevaluated)
    return Prepared(settings, run, scanned, fitted, unevaluated, input_path, records, created_at)


def provenance_of(run: source_run.SourceRun, created_at: datetime) -> serving_config.Provenance:
    """The run's input (digest, files, row counts): the rows are the run's, only the model is new."""
    source = run.config.provenance
    return serving_config.Provenance(
        input_sha256=source.input_sha256, input_files=list(source.input_files), rows_read=source.rows.read,
        rows_rejected=source.rows.rejected, created_at=created_at)


def packaged_model(run: source_run.SourceRun, onnx: serving_config_pb2.OnnxModel, scanned: source_run.Scanned,
                   classes: source_run.Classes | None, parity_raw: pd.DataFrame) -> training.Fitted:
    """The graph as the job's own fitted model: the run's aggregates, split and rows, so that every
    step after the fit (config, golden rows, write, evaluation, parity) is the job's own code."""
    config = run.config
    fit = training.FitSettings(label=config.label, test_fraction=config.evaluation.test_fraction,
                               seed=config.evaluation.split_seed, model=packaged_graph.KIND)
    return training.Fitted(
        aggregates=aggregates.from_message(config.statistics, dataflow.aggregate_names()), settings=fit,
        train_rows=scanned.train_rows, test_rows=scanned.test_rows,
        baseline=scanned.label_mean, parity_raw=parity_raw,
        parity_features=scanned.parity_features, rows=run.accepted_rows, onnx=onnx,
        classes=classes.values if classes else None, class_shares=classes.shares if classes else None)


def golden_features(fitted: training.Fitted) -> np.ndarray:
    """The golden records' features: rows every config answers, whatever its training set."""
    return dataflow.feature_matrix(dataflow.compute_features(golden.golden_frame(), dict(fitted.aggregates)))


def write_outputs(prepared: Prepared, work: Path, steps: StepProgress):
    """The config, training set and rejects into `work`, as pipeline._run writes them: the training
    set while the parity check runs in the background, the config only once it passed."""
    run, fitted = prepared.run, prepared.fitted
    profiler = profile_builder.ProfileBuilder.resumed(run.config.profile, prepared.scanned.sample_features)
    with packaged_graph.model_errors():
        profiler.place_outputs(fitted.served)
        with online_parity.Background(prepared.unevaluated, fitted.parity_raw, fitted.parity_features,
                                      fitted.predict(fitted.parity_features), prepared.settings.parity_rows) as check:
            with steps.step("load"):
                metrics = write_training_set(run, fitted, profiler, work, prepared.settings.chunk_rows, steps)
            with steps.step("parity"):
                try:
                    parity_report = check.result()
                except online_parity.ParityError as error:  # rows the online path refuses: not the graph's doing
                    raise BadData(f"the run's input is not what its training set was made of: "
                                  f"{one_line(str(error))}") from None
    log.info("online parity: %s", parity_report.summary())
    require_parity(parity_report)
    with steps.step("write_config"):
        config = serving_config.with_evaluation(prepared.unevaluated, fitted, metrics, profiler.message())
        require_boots(config)
        outputs.write_config(config, work)
        with atomic.atomic_path(work / outputs.REJECTS_FILE) as tmp:
            shutil.copyfile(run.folder / outputs.REJECTS_FILE, tmp)
    return config, metrics, parity_report


def package_report(prepared: Prepared, config: serving_config_pb2.ServingConfig, parity_report, paths: dict[str, Path],
                   timings: dict[str, float]) -> dict:
    """report.json as `run` writes it (the input read again gives its counts), and where the model came from."""
    run, settings, records = prepared.run, prepared.settings, prepared.records
    run_report = report.build(
        input_path=prepared.input_path, extracted=records.extracted, tally=records.tally,
        max_reject_fraction=run.report.get("rows", {}).get("max_reject_fraction",
                                                           run_settings.DEFAULT_MAX_REJECT_FRACTION),
        config=config, timings=timings, created_at=prepared.created_at, outputs=paths)
    run_report["packaged_from"] = {"run": str(run.path), "config_id": run.config_id,
                                   "onnx_file": str(settings.onnx_path),
                                   "onnx_sha256": hashlib.sha256(prepared.unevaluated.onnx_model.graph).hexdigest()}
    run_report["online_parity"] = parity_report.as_dict()
    return run_report


def require_same_features(source: serving_config_pb2.ServingConfig, packaged: serving_config_pb2.ServingConfig) -> None:
    """The promise that packaging never changes features or aggregates, kept by a check, not by trust."""
    if list(packaged.feature_names) != list(source.feature_names) or packaged.statistics != source.statistics \
            or packaged.label != source.label:
        raise RuntimeError("the packaged config's features, aggregates or label differ from the run's")


def require_boots(config: serving_config_pb2.ServingConfig) -> None:
    """The config as the server boots it: verified, and its golden rows reproduced by FastPredictor."""
    try:
        config_io.verify_config(config, FastPredictor(config))
    except config_io.ConfigError as error:
        raise ModelError(f"the packaged config would not boot: {error}") from None


def write_training_set(run: source_run.SourceRun, fitted: training.Fitted, profiler: profile_builder.ProfileBuilder,
                       work: Path, chunk_rows: int, steps: StepProgress) -> dict[str, float]:
    """The training set's rows again, with the graph's answers (chunk_steps.write_chunk, as every
    engine writes them); the held-out metrics. The features are counted again too and must give the
    run's profile: a training set that is not what the run wrote is refused."""
    names, label = list(run.config.feature_names), run.config.label
    model = chunk_steps.write_model(fitted)
    evaluation = HeldOutEvaluation(fitted)
    feature_counts = [np.zeros_like(entry.counts) for entry in profiler.features]
    outputs.make_output_folders(work)
    columns = ["source_row", *names, label, training_set_files.SPLIT_COLUMN]
    with outputs.training_set_writer(work, model.empty_table()) as append:
        batches = source_run.training_set_batches(run, columns, chunk_rows)
        for batch in steps.rows(batches, "write", run.accepted_rows):
            rows = chunk_steps.CompactRows(batch.column("source_row").to_numpy(),
                                           [batch.column(name).to_numpy() for name in names],
                                           batch.column(label).to_numpy(), source_run.held_out_of(batch))
            written = chunk_steps.write_chunk(rows, model, profiler.features, profiler.outputs)
            evaluation.feed(written)
            profiler.add_counts(outputs=written.output_counts)
            for total, counts in zip(feature_counts, written.feature_counts, strict=True):
                total += counts
            append(written.table)
    if not all(np.array_equal(total, entry.counts) for total, entry in zip(feature_counts, profiler.features,
                                                                          strict=True)):
        raise BadData(f"run folder {run.path}: its training set's features do not count into its config's "
                      "training profile: the training set is not the one the run wrote")
    return evaluation.metrics()
