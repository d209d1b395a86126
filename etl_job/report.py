"""The run report (report.json): what went in, what was refused and why, what came out, how long
each step took. For people and dashboards; the config is what machines boot from."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from absenteeism import aggregates
from absenteeism.dataset.reader import Extracted
from etl_job import profile_builder
from etl_job.validate import Tally


def reject_summary(tally: Tally) -> dict:
    """Violations by column and rule, and rejected rows by file."""
    return {
        "rows": tally.rejected_rows,
        "violations": tally.violations,
        "by_column_rule": [{"column": c, "rule": r, "count": n} for (c, r), n in sorted(tally.by_column_rule.items())],
        "rows_by_file": dict(sorted(tally.rejected_by_file.items())),
    }


def build(*, input_path: Path, extracted: Extracted, tally: Tally, max_reject_fraction: float,
          config, timings: dict[str, float], created_at: datetime, outputs: dict[str, Path]) -> dict:
    evaluation, statistics, model = config.evaluation, config.statistics, config.model
    return {
        "created_at": created_at.isoformat(),
        "input": {
            "path": str(input_path),
            "files": [{"name": f.path.name, "first_row": f.first_row, "rows": f.rows} for f in extracted.files],
            "sha256": extracted.input_sha256,
        },
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
        "metrics": {
            "train_rows": evaluation.train_rows,
            "test_rows": evaluation.test_rows,
            "test_fraction": evaluation.test_fraction,
            "split_seed": evaluation.split_seed,
            "mae": evaluation.mae,
            "rmse": evaluation.rmse,
            "baseline_mae": evaluation.baseline_mae,
            "baseline_rmse": evaluation.baseline_rmse,
        },
        "model": {
            "kind": model.kind,
            "alpha": model.alpha,
            "intercept": model.intercept,
            "coefficients": dict(zip(config.feature_names, model.coefficients)),
        },
        "profile": profile_builder.as_json(config.profile),
        "config": {"content_sha256": config.content_sha256},
        "outputs": {name: str(path) for name, path in outputs.items()},
        "timings_seconds": {step: round(seconds, 4) for step, seconds in timings.items()},
    }
