"""Tests that need the real data set skip without it on a developer's machine, and fail in CI."""

from __future__ import annotations

import pytest

from testkit import paths


def test_in_ci_a_missing_data_set_fails_naming_the_file(monkeypatch, tmp_path):
    missing = tmp_path / "Absenteeism_at_work.csv"
    monkeypatch.setattr(paths, "REAL_DATA", missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"the real data set is not at {missing}.*fails the run"):
        paths.require_real_data()


def test_elsewhere_a_missing_data_set_skips(monkeypatch, tmp_path):
    missing = tmp_path / "Absenteeism_at_work.csv"
    monkeypatch.setattr(paths, "REAL_DATA", missing)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"the real data set is not at {missing}"):
        paths.require_real_data()


def test_a_present_data_set_is_used(monkeypatch, tmp_path):
    present = tmp_path / "Absenteeism_at_work.csv"
    present.write_text("ID;Age\r\n")
    monkeypatch.setattr(paths, "REAL_DATA", present)
    monkeypatch.setenv("CI", "true")
    assert paths.require_real_data() == present
