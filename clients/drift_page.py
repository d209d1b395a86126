"""`python -m clients drift --html FILE`: the server's drift report as a page a person reads in a
browser. Per monitored value, drifted ones first: its metrics against their thresholds, and its
training share per bin (the config's profile, from GetServingConfig) beside the window's
(FeatureDrift.window_counts). Drawn by absenteeism/html_pages.py: no script, nothing fetched."""

from __future__ import annotations

from pathlib import Path

import grpc

from absenteeism import html_pages, profile_bins
from absenteeism.dataset import atomic
from absenteeism.v1 import serving_config_pb2
from clients.client import DriftReport, FeatureDrift, PredictionClient, PredictionError

TEMPLATE = "drift_report.html.j2"


def fetch(client: PredictionClient) -> tuple[DriftReport, serving_config_pb2.ServingConfig]:
    """The drift report and the config it compares with. A reload between the two calls gives a
    config of another id: the report is asked again once, then the call fails (ABORTED)."""
    report = client.drift_report()
    config = client.serving_config()
    if config.content_sha256 != report.config_id:
        report = client.drift_report()
    if config.content_sha256 != report.config_id:
        raise PredictionError(grpc.StatusCode.ABORTED, f"the server reloaded its config while the page was made "
                                                       f"(report of {report.config_id}, config {config.content_sha256}): "
                                                       "run the command again")
    return report, config


def entries(features: list[FeatureDrift], config: serving_config_pb2.ServingConfig) -> list[dict]:
    """One per monitored value, in the order of `features` (drift_report.ordered: drifted first):
    its metrics, and its histogram of training against window shares (None when the server sent no
    counts for its bins)."""
    profile = {entry.name: entry for entry in profile_bins.from_message(config.profile)}
    grouped: dict[str, dict] = {}
    for feature in features:
        group = grouped.setdefault(feature.name, {"name": feature.name, "source": feature.source, "metrics": [],
                                                  "drifted": False, "histogram": None})
        group["metrics"].append(feature)
        group["drifted"] = group["drifted"] or feature.drifted
        entry = profile.get(feature.name)
        if group["histogram"] is None and entry is not None and len(feature.window_counts) == entry.bins:
            group["histogram"] = html_pages.histogram(entry.bin_labels(), {
                "training": entry.counts.tolist(), "window": list(feature.window_counts)})
    return list(grouped.values())


def render(report: DriftReport, features: list[FeatureDrift], config: serving_config_pb2.ServingConfig) -> str:
    """The page of `report`, its entries in the order of `features`."""
    found = entries(features, config)
    return html_pages.render(TEMPLATE, report=report, entries=found,
                             drifted=[entry for entry in found if entry["drifted"]])


def write(path: Path, report: DriftReport, features: list[FeatureDrift],
          config: serving_config_pb2.ServingConfig) -> Path:
    atomic.write_text(Path(path), render(report, features, config))
    return Path(path)
