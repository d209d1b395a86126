"""The project's wheel, built once per session the way a user builds it (`pip wheel --no-deps .`,
pip's isolated build with the [build-system] requires), from a copy of the checkout's files, so
that what the build writes beside the sources can be checked."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit.checkout import checkout_copy


@dataclass(frozen=True)
class BuiltWheel:
    path: Path
    source: Path  # the copy of the checkout it was built from
    log: str  # pip's verbose output, the build backend's warnings included

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.path) as wheel:
            return wheel.namelist()

    def read(self, suffix: str) -> str:
        """The text of the one member whose name ends with `suffix` (e.g. ".dist-info/METADATA")."""
        with zipfile.ZipFile(self.path) as wheel:
            [name] = [n for n in wheel.namelist() if n.endswith(suffix)]
            return wheel.read(name).decode()


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> BuiltWheel:
    source = checkout_copy(tmp_path_factory.mktemp("checkout"))
    out = tmp_path_factory.mktemp("wheels")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-v",
                            ".", "-w", str(out)], cwd=source, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    [wheel] = out.glob("absenteeism_serving-*.whl")
    return BuiltWheel(wheel, source, build.stdout + build.stderr)
