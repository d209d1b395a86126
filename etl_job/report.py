"""The run report (report.json): what went in, what was refused and why, what came out, how long
each step took. For people and dashboards; the config is what machines boot from."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from absenteeism import aggregates
from absenteeism.dataset.reader import Extracted
from absenteeism.v1 import serving_config_pb2
from etl_job import profile_builder
from etl_job.validate import Tally


def reject_summary(tally: Tally) -> dict:
    """Violations by column and rule (with a few of the values that broke it), and rejected rows by file."""
    return {
        "rows": tally.rejected_rows,
        "violations": tally.violations,
        "by_column_rule": [{"column": c, "rule": r, "count": n, "examples": tally.examples.get((c, r), [])}
                           for (c, r), n in sorted(tally.by_column_rule.items())],
        "rows_by_file": dict(sorted(tally.rejected_by_file.items())),
    }


def input_summary(input_path: Path, extracted: Extracted) -> dict:
    """What was read: the path given, each file with its row numbering, the bytes' digest."""
    return {"path": str(input_path),
            "files": [{"name": f.path.name, "first_row": f.first_row, "rows": f.rows} for f in extracted.files],
            "sha256": extracted.input_sha256}


REGRESSION_METRICS = ("mae", "rmse", "baseline_mae", "baseline_rmse")
CLASSIFICATION_METRICS = ("log_loss", "accuracy", "roc_auc", "baseline_log_loss", "baseline_accuracy",
                          "baseline_roc_auc")


def metrics(config) -> dict:
    """The held-out evaluation: a regressor's errors, or a classifier's log loss, accuracy and AUC,
    each next to its baseline's."""
    evaluation = config.evaluation
    classifier = config.HasField("onnx_model") and config.onnx_model.task != serving_config_pb2.TASK_REGRESSION
    names = CLASSIFICATION_METRICS if classifier else REGRESSION_METRICS
    return {"train_rows": evaluation.train_rows, "test_rows": evaluation.test_rows,
            "test_fraction": evaluation.test_fraction, "split_seed": evaluation.split_seed,
            **{name: getattr(evaluation, name) for name in names}}


def model_summary(config) -> dict:
    """What the model is, for people: a linear model's parameters; a graph's kind, task, classes,
    size and feature importances (its bytes are in the config)."""
    if not config.HasField("onnx_model"):
        model = config.model
        return {"kind": model.kind, "alpha": model.alpha, "intercept": model.intercept,
                "coefficients": dict(zip(config.feature_names, model.coefficients))}
    graph = config.onnx_model
    summary = {"kind": graph.kind, "format": "onnx", "task": serving_config_pb2.Task.Name(graph.task),
               "description": graph.description, "graph_bytes": len(graph.graph),
               "graph_sha256": hashlib.sha256(graph.graph).hexdigest()}
    if graph.class_labels:
        summary["class_labels"] = list(graph.class_labels)
    if graph.feature_importances:
        summary["feature_importances"] = dict(zip(config.feature_names, graph.feature_importances))
    return summary


def build(*, input_path: Path, extracted: Extracted, tally: Tally, max_reject_fraction: float,
          config, timings: dict[str, float], created_at: datetime, outputs: dict[str, Path]) -> dict:
    statistics = config.statistics
    return {
        "created_at": created_at.isoformat(),
        "input": input_summary(input_path, extracted),
        "rows": {
            "read": tally.rows_read,
            "accepted": tally.rows_accepted,
            "rejected": tally.rejected_rows,
            "rejected_fraction": tally.rejected_fraction,
            "max_reject_fraction": max_reject_fraction,
        },
        "rejects": reject_summary(tally),
        "statistics": {
            "aggregates": aggregates.as_json(aggregates.from_message(statistics, statistics.values)),
            "row_count": statistics.row_count,
        },
        "label": config.label,
        "metrics": metrics(config),
        "model": model_summary(config),
        "profile": profile_builder.as_json(config.profile),
        "config": {"content_sha256": config.content_sha256},
        "outputs": {name: str(path) for name, path in outputs.items()},
        "timings_seconds": {step: round(seconds, 4) for step, seconds in timings.items()},
    }
