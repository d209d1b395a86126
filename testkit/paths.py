"""Where the tests and benchmarks find the project and the shared data, wherever they sit."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# The real UCI file lives beside the checkout (../shared/data), never in the repository.
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "Absenteeism_at_work.csv"
