"""The installed release of the project, for every command's --version, and the name a command
was started by, for its usage lines."""

from __future__ import annotations

import os
import sys
from importlib import metadata

DISTRIBUTION = "absenteeism-serving"


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


# The console scripts of pyproject.toml's [project.scripts], by the package each one runs.
CONSOLE_SCRIPTS = {"etl_job": "etl-job", "feature_service": "feature-service", "clients": "absenteeism-client"}


def program_name(package: str) -> str:
    """`etl-job` when started by its console script, else `python -m etl_job`."""
    script = CONSOLE_SCRIPTS[package]
    return script if os.path.basename(sys.argv[0] if sys.argv else "") == script else f"python -m {package}"
