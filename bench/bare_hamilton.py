"""The reference design's batch step, for comparison: read the CSV with pandas and execute the
feature DAG with a Hamilton driver over the whole file (aggregates computed in the same run).
No validation, no quarantine, no fit, no outputs.

    python bench/bare_hamilton.py FILE.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absenteeism import dataflow, features
from absenteeism.absenteeism_schema import TABLE


def main(path: str) -> None:
    frame = pd.read_csv(path, sep=TABLE.dialect.delimiter)
    frame.columns = [TABLE.header_to_name[h.strip()] for h in frame.columns]
    inputs = {name: frame[name] for name in frame.columns}
    outputs = [*dataflow.aggregate_names(), *features.MODEL_FEATURES]
    result = dataflow.feature_driver().execute(outputs, inputs=inputs)
    print(f"{len(result[features.MODEL_FEATURES[0]])} rows of {len(features.MODEL_FEATURES)} features")


if __name__ == "__main__":
    main(sys.argv[1])
