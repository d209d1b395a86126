"""python -m clients drift: the server's drift report as a table, drifted rows first. Exit code 0
when nothing drifted, or while the window holds too few records to judge (it says so); 5 when
anything drifted (for cron jobs and CI); 1 when the call failed (e.g. the server monitors no drift:
FAILED_PRECONDITION says why). With --html FILE it also writes the report as a page (drift_page.py)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from clients import drift_page
from clients.client import DriftReport

EXIT_NO_DRIFT, EXIT_DRIFT = 0, 5
COLUMNS = ("name", "source", "metric", "value", "threshold", "drifted")


def ordered(report: DriftReport) -> list:
    """Drifted entries first; within each group the furthest past (or nearest to) its threshold first."""
    return sorted(report.features, key=lambda f: (not f.drifted, -(f.value / f.threshold if f.threshold else f.value)))


def table(report: DriftReport) -> str:
    unjudged = "n/a" if report.insufficient_data else "ok"
    rows = [(f.name, f.source, f.metric, f"{f.value:.6g}", f"{f.threshold:g}", "DRIFT" if f.drifted else unjudged)
            for f in ordered(report)]
    widths = [max(len(str(cell)) for cell in column) for column in zip(COLUMNS, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in (COLUMNS, *rows)]
    return "\n".join(lines)


def add_parser(subcommands, add_connection_arguments, client_from_args) -> None:
    """Adds `drift` to the CLI; the connection flags and client come from clients.client_cli."""
    parser = subcommands.add_parser("drift", help="the server's drift report: its traffic vs the training profile",
                                    description=__doc__)
    add_connection_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    parser.add_argument("--html", type=Path, metavar="FILE",
                        help="also write the report as a page (training bins beside the window's) to FILE")

    def run(args: argparse.Namespace) -> int:
        with client_from_args(args) as client:
            if args.html:
                report, config = drift_page.fetch(client)
                drift_page.write(args.html, report, ordered(report), config)
                print(f"wrote {args.html}", file=sys.stderr)
            else:
                report = client.drift_report()
        drifted = report.drifted
        if args.json:
            print(json.dumps({"config_id": report.config_id, "window_records": report.window_records,
                              "min_records": report.min_records, "insufficient_data": report.insufficient_data,
                              "features": [asdict(f) for f in ordered(report)]}, indent=2))
        elif not report.features:
            print(f"config {report.config_id}: no record served yet, nothing to compare")
        else:
            print(table(report))
            if report.insufficient_data:
                print(f"config {report.config_id}: insufficient data: {report.window_records} records in the window, "
                      f"{report.min_records} needed before drift is judged")
            else:
                print(f"config {report.config_id}, window of {report.window_records} records: "
                      + (f"{len(drifted)} of {len(report.features)} entries DRIFTED" if drifted
                         else f"no drift in {len(report.features)} entries"))
        return EXIT_DRIFT if drifted else EXIT_NO_DRIFT

    parser.set_defaults(run=run)
