"""report.html: the run report (report.json) as a page a person reads in a browser: rows, rejects
by rule with examples, the evaluation against its baseline, the model's coefficients or feature
importances, the aggregates and a histogram of every profiled value (absenteeism/html_pages.py)."""

from __future__ import annotations

from pathlib import Path

from absenteeism import html_pages, profile_bins
from absenteeism.dataset import atomic

REPORT_HTML_FILE = "report.html"
TEMPLATE = "run_report.html.j2"
SOURCE_TITLES = {profile_bins.RAW_INPUT: "Raw inputs", profile_bins.FEATURE: "Model features",
                 profile_bins.PREDICTION: "The model's outputs"}
SPLIT = ("train_rows", "test_rows", "test_fraction", "split_seed")


def evaluation_rows(metrics: dict) -> list[tuple[str, float, float | None]]:
    """(metric, model's value, its baseline's) for each metric the report holds."""
    return [(name, value, metrics.get(f"baseline_{name}")) for name, value in metrics.items()
            if name not in SPLIT and not name.startswith("baseline_")]


def model_parts(model: dict) -> tuple[list[tuple[str, object]], str, list[tuple[str, float, float]]]:
    """The model's scalar facts, and its weights (coefficients or feature importances) with each
    one's bar width relative to the largest in magnitude."""
    named = {"coefficients": "Coefficients (per feature, as the model reads it)",
             "feature_importances": "Feature importances"}
    facts = [(name, value) for name, value in model.items() if not isinstance(value, dict | list)]
    if model.get("class_labels"):
        facts.append(("class_labels", ", ".join(model["class_labels"])))
    for key, title in named.items():
        if key in model:
            weights = model[key]
            largest = max((abs(v) for v in weights.values()), default=0.0) or 1.0
            return facts, title, [(name, value, abs(value) / largest) for name, value in weights.items()]
    return facts, "", []


def profile_groups(profile: dict) -> list[dict]:
    """The profile's entries by source (raw inputs, features, outputs), each with its histogram."""
    groups: dict[str, list[dict]] = {source: [] for source in profile_bins.SOURCES}
    for name, entry in profile["entries"].items():
        counts = entry["counts"]
        groups[entry["source"]].append({"name": name, "kind": entry["kind"],
                                        "histogram": html_pages.histogram(list(counts), {"training": list(counts.values())})})
    return [{"title": SOURCE_TITLES[source], "entries": entries} for source, entries in groups.items() if entries]


def render(report: dict) -> str:
    facts, weights_title, weights = model_parts(report["model"])
    return html_pages.render(
        TEMPLATE, report=report, rejects=report["rejects"]["by_column_rule"],
        split={name: report["metrics"][name] for name in SPLIT}, evaluation=evaluation_rows(report["metrics"]),
        model_facts=facts, weights_title=weights_title, weights=weights,
        aggregates=list(report["statistics"]["aggregates"].items()),
        profile_rows=report["profile"]["row_count"], profile=profile_groups(report["profile"]))


def write(report: dict, output_dir: Path) -> Path:
    path = Path(output_dir) / REPORT_HTML_FILE
    atomic.write_text(path, render(report))
    return path
