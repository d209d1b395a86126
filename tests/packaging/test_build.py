"""Building the wheel leaves build/ (the ETL job's default output folder) alone and warns of nothing."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.process  # builds a wheel: `make test`, not `make test-fast`


def test_building_the_wheel_writes_no_build_folder(built_wheel):
    assert not (built_wheel.source / "build").exists(), \
        "setuptools built in build/, the job's output folder: setup.cfg [build] build_base moves it"
    assert (built_wheel.source / ".setuptools-build").is_dir()  # where it builds instead


def test_the_build_backend_warns_of_nothing_deprecated(built_wheel):
    # Python warning classes (SetuptoolsDeprecationWarning, BuildBackendWarning, ...) and their
    # banners; not distutils' "warning: byte-compiling is disabled" notes (PYTHONDONTWRITEBYTECODE)
    warnings = [line.strip() for line in built_wheel.log.splitlines()
                if re.search(r"[a-z]Warning\b", line) or re.search(r"deprecat|experimental", line, re.IGNORECASE)]
    assert not warnings, "\n".join(warnings)


def test_the_build_folder_is_ignored_by_git():
    from testkit.paths import REPO_ROOT

    assert ".setuptools-build/" in (REPO_ROOT / ".gitignore").read_text().splitlines()
