#!/usr/bin/env python3
"""The README's pictures of the two HTML pages, taken again:  python tools/screenshot_pages.py

docs/report_html.png: report.html of `python -m etl_job run` on the bundled sample (its top: rows,
rejects by rule, evaluation, model, aggregates, the first histograms). docs/drift_html.png:
`python -m clients drift --html` of a real server on 127.0.0.1 after real traffic (the sample's
accepted rows, the second half of them aged 60 and moved to Mondays, so that some values drift).
Both opened in headless chromium (testkit/browser.py); needs the dev extra and Debian's chromium.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testkit: the checkout's, not installed

from absenteeism import absenteeism_schema, config_io
from absenteeism.dataset import reader
from absenteeism.online import converters
from clients import PredictionClient
from etl_job import run_settings
from testkit.browser import open_page
from testkit.server_process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the PNGs go (default: docs/)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        run = Path(scratch) / "run"
        subprocess.run([sys.executable, "-m", "etl_job", "run", "--output-dir", str(run), "--no-progress"], check=True)
        open_page(run / "report.html", screenshot=args.out / "report_html.png", height=2200, full_page=False)

        source_rows = pd.read_parquet(run / "training_set.parquet", columns=["source_row"])["source_row"]
        typed = reader.read_typed(run_settings.SAMPLE_INPUT).frame
        accepted = typed.loc[source_rows, list(absenteeism_schema.RAW_COLUMN_NAMES)]
        half = len(accepted) // 2
        aged = accepted.iloc[half:].assign(age=60, day_of_the_week=2)
        records = converters.frame_to_records(accepted.iloc[:half]) + converters.frame_to_records(aged)
        page = Path(scratch) / "drift.html"
        with ServerProcess(run / config_io.CONFIG_FILE, "--drift-min-records", "500") as server, \
                PredictionClient(server.target, insecure=True) as client:
            for i in range(0, len(records), 500):
                client.predict_batch(records[i:i + 500])
            subprocess.run([sys.executable, "-m", "clients", "drift", "--target", server.target, "--insecure",
                            "--html", str(page)], stdout=subprocess.DEVNULL)  # exit 5: some value drifted
        open_page(page, screenshot=args.out / "drift_html.png", height=1900, full_page=False)
    for name in ("report_html.png", "drift_html.png"):
        print(f"{args.out / name}: {(args.out / name).stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
