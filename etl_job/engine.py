"""The engine seam: what the job asks of whatever runs its heavy steps (this process:
local_engine.py; a Dask cluster: dask_engine.py) and what it gets back. The steps around them
(parity, config, report, publish: pipeline.py) are the same for every engine, and every engine
runs the same per-chunk bodies (chunk_steps.py), so their outputs are the same bit for bit."""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ParamSpec, Self, TypeVar

import numpy as np
from hamilton.data_quality.base import DataValidationError

from absenteeism import classification_metrics, regression_metrics
from absenteeism.dataset import reader as input_reader
from etl_job import chunk_steps, profile_builder, training, validate
from etl_job.job_errors import BadData
from etl_job.step_progress import StepProgress

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Trained:
    """What an engine hands the shared steps: the input's counts and provenance, the fitted model
    with the rows of the parity check, the profile (its output counts still to come)."""

    tally: validate.Tally
    extracted: input_reader.Extracted
    fitted: training.Fitted
    profiler: profile_builder.ProfileBuilder


class Engine(abc.ABC):
    """Runs extract + validate, analyze, transform + fit, and the write of the training set.

    Used as a context manager around a run (a cluster is reached on enter, released on exit); `fit`
    comes first, then `write_training_set` with what it returned, while the parity check runs."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        return None

    @abc.abstractmethod
    def fit(self, work: Path, steps: StepProgress) -> Trained:
        """Steps extract_validate, analyze and transform_fit; rejects.csv written into `work`."""

    @abc.abstractmethod
    def write_training_set(self, work: Path, trained: Trained, steps: StepProgress) -> dict[str, float]:
        """The training set with predictions into `work`; the held-out metrics (features and
        predictions counted into `trained.profiler` on the way)."""


def bad_data(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Data that cannot train a model is bad data (exit 3), not an internal error: too few rows, or
    accepted rows whose features break a check of the feature module (say, every row the same age)."""
    try:
        return function(*args, **kwargs)
    except training.TrainingError as error:
        raise BadData(str(error)) from None
    except DataValidationError as error:
        raise BadData(f"the accepted rows break a check of the feature module: {error}") from None


class HeldOutEvaluation:
    """The held-out rows' evaluation, fed chunk by chunk in source order: a regressor's errors
    (absenteeism.regression_metrics) or a classifier's metrics (absenteeism.classification_metrics)."""

    def __init__(self, fitted: training.Fitted):
        if fitted.class_shares is None:
            self._errors: regression_metrics.HeldOutErrors | None = regression_metrics.HeldOutErrors(fitted.baseline)
        else:
            self._errors = None
            self._classes = classification_metrics.HeldOutClassification(fitted.class_shares)

    def feed(self, written: chunk_steps.WrittenChunk) -> None:
        if self._errors is not None:
            assert written.error_rows is not None
            self._errors.feed(written.error_rows)
        else:
            self.feed_classes(written.held_out_classes, written.held_out_probabilities)

    def feed_classes(self, classes: np.ndarray | None, probabilities: np.ndarray | None) -> None:
        assert classes is not None and probabilities is not None
        self._classes.feed(classes, probabilities)

    def metrics(self) -> dict[str, float]:
        return self._errors.metrics() if self._errors is not None else self._classes.metrics()


def log_tally(tally: validate.Tally) -> None:
    log.info("rows read %d, accepted %d, rejected %d (%d violations)", tally.rows_read,
             tally.rows_accepted, tally.rejected_rows, tally.violations)
