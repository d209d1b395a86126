"""The run report (report.json): what went in, what was refused and why, what came out, how long
each step took. For people and dashboards; the config is what machines boot from."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

from etl_job.extract import Extracted
from etl_job.validate import Validation


def reject_summary(validation: Validation, extracted: Extracted) -> dict:
    """Violations by column and rule, and rejected rows by file."""
    by_rule = Counter((v.column, v.rule) for v in validation.violations)
    rejected_rows = sorted({v.row for v in validation.violations})
    by_file = Counter(extracted.file_names(rejected_rows).tolist()) if rejected_rows else Counter()
    return {
        "rows": validation.rejected_rows,
        "violations": len(validation.violations),
        "by_column_rule": [{"column": c, "rule": r, "count": n} for (c, r), n in sorted(by_rule.items())],
        "rows_by_file": dict(sorted(by_file.items())),
    }


def build(*, input_path: Path, extracted: Extracted, validation: Validation, max_reject_fraction: float,
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
            "read": validation.rows_read,
            "accepted": len(validation.accepted),
            "rejected": validation.rejected_rows,
            "rejected_fraction": validation.rejected_fraction,
            "max_reject_fraction": max_reject_fraction,
        },
        "rejects": reject_summary(validation, extracted),
        "statistics": {
            "age_mean": statistics.age_mean,
            "age_std_dev": statistics.age_std_dev,
            "std_ddof": statistics.std_ddof,
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
        "config": {"content_sha256": config.content_sha256},
        "outputs": {name: str(path) for name, path in outputs.items()},
        "timings_seconds": {step: round(seconds, 4) for step, seconds in timings.items()},
    }
