"""Where the tests and benchmarks find the project and the shared data, wherever they sit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The real UCI file lives beside the checkout (../shared/data), never in the repository.
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "Absenteeism_at_work.csv"


def require_real_data() -> Path:
    """The real data set's path. Without the file a test is skipped on a developer's machine, but
    fails in CI (the CI variable set): there every test must run on it, the headline parity included."""
    if REAL_DATA.is_file():
        return REAL_DATA
    message = f"the real data set is not at {REAL_DATA} (it is never copied into the repository)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI runs every test on it, so its absence fails the run", pytrace=False)
    pytest.skip(message)
