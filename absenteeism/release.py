"""The installed release of the project, for every command's --version."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "absenteeism-serving"


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"
