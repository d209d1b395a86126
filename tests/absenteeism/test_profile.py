"""The training profile: its bins are defined once (absenteeism/profile_bins.py); the job fills them over
every accepted row in bounded memory and ships them in the config, where boot checks them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from absenteeism import absenteeism_schema, config_io, features, profile_bins
from etl_job import profile_builder
from etl_job.split import row_hash


def test_numeric_bins_hold_what_the_contract_says():
    entry = profile_bins.numeric_entry("x", profile_bins.RAW_INPUT, [1.0, 2.0, 4.0])
    values = np.array([0.5, 1.0, 1.5, 2.0, 3.9, 4.0, 4.5])
    # below e0 | [e0, e1) | [e1, e2] (closed: the largest edge is in the last bin) | above e2
    assert entry.bin_of(values).tolist() == [0, 1, 1, 2, 2, 2, 3]
    assert entry.count(values).tolist() == [1, 2, 3, 1]
    assert entry.bin_labels() == ["< 1", "[1, 2)", "[2, 4]", "> 4"]


def test_a_constant_value_gets_one_closed_bin():
    edges = profile_bins.numeric_edges(np.array([5.0, 5.0, 5.0]))
    assert edges.tolist() == [5.0, 5.0]
    assert profile_bins.numeric_entry("x", profile_bins.FEATURE, edges).bin_of(np.array([4.0, 5.0, 6.0])).tolist() == [0, 1, 2]


def _placed_one_by_one(entry: profile_bins.Entry, values) -> list[int]:
    return np.bincount(entry.bin_of(values), minlength=entry.bins).tolist()


@pytest.mark.parametrize("values", [
    np.arange(-300, 2_700) % 57,  # int64, a narrow span: counted per distinct value
    (np.arange(5_000) % 2).astype(np.int8),  # flags as the job keeps them
    np.array([-128, 127] * 600, dtype=np.int8),  # the span of int8 overflows int8
    np.array([-0.0, 0.0, 1.0, 4.0, 7.0] * 400),  # whole floats, signed zeros
    np.array([1.0, 2.0, 2.5] * 500),  # not whole: placed one by one
    np.array([0.0, 1.0, np.nan] * 500),  # NaN: placed one by one (the bin above)
    np.array([0, 10**7] * 600),  # too wide a span
    np.array([2.0**60, 2.0**60 + 1024] * 600),  # beyond float64's whole numbers
    np.arange(1_500, dtype=np.uint16),
])
@pytest.mark.parametrize("make_entry", [
    lambda: profile_bins.numeric_entry("x", profile_bins.FEATURE, [0.0, 1.0, 4.0, 30.0]),
    lambda: profile_bins.numeric_entry("x", profile_bins.FEATURE, [5.0, 5.0]),
    lambda: profile_bins.categorical_entry("x", profile_bins.RAW_INPUT, [0, 1, 7, 50]),
])
def test_counting_whole_numbers_by_value_gives_the_counts_of_placing_each_one(values, make_entry):
    entry = make_entry()
    assert entry.count(values).tolist() == _placed_one_by_one(entry, values)
    assert entry.count(values).sum() == len(values)


def test_edges_are_the_deciles_without_repeats():
    values = np.arange(101, dtype=np.float64)
    np.testing.assert_array_equal(profile_bins.numeric_edges(values), np.arange(0, 101, 10, dtype=np.float64))
    assert profile_bins.numeric_edges(np.array([0.0] * 50 + [1.0] * 30 + [3.0] * 20)).tolist() == [0.0, 1.0, 3.0]
    assert profile_bins.numeric_edges(np.array([19.0, 20.0, 23.0, 40.0])).tolist() == [19.0, 20.0, 23.0, 40.0]  # data values


def test_categories_have_one_bin_each_and_one_for_any_other_value():
    entry = profile_bins.categorical_entry("day", profile_bins.RAW_INPUT, [4, 2, 3])
    assert entry.categories.tolist() == [2.0, 3.0, 4.0]
    assert entry.bin_of(np.array([2.0, 4.0, 3.0, 7.0, 2.5, 1.0])).tolist() == [0, 2, 1, 3, 3, 3]


def _independent_counts(entry: profile_bins.Entry, values: np.ndarray) -> list[int]:
    if entry.numeric:
        e = entry.edges
        middle = [int(((values >= e[i - 1]) & (values < e[i])).sum()) for i in range(1, len(e) - 1)]
        last = int(((values >= e[-2]) & (values <= e[-1])).sum())
        return [int((values < e[0]).sum()), *middle, last, int((values > e[-1]).sum())]
    inside = [int((values == c).sum()) for c in entry.categories]
    return [*inside, len(values) - sum(inside)]


def test_the_job_profiles_every_raw_input_feature_and_the_prediction(trained_config):
    message = trained_config.config.profile
    entries = profile_bins.from_message(message)
    accepted = trained_config.accepted
    assert message.row_count == len(accepted)
    assert [e.name for e in entries] == [*absenteeism_schema.RAW_COLUMN_NAMES, *features.MODEL_FEATURES, "prediction"]
    assert [e.source for e in entries] == (["raw_input"] * len(absenteeism_schema.RAW_COLUMN_NAMES)
                                           + ["feature"] * len(features.MODEL_FEATURES) + ["prediction"])
    values = {**{name: accepted[name] for name in absenteeism_schema.RAW_COLUMN_NAMES},
              **{name: trained_config.features[name] for name in features.MODEL_FEATURES},
              "prediction": trained_config.predictions}
    for entry in entries:
        column = np.asarray(values[entry.name], dtype=np.float64)
        if entry.numeric:  # the sample is every row here (fewer than SAMPLE_ROWS): edges at the deciles of all
            np.testing.assert_array_equal(entry.edges, np.unique(np.quantile(column, np.linspace(0, 1, 11), method="lower")))
        assert entry.counts.tolist() == _independent_counts(entry, column), entry.name


def test_categorical_entries_take_their_categories_from_the_schema_and_the_checks(trained_config):
    entries = {e.name: e for e in profile_bins.from_message(trained_config.config.profile)}
    isin = {c.name: sorted(c.check.statistics["allowed_values"]) for c in absenteeism_schema.RAW_COLUMNS
            if c.check.name == "isin"}
    assert {name for name in absenteeism_schema.RAW_COLUMN_NAMES if not entries[name].numeric} == set(isin)
    for name, allowed in isin.items():
        assert entries[name].categories.tolist() == allowed  # also the categories training never saw
    flags = {name for name in features.MODEL_FEATURES if not entries[name].numeric}
    assert flags == set(features.MODEL_FEATURES) - {"age_zero_mean_unit_variance"}
    assert all(entries[name].categories.tolist() == [0.0, 1.0] for name in flags)
    assert entries["reason_for_absence"].counts[20] == 0  # code 20 is absent from the sample, yet counted


def test_the_sample_is_the_same_rows_whatever_the_chunking():
    rows = pd.DataFrame({name: np.arange(1000, dtype=np.int64) % 50 + 16 for name in absenteeism_schema.RAW_COLUMN_NAMES},
                        index=np.arange(1, 1001))
    samples = []
    for sizes in ([1000], [7] * 142 + [6], [333, 1, 600, 66]):
        sample, start = profile_builder.RowSample(size=50), 0
        for size in sizes:
            sample.add(rows.iloc[start:start + size])
            start += size
            assert sample._held <= 2 * 50 + size  # bounded: pruned back to 50 rows once over 100
        samples.append(sample.rows())
    hashes = row_hash(rows.index.to_numpy(), profile_builder.SAMPLE_SEED)
    smallest = rows.index.to_numpy()[np.argsort(hashes)[:50]]  # a uniform sample: the 50 smallest draws of all
    assert samples[0].index.tolist() == sorted(smallest.tolist())
    for other in samples[1:]:
        pd.testing.assert_frame_equal(other, samples[0])


def _resealed(config, mutate):
    bad = config_io.ServingConfig()
    bad.CopyFrom(config)
    mutate(bad)
    return config_io.seal(bad)


@pytest.mark.parametrize("mutate", [
    lambda c: c.profile.entries[8].numeric.counts.__setitem__(3, c.profile.entries[8].numeric.counts[3] + 1),
    lambda c: c.profile.entries[8].numeric.edges.reverse(),
    lambda c: c.profile.entries[3].categorical.counts.pop(),
    lambda c: setattr(c.profile.entries[3], "source", "somewhere"),
])
def test_a_resealed_config_with_a_malformed_profile_is_refused(trained_config, mutate):
    bad = _resealed(trained_config.config, mutate)
    with pytest.raises(config_io.ConfigError, match="training profile entry '(age|day_of_the_week)'"):
        config_io.verify_config(bad)


def test_a_config_without_a_profile_still_verifies(trained_config):
    config_io.verify_config(_resealed(trained_config.config, lambda c: c.ClearField("profile")))
