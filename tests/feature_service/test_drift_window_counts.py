"""FeatureDrift.window_counts: the window counted into each entry's training bins, which the drift
page draws beside the training shares. In process: a window of the very training rows counts
exactly the profile's training counts, every entry's counts sum to the window's records, and the
RPC's response and the client's report carry them."""

from __future__ import annotations

import numpy as np
import pytest

from absenteeism import data_sets, profile_bins
from feature_service.monitoring import drift_window


@pytest.fixture(scope="module")
def window_rows(trained_config) -> np.ndarray:
    """Window rows (raw values, features, prediction) of every accepted training row."""
    names = data_sets.active().table.column_names
    raw = np.column_stack([trained_config.accepted[name].to_numpy(np.float64) for name in names])
    return np.column_stack([raw, trained_config.features.to_numpy(np.float64),
                            trained_config.predictions.to_numpy(np.float64)])


def test_the_training_rows_count_as_the_training_profile(trained_config, window_rows):
    config = trained_config.config
    comparison = drift_window.Comparison(config, drift_window.Thresholds(min_records=100))
    report = comparison.report(window_rows)
    training = {entry.name: entry.counts.tolist() for entry in profile_bins.from_message(config.profile)}
    assert config.profile.row_count == len(window_rows)  # the profile counts every accepted row
    assert report.entries and {e.name for e in report.entries} == set(training)
    for entry in report.entries:
        assert sum(entry.window_counts) == report.window_records, entry.name
        assert list(entry.window_counts) == training[entry.name], entry.name


def test_the_counts_follow_the_window(trained_config, window_rows):
    config = trained_config.config
    some = window_rows[:300]
    report = drift_window.Comparison(config, drift_window.Thresholds(min_records=100)).report(some)
    profile = {entry.name: entry for entry in profile_bins.from_message(config.profile)}
    for entry in report.entries:
        assert len(entry.window_counts) == profile[entry.name].bins and sum(entry.window_counts) == 300
    response = report.response()
    assert [tuple(f.window_counts) for f in response.features] == [e.window_counts for e in report.entries]
