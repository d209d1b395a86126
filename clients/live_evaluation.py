"""The model's evaluation on live traffic: labels that arrived after the predictions were served,
joined by request id to a server's prediction log (`--prediction-log DIR`, each record named by its
`request_id`: docs/grpc.md), and evaluated exactly as the ETL job evaluates its held-out rows
(absenteeism.regression_metrics' MAE and RMSE, absenteeism.classification_metrics' log loss,
accuracy and ROC AUC: the code the job's engine runs), next to the job's own held-out evaluation
from the config.

Used by `python -m clients evaluate --prediction-log DIR --labels FILE.csv [--config CONFIG]`.
FILE.csv has the columns `request_id` and `label` (the label node's value: a regressor's number, a
classifier's class label). Rows are evaluated in the labels file's order (the job's sums are taken
in fixed blocks of rows in order, so the same rows in the same order give the same bits).

The baselines (predicting the training mean, or the training class shares) need figures the config
does not carry: only the training evaluation shows them.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from absenteeism import classification_metrics, config_io, regression_metrics
from absenteeism.dataset import prediction_log_files as log_format

REQUEST_ID, LABEL = "request_id", "label"
REGRESSION = ("mae", "rmse")
CLASSIFICATION = ("log_loss", "accuracy", "roc_auc")
EXAMPLES = 5  # unmatched ids quoted


@dataclass
class LiveEvaluation:
    config_id: str
    joined: int
    live: dict[str, float]  # the model's metrics over the joined rows
    training: dict[str, float] = field(default_factory=dict)  # the config's held-out evaluation (empty: no config)
    training_rows: int = 0
    unmatched_labels: list[str] = field(default_factory=list)  # labels' ids with no logged prediction
    unlabelled: int = 0  # logged predictions (of this config, with an id) with no label
    ambiguous: int = 0  # ids logged more than once: left out, the label could belong to either
    files_without_ids: int = 0  # log files of a release before request ids: not joined

    def summary(self) -> str:
        lines = [f"config {self.config_id}: {self.joined} labels joined to logged predictions; "
                 f"{len(self.unmatched_labels)} labels without a logged prediction"
                 + (f" (e.g. {', '.join(self.unmatched_labels[:EXAMPLES])})" if self.unmatched_labels else "")
                 + f"; {self.unlabelled} logged predictions without a label"]
        if self.ambiguous:
            lines.append(f"left out {self.ambiguous} request ids logged more than once")
        if self.files_without_ids:
            lines.append(f"skipped {self.files_without_ids} log file(s) without request ids (older releases)")
        training = (f"training (held-out, {self.training_rows} rows)" if self.training
                    else "training (pass --config)")
        width = max(len(name) for name in self.live)
        lines.append(f"{'metric':<{width}}  {'live (' + str(self.joined) + ' rows)':>18}  {training}")
        for name, value in self.live.items():
            if self.training:
                baseline = self.training.get(f"baseline_{name}")
                shown = f"{self.training[name]:.6g}" + (f" (baseline {baseline:.6g})" if baseline is not None else "")
            else:
                shown = "-"
            lines.append(f"{name:<{width}}  {value:>18.6g}  {shown}")
        return "\n".join(lines)


def read_labels(path: Path) -> pd.DataFrame:
    """The labels file: request_id (text) and label, one row per id; ValueError naming what is wrong."""
    try:
        labels = pd.read_csv(path, dtype={REQUEST_ID: str}, keep_default_na=False, na_values={LABEL: [""]})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"--labels {path}: not a CSV file ({error})") from None
    missing = [c for c in (REQUEST_ID, LABEL) if c not in labels.columns]
    if missing:
        raise ValueError(f"--labels {path}: no column {', '.join(missing)} (it needs {REQUEST_ID} and {LABEL})")
    repeated = labels[REQUEST_ID].duplicated()
    if repeated.any():
        raise ValueError(f"--labels {path}: request id {labels[REQUEST_ID][repeated].iloc[0]!r} has more than one label")
    if labels[LABEL].isna().any():
        raise ValueError(f"--labels {path}: row {int(np.flatnonzero(labels[LABEL].isna())[0]) + 1} has no label")
    return labels.loc[:, [REQUEST_ID, LABEL]]


def read_log(folder: Path) -> tuple[pd.DataFrame, int]:
    """The logged records that carry a request id (config_id, request_id, prediction, probabilities),
    and how many files have none."""
    files = log_format.existing_files(folder)
    frames, without = [], 0
    for path in files:
        table, _ = log_format.read_file(path)
        if log_format.REQUEST_ID not in table.schema.names:
            without += 1
            continue
        columns = [log_format.CONFIG_ID, log_format.REQUEST_ID, log_format.PREDICTION]
        if log_format.PROBABILITIES in table.schema.names:
            columns.append(log_format.PROBABILITIES)
        frames.append(table.select(columns).to_pandas())
    if not frames:
        raise ValueError(f"no log file in {folder} has request ids (written by a release before them)")
    logged = pd.concat(frames, ignore_index=True)
    return logged[logged[log_format.REQUEST_ID].notna()], without


def evaluate(folder: Path, labels_path: Path, config_path: Path | None) -> LiveEvaluation:
    """Raises ValueError (bad usage or input) and config_io.ConfigError (an unreadable config)."""
    labels = read_labels(labels_path)
    logged, without = read_log(folder)
    config = config_io.read_config(config_path) if config_path is not None else None
    if config is not None:
        config_id = config.content_sha256
        logged = logged[logged[log_format.CONFIG_ID] == config_id]
        if logged.empty:
            raise ValueError(f"no record in {folder} with a request id was served with config {config_id}")
    else:
        served = sorted(set(logged[log_format.CONFIG_ID]))
        if len(served) != 1:
            raise ValueError(f"the log holds records of {len(served)} configs: pass --config to say which to evaluate")
        config_id = served[0]
    counts = logged[log_format.REQUEST_ID].value_counts()
    ambiguous = set(counts.index[counts > 1])
    logged = logged[~logged[log_format.REQUEST_ID].isin(ambiguous)].set_index(log_format.REQUEST_ID)
    matched = labels[REQUEST_ID].isin(logged.index)
    joined = labels[matched]
    if joined.empty:
        raise ValueError(f"no request id of --labels {labels_path} is in the prediction log {folder}")
    rows = logged.loc[joined[REQUEST_ID]]
    class_labels = (tuple(config.onnx_model.class_labels) if config is not None and config.HasField("onnx_model")
                    else ())
    classifier = log_format.PROBABILITIES in rows.columns and len(rows[log_format.PROBABILITIES].iloc[0]) > 0
    if classifier:
        if not class_labels:
            raise ValueError("the log holds a classifier's predictions: pass --config to know its class labels")
        live = _classification(joined[LABEL].astype(str).to_numpy(), np.vstack(rows[log_format.PROBABILITIES].to_list()),
                               class_labels)
    else:
        truth = pd.to_numeric(joined[LABEL], errors="coerce").to_numpy(dtype=np.float64)
        if not np.isfinite(truth).all():
            at = int(np.flatnonzero(~np.isfinite(truth))[0])
            raise ValueError(f"--labels {labels_path}: label {joined[LABEL].iloc[at]!r} of request id "
                             f"{joined[REQUEST_ID].iloc[at]!r} is not a number (the model is a regressor)")
        live = _regression(truth, rows[log_format.PREDICTION].to_numpy(dtype=np.float64))
    result = LiveEvaluation(config_id, len(joined), live, unmatched_labels=labels.loc[~matched, REQUEST_ID].tolist(),
                            unlabelled=len(logged) - len(joined), ambiguous=len(ambiguous), files_without_ids=without)
    if config is not None and config.HasField("evaluation"):
        evaluation = config.evaluation
        names = CLASSIFICATION if classifier else REGRESSION
        result.training = {key: getattr(evaluation, key) for name in names for key in (name, f"baseline_{name}")}
        result.training_rows = evaluation.test_rows
    return result


def _regression(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The job's held-out MAE and RMSE (absenteeism.regression_metrics), fed the rows in order; the baseline is not
    known here (NaN in, left out)."""
    errors = regression_metrics.HeldOutErrors(math.nan)
    errors.feed(regression_metrics.error_rows(truth, predicted, math.nan))
    metrics = errors.metrics()
    return {name: metrics[name] for name in REGRESSION}


def _classification(labels: np.ndarray, probabilities: np.ndarray, class_labels: tuple[str, ...]) -> dict[str, float]:
    """The job's held-out log loss, accuracy and ROC AUC (absenteeism.classification_metrics); the
    baseline's class shares are not known here (equal shares in, left out)."""
    index = {label: k for k, label in enumerate(class_labels)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(f"--labels: {unknown[:EXAMPLES]} are not class labels of the model ({list(class_labels)})")
    held_out = classification_metrics.HeldOutClassification(np.full(len(class_labels), 1 / len(class_labels)))
    held_out.feed(np.array([index[label] for label in labels], dtype=np.int64), probabilities)
    metrics = held_out.metrics()
    return {name: metrics[name] for name in CLASSIFICATION}


def add_parser(subcommands) -> None:
    """Adds `evaluate` to the CLI (clients.client_cli)."""
    parser = subcommands.add_parser("evaluate", help="the model's evaluation on live traffic: labels joined to a "
                                                     "prediction log by request id", description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prediction-log", type=Path, required=True, help="the folder of a server's --prediction-log")
    parser.add_argument("--labels", type=Path, required=True, help="CSV with the columns request_id and label")
    parser.add_argument("--config", type=Path,
                        help="the serving_config.pb served: its records only, and its training evaluation alongside "
                             "(needed for a classifier, or a log of several configs)")

    def run(args: argparse.Namespace) -> int:
        try:
            result = evaluate(args.prediction_log, args.labels, args.config)
        except config_io.ConfigError as error:
            raise ValueError(str(error)) from None
        print(result.summary())
        return 0

    parser.set_defaults(run=run)
