"""The job in this process, streaming in chunks so memory stays bounded by the chunk size: one read
of the input into a spill (etl_job.spill), then the spill chunk by chunk through the per-chunk
bodies (chunk_steps.py), their results summed in memory.

1. extract + validate: each chunk parsed and checked; its rejects go to rejects.csv as they come,
   its accepted typed rows to the spill, the profile's sample and the aggregates' input columns kept;
2. analyze: the aggregate nodes of the feature module over all accepted rows; the training
   profile's bin edges from its sample (profile_builder.py);
3. transform + fit: each chunk transformed with the aggregates injected; the ridge sums fed; the
   compact rows kept for the write; raw inputs profiled;
4. write: each kept chunk's predictions, training-set rows, held-out errors and profile counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from absenteeism import dataflow
from absenteeism.aggregates import AggregateValue
from absenteeism.dataset import reader as input_reader
from absenteeism.dataset.read_ahead import read_ahead
from absenteeism.profile_bins import Entry
from etl_job import (
    chunk_steps,
    online_parity,
    outputs,
    profile_builder,
    ridge,
    training,
    validate,
)
from etl_job.engine import Engine, HeldOutEvaluation, Trained, bad_data, log_tally
from etl_job.run_settings import RunSettings
from etl_job.spill import Spill
from etl_job.step_progress import StepProgress


@dataclass
class LocalFit:
    fitted: training.Fitted
    kept: list[chunk_steps.CompactRows]  # every accepted row, chunk by chunk, for the write


def train(chunks: Iterable[pd.DataFrame], *, aggregates: dict[str, AggregateValue], settings: training.FitSettings,
          parity_positions: np.ndarray, profiler: profile_builder.ProfileBuilder | None = None) -> LocalFit:
    """Transform each chunk of accepted typed raw rows (index = source row, in source order),
    sum the fit's statistics, keep the compact rows; raw inputs counted into `profiler`, if any."""
    raw_entries: list[Entry] = profiler.raw if profiler is not None else []
    normal = ridge.NormalEquations(len(dataflow.model_features()))
    kept: list[chunk_steps.CompactRows] = []
    parity_raw: list[pd.DataFrame] = []
    parity_features: list[np.ndarray] = []
    train_rows = test_rows = accepted = 0
    for chunk in chunks:
        done = chunk_steps.transform_chunk(chunk, aggregates, settings, raw_entries, parity_positions, accepted)
        normal.feed(done.design)
        if profiler is not None:
            profiler.add_counts(raw=done.raw_counts, rows=len(chunk))
        train_rows += done.train_rows
        test_rows += done.test_rows
        parity_raw.append(done.parity_raw)
        parity_features.append(done.parity_features)
        kept.append(done.compact)
        accepted += len(chunk)
    fitted = training.fit(normal.solve, aggregates=aggregates, settings=settings, train_rows=train_rows,
                          test_rows=test_rows, label_mean=normal.label_mean, parity_raw=parity_raw,
                          parity_features=parity_features, accepted_rows=accepted,
                          training_rows=lambda: training_rows(kept, train_rows))
    return LocalFit(fitted, kept)


def training_rows(kept: list[chunk_steps.CompactRows], train_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The training rows' features (float32) and label values, in source order: what a learner
    other than ridge fits on, filled into one array chunk by chunk (no second copy)."""
    matrix = np.empty((train_rows, len(dataflow.model_features())), dtype=np.float32)
    labels: list[np.ndarray] = []
    start = 0
    for rows in kept:
        part = rows.training_matrix()
        matrix[start:start + len(part)] = part
        labels.append(rows.labels[~rows.held_out])
        start += len(part)
    return matrix, (np.concatenate(labels) if labels else np.empty(0))


class LocalEngine(Engine):
    def __init__(self, settings: RunSettings):
        self.settings = settings
        self._kept: list[chunk_steps.CompactRows] = []

    def fit(self, work: Path, steps: StepProgress) -> Trained:
        settings = self.settings
        with Spill() as spill:
            with steps.step("extract_validate"):
                reader = input_reader.Reader(settings.source(), settings.chunk_rows)
                sample = profile_builder.RowSample()
                collected = _extract_validate(reader, spill, work, steps, sample)
                analyze_inputs = collected.analyze_inputs.frame()
                tally = collected.tally
                del collected
                extracted = reader.extracted()
                log_tally(tally)
                validate.check_threshold(tally, settings.max_reject_fraction)
            with steps.step("analyze"):
                aggregates = bad_data(training.analyze, analyze_inputs)
                del analyze_inputs
                profiler = bad_data(profile_builder.ProfileBuilder, sample.rows(), aggregates)
                del sample
            with steps.step("transform_fit"):
                parity_positions = online_parity.sample_positions(spill.rows, settings.parity_rows)
                trained = bad_data(train, steps.rows(spill.chunks(), "transform", spill.rows), aggregates=aggregates,
                                   settings=settings.fit, parity_positions=parity_positions, profiler=profiler)
                self._kept = trained.kept
                profiler.place_outputs(trained.fitted.served)
        return Trained(tally, extracted, trained.fitted, profiler)

    def write_training_set(self, work: Path, trained: Trained, steps: StepProgress) -> dict[str, float]:
        fitted, profiler = trained.fitted, trained.profiler
        model = chunk_steps.write_model(fitted)
        evaluation = HeldOutEvaluation(fitted)
        outputs.make_output_folders(work)
        with outputs.training_set_writer(work, model.empty_table()) as append:
            for rows in steps.rows(self._kept, "write", fitted.rows):
                written = chunk_steps.write_chunk(rows, model, profiler.features, profiler.outputs)
                evaluation.feed(written)
                profiler.add_counts(features=written.feature_counts, outputs=written.output_counts)
                append(written.table)
        self._kept = []
        return evaluation.metrics()


def _extract_validate(reader: input_reader.Reader, spill: Spill, work: Path, steps: StepProgress,
                      sample: profile_builder.RowSample) -> chunk_steps.Collected:
    """Pass 1: every chunk parsed and validated; rejects written, accepted rows spilled, the
    aggregates' inputs collected, the profile's sample kept."""
    collected = chunk_steps.Collected()
    with outputs.rejects_writer(work) as append_rejects:
        # Arrow parses the next chunks in a thread (it releases the GIL) while this one is checked.
        for chunk in steps.rows(read_ahead(reader.chunks()), "read+validate", size=lambda chunk: len(chunk.rows)):
            validation = chunk_steps.validate_and_collect(chunk.rows, chunk.file.name, collected)
            if validation.violations:  # most chunks have none: no empty frame to build for them
                append_rejects(validate.rejects_frame(validation.violations, chunk.file.name))
            spill.append(validation.accepted)
            sample.add(validation.accepted)
    spill.finish()
    return collected
