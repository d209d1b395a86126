"""A copy of the checkout's files, for tests that build or run make where they must not write into
the work tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

from testkit.paths import REPO_ROOT


def checkout_copy(target: Path) -> Path:
    """The files git knows of (tracked, and new ones not ignored), copied to `target`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(source.read_bytes())
    return target
