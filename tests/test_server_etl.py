"""The README's path end to end: the ETL CLI on the bundled sample, then the server on its config;
every accepted row predicted through gRPC equals the ETL's training set, bit for bit."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

from absenteeism import converters, dataset_format
from clients import PredictionClient
from etl_job import pipeline
from feature_service.testing import ServerProcess


def test_etl_output_served_bit_for_bit(tmp_path):
    run = subprocess.run([sys.executable, "-m", "etl_job", "run", "--output-dir", str(tmp_path), "--no-progress"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    training_set = pd.read_parquet(tmp_path / "training_set.parquet").set_index("source_row")

    cells = dataset_format.read_file(pipeline.SAMPLE_INPUT)
    cells.index = pd.RangeIndex(1, len(cells) + 1)
    typed, _ = dataset_format.parse_columns(cells)
    records = converters.frame_to_records(typed.loc[training_set.index])

    with ServerProcess(tmp_path / "serving_config.pb") as server, \
            PredictionClient(server.target, insecure=True, timeout=60) as client:
        result = client.predict_batch(records, include_features=True)
    expected = training_set["prediction"].to_numpy(dtype=np.float64)
    assert np.array_equal(result.predictions.view(np.uint64), expected.view(np.uint64))
    features = training_set[list(result.feature_names)].to_numpy(dtype=np.float64)
    assert np.array_equal(result.features.view(np.uint64), features.view(np.uint64))
