"""The job's own train/serve parity check, in process: before a config is written, rows of the
training set go through the online path one record at a time (protobuf record -> raw schema ->
feature module -> model, exactly as the server runs it for a Predict call) and must give the same
feature bits and prediction as the batch transform did.

Every row is compared when the input has at most `rows` accepted rows; above that, `rows` rows
spread evenly over the input (always including the first and last). The parity command
(`python -m clients parity`) checks every row through a running server.

`Background` runs the check in a forked process, so that it takes another core while the job
writes the training set; nothing is published before its result is in.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from typing import Self

import numpy as np
import pandas as pd

from absenteeism import data_sets, dataflow, parity
from absenteeism.online import converters
from absenteeism.online.fast import FastPredictor
from absenteeism.online.predictor import InvalidRecords, Predictions
from absenteeism.served_model import ModelOutputs
from absenteeism.v1 import serving_config_pb2

DEFAULT_ROWS = 2000


class ParityError(RuntimeError):
    """The online path computes different features than the batch job: no config may be written."""


def sample_positions(total: int, rows: int) -> np.ndarray:
    if total <= rows:
        return np.arange(total)
    return np.unique(np.linspace(0, total - 1, num=rows).round().astype(np.int64))


def positions_within(positions: np.ndarray, start: int, rows: int) -> np.ndarray:
    """The sampled positions that fall among rows [start, start + rows), counted from `start`."""
    positions = np.asarray(positions, dtype=np.int64)
    return positions[(positions >= start) & (positions < start + rows)] - start


def check(config: serving_config_pb2.ServingConfig, accepted: pd.DataFrame, matrix: np.ndarray,
          answered: ModelOutputs, rows: int = DEFAULT_ROWS) -> parity.ParityReport:
    """accepted: typed raw rows (index = source row); matrix, answered: what the batch transform
    and model gave for them. The job passes the sampled rows only (it streams; see sample_positions)."""
    positions = sample_positions(len(accepted), rows)
    records = converters.frame_to_records(accepted.iloc[positions][list(data_sets.active().table.column_names)])
    predictor = FastPredictor(config)
    singles: list[Predictions] = []
    refused: list[str] = []  # one line per rule a refused row breaks
    for source_row, record in zip(accepted.index[positions], records):
        try:
            singles.append(predictor.predict([record]))
        except InvalidRecords as error:
            refused.extend(f"source row {source_row}: {v.describe()}" for v in error.violations)
    if refused:
        raise ParityError(f"the online path refuses {len(refused)} rule(s) of rows the batch job accepted; "
                          "no config written:\n  " + "\n  ".join(refused[:20])
                          + (f"\n  and {len(refused) - 20} more" if len(refused) > 20 else ""))
    online_features = np.vstack([s.features for s in singles])
    online_predictions = np.concatenate([s.predictions for s in singles])
    offline = np.asarray(matrix, dtype=np.float64)[positions]
    expected_probabilities = got_probabilities = None
    if answered.probabilities is not None:
        expected_probabilities = answered.probabilities[positions]
        got_probabilities = np.vstack([s.probabilities for s in singles if s.probabilities is not None])
    return parity.compare(accepted.index[positions], dataflow.model_features(), offline,
                          np.asarray(answered.predictions)[positions], predictor.feature_names, online_features,
                          online_predictions, class_labels=predictor.model.class_labels,
                          expected_probabilities=expected_probabilities, got_probabilities=got_probabilities)


def require_identical(report: parity.ParityReport) -> None:
    if not report.identical:
        raise ParityError("the online path computes different features or model answers than the batch job; "
                          "no config written:\n"
                          + report.summary())


class Background:
    """`check(...)` in a forked child process (a copy of this one: nothing is pickled on the way in,
    only the report on the way back). `result()` waits for it; `close()` stops a child still running."""

    def __init__(self, *args, **kwargs):
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_check_into, args=(send, os.getpid(), args, kwargs),
                                        name="online-parity", daemon=True)
        self._process.start()
        send.close()

    def result(self) -> parity.ParityReport:
        try:
            outcome = self._receive.recv()
        except EOFError:
            self._process.join()
            raise RuntimeError(f"the online parity check stopped with exit code {self._process.exitcode} "
                               "before it had a result") from None
        self._process.join()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._receive.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_into(send: Connection, parent: int, args: tuple, kwargs: dict) -> None:
    # Signals are the parent's to handle: it stops this child when it stops, and a parent killed
    # outright takes the child with it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent)
    outcome: parity.ParityReport | Exception
    try:
        outcome = check(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - any failure of the check goes to the parent, which raises it
        outcome = error
    try:
        send.send(outcome)
    except Exception:  # noqa: BLE001 - an exception that does not pickle (whatever it raises): its words travel instead
        send.send(RuntimeError(f"online parity check failed: {outcome!r}"))


def _die_with(parent: int) -> None:
    """Linux: the kernel kills this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before that took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1
