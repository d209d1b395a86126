"""The job's failure kinds, mapped to exit codes at one place (cli.main)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from absenteeism import served_model


class BadData(Exception):
    """The input cannot make a config: unreadable, missing columns, too many rejects, too few rows.

    The message says what is wrong with the data and, where it helps, where to look (the run's
    rejects.csv, kept aside: the output folder keeps the previous run).
    Exit code 3.
    """


class ClusterError(RuntimeError):
    """The Dask cluster cannot run the job: its scheduler cannot be reached, it has no worker, or its
    workers run another feature module. Exit code 2, as for bad usage: the command names the cluster."""


class ModelError(Exception):
    """The chosen model cannot be made or served: an estimator that does not fit or convert to ONNX,
    or a graph the serving checks refuse (exit 2: the command's choice, not the data, is at fault)."""


@contextlib.contextmanager
def unservable_answers(whose: str) -> Iterator[None]:
    """A model that answers a NaN, an infinity or a class it does not have for some row cannot be
    served: a ModelError naming `whose` answers ("the model's", "the graph's")."""
    try:
        yield
    except served_model.ModelOutputError as error:
        raise ModelError(f"{whose} answers cannot be served: {error}") from None
